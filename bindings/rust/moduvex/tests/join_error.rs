//! JoinError: texts, predicates, conversions.
use moduvex::JoinError;
use std::error::Error;

#[test]
fn display_texts() {
    assert_eq!(JoinError::Cancelled.to_string(), "task was cancelled");
    assert_eq!(JoinError::Panic(Box::new("x")).to_string(), "task panicked");
}

#[test]
fn predicates_and_into_panic() {
    let c = JoinError::Cancelled;
    assert!(c.is_cancelled() && !c.is_panic());
    let c = c.try_into_panic().unwrap_err();
    assert!(c.is_cancelled());
    let p = JoinError::Panic(Box::new(7u8));
    assert!(p.is_panic() && !p.is_cancelled());
    assert_eq!(*p.into_panic().downcast::<u8>().unwrap(), 7);
}

#[test]
#[should_panic(expected = "not a panic")]
fn into_panic_of_cancelled_panics() {
    JoinError::Cancelled.into_panic();
}

#[test]
fn debug_and_std_error_and_io_error() {
    assert_eq!(
        format!("{:?}", JoinError::Cancelled),
        "JoinError::Cancelled"
    );
    assert_eq!(
        format!("{:?}", JoinError::Panic(Box::new("boom"))),
        "JoinError::Panic(\"boom\")"
    );
    assert_eq!(
        format!("{:?}", JoinError::Panic(Box::new(1))),
        "JoinError::Panic(..)"
    );
    let e: Box<dyn Error + Send> = Box::new(JoinError::Cancelled);
    assert_eq!(e.to_string(), "task was cancelled");
    let io: std::io::Error = JoinError::Panic(Box::new(String::from("oops"))).into();
    assert_eq!(io.to_string(), "task panicked: oops");
}

#[test]
fn join_handle_and_error_auto_traits() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<moduvex::JoinHandle<i32>>();
    send_sync::<moduvex::JoinHandle<std::sync::Mutex<i32>>>(); // Sync without T: Sync
    send_sync::<moduvex::Runtime>();
    send::<JoinError>();
}

#[test]
fn a_join_handle_is_two_pointers() {
    // One handle per task: pending_memory counts it.
    assert_eq!(
        std::mem::size_of::<moduvex::JoinHandle<u64>>(),
        2 * std::mem::size_of::<usize>()
    );
}
