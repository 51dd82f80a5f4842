# mk/common.mk — compiler flags and build directories shared by every C component
#
# Included by each component Makefile after it sets TOP. Objects and binaries go to
# $(BUILD) (build/ normally, build/san/ with SANITIZE=1, build/tsan/ with SANITIZE=thread; they never mix).

SANITIZE ?= 0
ifeq ($(SANITIZE),1)
BUILD ?= $(TOP)/build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT ?= -O1
else ifeq ($(SANITIZE),thread)
# ThreadSanitizer for the threaded daemons (tests/suites/68-tsan.sh); the third-party libraries are not
# instrumented, so only races in our code (queues, pools, caches, metrics, shared state) are reported
BUILD ?= $(TOP)/build/tsan
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
OPT ?= -O1
# librdkafka's C11 threads through pthreads, so TSan sees them (common/src/tsan_threads.c)
LDFLAGS += -Wl,-u,thrd_create
else
BUILD ?= $(TOP)/build
SANFLAGS :=
OPT ?= -O2
endif

CC ?= cc
CSTD := -std=c11 -D_GNU_SOURCE
WARN := -Wall -Wextra -Werror -Wno-missing-field-initializers
CFLAGS ?= $(OPT) -g
CFLAGS += $(CSTD) $(WARN) $(SANFLAGS) -I$(TOP)/common/src
LDFLAGS += $(SANFLAGS)

BINDIR := $(BUILD)/bin
LIBDIR := $(BUILD)/lib
OBJROOT := $(BUILD)/obj

# CW_CORE_LIB: the forest core and other pure helpers (no Postgres, no threads)
CW_CORE_LIB := $(LIBDIR)/libcwcore.a
# CW_DAEMON_LIB: logging, settings table, metrics, HTTP helpers for the daemons
CW_DAEMON_LIB := $(LIBDIR)/libcwdaemon.a
