//! Wakers in both directions: ecosystem futures inside moduvex tasks, and JoinHandles awaited
//! by other executors.
mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use common::*;
use futures::channel::{mpsc as fmpsc, oneshot};
use futures::future::{self, Either};
use futures::{SinkExt, StreamExt};

#[test]
fn oneshot_ping_pong_across_tasks() {
    let rt = rt(2);
    const PAIRS: usize = 1000;
    let handles: Vec<_> = (0..PAIRS)
        .map(|i| {
            rt.spawn(async move {
                let (ping_tx, ping_rx) = oneshot::channel::<usize>();
                let (pong_tx, pong_rx) = oneshot::channel::<usize>();
                let partner = moduvex::spawn(async move {
                    let v = ping_rx.await.unwrap();
                    pong_tx.send(v + 1).unwrap();
                });
                ping_tx.send(i).unwrap();
                let v = pong_rx.await.unwrap();
                partner.await.unwrap();
                v
            })
        })
        .collect();
    let results = rt.block_on(future::join_all(handles));
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap(), i + 1);
    }
}

#[test]
fn mpsc_ping_pong_across_tasks() {
    let rt = rt(2);
    const ROUNDS: u64 = 10_000;
    let (mut to_b, mut b_rx) = fmpsc::channel::<u64>(1);
    let (mut to_a, mut a_rx) = fmpsc::channel::<u64>(1);
    let b = rt.spawn(async move {
        while let Some(v) = b_rx.next().await {
            to_a.send(v + 1).await.unwrap();
        }
        "b done"
    });
    let a = rt.spawn(async move {
        let mut v = 0;
        for _ in 0..ROUNDS {
            to_b.send(v).await.unwrap();
            v = a_rx.next().await.unwrap();
        }
        v // dropping to_b ends b's loop
    });
    assert_eq!(rt.block_on(a).unwrap(), ROUNDS);
    assert_eq!(rt.block_on(b).unwrap(), "b done");
}

#[test]
fn unbounded_mpsc_fan_in() {
    let rt = rt(2);
    let (tx, rx) = fmpsc::unbounded::<u32>();
    for i in 0..100 {
        let tx = tx.clone();
        drop(rt.spawn(async move {
            for j in 0..10 {
                tx.unbounded_send(i * 10 + j).unwrap();
                moduvex::yield_now().await;
            }
        }));
    }
    drop(tx);
    let sum = rt
        .block_on(rt.spawn(rx.fold(0u64, |acc, x| async move { acc + x as u64 })))
        .unwrap();
    assert_eq!(sum, (0..1000u64).sum());
}

#[test]
fn join_handle_awaited_by_futures_executor() {
    let rt = rt(2);
    let (tx, rx) = oneshot::channel::<u32>();
    let mut h = rt.spawn(async move { rx.await.unwrap() * 2 });
    let out = futures::executor::block_on(async move {
        // Pending for sure (its input is not sent yet): the executor's waker is registered.
        assert!(futures::poll!(&mut h).is_pending());
        std::thread::spawn(move || tx.send(21).unwrap());
        h.await
    });
    assert_eq!(out.unwrap(), 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_handle_awaited_from_a_tokio_runtime() {
    let rt = rt(2);
    let (tx, rx) = oneshot::channel::<&'static str>();
    let mut h = rt.spawn(async move { rx.await.unwrap() });
    assert!(futures::poll!(&mut h).is_pending());
    let sender = tokio::spawn(async move {
        tokio::task::yield_now().await;
        tx.send("from tokio").unwrap();
    });
    assert_eq!(h.await.unwrap(), "from tokio");
    sender.await.unwrap();
    // Many at once, awaited from tokio tasks.
    let hs: Vec<_> = (0..200u32)
        .map(|i| {
            rt.spawn(async move {
                moduvex::yield_now().await;
                i
            })
        })
        .collect();
    let tokio_tasks: Vec<_> = hs
        .into_iter()
        .map(|h| tokio::spawn(async move { h.await.unwrap() }))
        .collect();
    let mut sum = 0;
    for t in tokio_tasks {
        sum += t.await.unwrap();
    }
    assert_eq!(sum, (0..200).sum());
    // A tokio JoinHandle awaited inside a moduvex task: tokio's wakeups reach the moduvex task.
    let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
    let tokio_h = tokio::spawn(async move { rx.await.unwrap() });
    let m = rt.spawn(async move { tokio_h.await.unwrap() });
    tx.send(5).unwrap();
    assert_eq!(m.await.unwrap(), 5);
    // The runtime is dropped on a tokio worker: allowed (it is not one of its own workers).
    drop(rt);
}

#[test]
fn join_handle_awaited_from_another_moduvex_task_and_another_runtime() {
    let a = rt(2);
    let b = rt(1);
    let (tx, rx) = oneshot::channel::<u32>();
    let inner = a.spawn(async move { rx.await.unwrap() + 1 });
    let outer_same = a.spawn(async move { inner.await.unwrap() * 10 });
    let outer_other = b.spawn(async move { outer_same.await.unwrap() + 5 });
    tx.send(1).unwrap();
    assert_eq!(futures::executor::block_on(outer_other).unwrap(), 25);
}

#[test]
fn join_all_and_select() {
    let rt = rt(2);
    let out = rt.block_on(async {
        let hs: Vec<_> = (0..50).map(|i| moduvex::spawn(async move { i })).collect();
        let all: Vec<i32> = future::join_all(hs)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(all, (0..50).collect::<Vec<_>>());

        let never = moduvex::spawn(std::future::pending::<u8>());
        let soon = moduvex::spawn(async {
            moduvex::yield_now().await;
            9u8
        });
        match future::select(never, soon).await {
            Either::Right((v, never)) => {
                never.abort();
                assert!(never.await.unwrap_err().is_cancelled());
                v.unwrap()
            }
            Either::Left(_) => panic!("the never-ready task completed"),
        }
    });
    assert_eq!(out, 9);
}

/// Parks its waker in a slot; a foreign thread wakes it.
struct Mailbox {
    value: Mutex<(Option<u32>, Option<Waker>)>,
}

struct Recv(Arc<Mailbox>);

impl Future for Recv {
    type Output = u32;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        let mut g = self.0.value.lock().unwrap();
        match g.0.take() {
            Some(v) => Poll::Ready(v),
            None => {
                // Keep the waker only if it would not wake the same task already.
                if !g.1.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    g.1 = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

#[test]
fn wakes_from_foreign_threads() {
    let rt = rt(2);
    for round in 0..200u32 {
        let mb = Arc::new(Mailbox {
            value: Mutex::new((None, None)),
        });
        let (polled_tx, polled_rx) = mpsc::channel::<()>();
        let m = mb.clone();
        let h = rt.spawn(async move {
            polled_tx.send(()).unwrap();
            Recv(m).await
        });
        polled_rx.recv().unwrap();
        let m = mb.clone();
        // Alternate wake (consuming), wake_by_ref, and a clone woken then dropped.
        std::thread::spawn(move || {
            wait_until(|| m.value.lock().unwrap().1.is_some(), "parked waker");
            let mut g = m.value.lock().unwrap();
            g.0 = Some(round);
            let w = g.1.take().unwrap();
            drop(g);
            match round % 3 {
                0 => w.wake(),
                1 => w.wake_by_ref(),
                _ => {
                    let w2 = w.clone();
                    drop(w);
                    w2.wake();
                }
            }
        })
        .join()
        .unwrap();
        assert_eq!(futures::executor::block_on(h).unwrap(), round);
    }
}

#[test]
fn wakers_of_moduvex_tasks_compare_and_outlive_their_task() {
    let rt = rt(2);
    let (w1, w2, same) = rt
        .block_on(rt.spawn(async {
            future::poll_fn(|cx| {
                let a = cx.waker().clone();
                let b = cx.waker().clone();
                let same = a.will_wake(&b) && a.will_wake(cx.waker());
                Poll::Ready((a, b, same))
            })
            .await
        }))
        .unwrap();
    assert!(same);
    // Waking a finished task's waker does nothing; dropping it frees the reference.
    w1.wake_by_ref();
    w1.wake();
    drop(w2);
}

// --- foreign waker registration: one clone per distinct waker -------------------------------

struct Counts {
    clones: AtomicUsize,
    wakes: AtomicUsize,
    drops: AtomicUsize,
}

fn counting_waker(c: &'static Counts) -> Waker {
    static VT: RawWakerVTable = RawWakerVTable::new(
        |d| {
            // SAFETY: d is the &'static Counts the waker was built from.
            let c = unsafe { &*(d as *const Counts) };
            c.clones.fetch_add(1, Ordering::SeqCst);
            RawWaker::new(d, &VT)
        },
        |d| {
            // SAFETY: d is the &'static Counts the waker was built from.
            let c = unsafe { &*(d as *const Counts) };
            c.wakes.fetch_add(1, Ordering::SeqCst);
            c.drops.fetch_add(1, Ordering::SeqCst);
        },
        |d| {
            // SAFETY: d is the &'static Counts the waker was built from.
            let c = unsafe { &*(d as *const Counts) };
            c.wakes.fetch_add(1, Ordering::SeqCst);
        },
        |d| {
            // SAFETY: d is the &'static Counts the waker was built from.
            let c = unsafe { &*(d as *const Counts) };
            c.drops.fetch_add(1, Ordering::SeqCst);
        },
    );
    // SAFETY: the vtable only counts; the data is a 'static Counts.
    unsafe { Waker::from_raw(RawWaker::new(c as *const Counts as *const (), &VT)) }
}

fn leak_counts() -> &'static Counts {
    Box::leak(Box::new(Counts {
        clones: AtomicUsize::new(0),
        wakes: AtomicUsize::new(0),
        drops: AtomicUsize::new(0),
    }))
}

#[test]
fn a_foreign_waker_is_registered_once_and_the_latest_one_is_woken() {
    let rt = rt(2);
    let (tx, rx) = oneshot::channel::<u8>();
    let mut h = rt.spawn(async move { rx.await.unwrap() });
    let first = leak_counts();
    let w1 = counting_waker(first);
    for _ in 0..100 {
        let mut cx = Context::from_waker(&w1);
        assert!(Pin::new(&mut h).poll(&mut cx).is_pending());
    }
    assert_eq!(
        first.clones.load(Ordering::SeqCst),
        1,
        "one clone for 100 polls with one waker"
    );
    // Another waker replaces it: the first is released (never woken), the second is woken.
    let second = leak_counts();
    let w2 = counting_waker(second);
    assert!(Pin::new(&mut h)
        .poll(&mut Context::from_waker(&w2))
        .is_pending());
    assert_eq!(second.clones.load(Ordering::SeqCst), 1);
    tx.send(3).unwrap();
    wait_until(
        || second.wakes.load(Ordering::SeqCst) == 1,
        "wake of the latest waker",
    );
    assert_eq!(first.wakes.load(Ordering::SeqCst), 0);
    match Pin::new(&mut h).poll(&mut Context::from_waker(&w2)) {
        Poll::Ready(r) => assert_eq!(r.unwrap(), 3),
        Poll::Pending => panic!("woken but not ready"),
    }
    drop(h);
    // Every clone the binding made was released (the two we own, w1 and w2, are still alive).
    // The first was released when the second replaced it, on this thread.
    assert_eq!(
        first.drops.load(Ordering::SeqCst),
        first.clones.load(Ordering::SeqCst)
    );
    // The library drops the second when the task is freed, and the worker that woke it may
    // still hold the task for a moment after the wake: then the release happens there, later.
    wait_until(
        || second.drops.load(Ordering::SeqCst) == second.clones.load(Ordering::SeqCst),
        "release of the latest waker",
    );
}

#[test]
fn a_dropped_join_handle_releases_its_foreign_waker() {
    let rt = rt(1);
    let c = leak_counts();
    let w = counting_waker(c);
    let mut h = rt.spawn(std::future::pending::<()>());
    assert!(Pin::new(&mut h)
        .poll(&mut Context::from_waker(&w))
        .is_pending());
    assert_eq!(c.clones.load(Ordering::SeqCst), 1);
    drop(h); // detaches; the library drops its clone of the waker, we drop ours
    assert_eq!(c.drops.load(Ordering::SeqCst), 1);
    assert_eq!(c.wakes.load(Ordering::SeqCst), 0);
}
