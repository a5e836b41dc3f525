/*
 * dlopen_host.c - moduvex loaded as a plugin, the way a host that never links it does.
 *
 * No link-time dependency on libmoduvex: the library is dlopen()ed by its SONAME (the test
 * harness puts the build tree's .libs on LD_LIBRARY_PATH) and every function is resolved with
 * dlvsym(..., "MODUVEX_1.0"). moduvex.h is included for its types and constants only: each call
 * goes through a pointer of the declared type (__typeof__), never through the header's linkage.
 *
 * One cycle: load, check mvx_version(), create a runtime, spawn tasks from several threads (each
 * task yields a few times, then writes an output), join them and check every output and drop,
 * shut down, release, dlclose, and check that the library is really unloaded. Two of the spawning
 * threads exit while the library is loaded, two only after dlclose (the library's thread-exit
 * destructor must not run then), and the main thread spawns too. After the cycles the thread
 * count, the descriptors and the address space must be back where they started; leaks are left to
 * LeakSanitizer (--enable-sanitizer=address) and valgrind (tests/dlopen-valgrind.sh).
 *
 * Usage: dlopen_host [cycles]   (default 100)
 * Prints "N passed, N failed"; exits 0 when every check passed.
 */
#include "config.h" /* _GNU_SOURCE: dlvsym */

#include <moduvex.h>

#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Sanitizer runtimes keep shadow memory for every address ever mapped: no address-space check. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

#define LIBNAME "libmoduvex.so.1"
#define NODE    "MODUVEX_1.0"

enum { SPAWNERS = 4, TASKS_PER_SPAWNER = 200, MAIN_TASKS = 16, LATE_EXIT_FROM = 2 };

/* ---- the API, resolved per load ---------------------------------------------------------------- */

#define MVX_API(X)                                                                                 \
    X(version)                                                                                     \
    X(version_string)                                                                              \
    X(strerror)                                                                                    \
    X(last_error)                                                                                  \
    X(runtime_config_init)                                                                         \
    X(runtime_new)                                                                                 \
    X(runtime_worker_count)                                                                        \
    X(runtime_shutdown)                                                                            \
    X(runtime_release)                                                                             \
    X(spawn)                                                                                       \
    X(join_wait)                                                                                   \
    X(join_take)                                                                                   \
    X(join_release)                                                                                \
    X(context_waker)                                                                               \
    X(waker_wake_by_ref)

struct api {
#define FIELD(name) __typeof__(mvx_##name) *name;
    MVX_API(FIELD)
#undef FIELD
};

static struct api api; /* the current load's functions; the tasks' callbacks use it */

/* ---- checks ------------------------------------------------------------------------------------ */

static int passed, failed;

#define CHECK(cond, ...) check_((cond) != 0, #cond, __FILE__, __LINE__, __VA_ARGS__)
/* Checks that must hold for the run to go on (a failed load, a failed thread start). */
#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!CHECK(cond, __VA_ARGS__))                                                             \
            finish(1);                                                                             \
    } while (0)

static void finish(int fatal);

__attribute__((format(printf, 5, 6))) static int check_(int ok, const char *what,
                                                        const char *file, int line,
                                                        const char *fmt, ...)
{
    if (ok) {
        passed++;
        return 1;
    }
    failed++;
    fprintf(stderr, "FAIL %s:%d: %s: ", file, line, what);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 0;
}

static void finish(int fatal)
{
    printf("%d passed, %d failed\n", passed, failed);
    fflush(stdout);
    exit(fatal || failed ? 1 : 0);
}

/* ---- process state: threads, descriptors, address space ---------------------------------------- */

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n; /* for /proc/self/fd, opendir's own descriptor included: compare counts only */
}

static int thread_count(void)
{
    return count_dir("/proc/self/task");
}

/* Joined threads leave /proc/self/task a moment after pthread_join returns: wait up to 2 s. */
static int thread_count_settled(int want)
{
    int n = thread_count();
    for (int i = 0; i < 200 && n != want; i++) {
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
        n = thread_count();
    }
    return n;
}

/* The count once two readings 20 ms apart agree (a joined thread may linger for a moment). */
static int thread_count_stable(void)
{
    int n = thread_count(), m;
    for (int i = 0; i < 100; i++, n = m) {
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
        if ((m = thread_count()) == n)
            break;
    }
    return n;
}

static long vm_pages(void)
{
    long size = -1;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld", &size) != 1)
            size = -1;
        fclose(f);
    }
    return size;
}

/* ---- the task: yields `yields` times, then writes id * 3 + 1 ------------------------------------ */

struct task_state {
    int id;
    int yields;
};

static atomic_int polls, drops;

static int yielding_poll(void *state, mvx_context *cx, void *output)
{
    struct task_state *s = state;
    atomic_fetch_add_explicit(&polls, 1, memory_order_relaxed);
    if (s->yields-- > 0) {
        api.waker_wake_by_ref(api.context_waker(cx));
        return MVX_POLL_PENDING;
    }
    *(long *)output = (long)s->id * 3 + 1;
    return MVX_POLL_READY;
}

static void state_drop(void *state)
{
    (void)state;
    atomic_fetch_add_explicit(&drops, 1, memory_order_relaxed);
}

static const mvx_task_vtable task_vt = {
    sizeof(mvx_task_vtable), yielding_poll, state_drop, NULL,
    sizeof(struct task_state), _Alignof(struct task_state), sizeof(long), _Alignof(long),
    NULL, NULL,
};

/* Spawns n tasks with ids first..first+n-1 and joins them; returns the number of bad outputs. */
static int spawn_and_join(mvx_runtime *rt, int first, int n)
{
    mvx_join_handle **jh = calloc((size_t)n, sizeof *jh);
    if (!jh)
        return n;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        struct task_state s = {first + i, i % 5};
        int rc = api.spawn(rt, &task_vt, &s, &jh[i]);
        if (rc != 0) {
            fprintf(stderr, "mvx_spawn: %s (%s)\n", api.strerror(rc), api.last_error());
            jh[i] = NULL;
            bad++;
        }
    }
    for (int i = 0; i < n; i++) {
        if (!jh[i])
            continue;
        long out = -1;
        int rc = api.join_wait(jh[i], MVX_TIMEOUT_INFINITE);
        if (rc == 0)
            rc = api.join_take(jh[i], &out, sizeof out, NULL);
        if (rc != 0 || out != (long)(first + i) * 3 + 1) {
            fprintf(stderr, "task %d: %s, output %ld\n", first + i, api.strerror(rc), out);
            bad++;
        }
        api.join_release(jh[i]);
    }
    free(jh);
    return bad;
}

struct spawner {
    pthread_t thread;
    mvx_runtime *rt;
    int index;
    int bad;
    pthread_barrier_t *start;    /* all spawners begin together */
    pthread_barrier_t *done;     /* every task of the cycle joined, the main thread's too */
    pthread_barrier_t *unloaded; /* late exiters wait here until the library is gone */
};

static void *nothing(void *arg)
{
    return arg;
}

static void *spawner_main(void *arg)
{
    struct spawner *sp = arg;
    pthread_barrier_wait(sp->start);
    sp->bad = spawn_and_join(sp->rt, sp->index * TASKS_PER_SPAWNER, TASKS_PER_SPAWNER);
    pthread_barrier_wait(sp->done);
    if (sp->index >= LATE_EXIT_FROM)
        pthread_barrier_wait(sp->unloaded);
    return NULL;
}

/* ---- one load/use/unload cycle ---------------------------------------------------------------- */

static void cycle(int n)
{
    void *h = dlopen(LIBNAME, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        fprintf(stderr, "dlopen(%s): %s\n(run it with LD_LIBRARY_PATH=<build dir>/.libs)\n",
                LIBNAME, dlerror());
    REQUIRE(h != NULL, "cycle %d", n);

    int missing = 0;
#define RESOLVE(name)                                                                              \
    api.name = (__typeof__(mvx_##name) *)dlvsym(h, "mvx_" #name, NODE);                            \
    if (!api.name) {                                                                               \
        fprintf(stderr, "dlvsym(mvx_%s, %s): %s\n", #name, NODE, dlerror());                       \
        missing++;                                                                                 \
    }
    MVX_API(RESOLVE)
#undef RESOLVE
    REQUIRE(missing == 0, "%d functions missing at %s", missing, NODE);

    int v = api.version();
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.", v / 10000, v / 100 % 100);
    CHECK(v / 10000 == MVX_VERSION_MAJOR && v / 100 % 100 >= MVX_VERSION_MINOR,
          "mvx_version() = %d, header MVX_VERSION_HEX = %d: need the same major, a minor >= %d",
          v, MVX_VERSION_HEX, MVX_VERSION_MINOR);
    CHECK(strncmp(api.version_string(), expect, strlen(expect)) == 0,
          "mvx_version_string() = \"%s\" for mvx_version() = %d", api.version_string(), v);

    mvx_runtime_config cfg;
    REQUIRE(api.runtime_config_init(&cfg, sizeof cfg) == 0, "%s", api.last_error());
    cfg.worker_threads = 2;
    cfg.thread_name = "dlhost";
    mvx_runtime *rt = NULL;
    int rc = api.runtime_new(&cfg, &rt);
    REQUIRE(rc == 0, "mvx_runtime_new: %s (%s)", api.strerror(rc), api.last_error());
    CHECK(api.runtime_worker_count(rt) == 2, "%u workers", api.runtime_worker_count(rt));

    atomic_store(&polls, 0);
    atomic_store(&drops, 0);
    pthread_barrier_t start, done, unloaded;
    pthread_barrier_init(&start, NULL, SPAWNERS);
    pthread_barrier_init(&done, NULL, SPAWNERS + 1);
    pthread_barrier_init(&unloaded, NULL, SPAWNERS - LATE_EXIT_FROM + 1);
    struct spawner sp[SPAWNERS];
    for (int i = 0; i < SPAWNERS; i++) {
        sp[i] = (struct spawner){
            .rt = rt, .index = i, .start = &start, .done = &done, .unloaded = &unloaded};
        REQUIRE(pthread_create(&sp[i].thread, NULL, spawner_main, &sp[i]) == 0, "thread %d", i);
    }
    int bad = spawn_and_join(rt, SPAWNERS * TASKS_PER_SPAWNER, MAIN_TASKS);
    pthread_barrier_wait(&done);
    for (int i = 0; i < LATE_EXIT_FROM; i++) { /* the early exiters exit with the library loaded */
        pthread_join(sp[i].thread, NULL);
        bad += sp[i].bad;
    }

    int total = SPAWNERS * TASKS_PER_SPAWNER + MAIN_TASKS;
    int yields = 0;
    for (int i = 0; i < TASKS_PER_SPAWNER; i++)
        yields += i % 5;
    yields = yields * SPAWNERS;
    for (int i = 0; i < MAIN_TASKS; i++)
        yields += i % 5;

    rc = api.runtime_shutdown(rt, 5 * (int64_t)1000000000);
    CHECK(rc == 0, "mvx_runtime_shutdown left %d running", rc);
    rc = api.runtime_release(rt);
    CHECK(rc == 0, "mvx_runtime_release: %s", api.strerror(rc));

    memset(&api, 0, sizeof api);
    CHECK(dlclose(h) == 0, "dlclose: %s", dlerror());
    void *still = dlopen(LIBNAME, RTLD_NOW | RTLD_NOLOAD);
    CHECK(still == NULL, "cycle %d: %s still loaded after dlclose", n, LIBNAME);
    if (still)
        dlclose(still);

    pthread_barrier_wait(&unloaded); /* the late exiters exit now, library gone */
    for (int i = LATE_EXIT_FROM; i < SPAWNERS; i++) {
        pthread_join(sp[i].thread, NULL);
        bad += sp[i].bad;
    }
    pthread_barrier_destroy(&start);
    pthread_barrier_destroy(&done);
    pthread_barrier_destroy(&unloaded);

    CHECK(bad == 0, "cycle %d: %d tasks failed or gave a wrong output", n, bad);
    CHECK(atomic_load(&drops) == total, "cycle %d: %d drops for %d tasks", n, atomic_load(&drops),
          total);
    CHECK(atomic_load(&polls) == total + yields, "cycle %d: %d polls, expected %d", n,
          atomic_load(&polls), total + yields);
}

int main(int argc, char **argv)
{
    int cycles = argc > 1 ? atoi(argv[1]) : 100;
    if (cycles < 1)
        cycles = 1;

    /* Not linked: nothing may have loaded the library yet. */
    void *pre = dlopen(LIBNAME, RTLD_NOW | RTLD_NOLOAD);
    CHECK(pre == NULL, "%s is loaded before the first dlopen: linked by mistake?", LIBNAME);

    /* ThreadSanitizer starts a helper thread with the first pthread_create: let it, then count. */
    pthread_t warm_up;
    if (pthread_create(&warm_up, NULL, nothing, NULL) == 0)
        pthread_join(warm_up, NULL);
    int threads0 = thread_count_stable(), fds0 = count_dir("/proc/self/fd");
    long vm_after_first = 0;
    for (int n = 1; n <= cycles; n++) {
        cycle(n);
        int threads = thread_count_settled(threads0);
        CHECK(threads == threads0, "cycle %d: %d threads, %d before the first load", n, threads,
              threads0);
        if (n == 1)
            vm_after_first = vm_pages();
    }
    int fds = count_dir("/proc/self/fd");
    CHECK(fds == fds0, "%d open descriptors after %d cycles, %d before", fds, cycles, fds0);
    /* A leaked 2 MiB task segment (mmap, invisible to leak checkers) per cycle would show here. */
    long vm_growth_kib = (vm_pages() - vm_after_first) * (sysconf(_SC_PAGESIZE) / 1024);
    CHECK(SANITIZED || cycles < 10 || vm_growth_kib < 16 * 1024,
          "address space grew by %ld KiB over cycles 2..%d", vm_growth_kib, cycles);
    printf("%d load/use/unload cycles of %s, %d tasks each from %d threads; threads %d -> %d, "
           "address space +%ld KiB after the first cycle\n",
           cycles, LIBNAME, SPAWNERS * TASKS_PER_SPAWNER + MAIN_TASKS, SPAWNERS + 1, threads0,
           thread_count(), vm_growth_kib);
    finish(0);
}
