//! Panics cross the FFI boundary as task failures and come back with their payload.
mod common;

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use common::*;
use futures::executor::block_on;

#[test]
fn panic_payload_str_round_trip() {
    let rt = rt(2);
    let err = block_on(rt.spawn(async { panic!("boom") })).unwrap_err();
    assert!(err.is_panic() && !err.is_cancelled());
    assert_eq!(err.to_string(), "task panicked");
    assert_eq!(
        *err.into_panic().downcast::<&'static str>().unwrap(),
        "boom"
    );
}

#[test]
fn panic_payload_string_round_trip() {
    let rt = rt(2);
    let n = 42;
    let h = rt.spawn(async move {
        if n == 42 {
            panic!("formatted {n}");
        }
        n
    });
    let payload = block_on(h).unwrap_err().into_panic();
    assert_eq!(payload.downcast_ref::<String>().unwrap(), "formatted 42");
}

#[derive(Debug, PartialEq)]
struct Custom(u64, &'static str);

#[test]
fn panic_any_payload_and_resume_unwind() {
    let rt = rt(2);
    let h = rt.spawn(async { panic::panic_any(Custom(7, "seven")) });
    let payload = match block_on(h) {
        Err(e) if e.is_panic() => e.into_panic(),
        other => panic!("unexpected {:?}", other.map(|_| ())),
    };
    // resume_unwind re-raises the very payload; catching it again gives it back.
    let caught =
        panic::catch_unwind(AssertUnwindSafe(|| panic::resume_unwind(payload))).unwrap_err();
    assert_eq!(*caught.downcast::<Custom>().unwrap(), Custom(7, "seven"));
}

#[test]
fn block_on_resumes_the_panic_on_the_caller() {
    let rt = rt(2);
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async { panic!("in block_on") })
    }))
    .unwrap_err();
    assert_eq!(*caught.downcast::<&str>().unwrap(), "in block_on");
    // The runtime is unaffected.
    assert_eq!(rt.block_on(async { 5 }), 5);
}

#[test]
fn a_panicking_task_drops_its_future_once_and_the_runtime_goes_on() {
    let rt = rt(2);
    let drops = DropCounter::new();
    let token = drops.token();
    let h = rt.spawn(async move {
        let _t = token;
        moduvex::yield_now().await;
        panic!("after a yield")
    });
    assert!(block_on(h).unwrap_err().is_panic());
    assert_eq!(drops.get(), 1);
    let hs: Vec<_> = (0..100).map(|i| rt.spawn(async move { i * 2 })).collect();
    let sum: i32 = hs.into_iter().map(|h| block_on(h).unwrap()).sum();
    assert_eq!(sum, 9900);
}

#[test]
fn panic_inside_spawn_blocking() {
    let rt = rt(2);
    let err = block_on(rt.spawn_blocking(|| -> u32 { panic!("blocking boom") })).unwrap_err();
    assert_eq!(
        *err.into_panic().downcast::<&str>().unwrap(),
        "blocking boom"
    );
    // From inside a task, too.
    let n = 1;
    let inner = rt.block_on(async move {
        let h: moduvex::JoinHandle<()> = moduvex::spawn_blocking(move || panic!("inner {n}"));
        h.await.unwrap_err()
    });
    assert_eq!(
        inner.into_panic().downcast_ref::<String>().unwrap(),
        "inner 1"
    );
}

/// Panics in its destructor.
struct PanicOnDrop(Arc<AtomicUsize>);
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("panic in drop");
    }
}

/// Ready at once with 11; its PanicOnDrop is dropped by the task's drop callback, after the poll.
/// (An `async` block would drop its captured variables inside the last poll, which makes a panic
/// there a panic of the task, as in tokio.)
struct ReadyThenPanicOnDrop(#[allow(dead_code)] PanicOnDrop);
impl std::future::Future for ReadyThenPanicOnDrop {
    type Output = u32;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<u32> {
        std::task::Poll::Ready(11)
    }
}

#[test]
fn a_panic_in_a_completed_futures_destructor_is_caught_and_the_output_kept() {
    let rt = rt(2);
    let dropped = Arc::new(AtomicUsize::new(0));
    let h = rt.spawn(ReadyThenPanicOnDrop(PanicOnDrop(dropped.clone())));
    assert_eq!(block_on(h).unwrap(), 11);
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    assert_eq!(rt.block_on(rt.spawn(async { 1 })).unwrap(), 1);
}

#[test]
fn a_panic_while_an_async_block_drops_its_captures_is_a_task_panic() {
    let rt = rt(2);
    let dropped = Arc::new(AtomicUsize::new(0));
    let guard = PanicOnDrop(dropped.clone());
    let h = rt.spawn(async move {
        let _g = &guard;
        11
    });
    let payload = block_on(h).unwrap_err().into_panic();
    assert_eq!(*payload.downcast::<&str>().unwrap(), "panic in drop");
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[test]
fn a_panic_in_a_cancelled_futures_destructor_is_caught_and_it_stays_cancelled() {
    let rt = rt(2);
    let dropped = Arc::new(AtomicUsize::new(0));
    let guard = PanicOnDrop(dropped.clone());
    let (polled_tx, polled_rx) = mpsc::channel::<()>();
    let h = rt.spawn(async move {
        let _g = &guard;
        polled_tx.send(()).unwrap();
        std::future::pending::<()>().await
    });
    polled_rx.recv().unwrap();
    h.abort();
    assert!(block_on(h).unwrap_err().is_cancelled());
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[test]
fn a_panic_in_the_destructor_of_an_output_nobody_takes_is_caught() {
    let rt = rt(2);
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    drop(rt.spawn(async move { PanicOnDrop(d) })); // detached: the library drops the output
    wait_until(|| dropped.load(Ordering::SeqCst) == 1, "output drop");
    assert_eq!(rt.block_on(rt.spawn(async { 2 })).unwrap(), 2);
}

#[test]
fn a_payload_whose_destructor_panics_is_dropped_safely_when_nobody_takes_it() {
    let rt = rt(2);
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    let (polled_tx, polled_rx) = mpsc::channel::<()>();
    let h = rt.spawn(async move {
        polled_rx.recv().unwrap();
        panic::panic_any(PanicOnDrop(d))
    });
    drop(h); // detached before it fails: the failure (and its payload) is dropped by the library
    polled_tx.send(()).unwrap();
    wait_until(|| dropped.load(Ordering::SeqCst) == 1, "payload drop");
    assert_eq!(rt.block_on(rt.spawn(async { 3 })).unwrap(), 3);
}

/// Records, when dropped, whether a panic was unwinding at that moment.
struct UnwindProbe(Arc<std::sync::Mutex<Vec<bool>>>);
impl Drop for UnwindProbe {
    fn drop(&mut self) {
        self.0.lock().unwrap().push(std::thread::panicking());
    }
}

/// Panics in its poll; `pad` makes a large one (boxed by the binding) or a small one (inline).
struct PanicsInPoll<const N: usize> {
    _probe: UnwindProbe,
    _pad: [u8; N],
}
impl<const N: usize> std::future::Future for PanicsInPoll<N> {
    type Output = ();
    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        panic!("boom in poll")
    }
}

/// As in tokio, a future whose poll panics is dropped while the panic unwinds (cleanup that runs
/// only then, such as an unwind guard, runs), and only once.
#[test]
fn a_future_whose_poll_panics_is_dropped_during_the_unwind() {
    let rt = rt(2);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let small = PanicsInPoll::<8> {
        _probe: UnwindProbe(Arc::clone(&seen)),
        _pad: [0; 8],
    };
    let large = PanicsInPoll::<20000> {
        _probe: UnwindProbe(Arc::clone(&seen)),
        _pad: [0; 20000],
    };
    let e1 = block_on(rt.spawn(small)).unwrap_err();
    let e2 = block_on(rt.spawn(large)).unwrap_err();
    assert_eq!(*e1.into_panic().downcast::<&str>().unwrap(), "boom in poll");
    assert!(e2.is_panic());
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(PanicsInPoll::<8> {
            _probe: UnwindProbe(Arc::clone(&seen)),
            _pad: [0; 8],
        })
    }));
    assert!(caught.is_err());
    assert_eq!(*seen.lock().unwrap(), vec![true, true, true]);
}
