/*
 * join.c - join handles. A join handle is its task's pointer; it holds one reference and the
 * JOIN bit, and owns the task's outcome once the task has finished (see task.h).
 */
#include "blocking.h"
#include "futex.h"
#include "local.h"
#include "runtime.h"
#include "task.h"

#include <sched.h>
#include <string.h>

#ifndef JOIN_SPIN_NS
#define JOIN_SPIN_NS 20000
#endif

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
     * cross-core wake-up costs far more. */
    int64_t spin_until = mvx__now_ns() + JOIN_SPIN_NS;
    if (spin_until > deadline)
        spin_until = deadline;
    for (unsigned i = 1;; i++) {
        cur = atomic_load_explicit(&t->state, mvx__acquire);
        if (mvx__is_terminal(cur))
            return outcome_of(cur);
        if ((i & 63) == 0 && mvx__now_ns() >= spin_until)
            break;
        mvx__cpu_relax();
    }
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
    return mvx__error(MVX_ETIMEDOUT, "mvx_join_wait: timed out");
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
