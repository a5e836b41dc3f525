//! Runtime, spawn, block_on, spawn_blocking, yield_now, detach, shutdown.
mod common;

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::*;
use futures::executor::block_on;
use moduvex::Runtime;

#[test]
fn ten_thousand_tasks_from_outside_and_from_a_task() {
    let rt = rt(2);
    let handles: Vec<_> = (0..10_000u64).map(|i| rt.spawn(async move { i })).collect();
    let sum: u64 = rt.block_on(async {
        let mut sum = 0;
        for h in handles {
            sum += h.await.unwrap();
        }
        sum
    });
    assert_eq!(sum, 10_000 * 9_999 / 2);

    let inner = rt.block_on(rt.spawn(async {
        let handles: Vec<_> = (0..10_000u64)
            .map(|i| moduvex::spawn(async move { i * 2 }))
            .collect();
        let mut sum = 0;
        for h in handles {
            sum += h.await.unwrap();
        }
        sum
    }));
    assert_eq!(inner.unwrap(), 10_000 * 9_999);
}

#[test]
fn builder_settings_reach_the_threads() {
    let rt = Runtime::builder()
        .worker_threads(3)
        .thread_name("rsbind")
        .build()
        .unwrap();
    assert_eq!(rt.worker_threads(), 3);
    let name = rt.block_on(rt.spawn(async { thread_comm() })).unwrap();
    assert!(name.starts_with("rsbind-"), "worker named {name}");
    let name = rt.block_on(rt.spawn_blocking(thread_comm)).unwrap();
    assert_eq!(name, "rsbind-blk");
    let err = Runtime::builder().thread_name("a\0b").build().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let err = Runtime::builder().worker_threads(5000).build().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("mvx_runtime_new"),
        "library message: {err}"
    );
}

#[test]
fn default_runtime_works() {
    let rt = Runtime::new().unwrap();
    assert!(rt.worker_threads() >= 1);
    assert_eq!(rt.block_on(async { 1 + 1 }), 2);
}

#[test]
fn detached_task_keeps_running() {
    let rt = rt(2);
    let (go_tx, go_rx) = futures::channel::oneshot::channel::<u32>();
    let (done_tx, done_rx) = mpsc::channel::<u32>();
    let h = rt.spawn(async move {
        let v = go_rx.await.unwrap();
        done_tx.send(v + 1).unwrap();
    });
    drop(h);
    go_tx.send(41).unwrap();
    assert_eq!(done_rx.recv_timeout(Duration::from_secs(10)).unwrap(), 42);
}

#[test]
fn detached_outputs_are_dropped_once() {
    let rt = rt(2);
    let drops = DropCounter::new();
    for _ in 0..1000 {
        let t = drops.token();
        drop(rt.spawn(async move { t }));
    }
    drops.wait_for(1000);
}

#[test]
fn an_output_never_awaited_is_dropped_with_its_handle() {
    let rt = rt(2);
    let drops = DropCounter::new();
    let t = drops.token();
    let h = rt.spawn(async move { t });
    wait_until(|| h.is_finished(), "completion");
    assert_eq!(drops.get(), 0, "the output waits for its handle");
    drop(h);
    assert_eq!(drops.get(), 1);
}

#[test]
fn runtime_drop_with_pending_tasks_drops_every_future_exactly_once() {
    const N: usize = 1000;
    let drops = DropCounter::new();
    let polls = Arc::new(AtomicUsize::new(0));
    let rt = rt(2);
    let mut handles = Vec::new();
    let mut senders = Vec::new();
    for i in 0..N {
        let token = drops.token();
        let polls = polls.clone();
        if i % 2 == 0 {
            // Parked forever, nothing can wake it but the handle is kept.
            handles.push(rt.spawn(async move {
                let _t = token;
                polls.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>().await
            }));
        } else {
            // Waiting on a channel whose sender outlives the runtime; handle detached.
            let (tx, rx) = futures::channel::oneshot::channel::<()>();
            senders.push(tx);
            drop(rt.spawn(async move {
                let _t = token;
                polls.fetch_add(1, Ordering::SeqCst);
                let _ = rx.await;
            }));
        }
    }
    wait_until(
        || polls.load(Ordering::SeqCst) == N,
        "every task polled once",
    );
    // And some that are still queued when the runtime goes (possibly never polled).
    for _ in 0..N {
        let token = drops.token();
        handles.push(rt.spawn(async move {
            let _t = token;
            std::future::pending::<()>().await
        }));
    }
    assert_eq!(drops.get(), 0);
    drop(rt);
    assert_eq!(
        drops.get(),
        2 * N,
        "every future dropped by the time drop(rt) returns"
    );
    // Handles outlive the runtime and report the cancellation; nothing is dropped twice.
    for h in handles {
        assert!(block_on(h).unwrap_err().is_cancelled());
    }
    drop(senders);
    assert_eq!(drops.get(), 2 * N);
}

#[test]
fn spawn_on_a_runtime_being_shut_down_is_refused_and_drops_the_future() {
    let rt = rt(1);
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let drops = DropCounter::new();
    let d = drops.clone();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let h = rt.spawn(async move {
        started_tx.send(()).unwrap(); // running: the shutdown will wait for this poll
        go_rx.recv().unwrap();
        // The runtime is shutting down (it waits for this poll): spawns get refused, at the
        // latest once the phase changed. Each accepted one is cancelled by the shutdown.
        for _ in 0..1_000_000 {
            let h = moduvex::spawn(async {});
            if h.is_finished() && d.get() == 0 {
                // A refused spawn: the handle resolves to Cancelled at once.
                let t = d.token();
                let refused = moduvex::spawn(async move {
                    let _t = t;
                });
                assert!(refused.is_finished());
                return refused.await.unwrap_err().is_cancelled();
            }
            drop(h);
            std::thread::yield_now();
        }
        false
    });
    started_rx.recv().unwrap();
    let rt_thread = std::thread::spawn(move || rt.shutdown_timeout(Duration::from_secs(30)));
    go_tx.send(()).unwrap();
    rt_thread.join().unwrap();
    assert!(
        block_on(h).unwrap(),
        "a spawn was refused with a Cancelled handle"
    );
    assert_eq!(drops.get(), 1, "the refused future was dropped at once");
}

#[test]
fn shutdown_timeout_gives_up_on_a_stuck_poll() {
    let rt = rt(1);
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let h = rt.spawn(async move {
        started_tx.send(()).unwrap();
        while !s.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        moduvex::yield_now().await; // cancelled here, the runtime being shut down
        1
    });
    started_rx.recv().unwrap();
    let t = std::time::Instant::now();
    rt.shutdown_timeout(Duration::from_millis(50));
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(!h.is_finished());
    stop.store(true, Ordering::SeqCst);
    assert!(block_on(h).unwrap_err().is_cancelled());
}

#[test]
fn yield_now_lets_other_tasks_run_on_a_single_worker() {
    let rt = rt(1);
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let spinner = rt.spawn(async move {
        let mut yields = 0u32;
        while !f.load(Ordering::SeqCst) {
            moduvex::yield_now().await;
            yields += 1;
        }
        yields
    });
    let setter = rt.spawn(async move { flag.store(true, Ordering::SeqCst) });
    block_on(setter).unwrap();
    assert!(block_on(spinner).unwrap() >= 1);
    // yield_now under another executor works too.
    block_on(moduvex::yield_now());
}

#[test]
fn spawn_blocking_runs_on_the_pool_from_outside_and_from_a_task() {
    let rt = Runtime::builder()
        .worker_threads(1)
        .thread_name("sb")
        .build()
        .unwrap();
    let (out, name) = block_on(rt.spawn_blocking(|| (6 * 7, thread_comm()))).unwrap();
    assert_eq!((out, name.as_str()), (42, "sb-blk"));
    // From a task: the closure blocks its pool thread, not the only worker, which keeps
    // running other tasks meanwhile.
    let (tx, rx) = mpsc::channel::<u32>();
    let r = rt.block_on(rt.spawn(async move {
        let blocking = moduvex::spawn_blocking(move || rx.recv().unwrap() * 2);
        let other = moduvex::spawn(async move {
            tx.send(21).unwrap();
        });
        other.await.unwrap();
        blocking.await.unwrap()
    }));
    assert_eq!(r.unwrap(), 42);
    // And nested: spawn from inside a blocking closure.
    let r = block_on(rt.spawn_blocking(|| moduvex::spawn(async { 5 }))).unwrap();
    assert_eq!(block_on(r).unwrap(), 5);
}

#[test]
fn block_on_takes_non_send_and_borrowing_futures() {
    let rt = rt(2);
    let local = Rc::new(RefCell::new(Vec::new()));
    let borrowed = vec![1, 2, 3];
    let l = local.clone();
    let total = rt.block_on(async {
        for x in &borrowed {
            let x = *x; // spawned futures are 'static: copy the borrowed value
            let doubled = moduvex::spawn(async move { x * 2 }).await.unwrap();
            l.borrow_mut().push(doubled);
            moduvex::yield_now().await;
        }
        l.borrow().iter().sum::<i32>()
    });
    assert_eq!(total, 12);
    assert_eq!(*local.borrow(), vec![2, 4, 6]);
}

#[test]
fn block_on_from_a_worker_of_the_same_runtime_panics() {
    let rt = Arc::new(rt(1));
    let r2 = rt.clone();
    let err = block_on(rt.spawn(async move { r2.block_on(async { 1 }) })).unwrap_err();
    let p = err.into_panic();
    let msg = p
        .downcast_ref::<&str>()
        .copied()
        .map(str::to_owned)
        .or_else(|| p.downcast_ref::<String>().cloned());
    assert!(msg.unwrap().contains("worker thread of the same runtime"));
}

#[test]
fn spawn_outside_a_runtime_panics_clearly() {
    let err = panic::catch_unwind(|| moduvex::spawn(async {})).unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(msg.contains("outside of a moduvex runtime"), "{msg}");
    let err = panic::catch_unwind(|| moduvex::spawn_blocking(|| ())).unwrap_err();
    assert!(err
        .downcast_ref::<String>()
        .unwrap()
        .contains("spawn_blocking called outside"));
}

#[test]
fn spawn_inside_block_on_uses_that_runtime() {
    let a = rt(1);
    let b = Runtime::builder()
        .worker_threads(1)
        .thread_name("other")
        .build()
        .unwrap();
    let name = b.block_on(async { moduvex::spawn(async { thread_comm() }).await.unwrap() });
    assert_eq!(name, "other-0");
    drop(a);
}

#[test]
fn zero_sized_big_and_over_aligned_futures_and_outputs() {
    let rt = rt(2);
    // Zero-sized future and output.
    assert_eq!(block_on(rt.spawn(std::future::ready(()))).unwrap(), ());
    struct Zst;
    impl std::future::Future for Zst {
        type Output = [u64; 0];
        fn poll(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<[u64; 0]> {
            std::task::Poll::Ready([])
        }
    }
    assert_eq!(std::mem::size_of::<Zst>(), 0);
    assert_eq!(block_on(rt.spawn(Zst)).unwrap(), []);
    // A zero-sized output with a destructor is dropped once.
    let drops = Arc::new(AtomicUsize::new(0));
    struct ZstDrop;
    static ZST_DROPS: AtomicUsize = AtomicUsize::new(0);
    impl Drop for ZstDrop {
        fn drop(&mut self) {
            ZST_DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    let z = block_on(rt.spawn(async { ZstDrop })).unwrap();
    drop(z);
    drop(rt.spawn(async { ZstDrop }));
    wait_until(|| ZST_DROPS.load(Ordering::SeqCst) == 2, "zst output drops");
    drop(drops);
    // A future larger than MVX_INLINE_MAX (boxed) with a large output (boxed).
    let big = [7u8; 20_000];
    let out = block_on(rt.spawn(async move {
        moduvex::yield_now().await;
        let mut o = [0u8; 12_000];
        o[11_999] = big[19_999];
        o
    }))
    .unwrap();
    assert_eq!(out[11_999], 7);
    // Over-aligned future and output (64 > 16: boxed).
    #[repr(align(64))]
    #[derive(Debug, PartialEq, Clone, Copy)]
    struct Aligned(u32);
    let a = Aligned(9);
    let out = block_on(rt.spawn(async move {
        moduvex::yield_now().await;
        Aligned(a.0 + 1)
    }))
    .unwrap();
    assert_eq!(out, Aligned(10));
    // The same through block_on.
    let big = [3u8; 20_000];
    assert_eq!(
        rt.block_on(async move { Aligned(big[0] as u32) }),
        Aligned(3)
    );
}

#[test]
fn join_handle_polled_after_completion_panics() {
    let rt = rt(1);
    let mut h = rt.spawn(async { 1 });
    assert_eq!(block_on(&mut h).unwrap(), 1);
    assert!(h.is_finished());
    let again = panic::catch_unwind(AssertUnwindSafe(|| block_on(&mut h))).unwrap_err();
    assert_eq!(
        *again.downcast::<&str>().unwrap(),
        "JoinHandle polled after completion"
    );
}

#[test]
fn dropping_the_last_runtime_reference_on_its_own_threads_shuts_it_down_without_deadlock() {
    for on_blocking_pool in [true, false] {
        let rt = Arc::new(rt(1));
        let drops = DropCounter::new();
        let token = drops.token();
        let pending = rt.spawn(async move {
            let _t = token;
            std::future::pending::<()>().await
        });
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let r2 = rt.clone();
        let h = if on_blocking_pool {
            rt.spawn_blocking(move || {
                go_rx.recv().unwrap();
                drop(r2); // the last reference: released on the runtime's own pool thread
                done_tx.send(()).unwrap();
            })
        } else {
            rt.spawn(async move {
                go_rx.recv().unwrap();
                drop(r2); // the last reference: released on the runtime's own worker
                done_tx.send(()).unwrap();
            })
        };
        drop(rt);
        go_tx.send(()).unwrap();
        done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the closure returned");
        drops.wait_for(1); // the runtime was shut down: its pending task's future dropped
        assert!(block_on(pending).unwrap_err().is_cancelled());
        let _ = block_on(h);
    }
}

#[test]
fn inline_futures_are_polled_at_their_alignment() {
    #[repr(align(16))]
    struct Aligned16 {
        bytes: [u8; 48],
        yielded: bool,
    }
    impl std::future::Future for Aligned16 {
        type Output = (usize, u8);
        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<(usize, u8)> {
            let addr = &*self as *const Aligned16 as usize;
            if !self.yielded {
                self.yielded = true;
                cx.waker().wake_by_ref();
                return std::task::Poll::Pending;
            }
            std::task::Poll::Ready((addr % 16, self.bytes[47]))
        }
    }
    let rt = rt(2);
    for _ in 0..100 {
        let (misalign, last) = block_on(rt.spawn(Aligned16 {
            bytes: [5; 48],
            yielded: false,
        }))
        .unwrap();
        assert_eq!((misalign, last), (0, 5));
    }
    let (misalign, _) = rt.block_on(Aligned16 {
        bytes: [0; 48],
        yielded: false,
    });
    assert_eq!(misalign, 0);
    // u128 output (align 16) inline.
    assert_eq!(
        block_on(rt.spawn(async { u128::MAX - 1 })).unwrap(),
        u128::MAX - 1
    );
}
