// Package moduvex runs C functions and plugin tasks on the moduvex runtime from Go, joins them
// with contexts, and lets C tasks join goroutines.
//
// No Go code runs on a moduvex thread: every completion is a token queued on a notifier (see
// moduvex.h, "Interop") whose file descriptor one poller goroutine per Runtime waits on through
// Go's netpoller, so a goroutine waiting for a task holds no OS thread. Go values never reach C:
// handles are named by integer tokens, arguments are copied, outputs come back as copies.
package moduvex

/*
#cgo pkg-config: moduvex
#cgo LDFLAGS: -ldl
#include "glue.h"
*/
import "C"

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Option configures New.
type Option func(*options) error

type options struct {
	workers, maxBlocking int
	setMaxBlocking       bool
	name                 string
}

// Workers sets the number of worker threads (0, the default: one per CPU available).
func Workers(n int) Option {
	return func(o *options) error {
		if n < 0 || n > 1024 {
			return invalid("New", "Workers(%d): want 0 to 1024", n)
		}
		o.workers = n
		return nil
	}
}

// ThreadName sets the prefix of the worker threads' names ("mvx-worker" by default).
func ThreadName(s string) Option {
	return func(o *options) error { o.name = s; return nil }
}

// MaxBlocking bounds the blocking pool that CallBlocking runs on (0, the default: 512 threads).
func MaxBlocking(n int) Option {
	return func(o *options) error {
		if n < 0 || int64(n) > int64(^uint32(0)) {
			return invalid("New", "MaxBlocking(%d): want a non-negative count", n)
		}
		o.maxBlocking, o.setMaxBlocking = n, n > 0
		return nil
	}
}

// Runtime is a moduvex runtime with the binding's poller goroutine. Its methods may be called
// from any goroutine. Close it when done: there is no finalizer.
type Runtime struct {
	// mu guards c and n against Close: spawns hold it shared while they use them.
	mu     sync.RWMutex
	closed atomic.Bool // set under mu (Lock) before the shutdown; read with or without it
	c      *C.mvx_runtime
	n      *C.mvx_notifier
	file   *os.File // a dup of the notifier's fd, in non-blocking mode; never call Fd() on it

	regMu     sync.Mutex
	reg       map[uint64]entry // token -> what its delivery completes
	nextToken atomic.Uint64
	waitSpin  atomic.Int64 // the adaptive spin of Wait, in ns (see await)

	tokens     *[drainMax]C.uint64_t
	batch      []entry
	pollerDone chan struct{}
	goTasks    sync.WaitGroup // goroutines running Go's functions (for the tests)
	closeOnce  sync.Once
	closeErr   error
}

const drainMax = 256

// The poller's spin: after a drain comes up empty it drains again, yielding its P between
// tries, for up to a budget before it parks in the netpoller, whose wake-up is a thread hand-off
// (several microseconds on a small VM) and costs more CPU than a short spin. The budget learns
// per Runtime like Wait's: a token found after t makes it at least 4t; a park that ended within
// the ceiling makes it at least twice the park; a longer one halves it, down to none. So
// completions that follow each other closely (a C task joining a Go one, then the next) are
// caught while completions far apart (waves of blocking calls, a trickle) cost no spin.
// Measured on go_task_joined_by_c: 40-54 us per task without the spin, 7-8 us with it.
// MVX_GO_POLL_SPIN_NS sets the ceiling (0: never spin).
var pollSpinMax = int64(envInt("MVX_GO_POLL_SPIN_NS", 100000))

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n >= 0 {
		return n
	}
	return def
}

// entry is what a token completes: a handle's core, or a Go task's cancel function.
type entry struct {
	c      *core
	cancel context.CancelFunc
}

// live counts the C objects the binding holds (join handles, promises) in all runtimes, so that
// tests can check that nothing is left behind.
var live atomic.Int64

// New starts a runtime.
func New(opts ...Option) (*Runtime, error) {
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	var name *C.char
	if o.name != "" {
		name = C.CString(o.name)
		defer C.free(unsafe.Pointer(name))
	}
	set := C.int(0)
	if o.setMaxBlocking {
		set = 1
	}
	r := C.gomvx_runtime_new(C.uint(o.workers), name, C.uint(o.maxBlocking), set)
	if r.rc != 0 {
		return nil, errOf("New", r)
	}
	rt := &Runtime{c: (*C.mvx_runtime)(r.p), reg: make(map[uint64]entry),
		tokens: new([drainMax]C.uint64_t), pollerDone: make(chan struct{})}
	rt.waitSpin.Store(spinMax)
	r = C.gomvx_notifier_new()
	if r.rc != 0 {
		C.gomvx_runtime_close(rt.c)
		return nil, errOf("New", r)
	}
	rt.n = (*C.mvx_notifier)(r.p)
	// os.NewFile sees O_NONBLOCK and registers the fd with the netpoller.
	rt.file = os.NewFile(uintptr(r.n), "moduvex-notifier")
	go rt.poll()
	return rt, nil
}

// C is the runtime's mvx_runtime *, for C code (plugins) that spawns on it. Borrowed: valid
// until Close.
func (rt *Runtime) C() unsafe.Pointer { return unsafe.Pointer(rt.c) }

// poll is the poller goroutine: it waits for the notifier's fd to poll readable (parked in the
// netpoller, holding no thread), drains the tokens and completes what they name. The notifier
// writes its fd only when its queue goes from empty to non-empty, so a drain that filled the
// whole array drains again before waiting.
func (rt *Runtime) poll() {
	defer close(rt.pollerDone)
	raw, err := rt.file.SyscallConn()
	if err != nil {
		panic("moduvex: notifier fd: " + err.Error())
	}
	var budget int64 // the spin (see pollSpinMax); only this goroutine uses it
	var parkedAt time.Time
	for {
		err := raw.Read(func(uintptr) bool {
			if !parkedAt.IsZero() { // called again: the fd became readable after a park
				budget = spinAfterPark(budget, int64(time.Since(parkedAt)), pollSpinMax, 0)
				parkedAt = time.Time{}
			}
			var spinStart time.Time
			for {
				switch n := rt.drain(); {
				case n == drainMax:
				case n > 0:
					if !spinStart.IsZero() {
						budget = spinAfterCatch(budget, int64(time.Since(spinStart)), pollSpinMax)
						spinStart = time.Time{}
					}
				case budget > 0 && (spinStart.IsZero() || int64(time.Since(spinStart)) < budget):
					if spinStart.IsZero() {
						spinStart = time.Now()
					}
					runtime.Gosched()
				default:
					parkedAt = time.Now()
					return false // wait for readability
				}
			}
		})
		if err != nil {
			return // Close closed the file
		}
	}
}

// drain delivers up to drainMax tokens. Consumer only: the poller, or Close once it stopped.
func (rt *Runtime) drain() int {
	k := int(C.mvx_notifier_drain(rt.n, &rt.tokens[0], drainMax))
	if k <= 0 {
		return 0
	}
	rt.regMu.Lock()
	for _, t := range rt.tokens[:k] {
		if e, ok := rt.reg[uint64(t)]; ok {
			delete(rt.reg, uint64(t))
			rt.batch = append(rt.batch, e)
		}
	}
	rt.regMu.Unlock()
	for i, e := range rt.batch {
		if e.c != nil {
			e.c.complete()
		} else {
			e.cancel()
		}
		rt.batch[i] = entry{}
	}
	rt.batch = rt.batch[:0]
	return k
}

// register gives e a new token.
func (rt *Runtime) register(e entry) uint64 {
	t := rt.nextToken.Add(1)
	rt.registerAs(t, e)
	return t
}

// registerAs registers e under t, a token from nextToken.
func (rt *Runtime) registerAs(t uint64, e entry) {
	rt.regMu.Lock()
	rt.reg[t] = e
	rt.regMu.Unlock()
}

func (rt *Runtime) unregister(t uint64) {
	rt.regMu.Lock()
	delete(rt.reg, t)
	rt.regMu.Unlock()
}

// armedState is GOMVX_ARMED, for the tests.
const armedState = C.GOMVX_ARMED

// notifierStats says how many times the notifier's fd was written and how many tokens it
// delivered (for the tests).
func (rt *Runtime) notifierStats() (fdWrites, tokens uint64) {
	st := C.mvx_notifier_stats{size: C.sizeof_mvx_notifier_stats}
	C.mvx_notifier_stats_get(rt.n, &st)
	return uint64(st.fd_writes), uint64(st.tokens)
}

func (rt *Runtime) registered() int {
	rt.regMu.Lock()
	defer rt.regMu.Unlock()
	return len(rt.reg)
}

// Close shuts the runtime down, stops the poller and releases the runtime; it is idempotent
// and returns the first call's result. Tasks not running are cancelled (their handles report
// ErrCancelled), running calls are waited for, and the contexts of Go functions still running
// are cancelled. Handles stay usable afterwards and must still be closed.
func (rt *Runtime) Close() error {
	rt.closeOnce.Do(func() {
		rt.mu.Lock()
		rt.closed.Store(true)
		rt.mu.Unlock()
		if r := C.gomvx_runtime_close(rt.c); r.rc != 0 {
			rt.closeErr = errOf("Close", r)
		}
		// Every task has finished now and queued its token; stop the poller and deliver the rest
		// here, as the notifier's only consumer.
		rt.file.Close()
		<-rt.pollerDone
		for rt.drain() > 0 {
		}
		rt.regMu.Lock()
		left := make([]entry, 0, len(rt.reg))
		for t, e := range rt.reg {
			left = append(left, e)
			delete(rt.reg, t)
		}
		rt.regMu.Unlock()
		for _, e := range left {
			if e.c == nil {
				e.cancel()
			} else if !e.c.watchWithoutNotifier() {
				e.c.complete()
			}
		}
		C.mvx_notifier_free(rt.n)
	})
	return rt.closeErr
}

// errShutdown is what spawning on a closed Runtime returns.
func errShutdown(op string) error {
	return &Error{Op: op, Code: codeESHUTDOWN, Msg: "the Runtime is closed"}
}

// pollInterval bounds the polling of handles that outlive their Runtime's notifier.
const pollInterval = 10 * time.Millisecond
