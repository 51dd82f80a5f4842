/* apiserver/src/slotq.h — a first-come-first-served set of slot numbers with timed waits (the
 * connection pool's free list) */
#ifndef API_SLOTQ_H
#define API_SLOTQ_H

typedef struct slotq slotq;

/* slotq_create makes a set of n free slots, numbered 0 .. n-1; NULL when out of memory */
slotq *slotq_create(int n);
void slotq_destroy(slotq *q);

/*
 * slotq_take returns a free slot, waiting up to wait_ms for one to be given back; -1 when none
 * came in time. Waiters are served strictly in the order they started waiting, and a caller
 * never takes a free slot while others wait.
 */
int slotq_take(slotq *q, long wait_ms);

/* slotq_give returns slot: to the longest waiter if there is one, else to the free set */
void slotq_give(slotq *q, int slot);

/* slotq_waiting is the number of callers waiting in slotq_take */
int slotq_waiting(slotq *q);

#endif
