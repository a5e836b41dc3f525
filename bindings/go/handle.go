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

// core is a handle's state. The Runtime's registry points at the core, not at the Handle, so
// that a Handle nobody holds can be finalized.
type core struct {
	kind     handleKind
	outSize  int
	done     chan struct{}
	finished atomic.Bool // done is closed (set once: no double close)
	aborted  atomic.Bool // abort was asked for (for the tests)

	mu     sync.Mutex
	jh     *C.mvx_join_handle // nil once released
	token  uint64
	rt     *Runtime
	taken  bool // the outcome was moved out into out/err
	out    []byte
	err    error
	goFail *TaskError // a Go task's failure, with its Go value
}

// complete closes done exactly once, whoever sees the completion first.
func (c *core) complete() {
	if c.finished.CompareAndSwap(false, true) {
		close(c.done)
	}
}

func (c *core) isFinished() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.jh != nil && C.mvx_join_is_finished(c.jh) != 0
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
	if c.taken {
		return c.out, c.err
	}
	if c.jh == nil {
		return nil, errClosed
	}
	var r C.gomvx_res
	var out []byte
	switch c.kind {
	case kindGo:
		r = C.gomvx_take_bytes(c.jh)
		if r.rc == 0 {
			out = C.GoBytes(r.p, C.int(r.n))
			C.free(r.p)
		}
	default:
		var p unsafe.Pointer
		if c.outSize > 0 {
			out = make([]byte, c.outSize)
			p = unsafe.Pointer(&out[0])
		}
		r = C.gomvx_take(c.jh, p, C.size_t(c.outSize))
	}
	var err error
	switch r.rc {
	case 0:
	case codeECANCELLED:
		err = ErrCancelled
	case codeEFAILED:
		te := &TaskError{Code: int(r.code), Msg: C.GoString(r.msg)}
		C.free(unsafe.Pointer(r.msg))
		if c.goFail != nil {
			te = c.goFail
		}
		err = te
	default:
		err = errOf("Output", r)
	}
	if r.rc != 0 {
		out = nil
	}
	c.taken, c.out, c.err = true, out, err
	return out, err
}

func (c *core) abort() {
	c.aborted.Store(true)
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
		C.mvx_join_release(jh)
		live.Add(-1)
	}
	c.mu.Unlock()
	if jh != nil && c.rt != nil {
		c.rt.unregister(c.token)
	}
	c.complete()
}

// Handle is a task's join handle. Any number of goroutines may wait on it; its other methods
// may be called from any goroutine too. Close it when done (a finalizer only backs that up).
type Handle struct {
	c *core
}

func newHandle(c *core) *Handle {
	h := &Handle{c}
	runtime.SetFinalizer(h, func(h *Handle) { h.c.close() })
	return h
}

// Done is closed once the task has finished (completed, failed or been cancelled), or the
// Handle is closed.
func (h *Handle) Done() <-chan struct{} { return h.c.done }

// spinChecks is how many times Wait checks the task before parking on Done: a call that returns
// at once is usually finished within a few microseconds, sooner than the poller could be woken.
var spinChecks = envInt("MVX_GO_SPIN", 0)

// Wait waits for the task and returns nil (completed), ErrCancelled, a *TaskError, or ctx.Err()
// when ctx ends first (the task goes on: a cancelled Wait does not abort). After Close it
// returns an error matching ErrInvalid unless the outcome had been read before.
func (h *Handle) Wait(ctx context.Context) error {
	c := h.c
	select {
	case <-c.done:
	default:
		spun := false
		for i := 0; i < spinChecks; i++ {
			if c.isFinished() {
				c.complete()
				spun = true
				break
			}
			runtime.Gosched()
		}
		if !spun {
			if ctx == nil {
				ctx = context.Background()
			}
			select {
			case <-c.done:
			case <-ctx.Done():
				runtime.KeepAlive(h)
				return ctx.Err()
			}
		}
	}
	_, err := c.result()
	runtime.KeepAlive(h)
	return err
}

// Output waits for the task and returns its output: a call's return value as raw bytes (in the
// machine's byte order; see Result), the bytes a Go function returned, or an adopted C task's
// output. The outcome is read once and kept: Output and Wait can be called again.
func (h *Handle) Output() ([]byte, error) {
	<-h.c.done
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
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	return unsafe.Pointer(h.c.jh)
}

// Close releases the handle: an unfinished task goes on, detached, and its output will be
// dropped; goroutines waiting on it are woken. Idempotent; always nil.
func (h *Handle) Close() error {
	h.c.close()
	runtime.SetFinalizer(h, nil)
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
