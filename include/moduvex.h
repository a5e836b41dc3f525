/*
 * moduvex.h - the public interface of libmoduvex, a multithreaded async task runtime.
 *
 * Copyright (c) 2026 The moduvex authors. MIT licensed, see COPYING.
 *
 * ---------------------------------------------------------------------------------------------
 * OVERVIEW
 *
 * A task is caller state plus callbacks. The runtime calls `poll(state, cx, output)` on one of its
 * worker threads; poll returns MVX_POLL_PENDING (call me again once my waker is woken),
 * MVX_POLL_READY (the output is written) or MVX_POLL_FAILED (the C form of a panic, described
 * with mvx_context_fail()). The state is dropped (the `drop` callback) the moment the task
 * completes or is cancelled, whenever the join handle reads the output.
 *
 *     static int count_down(void *state, mvx_context *cx, void *output)
 *     {
 *         int *n = state;
 *         if (--*n > 0) {                                  // not done: yield
 *             mvx_waker_wake_by_ref(mvx_context_waker(cx));
 *             return MVX_POLL_PENDING;
 *         }
 *         *(int *)output = 42;
 *         return MVX_POLL_READY;
 *     }
 *     static const mvx_task_vtable count_down_vt = {
 *         sizeof(mvx_task_vtable), count_down, NULL, NULL,
 *         sizeof(int), _Alignof(int), sizeof(int), _Alignof(int),
 *     };
 *     ...
 *     mvx_runtime *rt;  mvx_join_handle *jh;  int n = 10, out;
 *     mvx_runtime_new(NULL, &rt);
 *     mvx_spawn(rt, &count_down_vt, &n, &jh);              // n is copied into the task
 *     mvx_join_wait(jh, MVX_TIMEOUT_INFINITE);
 *     mvx_join_take(jh, &out, sizeof out, NULL);            // out == 42
 *     mvx_join_release(jh);
 *     mvx_runtime_release(rt);
 *
 * ---------------------------------------------------------------------------------------------
 * CONVENTIONS (they hold for every function below unless its comment says otherwise)
 *
 * Errors. Functions that can fail return an int: 0 (MVX_OK) on success, a negative MVX_E* code
 *   otherwise. mvx_strerror() describes a code; mvx_last_error() gives a message about the most
 *   recent failure on the calling thread (which argument was wrong and why). NULL or invalid
 *   arguments give MVX_EINVAL and never crash; out of memory gives MVX_ENOMEM with nothing leaked
 *   and nothing changed.
 *
 * Handles. mvx_runtime, mvx_join_handle, mvx_local_set and mvx_context are opaque. A handle must
 *   not be used after the call that releases it (mvx_runtime_release, mvx_join_release,
 *   mvx_local_set_free); the library cannot detect that misuse.
 *
 * Threads. Every function may be called from any thread, concurrently, except where its comment
 *   names an owner: a join handle is used by one thread at a time (mvx_join_abort and
 *   mvx_join_is_finished excepted, though not concurrently with mvx_join_release: see there),
 *   a local set is driven and freed by the thread that created it,
 *   and a context is valid only inside the poll call that received it.
 *
 * Structs. Every public struct a caller fills in or passes to the library starts with
 *   `size_t size`, set by the caller to sizeof(the struct as the caller's header declares it).
 *   The library reads and writes only the fields that size covers, so a struct can grow at its end
 *   in a later minor release without breaking programs built against an earlier header. Structs
 *   have no other reserved space: they grow only at the end. mvx_waker is the one exception: a
 *   two-pointer value type whose layout is frozen forever.
 *
 * Timeouts are int64_t nanoseconds, relative: MVX_TIMEOUT_INFINITE (any negative value) waits
 *   forever, 0 does not wait.
 *
 * Callbacks supplied by the caller (poll, drop, waker functions, hooks) must not unwind (no C++
 *   exceptions or longjmp across the library) and must be safe to call on any worker thread.
 */
#ifndef MODUVEX_H
#define MODUVEX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MVX_BUILDING_LIBRARY) && defined(__GNUC__)
#define MVX_EXTERN __attribute__((visibility("default")))
#else
#define MVX_EXTERN
#endif

/* ============================================================================================= */
/* Version                                                                                        */

#define MVX_VERSION_MAJOR 1
#define MVX_VERSION_MINOR 1
#define MVX_VERSION_PATCH 0
/* MAJOR*10000 + MINOR*100 + PATCH of the header the caller was compiled with. */
#define MVX_VERSION_HEX (MVX_VERSION_MAJOR * 10000 + MVX_VERSION_MINOR * 100 + MVX_VERSION_PATCH)

/* The version of the library actually loaded, MAJOR*10000 + MINOR*100 + PATCH. Any thread. */
MVX_EXTERN int mvx_version(void);
/* The same as a static string such as "1.0.0". Any thread; never NULL. */
MVX_EXTERN const char *mvx_version_string(void);

/* ============================================================================================= */
/* Errors                                                                                         */

/* X-macro: XX(NAME, value, description). The values are part of the ABI and never change. */
#define MVX_ERRNO_MAP(XX)                                                                          \
    XX(EINVAL, -1, "invalid argument")                                                             \
    XX(ENOMEM, -2, "out of memory")                                                                \
    XX(ESHUTDOWN, -3, "runtime is shut down")                                                      \
    XX(EDEADLK, -4, "blocking wait would deadlock: called from a thread that runs the task")       \
    XX(ETIMEDOUT, -5, "timed out")                                                                 \
    XX(EAGAIN, -6, "not finished yet")                                                             \
    XX(ECANCELLED, -7, "task was cancelled")                                                       \
    XX(EFAILED, -8, "task panicked")                                                               \
    XX(ETAKEN, -9, "output already taken")                                                         \
    XX(EPERM, -10, "not allowed from this thread")                                                 \
    XX(ESYSTEM, -11, "system resource error")                                                     \
    XX(EALREADY, -12, "already completed: the promise was resolved or failed before")

#define MVX_OK 0
enum {
#define MVX__ERRNO_ENUM(name, value, text) MVX_##name = value,
    MVX_ERRNO_MAP(MVX__ERRNO_ENUM)
#undef MVX__ERRNO_ENUM
        MVX__ERRNO_END = 0
};

/* A static description of `code` ("invalid argument", "task was cancelled", ...), "success" for 0
 * and "unknown error" for anything else. Any thread; never NULL. */
MVX_EXTERN const char *mvx_strerror(int code);
/* The code's name as a static string ("MVX_EINVAL"), "MVX_OK" for 0, "MVX_UNKNOWN" otherwise. */
MVX_EXTERN const char *mvx_err_name(int code);
/* A message about the most recent failed call on the calling thread, naming the function and
 * what was wrong ("mvx_spawn: vtable->poll is NULL"); "" if none failed yet. The string belongs to
 * the thread and is overwritten by its next failing call. */
MVX_EXTERN const char *mvx_last_error(void);

/* Timeouts: relative nanoseconds; any negative value waits forever, 0 does not wait. */
#define MVX_TIMEOUT_INFINITE ((int64_t)-1)

/* ============================================================================================= */
/* Wakers                                                                                         */

/* How a waker is implemented. The runtime builds wakers for its own tasks; callers build their own
 * (foreign wakers) to let another executor - a Rust future, a Go goroutine, a Lua loop, a plain
 * thread - be woken when a join handle becomes ready. Each callback receives the waker's data and
 * may be called from any thread, concurrently; none may be NULL, and size must be at least
 * sizeof(mvx_waker_vtable): a waker whose vtable breaks either rule is refused with MVX_EINVAL by
 * mvx_waker_clone and every function that keeps a clone (mvx_join_poll, mvx_local_set_new,
 * mvx_promise_on_cancel), and the void functions below skip a NULL callback instead of calling it.
 *   clone:       return data for a new, independent waker with the same vtable (take a reference).
 *   wake:        wake, and release this waker's data (consumes it).
 *   wake_by_ref: wake, keeping the data.
 *   drop:        release the data without waking. */
typedef struct mvx_waker_vtable {
    size_t size; /* sizeof(mvx_waker_vtable); no reserved space */
    void *(*clone)(void *data);
    void (*wake)(void *data);
    void (*wake_by_ref)(void *data);
    void (*drop)(void *data);
} mvx_waker_vtable;

/* A waker is a value: a vtable and its data, like Rust's RawWaker. Copying the struct does not
 * clone it; use mvx_waker_clone(). A zeroed waker ({NULL, NULL}) is "no waker": every function
 * below accepts it and does nothing. Layout frozen: two pointers, never grows. */
typedef struct mvx_waker {
    const mvx_waker_vtable *vtable;
    void *data;
} mvx_waker;

/* Sets *out to a new waker that wakes the same task (or foreign target) as *waker. The caller owns
 * *out and must eventually wake or drop it. Cloning the empty waker {NULL, NULL} gives the empty
 * waker (and 0). Any thread. MVX_EINVAL if an argument is NULL or the vtable is invalid (see
 * mvx_waker_vtable; *out is then not written). */
MVX_EXTERN int mvx_waker_clone(const mvx_waker *waker, mvx_waker *out);
/* Wakes and consumes *waker (it becomes {NULL, NULL}). Waking a task schedules it to be polled
 * again; waking a task that already finished or was cancelled does nothing. Any thread. */
MVX_EXTERN void mvx_waker_wake(mvx_waker *waker);
/* Wakes without consuming. Any thread. */
MVX_EXTERN void mvx_waker_wake_by_ref(const mvx_waker *waker);
/* Releases *waker without waking (it becomes {NULL, NULL}). Any thread. */
MVX_EXTERN void mvx_waker_drop(mvx_waker *waker);
/* 1 if both wake the same target (same vtable and data), else 0. Any thread. */
MVX_EXTERN int mvx_waker_will_wake(const mvx_waker *a, const mvx_waker *b);
/* The vtable shared by every waker of a moduvex task, so that bindings can recognise one and, for
 * example, wrap its data pointer without allocating. Any thread; never NULL. */
MVX_EXTERN const mvx_waker_vtable *mvx_task_waker_vtable(void);

/* ============================================================================================= */
/* Tasks                                                                                          */

#define MVX_POLL_PENDING 0 /* not done; poll again after the context's waker is woken */
#define MVX_POLL_READY   1 /* done; the output has been written */
#define MVX_POLL_FAILED  2 /* done with a failure (a panic); see mvx_context_fail() */

/* The poll context: valid only during the poll call that receives it, on that thread. */
typedef struct mvx_context mvx_context;

/* A C function signature prepared for libffi; see "Signatures and call tasks" below. */
typedef struct mvx_signature mvx_signature;

/* Polls the task. `state` is the task's state (inline copy or the pointer given at spawn);
 * `output` points at vtable->output_size bytes that poll fills before returning MVX_POLL_READY.
 * Returns MVX_POLL_PENDING, MVX_POLL_READY or MVX_POLL_FAILED; any other value is treated as a
 * failure with code MVX_EINVAL. Called on a worker thread (or the local set's owner), never
 * concurrently with itself for one task. */
typedef int (*mvx_poll_fn)(void *state, mvx_context *cx, void *output);

/* A task type: its callbacks and the layout of its state and output. It must stay valid and
 * unchanged until every task spawned with it has been dropped: use static storage. Fill it with
 * designated initializers ({.size = sizeof(mvx_task_vtable), .poll = ...}): fields are added at
 * its end over time, and size tells the library which ones the caller knows.
 *
 * State: if state_size > 0, spawn copies state_size bytes from the `state` argument into the task
 *   (one allocation holds header, state and output); the task then owns that copy and the caller
 *   must not drop its own. If state_size == 0, the `state` pointer itself is stored and handed to
 *   poll and drop; ownership of what it points at passes to the task.
 * Output: output_size bytes (may be 0), written by poll, moved out by mvx_join_take().
 * Alignments must be 0 (meaning alignof(max_align_t)) or a power of two up to 16. The state plus
 * output copied inline must not exceed MVX_INLINE_MAX bytes; larger states go by pointer. */
typedef struct mvx_task_vtable {
    size_t size;                       /* sizeof(mvx_task_vtable); no reserved space */
    mvx_poll_fn poll;                  /* required */
    void (*drop)(void *state);         /* frees the state when the task completes, fails or is
                                          cancelled; called exactly once; may be NULL */
    void (*output_drop)(void *output); /* frees an output that was never taken (handle released,
                                          or task detached); may be NULL */
    size_t state_size;
    size_t state_align;
    size_t output_size;
    size_t output_align;
    /* Optional (NULL: the native signatures above, called directly). A poll or drop function
     * with another C signature, called through libffi: poll_signature returns an integer type
     * (the MVX_POLL_* value) and takes up to three ptr arguments, which receive state, cx and
     * output in that order; drop_signature takes at most one ptr (state) and returns void or a
     * scalar, which is ignored. Store the function in poll/drop cast to the native type. The
     * signatures must stay alive while tasks of this vtable exist. These two fields are
     * optional in `size`: a vtable whose size ends before them has none. */
    const mvx_signature *poll_signature;
    const mvx_signature *drop_signature;
} mvx_task_vtable;

#define MVX_INLINE_MAX 16000

/* The waker of the task being polled (borrowed: clone it to keep it beyond this poll). */
MVX_EXTERN const mvx_waker *mvx_context_waker(mvx_context *cx);

/* Describes why the task is failing; the poll must then return MVX_POLL_FAILED. `code` is the
 * caller's (any int), `message` is copied (may be NULL), `payload` (may be NULL) and its
 * destructor `payload_drop` (may be NULL) are handed to whoever takes the failure from the join
 * handle, or payload_drop(payload) is called when nobody does. A second call replaces the first
 * (dropping its payload). If poll then returns anything but MVX_POLL_FAILED the description is
 * discarded and the payload dropped. payload_drop is never called with a NULL payload.
 * MVX_EINVAL if cx is NULL; MVX_ENOMEM if the message cannot be copied. On either error nothing
 * changed: an earlier description stands and payload is still the caller's. */
MVX_EXTERN int mvx_context_fail(mvx_context *cx, int code, const char *message, void *payload,
                                void (*payload_drop)(void *payload));

/* Tells the runtime that this poll has dropped the task's state itself (a binding unwinding a
 * panic through the poll runs the state's destructors during the unwind, as tokio does): the
 * vtable's drop will not be called for it. The poll must then return MVX_POLL_READY or
 * MVX_POLL_FAILED; MVX_POLL_PENDING makes the task fail with code MVX_EINVAL, since it could
 * never be polled again. Added in 1.1. 0, or MVX_EINVAL if cx is NULL. */
MVX_EXTERN int mvx_context_forget_state(mvx_context *cx);

/* A task failure, moved out of a join handle by mvx_join_take(). The caller owns message and
 * payload; mvx_failure_clear() frees the message and calls payload_drop(payload) if both are
 * non-NULL (a destructor never receives NULL). To keep the payload, set payload to NULL before
 * clearing. */
typedef struct mvx_failure {
    size_t size;   /* set by the caller: sizeof(mvx_failure); no reserved space */
    int code;      /* the code given to mvx_context_fail(), or an MVX_E* code */
    char *message; /* never NULL once filled */
    void *payload; /* may be NULL */
    void (*payload_drop)(void *payload); /* may be NULL */
} mvx_failure;

/* Frees what *failure owns and zeroes those fields. Any thread. NULL does nothing. */
MVX_EXTERN void mvx_failure_clear(mvx_failure *failure);

/* ============================================================================================= */
/* Runtime                                                                                        */

typedef struct mvx_runtime mvx_runtime;

/* Runtime settings. Fill with mvx_runtime_config_init(), then change what you need. */
typedef struct mvx_runtime_config {
    size_t size;             /* sizeof(mvx_runtime_config), set by mvx_runtime_config_init();
                                no reserved space */
    unsigned worker_threads; /* 0: the CPUs available to the process, cgroup quota respected */
    const char *thread_name; /* worker name prefix (copied; NULL: "mvx-worker"); threads are
                                named "<prefix>-<index>", cut to 15 bytes */
    size_t stack_size;       /* worker stack size in bytes; 0: the system default */
    /* Called on each worker thread before it runs any task / after it ran its last one, with
       hook_data and the worker's index (0-based). May be NULL. */
    void (*on_thread_start)(void *hook_data, unsigned worker_index);
    void (*on_thread_stop)(void *hook_data, unsigned worker_index);
    void *hook_data;
    /* The blocking pool (mvx_spawn_blocking): threads are started on demand up to this many
       (0: 512), then jobs queue; a thread idle for blocking_keep_alive_ns exits (0: 10 s;
       negative: never). Pool threads are named "<thread_name prefix>-blk". */
    unsigned max_blocking_threads;
    int64_t blocking_keep_alive_ns;
    /* Since 1.1 (optional in `size`). A worker looks at the global queue before its own queue
       once every global_queue_interval polls (0: 31), so that tasks spawned or woken from
       outside are not starved by local work; lower is fairer, higher keeps more work local.
       disable_lifo_slot != 0 sends a task spawned or woken on a worker to the back of that
       worker's queue instead of its LIFO slot (where it would run next): tasks then run in
       the order they were queued, at some cost to message passing. */
    unsigned global_queue_interval;
    int disable_lifo_slot;
    /* How long an idle worker, a thread in mvx_join_wait and the owner in
       mvx_local_set_run_until spin looking for work before they sleep on a futex (waking a
       sleeping thread costs tens of microseconds of latency, spinning costs CPU).
       MVX_SPIN_ADAPTIVE (the default, any negative value): each worker and each waiting thread
       spins only while spinning has recently paid, i.e. found work, or work arrived soon after
       it slept, up to 50 us (waiters: 20 us); a worker whose spins keep failing halves its
       budget down to none, so a runtime fed slowly sleeps between tasks, and an idle runtime
       burns no CPU. 0: never spin. Positive: always spin up to that many nanoseconds.
       Absent from `size` (a 1.0 caller): MVX_SPIN_ADAPTIVE. */
    int64_t spin_ns;
    /* Since 1.1. Backpressure on threads that spawn from outside (any thread but this runtime's
       workers, spawning with mvx_spawn, mvx_spawn_call(_owned), mvx_spawn_sleep or
       mvx_spawn_promise): when the workers lag by more than this (a worker's timers are that
       overdue, or the oldest task in the global queue has waited four times that long),
       the spawn call, its task already queued, sleeps in short steps until they catch up, so a
       flood of spawns costs the flood's own thread time instead of delay for every task and
       timer, and its CPU goes to the workers. A call waits at most this long (checked once per
       64 spawns), and at most 2 ms while the workers take nothing from the global queue (all of
       them in long polls, maybe waiting for the spawner); after such a wait no spawn waits until
       they take a task, and none once shutdown has begun. Wakes and spawns on workers never
       wait. 0: 500 us; negative: never wait. Absent from `size`: 500 us. */
    int64_t spawn_backlog_ns;
    /* Since 1.1. MVX_BLOCKING_* bits (0, the default, and when absent from `size`: none);
       another bit is MVX_EINVAL. By default a blocking-pool thread that starts under SCHED_OTHER
       switches itself to SCHED_BATCH (same nice value, same share of the CPU), so that when its
       job's sleep or I/O ends it does not preempt the thread running on its CPU: it runs at
       that thread's next scheduling point, at once on an idle CPU. Hundreds of pool threads
       waking from their calls otherwise preempt the threads that submit work and each other,
       lock holders included (measured: 10,000 usleep(1 ms) jobs on 512 threads from one
       submitting thread took 24-36 ms, 23-24.5 ms in batch). Threads that a job creates
       inherit the policy, as they inherit any. A pool thread standing in for a worker blocked
       in mvx_block_in_place runs tasks: it goes back to SCHED_OTHER meanwhile. A thread started
       under another policy (real-time, SCHED_IDLE) keeps it.
       MVX_BLOCKING_INHERIT_SCHED: pool threads keep the policy they inherit from the thread
       that starts them. */
    uint64_t blocking_flags;
    /* Since 1.1. The time slice each worker thread asks the kernel for (Linux 6.12 and later:
       EEVDF's per-thread slice, sched_attr.sched_runtime; older kernels have none and ignore
       it). A shorter slice leaves the worker's share of the CPU as it was and gives it an
       earlier deadline: a worker woken for a task while its CPU runs another process's thread
       runs at once instead of after that thread's slice, and a machine whose cores are all
       busy still starts tasks within microseconds (measured beside two busy processes on two
       cores: spawn and join of one task 22 us with the kernel's 1.4 ms default slice, 3.7 us
       with 100 us). With every core its own, nothing changes. 0 (the default, and when
       absent from `size`): 100 us, the kernel's shortest; positive: that many nanoseconds,
       100 us to 100 ms, else MVX_EINVAL; negative: workers keep the slice they inherit from
       the thread that calls mvx_runtime_new. Workers whose inherited policy is not SCHED_OTHER
       or SCHED_BATCH (real-time, SCHED_IDLE) keep theirs untouched. Threads a task starts
       inherit the worker's slice as they inherit any setting; the blocking pool's threads ask
       for the kernel's default (see blocking_flags). */
    int64_t worker_slice_ns;
} mvx_runtime_config;

/* mvx_runtime_config.spin_ns: the adaptive spinning policy (the default). */
#define MVX_SPIN_ADAPTIVE ((int64_t)-1)

/* mvx_runtime_config.blocking_flags: pool threads keep their inherited scheduling policy. */
#define MVX_BLOCKING_INHERIT_SCHED ((uint64_t)1)

/* Fills *config with the defaults above; config_size is sizeof(*config) as the caller sees it.
 * MVX_EINVAL if config is NULL or config_size is smaller than the first release's struct (which
 * ends at hook_data: the blocking-pool fields are optional in size). */
MVX_EXTERN int mvx_runtime_config_init(mvx_runtime_config *config, size_t config_size);

/* Creates a runtime and starts its worker threads. config may be NULL for the defaults. On success
 * *out owns one reference, given up with mvx_runtime_release(). MVX_EINVAL (bad config: more than
 * 1024 workers, stack below the system minimum), MVX_ENOMEM, MVX_ESYSTEM (a thread could not be
 * started; nothing is left running). Any thread. */
MVX_EXTERN int mvx_runtime_new(const mvx_runtime_config *config, mvx_runtime **out);

/* Shuts the runtime down: new spawns fail with MVX_ESHUTDOWN; every task not running is cancelled
 * at once (its state dropped exactly once, on the calling thread or a worker) and its join waiters
 * are woken with MVX_ECANCELLED; tasks in the middle of a poll are cancelled when that poll returns
 * pending; queued blocking jobs are cancelled. Waits up to timeout_ns for running polls and
 * blocking jobs, then joins the threads that have finished. Returns the number of tasks still
 * being polled or run by the blocking pool when it gave up (0: clean shutdown),
 * or MVX_EINVAL, or MVX_EDEADLK from a worker or blocking-pool thread of this runtime (it would
 * wait for itself). Tasks of local sets are cancelled when their owner next drives or frees the
 * set. Calling it again waits again and returns the new count. Any thread but this runtime's
 * workers and blocking-pool threads. */
MVX_EXTERN int mvx_runtime_shutdown(mvx_runtime *rt, int64_t timeout_ns);

/* Gives up the caller's reference. Shuts down first with an infinite timeout if
 * mvx_runtime_shutdown() was never called; never waits otherwise. Memory is freed once the last
 * join handle, waker, local set and still-running worker is gone, so handles may outlive the
 * runtime (their tasks are then finished or cancelled). Returns 0, MVX_EINVAL or MVX_EDEADLK (from
 * a worker or blocking-pool thread of this runtime; nothing is done). Any thread but this
 * runtime's workers and blocking-pool threads. */
MVX_EXTERN int mvx_runtime_release(mvx_runtime *rt);

/* The runtime whose task is being polled on the calling thread (a worker's runtime, the
 * runtime of the local set being driven, or of the blocking pool thread), or NULL. Borrowed: no
 * reference is taken. */
MVX_EXTERN mvx_runtime *mvx_runtime_current(void);

/* Runs fn(arg) on the calling thread, which may block for a long time inside it, without holding
 * up the other tasks of its worker. On a worker thread (from a task's poll) the worker itself is
 * first handed to a substitute thread from the blocking pool, which runs the worker's queue,
 * LIFO slot included, and everything spawned or woken there while fn runs (other workers may
 * steal from it meanwhile, and the LIFO slot's task is moved to the queue so that they can):
 * this holds with a single worker too. Inside fn the thread is no worker: tasks it spawns or
 * wakes go to the global queue, and it may wait for other tasks (mvx_join_wait, mvx_block_on).
 * mvx_runtime_current() still returns the runtime. When fn returns, the thread takes the worker
 * back, after the task the substitute is polling (if any) returns, and the calling poll carries
 * on. If the pool cannot take a substitute (out of memory, or at max_blocking_threads with
 * every thread busy, in which case the substitute waits in the pool's queue) the worker's other
 * tasks wait for other workers to steal them. Elsewhere (a plain thread, a blocking-pool thread,
 * inside another mvx_block_in_place) it just calls fn(arg).
 * Returns 0 once fn has returned; MVX_EINVAL (fn is NULL) or MVX_EPERM (called from a task of a
 * local set, mvx_block_on included, whose tasks cannot move to another thread), and then fn was
 * not called. fn must not unwind. Any thread. Since 1.1. */
MVX_EXTERN int mvx_block_in_place(void (*fn)(void *arg), void *arg);

/* The number of worker threads, or 0 for NULL. Any thread. */
MVX_EXTERN unsigned mvx_runtime_worker_count(const mvx_runtime *rt);

/* Counters of one worker, updated by the worker without synchronisation and read here as a
 * snapshot: each counter is exact, the set of them is not a single instant. */
typedef struct mvx_worker_stats {
    size_t size;           /* set by the caller: sizeof(mvx_worker_stats); no reserved space */
    uint64_t polls;        /* task polls run (cancellations excluded) */
    uint64_t local_spawns; /* tasks spawned by tasks running on this worker */
    uint64_t remote_tasks; /* tasks taken from the global queue (spawned or woken elsewhere) */
    uint64_t steals;       /* successful steals from other workers */
    uint64_t stolen_tasks; /* tasks moved in by those steals */
    uint64_t parks;        /* times the worker went to sleep */
    /* Since 1.1 (a caller whose `size` ends at parks gets the fields above only): */
    uint64_t spins;        /* idle rounds that did not end asleep: spins for work (see
                              mvx_runtime_config.spin_ns), and retries because work showed up
                              while the worker was about to sleep */
    uint64_t spins_found;  /* those of them that found work (a spin, before its budget ran out) */
} mvx_worker_stats;

/* Fills the fields of *stats that stats->size covers for worker `worker` (0-based). MVX_EINVAL
 * for a bad index, or a size below the first release's struct (which ends at parks). Any
 * thread. */
MVX_EXTERN int mvx_runtime_worker_stats(mvx_runtime *rt, unsigned worker, mvx_worker_stats *stats);

/* ============================================================================================= */
/* Spawning and joining                                                                           */

typedef struct mvx_join_handle mvx_join_handle;

/* Spawns a task on rt. From a task running on one of rt's workers it goes to that worker's queue
 * (and runs next), from anywhere else to the global queue. `state` is copied or stored as
 * described at mvx_task_vtable. With join != NULL, *join receives the task's join handle (the
 * caller must release it); with join == NULL the task is detached: its output is dropped when it
 * completes.
 * If the task never completes and nothing can wake it any more (no waker, no join handle), the
 * runtime cancels it: its state is dropped.
 * From outside the workers it may sleep briefly after queueing the task, when the workers have
 * fallen behind the global queue (at most mvx_runtime_config.spawn_backlog_ns per call; see
 * there); on a worker it never waits.
 * On failure nothing was spawned and the caller still owns `state`. MVX_EINVAL (NULL rt or
 * vtable, vtable->poll NULL, bad size or alignment), MVX_ENOMEM, MVX_ESHUTDOWN. Any thread. */
MVX_EXTERN int mvx_spawn(mvx_runtime *rt, const mvx_task_vtable *vtable, void *state,
                         mvx_join_handle **join);

/* Waits until the task finishes or the timeout passes. Returns its outcome: 0 (completed; take the
 * output with mvx_join_take), MVX_ECANCELLED (aborted, or cancelled by shutdown), MVX_EFAILED
 * (failed: take the failure with mvx_join_take), or MVX_ETIMEDOUT, MVX_EINVAL, MVX_EDEADLK (called
 * from a worker thread of the task's runtime, or from the owner of the task's local set, which
 * would never run it). Spins briefly before sleeping. */
MVX_EXTERN int mvx_join_wait(mvx_join_handle *join, int64_t timeout_ns);

/* The outcome without waiting: as mvx_join_wait, with MVX_EAGAIN while the task is unfinished. */
MVX_EXTERN int mvx_join_try(mvx_join_handle *join);

/* The async form: returns the outcome as mvx_join_try; while the task is unfinished returns
 * MVX_EAGAIN and stores a clone of *waker, which is woken (by reference) once when the task
 * finishes. Only the latest registration is kept (earlier wakers are dropped). Use it from a task
 * (pass mvx_context_waker(cx)) or from another executor with a foreign waker. */
MVX_EXTERN int mvx_join_poll(mvx_join_handle *join, const mvx_waker *waker);

/* Moves the result out. Returns 0 and copies the output into `output` (output_size must equal the
 * vtable's output_size; output may be NULL when that is 0); the caller now owns it and the
 * output_drop callback will not be called. MVX_EFAILED: if failure != NULL (with its size set)
 * the failure is moved into *failure. MVX_ECANCELLED: cancelled, no output. MVX_EAGAIN: not
 * finished. MVX_ETAKEN: already taken. MVX_EINVAL: bad arguments. */
MVX_EXTERN int mvx_join_take(mvx_join_handle *join, void *output, size_t output_size,
                             mvx_failure *failure);

/* Requests cancellation. A task that is not running is cancelled by a worker soon after (a queued
 * blocking job at once, see mvx_spawn_blocking); a running one right after its current poll
 * returns pending; one that completes first keeps its output. Repeated calls are harmless.
 * 0 or MVX_EINVAL. Any thread, concurrently with the handle's user, except with
 * mvx_join_release: release may free the task at once, and nothing can tell an abort that races
 * release from one made after it, which would touch freed memory or even cancel another task that
 * reused the memory. So every abort must return before release is called (e.g. the releasing
 * thread joins the aborting one, or they share a lock). */
MVX_EXTERN int mvx_join_abort(mvx_join_handle *join);

/* 1 once the task has completed, failed or been cancelled, else 0 (also for NULL). Any thread,
 * ordered before mvx_join_release as mvx_join_abort is. */
MVX_EXTERN int mvx_join_is_finished(const mvx_join_handle *join);

/* The size in bytes of the task's output, the output_size that mvx_join_take wants (since 1.1):
 * for bindings that join a handle made elsewhere (a plugin's task) without knowing its vtable.
 * 0 for NULL. Any thread. */
MVX_EXTERN size_t mvx_join_output_size(const mvx_join_handle *join);

/* Releases the handle. An unfinished task keeps running, detached; an output (or failure) never
 * taken is dropped, now or when the task completes. NULL does nothing. */
MVX_EXTERN void mvx_join_release(mvx_join_handle *join);

/* Runs one task to completion on the calling thread while the workers run everything else; tasks
 * it spawns on rt go to the workers. Returns as mvx_join_take: 0 with the output in `output`,
 * MVX_EFAILED (with *failure if given), MVX_ECANCELLED (runtime shut down meanwhile), or
 * MVX_EINVAL, MVX_ENOMEM, MVX_ESHUTDOWN, MVX_EDEADLK (from a worker thread of rt). On those last
 * four nothing ran and the caller still owns `state`: every argument (failure->size included) is
 * checked before the task runs. On 0, MVX_EFAILED and MVX_ECANCELLED the task took it (and has
 * dropped it). */
MVX_EXTERN int mvx_block_on(mvx_runtime *rt, const mvx_task_vtable *vtable, void *state,
                            void *output, size_t output_size, mvx_failure *failure);

/* ============================================================================================= */
/* The blocking pool                                                                              */

/* Runs a task on the blocking pool, a set of threads apart from the workers, for work that
 * blocks (file I/O, a lock, a long computation): the workers never wait for it. Its poll is
 * called exactly once, on a pool thread, and may block; it must return MVX_POLL_READY or
 * MVX_POLL_FAILED (MVX_POLL_PENDING counts as a failure with code MVX_EINVAL). Otherwise it is a
 * task like any other: same vtable, state and output rules, same join handle.
 * The pool starts a thread per job up to max_blocking_threads, then queues jobs in order; idle
 * threads are reused first. The spawning thread wakes or starts at most one of them per spawn,
 * and none while one is already on its way: the threads that take jobs wake or start the others,
 * so a burst of spawns costs its own thread a few futex calls, not one per spawn. Pool threads
 * run as SCHED_BATCH unless the runtime was created with MVX_BLOCKING_INHERIT_SCHED. If the
 * pool has no thread and none can be started, the spawn fails with MVX_ESYSTEM (MVX_ENOMEM if the
 * thread's record cannot be allocated): nothing is queued and the caller still owns `state`
 * (with a thread running, a job that could not get a new one waits for it instead).
 * Abort: a job not started yet is cancelled at once (taken off the queue, its state dropped on
 * the aborting thread, its waiters woken); a job already running cannot be stopped: it
 * finishes, its output is dropped and the join handle reports MVX_ECANCELLED.
 * Shutdown cancels queued jobs, waits for running ones within its timeout and counts those still
 * running in its result. Returns as mvx_spawn, and MVX_ESYSTEM as above. Any thread. */
MVX_EXTERN int mvx_spawn_blocking(mvx_runtime *rt, const mvx_task_vtable *vtable, void *state,
                                  mvx_join_handle **join);

typedef struct mvx_blocking_stats {
    size_t size;           /* set by the caller: sizeof(mvx_blocking_stats); no reserved space */
    unsigned threads;      /* pool threads alive */
    unsigned idle_threads; /* of which waiting for a job */
    unsigned running;      /* jobs running now */
    unsigned queued;       /* jobs waiting for a thread */
    uint64_t completed;    /* jobs finished (completed, failed or cancelled) since creation */
} mvx_blocking_stats;

/* A snapshot of the blocking pool. MVX_EINVAL for NULLs or a bad size. Any thread. */
MVX_EXTERN int mvx_runtime_blocking_stats(mvx_runtime *rt, mvx_blocking_stats *stats);

/* ============================================================================================= */
/* Signatures and call tasks (libffi)                                                             */

/* The signature language, one C function type per string:
 *
 *     signature := type "(" [ type { "," type } ] ")"
 *     type      := void | i8 | u8 | i16 | u16 | i32 | u32 | i64 | u64 | size | f32 | f64 | ptr
 *                | "{" type { "," type } "}"
 *
 * iN/uN are (u)intN_t, size is size_t, f32/f64 float/double, ptr any data or function pointer,
 * {...} a struct passed by value with those members in order (nested up to 8 deep, at most 32
 * members). void only as the return type ("i32(void)" and "i32()" both take no arguments).
 * Spaces and tabs may separate tokens. At most 32 arguments and 1024 bytes.
 * Examples: "f64(f64)" for cos, "u64(u64,ptr,u32)" for zlib's crc32 (uLong, const Bytef *,
 * uInt), "{i32,i32,f64}(ptr,{u8,u8})". */

/* Parses `length` bytes of `text` (no NUL needed; an embedded NUL is an error) and prepares the
 * libffi call interface once. On success *out holds one reference (mvx_signature_release).
 * MVX_EINVAL with mvx_last_error() saying where and what was expected ("at byte 4: expected ','
 * or ')', found 'x'"), MVX_ENOMEM. Any thread; signatures are immutable and shareable. */
MVX_EXTERN int mvx_signature_parse(const char *text, size_t length, mvx_signature **out);
/* Takes another reference; returns sig. Any thread. */
MVX_EXTERN mvx_signature *mvx_signature_ref(mvx_signature *sig);
/* Gives up a reference; the last one frees it. NULL does nothing. Any thread. */
MVX_EXTERN void mvx_signature_release(mvx_signature *sig);
/* The number of arguments, or MVX_EINVAL for NULL. */
MVX_EXTERN int mvx_signature_arg_count(const mvx_signature *sig);
/* The size of the return value in bytes (0 for void or NULL): a call task's output size. */
MVX_EXTERN size_t mvx_signature_return_size(const mvx_signature *sig);

#define MVX_CALL_BLOCKING 0x1u /* run the call on the blocking pool, not on a worker */

/* Spawns a task that calls fn(args...) through libffi, as described by sig, and completes with
 * the return value as its output (mvx_signature_return_size(sig) bytes; take it with
 * mvx_join_take). args[i] points at the i-th argument's value; the values are copied at spawn,
 * so args may go away on return. Memory an argument points to (a ptr argument) stays the
 * caller's: it must remain valid until the task has finished. The task keeps a reference on sig.
 * flags: 0 runs fn on a worker (short, non-blocking functions), MVX_CALL_BLOCKING on the
 * blocking pool. Returns as mvx_spawn (MVX_EINVAL also for NULL fn, sig, or args when sig has
 * arguments; with MVX_CALL_BLOCKING also as mvx_spawn_blocking). Any thread. */
MVX_EXTERN int mvx_spawn_call(mvx_runtime *rt, void (*fn)(void), const mvx_signature *sig,
                              void *const *args, unsigned flags, mvx_join_handle **join);

/* As mvx_spawn_call, and the task owns `owned`: owned_free(owned) is called exactly once, when
 * the task's state is dropped (after the call returned, or when the task is cancelled before it
 * ran), on whichever thread drops it. Made for argument memory the caller cannot keep alive
 * itself, such as a binding's copies of strings passed as ptr arguments: a garbage-collected
 * caller may lose its handle, or close, while the call still runs. owned_free may be NULL (then
 * owned is ignored). On failure nothing was spawned and owned stays the caller's. Since 1.1. */
MVX_EXTERN int mvx_spawn_call_owned(mvx_runtime *rt, void (*fn)(void), const mvx_signature *sig,
                                    void *const *args, unsigned flags, void *owned,
                                    void (*owned_free)(void *owned), mvx_join_handle **join);

/* ============================================================================================= */
/* Interop: notifiers and promises (since 1.1)                                                    */

/* Two pieces for hosts that run their own event loop or scheduler (Go, Lua, libuv, epoll,
 * asyncio, a game loop), whose code must never run on a moduvex thread: a notifier turns wakes
 * into tokens the host pulls from one pollable file descriptor, and a promise is a task that a
 * host completes from outside, so that C tasks can join a goroutine or a coroutine like any task.
 *
 *     mvx_notifier *n;  mvx_waker w;  uint64_t tokens[64];
 *     mvx_notifier_new(&n);
 *     mvx_notifier_waker(n, 7, &w);                  // token 7 stands for this join handle
 *     if (mvx_join_poll(jh, &w) == MVX_EAGAIN)       // the handle keeps a clone of w
 *         ...                                        // add mvx_notifier_fd(n) to epoll/poll
 *     int k = mvx_notifier_drain(n, tokens, 64);     // when the fd is readable: tokens[0] == 7
 *     mvx_waker_drop(&w);  ...  mvx_notifier_free(n);
 */

/* A completion queue behind one file descriptor. */
typedef struct mvx_notifier mvx_notifier;

/* Creates a notifier with an eventfd (non-blocking, close-on-exec). On success *out owns it;
 * free it with mvx_notifier_free(). MVX_EINVAL, MVX_ENOMEM, MVX_ESYSTEM (no fd). Any thread. */
MVX_EXTERN int mvx_notifier_new(mvx_notifier **out);

/* The notifier's file descriptor: it polls readable (POLLIN / EPOLLIN) while tokens are pending,
 * so Go's netpoller, luv's uv.new_poll, cqueues or epoll can wait on it. It belongs to the
 * notifier: never read, write or close it yourself (dup() it if your poller must own an fd).
 * Readiness is a hint in one direction only: after a wake the fd is or soon becomes readable
 * until a drain takes the token, but it may also poll readable with nothing to drain (a wake
 * racing a drain), and a drain then returns 0. -1 (MVX_EINVAL) for NULL. Any thread. */
MVX_EXTERN int mvx_notifier_fd(const mvx_notifier *n);

/* Sets *out to a foreign waker that, when woken (wake or wake_by_ref, from any thread), queues
 * `token` on n. Waking allocates nothing and takes no lock; the fd is written only when the queue
 * goes from empty to non-empty, as uv_async_send does. The caller owns *out (drop or wake it,
 * as any waker). One allocation per call. MVX_EINVAL, MVX_ENOMEM. Any thread.
 *
 * What a host may rely on:
 *  - Every wake of a waker delivers its token at least once after the wake (by a drain that
 *    starts after the wake returned), and never before the wake.
 *  - Wakes coalesce per waker: a waker and its clones (mvx_waker_clone, the clone a join handle
 *    keeps) share one queue entry, so while their token is queued and not yet drained further
 *    wakes add nothing; the first wake after the drain that took it queues it again. Separate
 *    calls of mvx_notifier_waker give separate entries, even with the same token: each delivers.
 *  - Tokens come out in the order their entries were queued.
 *  - A waker may outlive its notifier, as handles outlive the runtime: once mvx_notifier_free has
 *    been called, waking does nothing and cloning and dropping stay safe, from any thread. The
 *    memory goes with the last waker. */
MVX_EXTERN int mvx_notifier_waker(mvx_notifier *n, uint64_t token, mvx_waker *out);

/* Moves up to `max` pending tokens into tokens[0..], in wake order, and returns how many (0 when
 * none is pending), or MVX_EINVAL. When it leaves the queue empty the fd stops polling readable
 * (unless a wake races it); when tokens remain (more than max) the fd stays readable. One
 * consumer: drain, wait and free must not run concurrently with each other (any thread, one at a
 * time); wakes may run concurrently with all of them. */
MVX_EXTERN int mvx_notifier_drain(mvx_notifier *n, uint64_t *tokens, size_t max);

/* For a host thread without a poller: waits until tokens are pending or the timeout passes.
 * Returns 0 (drain now; it may return 0 tokens, see mvx_notifier_fd), MVX_ETIMEDOUT, MVX_EINVAL,
 * MVX_ESYSTEM. Consumer only, as drain. */
MVX_EXTERN int mvx_notifier_wait(mvx_notifier *n, int64_t timeout_ns);

/* Counters, for tuning and for benchmarks (coalescing is wakes per fd write). */
typedef struct mvx_notifier_stats {
    size_t size;        /* set by the caller: sizeof(mvx_notifier_stats); no reserved space */
    uint64_t fd_writes; /* times a wake wrote the fd (the queue went from empty to non-empty) */
    uint64_t drains;    /* calls of mvx_notifier_drain */
    uint64_t tokens;    /* tokens delivered by those drains */
} mvx_notifier_stats;

/* Fills *stats. MVX_EINVAL for NULLs or a bad size. Any thread (a snapshot). */
MVX_EXTERN int mvx_notifier_stats_get(const mvx_notifier *n, mvx_notifier_stats *stats);

/* Frees the notifier: pending tokens are discarded and the fd is closed before it returns (it
 * waits for wakes that are writing it at that moment, a few instructions each). Wakers still
 * held anywhere stay valid and do nothing when woken. NULL does nothing. Consumer only. */
MVX_EXTERN void mvx_notifier_free(mvx_notifier *n);

/* A task completed from outside: it runs no code of its own, and the thread that owns the promise
 * (a goroutine, a coroutine, a callback of another library) resolves or fails it. Its join handle
 * works like every other: wait, try, poll (from C tasks, Rust, a notifier waker), take, abort,
 * release. Cancellation reaches the producer through mvx_promise_is_cancelled and
 * mvx_promise_on_cancel.
 *
 *   outcome race: the first of resolve, fail and cancellation (abort, shutdown, promise release)
 *   wins; the others change nothing. Whoever wins, the output (or failure payload) is dropped
 *   exactly once: taken by mvx_join_take, or passed to output_drop (payload_drop).
 */
typedef struct mvx_promise mvx_promise;

/* Spawns a promise task on rt with an output of output_size bytes (alignment output_align: 0 or a
 * power of two up to 16; size at most MVX_INLINE_MAX). output_drop (may be NULL) frees an output
 * that is never taken. *promise receives the producer's side (release it with
 * mvx_promise_release); with join != NULL *join receives the task's join handle, else the task
 * is detached. MVX_EINVAL, MVX_ENOMEM, MVX_ESHUTDOWN; on failure nothing was created. Any thread. */
MVX_EXTERN int mvx_spawn_promise(mvx_runtime *rt, size_t output_size, size_t output_align,
                                 void (*output_drop)(void *output), mvx_promise **promise,
                                 mvx_join_handle **join);

/* Completes the task with output_size bytes copied from `output` (NULL allowed when the size is
 * 0); join waiters are woken. 0, or: MVX_EALREADY (resolved or failed before), MVX_ECANCELLED
 * (cancelled first), MVX_EINVAL; on those the output was not copied and stays the caller's.
 * Any thread, concurrently with the other promise functions (not with release). */
MVX_EXTERN int mvx_promise_resolve(mvx_promise *promise, const void *output);

/* Completes the task with a failure, as a poll returning MVX_POLL_FAILED after
 * mvx_context_fail(cx, code, message, payload, payload_drop) would: its join handle reports
 * MVX_EFAILED. The message is copied (may be NULL). 0, or MVX_EALREADY, MVX_ECANCELLED,
 * MVX_EINVAL, MVX_ENOMEM (the message could not be copied); on those nothing changed and payload
 * stays the caller's. Any thread, as resolve. */
MVX_EXTERN int mvx_promise_fail(mvx_promise *promise, int code, const char *message, void *payload,
                                void (*payload_drop)(void *payload));

/* 1 once the task has been cancelled or asked to be (its handle aborted, the runtime shut down),
 * unless it was resolved or failed first; 0 otherwise (also for NULL). Any thread. */
MVX_EXTERN int mvx_promise_is_cancelled(const mvx_promise *promise);

/* Stores a clone of *waker, woken (once, consuming it) when the task is cancelled, so that the
 * producer can stop: a goroutine's context, a coroutine's close. Only the latest registration is
 * kept (an earlier waker is dropped). If the task is already cancelled the clone is woken at once,
 * on the calling thread; if the promise was already resolved or failed nothing is stored and
 * MVX_EALREADY is returned. The waker may be woken on any thread: on the one that aborts the
 * handle, shuts the runtime down or releases the promise. 0, MVX_EALREADY, MVX_EINVAL. Any
 * thread, as resolve. */
MVX_EXTERN int mvx_promise_on_cancel(mvx_promise *promise, const mvx_waker *waker);

/* Gives up the producer's side. An unresolved promise's task is cancelled (its join waiters see
 * MVX_ECANCELLED, its cancel waker is woken). The join handle is independent and is released on
 * its own. NULL does nothing. Call it once, after every other call on the promise has returned. */
MVX_EXTERN void mvx_promise_release(mvx_promise *promise);
/* Time: timers, sleep tasks, the join timeout (since 1.1)                                        */

/* The runtime's clock: CLOCK_MONOTONIC in nanoseconds (the clock of every deadline below, and of
 * mvx_join_wait's timeouts). Any thread; never fails. */
MVX_EXTERN int64_t mvx_now(void);

/* A timer a poll function uses to be woken at a deadline, without a thread per timer: the
 * runtime's workers keep one hierarchical timing wheel each and fire due timers between polls
 * and when they park. The caller provides the storage (in its task state, say) and the library
 * keeps everything in it: arming, re-arming and cancelling never allocate. Layout frozen, like
 * mvx_waker's: 48 bytes, pointer-aligned, contents private (caller storage cannot grow).
 *
 * One user at a time (like a join handle): arm, cancel and fini may be called from any thread,
 * but not concurrently for one timer; the firing worker runs concurrently with that user, and
 * every function below is safe against it. A timer that is not armed (never armed, fired,
 * cancelled) may be moved by copying its bytes; an armed one must stay where it is. */
typedef struct mvx_timer {
    void *opaque[6];
} mvx_timer;

/* Prepares *timer for rt; it is not armed. The timer keeps rt's memory alive (not its workers)
 * until mvx_timer_fini, so it may outlive mvx_runtime_release: it then never fires. MVX_EINVAL
 * for NULLs. Any thread. */
MVX_EXTERN int mvx_timer_init(mvx_timer *timer, mvx_runtime *rt);

/* Arms (or re-arms) the timer for deadline_ns (mvx_now() clock, absolute). Returns 0 when the
 * deadline has passed: the timer is then not armed and nothing will be woken (poll on: the wait
 * is over). Otherwise returns MVX_EAGAIN: the timer holds a clone of *waker and wakes it (by
 * value, once) at the deadline, never before it, and usually within the wheel's resolution
 * (131 us) after it; about 10 us after it while the wheel's worker is busy running tasks (or
 * stuck in a long poll while another worker with timers is busy), up to two ticks (262 us)
 * after it while timers due less than 524 us apart keep waking that worker.
 * A task woken by a busy worker's timer runs ahead of the tasks queued on that worker (when they
 * are at most 16). Re-arming replaces the deadline and the waker; re-arming with the same
 * deadline and a waker that will_wake the stored one costs no clone. O(1), no allocation.
 * MVX_EINVAL (NULLs, uninitialised timer), MVX_ESHUTDOWN (the runtime is shut down: timers no
 * longer fire). From a worker the timer goes to that worker's wheel; from any other thread to
 * one of the runtime's, whose worker is woken if it sleeps past the new deadline. */
MVX_EXTERN int mvx_timer_arm(mvx_timer *timer, int64_t deadline_ns, const mvx_waker *waker);

/* Disarms the timer. Returns 1 if it was armed and now will not fire (its waker is not woken),
 * 0 if it was not armed: never armed, already cancelled, or already fired (its waker was or is
 * being woken, exactly once). The waker stays in the timer, so that re-arming it costs no clone,
 * until the timer is re-armed with another waker or finalised. MVX_EINVAL for NULL. O(1). */
MVX_EXTERN int mvx_timer_cancel(mvx_timer *timer);

/* Cancels the timer, drops its waker and gives up its hold on the runtime; the storage may then
 * be freed. Any thread, also after the runtime was released. NULL or an uninitialised (zeroed)
 * timer does nothing; a finalised timer is zeroed. */
MVX_EXTERN void mvx_timer_fini(mvx_timer *timer);

/* Spawns a task that completes (output size 0) at deadline_ns: its join handle is the sleep, for
 * everything that can await a handle. Aborting it cancels its timer as soon as a worker runs the
 * cancellation; shutdown cancels it like any task. A pending sleep task costs one 112-byte slot.
 * Returns as mvx_spawn (join may be NULL: a detached sleep). Any thread. */
MVX_EXTERN int mvx_spawn_sleep(mvx_runtime *rt, int64_t deadline_ns, mvx_join_handle **join);

/* mvx_join_poll with a deadline, the async form of mvx_join_wait's timeout: returns the task's
 * outcome as mvx_join_poll does once it finished; MVX_ETIMEDOUT once deadline_ns has passed with
 * the task unfinished (the task keeps running; abort it if that is wanted); otherwise MVX_EAGAIN
 * with *waker registered both on the handle and in *timer (initialised by the caller, owned by
 * the caller, re-armed by each call, cancelled once the task finished), so that whichever comes
 * first wakes it. MVX_EINVAL, MVX_ESHUTDOWN as mvx_join_poll and mvx_timer_arm. */
MVX_EXTERN int mvx_join_poll_until(mvx_join_handle *join, mvx_timer *timer, int64_t deadline_ns,
                                   const mvx_waker *waker);

/* ============================================================================================= */
/* Local task sets                                                                                */

/* A set of tasks pinned to the thread that created it (its owner): they are polled only while the
 * owner drives the set, and dropped only on the owner, yet any thread may wake them and their join
 * handles work everywhere. Made for single-threaded hosts (a Lua state, an event loop) whose
 * coroutines become tasks that never run on a worker but can await tasks that do. */
typedef struct mvx_local_set mvx_local_set;

/* Creates a set owned by the calling thread, tied to rt (which it keeps alive). `notify` may be
 * NULL; otherwise a clone is kept and woken (by reference) whenever a task of the set becomes
 * ready while the owner is not driving it, e.g. to write to an eventfd the host loop polls. */
MVX_EXTERN int mvx_local_set_new(mvx_runtime *rt, const mvx_waker *notify, mvx_local_set **out);

/* Spawns a task into the set, as mvx_spawn. Any thread; MVX_ESHUTDOWN once the set or its
 * runtime is shut down. */
MVX_EXTERN int mvx_local_spawn(mvx_local_set *set, const mvx_task_vtable *vtable, void *state,
                               mvx_join_handle **join);

/* Polls the set's ready tasks until none is ready. Returns the number of polls run (>= 0), or
 * MVX_EINVAL, MVX_EPERM (not the owner thread). Owner thread only. */
MVX_EXTERN int mvx_local_set_run_until_idle(mvx_local_set *set);

/* Drives the set until `until` (a handle of any task, local or not) finishes or the timeout
 * passes, sleeping while no task is ready. Returns the outcome as mvx_join_wait (MVX_ETIMEDOUT
 * included), MVX_EDEADLK if `until` is an unfinished task of another local set of this thread
 * (it cannot run while this thread waits here; with a zero timeout: MVX_ETIMEDOUT, as
 * mvx_join_wait), or MVX_EPERM (not the owner thread). Owner thread only. */
MVX_EXTERN int mvx_local_set_run_until(mvx_local_set *set, mvx_join_handle *until,
                                       int64_t timeout_ns);

/* Cancels every task of the set (states dropped here, join waiters woken with MVX_ECANCELLED) and
 * frees it. Returns 0, MVX_EINVAL or MVX_EPERM (not the owner thread, or called while one of the
 * set's tasks runs on this thread: from its poll, or from a set that poll drives; nothing is
 * freed then). Owner thread only. */
MVX_EXTERN int mvx_local_set_free(mvx_local_set *set);

#ifdef __cplusplus
}
#endif

#endif /* MODUVEX_H */
