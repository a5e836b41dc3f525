package moduvex_test

import (
	"testing"
	"time"

	"moduvex/bindings/go/internal/benchwork"
)

// go test -bench . runs the four workloads of internal/benchwork, each beside the Go-only way;
// one op is one iteration (Ops calls or tasks), and ns/call is reported. cmd/moduvex-go-bench
// prints the same workloads in bench/compare's line format, each in a process of its own
// (threads and peak RSS are per process, so use it for the fan-out's peaks).
func BenchmarkWorkloads(b *testing.B) {
	for _, w := range benchwork.Workloads {
		for _, impl := range []string{"moduvex-go", "go"} {
			w, impl := w, impl
			b.Run(w.Name+"/"+impl, func(b *testing.B) {
				iter, cleanup, err := w.Setup(impl, 2, 0) // the library's default pool
				if err != nil {
					b.Fatal(err)
				}
				defer cleanup()
				iter() // warm up
				var stop func() int
				if w.Peaks {
					stop = benchwork.SamplePeakThreads()
				}
				b.ResetTimer()
				start := time.Now()
				for i := 0; i < b.N; i++ {
					iter()
				}
				b.StopTimer()
				b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N*w.Ops), "ns/call")
				if w.Peaks {
					b.ReportMetric(float64(stop()), "peak-threads")
				}
			})
		}
	}
}
