/*
 * worker.h - a worker thread and its run loop. Internal.
 */
#ifndef MVX_WORKER_H
#define MVX_WORKER_H

#include "deque.h"
#include "runtime.h"
#include "spin.h"
#include "timer.h"

/* Worker sleep word, also its futex. */
enum { MVX__AWAKE = 0, MVX__SLEEPING = 1, MVX__WOKEN = 2 };

struct mvx__worker {
    /* Owner-only, hot. */
    struct mvx_runtime *rt;
    struct mvx__heap *heap;
    /* The next task to run: the latest spawned or woken here. Written only by the owner;
     * shutdown takes it from a worker stuck in a long poll, hence atomic (worker.c). */
    struct mvx__task *_Atomic lifo;
    uint32_t global_left; /* polls left until the global queue is looked at first */
    /* Polls left until the run loop next reads the clock for due timers, the polls it waits each
     * time, the short gaps in a row it saw, and when it last read it (mvx__timer_check). */
    uint32_t timer_left, timer_every, timer_short_gaps;
    int64_t timer_checked_at;
    uint32_t rng;
    unsigned index;
    bool searching;
    /* Counters: written by the owner with plain stores, read by mvx_runtime_worker_stats. */
    _Atomic uint64_t polls, local_spawns, remote_tasks, steals, stolen_tasks, parks;
    _Atomic uint64_t spins, spins_found;
    /* Lifecycle, under rt->shutdown_lock except `exited`. */
    pthread_t thread;
    bool started, joined;
    _Atomic bool exited;
    /* Idle path only (idle.c): when visible work started eluding this worker (0: it does not),
     * and its poll count then; a poll since ends the streak. */
    int64_t futile_since;
    uint64_t futile_polls;
    /* The deadline at which its own timers last ended its sleep (0: never): timer.c coalesces the
     * sleeps of a worker that they wake often (mvx__timer_park_deadline). */
    int64_t timer_woke_at;
    struct mvx__spin spin; /* the adaptive spin budget (spin.h) */
    /* While a substitute thread runs this worker for a thread inside mvx_block_in_place: the
     * handoff word it must watch (inplace.c); idle_sleep does not sleep once it says RECLAIM. */
    _Atomic(_Atomic uint32_t *) role;
    struct mvx__task *running; /* the task run() is polling (owner only) */
    _Alignas(MVX_CACHE_LINE) _Atomic uint32_t sleep;
    /* Where and when it last went to sleep, written before it publishes SLEEPING: hints for a
     * notifier choosing whom to wake (idle.c), so relaxed, and a stale value only costs that
     * wake its placement. */
    _Atomic int park_cpu;
    _Atomic int64_t parked_at;
    /* When a notifier claimed this sleeper (its clock), written before the claim: how long
     * after the worker went idle its work came, so that it learns whether to spin. */
    _Atomic int64_t woken_at;
    struct mvx__deque deque;
    /* The time driver's wheel of this worker (timer.h). */
    _Alignas(MVX_CACHE_LINE) struct mvx__wheel wheel;
};

extern MVX_TLS struct mvx__worker *mvx__tl_worker;

void *mvx__worker_main(void *arg);
/* Owner: pushes t on the back of its queue (overflow goes to the global queue). */
void mvx__worker_push_back(struct mvx__worker *w, struct mvx__task *t);
/* Owner: a task spawned or woken on this worker; see mvx__runtime_schedule. */
void mvx__worker_schedule(struct mvx__worker *w, struct mvx__task *t, bool yield);
/* task.c, right before t's completion is published: see worker.c. */
void mvx__worker_completing(struct mvx__task *t);
/* Any thread (shutdown): empties w's LIFO slot; the caller now holds the popped task. */
struct mvx__task *mvx__worker_take_lifo(struct mvx__worker *w);
/* Runs w's loop on the calling thread, which takes over w from a thread blocked in
 * mvx_block_in_place, until *role is no longer MVX__ROLE_ADOPTED or the runtime shuts down. */
void mvx__worker_substitute(struct mvx__worker *w, _Atomic uint32_t *role);

/* The handoff word of mvx_block_in_place (inplace.c). */
enum { MVX__ROLE_OFFERED = 0, MVX__ROLE_ADOPTED = 1, MVX__ROLE_RECLAIM = 2, MVX__ROLE_RETURNED = 3 };

/* A substitute whose blocked thread wants w back: it must stop running tasks and not sleep.
 * One relaxed load of a NULL pointer for every other worker. */
static inline bool mvx__worker_reclaimed(struct mvx__worker *w)
{
    _Atomic uint32_t *role = atomic_load_explicit(&w->role, mvx__relaxed);
    return role && atomic_load_explicit(role, mvx__seq_cst) != MVX__ROLE_ADOPTED;
}

static inline void mvx__stat_inc(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, mvx__relaxed) + 1, mvx__relaxed);
}
static inline void mvx__stat_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, mvx__relaxed) + n, mvx__relaxed);
}

/* ---- idle.c: which workers are awake, searching or asleep ---- */

/* Becomes a searcher unless half the awake workers already search. */
bool mvx__idle_try_search(struct mvx_runtime *rt);
/* Stops searching (found work); true if it was the last searcher. */
bool mvx__idle_leave_search(struct mvx_runtime *rt);
/* Sleeps until notified or shut down, unless work shows up while committing to sleep. The
 * worker comes back counted as awake and searching. */
void mvx__idle_sleep(struct mvx__worker *w);
/* After new work was queued: wakes one sleeping worker if no worker is searching. Lock-free;
 * usually one load. */
void mvx__idle_notify(struct mvx_runtime *rt);
/* Shutdown: wakes every worker. */
void mvx__idle_wake_all(struct mvx_runtime *rt);
/* Wakes w if it sleeps (counted as a notify would), so that it sees a new, earlier deadline or
 * (a substitute, inplace.c) that its blocked thread wants it back. */
void mvx__idle_wake_worker(struct mvx__worker *w);
/* Whether there is work somewhere a worker could take (global queue, another worker's queue). */
bool mvx__idle_work_visible(struct mvx__worker *w);

#endif
