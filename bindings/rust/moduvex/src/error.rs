//! `JoinError`, and the conversion of panics to and from the C form of a failure
//! (`mvx_context_fail` / `mvx_failure`).

use std::any::Any;
use std::ffi::{c_int, c_void, CStr, CString};
use std::fmt;
use std::io;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

use crate::sys;

/// A panic payload, as `std::panic::catch_unwind` returns it.
pub(crate) type Payload = Box<dyn Any + Send + 'static>;

/// Why a task did not produce its output: awaiting a [`JoinHandle`](crate::JoinHandle) yields
/// `Err(JoinError)` when the task was cancelled or panicked.
///
/// ```
/// let rt = moduvex::Runtime::new().unwrap();
/// let err = rt.block_on(rt.spawn(async { panic!("boom") })).unwrap_err();
/// assert!(err.is_panic());
/// assert_eq!(err.to_string(), "task panicked");
/// assert_eq!(*err.into_panic().downcast::<&str>().unwrap(), "boom");
/// ```
///
/// Either the task was cancelled ([`is_cancelled`](Self::is_cancelled): aborted with
/// [`JoinHandle::abort`](crate::JoinHandle::abort), or its runtime shut down before it
/// completed), or it panicked ([`is_panic`](Self::is_panic)). A panic's payload is the value the
/// panic was started with (a `&'static str` or a `String` for `panic!` with a message, anything
/// for `std::panic::panic_any`), moved out with [`into_panic`](Self::into_panic); pass it to
/// `std::panic::resume_unwind` to propagate the panic. A failure reported by C code through
/// `mvx_context_fail` without a Rust payload carries its message as a `String`.
///
/// `JoinError` is `Send + Sync`, as in tokio, so `handle.await?` converts into
/// `Box<dyn Error + Send + Sync>` (and `anyhow::Error`): the payload, which need only be `Send`,
/// is never reachable through a shared reference (only moved out by value), so sharing the
/// error between threads cannot share the payload.
pub struct JoinError {
    repr: Repr,
}

enum Repr {
    Cancelled,
    Panic(SyncWrapper),
}

/// A payload reachable only by value, or through `&` as a type that is itself `Sync`.
struct SyncWrapper(Payload);

// SAFETY: no `&SyncWrapper` method gives access to the payload except downcast_ref_sync, whose
// result type is `Sync`; everything else takes the wrapper by value. A `&JoinError` shared
// between threads therefore never lets two threads reach a non-Sync value (tokio's argument for
// its SyncWrapper).
unsafe impl Sync for SyncWrapper {}

impl SyncWrapper {
    fn downcast_ref_sync<T: std::any::Any + Sync>(&self) -> Option<&T> {
        self.0.downcast_ref::<T>()
    }
    /// The message of a `panic!` with one (`&'static str` and `String` are both `Sync`).
    fn message(&self) -> Option<&str> {
        if let Some(s) = self.downcast_ref_sync::<&'static str>() {
            Some(s)
        } else {
            self.downcast_ref_sync::<String>().map(String::as_str)
        }
    }
}

impl JoinError {
    pub(crate) fn cancelled() -> JoinError {
        JoinError {
            repr: Repr::Cancelled,
        }
    }

    pub(crate) fn panic(payload: Payload) -> JoinError {
        JoinError {
            repr: Repr::Panic(SyncWrapper(payload)),
        }
    }

    /// True if the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// True if the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// The panic payload.
    ///
    /// # Panics
    /// If the error is not a panic (see [`try_into_panic`](Self::try_into_panic)).
    #[track_caller]
    pub fn into_panic(self) -> Payload {
        self.try_into_panic()
            .expect("`JoinError` reason is not a panic.")
    }

    /// The panic payload, or the error itself if it is not a panic.
    pub fn try_into_panic(self) -> Result<Payload, JoinError> {
        match self.repr {
            Repr::Panic(p) => Ok(p.0),
            repr => Err(JoinError { repr }),
        }
    }
}

/// The message of a panic payload, if it has one (`panic!` with a message).
pub(crate) fn payload_message(p: &(dyn Any + Send)) -> Option<&str> {
    if let Some(s) = p.downcast_ref::<&'static str>() {
        Some(s)
    } else {
        p.downcast_ref::<String>().map(String::as_str)
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.repr {
            Repr::Cancelled => "task was cancelled",
            Repr::Panic(_) => "task panicked",
        })
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => f.write_str("JoinError::Cancelled"),
            Repr::Panic(p) => match p.message() {
                Some(msg) => write!(f, "JoinError::Panic({msg:?})"),
                None => f.write_str("JoinError::Panic(..)"),
            },
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for io::Error {
    fn from(e: JoinError) -> io::Error {
        let msg = match &e.repr {
            Repr::Cancelled => "task was cancelled".to_owned(),
            Repr::Panic(p) => match p.message() {
                Some(m) => format!("task panicked: {m}"),
                None => "task panicked".to_owned(),
            },
        };
        io::Error::other(msg)
    }
}

/// Drops a panic payload without letting a second panic (from the payload's own destructor)
/// escape: that one's payload is leaked. Used wherever an unwind must not go on (callbacks
/// called by C).
pub(crate) fn drop_quietly(p: Payload) {
    if let Err(again) = panic::catch_unwind(AssertUnwindSafe(move || drop(p))) {
        mem::forget(again);
    }
}

/// Runs `f`, which is called from C; a panic is caught and its payload dropped: nothing unwinds
/// into the library. For callbacks that have no way to report a failure (destructors, wakers).
#[inline]
pub(crate) fn guard(f: impl FnOnce()) {
    if let Err(p) = panic::catch_unwind(AssertUnwindSafe(f)) {
        drop_quietly(p);
    }
}

/// The code a Rust panic is reported with (the library's own "task panicked").
const PANIC_CODE: c_int = sys::MVX_EFAILED;

/// `payload_drop` of a Rust panic: `payload` is a `Box<Payload>` (a thin pointer to the fat one).
unsafe extern "C" fn drop_panic_payload(payload: *mut c_void) {
    // SAFETY: the library hands back exactly the pointer `report_panic` created with
    // Box::into_raw, once (header: payload_drop(payload) is called when nobody takes it).
    let boxed = unsafe { Box::from_raw(payload as *mut Payload) };
    drop_quietly(*boxed);
}

/// Describes a caught panic to the library; the poll then returns MVX_POLL_FAILED. The payload
/// travels boxed to whoever takes the failure from the join handle (see `take_panic`).
///
/// # Safety
/// `cx` is the context of the poll running on this thread.
pub(crate) unsafe fn report_panic(cx: *mut sys::mvx_context, payload: Payload) {
    let message = payload_message(&*payload).unwrap_or("Box<dyn Any>");
    // A message with a NUL is cut there (C strings end at the first NUL).
    let cut = message.split('\0').next().unwrap_or_default();
    let message = CString::new(cut).unwrap_or_default();
    let raw = Box::into_raw(Box::new(payload)) as *mut c_void;
    // SAFETY: cx is valid for this poll (caller's contract); the message is copied by the call;
    // the payload pointer and its destructor match (drop_panic_payload frees a Box<Payload>).
    let rc = unsafe {
        sys::mvx_context_fail(
            cx,
            PANIC_CODE,
            message.as_ptr(),
            raw,
            Some(drop_panic_payload),
        )
    };
    if rc != 0 {
        // Only for a NULL cx, and then the payload was not touched: it is still ours.
        // SAFETY: raw came from Box::into_raw above and the library did not keep it.
        unsafe { drop_panic_payload(raw) };
    }
}

/// An empty failure record for `mvx_join_take` / `mvx_block_on` to fill.
pub(crate) fn empty_failure() -> sys::mvx_failure {
    sys::mvx_failure {
        size: mem::size_of::<sys::mvx_failure>(),
        code: 0,
        message: ptr::null_mut(),
        payload: ptr::null_mut(),
        payload_drop: None,
    }
}

/// Turns a failure filled by the library back into a panic payload, and frees the record.
/// A Rust panic gives back its original payload; a failure described by C code (a code and a
/// message, no Rust payload) gives its message as a `String`.
///
/// # Safety
/// `f` was filled by `mvx_join_take` or `mvx_block_on` (returning MVX_EFAILED) and is not used
/// again except through this function.
pub(crate) unsafe fn take_panic(f: &mut sys::mvx_failure) -> Payload {
    // Comparing function addresses is reliable here: drop_panic_payload is one non-generic,
    // non-inline function. If the comparison ever failed, the payload would be freed by
    // mvx_failure_clear and the message used instead, which is safe.
    let ours = f.code == PANIC_CODE
        && !f.payload.is_null()
        && f.payload_drop.map(|d| d as *const ()) == Some(drop_panic_payload as *const ());
    let payload = if ours {
        let p = f.payload as *mut Payload;
        f.payload = ptr::null_mut();
        f.payload_drop = None;
        // SAFETY: a payload with our code and destructor was created by report_panic as a
        // Box<Payload>; nulling the record's pointer above hands it to us alone.
        *unsafe { Box::from_raw(p) }
    } else {
        let msg = if f.message.is_null() {
            "task failed".to_owned()
        } else {
            // SAFETY: the library's message is a NUL-terminated string owned by the record.
            unsafe { CStr::from_ptr(f.message) }
                .to_string_lossy()
                .into_owned()
        };
        Box::new(msg) as Payload
    };
    // SAFETY: f is a record filled by the library; this frees its message (and a foreign
    // payload we did not keep) exactly once and zeroes those fields.
    unsafe { sys::mvx_failure_clear(f) };
    payload
}
