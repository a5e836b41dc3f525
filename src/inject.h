/*
 * inject.h - an unbounded intrusive queue, many producers, one consumer at a time. Internal.
 *
 * The runtime's global queue (spawns and wakes from outside the workers, overflow of local
 * queues) and a local set's run queue. Producers never block: a push is one exchange on `tail`
 * and one store (D. Vyukov's intrusive MPSC queue, linked through task->next, with a stub node).
 * Consumers take turns through a try-lock; a worker that loses the race does something else.
 *
 * Between a producer's exchange and its store the queue looks non-empty but the consumer cannot
 * get past the producer's predecessor: pop then reports nothing. Each producer notifies its
 * consumer (unparks a worker, wakes a local set's owner) after its store, so nothing is lost.
 */
#ifndef MVX_INJECT_H
#define MVX_INJECT_H

#include "task.h"

struct mvx__inject {
    _Alignas(MVX_CACHE_LINE) struct mvx__task *_Atomic tail;
    /* Written only by the consumer; read by anyone asking whether the queue is empty. */
    _Alignas(MVX_CACHE_LINE) struct mvx__task *_Atomic head;
    _Atomic uint32_t consumer; /* try-lock: 1 while someone pops */
    struct mvx__task stub;
};

void mvx__inject_init(struct mvx__inject *q);
/* Appends the chain first..last (linked through next, last->next ignored). Any thread. */
void mvx__inject_push_chain(struct mvx__inject *q, struct mvx__task *first, struct mvx__task *last);
static inline void mvx__inject_push(struct mvx__inject *q, struct mvx__task *t)
{
    mvx__inject_push_chain(q, t, t);
}
/* Whether the queue may hold tasks (a producer may be mid-push). Any thread, two loads.
 * `tail` alone is not enough: when the consumer re-queues the stub behind a node whose
 * producer has not linked it yet, tasks remain between head and the stub while tail is the
 * stub again. */
static inline bool mvx__inject_maybe_nonempty(struct mvx__inject *q)
{
    return atomic_load_explicit(&q->tail, mvx__seq_cst) != &q->stub ||
           atomic_load_explicit(&q->head, mvx__relaxed) != &q->stub;
}
/* Consumer lock. Single-consumer users (local sets) need not take it. */
static inline bool mvx__inject_try_lock(struct mvx__inject *q)
{
    return atomic_load_explicit(&q->consumer, mvx__relaxed) == 0 &&
           atomic_exchange_explicit(&q->consumer, 1, mvx__acquire) == 0;
}
static inline void mvx__inject_unlock(struct mvx__inject *q)
{
    atomic_store_explicit(&q->consumer, 0, mvx__release);
}
/* Pops one task, or NULL when empty or a producer is mid-push. Consumer only. */
struct mvx__task *mvx__inject_pop(struct mvx__inject *q);

#endif
