/*
 * backlog.h - how far the workers lag behind the global queue, and the backpressure that keeps a
 * thread spawning from outside from running ahead of them. Internal. Why: docs/scheduler.md
 * ("Floods from outside").
 *
 * Every push to the runtime's global queue adds to `pushed` before it links the tasks; every batch
 * a worker takes adds to `taken` (under the queue's consumer lock, so a plain store). Each time
 * `pushed` crosses a multiple of 64 the pusher stamps the clock in a ring of marks. Any thread can
 * then tell in a few loads how long ago the oldest task no worker has taken was queued, without a
 * timestamp per task: the first mark at or after it is at most 63 pushes younger than it.
 */
#ifndef MVX_BACKLOG_H
#define MVX_BACKLOG_H

#include "common.h"

#define MVX__BACKLOG_MARK_SHIFT 6   /* one mark per 64 pushes */
#define MVX__BACKLOG_MARKS      256 /* the ring covers the last 16,384 pushes */

struct mvx__backlog_mark {
    _Atomic uint64_t mark; /* pushed >> MARK_SHIFT when stamped; written after ns */
    _Atomic int64_t ns;
};

struct mvx__backlog {
    _Alignas(MVX_CACHE_LINE) _Atomic uint64_t pushed;
    _Alignas(MVX_CACHE_LINE) _Atomic uint64_t taken;
    /* `taken` when a spawner last waited and the workers took nothing meanwhile. */
    _Atomic uint64_t stalled_at;
    int64_t limit_ns; /* mvx_runtime_config.spawn_backlog_ns resolved; 0: never wait */
    _Alignas(MVX_CACHE_LINE) struct mvx__backlog_mark marks[MVX__BACKLOG_MARKS];
};

void mvx__backlog_init(struct mvx__backlog *b, int64_t limit_ns);

/* Counts n tasks about to be pushed to the global queue. Any thread. True when this push
 * stamped a mark: the spawn paths then call mvx__backlog_wait (once per 64 pushes at most). */
static inline bool mvx__backlog_pushing(struct mvx__backlog *b, unsigned n)
{
    uint64_t before = atomic_fetch_add_explicit(&b->pushed, n, mvx__relaxed);
    uint64_t mark = (before + n) >> MVX__BACKLOG_MARK_SHIFT;
    if (mark == before >> MVX__BACKLOG_MARK_SHIFT)
        return false;
    struct mvx__backlog_mark *m = &b->marks[mark % MVX__BACKLOG_MARKS];
    atomic_store_explicit(&m->ns, mvx__now_ns(), mvx__relaxed);
    atomic_store_explicit(&m->mark, mark, mvx__release);
    return true;
}

/* A worker took n tasks from the global queue. Holder of its consumer lock only. */
static inline void mvx__backlog_took(struct mvx__backlog *b, unsigned n)
{
    atomic_store_explicit(&b->taken, atomic_load_explicit(&b->taken, mvx__relaxed) + n,
                          mvx__release);
}

struct mvx_runtime;

/* A thread that is not one of rt's workers has just spawned onto the global queue: while the
 * workers lag by more than limit_ns (a worker's timers are that overdue, or the oldest task
 * there has waited four times that long), sleep in short steps, so that the spawner's CPU goes to
 * the workers and a flood of spawns cannot build up much more delay than that. At most limit_ns per
 * call (once per 64 pushes): a queue kept deep by tasks that yield slows a spawner, never stops it.
 * A call in which the workers take nothing for 2 ms (every one in a long poll: it may be waiting
 * for this very spawner) ends there, and nobody waits again until they take a task. Returns at
 * once once shutdown has begun. */
void mvx__backlog_wait(struct mvx_runtime *rt);

#endif
