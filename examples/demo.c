/*
 * demo.c - moduvex in two workloads:
 *   1. a parallel computation as a task tree: fib(n), each task above a cutoff spawns its two
 *      sub-problems as tasks and awaits their join handles (mvx_join_poll with its own waker);
 *   2. a burst of 1,000,000 tasks spawned from the main thread, then all joined.
 * Prints the results and tasks per second.
 *
 * Usage: demo [fib_n [burst_tasks [workers]]]
 */
#include <moduvex.h>

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int code)
{
    fprintf(stderr, "demo: %s: %s (%s)\n", what, mvx_strerror(code), mvx_last_error());
    exit(1);
}

/* ---- 1. the task tree ---- */

#define CUTOFF 15

static atomic_long tree_tasks;

static uint64_t fib_serial(int n)
{
    return n < 2 ? (uint64_t)n : fib_serial(n - 1) + fib_serial(n - 2);
}

struct fib {
    int n;
    int next; /* which child we await */
    uint64_t sum;
    mvx_join_handle *child[2];
};

static const mvx_task_vtable fib_vt;

static int fib_poll(void *state, mvx_context *cx, void *output)
{
    struct fib *f = state;
    if (f->n < CUTOFF) {
        *(uint64_t *)output = fib_serial(f->n);
        return MVX_POLL_READY;
    }
    if (f->next == 0 && !f->child[0]) {
        for (int i = 0; i < 2; i++) {
            struct fib sub = {f->n - 1 - i, 0, 0, {NULL, NULL}};
            int r = mvx_spawn(mvx_runtime_current(), &fib_vt, &sub, &f->child[i]);
            if (r != 0)
                return mvx_context_fail(cx, r, "spawn failed", NULL, NULL), MVX_POLL_FAILED;
            atomic_fetch_add_explicit(&tree_tasks, 1, memory_order_relaxed);
        }
    }
    for (; f->next < 2; f->next++) {
        mvx_join_handle *child = f->child[f->next];
        int r = mvx_join_poll(child, mvx_context_waker(cx));
        if (r == MVX_EAGAIN)
            return MVX_POLL_PENDING; /* woken when the child finishes */
        uint64_t v = 0;
        if (r == 0)
            mvx_join_take(child, &v, sizeof v, NULL);
        mvx_join_release(child);
        f->child[f->next] = NULL;
        if (r != 0)
            return mvx_context_fail(cx, r, "child failed", NULL, NULL), MVX_POLL_FAILED;
        f->sum += v;
    }
    *(uint64_t *)output = f->sum;
    return MVX_POLL_READY;
}

static void fib_drop(void *state)
{
    struct fib *f = state;
    for (int i = 0; i < 2; i++)
        if (f->child[i]) {
            mvx_join_abort(f->child[i]);
            mvx_join_release(f->child[i]);
        }
}

static const mvx_task_vtable fib_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = fib_poll,
    .drop = fib_drop,
    .state_size = sizeof(struct fib),
    .state_align = _Alignof(struct fib),
    .output_size = sizeof(uint64_t),
    .output_align = _Alignof(uint64_t),
};

/* ---- 2. the burst ---- */

static int square_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    uint64_t x = *(uint32_t *)state;
    *(uint64_t *)output = x * x;
    return MVX_POLL_READY;
}

static const mvx_task_vtable square_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = square_poll,
    .state_size = sizeof(uint32_t),
    .state_align = _Alignof(uint32_t),
    .output_size = sizeof(uint64_t),
    .output_align = _Alignof(uint64_t),
};

int main(int argc, char **argv)
{
    int fib_n = argc > 1 ? atoi(argv[1]) : 32;
    long burst = argc > 2 ? atol(argv[2]) : 1000000;
    mvx_runtime_config cfg;
    mvx_runtime_config_init(&cfg, sizeof cfg);
    cfg.worker_threads = argc > 3 ? (unsigned)atoi(argv[3]) : 0;
    mvx_runtime *rt;
    int r = mvx_runtime_new(&cfg, &rt);
    if (r)
        die("mvx_runtime_new", r);
    printf("moduvex %s, %u worker threads\n", mvx_version_string(), mvx_runtime_worker_count(rt));

    /* 1. The root runs on this thread (block_on); the tree spreads over the workers. */
    struct fib root = {fib_n, 0, 0, {NULL, NULL}};
    uint64_t result = 0;
    double t0 = now_s();
    r = mvx_block_on(rt, &fib_vt, &root, &result, sizeof result, NULL);
    double tree_s = now_s() - t0;
    if (r)
        die("task tree", r);
    long tasks = atomic_load(&tree_tasks) + 1;
    printf("task tree: fib(%d) = %llu, %ld tasks in %.1f ms (%.0f tasks/s; serial below %d)\n",
           fib_n, (unsigned long long)result, tasks, tree_s * 1e3, (double)tasks / tree_s, CUTOFF);
    uint64_t a = 0, b = 1; /* check against the closed loop */
    for (int i = 0; i < fib_n; i++) {
        uint64_t t = a + b;
        a = b;
        b = t;
    }
    if (result != a) {
        fprintf(stderr, "demo: wrong result, expected %llu\n", (unsigned long long)a);
        return 1;
    }

    /* 2. Spawn everything from here, then join everything. */
    mvx_join_handle **jh = malloc((size_t)burst * sizeof *jh);
    if (!jh)
        die("malloc", MVX_ENOMEM);
    t0 = now_s();
    for (long i = 0; i < burst; i++) {
        uint32_t x = (uint32_t)i;
        if ((r = mvx_spawn(rt, &square_vt, &x, &jh[i])) != 0)
            die("mvx_spawn", r);
    }
    double spawned_s = now_s() - t0;
    uint64_t sum = 0;
    for (long i = 0; i < burst; i++) {
        uint64_t v = 0;
        if ((r = mvx_join_wait(jh[i], MVX_TIMEOUT_INFINITE)) != 0 ||
            (r = mvx_join_take(jh[i], &v, sizeof v, NULL)) != 0)
            die("join", r);
        sum += v;
        mvx_join_release(jh[i]);
    }
    double burst_s = now_s() - t0;
    free(jh);
    printf("burst: %ld tasks spawned in %.1f ms, all joined after %.1f ms (%.0f tasks/s); "
           "sum of squares = %llu\n",
           burst, spawned_s * 1e3, burst_s * 1e3, (double)burst / burst_s, (unsigned long long)sum);

    r = mvx_runtime_release(rt);
    if (r)
        die("mvx_runtime_release", r);
    return 0;
}
