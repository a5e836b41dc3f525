package moduvex

/*
#include "glue.h"
*/
import "C"

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

type handleKind uint8

const (
	kindCall    handleKind = iota // a call task: the output is the return value's bytes
	kindGo                        // a Go task: the output is a gomvx_bytes
	kindAdopted                   // a C task: the output is its vtable's output_size bytes
)

// core is a handle's state, the only field of its Handle. It is kept to 64 bytes, a size class
// of its own: a program making calls allocates one per call, and until the first GC recycles
// memory each fresh page of heap costs a fault (over 10 us on a VM). Measured with 1,000 calls
// in flight: 152 bytes per call took 1.50 ms per 1,000, 72 bytes 1.19 ms. Hence the flag bits,
// and res holding what only some handles need.
type core struct {
	flags   atomic.Uint32 // flag* bits, and the handleKind from kindShift up
	outSize int32         // the output's size (at most MVX_INLINE_MAX)

	mu    sync.Mutex
	done  chan struct{}      // made on demand (doneChan): most calls are waited for without it
	jh    *C.mvx_join_handle // nil once released
	word  unsafe.Pointer     // a call's completion word (C memory, glue.c); nil once released
	token uint64
	rt    *Runtime
	res   *outcome // once taken, unless a bare success; before that a Go task's failure
}

// The bits of core.flags. finished and taken are set under mu; kind and blocking at the spawn.
const (
	flagFinished uint32 = 1 << iota // the handle is done: done, if made, is closed
	flagAborted                     // Abort was asked for
	flagArmed                       // a call's token is registered (see arm)
	flagLent                        // C() lent the join handle out: C code may abort or join it
	flagTaken                       // the outcome was moved out (into res, unless a success)
	flagBlocking                    // a CallBlocking: Wait does not spin on it
	kindShift    = 8
)

// outcome is an outcome moved out of the join handle (output bytes or an error), and a Go
// task's failure with its Go value, which runGo records before it fails the task.
type outcome struct {
	out    []byte
	err    error
	goFail *TaskError
	small  uint64 // a call's output of up to 8 bytes, which out then points at
}

// init sets a fresh core's kind, and blocking for a CallBlocking.
func (c *core) init(kind handleKind, blocking bool) {
	f := uint32(kind) << kindShift
	if blocking {
		f |= flagBlocking
	}
	c.flags.Store(f)
}

func (c *core) kind() handleKind { return handleKind(c.flags.Load() >> kindShift) }

func (c *core) has(f uint32) bool { return c.flags.Load()&f != 0 }

// set sets flag f and says whether it was set already.
func (c *core) set(f uint32) (was bool) {
	for {
		old := c.flags.Load()
		if old&f != 0 {
			return true
		}
		if c.flags.CompareAndSwap(old, old|f) {
			return false
		}
	}
}

// complete marks the handle done and closes done exactly once, whoever sees the completion
// first.
func (c *core) complete() {
	c.mu.Lock()
	c.completeLocked()
	c.mu.Unlock()
}

func (c *core) completeLocked() {
	if !c.set(flagFinished) {
		if c.done != nil {
			close(c.done)
		}
	}
}

// completeIfWordDone completes a call whose word says it has finished, in one critical section.
func (c *core) completeIfWordDone() bool {
	c.mu.Lock()
	is := c.wordIsLocked(C.GOMVX_DONE)
	if is {
		c.completeLocked()
	}
	c.mu.Unlock()
	return is
}

// closedChan is the done channel of handles that were done before anyone asked for it.
var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// doneChan makes done on demand: a channel for a handle still running, closedChan otherwise.
func (c *core) doneChan() chan struct{} {
	c.mu.Lock()
	if c.done == nil {
		if c.has(flagFinished) {
			c.done = closedChan
		} else {
			c.done = make(chan struct{})
		}
	}
	ch := c.done
	c.mu.Unlock()
	return ch
}

// wordDone reads a call's completion word without a cgo call: whether its task has finished.
func (c *core) wordDone() bool { return c.wordIs(C.GOMVX_DONE) }

func (c *core) wordIs(state uint32) bool {
	c.mu.Lock()
	is := c.wordIsLocked(state)
	c.mu.Unlock()
	return is
}

// wordIsLocked is wordIs with c.mu held (close frees the word under it).
func (c *core) wordIsLocked(state uint32) bool {
	return c.word != nil && atomic.LoadUint32((*uint32)(c.word)) == state
}

// arm makes done close when a call finishes, by registering its token and arming its completion
// word (glue.c): until then the call's completion costs Go nothing, and a waiter that comes
// after it, or catches it spinning, never involves the poller. Other handles are registered when
// they start. Idempotent. It returns when it armed the word (CLOCK_MONOTONIC ns), or 0.
func (c *core) arm() (at int64) {
	if c.kind() != kindCall || c.has(flagFinished) || c.set(flagArmed) {
		return 0
	}
	rt := c.rt
	rt.mu.RLock() // against Close: a token queued from here on is drained by Close
	if !rt.closed.Load() {
		rt.registerAs(c.token, entry{c: c})
		var armed C.gomvx_armed // {0, 0}: the handle is closed, so done
		c.mu.Lock()
		if c.word != nil {
			armed = C.gomvx_arm(C.uintptr_t(uintptr(c.word)), rt.n, C.uint64_t(c.token))
		}
		c.mu.Unlock()
		if armed.armed == 1 {
			rt.mu.RUnlock()
			return int64(armed.at_ns)
		}
		rt.unregister(c.token) // no token will come
		rt.mu.RUnlock()
		if armed.armed == 0 || !c.watchWithoutNotifier() { // finished, or out of memory: poll
			c.complete()
		}
		return 0
	}
	rt.mu.RUnlock()
	// The Runtime is closed, so the task has finished; unless a C joiner given C() replaced the
	// word's waker, which then never fires.
	if c.wordDone() || !c.watchWithoutNotifier() {
		c.complete()
	}
	return 0
}

// doneNs is when an armed call's word was woken (CLOCK_MONOTONIC ns; 0: not known).
func (c *core) doneNs() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.word == nil {
		return 0
	}
	return int64(C.gomvx_done_ns(C.uintptr_t(uintptr(c.word))))
}

func (c *core) finishedOrClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.jh == nil || C.mvx_join_is_finished(c.jh) != 0
}

// watchWithoutNotifier makes an unfinished handle whose Runtime is gone (a foreign handle
// adopted by it) close its done channel by polling; false if it has finished already.
func (c *core) watchWithoutNotifier() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.jh == nil || C.mvx_join_is_finished(c.jh) != 0 {
		return false
	}
	go func() {
		d := time.Millisecond
		for {
			time.Sleep(d)
			if d < pollInterval {
				d *= 2
			}
			c.mu.Lock()
			gone := c.jh == nil || C.mvx_join_is_finished(c.jh) != 0
			c.mu.Unlock()
			if gone {
				c.complete()
				return
			}
		}
	}()
	return true
}

var errClosed = &Error{Op: "Wait", Code: codeEINVAL, Msg: "the Handle is closed"}

// result moves the outcome out of the join handle once and caches it.
func (c *core) result() ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.has(flagTaken) {
		if c.res == nil {
			return nil, nil
		}
		return c.res.out, c.res.err
	}
	if c.jh == nil {
		return nil, errClosed
	}
	if c.voidCallSucceeded() {
		c.set(flagTaken)
		return nil, nil
	}
	var r C.gomvx_res
	var out []byte
	// A scalar's outcome: its bytes and the record in one allocation.
	var small *outcome
	jh := C.uintptr_t(uintptr(unsafe.Pointer(c.jh))) // see glue.h
	switch {
	case c.kind() == kindGo:
		r = C.gomvx_take_bytes(c.jh)
		if r.rc == 0 {
			out = C.GoBytes(r.p, C.int(r.n))
			C.free(r.p)
		}
	case c.outSize == 0:
		r = C.gomvx_take_none(jh)
	case c.outSize <= 8:
		r = C.gomvx_take_small(jh, C.size_t(c.outSize))
		if r.rc == 0 {
			small = &outcome{small: uint64(r.small)} // memory order, as C copied it
			out = (*[8]byte)(unsafe.Pointer(&small.small))[:c.outSize:c.outSize]
			small.out = out
		}
	default:
		out = make([]byte, c.outSize)
		r = C.gomvx_take(c.jh, unsafe.Pointer(&out[0]), C.size_t(c.outSize))
	}
	var err error
	switch r.rc {
	case 0:
	case codeECANCELLED:
		err = ErrCancelled
	case codeEFAILED:
		te := &TaskError{Code: int(r.code), Msg: C.GoString(r.msg)}
		C.free(unsafe.Pointer(r.msg))
		if c.res != nil && c.res.goFail != nil {
			te = c.res.goFail
		}
		err = te
	default:
		err = errOf("Output", r)
	}
	if r.rc != 0 {
		out = nil
	}
	c.set(flagTaken)
	if small != nil {
		c.res = small
	} else if out != nil || err != nil {
		c.res = &outcome{out: out, err: err}
	} else {
		c.res = nil
	}
	return out, err
}

// voidCallSucceeded says, with c.mu held, that a call returning void has finished and was not
// cancelled, so that Wait need not cross into C to take an empty output. A call task can only
// end cancelled otherwise: by Abort, by the Runtime's Close, or by C code that C() lent the join
// handle to; each sets its flag before it cancels, and the word is read first, so a cancelled
// call's DONE is never seen without the flag that explains it.
func (c *core) voidCallSucceeded() bool {
	return c.kind() == kindCall && c.outSize == 0 && c.wordIsLocked(C.GOMVX_DONE) &&
		!c.has(flagAborted|flagLent) && !c.rt.closed.Load()
}

func (c *core) abort() {
	c.set(flagAborted)
	c.mu.Lock()
	if c.jh != nil {
		C.mvx_join_abort(c.jh)
	}
	c.mu.Unlock()
}

func (c *core) close() {
	c.mu.Lock()
	jh := c.jh
	c.jh = nil
	if jh != nil {
		C.gomvx_release(C.uintptr_t(uintptr(unsafe.Pointer(jh))), C.uintptr_t(uintptr(c.word)))
		c.word = nil
		live.Add(-1)
	}
	if jh == nil || c.rt == nil || (c.kind() == kindCall && !c.has(flagArmed)) { // no token to drop
		c.completeLocked()
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.rt.unregister(c.token)
	c.complete()
}

// Handle is a task's join handle. Any number of goroutines may wait on it; its other methods
// may be called from any goroutine too. Close it when done (a finalizer only backs that up).
type Handle struct {
	// The Handle is its core: one allocation per task (calls: one per callBlockLen tasks). A
	// pointer to c (the registry's while a token is pending, a watcher goroutine's) keeps the
	// Handle alive, so a forgotten Handle is finalized once its task has finished.
	c core
}

// newCore allocates a Handle and returns its core; newHandle(c) then returns that Handle.
func newCore() *core { return &new(Handle).c }

// Calls' Handles are allocated callBlockLen at a time, with one finalizer per block, set once:
// a finalizer per Handle (set at the spawn, removed by Close) cost 7% of a call from Go
// (measured). The block's finalizer releases every Handle in it not closed, so a forgotten
// call's Handle is released once its task has finished and the other Handles of its block are
// unreachable too. Only calls: their outputs are small return values, which a block keeps
// alive as long as any of its Handles; a Go task's output may be large. 31 Handles and next fill
// the 2,048-byte size class.
const callBlockLen = 31

type callBlock struct {
	next int // the next Handle to hand out, while the block is in callBlocks (first: on h's page)
	h    [callBlockLen]Handle
}

// callBlocks holds blocks with Handles left: Get gives one goroutine the block, which puts it
// back while it has some. A pooled block is dropped at the second GC, so it never keeps
// forgotten Handles from their finalizer for long.
var callBlocks sync.Pool

// newCallCore returns the core of a fresh call Handle (kind kindCall, finalized by its block).
func newCallCore(blocking bool) *core {
	b, _ := callBlocks.Get().(*callBlock)
	if b == nil {
		return newCallBlock(blocking)
	}
	c := &b.h[b.next].c
	c.init(kindCall, blocking)
	if b.next++; b.next < callBlockLen {
		callBlocks.Put(b)
	}
	return c
}

// newCallBlock allocates a block and hands out its first Handle. The block's first touch of
// its page must be a write: a read (as the nil check of a pointer that might be nil, or of
// next) maps the shared zero page, and the write that follows then takes a copy-on-write fault
// whose TLB flush interrupts every other CPU running the process. Measured in
// go_calls_in_flight, where a fresh process faults in its heap until the first GC: 24% of the
// profile in those flushes when it read first, and run-to-run swings with it.
func newCallBlock(blocking bool) *core {
	b := new(callBlock) // never nil: no nil check reads it
	c := &b.h[0].c
	c.init(kindCall, blocking)
	b.next = 1
	runtime.SetFinalizer(b, finalizeCallBlock)
	callBlocks.Put(b)
	return c
}

func finalizeCallBlock(b *callBlock) {
	for i := range b.h {
		if c := &b.h[i].c; c.jh != nil { // unreachable: no lock needed to skip the closed
			c.close()
		}
	}
}

func newHandle(c *core) *Handle {
	h := (*Handle)(unsafe.Pointer(c)) // c is the Handle's first and only field
	if c.kind() != kindCall {
		runtime.SetFinalizer(h, func(h *Handle) { h.c.close() })
	}
	return h
}

// Done is closed once the task has finished (completed, failed or been cancelled), or the
// Handle is closed.
func (h *Handle) Done() <-chan struct{} {
	h.c.arm()
	return h.c.doneChan()
}

// Wait and Output check a call's completion word for a short while before they park (and arm
// it): a call that returns at once finishes within microseconds, sooner than a netpoller wake-up
// would deliver it, and a caught completion costs no thread hand-off at all. The spin's length
// adapts per Runtime as the library's does (src/spin.h): a catch after t makes it at least 4t; a
// park on a task that finished within the ceiling (the word records when) makes it at least
// twice that; a longer one halves it, down to the floor. So calls that take long cost at most
// the floor's CPU per Wait. The ceiling, 100 us, is above a sleeping worker's wake-up on a small
// VM: with 20 or 50 us, round trips that once went slow (a worker asleep, so a long wait, so a
// short spin) stayed slow; measured: 2.2-2.5 us per round trip against 3.9-8.2. MVX_GO_SPIN_NS
// sets the ceiling (0: no spin), MVX_GO_SPIN_FLOOR_NS the floor (1 us).
var (
	spinMax   = int64(envInt("MVX_GO_SPIN_NS", 100000))
	spinFloor = min64(spinMax, int64(envInt("MVX_GO_SPIN_FLOOR_NS", 1000)))
)

func min64(a, b int64) int64 {
	if a < b {
		return a
	}
	return b
}

// await waits for done (nil ctx: without end), spinning first on a call's word.
func (c *core) await(ctx context.Context) error {
	if c.has(flagFinished) {
		return nil
	}
	var start time.Time
	// Not on a CallBlocking: its function blocks by definition, and a spinning waiter would take
	// a CPU from the pool threads (measured: 10,000 usleep(1 ms) calls took 267 ms and 46 us of
	// CPU each with the spin, 200 ms and 20-30 us without).
	if c.kind() == kindCall && c.completeIfWordDone() { // finished already: no clock reads
		return nil
	}
	if c.kind() == kindCall && !c.has(flagBlocking) && spinMax > 0 {
		rt := c.rt
		budget := rt.waitSpin.Load()
		start = time.Now()
		for i := 1; ; i++ {
			if c.completeIfWordDone() {
				if b := spinAfterCatch(budget, int64(time.Since(start)), spinMax); b != budget {
					rt.waitSpin.Store(b)
				}
				return nil
			}
			// No runtime.Gosched here: each one is a trip through the scheduler, and with it the
			// round trip was 2-4x slower (measured). The spin is bounded; preemption still works.
			if i%16 == 0 && int64(time.Since(start)) >= budget {
				break
			}
		}
	}
	var spun int64
	if !start.IsZero() {
		spun = int64(time.Since(start))
	}
	armedAt := c.arm()
	var ctxDone <-chan struct{}
	if ctx != nil {
		ctxDone = ctx.Done()
	}
	select {
	case <-c.doneChan():
	case <-ctxDone:
		return ctx.Err()
	}
	// Learn from when the task finished, not from when this goroutine woke: the netpoller's
	// wake-up alone may exceed the ceiling, and a spin that never grows back would keep every
	// round trip on the slow path (and the workers, which learn from the gaps, asleep).
	if done := c.doneNs(); !start.IsZero() && armedAt > 0 && done > 0 {
		rt := c.rt
		g := spun + max64(0, done-armedAt)
		rt.waitSpin.Store(spinAfterPark(rt.waitSpin.Load(), g, spinMax, spinFloor))
	}
	return nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// spinAfterCatch is a spin budget after a spin found what it waited for t ns in: at least 4t,
// at most ceiling (src/spin.h's rule, shared by Wait and the poller).
func spinAfterCatch(budget, t, ceiling int64) int64 {
	return max64(budget, min64(ceiling, 4*t))
}

// spinAfterPark is a spin budget after a park whose event came g ns after the spin began: a
// longer spin would have caught it within the ceiling, so at least twice it; otherwise
// spinning did not pay, so half, down to floor.
func spinAfterPark(budget, g, ceiling, floor int64) int64 {
	if g <= ceiling {
		return min64(ceiling, 2*max64(budget, g))
	}
	if budget /= 2; budget < floor {
		return floor
	}
	return budget
}

// Wait waits for the task and returns nil (completed), ErrCancelled, a *TaskError, or ctx.Err()
// when ctx ends first (the task goes on: a cancelled Wait does not abort). After Close it
// returns an error matching ErrInvalid unless the outcome had been read before.
func (h *Handle) Wait(ctx context.Context) error {
	c := &h.c
	if err := c.await(ctx); err != nil {
		runtime.KeepAlive(h)
		return err
	}
	_, err := c.result()
	runtime.KeepAlive(h)
	return err
}

// Output waits for the task and returns its output: a call's return value as raw bytes (in the
// machine's byte order; see Result), the bytes a Go function returned, or an adopted C task's
// output. The outcome is read once and kept: Output and Wait can be called again.
func (h *Handle) Output() ([]byte, error) {
	h.c.await(nil)
	out, err := h.c.result()
	runtime.KeepAlive(h)
	return out, err
}

// Abort asks for the task to be cancelled (see mvx_join_abort): one that has not started is
// cancelled, a Go function's ctx is cancelled, a blocking call already running finishes but
// reports ErrCancelled. A task that completes first keeps its output.
func (h *Handle) Abort() {
	h.c.abort()
	runtime.KeepAlive(h)
}

// C is the mvx_join_handle *, borrowed until Close, so that C code can join the task
// (mvx_join_poll from a C task, mvx_join_wait, mvx_join_take). A join handle keeps one waker:
// while C polls it, wait through C, not through this Handle.
func (h *Handle) C() unsafe.Pointer {
	h.c.set(flagLent)
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	return unsafe.Pointer(h.c.jh)
}

// Close releases the handle: an unfinished task goes on, detached, and its output will be
// dropped; goroutines waiting on it are woken. Idempotent; always nil.
func (h *Handle) Close() error {
	h.c.close()
	if h.c.kind() != kindCall { // a call's Handle is finalized with its block (newCallCore)
		runtime.SetFinalizer(h, nil)
	}
	return nil
}

// Number is what Result decodes.
type Number interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64 |
		~int | ~uint | ~uintptr | ~float32 | ~float64
}

// Result waits for h and decodes its output as a T, which must have the output's size
// ("f64(f64)" gives a float64, "i32(...)" an int32 or uint32).
func Result[T Number](ctx context.Context, h *Handle) (T, error) {
	var zero T
	if err := h.Wait(ctx); err != nil {
		return zero, err
	}
	out, err := h.Output()
	if err != nil {
		return zero, err
	}
	if len(out) != int(unsafe.Sizeof(zero)) {
		return zero, invalid("Result", "the output has %d bytes, a %T has %d", len(out), zero,
			unsafe.Sizeof(zero))
	}
	return *(*T)(unsafe.Pointer(&out[0])), nil
}
