/* tsan_threads.c — C11 thrd_create/thrd_join/thrd_detach over pthreads, for ThreadSanitizer builds
 * only
 *
 * librdkafka starts its threads with C11 thrd_create(). glibc implements that by calling its
 * internal pthread_create directly, which neither GCC 12's nor clang 14's ThreadSanitizer
 * intercepts: the thread then runs without TSan state and the first malloc in it crashes the
 * process (SEGV in the sanitizer allocator). Defining the three functions in the executable
 * interposes them for every shared library (the dynamic linker resolves librdkafka's references to
 * the executable first), and routing them through the public pthread functions lets TSan see each
 * thread start and join. The build pulls this file in only with SANITIZE=thread (mk/common.mk links
 * it with -u thrd_create); elsewhere it is empty.
 */
#if defined(__SANITIZE_THREAD__)
#define CW_TSAN_THREADS 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CW_TSAN_THREADS 1
#endif
#endif

#ifdef CW_TSAN_THREADS
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

typedef struct {
    thrd_start_t func;
    void *arg;
} tsan_start;

/* tsan_trampoline runs the C11 start function; its int result travels as the pthread result, as
 * glibc's thrd_join expects */
static void *tsan_trampoline(void *p)
{
    tsan_start s = *(tsan_start *) p;
    free(p);
    return (void *) (intptr_t) s.func(s.arg);
}

static int thrd_status(int err)
{
    return err == 0        ? thrd_success
           : err == ENOMEM ? thrd_nomem
           : err == EAGAIN ? thrd_busy
                           : thrd_error;
}

int thrd_create(thrd_t *thr, thrd_start_t func, void *arg)
{
    tsan_start *s = malloc(sizeof(*s));
    int err;

    if (!s)
        return thrd_nomem;
    s->func = func;
    s->arg = arg;
    err = pthread_create((pthread_t *) thr, NULL, tsan_trampoline, s);
    if (err)
        free(s);
    return thrd_status(err);
}

int thrd_join(thrd_t thr, int *res)
{
    void *ret = NULL;
    int err = pthread_join((pthread_t) thr, &ret);

    if (err == 0 && res)
        *res = (int) (intptr_t) ret;
    return thrd_status(err);
}

int thrd_detach(thrd_t thr)
{
    return thrd_status(pthread_detach((pthread_t) thr));
}
#else
/* an empty translation unit is not ISO C */
typedef int cw_tsan_threads_unused;
#endif
