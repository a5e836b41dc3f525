/*
 * inject.c - see inject.h.
 */
#include "inject.h"

void mvx__inject_init(struct mvx__inject *q)
{
    atomic_init(&q->stub.next, NULL);
    atomic_init(&q->stub.state, 0);
    atomic_init(&q->tail, &q->stub);
    atomic_init(&q->head, &q->stub);
    atomic_init(&q->consumer, 0);
}

void mvx__inject_push_chain(struct mvx__inject *q, struct mvx__task *first, struct mvx__task *last)
{
    atomic_store_explicit(&last->next, NULL, mvx__relaxed);
    /* seq_cst: pairs with the consumers' parking protocol (a push is seen by a worker about to
     * sleep, or that worker is seen as sleeping by the notify that follows). */
    struct mvx__task *prev = atomic_exchange_explicit(&q->tail, last, mvx__seq_cst);
    atomic_store_explicit(&prev->next, first, mvx__release);
}

static inline void set_head(struct mvx__inject *q, struct mvx__task *head)
{
    atomic_store_explicit(&q->head, head, mvx__relaxed);
}

struct mvx__task *mvx__inject_pop(struct mvx__inject *q)
{
    struct mvx__task *head = atomic_load_explicit(&q->head, mvx__relaxed);
    struct mvx__task *next = atomic_load_explicit(&head->next, mvx__acquire);
    if (head == &q->stub) {
        if (!next)
            return NULL;
        set_head(q, head = next);
        next = atomic_load_explicit(&head->next, mvx__acquire);
    }
    if (next) {
        set_head(q, next);
        return head;
    }
    /* head is the last linked node: it can be taken only once the stub is queued behind it. */
    if (atomic_load_explicit(&q->tail, mvx__acquire) != head)
        return NULL; /* a producer is between its exchange and its store */
    mvx__inject_push(q, &q->stub);
    next = atomic_load_explicit(&head->next, mvx__acquire);
    if (next) {
        set_head(q, next);
        return head;
    }
    return NULL; /* head's producer has not linked it yet: head stays, so not "empty" */
}
