/* testlib.c - C functions the Lua specs and benchmarks call as tasks (built by make check). */
#include <moduvex.h>

#include <stdint.h>
#include <string.h>
#include <unistd.h>

typedef struct triple {
    int32_t a, b;
    double c;
} triple;
typedef struct pair {
    int32_t x, y;
} pair;

int32_t t_add_i32(int32_t a, int32_t b) { return a + b; }
double t_mul_f64(double a, double b) { return a * b; }
float t_half_f32(float a) { return a / 2; }
int8_t t_neg_i8(int8_t a) { return (int8_t)-a; }
uint8_t t_id_u8(uint8_t a) { return a; }
uint64_t t_id_u64(uint64_t a) { return a; }
int64_t t_id_i64(int64_t a) { return a; }
size_t t_id_size(size_t a) { return a; }
void *t_id_ptr(void *p) { return p; }
int32_t t_noop(void) { return 0; }
void t_nothing(void) {}
triple t_make_triple(int32_t a, int32_t b, double c) { return (triple){a, b, c}; }
int64_t t_sum_pair(pair p, int32_t z) { return (int64_t)p.x + p.y + z; }
void t_sleep_ms(uint32_t ms) { usleep(ms * 1000u); }
/* Sleeps, then reads the string: its memory must still be valid. */
size_t t_slow_len(const char *s, uint32_t ms)
{
    usleep(ms * 1000u);
    return strlen(s);
}
/* From a C task: abort or join a handle that Lua passed as a pointer. */
int32_t t_abort(void *jh) { return mvx_join_abort(jh); }
int32_t t_join(void *jh, uint32_t ms) { return mvx_join_wait(jh, (int64_t)ms * 1000000); }

/* A gate that blocking jobs wait at until the spec opens it. */
static _Atomic int gate_open;
void t_gate_close(void) { gate_open = 0; }
void t_gate_open(void) { gate_open = 1; }
int32_t t_gate_wait(void)
{
    while (!gate_open)
        usleep(1000);
    return 7;
}
