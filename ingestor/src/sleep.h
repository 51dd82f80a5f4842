/* ingestor/src/sleep.h — sleeping in short steps, so that a stop flag is seen within 50 ms */
#ifndef INGESTOR_SLEEP_H
#define INGESTOR_SLEEP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

/* sleep_ms_unless sleeps up to ms, waking early once *flag (if given) is true; returns *flag */
static inline bool sleep_ms_unless(long ms, _Atomic bool *flag)
{
    while (ms > 0 && !(flag && atomic_load(flag))) {
        long step = ms > 50 ? 50 : ms;
        struct timespec ts = {0, step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
    return flag && atomic_load(flag);
}

#endif /* INGESTOR_SLEEP_H */
