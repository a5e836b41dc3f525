package moduvex

/*
#include "glue.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"unsafe"
)

// Call runs fn(args...) on a worker thread, as sig describes it, and returns its handle; the
// output is the return value (Result decodes it). Arguments are Go numbers (any integer type
// whose value fits, float32/float64), unsafe.Pointer, uintptr, nil or a Func for ptr, and
// structs whose fields follow the same rules member by member. Memory a pointer argument points
// to must be C memory (C.malloc) that stays valid until the call has finished: C must never
// keep a Go pointer. Cancelling ctx aborts the task. For functions that block, use CallBlocking.
func (rt *Runtime) Call(ctx context.Context, fn Func, sig *Signature, args ...any) (*Handle, error) {
	return rt.call("Call", ctx, fn, sig, args, 0)
}

// CallBlocking is Call on the blocking pool (see MaxBlocking): for C functions that block. The
// waiting goroutines hold no OS thread; the pool bounds the threads blocked in C. A call that
// has started cannot be stopped: aborting it makes its handle report ErrCancelled.
func (rt *Runtime) CallBlocking(ctx context.Context, fn Func, sig *Signature, args ...any) (*Handle, error) {
	return rt.call("CallBlocking", ctx, fn, sig, args, C.MVX_CALL_BLOCKING)
}

func (rt *Runtime) call(op string, ctx context.Context, fn Func, sig *Signature, args []any,
	flags C.uint) (*Handle, error) {
	if fn.p == nil || sig == nil {
		return nil, invalid(op, "the function or the signature is nil")
	}
	if ctx != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	// No arguments: no block, and no Go pointer for cgo to check. A block of up to 16 bytes
	// (most calls') is passed by value, so neither is allocated; only a larger one is.
	var argp *C.uchar
	var offs *C.uint32_t
	var small [2]uint64
	if len(sig.args) > 0 || len(args) > 0 {
		if sig.block <= unsafe.Sizeof(small) { // (a separate slice: argp's escapes to C)
			if err := sig.marshal(op, args, (*[16]byte)(unsafe.Pointer(&small))[:]); err != nil {
				return nil, err
			}
		} else {
			buf := make([]byte, sig.block)
			if err := sig.marshal(op, args, buf); err != nil {
				return nil, err
			}
			argp = (*C.uchar)(unsafe.Pointer(&buf[0]))
		}
		if len(sig.offsets) > 0 {
			offs = (*C.uint32_t)(unsafe.Pointer(&sig.offsets[0]))
		}
	}
	c := newCallCore(flags != 0)
	c.outSize, c.rt = int32(sig.ret.size), rt
	rt.mu.RLock()
	if rt.closed.Load() {
		rt.mu.RUnlock()
		return nil, errShutdown(op)
	}
	c.token = rt.nextToken.Add(1) // registered only when a waiter parks (see arm)
	r := C.gomvx_call(C.uintptr_t(uintptr(unsafe.Pointer(rt.c))), C.uintptr_t(uintptr(fn.p)),
		C.uintptr_t(uintptr(unsafe.Pointer(sig.c))), argp, C.uint64_t(small[0]),
		C.uint64_t(small[1]), offs, C.uint(len(sig.args)), flags)
	rt.mu.RUnlock()
	runtime.KeepAlive(sig)
	c.jh = (*C.mvx_join_handle)(r.p)
	c.word = r.q
	return rt.started(op, ctx, c, r)
}

// started finishes a spawn: the handle, or the error; a task that finished before its waker
// was registered queues no token, so it is completed here.
func (rt *Runtime) started(op string, ctx context.Context, c *core, r C.gomvx_res) (*Handle, error) {
	if r.rc != 0 {
		if c.kind() != kindCall {
			rt.unregister(c.token)
		}
		return nil, errOf(op, r)
	}
	live.Add(1)
	if r.outcome != codeEAGAIN {
		if c.kind() != kindCall {
			rt.unregister(c.token)
		}
		c.complete()
	}
	h := newHandle(c)
	if ctx != nil && ctx.Done() != nil {
		c.arm()
		go func() {
			select {
			case <-ctx.Done():
				c.abort()
			case <-c.doneChan():
			}
		}()
	}
	return h, nil
}

// Adopt takes ownership of a mvx_join_handle * that C code created for a task on this runtime
// (a plugin's task) and returns it as a Handle, whose Output is the task's output bytes. After
// Close, the handle's completion is noticed by polling (every few milliseconds) instead.
func (rt *Runtime) Adopt(jh unsafe.Pointer) *Handle {
	c := newCore()
	c.init(kindAdopted, false)
	c.rt, c.jh = rt, (*C.mvx_join_handle)(jh)
	if jh == nil {
		c.complete()
		return newHandle(c)
	}
	c.outSize = int32(C.mvx_join_output_size(c.jh)) // at most MVX_INLINE_MAX
	live.Add(1)
	rt.mu.RLock()
	if rt.closed.Load() {
		rt.mu.RUnlock()
		c.rt = nil
		if !c.watchWithoutNotifier() {
			c.complete()
		}
		return newHandle(c)
	}
	c.token = rt.register(entry{c: c})
	r := C.gomvx_watch(c.jh, rt.n, C.uint64_t(c.token))
	rt.mu.RUnlock()
	if r.rc != 0 || r.outcome != codeEAGAIN {
		if r.rc != 0 {
			C.free(unsafe.Pointer(r.msg))
		}
		rt.unregister(c.token)
		if r.rc != 0 && c.watchWithoutNotifier() {
			return newHandle(c)
		}
		c.complete()
	}
	return newHandle(c)
}

// Go runs f on a new goroutine behind a promise task of this runtime, so that C tasks can join
// it through h.C() like any task. Its output is the bytes f returns; a C joiner takes a
// struct { void *data; size_t len; } whose data it frees with free(). An error from f, or a
// panic (recovered; Value holds the panic's value), fails the task: a C joiner sees MVX_EFAILED
// with the error's text, a Go waiter a *TaskError. f's ctx is cancelled when the task is
// cancelled (h.Abort, mvx_join_abort from C, Runtime.Close) or ctx ends; the task is then
// reported cancelled, whatever f returns.
func (rt *Runtime) Go(ctx context.Context, f func(ctx context.Context) ([]byte, error)) (*Handle, error) {
	if f == nil {
		return nil, invalid("Go", "the function is nil")
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	fctx, cancel := context.WithCancel(ctx)
	c := newCore()
	c.init(kindGo, false)
	c.rt = rt
	rt.mu.RLock()
	if rt.closed.Load() {
		rt.mu.RUnlock()
		cancel()
		return nil, errShutdown("Go")
	}
	c.token = rt.register(entry{c: c})
	cancelToken := rt.register(entry{cancel: cancel})
	r := C.gomvx_promise_new(rt.c, rt.n, C.uint64_t(c.token), C.uint64_t(cancelToken))
	rt.mu.RUnlock()
	if r.rc != 0 {
		rt.unregister(cancelToken)
		cancel()
	} else {
		c.jh = (*C.mvx_join_handle)(r.q) // before the goroutine reads it
		live.Add(1)                      // the promise, released by the goroutine
		rt.goTasks.Add(1)
		go rt.runGo(fctx, cancel, cancelToken, c, (*C.mvx_promise)(r.p), f)
	}
	return rt.started("Go", ctx, c, r)
}

func (rt *Runtime) runGo(ctx context.Context, cancel context.CancelFunc, cancelToken uint64,
	c *core, p *C.mvx_promise, f func(context.Context) ([]byte, error)) {
	defer rt.goTasks.Done()
	defer cancel()
	out, fail := protect(ctx, f)
	if ctx.Err() != nil {
		// Cancelled meanwhile: releasing the promise unresolved reports the cancellation, and
		// does nothing if the task was cancelled already.
		C.mvx_promise_release(p)
	} else if fail == nil {
		var data unsafe.Pointer
		if len(out) > 0 {
			data = unsafe.Pointer(&out[0])
		}
		C.gomvx_promise_resolve(p, data, C.size_t(len(out)))
	} else {
		c.mu.Lock()
		c.res = &outcome{goFail: fail}
		c.mu.Unlock()
		msg := C.CString(fail.Msg)
		C.gomvx_promise_fail(p, C.int(fail.Code), msg)
		C.free(unsafe.Pointer(msg))
	}
	live.Add(-1)
	rt.unregister(cancelToken)
	// The outcome is settled: resolve and fail finish the task before they return, and so does a
	// release that cancels it. Done must not depend on the join waker alone, which a C joiner
	// given h.C() replaces with its own (a join handle keeps one). A cancellation made elsewhere
	// finishes the task right after the cancel waker fires: a few instructions.
	for !c.finishedOrClosed() {
		runtime.Gosched()
	}
	c.complete()
}

// protect runs f, turning an error or a panic into a TaskError.
func protect(ctx context.Context, f func(context.Context) ([]byte, error)) (out []byte, fail *TaskError) {
	defer func() {
		if v := recover(); v != nil {
			fail = &TaskError{Code: codeEFAILED, Msg: fmt.Sprint("panic: ", v), Value: v, Panicked: true}
		}
	}()
	out, err := f(ctx)
	if err != nil {
		return nil, &TaskError{Code: codeEFAILED, Msg: err.Error(), Value: err}
	}
	return out, nil
}

var _ = errors.Is
