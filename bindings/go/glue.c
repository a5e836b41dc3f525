/* glue.c - see glue.h. */
#include "glue.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static gomvx_res fail(int rc, const char *msg)
{
    gomvx_res r = {.rc = rc};
    r.msg = strdup(msg && *msg ? msg : mvx_strerror(rc));
    return r;
}

static gomvx_res last(int rc) { return fail(rc, mvx_last_error()); }

gomvx_res gomvx_runtime_new(unsigned workers, const char *name, unsigned max_blocking,
                            int set_max_blocking)
{
    mvx_runtime_config cfg;
    int rc = mvx_runtime_config_init(&cfg, sizeof cfg);
    if (rc)
        return last(rc);
    cfg.worker_threads = workers;
    if (name)
        cfg.thread_name = name;
    if (set_max_blocking)
        cfg.max_blocking_threads = max_blocking;
    mvx_runtime *rt;
    rc = mvx_runtime_new(&cfg, &rt);
    if (rc)
        return last(rc);
    return (gomvx_res){.p = rt};
}

gomvx_res gomvx_runtime_close(mvx_runtime *rt)
{
    int left = mvx_runtime_shutdown(rt, MVX_TIMEOUT_INFINITE);
    if (left < 0)
        return last(left);
    int rc = mvx_runtime_release(rt);
    if (rc)
        return last(rc);
    return (gomvx_res){.n = (size_t)left};
}

/* The notifier and a dup of its fd for Go's os.File, which closes what it owns (the notifier
 * closes its own fd in mvx_notifier_free). dup keeps O_NONBLOCK: the flag is the file's. */
gomvx_res gomvx_notifier_new(void)
{
    mvx_notifier *n;
    int rc = mvx_notifier_new(&n);
    if (rc)
        return last(rc);
    int fd = fcntl(mvx_notifier_fd(n), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        mvx_notifier_free(n);
        return fail(MVX_ESYSTEM, strerror(e));
    }
    return (gomvx_res){.p = n, .n = (size_t)fd};
}

gomvx_res gomvx_signature_parse(const char *text, size_t len)
{
    mvx_signature *sig;
    int rc = mvx_signature_parse(text, len, &sig);
    if (rc)
        return last(rc);
    gomvx_res r = {.p = sig, .n = mvx_signature_return_size(sig)};
    r.outcome = mvx_signature_arg_count(sig);
    return r;
}

gomvx_res gomvx_lookup(const char *lib, const char *sym)
{
    /* Never closed: the functions found must stay valid for the life of the process. */
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return fail(MVX_EINVAL, dlerror());
    dlerror();
    void *p = dlsym(h, sym);
    const char *e = dlerror();
    if (e)
        return fail(MVX_EINVAL, e);
    if (!p)
        return fail(MVX_EINVAL, "the symbol's address is NULL");
    return (gomvx_res){.p = p};
}

/* Registers a waker queueing `token` on n for the handle's completion; the handle keeps a clone.
 * Returns the outcome at registration: MVX_EAGAIN (the token will come), or the outcome of a task
 * that already finished (no token will come). */
static int watch(mvx_join_handle *jh, mvx_notifier *n, uint64_t token)
{
    mvx_waker w;
    int rc = mvx_notifier_waker(n, token, &w);
    if (rc)
        return rc;
    rc = mvx_join_poll(jh, &w);
    mvx_waker_drop(&w);
    return rc;
}

/* ---- a call's completion word ----
 *
 * A call's join waker is a gomvx_done, not a notifier waker: waking it only marks `state` DONE,
 * which Go reads from this C memory without a cgo call, so that a Wait that checks briefly before
 * it parks (and one that comes after the task finished) costs no notifier waker, no eventfd
 * write, no netpoller wake-up and no poller goroutine. Only a waiter about to park arms it
 * (gomvx_arm, after Go registered the token: it makes the notifier waker, then PENDING -> ARMED);
 * a wake that finds it ARMED forwards to the notifier:
 *
 *   PENDING --Go arms--> ARMED --wake--> DONE, and queues the token
 *      \-------------------wake--------^   (no token: Go sees DONE when it checks or arms)
 *
 * The struct lives until Go's reference (dropped by gomvx_release) and the waker copies' are all
 * gone. `state` is the first member: Go atomically reads the uint32 at its address. */
typedef struct gomvx_done {
    _Atomic uint32_t state; /* GOMVX_PENDING, GOMVX_ARMED, GOMVX_DONE */
    _Atomic uint32_t refs;  /* Go's, plus one per waker copy */
    mvx_waker notify;       /* queues the token on the notifier; set by gomvx_arm before ARMED */
    _Atomic int64_t done_ns; /* CLOCK_MONOTONIC when an ARMED word was woken (0: not yet) */
} gomvx_done;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void done_unref(gomvx_done *d)
{
    if (atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) == 1) {
        mvx_waker_drop(&d->notify);
        free(d);
    }
}

static void *done_clone(void *data)
{
    atomic_fetch_add_explicit(&((gomvx_done *)data)->refs, 1, memory_order_relaxed);
    return data;
}

static void done_wake_by_ref(void *data)
{
    gomvx_done *d = data;
    if (atomic_exchange_explicit(&d->state, GOMVX_DONE, memory_order_acq_rel) == GOMVX_ARMED) {
        /* For the waiter's spin to learn how long a spin would have needed (handle.go). */
        atomic_store_explicit(&d->done_ns, now_ns(), memory_order_relaxed);
        mvx_waker_wake_by_ref(&d->notify);
    }
}

static void done_wake(void *data)
{
    done_wake_by_ref(data);
    done_unref(data);
}

static void done_drop(void *data) { done_unref(data); }

static const mvx_waker_vtable done_vt = {
    sizeof(mvx_waker_vtable), done_clone, done_wake, done_wake_by_ref, done_drop,
};

gomvx_res gomvx_call(uintptr_t rt, uintptr_t fn, uintptr_t sig, const unsigned char *buf,
                     uint64_t small0, uint64_t small1, const uint32_t *offsets, unsigned nargs,
                     unsigned flags)
{
    uint64_t small[2] = {small0, small1};
    if (!buf)
        buf = (const unsigned char *)small;
    void *args[32];
    for (unsigned i = 0; i < nargs && i < 32; i++)
        args[i] = (void *)(buf + offsets[i]);
    gomvx_done *d = malloc(sizeof *d);
    if (!d)
        return fail(MVX_ENOMEM, "Go: out of memory");
    atomic_init(&d->state, GOMVX_PENDING);
    atomic_init(&d->refs, 1);
    d->notify = (mvx_waker){NULL, NULL};
    atomic_init(&d->done_ns, 0);
    mvx_join_handle *jh;
    int rc = mvx_spawn_call((mvx_runtime *)rt, (void (*)(void))fn, (const mvx_signature *)sig, args,
                            flags, &jh);
    if (rc) {
        gomvx_res r = last(rc);
        done_unref(d);
        return r;
    }
    mvx_waker w = {&done_vt, d};
    int outcome = mvx_join_poll(jh, &w); /* keeps a clone unless finished */
    if (outcome == MVX_EINVAL || outcome == MVX_ENOMEM) {
        gomvx_res r = last(outcome);
        mvx_join_abort(jh);
        mvx_join_release(jh);
        done_unref(d);
        return r;
    }
    return (gomvx_res){.p = jh, .q = d, .outcome = outcome};
}

gomvx_armed gomvx_arm(uintptr_t done, mvx_notifier *n, uint64_t token)
{
    gomvx_done *d = (gomvx_done *)done;
    int rc = mvx_notifier_waker(n, token, &d->notify);
    if (rc)
        return (gomvx_armed){rc, 0};
    int64_t at = now_ns();
    uint32_t pending = GOMVX_PENDING;
    if (atomic_compare_exchange_strong_explicit(&d->state, &pending, GOMVX_ARMED,
                                                memory_order_acq_rel, memory_order_acquire))
        return (gomvx_armed){1, at};
    mvx_waker_drop(&d->notify); /* finished first: no wake will read it */
    return (gomvx_armed){0, 0};
}

int64_t gomvx_done_ns(uintptr_t done)
{
    return atomic_load_explicit(&((gomvx_done *)done)->done_ns, memory_order_relaxed);
}

void gomvx_release(uintptr_t jh, uintptr_t done)
{
    mvx_join_release((mvx_join_handle *)jh);
    if (done)
        done_unref((gomvx_done *)done);
}

gomvx_res gomvx_watch(mvx_join_handle *jh, mvx_notifier *n, uint64_t token)
{
    int outcome = watch(jh, n, token);
    if (outcome == MVX_EINVAL || outcome == MVX_ENOMEM)
        return last(outcome);
    return (gomvx_res){.outcome = outcome};
}

static gomvx_res take_failure(mvx_join_handle *jh)
{
    mvx_failure f = {.size = sizeof f};
    int rc = mvx_join_take(jh, NULL, 0, &f);
    if (rc != MVX_EFAILED)
        return rc ? last(rc) : (gomvx_res){0};
    gomvx_res r = {.rc = MVX_EFAILED, .code = f.code, .msg = strdup(f.message ? f.message : "")};
    mvx_failure_clear(&f);
    return r;
}

gomvx_res gomvx_take(mvx_join_handle *jh, void *out, size_t size)
{
    int rc = mvx_join_take(jh, out, size, NULL);
    if (rc == MVX_EFAILED)
        return take_failure(jh);
    if (rc == MVX_ECANCELLED)
        return (gomvx_res){.rc = rc};
    if (rc)
        return last(rc);
    return (gomvx_res){0};
}

gomvx_res gomvx_take_none(uintptr_t jh)
{
    return gomvx_take((mvx_join_handle *)jh, NULL, 0);
}

gomvx_res gomvx_take_small(uintptr_t jh, size_t size)
{
    uint64_t v = 0;
    gomvx_res r = gomvx_take((mvx_join_handle *)jh, &v, size);
    r.small = v;
    return r;
}

gomvx_res gomvx_take_bytes(mvx_join_handle *jh)
{
    gomvx_bytes b;
    gomvx_res r = gomvx_take(jh, &b, sizeof b);
    if (r.rc == 0) {
        r.p = b.data;
        r.n = b.len;
    }
    return r;
}

static void bytes_drop(void *output) { free(((gomvx_bytes *)output)->data); }

gomvx_res gomvx_promise_new(mvx_runtime *rt, mvx_notifier *n, uint64_t done_token,
                            uint64_t cancel_token)
{
    mvx_promise *p;
    mvx_join_handle *jh;
    int rc = mvx_spawn_promise(rt, sizeof(gomvx_bytes), _Alignof(gomvx_bytes), bytes_drop, &p,
                               &jh);
    if (rc)
        return last(rc);
    gomvx_res r = {.p = p, .q = jh};
    mvx_waker w;
    rc = mvx_notifier_waker(n, cancel_token, &w);
    if (rc == 0) {
        rc = mvx_promise_on_cancel(p, &w);
        mvx_waker_drop(&w);
    }
    if (rc == 0) {
        r.outcome = watch(jh, n, done_token);
        if (r.outcome == MVX_EINVAL || r.outcome == MVX_ENOMEM)
            rc = r.outcome;
    }
    if (rc) {
        gomvx_res e = last(rc);
        mvx_promise_release(p); /* cancels the task */
        mvx_join_release(jh);
        return e;
    }
    return r;
}

/* Resolves with a malloc'd copy of data and gives up the producer's side. */
gomvx_res gomvx_promise_resolve(mvx_promise *p, const void *data, size_t len)
{
    gomvx_bytes b = {NULL, len};
    if (len) {
        b.data = malloc(len);
        if (!b.data) {
            mvx_promise_release(p);
            return fail(MVX_ENOMEM, "Go: could not copy the output");
        }
        memcpy(b.data, data, len);
    }
    int rc = mvx_promise_resolve(p, &b);
    gomvx_res r = {.rc = rc};
    if (rc)
        free(b.data); /* cancelled first: still ours */
    mvx_promise_release(p);
    return r;
}

gomvx_res gomvx_promise_fail(mvx_promise *p, int code, const char *msg)
{
    int rc = mvx_promise_fail(p, code, msg, NULL, NULL);
    mvx_promise_release(p);
    return (gomvx_res){.rc = rc};
}
