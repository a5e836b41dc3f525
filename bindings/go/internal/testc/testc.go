// Package testc holds the C functions and tasks that the binding's tests and benchmarks call.
package testc

/*
#cgo pkg-config: moduvex
#include "testc.h"
#include <unistd.h>
*/
import "C"

import "unsafe"

// Function pointers for Call.
var (
	Noop     = unsafe.Pointer(C.testc_noop)
	Add      = unsafe.Pointer(C.testc_add)
	Mix      = unsafe.Pointer(C.testc_mix)
	PairSum  = unsafe.Pointer(C.testc_pair_sum)
	PairMake = unsafe.Pointer(C.testc_pair_make)
	Nested   = unsafe.Pointer(C.testc_nested)
	// SmallMake and SmallSum take and return 8 bytes or less: no buffer on either side.
	SmallMake = unsafe.Pointer(C.testc_small_make)
	SmallSum  = unsafe.Pointer(C.testc_small_sum)
	GateWait  = unsafe.Pointer(C.testc_gate_wait)
)

// Pair and Outer have testc_pair's and testc_outer's layouts.
type Pair struct {
	A int32
	B float64
}

// Small has testc_small's layout (8 bytes).
type Small struct {
	A uint8
	B int16
	C int32
}

type Outer struct {
	X  uint8
	In Pair
	Y  int16
}

// CallNoop is the Go way: a cgo call of testc_noop.
func CallNoop() { C.testc_noop() }

// Usleep is a cgo call of usleep.
func Usleep(us int) { C.usleep(C.uint(us)) }

func GateOpen()               { C.testc_gate_open() }
func GateReset()              { C.testc_gate_reset() }
func GateAwaitArrivals(n int) { C.testc_gate_await_arrivals(C.int(n)) }

// SpawnJoiner spawns, on rt (a mvx_runtime *), a C task that joins jh (a Go task's handle)
// and outputs len*1000000 + the sum of its bytes; it returns the C task's join handle.
func SpawnJoiner(rt, jh unsafe.Pointer) unsafe.Pointer { return C.testc_spawn_joiner(rt, jh) }

// SpawnValue spawns a C task that outputs v (an int64), or fails with code v.
func SpawnValue(rt unsafe.Pointer, v int64, fail bool) unsafe.Pointer {
	f := C.int(0)
	if fail {
		f = 1
	}
	return C.testc_spawn_value(rt, C.int64_t(v), f, 0)
}

// SpawnGated spawns a blocking C task that waits at the gate, then outputs v.
func SpawnGated(rt unsafe.Pointer, v int64) unsafe.Pointer {
	return C.testc_spawn_gated(rt, C.int64_t(v))
}

// JoinRelease releases a C join handle.
func JoinRelease(jh unsafe.Pointer) { C.testc_join_release(jh) }

// JoinWait waits for jh in C (mvx_join_wait) and returns the outcome code.
func JoinWait(jh unsafe.Pointer) int { return int(C.testc_join_wait(jh)) }

// JoinAbort aborts jh from C.
func JoinAbort(jh unsafe.Pointer) { C.testc_join_abort(jh) }
