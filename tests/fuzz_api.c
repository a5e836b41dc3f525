/*
 * fuzz_api.c - libFuzzer harness for sequences of public calls (make fuzz-api).
 *
 * Each input is a program: every op byte picks a call and the following bytes its operands, on
 * small pools of runtimes, join handles, parked task wakers, foreign and notifier wakers, local
 * sets, notifiers and promises. Only sequences the header allows are formed: a handle is not
 * used after its release, local sets are driven on their owner (this thread), no wait is
 * infinite unless the task must finish. Results are checked against the header (the outcome
 * codes each call may return, a take agreeing with try) and, at the end of each input, after
 * everything is released, the input's own runtime shut down with an infinite timeout and the
 * tasks of the runtime kept across inputs woken and settled, the accounting must be exact: every state spawned dropped exactly once, every output written taken or
 * dropped exactly once, every failure payload dropped once, every foreign waker clone given
 * back. LeakSanitizer (libFuzzer's -detect_leaks) checks the rest. A violation aborts, so
 * libFuzzer keeps the input. Built with clang's -fsanitize=fuzzer,address,undefined.
 */
#include <moduvex.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MS ((int64_t)1000000)

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_api: %s:%d: ", __FILE__, __LINE__);                              \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, " (last error: %s)\n", mvx_last_error());                              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* ---- accounting, reset per input ---- */
#define MAX_IDS 512
static atomic_int next_id;
static atomic_int spawned[MAX_IDS], drops[MAX_IDS], produced[MAX_IDS], taken[MAX_IDS],
    out_drops[MAX_IDS], payload_made[MAX_IDS], payload_drops[MAX_IDS];
static atomic_int foreign_refs;
static int payload_ids[MAX_IDS];

static int new_id(void)
{
    int id = atomic_fetch_add(&next_id, 1);
    return id < MAX_IDS ? id : 0; /* id 0: the overflow bucket, not checked */
}

static void *fw_clone(void *d)
{
    atomic_fetch_add(&foreign_refs, 1);
    return d;
}
static void fw_wake(void *d)
{
    (void)d;
    atomic_fetch_sub(&foreign_refs, 1);
}
static void fw_wake_by_ref(void *d)
{
    (void)d;
}
static const mvx_waker_vtable foreign_vt = {sizeof(mvx_waker_vtable), fw_clone, fw_wake,
                                            fw_wake_by_ref, fw_wake};
static int foreign_target;
static const mvx_waker foreign = {&foreign_vt, &foreign_target};

/* ---- task types: inline state {id, arg}, output the id ---- */
struct st {
    int id;
    int arg;
    mvx_join_handle *child;
    int child_id;
};

static void st_drop(void *state)
{
    struct st *s = state;
    mvx_join_release(s->child); /* a parent cancelled while awaiting its child */
    atomic_fetch_add(&drops[s->id], 1);
}
static void out_drop(void *o)
{
    atomic_fetch_add(&out_drops[*(int *)o], 1);
}
static int complete(struct st *s, void *out)
{
    *(int *)out = s->id;
    atomic_fetch_add(&produced[s->id], 1);
    return MVX_POLL_READY;
}

static void payload_drop_counted(void *p)
{
    atomic_fetch_add(&payload_drops[*(int *)p], 1);
}
extern const mvx_task_vtable fuzz_task_vt;

/* Parked wakers: park tasks leave a clone in parked[arg]; ops wake, drop or clone them. */
#define NPARK 4
static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static mvx_waker parked[NPARK];
static atomic_int park_open[NPARK];

enum kind { K_YIELD, K_PARK, K_FAIL, K_PARENT, K_BAD, NKINDS };

static int task_poll(void *state, mvx_context *cx, void *out)
{
    struct st *s = state;
    switch (s->arg >> 8) {
    case K_YIELD:
        if ((s->arg & 3) > 0) {
            s->arg--;
            mvx_waker_wake_by_ref(mvx_context_waker(cx));
            return MVX_POLL_PENDING;
        }
        return complete(s, out);
    case K_PARK: {
        int slot = s->arg & (NPARK - 1);
        if (atomic_load(&park_open[slot]))
            return complete(s, out);
        pthread_mutex_lock(&park_lock);
        mvx_waker_drop(&parked[slot]);
        CHECK(mvx_waker_clone(mvx_context_waker(cx), &parked[slot]) == 0, "clone");
        pthread_mutex_unlock(&park_lock);
        if (atomic_load(&park_open[slot])) /* opened meanwhile: its wake may have missed us */
            return complete(s, out);
        return MVX_POLL_PENDING;
    }
    case K_FAIL: {
        /* The payload's destructor counts; a second description replaces (drops) the first;
         * returning anything but FAILED discards it. */
        payload_ids[s->id] = s->id;
        atomic_fetch_add(&payload_made[s->id], 1);
        int r = mvx_context_fail(cx, 77, (s->arg & 1) ? "boom" : NULL, &payload_ids[s->id],
                                 payload_drop_counted);
        CHECK(r == 0, "mvx_context_fail: %d", r);
        if (s->arg & 2) {
            atomic_fetch_add(&payload_made[s->id], 1);
            r = mvx_context_fail(cx, 78, "again", &payload_ids[s->id], payload_drop_counted);
            CHECK(r == 0, "mvx_context_fail: %d", r);
        }
        if (s->arg & 4)
            return complete(s, out);
        return MVX_POLL_FAILED;
    }
    case K_PARENT: {
        if (!s->child_id) {
            struct st c = {.id = new_id(), .arg = (K_YIELD << 8) | 1};
            s->child_id = c.id;
            int r = mvx_spawn(mvx_runtime_current(), &(const mvx_task_vtable){0}, &c, NULL);
            CHECK(r == MVX_EINVAL, "a zeroed vtable: %d", r);
            r = mvx_spawn(mvx_runtime_current(), &fuzz_task_vt, &c, &s->child);
            CHECK(r == 0 || r == MVX_ESHUTDOWN, "spawn from a task: %d", r);
            if (r == 0)
                atomic_store(&spawned[c.id], 1);
            else
                s->child = NULL;
        }
        if (s->child) {
            int r = mvx_join_poll(s->child, mvx_context_waker(cx));
            if (r == MVX_EAGAIN)
                return MVX_POLL_PENDING;
            CHECK(r == 0 || r == MVX_ECANCELLED, "join_poll of the child: %d", r);
            int o = -1;
            int t = mvx_join_take(s->child, &o, sizeof o, NULL);
            CHECK(t == r, "take %d after poll %d", t, r);
            if (t == 0) {
                CHECK(o == s->child_id, "child output");
                atomic_fetch_add(&taken[o], 1);
            }
            mvx_join_release(s->child);
            s->child = NULL;
        }
        return complete(s, out);
    }
    default:
        return (s->arg & 1) ? 42 : MVX_POLL_FAILED;
    }
}
const mvx_task_vtable fuzz_task_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = task_poll,
    .drop = st_drop,
    .output_drop = out_drop,
    .state_size = sizeof(struct st),
    .state_align = _Alignof(struct st),
    .output_size = sizeof(int),
    .output_align = _Alignof(int),
};

static int32_t add_i32(int32_t a, int32_t b)
{
    return a + b;
}
static mvx_signature *add_sig;

/* ---- pools ----
 * rts[0] is a runtime kept from one input to the next (creating and joining threads for each
 * input would cost most of the time); rts[1] is created, shut down and released by the ops.
 * At the end of an input every task of rts[0] finishes by itself (parked ones are woken), and
 * the accounting is checked once it has settled. */
#define NRT 2
#define NH 8
#define NSET 2
#define NNOT 2
#define NNW 4
#define NPROM 4
enum hkind { H_TASK, H_CALL, H_PROMISE };
struct handle {
    mvx_join_handle *jh;
    int id;
    enum hkind kind;
    int set; /* the local set it was spawned in, or -1 */
    bool took;
};
static mvx_runtime *rts[NRT];
static struct handle hs[NH];
static mvx_local_set *sets[NSET];
static mvx_notifier *nots[NNOT];
static mvx_waker nws[NNW];
static mvx_promise *proms[NPROM];
static int prom_ids[NPROM];

struct input {
    const uint8_t *p;
    size_t n;
};
static unsigned next(struct input *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

static mvx_runtime *some_rt(struct input *in)
{
    unsigned i = next(in) % NRT;
    for (unsigned k = 0; k < NRT; k++)
        if (rts[(i + k) % NRT])
            return rts[(i + k) % NRT];
    return NULL;
}
static struct handle *free_handle(struct input *in)
{
    unsigned i = next(in) % NH;
    return hs[i].jh ? NULL : &hs[i];
}
static struct handle *used_handle(struct input *in)
{
    unsigned i = next(in) % NH;
    return hs[i].jh ? &hs[i] : NULL;
}

/* Spawns a task of a fuzzed kind with mvx_spawn, mvx_spawn_blocking or mvx_local_spawn. */
static void do_spawn(struct input *in, int how)
{
    unsigned a = next(in), b = next(in);
    struct st s = {.id = new_id(), .arg = (int)((a % NKINDS) << 8 | (b & 0xff))};
    if (how == 1 && (a % NKINDS == K_PARK || a % NKINDS == K_PARENT))
        s.arg = (K_YIELD << 8); /* blocking jobs run once: no parking, no awaiting */
    if (how == 1 && (a % NKINDS) == K_YIELD)
        s.arg &= ~3;
    struct handle *h = (b & 0x80) ? NULL : free_handle(in);
    int r, set = -1;
    if (how == 2) {
        set = (int)(next(in) % NSET);
        if (!sets[set])
            return;
        r = mvx_local_spawn(sets[set], &fuzz_task_vt, &s, h ? &h->jh : NULL);
    } else {
        mvx_runtime *rt = some_rt(in);
        if (!rt)
            return;
        r = how ? mvx_spawn_blocking(rt, &fuzz_task_vt, &s, h ? &h->jh : NULL)
                : mvx_spawn(rt, &fuzz_task_vt, &s, h ? &h->jh : NULL);
    }
    CHECK(r == 0 || r == MVX_ESHUTDOWN, "spawn: %d", r);
    if (r == 0) {
        atomic_store(&spawned[s.id], 1);
        if (h) {
            h->id = s.id;
            h->kind = H_TASK;
            h->set = set;
            h->took = false;
        }
    } else if (h) {
        h->jh = NULL;
    }
}

static void check_take(struct handle *h)
{
    int o = -1;
    mvx_failure f = {.size = sizeof f};
    int before = mvx_join_try(h->jh);
    int r = mvx_join_take(h->jh, &o, sizeof o, &f);
    if (h->took) {
        CHECK(r == MVX_ETAKEN, "second take: %d", r);
        return;
    }
    CHECK(r == before || (before == MVX_EAGAIN && r != MVX_ETAKEN), "take %d, try %d", r,
          before);
    switch (r) {
    case 0:
        if (h->kind == H_CALL) {
            CHECK(o == 42, "call output %d", o);
        } else {
            CHECK(o == h->id, "output %d of task %d", o, h->id);
            atomic_fetch_add(&taken[o], 1);
        }
        h->took = true;
        break;
    case MVX_EFAILED:
        CHECK(f.message != NULL, "failure without a message");
        mvx_failure_clear(&f);
        h->took = true;
        break;
    case MVX_ECANCELLED:
    case MVX_EAGAIN:
        break;
    default:
        CHECK(0, "take: %d", r);
    }
}

static void release_handle(struct handle *h)
{
    mvx_join_release(h->jh);
    h->jh = NULL;
}

static void open_park(int slot)
{
    atomic_store(&park_open[slot], 1);
    pthread_mutex_lock(&park_lock);
    mvx_waker_wake(&parked[slot]);
    pthread_mutex_unlock(&park_lock);
}

static bool trace; /* FUZZ_API_TRACE=1: print each op, to read a crashing input */

static void op(struct input *in)
{
    unsigned code = next(in);
    if (trace) {
        fprintf(stderr, "op %2u:", code % 32);
        for (size_t i = 0; i < in->n && i < 4; i++)
            fprintf(stderr, " %u", in->p[i]);
        fprintf(stderr, "\n");
    }
    switch (code % 32) {
    case 0: { /* runtime new (slot 0 is the persistent runtime) */
        unsigned i = 1 + next(in) % (NRT - 1), a = next(in);
        if (rts[i])
            return;
        mvx_runtime_config cfg;
        CHECK(mvx_runtime_config_init(&cfg, sizeof cfg) == 0, "config_init");
        cfg.worker_threads = 1 + (a & 1);
        cfg.max_blocking_threads = 1 + ((a >> 1) & 1);
        int r = mvx_runtime_new(&cfg, &rts[i]);
        CHECK(r == 0, "mvx_runtime_new: %d", r);
        return;
    }
    case 1: { /* shutdown without waiting, or briefly */
        mvx_runtime *rt = rts[1 + next(in) % (NRT - 1)];
        if (rt) {
            int r = mvx_runtime_shutdown(rt, (next(in) & 1) ? MS : 0);
            CHECK(r >= 0, "shutdown: %d", r);
        }
        return;
    }
    case 2: { /* release (after a complete shutdown, so that its tasks are all accounted) */
        unsigned i = 1 + next(in) % (NRT - 1);
        if (!rts[i])
            return;
        CHECK(mvx_runtime_shutdown(rts[i], MVX_TIMEOUT_INFINITE) == 0, "shutdown");
        CHECK(mvx_runtime_release(rts[i]) == 0, "release");
        rts[i] = NULL;
        return;
    }
    case 3: case 4: case 5: do_spawn(in, 0); return;
    case 6: do_spawn(in, 1); return;
    case 7: do_spawn(in, 2); return;
    case 8: { /* try / is_finished */
        struct handle *h = used_handle(in);
        if (h) {
            int r = mvx_join_try(h->jh);
            CHECK(r == 0 || r == MVX_EAGAIN || r == MVX_ECANCELLED || r == MVX_EFAILED, "try %d",
                  r);
            CHECK(mvx_join_is_finished(h->jh) == (r != MVX_EAGAIN) || r == MVX_EAGAIN,
                  "is_finished disagrees with try");
        }
        return;
    }
    case 9: { /* wait briefly */
        struct handle *h = used_handle(in);
        if (h) {
            int r = mvx_join_wait(h->jh, (next(in) & 1) ? MS : 0);
            CHECK(r == 0 || r == MVX_ETIMEDOUT || r == MVX_ECANCELLED || r == MVX_EFAILED ||
                      (r == MVX_EDEADLK && h->set >= 0),
                  "wait %d", r);
        }
        return;
    }
    case 10: { /* poll with a foreign or a notifier waker */
        struct handle *h = used_handle(in);
        unsigned w = next(in) % (NNW + 1);
        if (h) {
            const mvx_waker *wk = w < NNW ? &nws[w] : &foreign;
            if (!wk->vtable)
                wk = &foreign;
            int r = mvx_join_poll(h->jh, wk);
            CHECK(r == 0 || r == MVX_EAGAIN || r == MVX_ECANCELLED || r == MVX_EFAILED, "poll %d",
                  r);
        }
        return;
    }
    case 11: { struct handle *h = used_handle(in); if (h) check_take(h); return; }
    case 12: {
        struct handle *h = used_handle(in);
        if (h)
            CHECK(mvx_join_abort(h->jh) == 0, "abort");
        return;
    }
    case 13: { struct handle *h = used_handle(in); if (h) release_handle(h); return; }
    case 14: open_park((int)(next(in) % NPARK)); return;
    case 15: { /* the parked wakers: wake by ref, drop, clone into another slot, will_wake */
        unsigned a = next(in), s = a % NPARK, d = (a >> 2) % NPARK;
        pthread_mutex_lock(&park_lock);
        switch ((a >> 4) & 3) {
        case 0: mvx_waker_wake_by_ref(&parked[s]); break;
        case 1: mvx_waker_drop(&parked[s]); break;
        case 2:
            if (parked[s].vtable && !parked[d].vtable) {
                CHECK(mvx_waker_clone(&parked[s], &parked[d]) == 0, "clone");
                CHECK(mvx_waker_will_wake(&parked[s], &parked[d]), "will_wake");
            }
            break;
        default: mvx_waker_wake(&parked[s]); break;
        }
        pthread_mutex_unlock(&park_lock);
        return;
    }
    case 16: { /* local set new, with or without a notify waker */
        unsigned i = next(in) % NSET;
        mvx_runtime *rt = some_rt(in);
        if (sets[i] || !rt)
            return;
        int r = mvx_local_set_new(rt, (next(in) & 1) ? &foreign : NULL, &sets[i]);
        CHECK(r == 0 || r == MVX_ESHUTDOWN, "local_set_new %d", r);
        if (r)
            sets[i] = NULL;
        return;
    }
    case 17: {
        unsigned i = next(in) % NSET;
        if (sets[i])
            CHECK(mvx_local_set_run_until_idle(sets[i]) >= 0, "run_until_idle");
        return;
    }
    case 18: { /* run until a handle finishes, without waiting */
        unsigned i = next(in) % NSET;
        struct handle *h = used_handle(in);
        if (sets[i] && h) {
            int r = mvx_local_set_run_until(sets[i], h->jh, 0);
            CHECK(r == 0 || r == MVX_ETIMEDOUT || r == MVX_ECANCELLED || r == MVX_EFAILED ||
                      r == MVX_EDEADLK,
                  "run_until %d", r);
        }
        return;
    }
    case 19: { /* free a set: its tasks are cancelled */
        unsigned i = next(in) % NSET;
        if (sets[i]) {
            CHECK(mvx_local_set_free(sets[i]) == 0, "local_set_free");
            sets[i] = NULL;
        }
        return;
    }
    case 20: { /* block_on a task that finishes by itself */
        mvx_runtime *rt = some_rt(in);
        unsigned a = next(in);
        if (!rt)
            return;
        static const int kinds[] = {K_YIELD, K_FAIL, K_PARENT, K_BAD};
        struct st s = {.id = new_id(), .arg = kinds[a % 4] << 8 | (int)(a >> 2)};
        int o = -1;
        mvx_failure f = {.size = sizeof f};
        int r = mvx_block_on(rt, &fuzz_task_vt, &s, &o, sizeof o, &f);
        CHECK(r == 0 || r == MVX_EFAILED || r == MVX_ECANCELLED || r == MVX_ESHUTDOWN,
              "block_on %d", r);
        if (r != MVX_ESHUTDOWN)
            atomic_store(&spawned[s.id], 1);
        if (r == 0) {
            CHECK(o == s.id, "block_on output");
            atomic_fetch_add(&taken[o], 1);
        }
        mvx_failure_clear(&f);
        return;
    }
    case 21: { /* call task */
        mvx_runtime *rt = some_rt(in);
        struct handle *h = free_handle(in);
        unsigned a = next(in);
        if (!rt || !add_sig)
            return;
        int32_t x = 40, y = 2;
        void *args[] = {&x, &y};
        int r = mvx_spawn_call(rt, (void (*)(void))add_i32, add_sig, args, a & 1,
                               h ? &h->jh : NULL);
        CHECK(r == 0 || r == MVX_ESHUTDOWN, "spawn_call %d", r);
        if (r == 0 && h) {
            h->kind = H_CALL;
            h->id = 0;
            h->set = -1;
            h->took = false;
        } else if (h) {
            h->jh = NULL;
        }
        return;
    }
    case 22: { /* notifier new / free */
        unsigned i = next(in) % NNOT;
        if (!nots[i]) {
            CHECK(mvx_notifier_new(&nots[i]) == 0, "notifier_new");
        } else {
            mvx_notifier_free(nots[i]); /* its wakers stay valid */
            nots[i] = NULL;
        }
        return;
    }
    case 23: { /* notifier waker */
        unsigned i = next(in) % NNOT, w = next(in) % NNW;
        if (nots[i] && !nws[w].vtable)
            CHECK(mvx_notifier_waker(nots[i], w, &nws[w]) == 0, "notifier_waker");
        return;
    }
    case 24: { /* notifier waker: wake, wake by ref, drop, clone */
        unsigned a = next(in), w = a % NNW;
        switch ((a >> 2) & 3) {
        case 0: mvx_waker_wake(&nws[w]); break;
        case 1: mvx_waker_wake_by_ref(&nws[w]); break;
        case 2: mvx_waker_drop(&nws[w]); break;
        default: {
            unsigned d = (a >> 4) % NNW;
            if (nws[w].vtable && !nws[d].vtable)
                CHECK(mvx_waker_clone(&nws[w], &nws[d]) == 0, "clone");
        }
        }
        return;
    }
    case 25: { /* drain or wait(0) */
        unsigned i = next(in) % NNOT;
        if (!nots[i])
            return;
        uint64_t tokens[8];
        if (next(in) & 1) {
            int r = mvx_notifier_wait(nots[i], 0);
            CHECK(r == 0 || r == MVX_ETIMEDOUT, "notifier_wait %d", r);
        }
        int k = mvx_notifier_drain(nots[i], tokens, 1 + next(in) % 8);
        CHECK(k >= 0, "drain %d", k);
        for (int j = 0; j < k; j++)
            CHECK(tokens[j] < NNW, "token %llu", (unsigned long long)tokens[j]);
        mvx_notifier_stats ns = {.size = sizeof ns};
        CHECK(mvx_notifier_stats_get(nots[i], &ns) == 0, "stats");
        return;
    }
    case 26: { /* spawn a promise */
        unsigned p = next(in) % NPROM;
        mvx_runtime *rt = some_rt(in);
        struct handle *h = (next(in) & 1) ? NULL : free_handle(in);
        if (proms[p] || !rt)
            return;
        int id = new_id();
        int r = mvx_spawn_promise(rt, sizeof(int), _Alignof(int), out_drop, &proms[p],
                                  h ? &h->jh : NULL);
        CHECK(r == 0 || r == MVX_ESHUTDOWN, "spawn_promise %d", r);
        if (r) {
            proms[p] = NULL;
            if (h)
                h->jh = NULL;
            return;
        }
        prom_ids[p] = id;
        if (h) {
            h->id = id;
            h->kind = H_PROMISE;
            h->set = -1;
            h->took = false;
        }
        return;
    }
    case 27: { /* resolve / fail / on_cancel / is_cancelled / release */
        unsigned a = next(in), p = a % NPROM;
        if (!proms[p])
            return;
        int id = prom_ids[p], r;
        switch ((a >> 2) % 5) {
        case 0:
            r = mvx_promise_resolve(proms[p], &id);
            CHECK(r == 0 || r == MVX_EALREADY || r == MVX_ECANCELLED, "resolve %d", r);
            if (r == 0)
                atomic_fetch_add(&produced[id], 1);
            break;
        case 1: {
            payload_ids[id] = id;
            atomic_fetch_add(&payload_made[id], 1);
            r = mvx_promise_fail(proms[p], 5, (a & 0x40) ? "nope" : NULL, &payload_ids[id],
                                 payload_drop_counted);
            CHECK(r == 0 || r == MVX_EALREADY || r == MVX_ECANCELLED, "fail %d", r);
            if (r != 0) /* nothing changed: the payload is still ours */
                payload_drop_counted(&payload_ids[id]);
            break;
        }
        case 2:
            r = mvx_promise_on_cancel(proms[p], &foreign);
            CHECK(r == 0 || r == MVX_EALREADY, "on_cancel %d", r);
            break;
        case 3: (void)mvx_promise_is_cancelled(proms[p]); break;
        default:
            mvx_promise_release(proms[p]);
            proms[p] = NULL;
        }
        return;
    }
    default: /* 28..31: more spawns, the most common call */
        do_spawn(in, code & 1 ? 0 : 2);
        return;
    }
}

/* Whether every task has been accounted for (checked exactly below). */
static bool settled(void)
{
    int n = atomic_load(&next_id);
    for (int id = 1; id < n && id < MAX_IDS; id++)
        if (atomic_load(&drops[id]) < atomic_load(&spawned[id]) ||
            atomic_load(&taken[id]) + atomic_load(&out_drops[id]) < atomic_load(&produced[id]) ||
            /* a detached failed task drops its failure's payload after its state, on the
             * completing worker: wait for it too */
            atomic_load(&payload_drops[id]) < atomic_load(&payload_made[id]))
            return false;
    return atomic_load(&foreign_refs) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool inited;
    if (!inited) {
        inited = true;
        trace = getenv("FUZZ_API_TRACE") != NULL;
        static const char text[] = "i32(i32,i32)";
        CHECK(mvx_signature_parse(text, sizeof text - 1, &add_sig) == 0, "parse");
        mvx_runtime_config cfg;
        CHECK(mvx_runtime_config_init(&cfg, sizeof cfg) == 0, "config_init");
        cfg.worker_threads = 2;
        cfg.max_blocking_threads = 2;
        CHECK(mvx_runtime_new(&cfg, &rts[0]) == 0, "mvx_runtime_new");
    }
    atomic_store(&next_id, 1);
    memset(spawned, 0, sizeof spawned);
    memset(drops, 0, sizeof drops);
    memset(produced, 0, sizeof produced);
    memset(taken, 0, sizeof taken);
    memset(out_drops, 0, sizeof out_drops);
    memset(payload_made, 0, sizeof payload_made);
    memset(payload_drops, 0, sizeof payload_drops);
    for (int i = 0; i < NPARK; i++)
        atomic_store(&park_open[i], 0);

    struct input in = {data, size};
    for (int ops = 0; in.n && ops < 200; ops++)
        op(&in);

    /* Everything is released; then every runtime shuts down with an infinite timeout, after
     * which all of its tasks have been dropped and its threads joined. */
    for (int i = 0; i < NH; i++)
        if (hs[i].jh)
            release_handle(&hs[i]);
    for (int i = 0; i < NPROM; i++) {
        mvx_promise_release(proms[i]);
        proms[i] = NULL;
    }
    for (int i = 0; i < NSET; i++) {
        if (sets[i])
            CHECK(mvx_local_set_free(sets[i]) == 0, "local_set_free");
        sets[i] = NULL;
    }
    for (int i = 1; i < NRT; i++) {
        if (rts[i]) {
            CHECK(mvx_runtime_shutdown(rts[i], MVX_TIMEOUT_INFINITE) == 0, "final shutdown");
            CHECK(mvx_runtime_release(rts[i]) == 0, "final release");
        }
        rts[i] = NULL;
    }
    /* rts[0]'s tasks: parked ones complete once woken, unreachable ones are cancelled. */
    for (int i = 0; i < NPARK; i++)
        open_park(i);
    for (int64_t waited = 0; !settled(); waited++) { /* in steps of 100 us */
        CHECK(waited < 200000, "rts[0] did not settle in 20 s: a task or a wake was lost");
        usleep(100);
    }
    for (int i = 0; i < NPARK; i++) {
        pthread_mutex_lock(&park_lock);
        mvx_waker_drop(&parked[i]);
        pthread_mutex_unlock(&park_lock);
    }
    for (int i = 0; i < NNW; i++)
        mvx_waker_drop(&nws[i]);
    for (int i = 0; i < NNOT; i++) {
        mvx_notifier_free(nots[i]);
        nots[i] = NULL;
    }

    CHECK(settled(), "accounting changed after settling");
    int n = atomic_load(&next_id);
    for (int id = 1; id < n && id < MAX_IDS; id++) {
        CHECK(drops[id] == spawned[id], "task %d: spawned %d, dropped %d", id, spawned[id],
              drops[id]);
        CHECK(produced[id] <= 1 && taken[id] + out_drops[id] == produced[id],
              "task %d: %d outputs, %d taken, %d dropped", id, produced[id], taken[id],
              out_drops[id]);
        CHECK(payload_made[id] == payload_drops[id], "task %d: %d payloads, %d dropped", id,
              payload_made[id], payload_drops[id]);
    }
    CHECK(atomic_load(&foreign_refs) == 0, "%d foreign waker clones kept",
          atomic_load(&foreign_refs));
    return 0;
}
