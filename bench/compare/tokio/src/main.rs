//! tokio side of moduvex's scheduler comparison (bench/compare).
//!
//! The workloads are those of tokio's `benches/rt_multi_threaded.rs`, with the
//! same parameters, plus `spawn_join_latency`, `pending_memory` and `trickle`; the
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

/// `struct rusage` of Linux on 64-bit targets: two `timeval`s, then 14 longs.
#[repr(C)]
struct Rusage {
    utime: [i64; 2],
    stime: [i64; 2],
    rest: [i64; 14],
}

extern "C" {
    fn getrusage(who: i32, usage: *mut Rusage) -> i32;
}

/// Process CPU time (user + system, every thread) in ns.
fn cpu_ns() -> u64 {
    let mut r = Rusage { utime: [0; 2], stime: [0; 2], rest: [0; 14] };
    // SAFETY: RUSAGE_SELF (0); getrusage writes only the struct it is given.
    unsafe { getrusage(0, &mut r) };
    let us = |t: [i64; 2]| (t[0] * 1_000_000 + t[1]) as u64;
    (us(r.utime) + us(r.stime)) * 1000
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
        "trickle" => trickle,
        _ => return None,
    })
}

const ALL: [&str; 10] = [
    "spawn_many_local",
    "spawn_many_remote_idle",
    "spawn_many_remote_busy1",
    "spawn_many_remote_busy2",
    "yield_many",
    "ping_pong",
    "chained_spawn",
    "spawn_join_latency",
    "pending_memory",
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
