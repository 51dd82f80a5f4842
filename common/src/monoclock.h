/* common/src/monoclock.h — the monotonic clock as nanoseconds, milliseconds and wait deadlines */
#ifndef CW_MONOCLOCK_H
#define CW_MONOCLOCK_H

#include <stdint.h>
#include <time.h>

/*
 * Every interval the daemons measure (timeouts, rate limits, request durations, back-off) uses
 * CLOCK_MONOTONIC, so a wall-clock step never shortens or stretches one. Condition variables that
 * wait with cw_deadline_ms must be created with pthread_condattr_setclock(CLOCK_MONOTONIC).
 */

/* cw_mono_ns is the monotonic clock in nanoseconds */
static inline int64_t cw_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* cw_mono_ms is the monotonic clock in milliseconds */
static inline int64_t cw_mono_ms(void)
{
    return cw_mono_ns() / 1000000;
}

/* cw_deadline_ms is the CLOCK_MONOTONIC time ms milliseconds ahead (pthread_cond_timedwait) */
static inline struct timespec cw_deadline_ms(long ms)
{
    struct timespec at;
    clock_gettime(CLOCK_MONOTONIC, &at);
    at.tv_sec += ms / 1000;
    at.tv_nsec += (ms % 1000) * 1000000L;
    if (at.tv_nsec >= 1000000000L) {
        at.tv_sec++;
        at.tv_nsec -= 1000000000L;
    }
    return at;
}

#endif
