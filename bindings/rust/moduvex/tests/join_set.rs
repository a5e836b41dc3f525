//! JoinSet: outcomes in completion order, len/is_empty, try_join_next, abort_all, shutdown,
//! detach_all, abort on drop, spawn_blocking, ids, entry reuse.
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use common::*;
use moduvex::task::JoinSet;

#[test]
fn join_next_gives_outcomes_in_completion_order() {
    let rt = rt(2);
    let order = rt.block_on(async {
        let mut set = JoinSet::new();
        let mut senders = Vec::new();
        for i in 0..5u32 {
            let (tx, rx) = futures::channel::oneshot::channel::<()>();
            senders.push(tx);
            set.spawn(async move {
                rx.await.unwrap();
                i
            });
        }
        assert_eq!(set.len(), 5);
        // Release them one by one in the order 3, 1, 4, 0, 2, taking each outcome first.
        let mut order = Vec::new();
        let mut senders: Vec<_> = senders.into_iter().map(Some).collect();
        for i in [3usize, 1, 4, 0, 2] {
            senders[i].take().unwrap().send(()).unwrap();
            order.push(set.join_next().await.unwrap().unwrap());
        }
        assert!(set.is_empty());
        assert!(set.join_next().await.is_none());
        order
    });
    assert_eq!(order, vec![3, 1, 4, 0, 2]);
}

#[test]
fn try_join_next_does_not_wait() {
    let rt = rt(1);
    rt.block_on(async {
        let mut set = JoinSet::new();
        assert!(set.try_join_next().is_none());
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        set.spawn(async move { rx.await.unwrap() });
        moduvex::yield_now().await;
        assert!(set.try_join_next().is_none()); // unfinished
        tx.send(()).unwrap();
        let mut got = None;
        while got.is_none() {
            moduvex::yield_now().await;
            got = set.try_join_next();
        }
        assert!(got.unwrap().is_ok());
        assert!(set.is_empty());
    });
}

#[test]
fn abort_all_cancels_and_shutdown_waits() {
    let rt = rt(2);
    let drops = DropCounter::new();
    rt.block_on(async {
        let mut set = JoinSet::new();
        for _ in 0..20 {
            let t = drops.token();
            set.spawn(async move {
                let _t = t;
                std::future::pending::<()>().await
            });
        }
        set.abort_all();
        let mut cancelled = 0;
        while let Some(r) = set.join_next().await {
            assert!(r.unwrap_err().is_cancelled());
            cancelled += 1;
        }
        assert_eq!(cancelled, 20);
        for _ in 0..5 {
            let t = drops.token();
            set.spawn(async move {
                let _t = t;
                std::future::pending::<()>().await
            });
        }
        set.shutdown().await;
        assert!(set.is_empty());
    });
    assert_eq!(drops.get(), 25); // every future dropped by the time shutdown returned
}

#[test]
fn dropping_the_set_aborts_its_tasks() {
    let rt = rt(2);
    let drops = DropCounter::new();
    let mut set = JoinSet::new();
    {
        let _g = rt.enter();
        for _ in 0..100 {
            let t = drops.token();
            set.spawn(async move {
                let _t = t;
                std::future::pending::<()>().await
            });
        }
    }
    drop(set);
    drops.wait_for(100);
}

#[test]
fn detach_all_lets_the_tasks_run_on() {
    let rt = rt(2);
    let (tx, rx) = mpsc::channel();
    let gate = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let mut set = JoinSet::new();
        for i in 0..10 {
            let tx = tx.clone();
            let gate = gate.clone();
            set.spawn(async move {
                while gate.load(Ordering::SeqCst) == 0 {
                    moduvex::yield_now().await;
                }
                tx.send(i).unwrap();
            });
        }
        set.detach_all();
        assert!(set.is_empty());
        assert!(set.join_next().await.is_none());
        // The set is usable again.
        set.spawn(async {});
        assert!(set.join_next().await.unwrap().is_ok());
    });
    gate.store(1, Ordering::SeqCst);
    let mut got: Vec<i32> = (0..10).map(|_| rx.recv().unwrap()).collect();
    got.sort();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
}

#[test]
fn blocking_closures_panics_and_ids() {
    let rt = rt(2);
    rt.block_on(async {
        let mut set = JoinSet::new();
        let a = set.spawn_blocking(|| 1);
        let b = set.spawn(async { panic!("no") });
        let mut seen = Vec::new();
        while let Some(r) = set.join_next_with_id().await {
            match r {
                Ok((id, v)) => {
                    assert_eq!((id, v), (a, 1));
                    seen.push(id);
                }
                Err(e) => {
                    assert_eq!(e.id(), b);
                    assert!(e.is_panic());
                    seen.push(e.id());
                }
            }
        }
        seen.sort();
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(seen, want);
    });
}

#[test]
fn ten_thousand_tasks_twice_reuse_the_entries() {
    let rt = rt(2);
    rt.block_on(async {
        let mut set = JoinSet::new();
        for round in 0..2u64 {
            for i in 0..10_000u64 {
                set.spawn(async move { i + round });
            }
            let mut sum = 0;
            while let Some(r) = set.join_next().await {
                sum += r.unwrap();
            }
            assert_eq!(sum, 10_000 * 9_999 / 2 + round * 10_000);
        }
        let set2: JoinSet<u32> = (0..10).map(|i| async move { i }).collect();
        assert_eq!(set2.len(), 10);
    });
}
