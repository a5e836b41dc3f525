// Package benchwork holds the binding's four benchmark workloads, each written once for the
// binding (impl "moduvex-go") and once the Go-only way (impl "go"), for go test -bench and for
// cmd/moduvex-go-bench.
package benchwork

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	moduvex "moduvex/bindings/go"
	"moduvex/bindings/go/internal/testc"
)

// Workload is one benchmark: Setup returns the function running one iteration of Ops
// operations, and a cleanup.
type Workload struct {
	Name string
	Ops  int
	// Peaks: sample the OS threads and the peak RSS during the iteration.
	Peaks bool
	Setup func(impl string, workers, pool int) (iter func(), cleanup func(), err error)
}

var ctx = context.Background()

func runtimeFor(workers, pool int) (*moduvex.Runtime, error) {
	return moduvex.New(moduvex.Workers(workers), moduvex.MaxBlocking(pool))
}

// Workloads are the four: (1) round trip of a trivial call, (2) 1,000 calls in flight,
// (3) fan-out of 10,000 blocking calls (usleep 1 ms), (4) a Go task joined by a C task.
var Workloads = []Workload{
	{Name: "go_call_round_trip", Ops: 10000, Setup: roundTrip},
	{Name: "go_calls_in_flight", Ops: 1000, Setup: inFlight},
	{Name: "go_blocking_fanout", Ops: 10000, Peaks: true, Setup: fanout},
	{Name: "go_task_joined_by_c", Ops: 10000, Setup: joinedByC},
}

func roundTrip(impl string, workers, pool int) (func(), func(), error) {
	if impl == "go" {
		ch := make(chan struct{})
		return func() {
			for i := 0; i < 10000; i++ {
				go func() { testc.CallNoop(); ch <- struct{}{} }()
				<-ch
			}
		}, func() {}, nil
	}
	rt, err := runtimeFor(workers, pool)
	if err != nil {
		return nil, nil, err
	}
	sig, _ := moduvex.ParseSignature("void()")
	fn := moduvex.FuncOf(testc.Noop)
	return func() {
		for i := 0; i < 10000; i++ {
			h, err := rt.Call(ctx, fn, sig)
			if err != nil {
				panic(err)
			}
			if err := h.Wait(ctx); err != nil {
				panic(err)
			}
			h.Close()
		}
	}, func() { rt.Close() }, nil
}

func inFlight(impl string, workers, pool int) (func(), func(), error) {
	const n = 1000
	if impl == "go" {
		return func() {
			var wg sync.WaitGroup
			wg.Add(n)
			done := make(chan struct{}, n)
			for i := 0; i < n; i++ {
				go func() { testc.CallNoop(); done <- struct{}{}; wg.Done() }()
			}
			for i := 0; i < n; i++ {
				<-done
			}
			wg.Wait()
		}, func() {}, nil
	}
	rt, err := runtimeFor(workers, pool)
	if err != nil {
		return nil, nil, err
	}
	sig, _ := moduvex.ParseSignature("void()")
	fn := moduvex.FuncOf(testc.Noop)
	hs := make([]*moduvex.Handle, n)
	return func() {
		for i := range hs {
			h, err := rt.Call(ctx, fn, sig)
			if err != nil {
				panic(err)
			}
			hs[i] = h
		}
		for _, h := range hs {
			if err := h.Wait(ctx); err != nil {
				panic(err)
			}
			h.Close()
		}
	}, func() { rt.Close() }, nil
}

func fanout(impl string, workers, pool int) (func(), func(), error) {
	const n = 10000
	if impl == "go" {
		return func() {
			var wg sync.WaitGroup
			wg.Add(n)
			for i := 0; i < n; i++ {
				go func() { testc.Usleep(1000); wg.Done() }()
			}
			wg.Wait()
		}, func() {}, nil
	}
	rt, err := runtimeFor(workers, pool)
	if err != nil {
		return nil, nil, err
	}
	usleep, err := moduvex.Lookup("libc.so.6", "usleep")
	if err != nil {
		return nil, nil, err
	}
	sig, _ := moduvex.ParseSignature("i32(u32)")
	hs := make([]*moduvex.Handle, n)
	return func() {
		for i := range hs {
			h, err := rt.CallBlocking(ctx, usleep, sig, uint32(1000))
			if err != nil {
				panic(err)
			}
			hs[i] = h
		}
		for _, h := range hs {
			if err := h.Wait(ctx); err != nil {
				panic(err)
			}
			h.Close()
		}
	}, func() { rt.Close() }, nil
}

func joinedByC(impl string, workers, pool int) (func(), func(), error) {
	payload := []byte("12345678")
	if impl == "go" {
		return func() {
			for i := 0; i < 10000; i++ {
				produced := make(chan []byte, 1)
				joined := make(chan int64, 1)
				go func() { produced <- payload }()
				go func() {
					b := <-produced
					sum := int64(len(b)) * 1000000
					for _, c := range b {
						sum += int64(c)
					}
					joined <- sum
				}()
				<-joined
			}
		}, func() {}, nil
	}
	rt, err := runtimeFor(workers, pool)
	if err != nil {
		return nil, nil, err
	}
	f := func(context.Context) ([]byte, error) { return payload, nil }
	return func() {
		for i := 0; i < 10000; i++ {
			g, err := rt.Go(ctx, f)
			if err != nil {
				panic(err)
			}
			j := rt.Adopt(testc.SpawnJoiner(rt.C(), g.C()))
			if _, err := moduvex.Result[int64](ctx, j); err != nil {
				panic(err)
			}
			j.Close()
			g.Close()
		}
	}, func() { rt.Close() }, nil
}

// Threads reads the process's OS thread count.
func Threads() int { return statusField("Threads:") }

// PeakRSS reads VmHWM in kB.
func PeakRSS() int { return statusField("VmHWM:") }

// ResetPeakRSS resets VmHWM to the current RSS.
func ResetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

func statusField(name string) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, name) {
			n, _ := strconv.Atoi(strings.Fields(l[len(name):])[0])
			return n
		}
	}
	return -1
}

// SamplePeakThreads samples Threads every millisecond until stop is called, which returns the
// peak (threads live longer than that: Go keeps its Ms, the pool keeps idle threads 10 s; more
// often costs the process with hundreds of threads a visible share of the CPU).
func SamplePeakThreads() (stop func() int) {
	var peak atomic.Int64
	peak.Store(int64(Threads()))
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				if n := int64(Threads()); n > peak.Load() {
					peak.Store(n)
				}
			}
		}
	}()
	return func() int {
		close(quit)
		<-done
		if n := int64(Threads()); n > peak.Load() {
			peak.Store(n)
		}
		return int(peak.Load())
	}
}

// CPUTime is the process's CPU time (user + system, all threads) in nanoseconds.
func CPUTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// Line formats a result line of bench/compare (../../shared/peers/README.md), sorted ns, plus
// cpu_per_task_ns (process CPU over all timed iterations per operation, as trickle's): on a
// loaded machine wall times mostly measure waiting for a CPU, CPU time much less so.
func Line(w Workload, impl string, workers int, ns []int64, cpuNs int64, peakThreads, peakRSS int) string {
	med := (ns[(len(ns)-1)/2] + ns[len(ns)/2]) / 2
	s := fmt.Sprintf("bench=%s impl=%s threads=%d iters=%d median_ns=%d min_ns=%d per_task_ns=%.1f cpu_per_task_ns=%.1f",
		w.Name, impl, workers, len(ns), med, ns[0], float64(med)/float64(w.Ops),
		float64(cpuNs)/float64(len(ns)*w.Ops))
	if w.Peaks {
		s += fmt.Sprintf(" peak_threads=%d peak_rss_kb=%d", peakThreads, peakRSS)
	}
	return s
}
