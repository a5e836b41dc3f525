//! Runtime::handle, Handle (Clone + Send + Sync), Handle::current/try_current, Runtime::enter and
//! EnterGuard nesting.
mod common;

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;

use common::*;
use moduvex::runtime::{EnterGuard, Handle};

#[test]
fn a_handle_spawns_blocks_on_and_spawns_blocking_from_another_thread() {
    let rt = rt(2);
    let h = rt.handle().clone();
    let out = std::thread::spawn(move || {
        let a = h.spawn(async { 40 });
        let b = h.spawn_blocking(|| 2);
        h.block_on(async { a.await.unwrap() + b.await.unwrap() })
    })
    .join()
    .unwrap();
    assert_eq!(out, 42);
}

#[test]
fn current_is_the_runtime_of_tasks_blocking_closures_and_block_on() {
    let rt = rt(2);
    let me = rt.as_raw();
    let in_task = rt.block_on(rt.spawn(async { Handle::current() })).unwrap();
    let in_blocking = rt.block_on(rt.spawn_blocking(Handle::current)).unwrap();
    let in_block_on = rt.block_on(async { Handle::current() });
    for h in [in_task, in_blocking, in_block_on] {
        // A handle of the same runtime spawns onto it.
        assert_eq!(rt.block_on(h.spawn(async { 7 })).unwrap(), 7);
        assert_eq!(h.worker_threads(), 2);
    }
    // Spawning through Handle::current() inside a task lands on the same runtime.
    let inner = rt
        .block_on(rt.spawn(async { Handle::current().spawn(async { 1 }).await.unwrap() }))
        .unwrap();
    assert_eq!(inner, 1);
    assert_eq!(rt.as_raw(), me);
}

#[test]
fn current_outside_a_runtime_panics_with_tokios_message_shape() {
    let e = Handle::try_current().unwrap_err();
    assert!(e.is_missing_context() && !e.is_thread_local_destroyed());
    assert_eq!(
        e.to_string(),
        "there is no reactor running, must be called from the context of a moduvex runtime"
    );
    let p = panic::catch_unwind(Handle::current).unwrap_err();
    let msg = p.downcast::<String>().unwrap();
    assert!(msg.starts_with("there is no reactor running"), "{msg}");
}

#[test]
fn enter_makes_spawn_and_current_work_on_a_plain_thread() {
    let rt = rt(1);
    assert!(panic::catch_unwind(|| moduvex::spawn(async {})).is_err());
    let guard = rt.enter();
    let h = moduvex::spawn(async { 5 });
    let b = moduvex::spawn_blocking(|| 6);
    assert!(Handle::try_current().is_ok());
    drop(guard);
    assert!(Handle::try_current().is_err());
    assert_eq!(rt.block_on(h).unwrap() + rt.block_on(b).unwrap(), 11);
}

#[test]
fn guards_nest_innermost_wins_and_unwind_in_order() {
    // Told apart by their worker counts.
    let a = rt(1);
    let b = rt(2);
    let current = || Handle::current().worker_threads();
    let ga = a.enter();
    assert_eq!(current(), 1);
    {
        let gb = b.enter();
        assert_eq!(current(), 2);
        // moduvex::spawn goes to the innermost runtime too.
        let on_b = moduvex::spawn(async { Handle::current().worker_threads() });
        assert_eq!(b.block_on(on_b).unwrap(), 2);
        drop(gb);
    }
    assert_eq!(current(), 1);
    let on_a = moduvex::spawn(async { Handle::current().worker_threads() });
    assert_eq!(a.block_on(on_a).unwrap(), 1);
    drop(ga);
    assert!(Handle::try_current().is_err());
}

#[test]
fn guards_dropped_out_of_order_panic() {
    let a = rt(1);
    let b = rt(1);
    let ga: EnterGuard<'_> = a.enter();
    let gb = b.enter();
    let p = panic::catch_unwind(AssertUnwindSafe(move || drop(ga))).unwrap_err();
    let msg = p
        .downcast::<&str>()
        .map(|s| s.to_string())
        .unwrap_or_else(|p| *p.downcast::<String>().unwrap());
    assert!(msg.contains("dropped out of order"), "{msg}");
    drop(gb);
    assert!(Handle::try_current().is_err(), "both guards are gone");
}

#[test]
fn a_handle_outliving_its_runtime_gets_cancelled_spawns() {
    let rt = rt(1);
    let h = rt.handle().clone();
    drop(rt);
    let j = h.spawn(async { 1 });
    let e = futures::executor::block_on(j).unwrap_err();
    assert!(e.is_cancelled());
}

#[test]
fn handle_is_clone_send_sync() {
    fn f<T: Clone + Send + Sync + 'static>() {}
    f::<Handle>();
}

#[test]
fn the_last_handle_dropped_inside_a_task_does_not_deadlock() {
    let rt = rt(1);
    let h = rt.handle().clone();
    let (tx, rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    rt.spawn(async move {
        started_tx.send(()).unwrap();
        rx.recv().unwrap(); // hold the worker until the Runtime is gone
        drop(h); // the last reference, on the runtime's own worker: released by a helper thread
        done_tx.send(()).unwrap();
    });
    started_rx.recv().unwrap();
    rt.shutdown_background(); // does not wait for the blocked poll
    tx.send(()).unwrap();
    done_rx.recv().unwrap();
}
