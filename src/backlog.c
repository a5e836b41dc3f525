/*
 * backlog.c - see backlog.h.
 */
#include "backlog.h"
#include "runtime.h"
#include "worker.h"

#include <time.h>

/* A wait ends once the workers took nothing for this long, whatever the limit. */
#define STUCK_NS ((int64_t)2000000)

void mvx__backlog_init(struct mvx__backlog *b, int64_t limit_ns)
{
    atomic_init(&b->pushed, 0);
    atomic_init(&b->taken, 0);
    atomic_init(&b->stalled_at, UINT64_MAX);
    b->limit_ns = limit_ns;
    for (unsigned i = 0; i < MVX__BACKLOG_MARKS; i++) {
        atomic_init(&b->marks[i].mark, UINT64_MAX);
        atomic_init(&b->marks[i].ns, 0);
    }
}

/* How long ago the oldest task not yet taken was pushed, at most: 0 when fewer than 64 wait or
 * the mark is being rewritten, INT64_MAX when more wait than the ring covers. */
static int64_t oldest_wait(struct mvx__backlog *b, uint64_t taken, int64_t now)
{
    uint64_t pushed = atomic_load_explicit(&b->pushed, mvx__relaxed);
    uint64_t mark = (taken >> MVX__BACKLOG_MARK_SHIFT) + 1; /* the first stamped after it */
    uint64_t newest = pushed >> MVX__BACKLOG_MARK_SHIFT;
    if ((int64_t)(newest - mark) < 0)
        return 0;
    if (newest - mark >= MVX__BACKLOG_MARKS)
        return INT64_MAX;
    struct mvx__backlog_mark *m = &b->marks[mark % MVX__BACKLOG_MARKS];
    if (atomic_load_explicit(&m->mark, mvx__acquire) != mark)
        return 0;
    int64_t age = now - atomic_load_explicit(&m->ns, mvx__relaxed);
    return age > 0 ? age : 0;
}

/* How late the workers are: a quarter of the oldest wait in the global queue, or the most
 * overdue wheel (timers wait for their worker like tasks do: two workers time-sliced on one core
 * while the spawner keeps the other take tasks promptly and fire timers late). The queue counts
 * a quarter because a burst from a thread that then waits for its own tasks (a Go program's
 * 1,000 calls in flight) leaves them a few hundred microseconds behind as a matter of course:
 * sleeping it then only delays the burst (10% slower at full weight, measured). */
static int64_t lag(struct mvx_runtime *rt, uint64_t taken, int64_t now)
{
    int64_t worst = oldest_wait(&rt->backlog, taken, now) / 4;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        int64_t due = atomic_load_explicit(&rt->workers[i]->wheel.next_fire, mvx__relaxed);
        if (due != INT64_MAX && now - due > worst)
            worst = now - due;
    }
    return worst;
}

void mvx__backlog_wait(struct mvx_runtime *rt)
{
    struct mvx__backlog *b = &rt->backlog;
    int64_t limit = b->limit_ns;
    if (limit <= 0)
        return;
    uint64_t first_taken = atomic_load_explicit(&b->taken, mvx__acquire);
    if (first_taken == atomic_load_explicit(&b->stalled_at, mvx__relaxed))
        return; /* the workers took nothing since a spawner last waited for them in vain */
    int64_t start = mvx__now_ns();
    /* Short steps, so the spawner resumes soon after the workers catch up. */
    long step = (long)(limit / 2 < 10000 ? 10000 : limit / 2 > 1000000 ? 1000000 : limit / 2);
    for (int64_t now = start;; now = mvx__now_ns()) {
        uint64_t taken = atomic_load_explicit(&b->taken, mvx__acquire);
        if (lag(rt, taken, now) <= limit ||
            atomic_load_explicit(&rt->phase, mvx__relaxed) != MVX__PHASE_RUNNING)
            return;
        /* At most `limit` per call: tasks that yield keep the queue deep forever, and a
         * spawner must still get through. Nothing taken all along: they are stuck. */
        bool stuck = taken == first_taken && now - start >= STUCK_NS;
        if (now - start >= limit || stuck) {
            if (taken == first_taken)
                atomic_store_explicit(&b->stalled_at, taken, mvx__relaxed);
            return;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = step};
        nanosleep(&ts, NULL);
    }
}
