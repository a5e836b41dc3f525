//! JoinError: tokio 1.41's texts with task ids, predicates, conversions, auto traits.
use moduvex::{JoinError, Runtime};
use std::error::Error;

fn rt() -> Runtime {
    Runtime::builder().worker_threads(2).build().unwrap()
}

fn cancelled(rt: &Runtime) -> (moduvex::task::Id, JoinError) {
    let h = rt.spawn(std::future::pending::<()>());
    let id = h.id();
    h.abort();
    (id, rt.block_on(h).unwrap_err())
}

fn panicked(
    rt: &Runtime,
    p: impl std::any::Any + Send + 'static,
) -> (moduvex::task::Id, JoinError) {
    let h = rt.spawn(async move { std::panic::panic_any(p) });
    let id = h.id();
    (id, rt.block_on(h).unwrap_err())
}

#[test]
fn display_texts_name_the_task() {
    let rt = rt();
    let (id, c) = cancelled(&rt);
    assert_eq!(c.id(), id);
    assert_eq!(c.to_string(), format!("task {id} was cancelled"));
    let (id, p) = panicked(&rt, "x");
    assert_eq!(
        p.to_string(),
        format!("task {} panicked with message \"x\"", id.as_u64())
    );
    let (id, p) = panicked(&rt, String::from("a \"quoted\" one"));
    assert_eq!(
        p.to_string(),
        format!("task {id} panicked with message \"a \\\"quoted\\\" one\"")
    );
    let (id, p) = panicked(&rt, 7u8);
    assert_eq!(p.to_string(), format!("task {id} panicked"));
}

#[test]
fn predicates_and_into_panic() {
    let rt = rt();
    let (_, c) = cancelled(&rt);
    assert!(c.is_cancelled() && !c.is_panic());
    let c = c.try_into_panic().unwrap_err();
    assert!(c.is_cancelled());
    let (_, p) = panicked(&rt, 7u8);
    assert!(p.is_panic() && !p.is_cancelled());
    assert_eq!(*p.into_panic().downcast::<u8>().unwrap(), 7);
}

#[test]
#[should_panic(expected = "not a panic")]
fn into_panic_of_cancelled_panics() {
    let rt = rt();
    cancelled(&rt).1.into_panic();
}

#[test]
fn debug_and_std_error_and_io_error() {
    let rt = rt();
    let (id, c) = cancelled(&rt);
    assert_eq!(format!("{c:?}"), format!("JoinError::Cancelled(Id({id}))"));
    let (id, p) = panicked(&rt, "boom");
    assert_eq!(
        format!("{p:?}"),
        format!("JoinError::Panic(Id({id}), \"boom\", ...)")
    );
    let (id, p) = panicked(&rt, 1);
    assert_eq!(format!("{p:?}"), format!("JoinError::Panic(Id({id}), ...)"));
    let (id, c) = cancelled(&rt);
    let e: Box<dyn Error + Send + Sync> = Box::new(c); // Sync: what anyhow and `?` need
    assert_eq!(e.to_string(), format!("task {id} was cancelled"));
    let (id, p) = panicked(&rt, String::from("oops"));
    let io: std::io::Error = p.into();
    assert_eq!(
        io.to_string(),
        format!("task {id} panicked with message \"oops\"")
    );
}

#[test]
fn question_mark_into_a_send_sync_box() {
    let rt = rt();
    let run = || -> Result<i32, Box<dyn Error + Send + Sync>> {
        let v = rt.block_on(rt.spawn(async { 5 }))?;
        rt.block_on(rt.spawn(async { panic!("inner") }))?;
        Ok(v)
    };
    assert!(run()
        .unwrap_err()
        .to_string()
        .ends_with("panicked with message \"inner\""));
}

#[test]
fn join_handle_and_error_auto_traits() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<moduvex::JoinHandle<i32>>();
    send_sync::<moduvex::JoinHandle<std::sync::Mutex<i32>>>(); // Sync without T: Sync
    send_sync::<moduvex::Runtime>();
    send_sync::<moduvex::Handle>();
    send_sync::<JoinError>();
    send_sync::<moduvex::task::JoinSet<i32>>();
}

#[test]
fn a_join_handle_is_two_pointers() {
    // One handle per task: pending_memory counts it. The id lives in the second word.
    assert_eq!(
        std::mem::size_of::<moduvex::JoinHandle<u64>>(),
        2 * std::mem::size_of::<usize>()
    );
}

#[test]
fn a_payload_that_is_not_sync_still_makes_a_sync_error() {
    let rt = rt();
    let (_, e) = panicked(&rt, std::cell::Cell::new(3));
    let shared = std::sync::Arc::new(e);
    let s2 = std::sync::Arc::clone(&shared);
    std::thread::spawn(move || assert!(s2.is_panic() && s2.to_string().ends_with(" panicked")))
        .join()
        .unwrap();
    let e = std::sync::Arc::try_unwrap(shared).unwrap();
    let cell = e.into_panic().downcast::<std::cell::Cell<i32>>().unwrap();
    assert_eq!(cell.get(), 3);
}
