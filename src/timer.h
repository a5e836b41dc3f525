/*
 * timer.h - the time driver: one hierarchical timing wheel per worker. Internal. Design and
 * measurements: docs/timers.md.
 *
 * A timer (the caller's 48-byte mvx_timer, struct mvx__timer inside) sits in at most one wheel at
 * a time, linked into one slot's list. Every field of a linked timer, and every field of a wheel,
 * is guarded by that wheel's spin lock: the owning worker takes it uncontended (one exchange and
 * one store per arm or cancel), other threads only when they arm, cancel or free a timer that
 * sits in a wheel not their own, or fire a wheel whose owner is stuck in a long poll.
 *
 *   home = wheel | LINKED | NOREF       (written only by the timer's user, under the wheel's
 *                                        lock when LINKED changes; the firer clears LINKED)
 *
 *          arm (deadline in the future)
 *   UNLINKED --------------------------> LINKED --- fire: waker moved out and woken ---+
 *      ^  ^                                 |                                          |
 *      |  +------- cancel (returns 1) ------+                                          |
 *      +-------------------------------------------------------------------------------+
 *
 * Cancel and fire both happen under the wheel's lock, so exactly one of them wins: cancel
 * returns 1 and the waker is never woken, or cancel returns 0 and the waker is woken once.
 */
#ifndef MVX_TIMER_H
#define MVX_TIMER_H

#include "common.h"

#define MVX__TIMER_CHECK_NS  10000 /* a busy worker's looks for due timers, at most apart */
#define MVX__TIMER_CHECK_MAX 16    /* polls between them at most */

#define MVX__WHEEL_LEVELS   7
#define MVX__WHEEL_L0_SLOTS 2048 /* level 0: one tick each, a ring over two blocks */
#define MVX__WHEEL_SLOTS    64   /* each level above */
#define MVX__WHEEL_ALL_SLOTS (MVX__WHEEL_L0_SLOTS + MVX__WHEEL_SLOTS * (MVX__WHEEL_LEVELS - 1))

struct mvx__timer {
    struct mvx__timer *next;   /* slot list */
    struct mvx__timer **pprev; /* the pointer that points at this timer */
    int64_t deadline;          /* absolute, mvx_now() clock */
    mvx_waker waker;           /* kept after a cancel; moved out by the fire */
    _Atomic uintptr_t home;    /* the wheel, plus the bits below; 0: not initialised */
};
_Static_assert(sizeof(struct mvx__timer) == sizeof(mvx_timer), "mvx_timer is 48 bytes");

#define MVX__TIMER_LINKED ((uintptr_t)1) /* in home's slot lists */
#define MVX__TIMER_NOREF  ((uintptr_t)2) /* holds no runtime reference (a sleep task's timer) */
#define MVX__TIMER_BITS   ((uintptr_t)3)

struct mvx_runtime;
struct mvx__worker;

struct mvx__wheel {
    _Atomic uint32_t lock;
    uint32_t count;          /* linked timers */
    bool processing;         /* a thread is firing it (and may have let go of the lock) */
    uint64_t elapsed;        /* ticks: the start of the slot processed last */
    struct mvx__worker *owner;
    /* The busy look within the current tick (timer.c, fire_near; the owner's, or a peer's that
     * covers it): the tick whose level-0 slot was last walked, and the earliest deadline in that
     * slot since (INT64_MAX: none; only ever too early). Written under the lock; read without
     * it to skip the walk. */
    _Atomic uint64_t near_tick;
    _Atomic int64_t near_min;
    /* Nanoseconds at which the wheel next needs processing (INT64_MAX: never): its earliest
     * occupied slot is due, or the next block's level-1 slot must be moved down (timer.c,
     * precascade). Read without the lock by the owner's park, the peers covering it and the
     * backlog's lag; only ever too early, never too late. */
    _Atomic int64_t next_fire;
    /* When the owner last looked at the clock for due timers (mvx_now clock; 0: not yet): a
     * busy peer fires a wheel whose awake owner has not looked for MVX__TIMER_CHECK_NS
     * (timer.c, cover_late_peers). Written by the owner only. */
    _Atomic int64_t looked_at;
    /* One bit per slot, slots numbered level by level: level 0's 2,048 first (32 words), then
     * one word per level above. */
    uint64_t occupied[MVX__WHEEL_ALL_SLOTS / 64];
    /* Per occupied slot, the earliest tick inserted since it was last empty: when the slot is
     * due (a cancel leaves it early, never late). A slot of a higher level waits for it rather
     * than its start, so a sleeper wakes once per deadline, not once more per level it
     * cascades through. */
    uint64_t slot_due[MVX__WHEEL_ALL_SLOTS];
    struct mvx__timer *slots[MVX__WHEEL_ALL_SLOTS];
};

/* Sets up a worker's empty wheel. */
void mvx__wheel_init(struct mvx__wheel *wheel, struct mvx__worker *owner);

/* The park path's two calls. mvx__timer_fire_due fires what is due on the worker's wheel (and
 * on a busy peer's whose timers are overdue), waking their tasks onto this worker; true if it
 * woke any. mvx__timer_park_deadline is the instant (mvx__now_ns clock) until which the worker
 * may sleep, INT64_MAX if no timer needs it; read it after publishing SLEEPING. */
bool mvx__timer_fire_due(struct mvx__worker *w);
int64_t mvx__timer_park_deadline(struct mvx__worker *w);

/* Between polls, the run loop's look at the clock: see mvx__timer_check. The countdown lives in
 * the worker (owner-only), not in the wheel, whose line peers read. */
void mvx__timer_check(struct mvx__worker *w);
static inline void mvx__timer_tick(uint32_t *timer_left, struct mvx__worker *w)
{
    if (MVX_UNLIKELY(--*timer_left == 0))
        mvx__timer_check(w);
}

#endif
