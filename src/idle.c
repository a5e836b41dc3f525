/*
 * idle.c - which workers are awake, which search for work, and how one gets woken.
 *
 * One atomic word, rt->idle = (unparked << 16) | searching:
 *   unparked   workers not committed to sleeping
 *   searching  awake workers looking for work to steal (at most half of the unparked ones, so a
 *              burst does not make every worker hammer every queue)
 * A producer that queued work calls mvx__idle_notify(): if nobody searches and somebody sleeps,
 * it counts one sleeper as unparked+searching on that sleeper's behalf (a CAS on the word), then
 * claims a sleeper (CAS of its sleep word SLEEPING -> WOKEN) and futex-wakes it. One wake per
 * burst: the woken worker searches, and only when it finds work, was the last searcher and sees
 * more work than it took does it wake the next one (worker.c). No lock anywhere.
 *
 * Before sleeping a searcher spins for as long as its adaptive budget says (spin.h); to learn
 * how soon work came after it slept, the notifier time-stamps its claim (woken_at).
 *
 * Whom to wake: a thread outside the runtime that queues work wakes, if there is one, a worker
 * that went to sleep on the CPU it runs on at least MVX__WAKE_NEAR_AFTER_NS ago; otherwise the
 * wake-ups rotate over the workers. The kernel wakes a thread on the CPU it last ran on, and
 * when that CPU runs some other busy thread, the woken worker waits for that thread's turn to
 * end (about 56 us here, against 2 us for one woken on the waker's CPU). Work that comes that
 * slowly mostly comes from a thread about to block until its next item (a timer, a socket, a
 * frame), so the waker's own CPU is the one about to be free. A worker that slept only briefly
 * is not picked: work is coming fast, the outside thread keeps running (it spins in
 * mvx_join_wait, say), and the two would take turns on one CPU. See docs/scheduler.md.
 *
 * Sleeping, per worker (w->sleep):
 *
 *   AWAKE --store--> SLEEPING --notifier CAS--> WOKEN --worker--> AWAKE
 *                       |
 *                       +--worker's own CAS (work appeared while committing, or the futex
 *                          wait reached the next timer deadline)--> AWAKE
 *
 * Lost wake-ups are excluded by ordering (all seq_cst): the worker publishes SLEEPING, then
 * decrements `unparked`, then looks at every queue once more; a producer pushes, then reads the
 * word. Either the worker's last look sees the push, or the producer sees the worker asleep.
 * A notifier that counted a sleeper but finds none to claim (the sleeper woke itself) undoes its
 * count and tries again, so a miscount never outlives the notify that made it.
 */
#include "futex.h"
#include "spin.h"
#include "worker.h"

#include <sched.h>
#include <time.h>

/* How long a worker must have slept for an outside notifier to pick it by CPU (above). */
#define MVX__WAKE_NEAR_AFTER_NS 100000

#define SEARCHING_MASK 0xffffu
#define UNPARKED_ONE   (1u << 16)

static inline unsigned searching_of(uint32_t s)
{
    return s & SEARCHING_MASK;
}
static inline unsigned unparked_of(uint32_t s)
{
    return s >> 16;
}

bool mvx__idle_try_search(struct mvx_runtime *rt)
{
    uint32_t s = atomic_load_explicit(&rt->idle, mvx__seq_cst);
    do {
        if (2 * searching_of(s) >= unparked_of(s))
            return false;
    } while (
        !atomic_compare_exchange_weak_explicit(&rt->idle, &s, s + 1, mvx__seq_cst, mvx__seq_cst));
    return true;
}

bool mvx__idle_leave_search(struct mvx_runtime *rt)
{
    return searching_of(atomic_fetch_sub_explicit(&rt->idle, 1, mvx__seq_cst)) == 1;
}

bool mvx__idle_work_visible(struct mvx__worker *w)
{
    struct mvx_runtime *rt = w->rt;
    if (mvx__inject_maybe_nonempty(&rt->inject))
        return true;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct mvx__worker *v = rt->workers[i];
        if (v != w && mvx__deque_len(&v->deque) > 0)
            return true;
    }
    return false;
}

/* Claims w if it sleeps, and wakes it. */
static bool try_claim(struct mvx__worker *w, int64_t now)
{
    uint32_t expected = MVX__SLEEPING;
    if (atomic_load_explicit(&w->sleep, mvx__relaxed) != MVX__SLEEPING)
        return false;
    /* Before the claim, so that the sleeper's acquire of WOKEN sees it (a loser's later store
     * only makes the time a little late). */
    atomic_store_explicit(&w->woken_at, now, mvx__relaxed);
    if (!atomic_compare_exchange_strong_explicit(&w->sleep, &expected, MVX__WOKEN, mvx__seq_cst,
                                                 mvx__relaxed))
        return false;
    mvx__futex_wake(&w->sleep, 1);
    return true;
}

static bool claim_sleeper(struct mvx_runtime *rt)
{
    static _Atomic unsigned rotor; /* spreads wake-ups over the workers */
    unsigned n = rt->nworkers;
    int64_t now = mvx__now_ns();
    /* By CPU only for a notifier outside rt: a worker that queues work goes on running. */
    struct mvx__worker *self = mvx__tl_worker;
    int cpu = self && self->rt == rt ? -1 : sched_getcpu();
    for (unsigned i = 0; cpu >= 0 && i < n; i++) {
        struct mvx__worker *w = rt->workers[i];
        if (atomic_load_explicit(&w->park_cpu, mvx__relaxed) == cpu &&
            now - atomic_load_explicit(&w->parked_at, mvx__relaxed) >= MVX__WAKE_NEAR_AFTER_NS &&
            try_claim(w, now))
            return true;
    }
    unsigned start = atomic_fetch_add_explicit(&rotor, 1, mvx__relaxed);
    for (unsigned i = 0; i < n; i++) {
        if (try_claim(rt->workers[(start + i) % n], now))
            return true;
    }
    return false;
}

void mvx__idle_notify(struct mvx_runtime *rt)
{
    for (;;) {
        /* After shutdown the counts no longer add up (exited workers stay uncounted) and every
         * worker has been woken anyway. */
        if (atomic_load_explicit(&rt->phase, mvx__relaxed) != MVX__PHASE_RUNNING)
            return;
        uint32_t s = atomic_load_explicit(&rt->idle, mvx__seq_cst);
        do {
            if (searching_of(s) != 0 || unparked_of(s) >= rt->nworkers)
                return;
        } while (!atomic_compare_exchange_weak_explicit(&rt->idle, &s, s + UNPARKED_ONE + 1,
                                                        mvx__seq_cst, mvx__seq_cst));
        if (claim_sleeper(rt))
            return;
        /* The sleeper we counted woke up by itself and counted itself: undo, look again. */
        atomic_fetch_sub_explicit(&rt->idle, UNPARKED_ONE + 1, mvx__seq_cst);
    }
}

void mvx__idle_wake_all(struct mvx_runtime *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct mvx__worker *w = rt->workers[i];
        atomic_store_explicit(&w->sleep, MVX__WOKEN, mvx__seq_cst);
        mvx__futex_wake(&w->sleep, 1);
    }
}

/* Spins before sleeping, for as long as the worker's budget says (spin.h: adaptive by default,
 * so that a runtime fed slowly sleeps between tasks instead of spinning after each). Only
 * searchers spin, so at most half the workers burn CPU. Returns whether work (or shutdown)
 * showed up. */
static bool spin_for_work(struct mvx__worker *w, int64_t since, bool *spun)
{
    *spun = false;
    if (!w->searching)
        return false;
    int64_t budget = mvx__spin_budget(&w->spin, w->rt->spin_ns, MVX__SPIN_MAX_NS);
    if (budget <= 0)
        return false;
    *spun = true;
    mvx__stat_inc(&w->spins);
    int64_t deadline = since + budget;
    for (unsigned i = 1;; i++) {
        if (mvx__idle_work_visible(w) ||
            atomic_load_explicit(&w->rt->phase, mvx__relaxed) != MVX__PHASE_RUNNING ||
            mvx__worker_reclaimed(w)) {
            mvx__stat_inc(&w->spins_found);
            return true;
        }
        if ((i & 63) == 0) {
            int64_t now = mvx__now_ns();
            if (now > deadline)
                return false;
            /* Let the thread that will produce the work run, should it share our core; but
             * not in the first microseconds, when most spins that pay find their work: the
             * call takes about a microsecond on a VM, during which new work goes unseen. */
            if (now - since > MVX__SPIN_MIN_NS)
                sched_yield();
        }
        mvx__cpu_relax();
    }
}

/* Work is visible but this worker keeps getting none: a producer stopped between its exchange
 * and its link (inject.h), a steal or a batch in flight. That resolves itself within a few
 * instructions of the other thread, so the worker retries at once; but once it has retried for
 * longer than the spin ceiling, the thread it waits for is evidently not running (preempted, or
 * starved by a serialising scheduler such as valgrind's, where a spinner can keep the other
 * thread off the CPU indefinitely), and the worker steps off the CPU for a moment. This is a
 * liveness rule, not a spin policy: it holds whatever mvx_runtime_config.spin_ns says. */
static void back_off_if_futile(struct mvx__worker *w, int64_t now)
{
    uint64_t polls = atomic_load_explicit(&w->polls, mvx__relaxed);
    if (w->futile_since == 0 || w->futile_polls != polls) {
        w->futile_since = now;
        w->futile_polls = polls;
        return;
    }
    if (now - w->futile_since < MVX__SPIN_MAX_NS)
        return;
    struct timespec pause = {0, 50000};
    nanosleep(&pause, NULL);
}

/* Sleeps on the worker's futex until a notifier claims it (SLEEPING -> WOKEN) or the next timer
 * deadline of its wheel passes. Returns true when claimed; false when a deadline passed first
 * and the worker took itself back (SLEEPING -> AWAKE), in which case the caller must count
 * itself awake again. */
static bool park(struct mvx__worker *w)
{
    mvx__stat_inc(&w->parks);
    while (atomic_load_explicit(&w->sleep, mvx__acquire) == MVX__SLEEPING) {
        /* Read after publishing SLEEPING: an earlier timer armed from elsewhere either shows
         * here or finds us asleep and wakes us (mvx__idle_wake_worker). */
        int64_t deadline = mvx__timer_park_deadline(w);
        if (!mvx__futex_wait(&w->sleep, MVX__SLEEPING, deadline)) {
            uint32_t expected = MVX__SLEEPING;
            if (atomic_compare_exchange_strong_explicit(&w->sleep, &expected, MVX__AWAKE,
                                                        mvx__seq_cst, mvx__seq_cst)) {
                w->timer_woke_at = deadline;
                return false;
            }
            /* Claimed just as the deadline passed: woken after all. */
        }
    }
    return true;
}

void mvx__idle_sleep(struct mvx__worker *w)
{
    struct mvx_runtime *rt = w->rt;
    if (mvx__timer_fire_due(w))
        return; /* timers woke tasks onto this worker */
    mvx__slot_flush_remote(); /* the slots' owners may be allocating */
    w->timer_checked_at = 0; /* idle time is no poll's: mvx__timer_check learns from polls */
    int64_t since = mvx__now_ns();
    bool spun;
    if (spin_for_work(w, since, &spun)) {
        mvx__spin_learn(&w->spin, MVX__SPIN_MAX_NS, 0, true, mvx__now_ns() - since);
        back_off_if_futile(w, since);
        return;
    }
    atomic_store_explicit(&w->park_cpu, sched_getcpu(), mvx__relaxed);
    atomic_store_explicit(&w->parked_at, mvx__now_ns(), mvx__relaxed);
    atomic_store_explicit(&w->sleep, MVX__SLEEPING, mvx__seq_cst);
    uint32_t dec = UNPARKED_ONE + (w->searching ? 1 : 0);
    atomic_fetch_sub_explicit(&rt->idle, dec, mvx__seq_cst);
    w->searching = false;
    bool claimed;
    if (mvx__idle_work_visible(w) ||
        atomic_load_explicit(&rt->phase, mvx__seq_cst) != MVX__PHASE_RUNNING ||
        mvx__worker_reclaimed(w)) {
        uint32_t expected = MVX__SLEEPING;
        claimed = !atomic_compare_exchange_strong_explicit(&w->sleep, &expected, MVX__AWAKE,
                                                           mvx__seq_cst, mvx__seq_cst);
        if (!claimed) {
            atomic_fetch_add_explicit(&rt->idle, UNPARKED_ONE + 1, mvx__seq_cst);
            w->searching = true;
            /* A round that found work without sleeping, as a spin that finds some. */
            if (!spun)
                mvx__stat_inc(&w->spins);
            mvx__stat_inc(&w->spins_found);
            mvx__spin_learn(&w->spin, MVX__SPIN_MAX_NS, 0, true, mvx__now_ns() - since);
            back_off_if_futile(w, since);
            return;
        }
        /* A notifier claimed us first and counted us: just wake up. */
    } else {
        claimed = park(w);
    }
    if (claimed) {
        atomic_store_explicit(&w->sleep, MVX__AWAKE, mvx__relaxed);
        int64_t gap = atomic_load_explicit(&w->woken_at, mvx__relaxed) - since;
        mvx__spin_learn(&w->spin, MVX__SPIN_MAX_NS, 0, false, gap);
    } else {
        /* A timer is due: nobody counted us awake. */
        atomic_fetch_add_explicit(&rt->idle, UNPARKED_ONE + 1, mvx__seq_cst);
    }
    w->searching = true;
    w->futile_since = 0; /* slept: any streak of futile looks is over */
}

void mvx__idle_wake_worker(struct mvx__worker *w)
{
    struct mvx_runtime *rt = w->rt;
    if (atomic_load_explicit(&rt->phase, mvx__relaxed) != MVX__PHASE_RUNNING)
        return;
    /* As mvx__idle_notify: count the sleeper awake and searching first, then claim it. */
    atomic_fetch_add_explicit(&rt->idle, UNPARKED_ONE + 1, mvx__seq_cst);
    if (try_claim(w, mvx__now_ns()))
        return;
    atomic_fetch_sub_explicit(&rt->idle, UNPARKED_ONE + 1, mvx__seq_cst); /* it woke by itself */
}
