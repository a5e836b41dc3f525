//! LocalSet and spawn_local: !Send futures on the owner thread, run_until, block_on, awaiting
//! the set, cross-thread wakes, tasks of both kinds awaiting each other, and drop cancelling
//! every task on the owner thread.
mod common;

use std::cell::{Cell, RefCell};
use std::panic;
use std::rc::Rc;
use std::thread;

use common::*;
use moduvex::task::{self, LocalSet};

#[test]
fn not_send_futures_run_on_the_owner_thread() {
    let rt = rt(2);
    let local = LocalSet::new();
    let owner = thread::current().id();
    let shared = Rc::new(RefCell::new(Vec::new()));
    let s2 = shared.clone();
    let out = local.block_on(&rt, async move {
        let mut hs = Vec::new();
        for i in 0..10 {
            let s = s2.clone();
            hs.push(task::spawn_local(async move {
                moduvex::yield_now().await;
                s.borrow_mut().push(i);
                thread::current().id()
            }));
        }
        let mut threads = Vec::new();
        for h in hs {
            threads.push(h.await.unwrap());
        }
        threads
    });
    assert!(out.iter().all(|t| *t == owner));
    let mut v = shared.borrow().clone();
    v.sort();
    assert_eq!(v, (0..10).collect::<Vec<_>>());
}

#[test]
fn spawn_local_outside_a_local_set_panics_with_tokios_message() {
    let rt = rt(1);
    let p = panic::catch_unwind(|| rt.block_on(async { drop(task::spawn_local(async {})) }))
        .unwrap_err();
    assert_eq!(
        *p.downcast::<&str>().unwrap(),
        "`spawn_local` called from outside of a `task::LocalSet`"
    );
}

#[test]
fn run_until_returns_when_its_future_does_and_tasks_resume_later() {
    let rt = rt(1);
    let local = LocalSet::new();
    let progress = Rc::new(Cell::new(0));
    let p = progress.clone();
    let (tx, rx) = futures::channel::oneshot::channel::<u32>();
    let guard = rt.enter(); // spawning into a set outside of its drive needs a current runtime
    let h = local.spawn_local(async move {
        let v = rx.await.unwrap(); // woken from another thread
        p.set(v);
        v * 2
    });
    drop(guard);
    // The future finishes first; the task is still waiting.
    rt.block_on(local.run_until(async {}));
    assert_eq!(progress.get(), 0);
    let sender = thread::spawn(move || tx.send(21).unwrap());
    let v = rt.block_on(local.run_until(h)).unwrap();
    sender.join().unwrap();
    assert_eq!((v, progress.get()), (42, 21));
}

#[test]
fn awaiting_the_set_runs_every_task_to_completion() {
    let rt = rt(2);
    let local = LocalSet::new();
    let count = Rc::new(Cell::new(0));
    let _guard = rt.enter();
    for _ in 0..100 {
        let c = count.clone();
        drop(local.spawn_local(async move {
            // Waits for a runtime task: a cross-thread wake of a local task.
            moduvex::runtime::Handle::current()
                .spawn(async { 1 })
                .await
                .unwrap();
            c.set(c.get() + 1);
        }));
    }
    rt.block_on(local);
    assert_eq!(count.get(), 100);
}

#[test]
fn runtime_tasks_await_local_tasks() {
    let rt = rt(2);
    let local = LocalSet::new();
    let v = local.block_on(&rt, async {
        let rc = Rc::new(5u32); // held across an await: the future is !Send
        let l = task::spawn_local(async move {
            moduvex::yield_now().await;
            *rc
        });
        // A worker task awaits the local one: its handle is Send because the output is.
        moduvex::spawn(async move { l.await.unwrap() + 1 })
            .await
            .unwrap()
    });
    assert_eq!(v, 6);
}

/// Records the thread it is dropped on.
struct OnDrop(
    Rc<Cell<Option<thread::ThreadId>>>,
    #[allow(dead_code)] DropToken,
);
impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.set(Some(thread::current().id()));
    }
}

#[test]
fn dropping_the_set_cancels_its_tasks_there_on_the_owner_thread() {
    let rt = rt(2);
    let drops = DropCounter::new();
    let where_dropped = Rc::new(Cell::new(None));
    let local = LocalSet::new();
    let mut handles = Vec::new();
    let _guard = rt.enter();
    let mut senders = Vec::new(); // keep the tasks wakeable (reachable) until the drop
    for i in 0..3 {
        let guard = OnDrop(where_dropped.clone(), drops.token());
        let keep = i > 0;
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        senders.push(tx);
        let h = local.spawn_local(async move {
            let _g = guard;
            let _ = rx.await;
        });
        if keep {
            handles.push(h);
        } else {
            drop(h); // detached: still cancelled
        }
    }
    rt.block_on(local.run_until(moduvex::yield_now()));
    assert_eq!(drops.get(), 0);
    drop(local);
    // Every future was dropped during the drop, on this thread.
    assert_eq!(drops.get(), 3);
    assert_eq!(where_dropped.get(), Some(thread::current().id()));
    for h in handles {
        assert!(futures::executor::block_on(h).unwrap_err().is_cancelled());
    }
}

#[test]
fn a_join_set_spawns_local_tasks() {
    let rt = rt(1);
    let local = LocalSet::new();
    let sum = local.block_on(&rt, async {
        let mut set = task::JoinSet::new();
        for i in 0..10u32 {
            let rc = Rc::new(i);
            set.spawn_local(async move { *rc });
        }
        let mut sum = 0;
        while let Some(r) = set.join_next().await {
            sum += r.unwrap();
        }
        sum
    });
    assert_eq!(sum, 45);
}
