//! The scheduler workloads of bench/compare (tokio's `benches/rt_multi_threaded.rs` with the same
//! parameters, plus `spawn_join_latency` and `pending_memory`), written once as a macro and
//! instantiated for the Rust binding of moduvex (`impl=moduvex-rs`) and for tokio
//! (`impl=tokio`, the Debian-packaged crate, `new_multi_thread().enable_all()` as in tokio's
//! bench), so that both run the very same code. The specification and output format are those of
//! `bench/compare/README.md` and `../shared/peers/README.md`:
//!
//! ```text
//! bench=<workload> impl=<impl> threads=<n> iters=<n> median_ns=<ns> min_ns=<ns> per_task_ns=<ns>
//! bench=pending_memory impl=<impl> threads=<n> tasks=1000000 bytes_per_task=<n> abort_all_ns=<ns>
//! ```
//!
//! `MVX_BENCH_THREADS` (default 2) workers, `MVX_BENCH_ITERS` (default 30) timed iterations after
//! 5 warm-up ones; the median of an even count is the mean of the two middle samples. Result
//! lines go to stdout, anything else to stderr.
//!
//! Both implementations use tokio's `oneshot` channel in `ping_pong` (it works under any
//! executor), so that only the runtimes differ.

use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const WARMUP_ITERS: usize = 5;
/// How long `stall()` keeps a worker busy.
const STALL: Duration = Duration::from_micros(10);
/// An iteration of spawn_many_remote_busy2 taking longer than this counts as starvation.
const STARVATION_LIMIT: Duration = Duration::from_secs(5);

/// The implementations, in running order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    /// The Rust binding of moduvex.
    ModuvexRs,
    /// tokio.
    Tokio,
}

impl Impl {
    const ALL: [Impl; 2] = [Impl::ModuvexRs, Impl::Tokio];

    fn name(self) -> &'static str {
        match self {
            Impl::ModuvexRs => "moduvex-rs",
            Impl::Tokio => "tokio",
        }
    }

    fn from_name(s: &str) -> Option<Impl> {
        Impl::ALL.into_iter().find(|i| i.name() == s)
    }

    fn lookup(self, workload: &str) -> Option<fn(&Ctx)> {
        match self {
            Impl::ModuvexRs => moduvex_rs::lookup(workload),
            Impl::Tokio => tokio_rt::lookup(workload),
        }
    }
}

/// Workloads of this benchmark only (not in bench/compare): run by `moduvex-rs-bench` by
/// default, by `moduvex-rs-only` when named.
///   join_set: 10,000 tasks spawned into a JoinSet from `block_on`, then `join_next` until empty.
pub const RUST_WORKLOADS: [&str; 1] = ["join_set"];

pub const WORKLOADS: [&str; 9] = [
    "spawn_many_local",
    "spawn_many_remote_idle",
    "spawn_many_remote_busy1",
    "spawn_many_remote_busy2",
    "yield_many",
    "ping_pong",
    "chained_spawn",
    "spawn_join_latency",
    "pending_memory",
];

/// Settings shared by every workload.
pub struct Ctx {
    threads: usize,
    iters: usize,
    imp: Impl,
}

impl Ctx {
    fn from_env(imp: Impl) -> Ctx {
        Ctx {
            threads: positive_env("MVX_BENCH_THREADS", 2),
            iters: positive_env("MVX_BENCH_ITERS", 30),
            imp,
        }
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
            self.imp.name(),
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
    match std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        Some(n) if n > 0 => n,
        _ => fallback,
    }
}

/// Occupies the current thread for STALL while handing the CPU back to the OS on every turn.
fn stall() {
    let until = Instant::now() + STALL;
    while Instant::now() < until {
        thread::yield_now();
    }
}

/// Calls `on_starve` from its own thread when `beat()` has not been called for
/// STARVATION_LIMIT.
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
        Watchdog {
            beats,
            stop,
            thread,
        }
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

/// The workloads, written once against the shapes both runtimes share: `$rt::spawn`,
/// `$rt::block_on`, the free function `$spawn` (current runtime) and `$yield_now`.
macro_rules! workloads {
    ($modname:ident, $runtime:ty, $new_runtime:expr, $spawn:path, $yield_now:path, $handle:ty,
     $join_set:ty) => {
        mod $modname {
            use super::*;
            use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
            use std::sync::{mpsc, Arc};
            use tokio::sync::oneshot;

            fn runtime(ctx: &Ctx) -> $runtime {
                let new_runtime: fn(usize) -> $runtime = $new_runtime;
                new_runtime(ctx.threads)
            }

            pub(super) fn lookup(name: &str) -> Option<fn(&Ctx)> {
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
                    "join_set" => join_set,
                    _ => return None,
                })
            }

            /// 10,000 tasks spawned from inside `block_on` (the caller's thread, not a
            /// worker); the task that brings the countdown to zero signals.
            fn spawn_many_local(ctx: &Ctx) {
                const TASKS: usize = 10_000;
                let rt = runtime(ctx);
                let countdown = Arc::new(AtomicUsize::new(0));
                let (done_tx, done_rx) = mpsc::sync_channel::<()>(1);
                ctx.run("spawn_many_local", TASKS, || {
                    countdown.store(TASKS, Ordering::Relaxed);
                    rt.block_on(async {
                        for _ in 0..TASKS {
                            let countdown = Arc::clone(&countdown);
                            let done_tx = done_tx.clone();
                            $spawn(async move {
                                if countdown.fetch_sub(1, Ordering::Relaxed) == 1 {
                                    done_tx.send(()).unwrap();
                                }
                            });
                        }
                        done_rx.recv().unwrap();
                    });
                });
            }

            /// Spawns `n` empty tasks from the calling (non-runtime) thread, then waits for
            /// all of their join handles.
            fn spawn_remote_then_join(rt: &$runtime, n: usize) {
                let mut joins: Vec<$handle> = Vec::with_capacity(n);
                for _ in 0..n {
                    joins.push(rt.spawn(async {}));
                }
                rt.block_on(async move {
                    for j in joins {
                        j.await.expect("task failed");
                    }
                });
            }

            fn spawn_many_remote_idle(ctx: &Ctx) {
                const TASKS: usize = 10_000;
                let rt = runtime(ctx);
                ctx.run("spawn_many_remote_idle", TASKS, || spawn_remote_then_join(&rt, TASKS));
            }

            /// As remote_idle, while 2 x workers background tasks loop: yield, stall.
            fn spawn_many_remote_busy1(ctx: &Ctx) {
                const TASKS: usize = 10_000;
                let rt = runtime(ctx);
                let running = Arc::new(AtomicBool::new(true));
                for _ in 0..2 * ctx.threads {
                    let running = Arc::clone(&running);
                    rt.spawn(async move {
                        while running.load(Ordering::Relaxed) {
                            $yield_now().await;
                            stall();
                        }
                    });
                }
                ctx.run("spawn_many_remote_busy1", TASKS, || spawn_remote_then_join(&rt, TASKS));
                running.store(false, Ordering::Relaxed);
            }

            /// One link of a background chain: stall, then spawn the next link.
            fn busy_link(keep_going: Arc<AtomicBool>) {
                $spawn(async move {
                    if keep_going.load(Ordering::Relaxed) {
                        stall();
                        busy_link(keep_going);
                    }
                });
            }

            /// As remote_idle with 1,000 tasks, while `workers` background chains run. If an
            /// iteration takes over 5 s the remote tasks are starved: a watchdog stops the
            /// chains and no line is printed.
            fn spawn_many_remote_busy2(ctx: &Ctx) {
                const TASKS: usize = 1_000;
                let rt = runtime(ctx);
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
                        "spawn_many_remote_busy2 ({}): remote tasks got no worker for {} s; no result",
                        ctx.imp.name(),
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
                let rt = runtime(ctx);
                let (done_tx, done_rx) = mpsc::sync_channel::<()>(TASKS);
                ctx.run("yield_many", TASKS * YIELDS, || {
                    for _ in 0..TASKS {
                        let done_tx = done_tx.clone();
                        rt.spawn(async move {
                            for _ in 0..YIELDS {
                                $yield_now().await;
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
                let rt = runtime(ctx);
                let countdown = Arc::new(AtomicUsize::new(0));
                let (done_tx, done_rx) = mpsc::sync_channel::<()>(PINGS);
                ctx.run("ping_pong", PINGS, || {
                    countdown.store(PINGS, Ordering::Relaxed);
                    let countdown = Arc::clone(&countdown);
                    let done_tx = done_tx.clone();
                    rt.block_on(async {
                        $spawn(async move {
                            for _ in 0..PINGS {
                                let countdown = Arc::clone(&countdown);
                                let done_tx = done_tx.clone();
                                $spawn(async move {
                                    let (ping_tx, ping_rx) = oneshot::channel::<()>();
                                    let (pong_tx, pong_rx) = oneshot::channel::<()>();
                                    $spawn(async move {
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
                $spawn(async move { chain_link(left - 1, done) });
            }

            fn chained_spawn(ctx: &Ctx) {
                const LINKS: usize = 1_000;
                let rt = runtime(ctx);
                let (done_tx, done_rx) = mpsc::sync_channel::<()>(1);
                ctx.run("chained_spawn", LINKS, || {
                    let done_tx = done_tx.clone();
                    rt.block_on(async {
                        $spawn(async move { chain_link(LINKS, done_tx) });
                        done_rx.recv().unwrap();
                    });
                });
            }

            /// 10,000 round trips from the main thread: spawn an empty task, block on its
            /// join handle.
            fn spawn_join_latency(ctx: &Ctx) {
                const TRIPS: usize = 10_000;
                let rt = runtime(ctx);
                ctx.run("spawn_join_latency", TRIPS, || {
                    for _ in 0..TRIPS {
                        let h = rt.spawn(async {});
                        rt.block_on(h).unwrap();
                    }
                });
            }

            /// 10,000 tasks into a JoinSet from block_on, then join_next until it is empty.
            fn join_set(ctx: &Ctx) {
                const TASKS: usize = 10_000;
                let rt = runtime(ctx);
                ctx.run("join_set", TASKS, || {
                    let sum = rt.block_on(async {
                        let mut set: $join_set = Default::default();
                        for i in 0..TASKS as u64 {
                            set.spawn(async move { i });
                        }
                        let mut sum = 0;
                        while let Some(r) = set.join_next().await {
                            sum += r.unwrap();
                        }
                        sum
                    });
                    assert_eq!(sum, (TASKS as u64) * (TASKS as u64 - 1) / 2);
                });
            }

            /// Futures of pending_memory that have been polled and not dropped yet.
            static PARKED: AtomicUsize = AtomicUsize::new(0);

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

            /// 1,000,000 tasks parked on a future that never completes: peak RSS growth per
            /// task (join handles included), then the time from the first abort until every
            /// future was dropped.
            fn pending_memory(ctx: &Ctx) {
                const TASKS: usize = 1_000_000;
                let rt = runtime(ctx);
                if std::fs::write("/proc/self/clear_refs", "5").is_err() {
                    eprintln!(
                        "pending_memory ({}): cannot reset VmHWM, bytes_per_task may be too high",
                        ctx.imp.name()
                    );
                }
                let rss_before = proc_status_kb("VmRSS:");
                let mut handles: Vec<$handle> = Vec::with_capacity(TASKS);
                for _ in 0..TASKS {
                    handles.push(rt.spawn(async {
                        let _parked = Parked::enter();
                        std::future::pending::<()>().await;
                    }));
                }
                spin_until(|| PARKED.load(Ordering::SeqCst) == TASKS);
                let hwm = proc_status_kb("VmHWM:");
                let start = Instant::now();
                handles.iter().for_each(|h| h.abort());
                drop(handles);
                spin_until(|| PARKED.load(Ordering::SeqCst) == 0);
                let abort_ns = start.elapsed().as_nanos();
                let bytes = hwm.saturating_sub(rss_before) * 1024 / TASKS as u64;
                println!(
                    "bench=pending_memory impl={} threads={} tasks={} bytes_per_task={} abort_all_ns={}",
                    ctx.imp.name(),
                    ctx.threads,
                    TASKS,
                    bytes,
                    abort_ns
                );
            }
        }
    };
}

workloads!(
    moduvex_rs,
    moduvex::Runtime,
    |threads| moduvex::Runtime::builder()
        .worker_threads(threads)
        .build()
        .expect("moduvex runtime"),
    moduvex::spawn,
    moduvex::yield_now,
    moduvex::JoinHandle<()>,
    moduvex::task::JoinSet<u64>
);

workloads!(
    tokio_rt,
    tokio::runtime::Runtime,
    |threads| tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("tokio runtime"),
    tokio::spawn,
    tokio::task::yield_now,
    tokio::task::JoinHandle<()>,
    tokio::task::JoinSet<u64>
);

/// Runs the workloads named on the command line (all when none is).
///
/// `only`: run that implementation in this process. Otherwise `MVX_BENCH_IMPL` (`moduvex-rs` or
/// `tokio`) does the same, and when it is unset every workload runs once per implementation,
/// moduvex-rs first, each in a child process of its own (a fresh heap and no threads left over
/// from the other runtime, as bench/compare/run does).
pub fn main(only: Option<Impl>) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let prog = std::env::args().next().unwrap_or_default();
    let known: Vec<&str> = WORKLOADS.iter().chain(&RUST_WORKLOADS).copied().collect();
    for name in &args {
        if !known.contains(&name.as_str()) {
            eprintln!(
                "{prog}: unknown workload {name}; known: {}",
                known.join(" ")
            );
            return ExitCode::from(2);
        }
    }
    let chosen: Vec<&str> = if args.is_empty() && only.is_some() {
        WORKLOADS.to_vec() // moduvex-rs-only: what bench/compare/run expects
    } else if args.is_empty() {
        known
    } else {
        known
            .into_iter()
            .filter(|w| args.iter().any(|a| a == w))
            .collect()
    };
    let only = match (only, std::env::var("MVX_BENCH_IMPL")) {
        (Some(i), _) => Some(i),
        (None, Ok(name)) => match Impl::from_name(&name) {
            Some(i) => Some(i),
            None => {
                eprintln!("{prog}: MVX_BENCH_IMPL={name}: expected moduvex-rs or tokio");
                return ExitCode::from(2);
            }
        },
        (None, Err(_)) => None,
    };
    if let Some(imp) = only {
        let ctx = Ctx::from_env(imp);
        for w in chosen {
            (imp.lookup(w).expect("known workload"))(&ctx);
        }
        return ExitCode::SUCCESS;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut ok = true;
    for w in chosen {
        for imp in Impl::ALL {
            let status = Command::new(&exe)
                .arg(w)
                .env("MVX_BENCH_IMPL", imp.name())
                .status();
            match status {
                Ok(s) if s.success() => {}
                Ok(s) => {
                    eprintln!("{prog}: {w} ({}) exited with {s}", imp.name());
                    ok = false;
                }
                Err(e) => {
                    eprintln!("{prog}: cannot run {}: {e}", exe.display());
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
