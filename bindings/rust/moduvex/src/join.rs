//! `JoinHandle`: awaiting, aborting and detaching a task.

use std::ffi::c_void;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};

use crate::error::{empty_failure, take_panic, JoinError};
use crate::sys::{self, mvx_join_handle};
use crate::task::Output;
use crate::waker::{self, ForeignWaker};

/// The state of a JoinHandle, in one pointer: the live handle, `REFUSED` (the runtime refused the
/// spawn because it is shut down: resolves to `Cancelled`), or None once the outcome was returned.
type Raw = Option<NonNull<mvx_join_handle>>;

/// The sentinel of a refused spawn: the address of a static, which no library handle can have.
static REFUSED_SENTINEL: u8 = 0;

fn refused_ptr() -> NonNull<mvx_join_handle> {
    NonNull::from(&REFUSED_SENTINEL).cast()
}

enum Inner {
    Live(NonNull<mvx_join_handle>),
    Refused,
    Done,
}

/// An owned permission to await a task's output: a future resolving to `Ok(output)`, or to
/// `Err(JoinError)` if the task was cancelled or panicked.
///
/// Returned by [`Runtime::spawn`](crate::Runtime::spawn), [`spawn`](crate::spawn) and the
/// `spawn_blocking` functions.
///
/// - It can be awaited from anywhere: a moduvex task (the task's own waker is registered, no
///   allocation), another executor such as `futures::executor::block_on` or a tokio runtime (its
///   `Waker` is cloned once into the library as a foreign waker, and not again while the next
///   polls bring a waker that `will_wake` the registered one), or `Runtime::block_on`.
/// - Dropping it **detaches** the task: the task keeps running and its output is dropped when it
///   completes.
/// - [`abort`](Self::abort) requests cancellation; a task that completes first keeps its output.
///
/// `JoinHandle<T>` is `Send` and `Sync` when `T: Send`: the output moves to whichever thread
/// awaits it, and `&JoinHandle` only allows `abort` and `is_finished`, which the library allows
/// from any thread.
///
/// # Panics
/// Polling it again after it returned `Ready` panics.
pub struct JoinHandle<T> {
    /// See `Raw`; read through `inner()`. 16 bytes in all, as a task costs a handle per task.
    raw: Raw,
    /// Our reference on the foreign waker last registered with the library, to recognise it.
    foreign: Option<ForeignWaker>,
    _output: PhantomData<T>,
}

// SAFETY: the handle may be used by one thread at a time (it moves between threads with the
// JoinHandle), and what crosses threads is the output T, hence T: Send.
unsafe impl<T: Send> Send for JoinHandle<T> {}
// SAFETY: through &JoinHandle only mvx_join_abort and mvx_join_is_finished are reachable, which
// the library allows from any thread concurrently with the handle's user.
unsafe impl<T: Send> Sync for JoinHandle<T> {}
// The handle is a pointer: nothing in it is pinned.
impl<T> Unpin for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    pub(crate) fn from_raw(raw: NonNull<mvx_join_handle>) -> JoinHandle<T> {
        JoinHandle {
            raw: Some(raw),
            foreign: None,
            _output: PhantomData,
        }
    }

    pub(crate) fn refused() -> JoinHandle<T> {
        JoinHandle {
            raw: Some(refused_ptr()),
            foreign: None,
            _output: PhantomData,
        }
    }

    #[inline]
    fn inner(&self) -> Inner {
        match self.raw {
            Some(p) if p == refused_ptr() => Inner::Refused,
            Some(p) => Inner::Live(p),
            None => Inner::Done,
        }
    }

    /// Requests cancellation of the task. A task that is not running is dropped by a worker soon
    /// after; a running one right after its current poll returns pending; one that completes
    /// first keeps its output (awaiting the handle then gives `Ok`). Awaiting the handle of a
    /// cancelled task gives an `Err(JoinError)` whose `is_cancelled()` is true. Repeated calls are
    /// harmless.
    ///
    /// A `spawn_blocking` closure that already started cannot be stopped: it runs to the end, its
    /// output is dropped and the handle reports `Cancelled`.
    pub fn abort(&self) {
        if let Inner::Live(raw) = self.inner() {
            // SAFETY: raw is our live handle; mvx_join_abort may be called from any thread,
            // concurrently with the handle's user.
            unsafe { sys::mvx_join_abort(raw.as_ptr()) };
        }
    }

    /// True once the task has completed, panicked or been cancelled (its outcome may not have
    /// been awaited yet).
    pub fn is_finished(&self) -> bool {
        match self.inner() {
            // SAFETY: as abort.
            Inner::Live(raw) => unsafe { sys::mvx_join_is_finished(raw.as_ptr()) != 0 },
            Inner::Refused | Inner::Done => true,
        }
    }

    /// The raw handle, for use with `moduvex_sys` (still owned by this JoinHandle), or None once
    /// the outcome was returned or for a task the runtime refused.
    pub fn as_raw(&self) -> Option<NonNull<mvx_join_handle>> {
        match self.inner() {
            Inner::Live(raw) => Some(raw),
            _ => None,
        }
    }

    /// Registers the waker of `cx` and returns the outcome code of mvx_join_poll.
    #[inline]
    fn poll_raw(&mut self, raw: NonNull<mvx_join_handle>, cx: &Context<'_>) -> i32 {
        let w = cx.waker();
        let mvx = match waker::as_mvx_waker(w) {
            Some(ours) => {
                // The library holds its own clone of any foreign waker registered before.
                self.foreign = None;
                ours
            }
            None => {
                match &self.foreign {
                    Some(f) if f.will_wake(w) => {}
                    _ => self.foreign = Some(ForeignWaker::new(w.clone())),
                }
                self.foreign.as_ref().map(ForeignWaker::as_mvx).unwrap()
            }
        };
        // SAFETY: raw is our live handle, used by this thread only (&mut self); mvx is a valid
        // waker for the duration of the call (the library clones it to keep it).
        unsafe { sys::mvx_join_poll(raw.as_ptr(), &mvx) }
    }

    /// Moves the outcome out of a finished task and releases the handle.
    fn take(&mut self, raw: NonNull<mvx_join_handle>, rc: i32) -> Result<T, JoinError> {
        let result = match rc {
            0 => {
                let mut out = MaybeUninit::<OutputBuf<T>>::uninit();
                let ptr: *mut c_void = if Output::<T>::SIZE == 0 {
                    std::ptr::null_mut() // a zero-sized output has no bytes to copy
                } else {
                    out.as_mut_ptr() as *mut c_void
                };
                // SAFETY: the task completed; ptr has room and alignment for the output's
                // representation (OutputBuf is a union of T and Box<T>), or is NULL for size 0.
                let r = unsafe {
                    sys::mvx_join_take(raw.as_ptr(), ptr, Output::<T>::SIZE, std::ptr::null_mut())
                };
                assert_eq!(r, 0, "mvx_join_take of a completed task failed: {r}");
                // SAFETY: mvx_join_take copied the output's bytes into ptr and gave us ownership.
                Ok(unsafe { Output::<T>::read(ptr) })
            }
            sys::MVX_ECANCELLED => Err(JoinError::cancelled()),
            sys::MVX_EFAILED => {
                let mut failure = empty_failure();
                // SAFETY: the task failed; failure has its size set.
                let r = unsafe {
                    sys::mvx_join_take(raw.as_ptr(), std::ptr::null_mut(), 0, &mut failure)
                };
                assert_eq!(
                    r,
                    sys::MVX_EFAILED,
                    "mvx_join_take of a failed task returned {r}"
                );
                // SAFETY: failure was filled by mvx_join_take.
                Err(JoinError::panic(unsafe { take_panic(&mut failure) }))
            }
            other => panic!("mvx_join_poll returned {other}: {}", crate::last_error()),
        };
        self.raw = None;
        self.foreign = None;
        // SAFETY: raw is our handle and is not used after this.
        unsafe { sys::mvx_join_release(raw.as_ptr()) };
        result
    }
}

/// Room for an output slot's bytes: T inline or a Box<T>.
#[allow(dead_code)]
union OutputBuf<T> {
    inline: std::mem::ManuallyDrop<T>,
    boxed: std::mem::ManuallyDrop<Box<T>>,
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let raw = match this.inner() {
            Inner::Live(raw) => raw,
            Inner::Refused => {
                this.raw = None;
                return Poll::Ready(Err(JoinError::cancelled()));
            }
            Inner::Done => panic!("JoinHandle polled after completion"),
        };
        match this.poll_raw(raw, cx) {
            sys::MVX_EAGAIN => Poll::Pending,
            rc => Poll::Ready(this.take(raw, rc)),
        }
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Inner::Live(raw) = self.inner() {
            // SAFETY: our handle, released once; an unfinished task keeps running, detached,
            // and an output never taken is dropped by the library (output_drop).
            unsafe { sys::mvx_join_release(raw.as_ptr()) };
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}
