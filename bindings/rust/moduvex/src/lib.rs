//! Spawn and await Rust futures on **moduvex**, the multithreaded async task runtime written in
//! C (`libmoduvex.so.1`), with tokio's shapes:
//!
//! ```
//! use moduvex::{JoinError, Runtime};
//!
//! let rt = Runtime::builder().worker_threads(2).thread_name("app").build().unwrap();
//! let sum = rt.block_on(async {
//!     let a = moduvex::spawn(async { 20 });
//!     let b = moduvex::spawn_blocking(|| 22); // on the blocking pool
//!     a.await.unwrap() + b.await.unwrap()
//! });
//! assert_eq!(sum, 42);
//!
//! let failed = rt.spawn(async { panic!("boom") });
//! match rt.block_on(failed) {
//!     Err(e) if e.is_panic() => {
//!         assert_eq!(*e.into_panic().downcast::<&str>().unwrap(), "boom")
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//! ```
//!
//! # How a future becomes a task
//! Each future type gets a static `mvx_task_vtable` (built at compile time); spawning copies the
//! future into the task's single allocation (header, future, output), which is a Rust move, and
//! the library polls it there on a worker thread. The poll wraps `Future::poll` in
//! `catch_unwind`: a panic becomes the library's task failure (`mvx_context_fail`) carrying the
//! boxed payload, and the [`JoinHandle`] turns it back into a panic [`JoinError`] with the
//! original payload. No unwind ever crosses into C.
//!
//! The task's waker becomes a `std::task::Waker` without allocating (its data is the task
//! pointer); a [`JoinHandle`] awaited under another executor registers that executor's `Waker`
//! with the library, so handles can be awaited anywhere: in moduvex tasks, in
//! `futures::executor::block_on`, in a tokio runtime.
//!
//! # Destructors that panic
//! A panic in a future's destructor (when its task completes, panics or is cancelled), in an
//! output's destructor (an output nobody awaited), or in another executor's `Waker` called by the
//! library is caught and dropped (std's panic hook has reported it): it does not change the
//! task's outcome, and it does not unwind into C. A panic payload whose own destructor panics is
//! leaked.
//!
//! # Threads
//! Futures given to [`Runtime::spawn`] and [`spawn`] are polled on the worker threads, so they and
//! their outputs must be `Send + 'static`; [`Runtime::block_on`] polls on the calling thread and
//! takes any future. The bounds are checked at compile time:
//!
//! ```compile_fail,E0277
//! let rt = moduvex::Runtime::new().unwrap();
//! let not_send = std::rc::Rc::new(1);
//! rt.spawn(async move { *not_send }); // error: `Rc<i32>` cannot be sent between threads
//! ```
//!
//! ```compile_fail,E0277
//! fn needs_send<T: Send>(_: &T) {}
//! fn check(h: moduvex::JoinHandle<std::rc::Rc<u8>>) {
//!     needs_send(&h); // error: JoinHandle<T> is Send only if T is
//! }
//! ```
//!
//! while `block_on` accepts what never leaves the calling thread:
//!
//! ```
//! let rt = moduvex::Runtime::new().unwrap();
//! let local = std::rc::Rc::new(std::cell::Cell::new(0));
//! rt.block_on(async { local.set(local.get() + 1) });
//! assert_eq!(local.get(), 1);
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

mod error;
mod join;
mod runtime;
mod task;
pub mod time;
mod waker;
mod yield_now;

use std::ffi::CStr;
use std::future::Future;

pub use error::JoinError;
pub use join::JoinHandle;
pub use runtime::{Builder, Runtime};
pub use yield_now::{yield_now, YieldNow};

/// The raw declarations of `moduvex.h` (the `moduvex-sys` crate).
pub use moduvex_sys as sys;

/// The runtime of the task (or `block_on` future, or blocking closure) running on this thread.
#[track_caller]
fn current(what: &str) -> *mut sys::mvx_runtime {
    // SAFETY: no arguments; returns a borrowed pointer or NULL.
    let rt = unsafe { sys::mvx_runtime_current() };
    if rt.is_null() {
        panic!(
            "{what} called outside of a moduvex runtime: call it from a task, a \
             Runtime::block_on future or a spawn_blocking closure, or use Runtime::{what}"
        );
    }
    rt
}

/// Spawns a task on the current runtime: the one running the calling task (a worker's task, a
/// [`Runtime::block_on`] future or a blocking closure). See [`Runtime::spawn`].
///
/// # Panics
/// When called outside of a moduvex runtime.
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let rt = current("spawn");
    // SAFETY: rt is the live runtime running this thread's task (it cannot go away while the
    // task runs); the bounds make F safe to run on any worker.
    unsafe { runtime::spawn_on(rt, future, sys::mvx_spawn) }
}

/// Runs `f` on the current runtime's blocking pool. See [`Runtime::spawn_blocking`].
///
/// # Panics
/// When called outside of a moduvex runtime.
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let rt = current("spawn_blocking");
    // SAFETY: as spawn.
    unsafe { runtime::spawn_on(rt, runtime::Blocking(Some(f)), sys::mvx_spawn_blocking) }
}

/// The library's message about the last failed call on this thread.
pub(crate) fn last_error() -> String {
    // SAFETY: returns a NUL-terminated string owned by the thread, never NULL; copied at once.
    unsafe { CStr::from_ptr(sys::mvx_last_error()) }
        .to_string_lossy()
        .into_owned()
}
