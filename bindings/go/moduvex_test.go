package moduvex

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"moduvex/bindings/go/internal/testc"
)

// newRuntime starts a runtime that the test's cleanup closes, checking then that the binding
// holds nothing more: no registered token, no join handle or promise (every test closes the
// handles it made).
func newRuntime(t *testing.T, opts ...Option) *Runtime {
	t.Helper()
	goroutines := runtime.NumGoroutine()
	rt, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rt.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		rt.goTasks.Wait()
		// The poller and the ctx watchers are gone (they exit on their own, soon after).
		for i := 0; i < 2000 && runtime.NumGoroutine() > goroutines; i++ {
			time.Sleep(time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > goroutines {
			t.Errorf("%d goroutines left behind", n-goroutines)
		}
		if n := rt.registered(); n != 0 {
			t.Errorf("%d tokens still registered", n)
		}
		if n := live.Load(); n != 0 {
			t.Errorf("%d join handles or promises still held", n)
		}
	})
	return rt
}

func mustSig(t *testing.T, s string) *Signature {
	t.Helper()
	sig, err := ParseSignature(s)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func threads(t testing.TB) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Threads:") {
			n, _ := strconv.Atoi(strings.TrimSpace(l[len("Threads:"):]))
			return n
		}
	}
	t.Fatal("no Threads: line")
	return 0
}

func TestCallCosFromLibm(t *testing.T) {
	rt := newRuntime(t, Workers(2))
	cos, err := Lookup("libm.so.6", "cos")
	if err != nil {
		t.Fatal(err)
	}
	sig := mustSig(t, "f64(f64)")
	for _, x := range []float64{0, 0.5, math.Pi} {
		h, err := rt.Call(context.Background(), cos, sig, x)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Result[float64](context.Background(), h)
		h.Close()
		if err != nil || got != math.Cos(x) {
			t.Fatalf("cos(%v) = %v, %v; want %v", x, got, err, math.Cos(x))
		}
	}
}

func TestCallArgumentTypesAndStructs(t *testing.T) {
	rt := newRuntime(t, Workers(1))
	ctx := context.Background()
	type celsius float64
	call := func(fn unsafe.Pointer, sig string, args ...any) *Handle {
		t.Helper()
		h, err := rt.Call(ctx, FuncOf(fn), mustSig(t, sig), args...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	h := call(testc.Mix, "u64(i8,u16,i64,f32,f64,ptr)", int8(-3), 7, int64(1)<<40, float32(1.5), celsius(2), unsafe.Pointer(&struct{}{}))
	if v, err := Result[uint64](ctx, h); err != nil || v != uint64(-3000000+7000+1<<40+15+2+7) {
		t.Fatalf("mix = %d, %v", v, err)
	}
	h = call(testc.PairSum, "f64({i32,f64},u8)", testc.Pair{A: 3, B: 0.5}, uint8(2))
	if v, err := Result[float64](ctx, h); err != nil || v != 7 {
		t.Fatalf("pair_sum = %v, %v", v, err)
	}
	h = call(testc.PairMake, "{i32,f64}(i32,f64)", 21, 1.25)
	out, err := h.Output()
	if err != nil || len(out) != 16 {
		t.Fatalf("pair_make output %v, %v", out, err)
	}
	p := *(*testc.Pair)(unsafe.Pointer(&out[0]))
	if p != (testc.Pair{A: 42, B: 2.5}) {
		t.Fatalf("pair_make = %+v", p)
	}
	h = call(testc.Nested, "i32({u8,{i32,f64},i16})", testc.Outer{X: 1, In: testc.Pair{A: 10, B: 100}, Y: -5})
	if v, err := Result[int32](ctx, h); err != nil || v != 106 {
		t.Fatalf("nested = %v, %v", v, err)
	}
	// Blocks of 16 bytes or less go by value, outputs of 8 or less come back by value.
	h = call(testc.SmallMake, "{u8,i16,i32}(u8,i16,i32)", uint8(4), int16(-300), int32(1)<<20)
	out, err = h.Output()
	if err != nil || len(out) != 8 {
		t.Fatalf("small_make output %v, %v", out, err)
	}
	if s := *(*testc.Small)(unsafe.Pointer(&out[0])); s != (testc.Small{A: 5, B: -600, C: 3 << 20}) {
		t.Fatalf("small_make = %+v", s)
	}
	h = call(testc.SmallSum, "u16({u8,i16,i32})", testc.Small{A: 1, B: 2, C: 3})
	if v, err := Result[uint16](ctx, h); err != nil || v != 6 {
		t.Fatalf("small_sum = %v, %v", v, err)
	}
	// Result checks the size.
	h = call(testc.Add, "i32(i32,i32)", 1, 2)
	if _, err := Result[int64](ctx, h); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Result[int64] of an i32: %v", err)
	}
	if v, err := Result[int32](ctx, h); err != nil || v != 3 {
		t.Fatalf("add = %v, %v", v, err)
	}
}

func TestCallRejectsWrongArguments(t *testing.T) {
	rt := newRuntime(t, Workers(1))
	ctx := context.Background()
	mix := mustSig(t, "u64(i8,u16,i64,f32,f64,ptr)")
	good := []any{int8(1), 2, 3, float32(4), 5.0, nil}
	cases := []struct {
		name string
		i    int
		v    any
		want string
	}{
		{"i8 overflow", 0, 200, "does not fit a i8"},
		{"u16 negative", 1, -1, "does not fit a u16"},
		{"string for i64", 2, "3", "cannot take a string"},
		{"int for f32", 3, 4, "cannot take a int"},
		{"nil for f64", 4, nil, "cannot take nil"},
		{"Go pointer type for ptr", 5, &good, "cannot take a *[]interface {}"},
	}
	for _, c := range cases {
		args := append([]any(nil), good...)
		args[c.i] = c.v
		h, err := rt.Call(ctx, FuncOf(testc.Mix), mix, args...)
		if h != nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrInvalid with %q", c.name, err, c.want)
		}
	}
	if _, err := rt.Call(ctx, FuncOf(testc.Mix), mix, 1, 2); !errors.Is(err, ErrInvalid) ||
		!strings.Contains(err.Error(), "takes 6 arguments, got 2") {
		t.Errorf("count: %v", err)
	}
	pair := mustSig(t, "f64({i32,f64},u8)")
	if _, err := rt.Call(ctx, FuncOf(testc.PairSum), pair, struct{ A int32 }{1}, 1); !errors.Is(err, ErrInvalid) {
		t.Errorf("struct with 1 field for 2 members: %v", err)
	}
	if _, err := rt.Call(ctx, Func{}, pair, testc.Pair{}, 1); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil Func: %v", err)
	}
	if _, err := rt.Call(ctx, FuncOf(testc.PairSum), nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil signature: %v", err)
	}
}

func TestParseSignatureAndLookupErrors(t *testing.T) {
	for _, s := range []string{"", "f64(f64", "x()", "void(void,i32)", "{}()"} {
		_, err := ParseSignature(s)
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrInvalid) || e.Op != "ParseSignature" || e.Msg == "" {
			t.Errorf("ParseSignature(%q): %v", s, err)
		}
	}
	_, err := ParseSignature("f64(f64")
	if !strings.Contains(err.Error(), "at byte") {
		t.Errorf("the library's message is missing: %v", err)
	}
	sig := mustSig(t, " {i32 , f64} ( ptr,\t{u8,u8} ) ")
	if sig.NumArgs() != 2 || sig.ReturnSize() != 16 {
		t.Errorf("%v: %d args, %d bytes", sig, sig.NumArgs(), sig.ReturnSize())
	}
	if _, err := Lookup("libno-such-library.so", "f"); !errors.Is(err, ErrInvalid) ||
		!strings.Contains(err.Error(), "libno-such-library.so") {
		t.Errorf("missing library: %v", err)
	}
	if _, err := Lookup("libm.so.6", "no_such_symbol"); !errors.Is(err, ErrInvalid) ||
		!strings.Contains(err.Error(), "no_such_symbol") {
		t.Errorf("missing symbol: %v", err)
	}
	if _, err := New(Workers(-1)); !errors.Is(err, ErrInvalid) {
		t.Errorf("Workers(-1): %v", err)
	}
	if _, err := New(Workers(2000)); !errors.Is(err, ErrInvalid) {
		t.Errorf("Workers(2000): %v", err)
	}
}

func TestErrorsMatchSentinels(t *testing.T) {
	e := &Error{Op: "Call", Code: codeESHUTDOWN, Msg: "x"}
	if !errors.Is(e, ErrShutdown) || errors.Is(e, ErrInvalid) || errors.Is(ErrShutdown, e) {
		t.Error("Error.Is")
	}
	for _, s := range []error{ErrCancelled, ErrShutdown, ErrInvalid, ErrTimeout} {
		if !errors.Is(s, s) || s.Error() == "" {
			t.Errorf("%v", s)
		}
	}
	inner := errors.New("inner")
	te := &TaskError{Msg: "inner", Value: inner}
	if !errors.Is(te, inner) {
		t.Error("TaskError.Unwrap")
	}
}

// A completion before the waker is registered queues no token: the handle must still finish.
func TestCompletionBeforeRegistration(t *testing.T) {
	rt := newRuntime(t, Workers(2))
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		jh := testc.SpawnValue(rt.C(), int64(i), false)
		if code := testc.JoinWait(jh); code != 0 {
			t.Fatal(code)
		}
		h := rt.Adopt(jh)
		select {
		case <-h.Done():
		default:
			t.Fatal("an adopted finished task is not done")
		}
		if v, err := Result[int64](ctx, h); err != nil || v != int64(i) {
			t.Fatal(v, err)
		}
		h.Close()
	}
	// A call that is done before anyone waits: Done, then Wait, then Wait again.
	h, err := rt.Call(ctx, FuncOf(testc.Add), mustSig(t, "i32(i32,i32)"), 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	<-h.Done()
	if err := h.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := Result[int32](ctx, h); err != nil || v != 5 {
		t.Fatal(v, err)
	}
	h.Close()
}

// A call's completion reaches Go through the notifier only when a waiter has parked: one that
// is done before anyone waits registers no token and writes no fd; a parked waiter arms it.
func TestCallCompletionWordArmsOnlyWhenParked(t *testing.T) {
	rt := newRuntime(t, Workers(2), MaxBlocking(1))
	ctx := context.Background()
	sig := mustSig(t, "i32(i32,i32)")
	writes, tokens := rt.notifierStats()
	for i := 0; i < 100; i++ {
		h, err := rt.Call(ctx, FuncOf(testc.Add), sig, i, 1)
		if err != nil {
			t.Fatal(err)
		}
		for !h.c.wordDone() && !h.c.has(flagFinished) {
			runtime.Gosched()
		}
		if rt.registered() != 0 {
			t.Fatal("a call nobody waits for registered its token")
		}
		if v, err := Result[int32](ctx, h); err != nil || v != int32(i+1) {
			t.Fatal(v, err)
		}
		h.Close()
	}
	if w, k := rt.notifierStats(); w != writes || k != tokens {
		t.Fatalf("calls finished before their Wait wrote the notifier's fd %d times", w-writes)
	}
	// A waiter that parks arms the word; the completion then comes through the poller.
	testc.GateReset()
	defer testc.GateOpen()
	h, err := rt.CallBlocking(ctx, FuncOf(testc.GateWait), mustSig(t, "i32(i32)"), 7)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	testc.GateAwaitArrivals(1)
	got := make(chan error, 1)
	go func() { _, err := Result[int32](ctx, h); got <- err }()
	for !h.c.wordIs(armedState) { // registered, then armed
		runtime.Gosched()
	}
	if rt.registered() != 1 {
		t.Fatal("an armed call has no token registered")
	}
	testc.GateOpen()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	// The poller drained the token before it closed Done (tokens counts it in the drain; the fd
	// write's count may land after the wake-up it caused).
	if _, k := rt.notifierStats(); k == tokens {
		t.Fatal("a parked waiter was woken without the notifier")
	}
}

// Close races waiters that check a call's completion word: each Wait returns the outcome or
// ErrInvalid, none reads the word after Close freed it (the race detector and cgocheck watch).
func TestCloseRacesSpinningWaits(t *testing.T) {
	rt := newRuntime(t, Workers(2))
	ctx := context.Background()
	sig := mustSig(t, "i32(i32,i32)")
	for i := 0; i < 200; i++ {
		h, err := rt.Call(ctx, FuncOf(testc.Add), sig, i, 1)
		if err != nil {
			t.Fatal(err)
		}
		var start, done sync.WaitGroup
		start.Add(1)
		errs := make(chan error, 3)
		for k := 0; k < 3; k++ {
			done.Add(1)
			go func() {
				defer done.Done()
				start.Wait()
				errs <- h.Wait(ctx)
			}()
		}
		start.Done()
		h.Close()
		done.Wait()
		for k := 0; k < 3; k++ {
			if err := <-errs; err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatal(err)
			}
		}
	}
}

// Waiters registered long before the completion, many on one handle, all woken once.
func TestManyWaitersOnOneHandle(t *testing.T) {
	testc.GateReset()
	defer testc.GateOpen()
	rt := newRuntime(t, Workers(2), MaxBlocking(2))
	ctx := context.Background()
	h, err := rt.CallBlocking(ctx, FuncOf(testc.GateWait), mustSig(t, "i32(i32)"), 77)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	adopted := rt.Adopt(testc.SpawnGated(rt.C(), 5))
	defer adopted.Close()
	testc.GateAwaitArrivals(2) // both are blocked in C: the completion comes after the waits
	const n = 200
	var wg sync.WaitGroup
	var ok atomic.Int32
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if i%2 == 0 {
				<-h.Done()
				<-adopted.Done()
			}
			v, err := Result[int32](ctx, h)
			w, err2 := Result[int64](ctx, adopted)
			if err == nil && err2 == nil && v == 77 && w == 5 {
				ok.Add(1)
			}
		}(i)
	}
	testc.GateOpen()
	wg.Wait()
	if ok.Load() != n {
		t.Fatalf("%d of %d waiters saw the result", ok.Load(), n)
	}
}

// Close with waiters pending wakes them; the detached task finishes later and its output is
// dropped by the library.
func TestCloseWithWaitersPending(t *testing.T) {
	testc.GateReset()
	defer testc.GateOpen()
	rt := newRuntime(t, Workers(1), MaxBlocking(1))
	ctx := context.Background()
	h, err := rt.CallBlocking(ctx, FuncOf(testc.GateWait), mustSig(t, "i32(i32)"), 1)
	if err != nil {
		t.Fatal(err)
	}
	testc.GateAwaitArrivals(1)
	errs := make(chan error, 10)
	var started sync.WaitGroup
	for i := 0; i < 10; i++ {
		started.Add(1)
		go func() { started.Done(); errs <- h.Wait(ctx) }()
	}
	started.Wait()
	h.Close()
	h.Close() // idempotent
	for i := 0; i < 10; i++ {
		if err := <-errs; !errors.Is(err, ErrInvalid) {
			t.Fatalf("Wait after Close: %v", err)
		}
	}
	if _, err := h.Output(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Output after Close: %v", err)
	}
	if h.C() != nil {
		t.Fatal("C() after Close")
	}
	h.Abort() // harmless
	testc.GateOpen()
}

// Runtime.Close with calls running, queued, and Go functions waiting: every handle finishes
// (completed or cancelled), every Go function sees its ctx cancelled, nothing hangs.
func TestRuntimeCloseWithTasksInFlight(t *testing.T) {
	rt := newRuntime(t, Workers(2), MaxBlocking(4))
	ctx := context.Background()
	usleep, err := Lookup("libc.so.6", "usleep")
	if err != nil {
		t.Fatal(err)
	}
	sig := mustSig(t, "i32(u32)")
	var hs []*Handle
	for i := 0; i < 40; i++ {
		h, err := rt.CallBlocking(ctx, usleep, sig, uint32(2000))
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	var sawCancel atomic.Int32
	for i := 0; i < 20; i++ {
		h, err := rt.Go(ctx, func(ctx context.Context) ([]byte, error) {
			<-ctx.Done()
			sawCancel.Add(1)
			return nil, ctx.Err()
		})
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	completed, cancelled := 0, 0
	for _, h := range hs {
		switch err := h.Wait(ctx); {
		case err == nil:
			completed++
		case errors.Is(err, ErrCancelled):
			cancelled++
		default:
			t.Fatalf("Wait: %v", err)
		}
	}
	rt.goTasks.Wait()
	if sawCancel.Load() != 20 || cancelled < 20 || completed+cancelled != len(hs) {
		t.Fatalf("%d completed, %d cancelled, %d Go functions cancelled", completed, cancelled, sawCancel.Load())
	}
	for _, h := range hs {
		h.Close()
	}
}

// Handles outlive the Runtime: everything still works on them after Close.
func TestHandlesAfterRuntimeClose(t *testing.T) {
	rt := newRuntime(t, Workers(1))
	ctx := context.Background()
	sig := mustSig(t, "i32(i32,i32)")
	h, err := rt.Call(ctx, FuncOf(testc.Add), sig, 20, 22)
	if err != nil {
		t.Fatal(err)
	}
	g, err := rt.Go(ctx, func(context.Context) ([]byte, error) { return []byte("hi"), nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Wait(ctx); err != nil { // else Close may cancel it before it runs
		t.Fatal(err)
	}
	other, err := New(Workers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	testc.GateReset()
	defer testc.GateOpen()
	foreign := testc.SpawnGated(other.C(), 9)
	rt.Close()
	rt.Close()
	if v, err := Result[int32](ctx, h); err != nil || v != 42 {
		t.Fatal(v, err)
	}
	if out, err := g.Output(); err != nil || string(out) != "hi" {
		t.Fatal(out, err)
	}
	h.Abort()
	if h.C() == nil {
		t.Fatal("C() is nil before Close")
	}
	if _, err := rt.Call(ctx, FuncOf(testc.Add), sig, 1, 2); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Call after Close: %v", err)
	}
	if _, err := rt.Go(ctx, func(context.Context) ([]byte, error) { return nil, nil }); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Go after Close: %v", err)
	}
	// Adopted after Close: a task of another runtime, noticed by polling.
	a := rt.Adopt(foreign)
	testc.GateOpen()
	if v, err := Result[int64](ctx, a); err != nil || v != 9 {
		t.Fatal(v, err)
	}
	a.Close()
	h.Close()
	g.Close()
}

func TestContextCancelAbortsAndWaitDoesNot(t *testing.T) {
	testc.GateReset()
	defer testc.GateOpen()
	rt := newRuntime(t, Workers(1), MaxBlocking(1))
	sig := mustSig(t, "i32(i32)")
	blocker, err := rt.CallBlocking(context.Background(), FuncOf(testc.GateWait), sig, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	testc.GateAwaitArrivals(1) // the pool's one thread is taken: the next call queues
	ctx, cancel := context.WithCancel(context.Background())
	queued, err := rt.CallBlocking(ctx, FuncOf(testc.GateWait), sig, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer queued.Close()
	// A Wait whose own ctx ends does not abort.
	short, cancelShort := context.WithCancel(context.Background())
	cancelShort()
	if err := blocker.Wait(short); err != context.Canceled {
		t.Fatalf("Wait(cancelled ctx) = %v", err)
	}
	cancel()
	for !queued.c.has(flagAborted) { // the ctx's watcher goroutine aborts
		runtime.Gosched()
	}
	// The library acts on the abort of a queued blocking job when a pool thread takes it off
	// the queue: free the thread, and the queued call must be cancelled, not run.
	testc.GateOpen()
	if err := queued.Wait(context.Background()); !errors.Is(err, ErrCancelled) {
		t.Fatalf("queued call after its ctx was cancelled: %v", err)
	}
	if v, err := Result[int32](context.Background(), blocker); err != nil || v != 1 {
		t.Fatalf("blocker: %v, %v", v, err)
	}
	if _, err := rt.Call(ctx, FuncOf(testc.Add), mustSig(t, "i32(i32,i32)"), 1, 2); err != context.Canceled {
		t.Fatalf("Call with a cancelled ctx: %v", err)
	}
}

// A call's Handle is one 64-byte core, a size class of its own (see core): a field added must
// make room for itself.
func TestCallHandleFitsItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Handle{}); n != 64 {
		t.Fatalf("a Handle has %d bytes, want 64", n)
	}
	if n := unsafe.Sizeof(callBlock{}); n > 2048 {
		t.Fatalf("a callBlock has %d bytes, over the 2,048-byte size class", n)
	}
}

// A call returning void has no output to take, so its Wait does not cross into C when the task
// finished (see voidCallSucceeded): the three ways such a call can be cancelled must still
// report ErrCancelled, and one that ran must report nil.
func TestVoidCallsCancelledEveryWay(t *testing.T) {
	testc.GateReset()
	defer testc.GateOpen()
	rt := newRuntime(t, Workers(1), MaxBlocking(1))
	ctx := context.Background()
	blocker, err := rt.CallBlocking(ctx, FuncOf(testc.GateWait), mustSig(t, "i32(i32)"), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	testc.GateAwaitArrivals(1) // the pool's one thread is taken: the calls below queue
	void := mustSig(t, "void()")
	ran, err := rt.Call(ctx, FuncOf(testc.Noop), void) // on the worker: it runs
	if err != nil {
		t.Fatal(err)
	}
	defer ran.Close()
	if err := ran.Wait(ctx); err != nil {
		t.Fatalf("a void call that ran: %v", err)
	}
	queued := make([]*Handle, 3)
	for i := range queued {
		if queued[i], err = rt.CallBlocking(ctx, FuncOf(testc.Noop), void); err != nil {
			t.Fatal(err)
		}
		defer queued[i].Close()
	}
	byAbort, byC, byClose := queued[0], queued[1], queued[2]
	byAbort.Abort()
	testc.JoinAbort(byC.C())
	closed := make(chan error)
	go func() { closed <- rt.Close() }() // cancels byClose; waits for the pool's thread
	for !byClose.c.wordDone() {
		runtime.Gosched()
	}
	testc.GateOpen()
	for name, h := range map[string]*Handle{"Abort": byAbort, "C's abort": byC, "Close": byClose} {
		if err := h.Wait(ctx); !errors.Is(err, ErrCancelled) {
			t.Errorf("a void call cancelled by %s: Wait = %v", name, err)
		}
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

func TestGoTaskOutcomes(t *testing.T) {
	rt := newRuntime(t, Workers(2))
	ctx := context.Background()
	h, err := rt.Go(ctx, func(context.Context) ([]byte, error) { return []byte{1, 2, 3}, nil })
	if err != nil {
		t.Fatal(err)
	}
	if out, err := h.Output(); err != nil || !bytes.Equal(out, []byte{1, 2, 3}) {
		t.Fatal(out, err)
	}
	h.Close()

	boom := errors.New("boom")
	h, _ = rt.Go(ctx, func(context.Context) ([]byte, error) { return nil, boom })
	var te *TaskError
	if err := h.Wait(ctx); !errors.As(err, &te) || !errors.Is(err, boom) || te.Panicked || te.Msg != "boom" {
		t.Fatalf("error: %v", err)
	}
	h.Close()

	h, _ = rt.Go(ctx, func(context.Context) ([]byte, error) { panic(42) })
	if err := h.Wait(ctx); !errors.As(err, &te) || !te.Panicked || te.Value != 42 {
		t.Fatalf("panic: %#v", err)
	}
	h.Close()

	// Abort from Go and from C cancel f's ctx; so does the parent ctx.
	for _, how := range []string{"go", "c", "ctx"} {
		parent, cancel := context.WithCancel(ctx)
		running := make(chan struct{})
		h, err := rt.Go(parent, func(ctx context.Context) ([]byte, error) {
			close(running)
			<-ctx.Done()
			return []byte("too late"), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		<-running
		switch how {
		case "go":
			h.Abort()
		case "c":
			testc.JoinAbort(h.C())
		case "ctx":
			cancel()
		}
		if err := h.Wait(ctx); !errors.Is(err, ErrCancelled) {
			t.Fatalf("%s abort: %v", how, err)
		}
		cancel()
		h.Close()
	}
}

// A C task joins a goroutine: it polls the Go task's join handle and takes its bytes.
func TestCTaskJoinsGoroutine(t *testing.T) {
	rt := newRuntime(t, Workers(2))
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		release := make(chan struct{})
		g, err := rt.Go(ctx, func(context.Context) ([]byte, error) {
			<-release
			return []byte{byte(i), 10}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		j := rt.Adopt(testc.SpawnJoiner(rt.C(), g.C()))
		if i%2 == 0 {
			close(release) // before or after the joiner's first poll
		} else {
			runtime.Gosched()
			close(release)
		}
		v, err := Result[int64](ctx, j)
		if err != nil || v != 2*1000000+int64(i)+10 {
			t.Fatalf("joiner: %v, %v", v, err)
		}
		// The C task took the output.
		if _, err := g.Output(); err == nil {
			t.Fatal("the output was taken twice")
		}
		j.Close()
		g.Close()
	}
	// A failing goroutine fails the joiner with the library's code.
	g, _ := rt.Go(ctx, func(context.Context) ([]byte, error) { return nil, errors.New("no") })
	j := rt.Adopt(testc.SpawnJoiner(rt.C(), g.C()))
	var te *TaskError
	if err := j.Wait(ctx); !errors.As(err, &te) || te.Code != codeEFAILED {
		t.Fatalf("joiner of a failed goroutine: %v", err)
	}
	j.Close()
	g.Close()
}

func TestAdoptedCTasks(t *testing.T) {
	rt := newRuntime(t, Workers(1))
	ctx := context.Background()
	h := rt.Adopt(testc.SpawnValue(rt.C(), 123, false))
	if out, err := h.Output(); err != nil || len(out) != 8 {
		t.Fatal(out, err)
	}
	if v, err := Result[int64](ctx, h); err != nil || v != 123 {
		t.Fatal(v, err)
	}
	h.Close()
	h = rt.Adopt(testc.SpawnValue(rt.C(), 17, true))
	var te *TaskError
	if err := h.Wait(ctx); !errors.As(err, &te) || te.Code != 17 || te.Msg != "value task failed" || te.Value != nil {
		t.Fatalf("failed C task: %v", err)
	}
	h.Close()
	if h := rt.Adopt(nil); h != nil {
		<-h.Done()
		h.Close()
	}
}

// The poller reads the notifier through the netpoller: its fd must stay non-blocking (Fd()
// would have switched it), and the package exports no Go function to C.
func TestNotifierFdStaysNonBlocking(t *testing.T) {
	rt := newRuntime(t, Workers(1))
	h, _ := rt.Call(context.Background(), FuncOf(testc.Noop), mustSig(t, "void()"))
	h.Wait(context.Background())
	h.Close()
	raw, err := rt.file.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags uintptr
	raw.Control(func(fd uintptr) {
		flags, _, _ = syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
	})
	if flags&syscall.O_NONBLOCK == 0 {
		t.Fatalf("the notifier fd is blocking (flags %#x)", flags)
	}
	files, _ := os.ReadDir(".")
	for _, f := range files {
		if strings.HasSuffix(f.Name(), ".go") {
			src, _ := os.ReadFile(f.Name())
			if bytes.Contains(src, []byte("//"+"export")) {
				t.Errorf("%s exports a Go function to C", f.Name())
			}
		}
	}
}

// Many calls racing the poller and Wait's own check: each handle completes once.
func TestNoLostOrDoubleWake(t *testing.T) {
	rt := newRuntime(t, Workers(2))
	ctx := context.Background()
	sig := mustSig(t, "i32(i32,i32)")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				h, err := rt.Call(ctx, FuncOf(testc.Add), sig, g, i)
				if err != nil {
					t.Error(err)
					return
				}
				v, err := Result[int32](ctx, h)
				h.Close()
				if err != nil || v != int32(g+i) {
					t.Errorf("%d+%d = %d, %v", g, i, v, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
}

// 10,000 goroutines wait on 10,000 handles: the OS threads stay near GOMAXPROCS + workers +
// pool size, not one per wait.
func TestTenThousandWaitersHoldNoThreads(t *testing.T) {
	testc.GateReset()
	defer testc.GateOpen()
	const n, workers, pool = 10000, 2, 8
	before := threads(t)
	rt := newRuntime(t, Workers(workers), MaxBlocking(pool))
	ctx := context.Background()
	sig := mustSig(t, "i32(i32)")
	hs := make([]*Handle, n)
	for i := range hs {
		h, err := rt.CallBlocking(ctx, FuncOf(testc.GateWait), sig, int32(i))
		if err != nil {
			t.Fatal(err)
		}
		hs[i] = h
	}
	testc.GateAwaitArrivals(pool)
	var waiting atomic.Int32
	var wg sync.WaitGroup
	bad := make(chan string, 1)
	for i, h := range hs {
		wg.Add(1)
		go func(i int, h *Handle) {
			defer wg.Done()
			waiting.Add(1)
			v, err := Result[int32](ctx, h)
			if err != nil || v != int32(i) {
				select {
				case bad <- err.Error():
				default:
				}
			}
		}(i, h)
	}
	for waiting.Load() < n {
		runtime.Gosched()
	}
	for i := 0; i < 100; i++ {
		runtime.Gosched()
	}
	during := threads(t)
	limit := before + runtime.GOMAXPROCS(0) + workers + pool + 8
	t.Logf("threads: %d before, %d with %d goroutines waiting (limit %d)", before, during, n, limit)
	if during > limit {
		t.Errorf("%d threads with %d goroutines waiting, want at most %d", during, n, limit)
	}
	testc.GateOpen()
	wg.Wait()
	select {
	case e := <-bad:
		t.Fatal(e)
	default:
	}
	for _, h := range hs {
		h.Close()
	}
}

// A Handle nobody closes is released by its finalizer.
func TestFinalizerReleasesForgottenHandles(t *testing.T) {
	rt := newRuntime(t, Workers(1))
	sig := mustSig(t, "i32(i32,i32)")
	func() {
		for i := 0; i < 100; i++ {
			h, err := rt.Call(context.Background(), FuncOf(testc.Add), sig, 1, 2)
			if err != nil {
				t.Fatal(err)
			}
			if i%2 == 0 {
				h.Wait(context.Background())
			}
		}
	}()
	for i := 0; i < 200 && (live.Load() != 0 || rt.registered() != 0); i++ {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if live.Load() != 0 {
		t.Fatalf("%d handles left after GC", live.Load())
	}
}

// signal.Notify installed, signals arriving on any thread (a moduvex one included) while calls
// run: everything completes and the signals reach the channel.
func TestWithSignalNotify(t *testing.T) {
	ch := make(chan os.Signal, 100)
	signalNotify(ch) // first: os/signal's own goroutine is not the binding's
	defer signalStop(ch)
	rt := newRuntime(t, Workers(2), MaxBlocking(4))
	ctx := context.Background()
	usleep, _ := Lookup("libc.so.6", "usleep")
	sig := mustSig(t, "i32(u32)")
	add := mustSig(t, "i32(i32,i32)")
	for i := 0; i < 200; i++ {
		h1, err := rt.CallBlocking(ctx, usleep, sig, uint32(100))
		if err != nil {
			t.Fatal(err)
		}
		h2, err := rt.Call(ctx, FuncOf(testc.Add), add, i, 1)
		if err != nil {
			t.Fatal(err)
		}
		syscall.Kill(os.Getpid(), syscall.SIGUSR1)
		if err := h1.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if v, err := Result[int32](ctx, h2); err != nil || v != int32(i+1) {
			t.Fatal(v, err)
		}
		h1.Close()
		h2.Close()
	}
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no signal received")
	}
}

// SIGPROF from the CPU profiler hits every thread, moduvex's included.
func TestWithCPUProfile(t *testing.T) {
	rt := newRuntime(t, Workers(2), MaxBlocking(4))
	var buf bytes.Buffer
	stop := startCPUProfile(t, &buf)
	defer stop()
	ctx := context.Background()
	add := mustSig(t, "i32(i32,i32)")
	deadline := time.Now().Add(300 * time.Millisecond)
	for i := 0; time.Now().Before(deadline); i++ {
		h, err := rt.Call(ctx, FuncOf(testc.Add), add, i, 1)
		if err != nil {
			t.Fatal(err)
		}
		g, err := rt.Go(ctx, func(context.Context) ([]byte, error) { return []byte{1}, nil })
		if err != nil {
			t.Fatal(err)
		}
		if v, err := Result[int32](ctx, h); err != nil || v != int32(i+1) {
			t.Fatal(v, err)
		}
		if out, err := g.Output(); err != nil || len(out) != 1 {
			t.Fatal(out, err)
		}
		h.Close()
		g.Close()
	}
}

// The top-level README's Go example is examples/cosjoin/main.go, verbatim.
func TestReadmeExampleIsTheExampleProgram(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	prog, err := os.ReadFile("examples/cosjoin/main.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, append(append([]byte("```go\n"), prog...), "```\n"...)) {
		t.Fatal("README.md's Go example differs from examples/cosjoin/main.go")
	}
}

func TestOptionsNameAndBoundThreads(t *testing.T) {
	rt := newRuntime(t, Workers(3), ThreadName("gotest"), MaxBlocking(2))
	usleep, _ := Lookup("libc.so.6", "usleep")
	sig := mustSig(t, "i32(u32)")
	var hs []*Handle
	for i := 0; i < 6; i++ {
		h, err := rt.CallBlocking(context.Background(), usleep, sig, uint32(1000))
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	// Threads name themselves once started: look until the workers are there.
	var names map[string]int
	for i := 0; i < 5000; i++ {
		names = map[string]int{}
		tasks, _ := os.ReadDir("/proc/self/task")
		for _, task := range tasks {
			b, _ := os.ReadFile("/proc/self/task/" + task.Name() + "/comm")
			names[strings.TrimSpace(string(b))]++
		}
		if names["gotest-0"]+names["gotest-1"]+names["gotest-2"] == 3 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for _, h := range hs {
		if err := h.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		h.Close()
	}
	for _, w := range []string{"gotest-0", "gotest-1", "gotest-2"} {
		if names[w] != 1 {
			t.Errorf("no worker thread %q in %v", w, names)
		}
	}
	if names["gotest-blk"] > 2 {
		t.Errorf("%d pool threads for MaxBlocking(2)", names["gotest-blk"])
	}
}
