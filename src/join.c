/*
 * join.c - join handles. A join handle is its task's pointer; it holds one reference and the
 * JOIN bit, and owns the task's outcome once the task has finished (see task.h).
 */
#include "blocking.h"
#include "futex.h"
#include "local.h"
#include "runtime.h"
#include "spin.h"
#include "task.h"
#include "worker.h"

#include <sched.h>
#include <string.h>

/* This thread's adaptive budget for join spins (spin.h); only this thread touches it. */
static MVX_TLS struct mvx__spin tl_join_spin = {MVX__WAIT_SPIN_MAX_NS};

static inline struct mvx__task *task_of(const mvx_join_handle *join)
{
    return (struct mvx__task *)join;
}

static int outcome_of(uint64_t s)
{
    switch (mvx__lifecycle(s)) {
    case MVX__COMPLETE:
        return (s & MVX__FAILED) ? MVX_EFAILED : 0;
    case MVX__CANCELLED:
        return MVX_ECANCELLED;
    default:
        return MVX_EAGAIN;
    }
}

MVX_EXTERN int mvx_join_try(mvx_join_handle *join)
{
    if (!join)
        return mvx__error(MVX_EINVAL, "mvx_join_try: join is NULL");
    return outcome_of(atomic_load_explicit(&task_of(join)->state, mvx__acquire));
}

MVX_EXTERN int mvx_join_is_finished(const mvx_join_handle *join)
{
    return join && mvx__is_terminal(atomic_load_explicit(&task_of(join)->state, mvx__acquire));
}

MVX_EXTERN int mvx_join_abort(mvx_join_handle *join)
{
    if (!join)
        return mvx__error(MVX_EINVAL, "mvx_join_abort: join is NULL");
    struct mvx__task *t = task_of(join);
    if (t->flags & MVX__TASK_BLOCKING)
        mvx__blocking_abort(t);
    else
        mvx__task_request_cancel(t);
    return 0;
}

/* Clears JOIN_WAKER unless the task finished; true when cleared (the slot is ours again). */
static bool take_back_waker_slot(struct mvx__task *t, uint64_t *cur)
{
    do {
        if (mvx__is_terminal(*cur))
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&t->state, cur, *cur & ~MVX__JOIN_WAKER,
                                                    mvx__acq_rel, mvx__acquire));
    return true;
}

MVX_EXTERN int mvx_join_poll(mvx_join_handle *join, const mvx_waker *waker)
{
    if (!join || !waker || !waker->vtable)
        return mvx__error(MVX_EINVAL, "mvx_join_poll: join or waker is NULL");
    if (!mvx__waker_vtable_ok("mvx_join_poll", waker->vtable))
        return MVX_EINVAL; /* before anything changes */
    struct mvx__task *t = task_of(join);
    uint64_t cur = atomic_load_explicit(&t->state, mvx__acquire);
    if (mvx__is_terminal(cur))
        return outcome_of(cur);
    if (cur & MVX__JOIN_WAKER) {
        if (mvx_waker_will_wake(&t->join_waker, waker))
            return MVX_EAGAIN;
        if (!take_back_waker_slot(t, &cur))
            return outcome_of(cur);
        mvx_waker_drop(&t->join_waker);
    }
    if (mvx_waker_clone(waker, &t->join_waker) != 0)
        return MVX_EINVAL;
    do {
        if (mvx__is_terminal(cur)) {
            mvx_waker_drop(&t->join_waker); /* never published: still ours */
            return outcome_of(cur);
        }
    } while (!atomic_compare_exchange_weak_explicit(&t->state, &cur, cur | MVX__JOIN_WAKER,
                                                    mvx__acq_rel, mvx__acquire));
    return MVX_EAGAIN;
}

static bool would_deadlock(struct mvx__task *t)
{
    /* The task may finish, and its local set be freed, at any moment: no dereference. */
    if (t->flags & MVX__TASK_LOCAL)
        return mvx__local_is_owner(t->sched);
    return mvx__on_worker_of((struct mvx_runtime *)t->sched);
}

static int join_sleep(struct mvx__task *t, uint64_t cur, int64_t deadline);

/* Whether a task still waiting in a queue has a worker ready to take it: one awake. When every
 * worker sleeps, or was just claimed by a notifier and is still on its way out of the futex,
 * the task starts no sooner than a wake-up, which takes longer than a join spin. Stops at the
 * first awake worker. */
static bool runtime_has_awake_worker(struct mvx_runtime *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (atomic_load_explicit(&rt->workers[i]->sleep, mvx__relaxed) == MVX__AWAKE)
            return true;
    return false;
}

/* The join spin's budget, per the runtime's setting (spin.h); -1 when the adaptive policy skips
 * the spin because the task cannot start soon (nothing to learn from such a wait). A task of a
 * local set: the set may be freed at any moment (no dereference) and with it the way to the
 * runtime's setting: adaptive. The runtime, its blocking pool and its promise scheduler live as
 * long as our reference. */
static int64_t join_spin_budget(struct mvx__task *t, uint64_t cur)
{
    int64_t setting = MVX_SPIN_ADAPTIVE;
    struct mvx_runtime *rt;
    switch ((t->flags & MVX__TASK_LOCAL) ? MVX__SCHED_LOCAL : t->sched->kind) {
    case MVX__SCHED_RUNTIME:
        rt = (struct mvx_runtime *)t->sched;
        setting = rt->spin_ns;
        if (setting < 0 && mvx__lifecycle(cur) == MVX__SCHEDULED && !runtime_has_awake_worker(rt))
            return -1;
        break;
    case MVX__SCHED_BLOCKING:
        setting = ((struct mvx__blocking *)t->sched)->rt->spin_ns;
        break;
    case MVX__SCHED_PROMISE:
        rt = (struct mvx_runtime *)((char *)t->sched - offsetof(struct mvx_runtime, promise_sched));
        setting = rt->spin_ns;
        break;
    }
    return mvx__spin_budget(&tl_join_spin, setting, MVX__WAIT_SPIN_MAX_NS);
}

MVX_EXTERN int mvx_join_wait(mvx_join_handle *join, int64_t timeout_ns)
{
    if (!join)
        return mvx__error(MVX_EINVAL, "mvx_join_wait: join is NULL");
    struct mvx__task *t = task_of(join);
    uint64_t cur = atomic_load_explicit(&t->state, mvx__acquire);
    if (mvx__is_terminal(cur))
        return outcome_of(cur);
    if (timeout_ns == 0)
        return mvx__error(MVX_ETIMEDOUT, "mvx_join_wait: not finished");
    if (would_deadlock(t))
        return mvx__error(MVX_EDEADLK, "mvx_join_wait: the calling thread is the one that would "
                                       "run the task");
    int64_t deadline = mvx__deadline(timeout_ns);
    /* Spin first: the task is often done within a few microseconds, and a futex sleep plus a
     * cross-core wake-up costs far more. But only while such spins pay (spin.h), and not when
     * the task cannot start soon. */
    int64_t start = mvx__now_ns();
    int64_t budget = join_spin_budget(t, cur);
    int64_t spin_until = start + budget;
    if (spin_until > deadline)
        spin_until = deadline;
    for (unsigned i = 1; budget > 0; i++) {
        cur = atomic_load_explicit(&t->state, mvx__acquire);
        if (mvx__is_terminal(cur)) {
            mvx__spin_learn(&tl_join_spin, MVX__WAIT_SPIN_MAX_NS, MVX__SPIN_MIN_NS, true,
                            mvx__now_ns() - start);
            return outcome_of(cur);
        }
        if ((i & 63) == 0 && mvx__now_ns() >= spin_until)
            break;
        mvx__cpu_relax();
    }
    int r = join_sleep(t, cur, deadline);
    if (r != MVX_ETIMEDOUT && budget >= 0)
        mvx__spin_learn(&tl_join_spin, MVX__WAIT_SPIN_MAX_NS, MVX__SPIN_MIN_NS, false,
                        mvx__now_ns() - start);
    return r == MVX_ETIMEDOUT ? mvx__error(MVX_ETIMEDOUT, "mvx_join_wait: timed out") : r;
}

/* Sleeps until t finishes or the deadline passes: its outcome, or MVX_ETIMEDOUT (unreported). */
static int join_sleep(struct mvx__task *t, uint64_t cur, int64_t deadline)
{
    /* Sleep on the futex of the state word's low half; JOIN_BLOCKED asks the completer to wake
     * it (and to keep its reference until it has). */
    do {
        if (mvx__is_terminal(cur))
            return outcome_of(cur);
    } while (!atomic_compare_exchange_weak_explicit(&t->state, &cur, cur | MVX__JOIN_BLOCKED,
                                                    mvx__acq_rel, mvx__acquire));
    for (;;) {
        cur = atomic_load_explicit(&t->state, mvx__acquire);
        if (mvx__is_terminal(cur))
            return outcome_of(cur);
        if (!mvx__futex_wait(mvx__task_futex(t), (uint32_t)cur, deadline))
            break;
    }
    cur = atomic_load_explicit(&t->state, mvx__acquire);
    do {
        if (mvx__is_terminal(cur))
            return outcome_of(cur);
    } while (!atomic_compare_exchange_weak_explicit(&t->state, &cur, cur & ~MVX__JOIN_BLOCKED,
                                                    mvx__acq_rel, mvx__acquire));
    return MVX_ETIMEDOUT;
}

MVX_EXTERN int mvx_join_take(mvx_join_handle *join, void *output, size_t output_size,
                             mvx_failure *failure)
{
    if (!join)
        return mvx__error(MVX_EINVAL, "mvx_join_take: join is NULL");
    struct mvx__task *t = task_of(join);
    uint64_t s = atomic_load_explicit(&t->state, mvx__acquire);
    int outcome = outcome_of(s);
    if (outcome == MVX_EAGAIN || outcome == MVX_ECANCELLED)
        return outcome;
    if (t->taken)
        return mvx__error(MVX_ETAKEN, "mvx_join_take: the outcome was already taken");
    if (outcome == MVX_EFAILED) {
        if (!failure)
            return MVX_EFAILED;
        if (failure->size < sizeof(mvx_failure))
            return mvx__error(MVX_EINVAL, "mvx_join_take: failure->size %zu is below %zu",
                              failure->size, sizeof(mvx_failure));
        mvx__failure_move(t, failure);
        t->taken = 1;
        return MVX_EFAILED;
    }
    if (output_size != t->vt->output_size || (output_size && !output))
        return mvx__error(MVX_EINVAL, "mvx_join_take: output_size %zu, the task's is %zu",
                          output_size, t->vt->output_size);
    if (output_size)
        memcpy(output, mvx__task_output(t), output_size);
    t->taken = 1;
    return 0;
}

MVX_EXTERN size_t mvx_join_output_size(const mvx_join_handle *join)
{
    return join ? task_of(join)->vt->output_size : 0;
}

MVX_EXTERN void mvx_join_release(mvx_join_handle *join)
{
    if (!join)
        return;
    struct mvx__task *t = task_of(join);
    uint64_t cur = atomic_load_explicit(&t->state, mvx__acquire);
    /* Take our waker back so that it is dropped now, not woken for nothing later. */
    if ((cur & MVX__JOIN_WAKER) && take_back_waker_slot(t, &cur))
        mvx_waker_drop(&t->join_waker);
    for (;;) {
        if (mvx__is_terminal(cur)) {
            /* The outcome is ours: drop it before giving up our reference. */
            if (mvx__lifecycle(cur) == MVX__COMPLETE && !t->taken)
                mvx__task_drop_outcome(t, cur);
            mvx__task_ref_dec_flags(t, MVX__JOIN);
            return;
        }
        uint64_t next;
        if (mvx__refs(cur) > 1) {
            next = cur - MVX__JOIN - MVX__REF_ONE;
        } else {
            /* Ours is the last reference to an idle task: nothing can wake it any more. Hand
             * our reference to a cancelling schedule, holding a second one meanwhile. */
            next = ((cur & ~(MVX__JOIN | MVX__LIFECYCLE)) | MVX__SCHEDULED | MVX__CANCEL) +
                   MVX__REF_ONE;
        }
        if (atomic_compare_exchange_weak_explicit(&t->state, &cur, next, mvx__acq_rel,
                                                  mvx__acquire)) {
            if (mvx__refs(cur) == 1) {
                mvx__schedule(t, false);
                mvx__task_ref_dec(t);
            }
            return;
        }
    }
}
