/*
 * deque.h - a worker's bounded run queue: the owner pushes and pops, other threads steal half.
 * Internal.
 *
 * A ring of MVX__DEQUE_CAP task pointers. `tail` is written only by the owner. `head` packs two
 * 32-bit indexes, (steal << 32) | real:
 *   real   the next slot the owner pops or a stealer claims;
 *   steal  where the running steal began; equal to real when no steal is in progress.
 * A stealer claims half the tasks by advancing `real` in one CAS, copies them out, then moves
 * `steal` up to meet `real`. The owner never overwrites slots from `steal` on, so the copy is safe,
 * and only one steal runs at a time (a second one sees steal != real and backs off).
 * Indexes wrap around 2^32; only differences are used.
 */
#ifndef MVX_DEQUE_H
#define MVX_DEQUE_H

#include "common.h"

#define MVX__DEQUE_CAP  256u
#define MVX__DEQUE_MASK (MVX__DEQUE_CAP - 1)

struct mvx__task;

struct mvx__deque {
    _Alignas(MVX_CACHE_LINE) _Atomic uint64_t head;
    _Atomic uint32_t tail;
    struct mvx__task *_Atomic buf[MVX__DEQUE_CAP];
};

void mvx__deque_init(struct mvx__deque *q);

/* Owner: pushes t; when full, moves half of the queue plus t into `overflow` (a linked chain the
 * caller hands to the global queue) and returns its length; 0 when t fitted. */
unsigned mvx__deque_push(struct mvx__deque *q, struct mvx__task *t,
                         struct mvx__task **overflow_first, struct mvx__task **overflow_last);
/* Owner: pops the oldest task, or NULL. */
struct mvx__task *mvx__deque_pop(struct mvx__deque *q);
/* Owner: free room. */
unsigned mvx__deque_room(const struct mvx__deque *q);
/* Any thread: steals about half of q's tasks (at most max) into out; returns how many. */
unsigned mvx__deque_steal(struct mvx__deque *q, struct mvx__task **out, unsigned max);
/* Any thread: tasks queued, approximate. */
unsigned mvx__deque_len(const struct mvx__deque *q);

#endif
