/*
 * local.c - local task sets (tasks pinned to one thread) and mvx_block_on.
 *
 * A set's tasks are queued on an MPSC queue that only the owner pops. Any thread can schedule
 * onto it (a wake, an abort, a spawn); a thread other than the owner holds a reference on the set
 * while it does, so the owner cannot free the set under it, then tells the owner: bumps `wake_seq`
 * (the futex the owner sleeps on in run_until) and wakes the host's notify waker.
 *
 * The owner keeps the tasks it has polled at least once, and not yet finished, on a list (links
 * after the task header), so that freeing the set can cancel every task: queued ones are popped
 * and cancelled, idle ones on the list are scheduled with CANCEL first.
 */
#include "local.h"
#include "futex.h"
#include "runtime.h"
#include "spin.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

struct mvx_local_set {
    struct mvx__sched base; /* kind MVX__SCHED_LOCAL */
    struct mvx_runtime *rt;
    const void *owner; /* &tl_identity of the owner thread */
    struct mvx__inject queue;
    _Atomic uint32_t refs;     /* the owner's, schedulers in flight, ls wakers (run_until) */
    _Atomic uint32_t wake_seq; /* bumped by every remote schedule; the owner's futex */
    _Atomic uint32_t owner_sleeping;
    _Atomic uint32_t notified; /* notify already woken since the owner last ran the set */
    _Atomic bool closed;
    mvx_waker notify;
    struct mvx__task *live;           /* owner only: polled, unfinished tasks */
    unsigned driving;                 /* owner only: run_ready frames of this set on its stack */
    struct mvx_local_set *owned_next; /* owner only: the owner thread's list of sets */
};

/* The owner thread's adaptive budget for run_until's spin (spin.h). */
static MVX_TLS struct mvx__spin tl_run_spin = {MVX__WAIT_SPIN_MAX_NS};

static MVX_TLS char tl_identity;
static MVX_TLS struct mvx_local_set *tl_running; /* the set the owner is driving now */
static MVX_TLS struct mvx_local_set *tl_owned;   /* the sets this thread created, not freed */

bool mvx__local_is_owner(const struct mvx__sched *sched)
{
    for (struct mvx_local_set *set = tl_owned; set; set = set->owned_next)
        if (&set->base == sched)
            return true;
    return false;
}

struct mvx_runtime *mvx__local_current_runtime(void)
{
    return tl_running ? tl_running->rt : NULL;
}

static void set_free(struct mvx_local_set *set)
{
    struct mvx_runtime *rt = set->rt;
    mvx_waker_drop(&set->notify);
    free(set);
    mvx__arena_unref(&rt->arena);
}

static void set_unref(struct mvx_local_set *set)
{
    if (atomic_fetch_sub_explicit(&set->refs, 1, mvx__acq_rel) == 1)
        set_free(set);
}

static void signal_owner(struct mvx_local_set *set)
{
    atomic_fetch_add_explicit(&set->wake_seq, 1, mvx__seq_cst);
    if (atomic_load_explicit(&set->owner_sleeping, mvx__seq_cst))
        mvx__futex_wake(&set->wake_seq, 1);
    if (set->notify.vtable && !atomic_exchange_explicit(&set->notified, 1, mvx__acq_rel))
        mvx_waker_wake_by_ref(&set->notify);
}

void mvx__local_schedule(struct mvx_local_set *set, struct mvx__task *t)
{
    if (set->owner == &tl_identity) {
        mvx__inject_push(&set->queue, t);
        if (tl_running != set && set->notify.vtable &&
            !atomic_exchange_explicit(&set->notified, 1, mvx__acq_rel))
            mvx_waker_wake_by_ref(&set->notify);
        return;
    }
    atomic_fetch_add_explicit(&set->refs, 1, mvx__relaxed);
    mvx__inject_push(&set->queue, t);
    signal_owner(set);
    set_unref(set);
}

/* ---- the live list ---- */

static void link_task(struct mvx_local_set *set, struct mvx__task *t)
{
    struct mvx__local_links *l = mvx__task_links(t);
    l->prev = NULL;
    l->next = set->live;
    if (set->live)
        mvx__task_links(set->live)->prev = t;
    set->live = t;
}

void mvx__local_forget(struct mvx__task *t)
{
    struct mvx__local_links *l = mvx__task_links(t);
    if (l->prev == t)
        return; /* never polled, never linked */
    struct mvx_local_set *set = (struct mvx_local_set *)t->sched;
    if (l->prev)
        mvx__task_links(l->prev)->next = l->next;
    else
        set->live = l->next;
    if (l->next)
        mvx__task_links(l->next)->prev = l->prev;
    l->prev = t;
}

/* ---- creating and spawning ---- */

MVX_EXTERN int mvx_local_set_new(mvx_runtime *rt, const mvx_waker *notify, mvx_local_set **out)
{
    if (!rt || !out)
        return mvx__error(MVX_EINVAL, "mvx_local_set_new: rt or out is NULL");
    if (notify && notify->vtable && !mvx__waker_vtable_ok("mvx_local_set_new", notify->vtable))
        return MVX_EINVAL;
    if (atomic_load_explicit(&rt->phase, mvx__acquire) != MVX__PHASE_RUNNING)
        return mvx__error(MVX_ESHUTDOWN, "mvx_local_set_new: the runtime is shut down");
    struct mvx_local_set *set = aligned_alloc(MVX_CACHE_LINE, sizeof *set);
    if (!set)
        return mvx__error(MVX_ENOMEM, "mvx_local_set_new: out of memory");
    memset(set, 0, sizeof *set);
    set->base.kind = MVX__SCHED_LOCAL;
    set->rt = rt;
    set->owner = &tl_identity;
    mvx__inject_init(&set->queue);
    atomic_init(&set->refs, 1);
    if (notify && notify->vtable && mvx_waker_clone(notify, &set->notify) != 0) {
        free(set);
        return mvx__error(MVX_EINVAL, "mvx_local_set_new: notify waker cannot be cloned");
    }
    atomic_fetch_add_explicit(&rt->arena.refs, 1, mvx__relaxed); /* the set keeps rt alive */
    set->owned_next = tl_owned;
    tl_owned = set;
    *out = set;
    return 0;
}

MVX_EXTERN int mvx_local_spawn(mvx_local_set *set, const mvx_task_vtable *vtable, void *state,
                               mvx_join_handle **join)
{
    if (!set)
        return mvx__error(MVX_EINVAL, "mvx_local_spawn: set is NULL");
    if (atomic_load_explicit(&set->closed, mvx__acquire))
        return mvx__error(MVX_ESHUTDOWN, "mvx_local_spawn: the set is freed");
    return mvx__spawn("mvx_local_spawn", set->rt, &set->base, vtable, state, join, MVX__TASK_LOCAL);
}

/* ---- driving ---- */

static int check_owner(const char *fn, mvx_local_set *set)
{
    if (!set)
        return mvx__error(MVX_EINVAL, "%s: set is NULL", fn);
    if (set->owner != &tl_identity)
        return mvx__error(MVX_EPERM, "%s: only the thread that created the set may do this", fn);
    return 0;
}

static int run_ready(struct mvx_local_set *set)
{
    struct mvx_local_set *outer = tl_running;
    tl_running = set;
    set->driving++;
    atomic_store_explicit(&set->notified, 0, mvx__seq_cst);
    int polls = 0;
    struct mvx__task *t;
    while ((t = mvx__inject_pop(&set->queue)) != NULL) {
        if (mvx__task_links(t)->prev == t)
            link_task(set, t);
        mvx__task_run(t);
        if (polls < INT32_MAX)
            polls++;
    }
    set->driving--;
    tl_running = outer;
    return polls;
}

MVX_EXTERN int mvx_local_set_run_until_idle(mvx_local_set *set)
{
    int r = check_owner("mvx_local_set_run_until_idle", set);
    return r ? r : run_ready(set);
}

/* A waker that tells the set's owner to look again: registered on `until` in run_until. */
static void *set_waker_clone(void *data)
{
    atomic_fetch_add_explicit(&((struct mvx_local_set *)data)->refs, 1, mvx__relaxed);
    return data;
}
static void set_waker_wake_by_ref(void *data)
{
    signal_owner(data);
}
static void set_waker_drop(void *data)
{
    set_unref(data);
}
static void set_waker_wake(void *data)
{
    signal_owner(data);
    set_unref(data);
}
static const mvx_waker_vtable set_waker_vt = {
    sizeof(mvx_waker_vtable), set_waker_clone, set_waker_wake,
    set_waker_wake_by_ref,    set_waker_drop,
};

MVX_EXTERN int mvx_local_set_run_until(mvx_local_set *set, mvx_join_handle *until,
                                       int64_t timeout_ns)
{
    int r = check_owner("mvx_local_set_run_until", set);
    if (r)
        return r;
    if (!until)
        return mvx__error(MVX_EINVAL, "mvx_local_set_run_until: until is NULL");
    int64_t deadline = mvx__deadline(timeout_ns);
    bool registered = false;
    for (;;) {
        uint32_t seq = atomic_load_explicit(&set->wake_seq, mvx__seq_cst);
        run_ready(set);
        int outcome = mvx_join_try(until);
        if (outcome != MVX_EAGAIN)
            return outcome;
        struct mvx__task *ut = (struct mvx__task *)until;
        /* A task of another set of this thread runs only when the owner drives that set, which
         * it cannot while it waits here. Pointers compared, the set never dereferenced. */
        if (timeout_ns != 0 && (ut->flags & MVX__TASK_LOCAL) && ut->sched != &set->base &&
            mvx__local_is_owner(ut->sched))
            return mvx__error(MVX_EDEADLK, "mvx_local_set_run_until: the task belongs to another "
                                           "local set of this thread, which cannot run meanwhile");
        if (!(ut->flags & MVX__TASK_LOCAL && ut->sched == &set->base) && !registered) {
            /* Completion of a task elsewhere must wake us. */
            mvx_waker w = {&set_waker_vt, set};
            if (mvx_join_poll(until, &w) != MVX_EAGAIN)
                continue;
            registered = true;
        }
        /* Spin first, as mvx_join_wait does: the awaited task or a wake often comes within
         * microseconds, and a futex sleep plus a cross-core wake-up costs far more; but only
         * while such spins pay (spin.h). */
        int64_t start = mvx__now_ns();
        int64_t spin_until =
            start + mvx__spin_budget(&tl_run_spin, set->rt->spin_ns, MVX__WAIT_SPIN_MAX_NS);
        bool found = false;
        for (unsigned i = 1; spin_until > start; i++) {
            if (atomic_load_explicit(&set->wake_seq, mvx__acquire) != seq ||
                mvx_join_try(until) != MVX_EAGAIN) {
                found = true;
                break;
            }
            if ((i & 63) == 0 && mvx__now_ns() >= (spin_until < deadline ? spin_until : deadline))
                break;
            mvx__cpu_relax();
        }
        atomic_store_explicit(&set->owner_sleeping, 1, mvx__seq_cst);
        bool timed_out = false, slept = false;
        if (!found && !mvx__inject_maybe_nonempty(&set->queue) &&
            mvx_join_try(until) == MVX_EAGAIN) {
            timed_out = !mvx__futex_wait(&set->wake_seq, seq, deadline);
            slept = true;
        }
        atomic_store_explicit(&set->owner_sleeping, 0, mvx__relaxed);
        if (found || (slept && !timed_out))
            mvx__spin_learn(&tl_run_spin, MVX__WAIT_SPIN_MAX_NS, MVX__SPIN_MIN_NS, found,
                            mvx__now_ns() - start);
        if (timed_out) {
            run_ready(set);
            outcome = mvx_join_try(until);
            return outcome == MVX_EAGAIN
                       ? mvx__error(MVX_ETIMEDOUT, "mvx_local_set_run_until: timed out")
                       : outcome;
        }
    }
}

MVX_EXTERN int mvx_local_set_free(mvx_local_set *set)
{
    int r = check_owner("mvx_local_set_free", set);
    if (r)
        return r;
    /* Not only the innermost set: one of the set's tasks may be running further down this
     * thread's stack (it drives another set), and the free would wait for it forever. */
    if (set->driving)
        return mvx__error(MVX_EPERM, "mvx_local_set_free: called while the set runs a task on "
                                     "this thread (from the task, or from a set it drives)");
    atomic_store_explicit(&set->closed, true, mvx__seq_cst);
    for (unsigned barren = 0;;) {
        struct mvx__task *t;
        bool popped = false;
        while ((t = mvx__inject_pop(&set->queue)) != NULL) {
            mvx__task_cancel_popped(t);
            popped = true;
        }
        for (t = set->live; t; t = mvx__task_links(t)->next) {
            /* The live list holds no reference, so take one: at 0 the thread that dropped the
             * last is queueing the task for cancel itself (task.c, resurrect_for_cancel) with
             * plain stores, and a cancel of ours would queue it a second time. */
            if (!mvx__task_try_ref(t))
                continue;
            mvx__task_request_cancel(t); /* idle ones land in our queue */
            mvx__task_ref_dec(t);        /* never the last: a queued task holds the queue's */
        }
        if (!set->live && !mvx__inject_maybe_nonempty(&set->queue))
            break;
        /* A second pass in a row that took nothing: a waker elsewhere is between its CAS and
         * its push (or its exchange and its link), and may be off the CPU: let it run. */
        barren = popped ? 0 : barren + 1;
        if (barren > 1)
            sched_yield();
    }
    for (struct mvx_local_set **p = &tl_owned; *p; p = &(*p)->owned_next)
        if (*p == set) {
            *p = set->owned_next;
            break;
        }
    set_unref(set);
    return 0;
}

/* ---- block_on ---- */

MVX_EXTERN int mvx_block_on(mvx_runtime *rt, const mvx_task_vtable *vtable, void *state,
                            void *output, size_t output_size, mvx_failure *failure)
{
    if (!rt)
        return mvx__error(MVX_EINVAL, "mvx_block_on: rt is NULL");
    if (mvx__on_worker_of(rt))
        return mvx__error(MVX_EDEADLK, "mvx_block_on: called from a worker of rt");
    uint8_t flags = 0;
    int r = mvx__check_vtable("mvx_block_on", vtable, state, &flags);
    if (r)
        return r;
    if (vtable->output_size != output_size || (output_size && !output))
        return mvx__error(MVX_EINVAL, "mvx_block_on: output_size %zu, the vtable says %zu",
                          output_size, vtable->output_size);
    /* Checked here, not by mvx_join_take after the task ran: on MVX_EINVAL nothing runs. */
    if (failure && failure->size < sizeof(mvx_failure))
        return mvx__error(MVX_EINVAL, "mvx_block_on: failure->size %zu is below %zu",
                          failure->size, sizeof(mvx_failure));
    mvx_local_set *set;
    mvx_join_handle *jh;
    if ((r = mvx_local_set_new(rt, NULL, &set)) != 0)
        return r;
    if ((r = mvx_local_spawn(set, vtable, state, &jh)) == 0) {
        r = mvx_local_set_run_until(set, jh, MVX_TIMEOUT_INFINITE);
        if (r == 0 || r == MVX_EFAILED)
            r = mvx_join_take(jh, output, output_size, failure);
        mvx_join_release(jh);
    }
    mvx_local_set_free(set);
    return r;
}
