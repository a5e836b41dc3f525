//! task_local!: scope across awaits, not across spawns, sync_scope, nesting, with/try_with/get,
//! and two tasks interleaving on one worker each seeing its own value.
mod common;

use std::panic;

use common::*;
use moduvex::task;

moduvex::task_local! {
    static NUMBER: u32;
    pub static NAME: String;
}

#[test]
fn a_scope_is_carried_across_awaits() {
    let rt = rt(2);
    let v = rt.block_on(rt.spawn(NUMBER.scope(7, async {
        let before = NUMBER.get();
        moduvex::yield_now().await;
        moduvex::spawn(async {}).await.unwrap(); // may resume on another worker
        (before, NUMBER.get(), NAME.try_with(|_| ()).is_err())
    })));
    assert_eq!(v.unwrap(), (7, 7, true));
}

#[test]
fn spawned_tasks_do_not_inherit_it() {
    let rt = rt(2);
    let inner = rt.block_on(NUMBER.scope(1, async {
        let seen_here = NUMBER.get();
        let child = moduvex::spawn(async { NUMBER.try_with(|v| *v).is_err() })
            .await
            .unwrap();
        (seen_here, child)
    }));
    assert_eq!(inner, (1, true));
}

#[test]
fn sync_scope_nesting_and_errors() {
    assert!(NUMBER.try_with(|_| ()).is_err());
    let r = NUMBER.sync_scope(1, || {
        let outer = NUMBER.get();
        let inner = NUMBER.sync_scope(2, || NUMBER.get());
        (outer, inner, NUMBER.get())
    });
    assert_eq!(r, (1, 2, 1));
    assert!(NUMBER.try_with(|_| ()).is_err());
    let s = NAME.sync_scope("x".to_owned(), || NAME.with(|n| n.clone()));
    assert_eq!(s, "x");
    let p = panic::catch_unwind(|| NUMBER.get()).unwrap_err();
    assert!(p
        .downcast::<&str>()
        .unwrap()
        .starts_with("cannot access a task-local storage value without setting it first"));
    assert_eq!(
        NUMBER.try_with(|_| ()).unwrap_err().to_string(),
        "task-local value not set"
    );
}

#[test]
fn interleaved_tasks_on_one_worker_see_their_own_values() {
    let rt = rt(1);
    let a = rt.spawn(NUMBER.scope(10, async {
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(NUMBER.get());
            moduvex::yield_now().await; // lets b run on the same thread
        }
        seen
    }));
    let b = rt.spawn(NUMBER.scope(20, async {
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(NUMBER.get());
            moduvex::yield_now().await;
        }
        seen
    }));
    assert_eq!(rt.block_on(a).unwrap(), vec![10; 5]);
    assert_eq!(rt.block_on(b).unwrap(), vec![20; 5]);
    let _ = task::try_id();
}

#[test]
fn a_scope_survives_a_panic_unwinding_through_it() {
    let r = panic::catch_unwind(|| NUMBER.sync_scope(3, || panic!("x")));
    assert!(r.is_err());
    assert!(
        NUMBER.try_with(|_| ()).is_err(),
        "the value left with the scope"
    );
}
