//! `task::block_in_place`, over `mvx_block_in_place`.

use std::ffi::c_void;
use std::panic::{self, AssertUnwindSafe};
use std::thread;

use crate::sys;

/// Runs the blocking closure `f` on the current thread without holding up the other tasks of
/// its worker: the worker, with its queued tasks, is first handed to a substitute thread (from
/// the blocking pool) that runs them while `f` blocks, also with a single worker thread; when
/// `f` returns the thread takes its worker back and the calling task carries on. Inside `f` the
/// thread is no worker: `Handle::current()`, `moduvex::spawn` and `Handle::block_on` work there,
/// and it may wait for other tasks.
///
/// Outside of a worker (a plain thread, a `spawn_blocking` closure, inside another
/// `block_in_place`) it just runs `f`. A panic in `f` is resumed here once the worker is back.
///
/// ```
/// let rt = moduvex::Runtime::builder().worker_threads(1).build().unwrap();
/// let n = rt.block_on(rt.spawn(async {
///     let other = moduvex::spawn(async { 21 });
///     // the only worker blocks here, yet `other` runs meanwhile:
///     moduvex::task::block_in_place(|| moduvex::runtime::Handle::current().block_on(other))
/// }));
/// assert_eq!(n.unwrap().unwrap(), 21);
/// ```
///
/// # Panics
/// Inside a [`LocalSet`](crate::task::LocalSet) or a `block_on` future, whose tasks cannot move
/// to another thread, with tokio's message (`f` does not run). tokio's multi-thread `block_on`
/// allows it; moduvex's `block_on` drives a local set, so it does not.
#[track_caller]
pub fn block_in_place<F, R>(f: F) -> R
where
    F: FnOnce() -> R,
{
    struct Call<F, R> {
        f: Option<F>,
        out: Option<thread::Result<R>>,
    }
    unsafe extern "C" fn trampoline<F: FnOnce() -> R, R>(arg: *mut c_void) {
        // SAFETY: arg is the &mut Call below, alive for the whole mvx_block_in_place call, which
        // calls us at most once on this thread.
        let call = unsafe { &mut *(arg as *mut Call<F, R>) };
        if let Some(f) = call.f.take() {
            // No unwind into C: the panic is carried out and resumed by block_in_place.
            call.out = Some(panic::catch_unwind(AssertUnwindSafe(f)));
        }
    }
    let mut call = Call {
        f: Some(f),
        out: None,
    };
    // SAFETY: the trampoline matches Call<F, R>; the pointer is valid during the call.
    let rc = unsafe {
        sys::mvx_block_in_place(
            Some(trampoline::<F, R>),
            &mut call as *mut Call<F, R> as *mut c_void,
        )
    };
    match (rc, call.out) {
        (0, Some(Ok(r))) => r,
        (0, Some(Err(p))) => panic::resume_unwind(p),
        (sys::MVX_EPERM, _) => {
            panic!("can call blocking only when running on the multi-threaded runtime")
        }
        (rc, _) => panic!("mvx_block_in_place failed ({rc}): {}", crate::last_error()),
    }
}
