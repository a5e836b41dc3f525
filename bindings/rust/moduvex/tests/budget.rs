//! The cooperative budget: a task looping on always-ready handles or consume_budget yields every
//! 128 of them, unconstrained lifts that, and a budget-bound loop cannot starve another task on
//! its worker.
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use moduvex::task::{self, JoinSet};

#[test]
fn finished_handles_yield_every_128() {
    let rt = rt(1);
    let handles: Vec<_> = (0..1000).map(|_| rt.spawn(async {})).collect();
    wait_until(
        || handles.iter().all(|h| h.is_finished()),
        "tasks to finish",
    );
    let (polls, fut) = count_polls(async move {
        for h in handles {
            h.await.unwrap(); // always ready
        }
    });
    rt.block_on(rt.spawn(fut)).unwrap();
    // 128 per poll: 7 full polls then the rest.
    assert_eq!(polls.load(Ordering::SeqCst), 1000 / 128 + 1);
}

#[test]
fn consume_budget_and_unconstrained() {
    let rt = rt(1);
    let (polls, fut) = count_polls(async {
        for _ in 0..1000 {
            task::consume_budget().await;
        }
    });
    rt.block_on(rt.spawn(fut)).unwrap();
    assert_eq!(polls.load(Ordering::SeqCst), 8);
    let (polls, fut) = count_polls(task::unconstrained(async {
        for _ in 0..1000 {
            task::consume_budget().await;
        }
    }));
    rt.block_on(rt.spawn(fut)).unwrap();
    assert_eq!(polls.load(Ordering::SeqCst), 1);
    // block_on futures have a budget too.
    let (polls, fut) = count_polls(async {
        for _ in 0..256 {
            task::consume_budget().await;
        }
    });
    rt.block_on(fut);
    assert_eq!(polls.load(Ordering::SeqCst), 2);
}

#[test]
fn join_next_respects_the_budget() {
    // One worker runs the 300 tasks (queued first) before the joining task, so every join_next
    // is ready at once: 300 / 128 + 1 polls.
    let rt = rt(1);
    let mut set = JoinSet::new();
    let _g = rt.enter();
    for _ in 0..300 {
        set.spawn(async {});
    }
    let (polls, fut) = count_polls(async move {
        let mut n = 0;
        while set.join_next().await.is_some() {
            n += 1;
        }
        n
    });
    assert_eq!(rt.block_on(rt.spawn(fut)).unwrap(), 300);
    assert_eq!(polls.load(Ordering::SeqCst), 3);
}

#[test]
fn a_budget_bound_loop_does_not_starve_its_worker() {
    // One worker: the looping task must yield for the other one to ever run.
    let rt = rt(1);
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let spinner = rt.spawn(async move {
        let mut rounds = 0u64;
        while !s.load(Ordering::SeqCst) {
            task::consume_budget().await;
            rounds += 1;
        }
        rounds
    });
    let setter = rt.spawn(async move { stop.store(true, Ordering::SeqCst) });
    rt.block_on(setter).unwrap();
    assert!(rt.block_on(spinner).unwrap() >= 1);
}
