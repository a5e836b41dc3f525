//! `Handle` (a shareable reference to a runtime), `EnterGuard`, and which runtime is current.

use std::cell::RefCell;
use std::ffi::c_void;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::join::JoinHandle;
use crate::sys::{self, mvx_runtime};

/// The runtime's reference, shared by the `Runtime` and its handles; the last one gives it up.
pub(crate) struct Inner {
    pub(crate) raw: NonNull<mvx_runtime>,
    /// The thread hooks (a `Box<Hooks>`), freed with the runtime once no worker can call them.
    pub(crate) hooks: *mut c_void,
    pub(crate) hooks_drop: Option<unsafe fn(*mut c_void)>,
    /// Every worker has exited (the last shutdown returned 0): the hooks may go.
    pub(crate) clean: AtomicBool,
}

// SAFETY: every mvx_runtime function may be called from any thread (header conventions); the
// hooks are Send + Sync closures.
unsafe impl Send for Inner {}
// SAFETY: as Send.
unsafe impl Sync for Inner {}

/// Runtimes made by this binding, for Handle::current() from a runtime's own threads (the
/// library knows only the raw pointer). Weak: a handle keeps a runtime alive, the registry not.
static REGISTRY: Mutex<Vec<(usize, Weak<Inner>)>> = Mutex::new(Vec::new());

pub(crate) fn register(inner: &Arc<Inner>) {
    let mut r = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    r.push((inner.raw.as_ptr() as usize, Arc::downgrade(inner)));
}

fn lookup(raw: *mut mvx_runtime) -> Option<Arc<Inner>> {
    let r = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    r.iter()
        .find(|(p, _)| *p == raw as usize)
        .and_then(|(_, w)| w.upgrade())
}

struct SendPtr(
    NonNull<mvx_runtime>,
    *mut c_void,
    Option<unsafe fn(*mut c_void)>,
    bool,
);
// SAFETY: a runtime reference may be released from any thread but the runtime's own, which
// Drop for Inner ensures; the hooks are Send + Sync.
unsafe impl Send for SendPtr {}

impl Drop for Inner {
    fn drop(&mut self) {
        {
            let mut r = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
            let me = self.raw.as_ptr() as usize;
            r.retain(|(p, _)| *p != me);
        }
        let p = SendPtr(
            self.raw,
            self.hooks,
            self.hooks_drop,
            self.clean.load(Ordering::Acquire),
        );
        let run = move || {
            let p = p;
            // SAFETY: our reference, given up once, from a thread that is not the runtime's.
            unsafe { sys::mvx_runtime_release(p.0.as_ptr()) };
            if let (true, Some(d)) = (p.3, p.2) {
                // SAFETY: no worker is left to call the hooks (clean shutdown).
                unsafe { d(p.1) };
            }
        };
        on_other_thread(self.raw, run);
    }
}

/// Runs `f` here, or on a new thread when this is one of `rt`'s own threads (where shutting it
/// down or releasing it would wait for itself or answer MVX_EDEADLK).
pub(crate) fn on_other_thread(rt: NonNull<mvx_runtime>, f: impl FnOnce() + Send + 'static) {
    // SAFETY: no arguments; the result is only compared.
    if unsafe { sys::mvx_runtime_current() } != rt.as_ptr() {
        return f();
    }
    if let Err(e) = std::thread::Builder::new()
        .name("mvx-release".into())
        .spawn(f)
    {
        // Nothing else can do it without deadlocking: leak the reference.
        eprintln!("moduvex: cannot start a thread to shut down a runtime on its own thread: {e}");
    }
}

/// A handle to a runtime: spawn onto it, block on it, enter it, from any thread. `Clone`,
/// `Send` and `Sync`; it keeps the runtime's memory alive but not the runtime running: once the
/// `Runtime` is dropped (shut down), spawning through a handle gives handles that resolve to a
/// cancelled `JoinError`.
#[derive(Clone)]
pub struct Handle {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("worker_threads", &self.worker_threads())
            .finish()
    }
}

thread_local! {
    /// Handles entered on this thread (Runtime::enter, Handle::enter), innermost last.
    static ENTERED: RefCell<Vec<(u64, Handle)>> = const { RefCell::new(Vec::new()) };
    /// Tells guards apart (their handles may be the same runtime).
    static NEXT_GUARD: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The raw runtime entered on this thread (innermost guard), if any.
pub(crate) fn entered_raw() -> Option<NonNull<mvx_runtime>> {
    ENTERED
        .try_with(|e| e.borrow().last().map(|(_, h)| h.inner.raw))
        .ok()
        .flatten()
}

/// Why [`Handle::try_current`] found no runtime.
pub struct TryCurrentError {
    destroyed: bool,
}

impl TryCurrentError {
    /// True: no runtime is current on this thread.
    pub fn is_missing_context(&self) -> bool {
        !self.destroyed
    }

    /// True: the thread-local that records it was already destroyed (thread exit).
    pub fn is_thread_local_destroyed(&self) -> bool {
        self.destroyed
    }
}

const NO_RUNTIME: &str =
    "there is no reactor running, must be called from the context of a moduvex runtime";

impl fmt::Debug for TryCurrentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.destroyed {
            "TryCurrentError::ThreadLocalDestroyed"
        } else {
            "TryCurrentError::NoContext"
        })
    }
}

impl fmt::Display for TryCurrentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.destroyed {
            "The moduvex context thread-local variable has been destroyed."
        } else {
            NO_RUNTIME
        })
    }
}

impl std::error::Error for TryCurrentError {}

impl Handle {
    /// The handle of the current runtime: the innermost one entered on this thread
    /// ([`Runtime::enter`](crate::Runtime::enter), [`Handle::enter`]), else the one running
    /// the calling task, `block_on` future or blocking closure.
    ///
    /// # Panics
    /// Outside of a runtime, with tokio's message shape: "there is no reactor running, must be
    /// called from the context of a moduvex runtime".
    #[track_caller]
    pub fn current() -> Handle {
        match Handle::try_current() {
            Ok(h) => h,
            Err(e) => panic!("{e}"),
        }
    }

    /// As [`current`](Self::current), or an error instead of the panic.
    pub fn try_current() -> Result<Handle, TryCurrentError> {
        let entered = ENTERED
            .try_with(|e| e.borrow().last().map(|(_, h)| h.clone()))
            .map_err(|_| TryCurrentError { destroyed: true })?;
        if let Some(h) = entered {
            return Ok(h);
        }
        // SAFETY: no arguments; a borrowed pointer or NULL.
        let raw = unsafe { sys::mvx_runtime_current() };
        if raw.is_null() {
            return Err(TryCurrentError { destroyed: false });
        }
        lookup(raw)
            .map(|inner| Handle { inner })
            .ok_or(TryCurrentError { destroyed: false })
    }

    /// Makes this runtime the current one on this thread until the guard is dropped:
    /// `moduvex::spawn`, `Handle::current()` and `LocalSet` then use it. Guards nest, and must
    /// be dropped in the reverse order (else the drop panics, as tokio's).
    pub fn enter(&self) -> EnterGuard<'_> {
        let token = NEXT_GUARD.with(|n| n.replace(n.get() + 1));
        ENTERED.with(|e| e.borrow_mut().push((token, self.clone())));
        EnterGuard {
            token,
            _handle: PhantomData,
        }
    }

    /// Spawns a task on this runtime (see [`Runtime::spawn`](crate::Runtime::spawn)).
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // SAFETY: the runtime is alive (our reference); the bounds make F safe on any thread.
        unsafe { super::spawn_on(self.inner.raw.as_ptr(), future, sys::mvx_spawn) }
    }

    /// Runs `f` on this runtime's blocking pool (see
    /// [`Runtime::spawn_blocking`](crate::Runtime::spawn_blocking)).
    #[track_caller]
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        // SAFETY: as spawn.
        unsafe {
            super::spawn_on(
                self.inner.raw.as_ptr(),
                super::Blocking(Some(f)),
                sys::mvx_spawn_blocking,
            )
        }
    }

    /// Runs `future` to completion on the calling thread (see
    /// [`Runtime::block_on`](crate::Runtime::block_on)). Inside
    /// [`block_in_place`](crate::task::block_in_place) on a worker it works too.
    ///
    /// # Panics
    /// As `Runtime::block_on`: from a worker thread of this runtime (outside `block_in_place`).
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        super::block_on_raw(self.inner.raw, future)
    }

    /// The number of worker threads.
    pub fn worker_threads(&self) -> usize {
        // SAFETY: our live runtime.
        unsafe { sys::mvx_runtime_worker_count(self.inner.raw.as_ptr()) as usize }
    }
}

/// Keeps a runtime current on this thread ([`Runtime::enter`](crate::Runtime::enter),
/// [`Handle::enter`]); `!Send`, as it belongs to the thread.
#[must_use = "dropping the guard leaves the runtime at once"]
pub struct EnterGuard<'a> {
    token: u64,
    _handle: PhantomData<(&'a Handle, *const ())>,
}

impl fmt::Debug for EnterGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnterGuard").finish_non_exhaustive()
    }
}

impl Drop for EnterGuard<'_> {
    fn drop(&mut self) {
        let in_order = ENTERED
            .try_with(|e| {
                let mut e = e.borrow_mut();
                let in_order = e.last().map(|(t, _)| *t) == Some(self.token);
                e.retain(|(t, _)| *t != self.token); // leave the runtime either way
                in_order
            })
            .unwrap_or(true);
        if !in_order && !std::thread::panicking() {
            panic!(
                "`EnterGuard` values dropped out of order. Guards returned by \
                 `moduvex::runtime::Handle::enter()` must be dropped in the reverse order as \
                 they were acquired."
            );
        }
    }
}
