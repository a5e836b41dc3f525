//! tokio side of moduvex's scheduler comparison (bench/compare).
//!
//! The workloads are those of tokio's `benches/rt_multi_threaded.rs`, with the
//! same parameters, plus `spawn_join_latency`, `pending_memory`, `trickle` and the timer
//! workloads (`timer_*`, on `tokio::time`); the
//! specification and the output format are described in ../README.md.
//!
//! Usage: `moduvex-compare-tokio [workload ...]` (every workload when none is
//! named). `MVX_BENCH_THREADS` sets the worker count (default 2) and
//! `MVX_BENCH_ITERS` the number of timed iterations (default 30). Result lines
//! go to stdout, anything else to stderr.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const IMPL: &str = "tokio";
const WARMUP_ITERS: usize = 5;
/// How long `stall()` keeps a worker busy.
const STALL: Duration = Duration::from_micros(10);
/// An iteration of spawn_many_remote_busy2 taking longer than this counts as starvation.
const STARVATION_LIMIT: Duration = Duration::from_secs(5);

/// Settings shared by every workload.
struct Ctx {
    threads: usize,
    iters: usize,
}

impl Ctx {
    fn from_env() -> Ctx {
        Ctx {
            threads: positive_env("MVX_BENCH_THREADS", 2),
            iters: positive_env("MVX_BENCH_ITERS", 30),
        }
    }

    /// A fresh multi-threaded runtime configured like tokio's own benchmark.
    fn runtime(&self) -> Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.threads)
            .enable_all()
            .build()
            .expect("cannot build the tokio runtime")
    }

    /// Runs `body` WARMUP_ITERS times untimed, then `iters` times timed.
    fn sample(&self, mut body: impl FnMut()) -> Samples {
        (0..WARMUP_ITERS).for_each(|_| body());
        let mut ns = Vec::with_capacity(self.iters);
        for _ in 0..self.iters {
            let start = Instant::now();
            body();
            ns.push(start.elapsed().as_nanos() as u64);
        }
        ns.sort_unstable();
        Samples(ns)
    }

    /// Prints the result line; `per_iter` = tasks (or operations) per iteration.
    fn print(&self, workload: &str, per_iter: usize, s: &Samples) {
        let median = s.median();
        println!(
            "bench={} impl={} threads={} iters={} median_ns={} min_ns={} per_task_ns={:.1}",
            workload,
            IMPL,
            self.threads,
            self.iters,
            median,
            s.min(),
            median as f64 / per_iter as f64
        );
    }

    fn run(&self, workload: &str, per_iter: usize, body: impl FnMut()) {
        let s = self.sample(body);
        self.print(workload, per_iter, &s);
    }
}

/// Iteration times in ns, ascending.
struct Samples(Vec<u64>);

impl Samples {
    fn min(&self) -> u64 {
        self.0[0]
    }

    /// Middle sample; for an even count the mean of the two middle ones.
    fn median(&self) -> u64 {
        let n = self.0.len();
        if n % 2 == 1 {
            self.0[n / 2]
        } else {
            (self.0[n / 2 - 1] + self.0[n / 2]) / 2
        }
    }
}

fn positive_env(name: &str, fallback: usize) -> usize {
    match std::env::var(name).ok().and_then(|v| v.trim().parse::<usize>().ok()) {
        Some(n) if n > 0 => n,
        _ => fallback,
    }
}

/// Occupies the current thread for STALL while handing the CPU back to the
/// OS on every turn (tokio's bench does the same).
fn stall() {
    let until = Instant::now() + STALL;
    while Instant::now() < until {
        thread::yield_now();
    }
}

/// Spawns `n` empty tasks from the calling (non-runtime) thread, then waits
/// for all of their join handles.
fn spawn_remote_then_join(rt: &Runtime, n: usize) {
    let mut joins: Vec<JoinHandle<()>> = Vec::with_capacity(n);
    for _ in 0..n {
        joins.push(rt.spawn(async {}));
    }
    rt.block_on(async move {
        for j in joins {
            j.await.expect("task failed");
        }
    });
}

// ---------------------------------------------------------------- workloads

/// 10,000 tasks spawned from inside `block_on` (the caller's thread, which is
/// not a worker); the task that brings the countdown to zero signals.
fn spawn_many_local(ctx: &Ctx) {
    const TASKS: usize = 10_000;
    let rt = ctx.runtime();
    let countdown = Arc::new(AtomicUsize::new(0));
    let (done_tx, done_rx) = mpsc::sync_channel::<()>(TASKS);
    ctx.run("spawn_many_local", TASKS, || {
        countdown.store(TASKS, Ordering::Relaxed);
        rt.block_on(async {
            for _ in 0..TASKS {
                let countdown = Arc::clone(&countdown);
                let done_tx = done_tx.clone();
                tokio::spawn(async move {
                    if countdown.fetch_sub(1, Ordering::Relaxed) == 1 {
                        done_tx.send(()).unwrap();
                    }
                });
            }
            done_rx.recv().unwrap();
        });
    });
}

fn spawn_many_remote_idle(ctx: &Ctx) {
    const TASKS: usize = 10_000;
    let rt = ctx.runtime();
    ctx.run("spawn_many_remote_idle", TASKS, || {
        spawn_remote_then_join(&rt, TASKS)
    });
}

/// As remote_idle, while 2 x workers tasks keep looping: yield, stall.
fn spawn_many_remote_busy1(ctx: &Ctx) {
    const TASKS: usize = 10_000;
    let rt = ctx.runtime();
    let keep_going = Arc::new(AtomicBool::new(true));
    for _ in 0..2 * ctx.threads {
        let keep_going = Arc::clone(&keep_going);
        rt.spawn(async move {
            while keep_going.load(Ordering::Relaxed) {
                tokio::task::yield_now().await;
                stall();
            }
        });
    }
    ctx.run("spawn_many_remote_busy1", TASKS, || {
        spawn_remote_then_join(&rt, TASKS)
    });
    keep_going.store(false, Ordering::Relaxed);
}

/// One link of a background chain: stall, then spawn the next link.
fn busy_link(keep_going: Arc<AtomicBool>) {
    tokio::spawn(async move {
        if keep_going.load(Ordering::Relaxed) {
            stall();
            busy_link(keep_going);
        }
    });
}

/// Calls `on_starve` from its own thread when `beat()` has not been called
/// for STARVATION_LIMIT.
struct Watchdog {
    beats: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<bool>,
}

impl Watchdog {
    fn start(on_starve: impl FnOnce() + Send + 'static) -> Watchdog {
        let beats = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s) = (Arc::clone(&beats), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            let mut seen = b.load(Ordering::Relaxed);
            let mut last_progress = Instant::now();
            while !s.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(10));
                let now = b.load(Ordering::Relaxed);
                if now != seen {
                    seen = now;
                    last_progress = Instant::now();
                } else if last_progress.elapsed() > STARVATION_LIMIT {
                    on_starve();
                    return true;
                }
            }
            false
        });
        Watchdog { beats, stop, thread }
    }

    fn beat(&self) {
        self.beats.fetch_add(1, Ordering::Relaxed);
    }

    /// Stops the watchdog; true if it fired.
    fn finish(self) -> bool {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// As remote_idle with 1,000 tasks, while `workers` background chains run.
/// tokio < 1.29 polls a task spawned into a worker's LIFO slot right away and
/// without limit, so the chains can keep every worker away from the remote
/// queue forever: past STARVATION_LIMIT the watchdog stops the chains and the
/// workload reports nothing.
fn spawn_many_remote_busy2(ctx: &Ctx) {
    const TASKS: usize = 1_000;
    let rt = ctx.runtime();
    let keep_going = Arc::new(AtomicBool::new(true));
    for _ in 0..ctx.threads {
        let keep_going = Arc::clone(&keep_going);
        rt.spawn(async move { busy_link(keep_going) });
    }
    let dog = {
        let keep_going = Arc::clone(&keep_going);
        Watchdog::start(move || keep_going.store(false, Ordering::Relaxed))
    };
    let samples = ctx.sample(|| {
        spawn_remote_then_join(&rt, TASKS);
        dog.beat();
    });
    let starved = dog.finish();
    keep_going.store(false, Ordering::Relaxed);
    if starved {
        eprintln!(
            "spawn_many_remote_busy2 (tokio): remote tasks got no worker for {} s; no result",
            STARVATION_LIMIT.as_secs()
        );
    } else {
        ctx.print("spawn_many_remote_busy2", TASKS, &samples);
    }
}

/// 200 tasks spawned from outside, each yielding 1,000 times.
fn yield_many(ctx: &Ctx) {
    const TASKS: usize = 200;
    const YIELDS: usize = 1_000;
    let rt = ctx.runtime();
    let (done_tx, done_rx) = mpsc::sync_channel::<()>(TASKS);
    ctx.run("yield_many", TASKS * YIELDS, || {
        for _ in 0..TASKS {
            let done_tx = done_tx.clone();
            rt.spawn(async move {
                for _ in 0..YIELDS {
                    tokio::task::yield_now().await;
                }
                done_tx.send(()).unwrap();
            });
        }
        for _ in 0..TASKS {
            done_rx.recv().unwrap();
        }
    });
}

/// A task spawns 1,000 pingers; each spawns its ponger and they exchange one
/// message each way over two oneshot channels.
fn ping_pong(ctx: &Ctx) {
    const PINGS: usize = 1_000;
    let rt = ctx.runtime();
    let countdown = Arc::new(AtomicUsize::new(0));
    let (done_tx, done_rx) = mpsc::sync_channel::<()>(PINGS);
    ctx.run("ping_pong", PINGS, || {
        countdown.store(PINGS, Ordering::Relaxed);
        let countdown = Arc::clone(&countdown);
        let done_tx = done_tx.clone();
        rt.block_on(async {
            tokio::spawn(async move {
                for _ in 0..PINGS {
                    let countdown = Arc::clone(&countdown);
                    let done_tx = done_tx.clone();
                    tokio::spawn(async move {
                        let (ping_tx, ping_rx) = oneshot::channel::<()>();
                        let (pong_tx, pong_rx) = oneshot::channel::<()>();
                        tokio::spawn(async move {
                            ping_rx.await.unwrap();
                            pong_tx.send(()).unwrap();
                        });
                        ping_tx.send(()).unwrap();
                        pong_rx.await.unwrap();
                        if countdown.fetch_sub(1, Ordering::Relaxed) == 1 {
                            done_tx.send(()).unwrap();
                        }
                    });
                }
            });
            done_rx.recv().unwrap();
        });
    });
}

/// Spawns the rest of a chain of `left` tasks from the current worker.
fn chain_link(left: usize, done: mpsc::SyncSender<()>) {
    if left == 0 {
        done.send(()).unwrap();
        return;
    }
    tokio::spawn(async move { chain_link(left - 1, done) });
}

fn chained_spawn(ctx: &Ctx) {
    const LINKS: usize = 1_000;
    let rt = ctx.runtime();
    let (done_tx, done_rx) = mpsc::sync_channel::<()>(1);
    ctx.run("chained_spawn", LINKS, || {
        let done_tx = done_tx.clone();
        rt.block_on(async {
            tokio::spawn(async move { chain_link(LINKS, done_tx) });
            done_rx.recv().unwrap();
        });
    });
}

/// 10,000 round trips from the main thread: spawn an empty task, block on
/// its join handle.
fn spawn_join_latency(ctx: &Ctx) {
    const TRIPS: usize = 10_000;
    let rt = ctx.runtime();
    ctx.run("spawn_join_latency", TRIPS, || {
        for _ in 0..TRIPS {
            let h = rt.spawn(async {});
            rt.block_on(h).unwrap();
        }
    });
}

/// Futures of pending_memory that have been polled and not dropped yet.
static PARKED: AtomicUsize = AtomicUsize::new(0);

/// Lives inside a pending_memory future: counts it in PARKED until dropped.
struct Parked;

impl Parked {
    fn enter() -> Parked {
        PARKED.fetch_add(1, Ordering::SeqCst);
        Parked
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        PARKED.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A field of /proc/self/status, in kB.
fn proc_status_kb(key: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/self/status"))
}

fn spin_until(cond: impl Fn() -> bool) {
    while !cond() {
        thread::sleep(Duration::from_micros(50));
    }
}

/// 1,000,000 tasks parked on a future that never completes. bytes_per_task is
/// the peak RSS growth (the join handles the caller keeps included) per task;
/// abort_all_ns is the time from the first abort until every future has been
/// dropped.
fn pending_memory(ctx: &Ctx) {
    const TASKS: usize = 1_000_000;
    let rt = ctx.runtime();
    if std::fs::write("/proc/self/clear_refs", "5").is_err() {
        eprintln!("pending_memory (tokio): cannot reset VmHWM, bytes_per_task may be too high");
    }
    let rss_before = proc_status_kb("VmRSS:");
    let mut handles: Vec<JoinHandle<()>> = Vec::with_capacity(TASKS);
    for _ in 0..TASKS {
        handles.push(rt.spawn(async {
            let _parked = Parked::enter();
            std::future::pending::<()>().await;
        }));
    }
    spin_until(|| PARKED.load(Ordering::SeqCst) == TASKS);
    let hwm = proc_status_kb("VmHWM:");
    let start = Instant::now();
    handles.iter().for_each(JoinHandle::abort);
    drop(handles);
    spin_until(|| PARKED.load(Ordering::SeqCst) == 0);
    let abort_ns = start.elapsed().as_nanos();
    let bytes = hwm.saturating_sub(rss_before) * 1024 / TASKS as u64;
    println!(
        "bench=pending_memory impl={} threads={} tasks={} bytes_per_task={} abort_all_ns={}",
        IMPL, ctx.threads, TASKS, bytes, abort_ns
    );
}


// ------------------------------------------------------------------ timers

/// Process CPU (user + system) in ns.
fn cpu_ns() -> u64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let us = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) as u64 * 1_000_000
        + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) as u64;
    us * 1000
}

/// xorshift64, the same generator as bench.c's.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn noop_waker() -> std::task::Waker {
    use std::task::{RawWaker, RawWakerVTable};
    fn clone(_: *const ()) -> RawWaker {
        RawWaker::new(std::ptr::null(), &VTABLE)
    }
    fn noop(_: *const ()) {}
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
    unsafe { std::task::Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) }
}

/// timer_churn: one task arms and cancels a timer 1,000,000 times (a sleep
/// registered by its first poll, then dropped), deadlines 60 s out, 1,024
/// different ones.
fn timer_churn(ctx: &Ctx) {
    const PAIRS: usize = 1_000_000;
    let rt = ctx.runtime();
    ctx.run("timer_churn", PAIRS, || {
        rt.block_on(rt.spawn(async {
            let waker = noop_waker();
            let mut cx = std::task::Context::from_waker(&waker);
            let base = tokio::time::Instant::now() + Duration::from_secs(60);
            for i in 0..PAIRS {
                let sleep = tokio::time::sleep_until(base + Duration::from_nanos((i as u64 & 1023) * 977));
                tokio::pin!(sleep);
                assert!(std::future::Future::poll(sleep.as_mut(), &mut cx).is_pending());
            }
        }))
        .unwrap();
    });
}

/// Spawns n sleeps of random min_ms..max_ms ms at once from this thread; returns
/// each one's lateness in ns.
fn run_sleepers(rt: &Runtime, n: usize, min_ms: u64, max_ms: u64, rng: &mut Rng) -> Vec<u64> {
    let handles: Vec<JoinHandle<u64>> = (0..n)
        .map(|_| {
            let d = Instant::now()
                + Duration::from_nanos(min_ms * 1_000_000 + rng.next() % ((max_ms - min_ms) * 1_000_000));
            rt.spawn(async move {
                tokio::time::sleep_until(d.into()).await;
                Instant::now().saturating_duration_since(d).as_nanos() as u64
            })
        })
        .collect();
    rt.block_on(async { futures_join(handles).await })
}

async fn futures_join(handles: Vec<JoinHandle<u64>>) -> Vec<u64> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

fn report_lateness(ctx: &Ctx, name: &str, mut late: Vec<u64>, cpu: u64) {
    late.sort_unstable();
    let n = late.len();
    println!(
        "bench={} impl={} threads={} timers={} p50_late_ns={} p99_late_ns={} max_late_ns={} cpu_per_timer_ns={}",
        name, IMPL, ctx.threads, n, late[n / 2], late[n * 99 / 100], late[n - 1], cpu / n as u64
    );
}

/// timer_fire: 100,000 sleeps of random 1-100 ms spawned at once; min(iters, 3) rounds pooled.
/// timer_fire_long: the same with 300-1,000 ms.
fn fire_sleepers(ctx: &Ctx, name: &str, min_ms: u64, max_ms: u64) {
    let rt = ctx.runtime();
    let mut rng = Rng(0x2545F4914F6CDD1D);
    let cpu = cpu_ns();
    let mut late = Vec::new();
    for _ in 0..ctx.iters.min(3) {
        late.extend(run_sleepers(&rt, 100_000, min_ms, max_ms, &mut rng));
    }
    let cpu = cpu_ns() - cpu;
    report_lateness(ctx, name, late, cpu);
}

fn timer_fire(ctx: &Ctx) {
    fire_sleepers(ctx, "timer_fire", 1, 100);
}

fn timer_fire_long(ctx: &Ctx) {
    fire_sleepers(ctx, "timer_fire_long", 300, 1000);
}

/// timer_busy_lateness: 10,000 sleeps of random 1-50 ms beside busy1's background.
fn timer_busy_lateness(ctx: &Ctx) {
    let rt = ctx.runtime();
    let keep_going = Arc::new(AtomicBool::new(true));
    for _ in 0..2 * ctx.threads {
        let keep_going = Arc::clone(&keep_going);
        rt.spawn(async move {
            while keep_going.load(Ordering::Relaxed) {
                tokio::task::yield_now().await;
                stall();
            }
        });
    }
    let mut rng = Rng(0x2545F4914F6CDD1D);
    let cpu = cpu_ns();
    let late = run_sleepers(&rt, 10_000, 1, 50, &mut rng);
    let cpu = cpu_ns() - cpu;
    keep_going.store(false, Ordering::Relaxed);
    report_lateness(ctx, "timer_busy_lateness", late, cpu);
}

/// Sleeps that have been polled (armed) and not dropped yet.
static ARMED: AtomicUsize = AtomicUsize::new(0);

/// timer_memory: 1,000,000 pending sleep tasks (an hour out), peak RSS growth
/// per task (the join handles the caller keeps included, as in pending_memory).
fn timer_memory(ctx: &Ctx) {
    const TASKS: usize = 1_000_000;
    let rt = ctx.runtime();
    if std::fs::write("/proc/self/clear_refs", "5").is_err() {
        eprintln!("timer_memory (tokio): cannot reset VmHWM, bytes_per_task may be too high");
    }
    let mut rng = Rng(0x2545F4914F6CDD1D);
    let rss_before = proc_status_kb("VmRSS:");
    let base = tokio::time::Instant::now() + Duration::from_secs(3600);
    let mut handles: Vec<JoinHandle<()>> = Vec::with_capacity(TASKS);
    for _ in 0..TASKS {
        let d = base + Duration::from_nanos(rng.next() % 1_000_000_000);
        handles.push(rt.spawn(async move {
            let sleep = tokio::time::sleep_until(d);
            tokio::pin!(sleep);
            std::future::poll_fn(|cx| {
                let r = std::future::Future::poll(sleep.as_mut(), cx);
                if r.is_pending() {
                    ARMED.fetch_add(1, Ordering::Relaxed);
                }
                r
            })
            .await;
        }));
    }
    spin_until(|| ARMED.load(Ordering::Relaxed) >= TASKS);
    let hwm = proc_status_kb("VmHWM:");
    let start = Instant::now();
    handles.iter().for_each(JoinHandle::abort);
    rt.block_on(async {
        for h in handles {
            let _ = h.await;
        }
    });
    let abort_ns = start.elapsed().as_nanos();
    let bytes = hwm.saturating_sub(rss_before) * 1024 / TASKS as u64;
    println!(
        "bench=timer_memory impl={} threads={} tasks={} bytes_per_task={} abort_all_ns={}",
        IMPL, ctx.threads, TASKS, bytes, abort_ns
    );
}

/// timer_idle_cpu: process CPU over one idle second with 1,000 sleeps armed 1 s apart.
fn timer_idle_cpu(ctx: &Ctx) {
    const N: usize = 1000;
    let rt = ctx.runtime();
    let now = tokio::time::Instant::now();
    let handles: Vec<JoinHandle<()>> = (0..N)
        .map(|i| {
            let d = now + Duration::from_millis(1500 + 1000 * i as u64);
            rt.spawn(async move { tokio::time::sleep_until(d).await })
        })
        .collect();
    thread::sleep(Duration::from_millis(200));
    let cpu = cpu_ns();
    let start = Instant::now();
    thread::sleep(Duration::from_secs(1));
    let cpu = cpu_ns() - cpu;
    println!(
        "bench=timer_idle_cpu impl={} threads={} timers={} wall_ns={} cpu_ns={}",
        IMPL, ctx.threads, N, start.elapsed().as_nanos(), cpu
    );
    handles.iter().for_each(JoinHandle::abort);
}

/// What the runtime costs while work arrives slowly: from the main thread,
/// 2,000 empty tasks, one every MVX_TRICKLE_PERIOD_US (default 1000) on
/// absolute deadlines, after a 100 ms settle. Reports the process CPU per
/// task, the spawn-to-start latency (p50, p99) and the CPU of the idle second
/// after. With MVX_BENCH_ITERS=1 (a smoke run): 100 tasks, 100 ms idle.
fn trickle(ctx: &Ctx) {
    let smoke = ctx.iters == 1;
    let tasks = if smoke { 100 } else { 2_000 };
    let idle = Duration::from_millis(if smoke { 100 } else { 1000 });
    let period = Duration::from_micros(positive_env("MVX_TRICKLE_PERIOD_US", 1000) as u64);
    let rt = ctx.runtime();
    thread::sleep(Duration::from_millis(100));
    let started: Arc<Vec<AtomicU64>> = Arc::new((0..tasks).map(|_| AtomicU64::new(0)).collect());
    let ran = Arc::new(AtomicUsize::new(0));
    let cpu0 = cpu_ns();
    let t0 = Instant::now();
    for i in 0..tasks {
        let due = t0 + period * i as u32;
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        let (started, ran, spawned) = (started.clone(), ran.clone(), Instant::now());
        rt.spawn(async move {
            started[i].store(spawned.elapsed().as_nanos() as u64, Ordering::Relaxed);
            ran.fetch_add(1, Ordering::Release);
        });
    }
    while ran.load(Ordering::Acquire) < tasks {
        thread::sleep(Duration::from_micros(100));
    }
    let cpu1 = cpu_ns();
    thread::sleep(idle);
    let cpu2 = cpu_ns();
    let mut lat: Vec<u64> = started.iter().map(|a| a.load(Ordering::Relaxed)).collect();
    lat.sort_unstable();
    println!(
        "bench=trickle impl={} threads={} tasks={} period_ns={} cpu_per_task_ns={} start_p50_ns={} start_p99_ns={} idle_cpu_ns_per_s={}",
        IMPL,
        ctx.threads,
        tasks,
        period.as_nanos(),
        (cpu1 - cpu0) / tasks as u64,
        lat[tasks / 2],
        lat[tasks * 99 / 100],
        (cpu2 - cpu1) * 1_000_000_000 / idle.as_nanos() as u64
    );
}

// -------------------------------------------------------------------- main

fn lookup(name: &str) -> Option<fn(&Ctx)> {
    Some(match name {
        "spawn_many_local" => spawn_many_local,
        "spawn_many_remote_idle" => spawn_many_remote_idle,
        "spawn_many_remote_busy1" => spawn_many_remote_busy1,
        "spawn_many_remote_busy2" => spawn_many_remote_busy2,
        "yield_many" => yield_many,
        "ping_pong" => ping_pong,
        "chained_spawn" => chained_spawn,
        "spawn_join_latency" => spawn_join_latency,
        "pending_memory" => pending_memory,
        "timer_churn" => timer_churn,
        "timer_fire" => timer_fire,
        "timer_fire_long" => timer_fire_long,
        "timer_memory" => timer_memory,
        "timer_idle_cpu" => timer_idle_cpu,
        "timer_busy_lateness" => timer_busy_lateness,
        "trickle" => trickle,
        _ => return None,
    })
}

const ALL: [&str; 16] = [
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
];

fn main() -> ExitCode {
    let ctx = Ctx::from_env();
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Check every name before running anything.
    let mut chosen: Vec<fn(&Ctx)> = Vec::new();
    for name in &args {
        match lookup(name) {
            Some(workload) => chosen.push(workload),
            None => {
                eprintln!("tokio: unknown workload {name}; known: {}", ALL.join(" "));
                return ExitCode::from(2);
            }
        }
    }
    if chosen.is_empty() {
        chosen = ALL.iter().filter_map(|name| lookup(name)).collect();
    }
    for workload in chosen {
        workload(&ctx);
    }
    ExitCode::SUCCESS
}
