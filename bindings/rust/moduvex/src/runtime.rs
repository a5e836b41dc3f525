//! `Runtime` and its `Builder`, and spawning onto a runtime.

use std::ffi::{c_int, c_uint, CString};
use std::fmt;
use std::future::Future;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::panic;
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::error::{empty_failure, take_panic};
use crate::join::JoinHandle;
use crate::sys::{self, mvx_runtime};
use crate::task::{Output, Prepared, Task};

/// A moduvex runtime: worker threads running tasks (with work stealing), plus a pool of threads
/// for blocking work. Created with [`Runtime::new`] or [`Runtime::builder`].
///
/// Dropping it shuts it down: spawning is refused from then on (the new handle resolves to
/// a cancelled `JoinError`), every task that is not running is cancelled (its future dropped,
/// exactly once), the drop waits for the polls and blocking closures still running, and the
/// futures of those polls are dropped as soon as they return pending. Join handles may outlive
/// the runtime: they then resolve to their task's output, panic or cancellation.
///
/// The runtime is `Send` and `Sync`: share it by reference (or in an `Arc`) to spawn from any
/// thread.
pub struct Runtime {
    raw: NonNull<mvx_runtime>,
}

// SAFETY: every mvx_runtime function may be called from any thread, concurrently (header
// conventions); the Runtime owns one reference, released once in drop.
unsafe impl Send for Runtime {}
// SAFETY: as Send: &Runtime only spawns and reads the worker count, which any thread may do.
unsafe impl Sync for Runtime {}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("worker_threads", &self.worker_threads())
            .finish()
    }
}

/// Settings of a new [`Runtime`] (tokio's `Builder` shapes):
/// `Runtime::builder().worker_threads(4).thread_name("app").build()`.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    worker_threads: Option<usize>,
    thread_name: Option<String>,
    thread_stack_size: Option<usize>,
    max_blocking_threads: Option<usize>,
    thread_keep_alive: Option<Duration>,
}

impl Builder {
    /// The defaults: one worker per available CPU (cgroup quota respected), workers named
    /// `mvx-worker-<index>`, the system's stack size, up to 512 blocking threads kept alive 10 s.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// The number of worker threads (at most 1024).
    ///
    /// # Panics
    /// If `n` is 0.
    #[track_caller]
    pub fn worker_threads(&mut self, n: usize) -> &mut Self {
        assert!(n > 0, "worker_threads must be at least 1");
        self.worker_threads = Some(n);
        self
    }

    /// The name prefix of the threads: workers are named `<name>-<index>` and blocking threads
    /// `<name>-blk`, cut to 15 bytes by the OS.
    pub fn thread_name(&mut self, name: impl Into<String>) -> &mut Self {
        self.thread_name = Some(name.into());
        self
    }

    /// The stack size of worker threads, in bytes.
    pub fn thread_stack_size(&mut self, bytes: usize) -> &mut Self {
        self.thread_stack_size = Some(bytes);
        self
    }

    /// The most threads the blocking pool starts (then jobs queue).
    ///
    /// # Panics
    /// If `n` is 0.
    #[track_caller]
    pub fn max_blocking_threads(&mut self, n: usize) -> &mut Self {
        assert!(n > 0, "max_blocking_threads must be at least 1");
        self.max_blocking_threads = Some(n);
        self
    }

    /// How long an idle blocking thread waits for a job before it exits.
    pub fn thread_keep_alive(&mut self, d: Duration) -> &mut Self {
        self.thread_keep_alive = Some(d);
        self
    }

    /// Creates the runtime and starts its worker threads.
    ///
    /// Errors: `InvalidInput` for a bad setting (a thread name containing NUL, more than 1024
    /// workers, a stack below the system minimum), `OutOfMemory`, or `Other` when a thread could
    /// not be started (nothing is left running). The message is the library's.
    pub fn build(&mut self) -> io::Result<Runtime> {
        // SAFETY: all-zero is a valid mvx_runtime_config (integers, NULL pointers, None
        // callbacks), and config_init fills it anyway.
        let mut cfg: sys::mvx_runtime_config = unsafe { std::mem::zeroed() };
        // SAFETY: cfg is a writable mvx_runtime_config of the size we pass.
        check(unsafe {
            sys::mvx_runtime_config_init(&mut cfg, size_of::<sys::mvx_runtime_config>())
        })?;
        if let Some(n) = self.worker_threads {
            cfg.worker_threads = c_uint::try_from(n).unwrap_or(c_uint::MAX);
        }
        let name = match &self.thread_name {
            Some(name) => Some(CString::new(name.as_str()).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "thread_name contains a NUL byte",
                )
            })?),
            None => None,
        };
        if let Some(name) = &name {
            cfg.thread_name = name.as_ptr(); // copied by mvx_runtime_new
        }
        if let Some(bytes) = self.thread_stack_size {
            cfg.stack_size = bytes;
        }
        if let Some(n) = self.max_blocking_threads {
            cfg.max_blocking_threads = c_uint::try_from(n).unwrap_or(c_uint::MAX);
        }
        if let Some(d) = self.thread_keep_alive {
            // 0 would mean "the default"; keep a zero keep-alive as short as possible.
            cfg.blocking_keep_alive_ns = duration_ns(d).max(1);
        }
        let mut raw = ptr::null_mut();
        // SAFETY: cfg is initialised and its name outlives the call; raw receives the runtime.
        check(unsafe { sys::mvx_runtime_new(&cfg, &mut raw) })?;
        crate::waker::task_vtable(); // look the task-waker vtable up once, off the hot paths
        Ok(Runtime {
            raw: NonNull::new(raw).expect("mvx_runtime_new returned NULL"),
        })
    }
}

fn duration_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// An io::Error for a failed library call, with the library's message.
fn check(rc: c_int) -> io::Result<()> {
    if rc == 0 {
        return Ok(());
    }
    let kind = match rc {
        sys::MVX_EINVAL => io::ErrorKind::InvalidInput,
        sys::MVX_ENOMEM => io::ErrorKind::OutOfMemory,
        _ => io::ErrorKind::Other,
    };
    Err(io::Error::new(kind, crate::last_error()))
}

impl Runtime {
    /// A runtime with the default settings ([`Builder::new`]).
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    /// A builder for a runtime with other settings.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Spawns a task running `future` on the worker threads and returns its handle.
    ///
    /// From a task of this runtime the task goes to the current worker's queue, from anywhere
    /// else to the global queue. The future and its output must be `Send + 'static`: they may be
    /// polled and dropped on any worker. One allocation per task: the future is moved into the
    /// task itself (boxed only when larger than about 16 kB or aligned above 16).
    ///
    /// If the runtime is shut down, the future is dropped at once and the handle resolves to
    /// a cancelled `JoinError`.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // SAFETY: self.raw is a live runtime; the bounds make F safe to run on any thread.
        unsafe { spawn_on(self.raw.as_ptr(), future, sys::mvx_spawn) }
    }

    /// Runs `f` on the blocking pool, threads apart from the workers, for code that blocks (file
    /// I/O, locks, long computations), and returns its handle. A panic in `f` reaches the handle
    /// as a panic `JoinError`. Aborting the handle cancels `f` if it has not started yet.
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        // SAFETY: as spawn; a blocking task is polled exactly once, which Blocking expects.
        unsafe {
            spawn_on(
                self.raw.as_ptr(),
                Blocking(Some(f)),
                sys::mvx_spawn_blocking,
            )
        }
    }

    /// Runs `future` to completion on the calling thread and returns its output, while the
    /// workers run everything else (tasks it spawns go to the workers).
    ///
    /// The future need not be `Send` or `'static`: it is polled and dropped on this thread only,
    /// before `block_on` returns. Inside it, [`spawn`](crate::spawn) spawns on this runtime.
    ///
    /// # Panics
    /// - If the future panics: the panic is resumed here with its original payload.
    /// - If called from a worker thread of this runtime (the worker would wait for itself;
    ///   `.await` instead), or if the runtime is (or gets) shut down before the future completes.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let mut state = Prepared::new(future);
        let mut out = MaybeUninit::<BlockOnBuf<F::Output>>::uninit();
        let out_ptr = if Output::<F::Output>::SIZE == 0 {
            ptr::null_mut()
        } else {
            out.as_mut_ptr() as *mut std::ffi::c_void
        };
        let mut failure = empty_failure();
        // SAFETY: self.raw is live; the vtable is Task<F>'s static one; state and out_ptr are
        // valid for the call; failure has its size set. mvx_block_on polls and drops the future
        // on this thread only, before it returns, so neither Send nor 'static is needed.
        let rc = unsafe {
            sys::mvx_block_on(
                self.raw.as_ptr(),
                &Task::<F>::VTABLE,
                state.state(),
                out_ptr,
                Output::<F::Output>::SIZE,
                &mut failure,
            )
        };
        match rc {
            0 => {
                state.consumed();
                // SAFETY: the output was moved into out_ptr and is ours.
                unsafe { Output::<F::Output>::read(out_ptr) }
            }
            sys::MVX_EFAILED => {
                state.consumed();
                // SAFETY: failure was filled by mvx_block_on.
                panic::resume_unwind(unsafe { take_panic(&mut failure) })
            }
            sys::MVX_ECANCELLED => {
                state.consumed();
                panic!("Runtime::block_on: the runtime was shut down before the future completed")
            }
            // The remaining codes come before the task exists: the future is still ours.
            sys::MVX_EDEADLK => {
                drop(state.into_inner());
                panic!(
                    "Runtime::block_on called from a worker thread of the same runtime, which \
                     would wait for itself; use .await inside tasks"
                )
            }
            sys::MVX_ESHUTDOWN => {
                drop(state.into_inner());
                panic!("Runtime::block_on: the runtime is shut down")
            }
            other => {
                drop(state.into_inner());
                panic!("mvx_block_on failed ({other}): {}", crate::last_error())
            }
        }
    }

    /// Shuts the runtime down, waiting at most `timeout` for polls and blocking closures that
    /// are still running (they are left to finish on their own; their futures are dropped when
    /// their poll returns pending). Every task that is not running is cancelled at once.
    ///
    /// Called on one of this runtime's own threads (see [`Drop`](#impl-Drop-for-Runtime)), it
    /// cannot wait for itself: the shutdown is handed to a new thread and this returns at once.
    pub fn shutdown_timeout(self, timeout: Duration) {
        let raw = SendPtr(self.raw);
        std::mem::forget(self); // the reference goes to release() below
        release(raw, Some(timeout));
    }

    /// Shuts the runtime down without waiting for running polls or blocking closures
    /// (`shutdown_timeout(Duration::ZERO)`).
    pub fn shutdown_background(self) {
        self.shutdown_timeout(Duration::ZERO)
    }

    /// The number of worker threads.
    pub fn worker_threads(&self) -> usize {
        // SAFETY: our live runtime.
        unsafe { sys::mvx_runtime_worker_count(self.raw.as_ptr()) as usize }
    }

    /// The raw runtime, for use with `moduvex_sys` (still owned by this Runtime).
    pub fn as_raw(&self) -> NonNull<mvx_runtime> {
        self.raw
    }
}

/// Dropping the runtime shuts it down (see [`Runtime`]) and waits for the polls and blocking
/// closures still running.
///
/// On one of this runtime's own threads (inside one of its tasks, its blocking closures or its
/// `block_on` future, e.g. when the last `Arc<Runtime>` goes there), the shutdown cannot wait for
/// the caller: it is handed to a new thread, which shuts the runtime down and waits for the
/// caller's poll or closure to return.
impl Drop for Runtime {
    fn drop(&mut self) {
        release(SendPtr(self.raw), None);
    }
}

struct SendPtr(NonNull<mvx_runtime>);
// SAFETY: a runtime reference may be released from any thread but the runtime's workers, which
// is what release() ensures.
unsafe impl Send for SendPtr {}

/// Shuts the runtime down (with `timeout`, or unbounded inside mvx_runtime_release) and gives up
/// the reference, from a helper thread when the caller is one of the runtime's own threads:
/// there the library answers MVX_EDEADLK (workers) or waits for itself forever (blocking pool).
fn release(rt: SendPtr, timeout: Option<Duration>) {
    // SAFETY: no arguments; the result is only compared.
    let own_thread = unsafe { sys::mvx_runtime_current() } == rt.0.as_ptr();
    let run = move || {
        let rt = rt;
        if let Some(t) = timeout {
            // SAFETY: our live reference, and this is not one of its workers (the helper thread,
            // or a thread that is none of this runtime's).
            unsafe { sys::mvx_runtime_shutdown(rt.0.as_ptr(), duration_ns(t)) };
        }
        // SAFETY: our reference, given up exactly once.
        unsafe { sys::mvx_runtime_release(rt.0.as_ptr()) };
    };
    if !own_thread {
        return run();
    }
    if let Err(e) = std::thread::Builder::new()
        .name("mvx-release".into())
        .spawn(run)
    {
        // Nothing else can shut it down without deadlocking: leak the reference.
        eprintln!(
            "moduvex: cannot start a thread to shut down a runtime dropped on its own thread: {e}"
        );
    }
}

/// Room for block_on's output: F::Output inline or boxed (see task::Output).
#[allow(dead_code)]
union BlockOnBuf<T> {
    inline: std::mem::ManuallyDrop<T>,
    boxed: std::mem::ManuallyDrop<Box<T>>,
}

type SpawnFn = unsafe extern "C" fn(
    *mut mvx_runtime,
    *const sys::mvx_task_vtable,
    *mut std::ffi::c_void,
    *mut *mut sys::mvx_join_handle,
) -> c_int;

/// Spawns `future` with `spawn_fn` (mvx_spawn or mvx_spawn_blocking).
///
/// # Safety
/// `rt` is a live runtime. `F` and its output may be sent to other threads unless the caller
/// knows otherwise (the public functions require Send + 'static).
#[inline]
pub(crate) unsafe fn spawn_on<F: Future>(
    rt: *mut mvx_runtime,
    future: F,
    spawn_fn: SpawnFn,
) -> JoinHandle<F::Output> {
    let mut state = Prepared::new(future);
    let mut jh = ptr::null_mut();
    // SAFETY: rt is live (caller); the vtable is Task<F>'s static one; the state pointer is
    // valid for the call, and on success its bytes belong to the task (consumed below).
    let rc = unsafe { spawn_fn(rt, &Task::<F>::VTABLE, state.state(), &mut jh) };
    if rc == 0 {
        state.consumed();
        // SAFETY: on success mvx_spawn* set jh to a valid handle that we now own.
        return JoinHandle::from_raw(unsafe { NonNull::new_unchecked(jh) });
    }
    // Nothing was spawned: the future is still ours (header: mvx_spawn).
    drop(state.into_inner());
    match rc {
        sys::MVX_ESHUTDOWN => JoinHandle::refused(),
        sys::MVX_ENOMEM => panic!("moduvex: out of memory spawning a task"),
        _ => panic!(
            "moduvex: spawning a task failed ({rc}): {}",
            crate::last_error()
        ),
    }
}

/// The task of a `spawn_blocking` closure: polled once, on a blocking-pool thread.
pub(crate) struct Blocking<F>(pub(crate) Option<F>);

impl<F: FnOnce() -> R, R> Future for Blocking<F> {
    type Output = R;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<R> {
        // SAFETY: the closure is never pinned: it is moved out, not polled in place.
        let this = unsafe { self.get_unchecked_mut() };
        let f = this
            .0
            .take()
            .expect("blocking task polled after completion");
        Poll::Ready(f())
    }
}
