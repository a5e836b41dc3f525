//! JoinError: texts, predicates, conversions, auto traits.
mod common;

use common::*;
use futures::executor::block_on;
use moduvex::JoinError;
use std::error::Error;

/// A JoinError of each kind, from real tasks (the type has no public constructor, as in tokio).
fn cancelled() -> JoinError {
    let rt = rt(1);
    let h = rt.spawn(std::future::pending::<()>());
    h.abort();
    block_on(h).unwrap_err()
}
fn panicked<P: std::any::Any + Send + 'static>(p: P) -> JoinError {
    let rt = rt(1);
    block_on(rt.spawn(async move { std::panic::panic_any(p) })).unwrap_err()
}

#[test]
fn display_texts() {
    assert_eq!(cancelled().to_string(), "task was cancelled");
    assert_eq!(panicked("x").to_string(), "task panicked");
}

#[test]
fn predicates_and_into_panic() {
    let c = cancelled();
    assert!(c.is_cancelled() && !c.is_panic());
    let c = c.try_into_panic().unwrap_err();
    assert!(c.is_cancelled());
    let p = panicked(7u8);
    assert!(p.is_panic() && !p.is_cancelled());
    assert_eq!(*p.into_panic().downcast::<u8>().unwrap(), 7);
}

#[test]
#[should_panic(expected = "not a panic")]
fn into_panic_of_cancelled_panics() {
    cancelled().into_panic();
}

#[test]
fn debug_and_std_error_and_io_error() {
    assert_eq!(format!("{:?}", cancelled()), "JoinError::Cancelled");
    assert_eq!(
        format!("{:?}", panicked("boom")),
        "JoinError::Panic(\"boom\")"
    );
    assert_eq!(format!("{:?}", panicked(1)), "JoinError::Panic(..)");
    let e: Box<dyn Error + Send> = Box::new(cancelled());
    assert_eq!(e.to_string(), "task was cancelled");
    let io: std::io::Error = panicked(String::from("oops")).into();
    assert_eq!(io.to_string(), "task panicked: oops");
}

#[test]
fn join_handle_and_error_auto_traits() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<moduvex::JoinHandle<i32>>();
    send_sync::<moduvex::JoinHandle<std::sync::Mutex<i32>>>(); // Sync without T: Sync
    send_sync::<moduvex::Runtime>();
    send_sync::<JoinError>(); // even though a payload need only be Send
}

/// What anyhow and most applications do: `?` into a boxed Send + Sync error.
#[test]
fn question_mark_into_a_boxed_send_sync_error() {
    let rt = rt(1);
    let ok = rt.spawn(async { 5 });
    let bad = rt.spawn(async { panic!("deep") });
    let r: Result<i32, Box<dyn Error + Send + Sync>> = rt.block_on(async move {
        let v = ok.await?;
        bad.await?;
        Ok(v)
    });
    assert_eq!(r.unwrap_err().to_string(), "task panicked");
    // A payload that is Send but not Sync (a Cell) still makes a Sync error.
    let e = panicked(std::cell::Cell::new(3));
    let shared = std::sync::Arc::new(e);
    let s2 = std::sync::Arc::clone(&shared);
    std::thread::spawn(move || assert!(s2.is_panic()))
        .join()
        .unwrap();
    let e = std::sync::Arc::try_unwrap(shared).unwrap();
    assert_eq!(
        e.into_panic()
            .downcast::<std::cell::Cell<i32>>()
            .unwrap()
            .get(),
        3
    );
}

#[test]
fn a_join_handle_is_two_pointers() {
    // One handle per task: pending_memory counts it.
    assert_eq!(
        std::mem::size_of::<moduvex::JoinHandle<u64>>(),
        2 * std::mem::size_of::<usize>()
    );
}
