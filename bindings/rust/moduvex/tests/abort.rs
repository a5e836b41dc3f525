//! Cancellation: the reference design's abort tests through the safe API.
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use common::*;
use futures::executor::block_on;

#[test]
fn abort_of_an_idle_task_drops_its_future() {
    let rt = rt(2);
    let drops = DropCounter::new();
    let polls = Arc::new(AtomicUsize::new(0));
    let h = rt.spawn(Never {
        polls: polls.clone(),
        _token: Some(drops.token()),
    });
    wait_until(|| polls.load(Ordering::SeqCst) == 1, "first poll");
    assert!(!h.is_finished());
    assert_eq!(drops.get(), 0);
    h.abort();
    drops.wait_for(1);
    assert!(h.is_finished());
    assert!(block_on(h).is_err_and(|e| e.is_cancelled()));
    assert_eq!(
        polls.load(Ordering::SeqCst),
        1,
        "an aborted task is not polled again"
    );
}

#[test]
fn abort_of_a_scheduled_task_drops_it_unpolled() {
    // One worker, held by a task blocked on a channel: the second task waits in the queue.
    let rt = rt(1);
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let blocker = rt.spawn(async move {
        started_tx.send(()).unwrap();
        release_rx.recv().unwrap();
    });
    started_rx.recv().unwrap();
    let drops = DropCounter::new();
    let polls = Arc::new(AtomicUsize::new(0));
    let queued = rt.spawn(Never {
        polls: polls.clone(),
        _token: Some(drops.token()),
    });
    queued.abort();
    assert!(
        !queued.is_finished(),
        "the only worker is busy: nobody can have dropped it yet"
    );
    release_tx.send(()).unwrap();
    assert!(block_on(queued).is_err_and(|e| e.is_cancelled()));
    assert_eq!(
        polls.load(Ordering::SeqCst),
        0,
        "cancelled before its first poll"
    );
    assert_eq!(drops.get(), 1);
    block_on(blocker).unwrap();
}

#[test]
fn abort_of_a_running_task_cancels_it_after_its_poll_returns_pending() {
    let rt = rt(2);
    let (running_tx, running_rx) = mpsc::channel::<()>();
    let (aborted_tx, aborted_rx) = mpsc::channel::<()>();
    let drops = DropCounter::new();
    let token = drops.token();
    let polls = Arc::new(AtomicUsize::new(0));
    let p = polls.clone();
    let h = rt.spawn(async move {
        let _token = token;
        p.fetch_add(1, Ordering::SeqCst);
        running_tx.send(()).unwrap();
        aborted_rx.recv().unwrap(); // still inside the first poll
        moduvex::yield_now().await; // pending: the abort takes effect here
        p.fetch_add(1, Ordering::SeqCst);
        7
    });
    running_rx.recv().unwrap();
    h.abort();
    aborted_tx.send(()).unwrap();
    assert!(block_on(h).is_err_and(|e| e.is_cancelled()));
    assert_eq!(polls.load(Ordering::SeqCst), 1);
    assert_eq!(drops.get(), 1);
}

#[test]
fn a_running_task_that_completes_first_keeps_its_output() {
    let rt = rt(2);
    let (running_tx, running_rx) = mpsc::channel::<()>();
    let (aborted_tx, aborted_rx) = mpsc::channel::<()>();
    let h = rt.spawn(async move {
        running_tx.send(()).unwrap();
        aborted_rx.recv().unwrap();
        String::from("kept")
    });
    running_rx.recv().unwrap();
    h.abort();
    aborted_tx.send(()).unwrap();
    assert_eq!(block_on(h).unwrap(), "kept");
}

#[test]
fn abort_of_a_completed_task_keeps_its_output() {
    let rt = rt(2);
    let h = rt.spawn(async { vec![1, 2, 3] });
    wait_until(|| h.is_finished(), "completion");
    h.abort();
    h.abort();
    assert_eq!(block_on(h).unwrap(), vec![1, 2, 3]);
}

#[test]
fn repeated_aborts_are_harmless() {
    let rt = rt(2);
    let drops = DropCounter::new();
    let polls = Arc::new(AtomicUsize::new(0));
    let h = rt.spawn(Never {
        polls: polls.clone(),
        _token: Some(drops.token()),
    });
    for _ in 0..100 {
        h.abort();
    }
    drops.wait_for(1);
    for _ in 0..10 {
        h.abort();
    }
    assert!(block_on(h).unwrap_err().is_cancelled());
    assert_eq!(drops.get(), 1);
}

#[test]
fn abort_from_other_threads_while_the_owner_awaits() {
    let rt = rt(2);
    let drops = DropCounter::new();
    let polls = Arc::new(AtomicUsize::new(0));
    let handle = rt.spawn(Never {
        polls: polls.clone(),
        _token: Some(drops.token()),
    });
    // abort() takes &self and the handle is Sync: share a reference with another thread.
    std::thread::scope(|s| {
        let handle = &handle;
        s.spawn(move || {
            wait_until(|| polls.load(Ordering::SeqCst) >= 1, "first poll");
            handle.abort();
        });
    });
    assert!(block_on(handle).unwrap_err().is_cancelled());
    drops.wait_for(1);
}

#[test]
fn abort_of_a_task_blocked_on_a_never_ready_future_drops_it() {
    let rt = rt(2);
    let drops = DropCounter::new();
    let token = drops.token();
    let (polled_tx, polled_rx) = mpsc::channel::<()>();
    let h = rt.spawn(async move {
        let _token = token;
        polled_tx.send(()).unwrap();
        std::future::pending::<()>().await;
    });
    polled_rx.recv().unwrap();
    h.abort();
    drops.wait_for(1);
    assert!(block_on(h).unwrap_err().is_cancelled());
}

#[test]
fn abort_of_a_queued_blocking_job_cancels_it() {
    // One pool thread, busy: the second job waits in the queue and is cancelled there.
    let rt = moduvex::Runtime::builder()
        .worker_threads(1)
        .max_blocking_threads(1)
        .build()
        .unwrap();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let busy = rt.spawn_blocking(move || {
        started_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        1
    });
    started_rx.recv().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let queued = rt.spawn_blocking(move || r.fetch_add(1, Ordering::SeqCst));
    queued.abort();
    release_tx.send(()).unwrap();
    assert_eq!(block_on(busy).unwrap(), 1);
    assert!(block_on(queued).unwrap_err().is_cancelled());
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}
