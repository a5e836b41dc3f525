//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use moduvex::Runtime;

pub fn rt(workers: usize) -> Runtime {
    Runtime::builder()
        .worker_threads(workers)
        .build()
        .expect("runtime")
}

/// Counts drops of the values it hands out.
#[derive(Clone, Default)]
pub struct DropCounter(Arc<AtomicUsize>);

impl DropCounter {
    pub fn new() -> DropCounter {
        DropCounter::default()
    }
    pub fn token(&self) -> DropToken {
        DropToken(Arc::clone(&self.0))
    }
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
    /// Waits (at most 10 s) until `n` tokens were dropped, then checks that no more were.
    pub fn wait_for(&self, n: usize) {
        wait_until(|| self.get() >= n, "drop count");
        assert_eq!(self.get(), n, "dropped more than once");
    }
}

pub struct DropToken(Arc<AtomicUsize>);

impl Drop for DropToken {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Waits until `cond` holds, polling it; fails the test after 10 s.
pub fn wait_until(cond: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// A future that is never ready; counts its polls.
pub struct Never {
    pub polls: Arc<AtomicUsize>,
    pub _token: Option<DropToken>,
}

impl Future for Never {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        Poll::Pending
    }
}

/// The OS name of the calling thread (workers and pool threads are named by the C library).
pub fn thread_comm() -> String {
    std::fs::read_to_string("/proc/thread-self/comm")
        .unwrap()
        .trim_end()
        .to_owned()
}

/// Wraps a future and counts how many times it was polled (to see budget-forced yields).
pub struct CountPolls<F> {
    pub polls: Arc<AtomicUsize>,
    pub future: Pin<Box<F>>,
}

impl<F: Future> Future for CountPolls<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        self.future.as_mut().poll(cx)
    }
}

pub fn count_polls<F: Future>(future: F) -> (Arc<AtomicUsize>, CountPolls<F>) {
    let polls = Arc::new(AtomicUsize::new(0));
    (
        polls.clone(),
        CountPolls {
            polls,
            future: Box::pin(future),
        },
    )
}
