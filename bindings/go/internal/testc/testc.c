/* testc.c - C functions and tasks for the binding's tests and benchmarks. */
#include "testc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void testc_noop(void) {}
int32_t testc_add(int32_t a, int32_t b) { return a + b; }
uint64_t testc_mix(int8_t a, uint16_t b, int64_t c, float d, double e, void *p)
{
    return (uint64_t)(a * 1000000 + b * 1000) + (uint64_t)c + (uint64_t)(d * 10) + (uint64_t)e +
           (p ? 7 : 0);
}
double testc_pair_sum(testc_pair p, uint8_t k) { return (p.a + p.b) * k; }
testc_pair testc_pair_make(int32_t a, double b) { return (testc_pair){a * 2, b * 2}; }
int32_t testc_nested(testc_outer o) { return o.x + o.in.a + (int32_t)o.in.b + o.y; }
testc_small testc_small_make(uint8_t a, int16_t b, int32_t c)
{
    return (testc_small){(uint8_t)(a + 1), (int16_t)(b * 2), c * 3};
}
uint16_t testc_small_sum(testc_small s) { return (uint16_t)(s.a + s.b + s.c); }

/* A gate blocking calls until it is opened. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_open_flag, gate_arrived;

int32_t testc_gate_wait(int32_t v)
{
    pthread_mutex_lock(&gate_lock);
    gate_arrived++;
    pthread_cond_broadcast(&gate_cond);
    while (!gate_open_flag)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    return v;
}

void testc_gate_open(void)
{
    pthread_mutex_lock(&gate_lock);
    gate_open_flag = 1;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

void testc_gate_reset(void)
{
    pthread_mutex_lock(&gate_lock);
    gate_open_flag = 0;
    gate_arrived = 0;
    pthread_mutex_unlock(&gate_lock);
}

void testc_gate_await_arrivals(int n)
{
    pthread_mutex_lock(&gate_lock);
    while (gate_arrived < n)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
}

/* A C task joining another task whose output is a Go task's {data, len}: it outputs
 * len * 1000000 + the sum of the bytes, and fails if the joined task did not complete. */
typedef struct {
    void *data;
    size_t len;
} go_bytes;

static int joiner_poll(void *state, mvx_context *cx, void *output)
{
    mvx_join_handle *jh = *(mvx_join_handle **)state;
    int rc = mvx_join_poll(jh, mvx_context_waker(cx));
    if (rc == MVX_EAGAIN)
        return MVX_POLL_PENDING;
    if (rc != 0) {
        mvx_context_fail(cx, rc, rc == MVX_ECANCELLED ? "joined: cancelled" : "joined: failed",
                         NULL, NULL);
        return MVX_POLL_FAILED;
    }
    go_bytes b;
    rc = mvx_join_take(jh, &b, sizeof b, NULL);
    if (rc) {
        mvx_context_fail(cx, rc, "joined: take failed", NULL, NULL);
        return MVX_POLL_FAILED;
    }
    int64_t sum = (int64_t)b.len * 1000000;
    for (size_t i = 0; i < b.len; i++)
        sum += ((unsigned char *)b.data)[i];
    free(b.data);
    *(int64_t *)output = sum;
    return MVX_POLL_READY;
}

static const mvx_task_vtable joiner_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = joiner_poll,
    .state_size = sizeof(void *),
    .state_align = _Alignof(void *),
    .output_size = sizeof(int64_t),
    .output_align = _Alignof(int64_t),
};

void *testc_spawn_joiner(void *rt, void *jh)
{
    mvx_join_handle *out;
    if (mvx_spawn(rt, &joiner_vt, &jh, &out))
        return NULL;
    return out;
}

/* A task that completes with v at once, or fails with code v when fail is set. */
typedef struct {
    int64_t v;
    int fail;
} value_state;

static int value_poll(void *state, mvx_context *cx, void *output)
{
    value_state *s = state;
    if (s->fail) {
        mvx_context_fail(cx, (int)s->v, "value task failed", NULL, NULL);
        return MVX_POLL_FAILED;
    }
    *(int64_t *)output = s->v;
    return MVX_POLL_READY;
}

static const mvx_task_vtable value_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = value_poll,
    .state_size = sizeof(value_state),
    .state_align = _Alignof(value_state),
    .output_size = sizeof(int64_t),
    .output_align = _Alignof(int64_t),
};

void *testc_spawn_value(void *rt, int64_t v, int fail, int blocking_gated)
{
    (void)blocking_gated;
    value_state s = {v, fail};
    mvx_join_handle *out;
    if (mvx_spawn(rt, &value_vt, &s, &out))
        return NULL;
    return out;
}

/* The same on the blocking pool after waiting at the gate. */
static int gated_poll(void *state, mvx_context *cx, void *output)
{
    testc_gate_wait(0);
    return value_poll(state, cx, output);
}

static const mvx_task_vtable gated_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = gated_poll,
    .state_size = sizeof(value_state),
    .state_align = _Alignof(value_state),
    .output_size = sizeof(int64_t),
    .output_align = _Alignof(int64_t),
};

void *testc_spawn_gated(void *rt, int64_t v)
{
    value_state s = {v, 0};
    mvx_join_handle *out;
    if (mvx_spawn_blocking(rt, &gated_vt, &s, &out))
        return NULL;
    return out;
}

void testc_join_release(void *jh) { mvx_join_release(jh); }

int testc_join_wait(void *jh) { return mvx_join_wait(jh, MVX_TIMEOUT_INFINITE); }
void testc_join_abort(void *jh) { mvx_join_abort(jh); }
