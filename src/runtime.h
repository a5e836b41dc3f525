/*
 * runtime.h - the runtime object. Internal.
 */
#ifndef MVX_RUNTIME_H
#define MVX_RUNTIME_H

#include "arena.h"
#include "backlog.h"
#include "blocking.h"
#include "inject.h"
#include "task.h"

#include <pthread.h>

struct mvx__worker;

enum { MVX__PHASE_RUNNING = 0, MVX__PHASE_SHUTDOWN = 1 };

struct mvx_runtime {
    struct mvx__sched base; /* kind MVX__SCHED_RUNTIME: tasks point here */
    unsigned nworkers;
    struct mvx__worker **workers;
    _Atomic int phase;
    struct mvx__inject inject; /* the global queue */
    struct mvx__backlog backlog; /* its lag and the outside spawners' backpressure */
    /* Idle accounting, see idle.c: (unparked << 16) | searching. */
    _Alignas(MVX_CACHE_LINE) _Atomic uint32_t idle;
    _Alignas(MVX_CACHE_LINE) struct mvx__arena arena;
    struct mvx__blocking blocking;
    struct mvx__sched promise_sched; /* kind MVX__SCHED_PROMISE: promise tasks point here */
    pthread_mutex_t shutdown_lock; /* serialises shutdown and release */
    bool shutdown_called;
    char thread_name[16];
    size_t stack_size;
    void (*on_thread_start)(void *, unsigned);
    void (*on_thread_stop)(void *, unsigned);
    void *hook_data;
    unsigned global_interval; /* polls between looks at the global queue first */
    bool lifo_disabled;
    int64_t spin_ns; /* mvx_runtime_config.spin_ns: MVX_SPIN_ADAPTIVE, 0 or a fixed spin */
    int64_t worker_slice_ns; /* resolved: the slice workers ask for; negative: keep theirs */
};

/* Every spawn function: validates, allocates (from the calling thread's heap), initialises and
 * hands the task to `where` (the runtime itself, a local set, or the blocking pool). */
int mvx__spawn(const char *fn, struct mvx_runtime *rt, struct mvx__sched *where,
               const mvx_task_vtable *vt, void *state, mvx_join_handle **join, uint8_t flags);

/* Hands a SCHEDULED task to the runtime: the current worker's queue when called on one of rt's
 * workers (LIFO slot, or the back of the queue for a yield), the global queue otherwise. */
void mvx__runtime_schedule(struct mvx_runtime *rt, struct mvx__task *t, bool yield);
/* Pushes the chain first..last (n tasks) to the global queue, counted for its lag (backlog.h):
 * every push to the global queue goes through here. True when it stamped a backlog mark. */
static inline bool mvx__global_push(struct mvx_runtime *rt, struct mvx__task *first,
                                    struct mvx__task *last, unsigned n)
{
    bool marked = mvx__backlog_pushing(&rt->backlog, n);
    mvx__inject_push_chain(&rt->inject, first, last);
    return marked;
}
/* Pushes a SCHEDULED task to the global queue and unparks a worker for it. True when the push
 * stamped a backlog mark (see backlog.h). Any thread. */
bool mvx__runtime_push_global(struct mvx_runtime *rt, struct mvx__task *t);
/* Cancels everything in the global queue; used once shutdown has begun. Any thread. */
void mvx__runtime_drain_inject(struct mvx_runtime *rt);
/* Whether the calling thread is one of rt's workers. */
bool mvx__on_worker_of(const struct mvx_runtime *rt);

/* The number of CPUs this process may use: affinity mask and cgroup quota (cpu.c). */
unsigned mvx__available_cpus(void);

#endif
