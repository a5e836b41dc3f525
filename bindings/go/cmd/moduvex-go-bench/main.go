// moduvex-go-bench runs the Go binding's benchmarks beside the Go-only way and prints one line
// per (workload, impl) in the format of bench/compare (see internal/benchwork), then the ratios
// on stderr. Each pair runs in a child process of its own, so that threads and peak RSS are
// its own. Usage: moduvex-go-bench [workload ...]; MVX_BENCH_THREADS (workers, 2),
// MVX_BENCH_ITERS (30; the fan-out runs a fifth of them, at least 3), MVX_GO_BENCH_POOL
// (the blocking pool; 0, the default: the library's default, 512 threads, what a program gets
// without MaxBlocking).
package main

import (
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	"moduvex/bindings/go/internal/benchwork"
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

var impls = []string{"moduvex-go", "go"}

func main() {
	workers := envInt("MVX_BENCH_THREADS", 2)
	iters := envInt("MVX_BENCH_ITERS", 30)
	pool := envInt("MVX_GO_BENCH_POOL", 0)
	if one := os.Getenv("MVX_GO_BENCH_ONE"); one != "" {
		name, impl, _ := strings.Cut(one, ":")
		for _, w := range benchwork.Workloads {
			if w.Name == name {
				runOne(w, impl, workers, pool, iters)
				return
			}
		}
		fmt.Fprintf(os.Stderr, "unknown workload %q\n", name)
		os.Exit(2)
	}
	want := map[string]bool{}
	for _, a := range os.Args[1:] {
		want[a] = true
	}
	for _, w := range benchwork.Workloads {
		if len(want) > 0 && !want[w.Name] {
			continue
		}
		per := map[string]float64{}
		fields := map[string]map[string]string{}
		for _, impl := range impls {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), "MVX_GO_BENCH_ONE="+w.Name+":"+impl)
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s %s: %v\n", w.Name, impl, err)
				os.Exit(1)
			}
			line := strings.TrimSpace(string(out))
			fmt.Println(line)
			fields[impl] = map[string]string{}
			for _, f := range strings.Fields(line) {
				k, v, _ := strings.Cut(f, "=")
				fields[impl][k] = v
			}
			per[impl], _ = strconv.ParseFloat(fields[impl]["median_ns"], 64)
		}
		cpuOf := func(impl string) float64 {
			v, _ := strconv.ParseFloat(fields[impl]["cpu_per_task_ns"], 64)
			return v
		}
		note := fmt.Sprintf("ratio %s: moduvex-go/go median %.3f, cpu %.3f", w.Name,
			per["moduvex-go"]/per["go"], cpuOf("moduvex-go")/cpuOf("go"))
		if w.Peaks {
			note += fmt.Sprintf(", peak threads %s vs %s, peak RSS %s kB vs %s kB",
				fields["moduvex-go"]["peak_threads"], fields["go"]["peak_threads"],
				fields["moduvex-go"]["peak_rss_kb"], fields["go"]["peak_rss_kb"])
		}
		fmt.Fprintln(os.Stderr, note)
	}
}

func runOne(w benchwork.Workload, impl string, workers, pool, iters int) {
	warm := 5
	if w.Peaks {
		iters, warm = max(3, iters/5), 1
	}
	iter, cleanup, err := w.Setup(impl, workers, pool)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for i := 0; i < warm; i++ {
		iter()
	}
	ns := make([]int64, iters)
	peakThreads, peakRSS := 0, 0
	cpu := int64(0)
	for i := range ns {
		var stop func() int
		if w.Peaks {
			benchwork.ResetPeakRSS()
			stop = benchwork.SamplePeakThreads()
		}
		c, t := benchwork.CPUTime(), time.Now()
		iter()
		ns[i] = int64(time.Since(t))
		cpu += benchwork.CPUTime() - c
		if w.Peaks {
			peakThreads = max(peakThreads, stop())
			peakRSS = max(peakRSS, benchwork.PeakRSS())
		}
	}
	cleanup()
	sort.Slice(ns, func(a, b int) bool { return ns[a] < ns[b] })
	fmt.Println(benchwork.Line(w, impl, workers, ns, cpu, peakThreads, peakRSS))
}

func max(a, b int) int {
	if a > b {
		return a
	}
	return b
}
