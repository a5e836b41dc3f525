// Command go is the Go side of moduvex's scheduler comparison (bench/compare).
//
// It ports the workloads of tokio's benches/rt_multi_threaded.rs, with the
// same parameters, plus spawn_join_latency, pending_memory, trickle and the timer
// workloads (timer_*, on package time); see
// ../README.md for the specification and the output format.
//
// Mapping: a task is a goroutine, its join handle a channel the goroutine
// closes when it ends, a yield is runtime.Gosched and a oneshot is a channel
// with one slot. GOMAXPROCS is the thread count. Go has no thread outside the
// scheduler, so "remote" spawns are made from the main goroutine, which holds
// a P like any other.
//
// Usage: go [workload ...] (every workload when none is named), with
// MVX_BENCH_THREADS (default 2) and MVX_BENCH_ITERS (default 30). Result
// lines go to stdout, notes to stderr.
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	implName        = "go"
	warmupIters     = 5
	stallFor        = 10 * time.Microsecond
	starvationLimit = 5 * time.Second
)

// config holds the settings every workload shares.
type config struct {
	threads int
	iters   int
}

func positiveEnv(name string, fallback int) int {
	n, err := strconv.Atoi(strings.TrimSpace(os.Getenv(name)))
	if err != nil || n <= 0 {
		return fallback
	}
	return n
}

// timeIters runs body warmupIters times untimed, then c.iters times timed,
// and returns the iteration times in ns, sorted.
func (c config) timeIters(body func()) []int64 {
	for i := 0; i < warmupIters; i++ {
		body()
	}
	out := make([]int64, 0, c.iters)
	for i := 0; i < c.iters; i++ {
		start := time.Now()
		body()
		out = append(out, time.Since(start).Nanoseconds())
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// median of sorted samples; an even count gives the mean of the middle two.
func median(sorted []int64) int64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// emit prints the result line; perIter is the number of tasks (or
// operations) in one iteration.
func (c config) emit(workload string, perIter int, sorted []int64) {
	m := median(sorted)
	fmt.Printf("bench=%s impl=%s threads=%d iters=%d median_ns=%d min_ns=%d per_task_ns=%.1f\n",
		workload, implName, c.threads, c.iters, m, sorted[0], float64(m)/float64(perIter))
}

func (c config) measure(workload string, perIter int, body func()) {
	c.emit(workload, perIter, c.timeIters(body))
}

// stall keeps the calling thread busy for stallFor while giving the CPU back
// to the OS on each turn. The raw sched_yield does not enter the Go
// scheduler, so the goroutine keeps its P, as a tokio task keeps its worker.
func stall() {
	deadline := time.Now().Add(stallFor)
	for time.Now().Before(deadline) {
		syscall.RawSyscall(syscall.SYS_SCHED_YIELD, 0, 0, 0)
	}
}

// spawn starts f as a goroutine and returns its join handle.
func spawn(f func()) <-chan struct{} {
	joined := make(chan struct{})
	go func() {
		f()
		close(joined)
	}()
	return joined
}

func nothing() {}

// spawnThenJoin starts n empty tasks, then waits for every join handle.
func spawnThenJoin(n int, joins []<-chan struct{}) {
	joins = joins[:0]
	for i := 0; i < n; i++ {
		joins = append(joins, spawn(nothing))
	}
	for _, j := range joins {
		<-j
	}
}

// countdown signals done when it has been hit n times.
type countdown struct {
	left atomic.Int64
	done chan struct{}
}

func newCountdown() *countdown { return &countdown{done: make(chan struct{}, 1)} }

func (c *countdown) reset(n int) { c.left.Store(int64(n)) }
func (c *countdown) hit() {
	if c.left.Add(-1) == 0 {
		c.done <- struct{}{}
	}
}
func (c *countdown) wait() { <-c.done }

// ----------------------------------------------------------------- workloads

func spawnManyLocal(c config) {
	const tasks = 10000
	cd := newCountdown()
	c.measure("spawn_many_local", tasks, func() {
		cd.reset(tasks)
		for i := 0; i < tasks; i++ {
			go cd.hit()
		}
		cd.wait()
	})
}

func spawnManyRemoteIdle(c config) {
	const tasks = 10000
	joins := make([]<-chan struct{}, 0, tasks)
	c.measure("spawn_many_remote_idle", tasks, func() { spawnThenJoin(tasks, joins) })
}

// background runs n copies of loop until stop is called, which waits for
// all of them to return.
type background struct {
	running atomic.Bool
	wg      sync.WaitGroup
}

func (b *background) stop() {
	b.running.Store(false)
	b.wg.Wait()
}

// spawnManyRemoteBusy1: remote_idle while 2 x threads goroutines loop:
// yield, stall.
func spawnManyRemoteBusy1(c config) {
	const tasks = 10000
	var bg background
	bg.running.Store(true)
	for i := 0; i < 2*c.threads; i++ {
		bg.wg.Add(1)
		go func() {
			defer bg.wg.Done()
			for bg.running.Load() {
				runtime.Gosched()
				stall()
			}
		}()
	}
	joins := make([]<-chan struct{}, 0, tasks)
	c.measure("spawn_many_remote_busy1", tasks, func() { spawnThenJoin(tasks, joins) })
	bg.stop()
}

// link is one goroutine of a busy2 background chain: stall, then start the
// next one.
func (b *background) link() {
	defer b.wg.Done()
	if !b.running.Load() {
		return
	}
	stall()
	b.wg.Add(1)
	go b.link()
}

// watchdog calls onStarve when beat has not been called for starvationLimit.
// It is a runtime timer pushed back on every beat, so it adds no periodic
// wake-ups to the scheduler being measured.
type watchdog struct {
	timer *time.Timer
	once  sync.Once     // a beat racing the expiry can re-arm the timer
	fired chan struct{} // closed once onStarve has returned
}

func startWatchdog(onStarve func()) *watchdog {
	w := &watchdog{fired: make(chan struct{})}
	w.timer = time.AfterFunc(starvationLimit, func() {
		w.once.Do(func() {
			onStarve()
			close(w.fired)
		})
	})
	return w
}

// beat pushes the deadline back (unless the watchdog has fired already).
func (w *watchdog) beat() {
	select {
	case <-w.fired:
	default:
		w.timer.Reset(starvationLimit)
	}
}

// finish stops the watchdog and reports whether it fired.
func (w *watchdog) finish() bool {
	if !w.timer.Stop() {
		<-w.fired // expired: wait until onStarve is done
		return true
	}
	select {
	case <-w.fired: // fired earlier, then re-armed by a racing beat
		return true
	default:
		return false
	}
}

// spawnManyRemoteBusy2: remote_idle with 1,000 tasks while `threads`
// background chains run. If an iteration stalls past starvationLimit, the
// chains are stopped and no line is printed.
func spawnManyRemoteBusy2(c config) {
	const tasks = 1000
	var bg background
	bg.running.Store(true)
	for i := 0; i < c.threads; i++ {
		bg.wg.Add(1)
		go bg.link()
	}
	dog := startWatchdog(func() { bg.running.Store(false) })
	joins := make([]<-chan struct{}, 0, tasks)
	samples := c.timeIters(func() {
		spawnThenJoin(tasks, joins)
		dog.beat()
	})
	starved := dog.finish()
	bg.stop()
	if starved {
		fmt.Fprintf(os.Stderr, "spawn_many_remote_busy2 (go): remote tasks got no thread for %v; no result\n", starvationLimit)
		return
	}
	c.emit("spawn_many_remote_busy2", tasks, samples)
}

func yieldMany(c config) {
	const tasks, yields = 200, 1000
	finished := make(chan struct{}, tasks)
	c.measure("yield_many", tasks*yields, func() {
		for i := 0; i < tasks; i++ {
			go func() {
				for y := 0; y < yields; y++ {
					runtime.Gosched()
				}
				finished <- struct{}{}
			}()
		}
		for i := 0; i < tasks; i++ {
			<-finished
		}
	})
}

// pingPong: one goroutine starts 1,000 pingers; each starts its ponger and
// they exchange one message each way over two one-slot channels.
func pingPong(c config) {
	const pings = 1000
	cd := newCountdown()
	pinger := func() {
		ping, pong := make(chan struct{}, 1), make(chan struct{}, 1)
		go func() {
			<-ping
			pong <- struct{}{}
		}()
		ping <- struct{}{}
		<-pong
		cd.hit()
	}
	c.measure("ping_pong", pings, func() {
		cd.reset(pings)
		go func() {
			for i := 0; i < pings; i++ {
				go pinger()
			}
		}()
		cd.wait()
	})
}

func chainedSpawn(c config) {
	const links = 1000
	done := make(chan struct{}, 1)
	var link func(left int)
	link = func(left int) {
		if left == 0 {
			done <- struct{}{}
			return
		}
		go link(left - 1)
	}
	c.measure("chained_spawn", links, func() {
		go link(links)
		<-done
	})
}

// spawnJoinLatency: the main goroutine is wired to its OS thread, so every
// join parks that thread and the task runs elsewhere, as for a caller outside
// the runtime.
func spawnJoinLatency(c config) {
	const trips = 10000
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c.measure("spawn_join_latency", trips, func() {
		for i := 0; i < trips; i++ {
			<-spawn(nothing)
		}
	})
}

// procStatusKB reads one "Key:  N kB" field of /proc/self/status.
func procStatusKB(key string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == key {
			v, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				panic(err)
			}
			return v
		}
	}
	panic("no " + key + " in /proc/self/status")
}

// pendingMemory: 1,000,000 goroutines blocked on one channel nobody sends
// to. Goroutines cannot be cancelled one by one, so "abort all" is closing
// that channel, and abort_all_ns lasts until every goroutine has returned.
func pendingMemory(c config) {
	const tasks = 1000000
	var parked atomic.Int64
	var exited sync.WaitGroup
	abort := make(chan struct{})
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		fmt.Fprintln(os.Stderr, "pending_memory (go): cannot reset VmHWM, bytes_per_task may be too high:", err)
	}
	rssBefore := procStatusKB("VmRSS:")
	exited.Add(tasks)
	for i := 0; i < tasks; i++ {
		go func() {
			defer exited.Done()
			parked.Add(1)
			<-abort
		}()
	}
	for parked.Load() != tasks {
		time.Sleep(50 * time.Microsecond)
	}
	hwm := procStatusKB("VmHWM:")
	start := time.Now()
	close(abort)
	exited.Wait()
	abortNs := time.Since(start).Nanoseconds()
	perTask := int64(0)
	if hwm > rssBefore {
		perTask = (hwm - rssBefore) * 1024 / tasks
	}
	fmt.Printf("bench=pending_memory impl=%s threads=%d tasks=%d bytes_per_task=%d abort_all_ns=%d\n",
		implName, c.threads, tasks, perTask, abortNs)
}

// ------------------------------------------------------------------ timers

// cpuNs is the process CPU (user + system) in ns.
func cpuNs() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return (ru.Utime.Sec+ru.Stime.Sec)*1000000000 + (ru.Utime.Usec+ru.Stime.Usec)*1000
}

// rng is xorshift64, the same generator as bench.c's.
type rng uint64

func (r *rng) next() uint64 {
	x := uint64(*r)
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	*r = rng(x)
	return x
}

// timerChurn: one goroutine re-arms (Reset) and stops one timer 1,000,000
// times, deadlines 60 s out, 1,024 different ones.
func timerChurn(c config) {
	const pairs = 1000000
	c.measure("timer_churn", pairs, func() {
		done := make(chan struct{})
		go func() {
			t := time.NewTimer(time.Hour)
			t.Stop()
			for i := 0; i < pairs; i++ {
				t.Reset(time.Minute + time.Duration(i&1023)*977)
				t.Stop()
			}
			close(done)
		}()
		<-done
	})
}

// runSleepers starts n goroutines sleeping random 1..maxMs ms at once and
// returns each one's lateness in ns.
func runSleepers(n int, minMs, maxMs uint64, r *rng) []int64 {
	late := make([]int64, n)
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		d := time.Now().Add(time.Duration(minMs*1000000 + r.next()%((maxMs-minMs)*1000000)))
		go func(i int) {
			defer wg.Done()
			time.Sleep(time.Until(d))
			late[i] = time.Since(d).Nanoseconds()
		}(i)
	}
	wg.Wait()
	return late
}

func reportLateness(c config, name string, late []int64, cpu int64) {
	sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
	n := len(late)
	fmt.Printf("bench=%s impl=%s threads=%d timers=%d p50_late_ns=%d p99_late_ns=%d max_late_ns=%d cpu_per_timer_ns=%d\n",
		name, implName, c.threads, n, late[n/2], late[n*99/100], late[n-1], cpu/int64(n))
}

// timerFire: 100,000 sleeps of random 1-100 ms started at once;
// min(iters, 3) rounds pooled. timerFireLong: the same with 300-1,000 ms.
func timerFire(c config) { fireSleepers(c, "timer_fire", 1, 100) }

func timerFireLong(c config) { fireSleepers(c, "timer_fire_long", 300, 1000) }

func fireSleepers(c config, name string, minMs, maxMs uint64) {
	r := rng(0x2545F4914F6CDD1D)
	rounds := c.iters
	if rounds > 3 {
		rounds = 3
	}
	cpu := cpuNs()
	var late []int64
	for i := 0; i < rounds; i++ {
		late = append(late, runSleepers(100000, minMs, maxMs, &r)...)
	}
	reportLateness(c, name, late, cpuNs()-cpu)
}

// timerBusyLateness: 10,000 sleeps of random 1-50 ms beside busy1's background.
func timerBusyLateness(c config) {
	var bg background
	bg.running.Store(true)
	for i := 0; i < 2*c.threads; i++ {
		bg.wg.Add(1)
		go func() {
			defer bg.wg.Done()
			for bg.running.Load() {
				runtime.Gosched()
				stall()
			}
		}()
	}
	r := rng(0x2545F4914F6CDD1D)
	cpu := cpuNs()
	late := runSleepers(10000, 1, 50, &r)
	cpu = cpuNs() - cpu
	bg.stop()
	reportLateness(c, "timer_busy_lateness", late, cpu)
}

// timerMemory: 1,000,000 pending sleep tasks an hour out: goroutines in
// time.Sleep, Go's like-for-like of a sleep task with a join handle (a
// channel closed at the end, as spawn).
func timerMemory(c config) {
	const tasks = 1000000
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		fmt.Fprintln(os.Stderr, "timer_memory (go): cannot reset VmHWM, bytes_per_task may be too high:", err)
	}
	r := rng(0x2545F4914F6CDD1D)
	rssBefore := procStatusKB("VmRSS:")
	var started atomic.Int64
	stop := make(chan struct{})
	joins := make([]<-chan struct{}, tasks)
	for i := range joins {
		d := time.Hour + time.Duration(r.next()%1000000000)
		joins[i] = spawn(func() {
			t := time.NewTimer(d)
			started.Add(1)
			select {
			case <-t.C:
			case <-stop:
				t.Stop()
			}
		})
	}
	for started.Load() != tasks {
		time.Sleep(50 * time.Microsecond)
	}
	hwm := procStatusKB("VmHWM:")
	start := time.Now()
	close(stop)
	for _, j := range joins {
		<-j
	}
	abortNs := time.Since(start).Nanoseconds()
	perTask := int64(0)
	if hwm > rssBefore {
		perTask = (hwm - rssBefore) * 1024 / tasks
	}
	fmt.Printf("bench=timer_memory impl=%s threads=%d tasks=%d bytes_per_task=%d abort_all_ns=%d\n",
		implName, c.threads, tasks, perTask, abortNs)
}

// timerIdleCpu: process CPU over one idle second with 1,000 sleeping
// goroutines due 1 s apart.
func timerIdleCpu(c config) {
	const n = 1000
	now := time.Now()
	for i := 0; i < n; i++ {
		d := now.Add(1500*time.Millisecond + time.Duration(i)*time.Second)
		go func() { time.Sleep(time.Until(d)) }()
	}
	time.Sleep(200 * time.Millisecond)
	cpu := cpuNs()
	start := time.Now()
	time.Sleep(time.Second)
	cpu = cpuNs() - cpu
	fmt.Printf("bench=timer_idle_cpu impl=%s threads=%d timers=%d wall_ns=%d cpu_ns=%d\n",
		implName, c.threads, n, time.Since(start).Nanoseconds(), cpu)
}

// trickle: what the runtime costs while work arrives slowly. From the main
// goroutine, 2,000 empty goroutines, one every MVX_TRICKLE_PERIOD_US (default
// 1000) on absolute deadlines, after a 100 ms settle; reports the process CPU
// per task, the spawn-to-start latency (p50, p99) and the CPU of the idle
// second after. With MVX_BENCH_ITERS=1 (a smoke run): 100 tasks, 100 ms idle.
func trickle(c config) {
	tasks, idle := 2000, time.Second
	if c.iters == 1 {
		tasks, idle = 100, 100*time.Millisecond
	}
	period := time.Duration(positiveEnv("MVX_TRICKLE_PERIOD_US", 1000)) * time.Microsecond
	// time.Sleep with every P idle waits in epoll_wait, whose timeout is in whole
	// milliseconds: a sleep under 1 ms takes about 1.1 ms, so at a 100 us period the
	// goroutines come in bursts of about 11. MVX_GO_TRICKLE_SLEEP=thread keeps the period
	// the way a C thread does, with nanosleep(2) on the spawner's locked thread, and
	// reports impl=go-nanosleep.
	impl, threadSleep := implName, os.Getenv("MVX_GO_TRICKLE_SLEEP") == "thread"
	if threadSleep {
		impl = implName + "-nanosleep"
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	time.Sleep(100 * time.Millisecond)
	started := make([]int64, tasks)
	var ran atomic.Int64
	cpu0 := cpuNs()
	t0 := time.Now()
	for i := 0; i < tasks; i++ {
		if d := time.Until(t0.Add(time.Duration(i) * period)); d > 0 && threadSleep {
			ts := syscall.NsecToTimespec(d.Nanoseconds())
			for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
			}
		} else if d > 0 {
			time.Sleep(d)
		}
		i, spawned := i, time.Now()
		go func() {
			atomic.StoreInt64(&started[i], int64(time.Since(spawned)))
			ran.Add(1)
		}()
	}
	for ran.Load() < int64(tasks) {
		time.Sleep(100 * time.Microsecond)
	}
	cpu1 := cpuNs()
	time.Sleep(idle)
	cpu2 := cpuNs()
	sort.Slice(started, func(a, b int) bool { return started[a] < started[b] })
	fmt.Printf("bench=trickle impl=%s threads=%d tasks=%d period_ns=%d cpu_per_task_ns=%d start_p50_ns=%d start_p99_ns=%d idle_cpu_ns_per_s=%d\n",
		impl, c.threads, tasks, period.Nanoseconds(), (cpu1-cpu0)/int64(tasks),
		started[tasks/2], started[tasks*99/100], (cpu2-cpu1)*int64(time.Second)/int64(idle))
}

// ---------------------------------------------------------------------- main

var order = []string{
	"spawn_many_local",
	"spawn_many_remote_idle",
	"spawn_many_remote_busy1",
	"spawn_many_remote_busy2",
	"yield_many",
	"ping_pong",
	"chained_spawn",
	"spawn_join_latency",
	"pending_memory",
	"timer_churn",
	"timer_fire",
	"timer_fire_long",
	"timer_memory",
	"timer_idle_cpu",
	"timer_busy_lateness",
	"trickle",
}

var byName = map[string]func(config){
	"spawn_many_local":        spawnManyLocal,
	"spawn_many_remote_idle":  spawnManyRemoteIdle,
	"spawn_many_remote_busy1": spawnManyRemoteBusy1,
	"spawn_many_remote_busy2": spawnManyRemoteBusy2,
	"yield_many":              yieldMany,
	"ping_pong":               pingPong,
	"chained_spawn":           chainedSpawn,
	"spawn_join_latency":      spawnJoinLatency,
	"pending_memory":          pendingMemory,
	"timer_churn":             timerChurn,
	"timer_fire":              timerFire,
	"timer_fire_long":         timerFireLong,
	"timer_memory":            timerMemory,
	"timer_idle_cpu":          timerIdleCpu,
	"timer_busy_lateness":     timerBusyLateness,
	"trickle":                 trickle,
}

func main() {
	c := config{
		threads: positiveEnv("MVX_BENCH_THREADS", 2),
		iters:   positiveEnv("MVX_BENCH_ITERS", 30),
	}
	runtime.GOMAXPROCS(c.threads)
	names := os.Args[1:]
	for _, n := range names {
		if byName[n] == nil {
			fmt.Fprintf(os.Stderr, "go: unknown workload %s; known: %s\n", n, strings.Join(order, " "))
			os.Exit(2)
		}
	}
	if len(names) == 0 {
		names = order
	}
	for _, n := range names {
		byName[n](c)
	}
}
