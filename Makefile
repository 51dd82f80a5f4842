# Makefile — chainwatch top level: build, install, check, demo, bench, format; delegates to components
#
# Components build into build/ (build/san/ with SANITIZE=1). The extension is built with PGXS in
# extension/ and installed into the server's directories (needs root).

TOP := $(abspath .)
PREFIX ?= /usr/local
PG_CONFIG ?= pg_config
PYTHON ?= /usr/bin/python3
export PG_CONFIG PYTHON

# C components with their own Makefile; order matters (common first).
C_COMPONENTS := common tools/kafka-mock tools/txgen apiserver ingestor
C_SOURCES = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find common extension tools ingestor apiserver tests bench -name '*.[ch]')

.PHONY: all deps build extension install install-extension check demo bench bench-api bench-score \
        bench-ingest bench-ingest-sql bench-detect bench-connect fuzz valgrind chaos soak tsan format format-check lint clean \
        $(C_COMPONENTS)

all: build extension

build: $(C_COMPONENTS)

$(C_COMPONENTS):
	$(MAKE) -C $@ TOP=$(TOP)

tools/kafka-mock tools/txgen ingestor: common
apiserver: common

extension: common
	$(MAKE) -C extension with_llvm=no PG_CONFIG=$(PG_CONFIG)

deps:
	@bash tools/deps.sh

# tsan: the threaded daemons with ThreadSanitizer in build/tsan/bin (with the plain broker and txgen beside them)
tsan: build
	$(MAKE) -C common SANITIZE=thread TOP=$(TOP)
	$(MAKE) -C ingestor SANITIZE=thread TOP=$(TOP)
	$(MAKE) -C apiserver SANITIZE=thread TOP=$(TOP)
	ln -sf ../../bin/chainwatch-kafka-mock ../../bin/chainwatch-txgen build/tsan/bin/

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 build/bin/* $(DESTDIR)$(PREFIX)/bin/
	$(MAKE) install-extension

install-extension: extension
	$(MAKE) -C extension with_llvm=no PG_CONFIG=$(PG_CONFIG) install

# check: every suite, from a clean stack in a temporary directory; ends with "N passed, N failed".
check: deps
	@bash tests/run-all.sh

demo: deps
	@bash tools/demo.sh

bench: deps
	@bash bench/run-all.sh

# fuzz: run each libFuzzer target for FUZZ_SECONDS (default 300), growing fuzz/corpus/
FUZZ_SECONDS ?= 300
fuzz: deps
	$(MAKE) -C fuzz fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)

# valgrind: the extension's pg_regress suite under valgrind memcheck on an assert-enabled PostgreSQL built from Debian's source
valgrind: deps
	@bash tools/valgrind-regress.sh

# chaos: fault injection while txgen streams and a client queries the API (tests/integration/test_chaos.py)
chaos: deps all install-extension
	@bash tests/chaos.sh

# soak: ingest at half the measured capacity plus API load for DURATION (default 30m); docs/reliability.md
DURATION ?= 30m
soak: deps all install-extension
	@bash bench/soak/run.sh $(DURATION)

# bench-score: C core vs SQL vs sklearn scoring on the same 1M rows (docs/benchmarks.md)
bench-score: all install-extension
	@bash bench/score/run.sh

# bench-ingest-sql: the ingest transaction vs COPY into plain tables, 1M pre-scored rows
bench-ingest-sql: all install-extension
	@bash bench/ingest/run.sh sql

# bench-ingest: 1M txgen messages through chainwatch-ingestor --drain vs COPY ceilings
bench-ingest: all install-extension
	@bash bench/ingest/run.sh e2e

# bench-detect: a labelled txgen stream through the pipeline as a fresh install runs it, vs sklearn (docs/benchmarks.md)
bench-detect: all install-extension
	@bash bench/detect/run.sh

# bench-connect: the same transactions through Kafka Connect standalone and a JDBC sink, beside the ingestor
bench-connect: all install-extension
	@bash bench/ingest/run.sh connect

# bench-api: wrk against chainwatch-api on a loaded store and a bare civetweb ceiling (docs/benchmarks.md)
bench-api: build
	@bash bench/api/run.sh

format:
	clang-format -i $(filter %.c %.h,$(C_SOURCES))

format-check:
	clang-format --dry-run -Werror $(filter %.c %.h,$(C_SOURCES))

lint: format-check
	bash -n tools/*.sh tests/*.sh
	$(PYTHON) -m py_compile tools/*.py tests/integration/*.py

clean:
	rm -rf build
	-$(MAKE) -C fuzz clean
	-$(MAKE) -C extension clean with_llvm=no PG_CONFIG=$(PG_CONFIG)
