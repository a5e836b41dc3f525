//! task::block_in_place: queued tasks run while a worker blocks (also with one worker), from
//! blocking closures and plain threads it just runs f, from LocalSet/block_on it panics.
mod common;

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};

use common::*;
use moduvex::runtime::Handle;
use moduvex::task::{self, block_in_place, LocalSet};

#[test]
fn one_worker_runs_queued_tasks_while_its_task_blocks() {
    let rt = rt(1);
    let out = rt.block_on(rt.spawn(async {
        // Both queued on the only worker (one in its LIFO slot) before it blocks.
        let (tx, rx) = mpsc::channel();
        let a = moduvex::spawn(async move { tx.send(1).unwrap() });
        let b = moduvex::spawn(async { 2 });
        let id = task::id();
        let got = block_in_place(|| {
            // Blocks this thread on work only the (single) worker can run.
            let v = rx.recv().unwrap();
            let h = Handle::current();
            let spawned_inside = h.block_on(moduvex::spawn(async { 3 })).unwrap();
            (v, h.block_on(b).unwrap(), spawned_inside, task::id() == id)
        });
        a.await.unwrap();
        // The worker is back: tasks spawned now run on it.
        let after = moduvex::spawn(async { 4 }).await.unwrap();
        (got, after)
    }));
    assert_eq!(out.unwrap(), ((1, 2, 3, true), 4));
}

#[test]
fn many_tasks_block_in_place_at_once() {
    let rt = rt(2);
    const N: usize = 16;
    let barrier = Arc::new(Barrier::new(N));
    let done = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..N)
        .map(|_| {
            let barrier = barrier.clone();
            let done = done.clone();
            rt.spawn(async move {
                // All N meet inside block_in_place: only possible if each blocked worker hands
                // its queue (holding the others) to a substitute.
                block_in_place(|| barrier.wait());
                done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    for h in handles {
        rt.block_on(h).unwrap();
    }
    assert_eq!(done.load(Ordering::SeqCst), N);
}

#[test]
fn a_blocking_closure_and_a_plain_thread_just_run_f() {
    let rt = rt(1);
    let me = std::thread::current().id();
    assert_eq!(block_in_place(|| std::thread::current().id()), me);
    let v = rt
        .block_on(rt.spawn_blocking(|| block_in_place(|| 9)))
        .unwrap();
    assert_eq!(v, 9);
    // Nested: inside block_in_place the thread is no worker any more.
    let n = rt
        .block_on(rt.spawn(async { block_in_place(|| block_in_place(|| 1) + 1) }))
        .unwrap();
    assert_eq!(n, 2);
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    match p.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => p
            .downcast::<&str>()
            .map(|s| s.to_string())
            .unwrap_or_default(),
    }
}

#[test]
fn block_on_and_local_sets_panic_and_do_not_run_f() {
    let rt = rt(1);
    let ran = AtomicUsize::new(0);
    let p = panic::catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async { block_in_place(|| ran.fetch_add(1, Ordering::SeqCst)) })
    }))
    .unwrap_err();
    assert_eq!(
        panic_message(p),
        "can call blocking only when running on the multi-threaded runtime"
    );
    let local = LocalSet::new();
    let r = local.block_on(&rt, async {
        task::spawn_local(async { block_in_place(|| 1) }).await
    });
    assert!(r.unwrap_err().is_panic());
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn a_panic_in_f_reaches_the_task() {
    let rt = rt(1);
    let e = rt
        .block_on(rt.spawn(async { block_in_place(|| panic!("inside")) }))
        .unwrap_err();
    assert_eq!(*e.into_panic().downcast::<&str>().unwrap(), "inside");
    // The worker is still there.
    assert_eq!(rt.block_on(rt.spawn(async { 1 })).unwrap(), 1);
}
