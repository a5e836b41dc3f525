/*
 * spin.h - how long a thread about to sleep spins for work first. Internal.
 *
 * A futex sleep and the cross-core wake-up that ends it cost tens of microseconds of latency on
 * small VMs, far more than a task; spinning costs CPU that an embedding process pays for even
 * when nothing happens. So by default (MVX_SPIN_ADAPTIVE) each sleeper keeps a budget that
 * follows whether spinning pays, as adaptive mutexes and Go's spinning-M limit do:
 *
 *   the spin found work after t            -> budget = max(budget, 4 t)
 *   it ran out, then the sleep that followed ended g after the spin began:
 *       g <= max                            -> budget = max(2 budget, 2 g)   (a longer spin would
 *                                              have caught it)
 *       g >  max                            -> budget / 2, and 0 below MIN   (spinning did not pay)
 *
 * always within [MIN, max] unless 0, and 0 means no spin at all until a sleep is short again. A
 * runtime fed one task per millisecond thus stops spinning after a few tasks and sleeps between
 * them; short gaps turn the spin back on at once, only as long as they need (a catch-up burst of
 * back-to-back spawns makes a spin of a few microseconds, not of 50).
 *
 * Workers learn the gap exactly (the notifier time-stamps its claim) and drop to 0. A join
 * waiter only learns when it woke, which includes its own wake-up latency: on a loaded machine
 * that alone exceeds the ceiling, and a waiter at 0 would never spin again. So waiters keep a
 * floor of MIN (2 us, less than the futex round trip it may save): a floor spin that finds the
 * task done grows the budget again. Waiters also skip the spin outright when the task waits for
 * a sleeping worker (join.c), which is what keeps slow round trips cheap. The budget lives with its
 * sleeper (a worker; a thread-local for join waiters and local-set owners) and only that thread
 * touches it: no shared writes.
 */
#ifndef MVX_SPIN_H
#define MVX_SPIN_H

#include "common.h"

#define MVX__SPIN_MAX_NS      50000 /* idle workers */
#define MVX__WAIT_SPIN_MAX_NS 20000 /* mvx_join_wait, mvx_local_set_run_until */
#define MVX__SPIN_MIN_NS      2000  /* a shorter spin is not worth the clock reads */

struct mvx__spin {
    int64_t budget_ns; /* the next spin, adaptive mode; starts at max */
};

/* The budget for the next spin under the runtime's setting (negative: adaptive, up to max). */
static inline int64_t mvx__spin_budget(const struct mvx__spin *s, int64_t setting, int64_t max)
{
    if (setting >= 0)
        return setting;
    return s->budget_ns > max ? max : s->budget_ns;
}

/* After a wait that began gap_ns ago (INT64_MAX: unknown, as long): found says whether the spin
 * found what it waited for, and gap_ns is then when; otherwise gap_ns is how long after the spin
 * began the sleep that followed ended because of it. floor: what a failing budget drops to,
 * 0 or MVX__SPIN_MIN_NS (see above). */
static inline void mvx__spin_learn(struct mvx__spin *s, int64_t max, int64_t floor, bool found,
                                   int64_t gap_ns)
{
    int64_t b = s->budget_ns, g = gap_ns < 0 ? 0 : gap_ns;
    if (found) {
        b = b > 4 * g ? b : 4 * g;
    } else if (g <= max) {
        b = 2 * (b > g ? b : g);
    } else {
        s->budget_ns = b / 2 < MVX__SPIN_MIN_NS ? floor : b / 2;
        return;
    }
    s->budget_ns = b < MVX__SPIN_MIN_NS ? MVX__SPIN_MIN_NS : b > max ? max : b;
}

#endif
