/*
 * runtime.c - creating, using and shutting down a runtime; spawning onto it.
 */
#include "runtime.h"
#include "local.h"
#include "signature.h"
#include "threadsched.h"
#include "worker.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_WORKERS           1024
#define DEFAULT_MAX_BLOCKING  512
#define DEFAULT_KEEP_ALIVE_NS ((int64_t)10 * 1000000000)
#define DEFAULT_GLOBAL_INTERVAL 31
#define DEFAULT_SPAWN_BACKLOG_NS ((int64_t)500000)

/* The first release's config ends at hook_data; later fields are optional in `size`. */
#define CONFIG_MIN_SIZE (offsetof(mvx_runtime_config, hook_data) + sizeof(void *))
/* The first release's stats end at parks; the spin counters are optional in `size`. */
#define STATS_MIN_SIZE (offsetof(mvx_worker_stats, parks) + sizeof(uint64_t))

MVX_EXTERN int mvx_runtime_config_init(mvx_runtime_config *config, size_t config_size)
{
    if (!config)
        return mvx__error(MVX_EINVAL, "mvx_runtime_config_init: config is NULL");
    if (config_size < CONFIG_MIN_SIZE)
        return mvx__error(MVX_EINVAL, "mvx_runtime_config_init: config_size %zu is below %zu",
                          config_size, CONFIG_MIN_SIZE);
    size_t n = config_size < sizeof *config ? config_size : sizeof *config;
    memset(config, 0, n); /* every default is 0 but spin_ns's */
    config->size = n;
    if (n >= offsetof(mvx_runtime_config, spin_ns) + sizeof config->spin_ns)
        config->spin_ns = MVX_SPIN_ADAPTIVE;
    return 0;
}

bool mvx__on_worker_of(const struct mvx_runtime *rt)
{
    return mvx__tl_worker && mvx__tl_worker->rt == rt;
}

/* ---- destruction ---- */

static void runtime_free(struct mvx_runtime *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++)
        free(rt->workers[i]);
    free(rt->workers);
    mvx__arena_fini(&rt->arena);
    mvx__blocking_fini(&rt->blocking);
    pthread_mutex_destroy(&rt->shutdown_lock);
    free(rt);
}

/* The arena's last reference is gone: no task, handle, waker or worker refers to rt. */
static void runtime_destroy(struct mvx__arena *arena)
{
    runtime_free((struct mvx_runtime *)((char *)arena - offsetof(struct mvx_runtime, arena)));
}

/* ---- creation ---- */

static int start_workers(struct mvx_runtime *rt)
{
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return mvx__error(MVX_ESYSTEM, "mvx_runtime_new: pthread_attr_init failed");
    int r = 0;
    if (rt->stack_size && pthread_attr_setstacksize(&attr, rt->stack_size) != 0)
        r = mvx__error(MVX_EINVAL, "mvx_runtime_new: stack_size %zu rejected", rt->stack_size);
    for (unsigned i = 0; r == 0 && i < rt->nworkers; i++) {
        struct mvx__worker *w = rt->workers[i];
        if (pthread_create(&w->thread, &attr, mvx__worker_main, w) != 0)
            r = mvx__error(MVX_ESYSTEM, "mvx_runtime_new: could not start worker %u", i);
        else
            w->started = true;
    }
    pthread_attr_destroy(&attr);
    return r;
}

MVX_EXTERN int mvx_runtime_new(const mvx_runtime_config *config, mvx_runtime **out)
{
    if (!out)
        return mvx__error(MVX_EINVAL, "mvx_runtime_new: out is NULL");
    *out = NULL;
    mvx_runtime_config c;
    mvx_runtime_config_init(&c, sizeof c);
    if (config) {
        if (config->size < CONFIG_MIN_SIZE)
            return mvx__error(MVX_EINVAL, "mvx_runtime_new: config->size %zu is below %zu",
                              config->size, CONFIG_MIN_SIZE);
        memcpy(&c, config, config->size < sizeof c ? config->size : sizeof c);
    }
    if (c.worker_threads > MAX_WORKERS)
        return mvx__error(MVX_EINVAL, "mvx_runtime_new: %u worker threads is above the limit %d",
                          c.worker_threads, MAX_WORKERS);
    if (c.blocking_flags & ~MVX_BLOCKING_INHERIT_SCHED)
        return mvx__error(MVX_EINVAL, "mvx_runtime_new: blocking_flags 0x%llx has unknown bits",
                          (unsigned long long)c.blocking_flags);
    if (c.worker_slice_ns > 0 &&
        (c.worker_slice_ns < MVX__SLICE_MIN_NS || c.worker_slice_ns > MVX__SLICE_MAX_NS))
        return mvx__error(MVX_EINVAL,
                          "mvx_runtime_new: worker_slice_ns %lld is outside 100 us to 100 ms",
                          (long long)c.worker_slice_ns);
    if (c.stack_size && c.stack_size < (size_t)PTHREAD_STACK_MIN)
        return mvx__error(MVX_EINVAL, "mvx_runtime_new: stack_size %zu is below %zu", c.stack_size,
                          (size_t)PTHREAD_STACK_MIN);
    unsigned n = c.worker_threads ? c.worker_threads : mvx__available_cpus();

    struct mvx_runtime *rt = aligned_alloc(MVX_CACHE_LINE, sizeof *rt);
    if (!rt)
        return mvx__error(MVX_ENOMEM, "mvx_runtime_new: out of memory");
    memset(rt, 0, sizeof *rt);
    rt->base.kind = MVX__SCHED_RUNTIME;
    rt->promise_sched.kind = MVX__SCHED_PROMISE;
    rt->nworkers = n;
    atomic_init(&rt->phase, MVX__PHASE_RUNNING);
    atomic_init(&rt->idle, (uint32_t)n << 16);
    mvx__inject_init(&rt->inject);
    snprintf(rt->thread_name, sizeof rt->thread_name, "%s",
             c.thread_name ? c.thread_name : "mvx-worker");
    rt->stack_size = c.stack_size;
    rt->on_thread_start = c.on_thread_start;
    rt->on_thread_stop = c.on_thread_stop;
    rt->hook_data = c.hook_data;
    rt->global_interval = c.global_queue_interval ? c.global_queue_interval
                                                  : DEFAULT_GLOBAL_INTERVAL;
    rt->lifo_disabled = c.disable_lifo_slot != 0;
    rt->spin_ns = c.spin_ns < 0 ? MVX_SPIN_ADAPTIVE : c.spin_ns;
    rt->worker_slice_ns = c.worker_slice_ns ? c.worker_slice_ns : MVX__WORKER_SLICE_DEFAULT_NS;
    mvx__backlog_init(&rt->backlog, c.spawn_backlog_ns < 0    ? 0
                                    : c.spawn_backlog_ns == 0 ? DEFAULT_SPAWN_BACKLOG_NS
                                                              : c.spawn_backlog_ns);
    if (pthread_mutex_init(&rt->shutdown_lock, NULL) != 0) {
        free(rt);
        return mvx__error(MVX_ESYSTEM, "mvx_runtime_new: pthread_mutex_init failed");
    }
    if (mvx__blocking_init(&rt->blocking, rt,
                           c.max_blocking_threads ? c.max_blocking_threads : DEFAULT_MAX_BLOCKING,
                           c.blocking_keep_alive_ns ? c.blocking_keep_alive_ns
                                                    : DEFAULT_KEEP_ALIVE_NS,
                           !(c.blocking_flags & MVX_BLOCKING_INHERIT_SCHED)) != 0) {
        pthread_mutex_destroy(&rt->shutdown_lock);
        free(rt);
        return mvx__error(MVX_ESYSTEM, "mvx_runtime_new: pthread_cond_init failed");
    }
    /* References: the caller's, and one per worker until it exits. */
    if (mvx__arena_init(&rt->arena, 1 + (int64_t)n, runtime_destroy) != 0) {
        mvx__blocking_fini(&rt->blocking);
        pthread_mutex_destroy(&rt->shutdown_lock);
        free(rt);
        return mvx__error(MVX_ESYSTEM, "mvx_runtime_new: pthread_mutex_init failed");
    }
    rt->workers = calloc(n, sizeof *rt->workers);
    bool ok = rt->workers != NULL;
    for (unsigned i = 0; ok && i < n; i++) {
        struct mvx__worker *w = aligned_alloc(MVX_CACHE_LINE, sizeof *w);
        if (!w) {
            ok = false;
            break;
        }
        memset(w, 0, sizeof *w);
        rt->workers[i] = w;
        w->rt = rt;
        w->index = i;
        w->rng = 0x9e3779b9u * (i + 1);
        mvx__deque_init(&w->deque);
        mvx__wheel_init(&w->wheel, w);
        w->timer_left = w->timer_every = MVX__TIMER_CHECK_MAX; /* before any thread runs w */
        atomic_init(&w->sleep, MVX__AWAKE);
        w->spin.budget_ns = MVX__SPIN_MAX_NS;
        if (!(w->heap = mvx__heap_new(&rt->arena)))
            ok = false;
        else
            w->heap->worker_owned = true;
    }
    if (!ok) {
        if (!rt->workers)
            rt->nworkers = 0;
        runtime_free(rt);
        return mvx__error(MVX_ENOMEM, "mvx_runtime_new: out of memory");
    }
    int r = start_workers(rt);
    if (r != 0) {
        atomic_store(&rt->phase, MVX__PHASE_SHUTDOWN);
        mvx__idle_wake_all(rt);
        for (unsigned i = 0; i < n; i++)
            if (rt->workers[i]->started)
                pthread_join(rt->workers[i]->thread, NULL);
        runtime_free(rt);
        return r;
    }
    *out = rt;
    return 0;
}

/* ---- scheduling ---- */

static MVX_TLS struct mvx_runtime *tl_draining;

void mvx__runtime_drain_inject(struct mvx_runtime *rt)
{
    if (tl_draining == rt)
        return; /* a cancel callback of our own drain: the loop below picks its push up */
    struct mvx_runtime *outer = tl_draining;
    tl_draining = rt;
    struct mvx__inject *q = &rt->inject;
    do {
        while (atomic_exchange_explicit(&q->consumer, 1, mvx__seq_cst) != 0)
            mvx__cpu_relax(); /* a worker is taking a batch: it holds the lock only briefly */
        for (;;) {
            struct mvx__task *t = mvx__inject_pop(q);
            if (t)
                mvx__task_cancel_popped(t);
            else if (mvx__inject_maybe_nonempty(q))
                mvx__cpu_relax(); /* a producer is between its exchange and its link */
            else
                break;
        }
        atomic_store_explicit(&q->consumer, 0, mvx__seq_cst);
    } while (mvx__inject_maybe_nonempty(q));
    tl_draining = outer;
}

void mvx__runtime_schedule(struct mvx_runtime *rt, struct mvx__task *t, bool yield)
{
    struct mvx__worker *w = mvx__tl_worker;
    if (w && w->rt == rt) {
        mvx__worker_schedule(w, t, yield);
        return;
    }
    mvx__runtime_push_global(rt, t);
}

bool mvx__runtime_push_global(struct mvx_runtime *rt, struct mvx__task *t)
{
    bool marked = mvx__global_push(rt, t, t, 1);
    if (MVX_UNLIKELY(atomic_load_explicit(&rt->phase, mvx__seq_cst) != MVX__PHASE_RUNNING)) {
        mvx__runtime_drain_inject(rt); /* shutdown may have drained the queue already */
        return false;
    }
    mvx__idle_notify(rt);
    return marked;
}

/* The plan depends on the vtable's size, layout fields and signatures; the callbacks themselves
 * are read from the vtable at each call (poll must stay non-NULL). */
static inline bool plan_matches(const struct mvx__spawn_plan *plan, const mvx_task_vtable *vt,
                                uint8_t flags)
{
    const mvx_task_vtable *c = &plan->copy;
    if (plan->vt != vt || plan->flags_in != flags || c->size != vt->size ||
        c->state_size != vt->state_size || c->output_size != vt->output_size ||
        c->state_align != vt->state_align || c->output_align != vt->output_align || !vt->poll)
        return false;
    if (vt->size < offsetof(mvx_task_vtable, drop_signature) + sizeof(void *))
        return true; /* the optional fields are beyond this vtable */
    return c->poll_signature == vt->poll_signature && c->drop_signature == vt->drop_signature;
}

static inline struct mvx__spawn_plan *find_plan(struct mvx__heap *heap, const mvx_task_vtable *vt,
                                                uint8_t flags)
{
    for (int i = 0; i < 4; i++)
        if (plan_matches(&heap->plans[i], vt, flags))
            return &heap->plans[i];
    return NULL;
}

/* Validates vt and computes its layout into *plan. */
static MVX_NOINLINE int plan_spawn(const char *fn, struct mvx__spawn_plan *plan,
                                   const mvx_task_vtable *vt, void *state, uint8_t flags)
{
    uint8_t flags_in = flags;
    struct mvx__task_layout layout;
    int r = mvx__check_vtable(fn, vt, state, &flags);
    if (r || (r = mvx__task_layout(fn, vt, flags & MVX__TASK_LOCAL, &layout)))
        return r;
    plan->vt = NULL; /* not valid until complete */
    memset(&plan->copy, 0, sizeof plan->copy);
    memcpy(&plan->copy, vt, vt->size < sizeof plan->copy ? vt->size : sizeof plan->copy);
    plan->flags_in = flags_in;
    plan->flags = flags;
    plan->cls = mvx__size_class(layout.size);
    plan->state_off = layout.state_off;
    plan->output_off = layout.output_off;
    plan->vt = vt;
    return 0;
}

int mvx__spawn(const char *fn, struct mvx_runtime *rt, struct mvx__sched *where,
               const mvx_task_vtable *vt, void *state, mvx_join_handle **join, uint8_t flags)
{
    if (!rt)
        return mvx__error(MVX_EINVAL, "%s: rt is NULL", fn);
    struct mvx__worker *w = mvx__tl_worker;
    bool on_worker = w && w->rt == rt;
    struct mvx__heap *heap = on_worker ? w->heap : mvx__arena_thread_heap(&rt->arena);
    struct mvx__spawn_plan fallback, *plan = vt && heap ? find_plan(heap, vt, flags) : NULL;
    if (!plan) {
        plan = heap ? &heap->plans[heap->next_plan++ % 4] : &fallback;
        int r = plan_spawn(fn, plan, vt, state, flags);
        if (r)
            return r;
    } else if (vt->state_size > 0 && !state) {
        return mvx__error(MVX_EINVAL, "%s: state is NULL but vtable->state_size is %zu", fn,
                          vt->state_size);
    }
    if (atomic_load_explicit(&rt->phase, mvx__relaxed) != MVX__PHASE_RUNNING)
        return mvx__error(MVX_ESHUTDOWN, "%s: the runtime is shut down", fn);
    struct mvx__task *t = heap ? mvx__heap_alloc(heap, plan->cls) : NULL;
    if (!t)
        return mvx__error(MVX_ENOMEM, "%s: out of memory", fn);
    flags = plan->flags;
    struct mvx__task_layout layout = {0, plan->output_off, plan->state_off};
    if (flags & MVX__TASK_LOCAL) {
        mvx__task_links(t)->prev = t; /* not on the owner's list until its first poll */
        mvx__task_links(t)->next = NULL;
    }
    if (where->kind == MVX__SCHED_BLOCKING)
        return mvx__blocking_submit(fn, &rt->blocking, t, vt, state, &layout, flags, join);
    mvx__task_init(t, vt, state, &layout, where, flags, join != NULL);
    if (join)
        *join = (mvx_join_handle *)t;
    if (where->kind == MVX__SCHED_LOCAL) {
        mvx__local_schedule((struct mvx_local_set *)where, t);
    } else if (on_worker) {
        mvx__stat_inc(&w->local_spawns);
        mvx__worker_schedule(w, t, false);
    } else if (mvx__runtime_push_global(rt, t)) {
        mvx__backlog_wait(rt); /* the task is queued: waiting changes nothing but the pace */
    }
    return 0;
}

MVX_EXTERN int mvx_spawn(mvx_runtime *rt, const mvx_task_vtable *vtable, void *state,
                         mvx_join_handle **join)
{
    /* The common case, a task spawning a task of a type it spawned before, straight through;
     * everything else (and every error) takes the general path. */
    struct mvx__worker *w = mvx__tl_worker;
    if (MVX_LIKELY(w && w->rt == rt && vtable)) {
        struct mvx__spawn_plan *plan = find_plan(w->heap, vtable, 0);
        if (plan && (state || !vtable->state_size) &&
            atomic_load_explicit(&rt->phase, mvx__relaxed) == MVX__PHASE_RUNNING) {
            struct mvx__task *t = mvx__heap_alloc(w->heap, plan->cls);
            if (MVX_LIKELY(t != NULL)) {
                struct mvx__task_layout layout = {0, plan->output_off, plan->state_off};
                mvx__task_init(t, vtable, state, &layout, &rt->base, plan->flags, join != NULL);
                if (join)
                    *join = (mvx_join_handle *)t;
                mvx__stat_inc(&w->local_spawns);
                mvx__worker_schedule(w, t, false);
                return 0;
            }
        }
    }
    return mvx__spawn("mvx_spawn", rt, rt ? &rt->base : NULL, vtable, state, join, 0);
}

/* ---- shutdown ---- */

/* A worker or blocking-pool thread of rt: shutting down from it would wait for itself. */
static bool runs_tasks_of(const struct mvx_runtime *rt)
{
    return mvx__on_worker_of(rt) || mvx__tl_blocking_rt == rt;
}

struct sweep {
    struct mvx_runtime *rt;
    int64_t remaining;
};

static void sweep_visit(struct mvx__task *t, void *arg)
{
    struct sweep *sw = arg;
    if (!mvx__task_try_ref(t))
        return; /* free, or being freed */
    /* Compare, never dereference, t->sched: a finished local task may outlive its set. */
    if (t->sched == &sw->rt->blocking.base) {
        /* The pool cancels its queued jobs itself; running ones may finish with their output. */
        mvx__task_ref_dec(t);
        return;
    }
    if (!mvx__is_terminal(atomic_load_explicit(&t->state, mvx__acquire))) {
        /* An idle task is scheduled, and so cancelled now (the global queue drains itself
         * during shutdown); a queued one is left to whoever pops it; a running one is cancelled
         * when its poll returns. Local sets' tasks are their owners' business. */
        mvx__task_request_cancel(t);
        if (t->sched == &sw->rt->base &&
            !mvx__is_terminal(atomic_load_explicit(&t->state, mvx__acquire)))
            sw->remaining++;
    }
    mvx__task_ref_dec(t);
}

/* Takes queued tasks, and the LIFO slot's, from workers that may be stuck in a long poll, and
 * cancels them. */
static void steal_from_workers(struct mvx_runtime *rt)
{
    struct mvx__task *buf[MVX__DEQUE_CAP / 2];
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct mvx__task *t = mvx__worker_take_lifo(rt->workers[i]);
        if (t)
            mvx__task_cancel_popped(t);
        unsigned k;
        while ((k = mvx__deque_steal(&rt->workers[i]->deque, buf, MVX__DEQUE_CAP / 2)) != 0)
            for (unsigned j = 0; j < k; j++)
                mvx__task_cancel_popped(buf[j]);
    }
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {ns / 1000000000, ns % 1000000000};
    nanosleep(&ts, NULL);
}

MVX_EXTERN int mvx_runtime_shutdown(mvx_runtime *rt, int64_t timeout_ns)
{
    if (!rt)
        return mvx__error(MVX_EINVAL, "mvx_runtime_shutdown: rt is NULL");
    if (runs_tasks_of(rt))
        return mvx__error(MVX_EDEADLK, "mvx_runtime_shutdown: called from a thread of rt");
    int64_t deadline = mvx__deadline(timeout_ns);
    pthread_mutex_lock(&rt->shutdown_lock);
    rt->shutdown_called = true;
    if (atomic_exchange_explicit(&rt->phase, MVX__PHASE_SHUTDOWN, mvx__seq_cst) ==
        MVX__PHASE_RUNNING) {
        mvx__idle_wake_all(rt);
        mvx__blocking_close(&rt->blocking);
    }
    struct sweep sw = {rt, 0};
    for (int64_t pause = 10000;; pause = pause < 1000000 ? 2 * pause : pause) {
        mvx__runtime_drain_inject(rt);
        steal_from_workers(rt);
        sw.remaining = 0;
        mvx__arena_walk(&rt->arena, sweep_visit, &sw);
        bool all_exited = true;
        for (unsigned i = 0; i < rt->nworkers; i++)
            if (!atomic_load_explicit(&rt->workers[i]->exited, mvx__acquire))
                all_exited = false;
        int64_t now = mvx__now_ns();
        if ((sw.remaining == 0 && all_exited) || now >= deadline)
            break;
        sleep_ns(deadline - now < pause ? deadline - now : pause);
    }
    sw.remaining += mvx__blocking_wait(&rt->blocking, deadline);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct mvx__worker *w = rt->workers[i];
        if (w->started && !w->joined && atomic_load_explicit(&w->exited, mvx__acquire)) {
            pthread_join(w->thread, NULL);
            w->joined = true;
        }
    }
    pthread_mutex_unlock(&rt->shutdown_lock);
    return (int)(sw.remaining > INT_MAX ? INT_MAX : sw.remaining);
}

MVX_EXTERN int mvx_runtime_release(mvx_runtime *rt)
{
    if (!rt)
        return mvx__error(MVX_EINVAL, "mvx_runtime_release: rt is NULL");
    if (runs_tasks_of(rt))
        return mvx__error(MVX_EDEADLK, "mvx_runtime_release: called from a thread of rt");
    pthread_mutex_lock(&rt->shutdown_lock);
    bool shut = rt->shutdown_called;
    pthread_mutex_unlock(&rt->shutdown_lock);
    if (!shut)
        mvx_runtime_shutdown(rt, MVX_TIMEOUT_INFINITE);
    pthread_mutex_lock(&rt->shutdown_lock);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct mvx__worker *w = rt->workers[i];
        if (w->started && !w->joined) {
            /* Still inside a poll: it exits on its own and drops its reference then. */
            pthread_detach(w->thread);
            w->joined = true;
        }
    }
    pthread_mutex_unlock(&rt->shutdown_lock);
    mvx__blocking_release(&rt->blocking);
    mvx__arena_close_outside_heaps(&rt->arena);
    mvx__arena_unref(&rt->arena);
    return 0;
}

/* ---- introspection ---- */

MVX_EXTERN mvx_runtime *mvx_runtime_current(void)
{
    if (mvx__tl_worker)
        return mvx__tl_worker->rt;
    if (mvx__tl_blocking_rt)
        return mvx__tl_blocking_rt;
    return mvx__local_current_runtime();
}

MVX_EXTERN unsigned mvx_runtime_worker_count(const mvx_runtime *rt)
{
    return rt ? rt->nworkers : 0;
}

MVX_EXTERN int mvx_runtime_worker_stats(mvx_runtime *rt, unsigned worker, mvx_worker_stats *stats)
{
    if (!rt || !stats)
        return mvx__error(MVX_EINVAL, "mvx_runtime_worker_stats: rt or stats is NULL");
    if (worker >= rt->nworkers)
        return mvx__error(MVX_EINVAL, "mvx_runtime_worker_stats: worker %u of %u", worker,
                          rt->nworkers);
    if (stats->size < STATS_MIN_SIZE)
        return mvx__error(MVX_EINVAL, "mvx_runtime_worker_stats: stats->size %zu is below %zu",
                          stats->size, STATS_MIN_SIZE);
    struct mvx__worker *w = rt->workers[worker];
    stats->polls = atomic_load_explicit(&w->polls, mvx__relaxed);
    stats->local_spawns = atomic_load_explicit(&w->local_spawns, mvx__relaxed);
    stats->remote_tasks = atomic_load_explicit(&w->remote_tasks, mvx__relaxed);
    stats->steals = atomic_load_explicit(&w->steals, mvx__relaxed);
    stats->stolen_tasks = atomic_load_explicit(&w->stolen_tasks, mvx__relaxed);
    stats->parks = atomic_load_explicit(&w->parks, mvx__relaxed);
    if (stats->size >= offsetof(mvx_worker_stats, spins_found) + sizeof stats->spins_found) {
        stats->spins = atomic_load_explicit(&w->spins, mvx__relaxed);
        stats->spins_found = atomic_load_explicit(&w->spins_found, mvx__relaxed);
    }
    return 0;
}
