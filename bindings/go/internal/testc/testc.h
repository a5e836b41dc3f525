#ifndef TESTC_H
#define TESTC_H
#include <moduvex.h>
#include <stdint.h>

typedef struct {
    int32_t a;
    double b;
} testc_pair;
typedef struct {
    uint8_t x;
    testc_pair in;
    int16_t y;
} testc_outer;
typedef struct {
    uint8_t a;
    int16_t b;
    int32_t c;
} testc_small;

void testc_noop(void);
int32_t testc_add(int32_t a, int32_t b);
uint64_t testc_mix(int8_t a, uint16_t b, int64_t c, float d, double e, void *p);
double testc_pair_sum(testc_pair p, uint8_t k);
testc_pair testc_pair_make(int32_t a, double b);
int32_t testc_nested(testc_outer o);
testc_small testc_small_make(uint8_t a, int16_t b, int32_t c);
uint16_t testc_small_sum(testc_small s);
int32_t testc_gate_wait(int32_t v);
void testc_gate_open(void);
void testc_gate_reset(void);
void testc_gate_await_arrivals(int n);
void *testc_spawn_joiner(void *rt, void *jh);
void *testc_spawn_value(void *rt, int64_t v, int fail, int blocking_gated);
void *testc_spawn_gated(void *rt, int64_t v);
void testc_join_release(void *jh);
int testc_join_wait(void *jh);
void testc_join_abort(void *jh);
#endif
