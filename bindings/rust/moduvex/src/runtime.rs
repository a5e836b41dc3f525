//! `Runtime` and its `Builder`, `Handle` and `EnterGuard`, and spawning onto a runtime.

mod handle;

pub(crate) use handle::entered_raw;
pub use handle::{EnterGuard, Handle, TryCurrentError};

use std::ffi::{c_int, c_uint, c_void, CString};
use std::fmt;
use std::future::Future;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::panic;
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::error::{empty_failure, guard, take_panic};
use crate::join::JoinHandle;
use crate::raw_task::{Output, Prepared, Task};
use crate::sys::{self, mvx_runtime};
use crate::task::{next_id, Tracked};

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
    /// Taken out by drop and shutdown_timeout only.
    handle: std::mem::ManuallyDrop<Handle>,
}

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
    global_queue_interval: Option<u32>,
    event_interval: Option<u32>,
    disable_lifo_slot: bool,
    on_thread_start: Option<Hook>,
    on_thread_stop: Option<Hook>,
}

/// A thread hook.
#[derive(Clone)]
struct Hook(Arc<dyn Fn() + Send + Sync + 'static>);

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fn()")
    }
}

/// What the library's hook_data points at.
struct Hooks {
    start: Option<Hook>,
    stop: Option<Hook>,
}

unsafe extern "C" fn hook_start(data: *mut c_void, _worker: c_uint) {
    // SAFETY: data is the Box<Hooks> of this runtime, alive while any worker is (Inner).
    let hooks = unsafe { &*(data as *const Hooks) };
    if let Some(h) = &hooks.start {
        guard(|| (h.0)()); // a panic must not unwind into C
    }
}

unsafe extern "C" fn hook_stop(data: *mut c_void, _worker: c_uint) {
    // SAFETY: as hook_start.
    let hooks = unsafe { &*(data as *const Hooks) };
    if let Some(h) = &hooks.stop {
        guard(|| (h.0)());
    }
}

unsafe fn drop_hooks(data: *mut c_void) {
    // SAFETY: the Box<Hooks> made in build(), freed once, when no worker can call it.
    drop(unsafe { Box::from_raw(data as *mut Hooks) });
}

impl Builder {
    /// The defaults: one worker per available CPU (cgroup quota respected), workers named
    /// `mvx-worker-<index>`, the system's stack size, up to 512 blocking threads kept alive 10 s.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// tokio's name for the same (moduvex has one kind of runtime: multi-threaded).
    pub fn new_multi_thread() -> Builder {
        Builder::default()
    }

    /// Accepted for tokio code; does nothing (no I/O driver yet).
    pub fn enable_all(&mut self) -> &mut Self {
        self
    }

    /// Runs `f` on each worker thread before it runs any task (tokio runs it on blocking-pool
    /// threads too; moduvex's pool threads do not run it). A panic in `f` is caught and dropped.
    pub fn on_thread_start<F: Fn() + Send + Sync + 'static>(&mut self, f: F) -> &mut Self {
        self.on_thread_start = Some(Hook(Arc::new(f)));
        self
    }

    /// Runs `f` on each worker thread after it ran its last task (worker threads only, as
    /// [`on_thread_start`](Self::on_thread_start)).
    pub fn on_thread_stop<F: Fn() + Send + Sync + 'static>(&mut self, f: F) -> &mut Self {
        self.on_thread_stop = Some(Hook(Arc::new(f)));
        self
    }

    /// How many polls a worker runs between looks at the global queue (tasks spawned or woken
    /// from outside the workers) before its own queue: lower is fairer to those, higher keeps
    /// more work local. Default 31 (tokio's default is 31 too, or adaptive in later versions).
    ///
    /// # Panics
    /// If `n` is 0.
    #[track_caller]
    pub fn global_queue_interval(&mut self, n: u32) -> &mut Self {
        assert!(n > 0, "global_queue_interval must be greater than 0");
        self.global_queue_interval = Some(n);
        self
    }

    /// Accepted for tokio code and otherwise ignored: tokio polls its I/O and timer drivers
    /// every `n` ticks; moduvex has no I/O driver, and its timers do not depend on the workers'
    /// ticks.
    ///
    /// # Panics
    /// If `n` is 0.
    #[track_caller]
    pub fn event_interval(&mut self, n: u32) -> &mut Self {
        assert!(n > 0, "event_interval must be greater than 0");
        self.event_interval = Some(n);
        self
    }

    /// Sends a task spawned or woken on a worker to the back of that worker's queue, instead of
    /// the LIFO slot from which it would run next (as tokio's `disable_lifo_slot`).
    pub fn disable_lifo_slot(&mut self) -> &mut Self {
        self.disable_lifo_slot = true;
        self
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
        if let Some(n) = self.global_queue_interval {
            cfg.global_queue_interval = n;
        }
        cfg.disable_lifo_slot = self.disable_lifo_slot as c_int;
        let mut hooks: *mut c_void = ptr::null_mut();
        if self.on_thread_start.is_some() || self.on_thread_stop.is_some() {
            hooks = Box::into_raw(Box::new(Hooks {
                start: self.on_thread_start.clone(),
                stop: self.on_thread_stop.clone(),
            })) as *mut c_void;
            cfg.on_thread_start = Some(hook_start);
            cfg.on_thread_stop = Some(hook_stop);
            cfg.hook_data = hooks;
        }
        let mut raw = ptr::null_mut();
        // SAFETY: cfg is initialised and its name outlives the call; raw receives the runtime.
        if let Err(e) = check(unsafe { sys::mvx_runtime_new(&cfg, &mut raw) }) {
            if !hooks.is_null() {
                // SAFETY: no runtime was made, so nothing calls the hooks.
                unsafe { drop_hooks(hooks) };
            }
            return Err(e);
        }
        crate::waker::task_vtable(); // look the task-waker vtable up once, off the hot paths
        let inner = Arc::new(handle::Inner {
            raw: NonNull::new(raw).expect("mvx_runtime_new returned NULL"),
            hooks,
            hooks_drop: if hooks.is_null() {
                None
            } else {
                Some(drop_hooks)
            },
            clean: AtomicBool::new(false),
        });
        handle::register(&inner);
        Ok(Runtime {
            handle: std::mem::ManuallyDrop::new(Handle { inner }),
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
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// This runtime's [`Handle`]: `Clone + Send + Sync`, to spawn and block on it from anywhere.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Makes this runtime current on this thread until the guard is dropped (see
    /// [`Handle::enter`]): `moduvex::spawn` then works on a plain thread.
    pub fn enter(&self) -> EnterGuard<'_> {
        self.handle.enter()
    }

    /// Runs `f` on the blocking pool, threads apart from the workers, for code that blocks (file
    /// I/O, locks, long computations), and returns its handle. A panic in `f` reaches the handle
    /// as a panic `JoinError`. Aborting the handle cancels `f` if it has not started yet.
    #[track_caller]
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.handle.spawn_blocking(f)
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
        block_on_raw(self.handle.inner.raw, future)
    }

    /// Shuts the runtime down, waiting at most `timeout` for polls and blocking closures that
    /// are still running (they are left to finish on their own; their futures are dropped when
    /// their poll returns pending). Every task that is not running is cancelled at once.
    ///
    /// Called on one of this runtime's own threads (see [`Drop`](#impl-Drop-for-Runtime)), it
    /// cannot wait for itself: the shutdown is handed to a new thread and this returns at once.
    pub fn shutdown_timeout(mut self, timeout: Duration) {
        // SAFETY: taken once; self is forgotten right after, so Drop does not take it again.
        let handle = unsafe { std::mem::ManuallyDrop::take(&mut self.handle) };
        std::mem::forget(self);
        shutdown(handle, Some(timeout));
    }

    /// Shuts the runtime down without waiting for running polls or blocking closures
    /// (`shutdown_timeout(Duration::ZERO)`).
    pub fn shutdown_background(self) {
        self.shutdown_timeout(Duration::ZERO)
    }

    /// The number of worker threads.
    pub fn worker_threads(&self) -> usize {
        self.handle.worker_threads()
    }

    /// The raw runtime, for use with `moduvex_sys` (still owned by this Runtime).
    pub fn as_raw(&self) -> NonNull<mvx_runtime> {
        self.handle.inner.raw
    }
}

/// Dropping the runtime shuts it down (see [`Runtime`]) and waits for the polls and blocking
/// closures still running. Handles may outlive it: spawning through them is then refused.
///
/// On one of this runtime's own threads (inside one of its tasks, its blocking closures or its
/// `block_on` future, e.g. when the last `Arc<Runtime>` goes there), the shutdown cannot wait for
/// the caller: it is handed to a new thread, which shuts the runtime down and waits for the
/// caller's poll or closure to return.
impl Drop for Runtime {
    fn drop(&mut self) {
        // SAFETY: taken once, here.
        let handle = unsafe { std::mem::ManuallyDrop::take(&mut self.handle) };
        shutdown(handle, None);
    }
}

/// Shuts the runtime down (with `timeout`, or unbounded), then gives up `handle`, from a helper
/// thread when the caller is one of the runtime's own threads.
fn shutdown(handle: Handle, timeout: Option<Duration>) {
    let raw = handle.inner.raw;
    let run = move || {
        let handle = handle;
        let ns = timeout.map_or(sys::MVX_TIMEOUT_INFINITE, duration_ns);
        // SAFETY: a live runtime (our handle), and this is not one of its threads.
        if unsafe { sys::mvx_runtime_shutdown(handle.inner.raw.as_ptr(), ns) } == 0 {
            handle.inner.clean.store(true, Ordering::Release);
        }
    };
    handle::on_other_thread(raw, run);
}

/// Runtime::block_on and Handle::block_on. The future runs with a budget, and without a task id
/// (as tokio's block_on future).
#[track_caller]
pub(crate) fn block_on_raw<F: Future>(rt: NonNull<mvx_runtime>, future: F) -> F::Output {
    let mut state = Prepared::new(Tracked::new(None, future));
    let mut out = MaybeUninit::<BlockOnBuf<F::Output>>::uninit();
    let out_ptr = if Output::<F::Output>::SIZE == 0 {
        ptr::null_mut()
    } else {
        out.as_mut_ptr() as *mut std::ffi::c_void
    };
    let mut failure = empty_failure();
    // SAFETY: rt is live (the caller's handle); the vtable is the future type's static one;
    // state and out_ptr are valid for the call; failure has its size set. mvx_block_on polls and
    // drops the future on this thread only, before it returns, so neither Send nor 'static is
    // needed.
    let rc = unsafe {
        sys::mvx_block_on(
            rt.as_ptr(),
            &Task::<Tracked<F>>::VTABLE,
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
                 would wait for itself; use .await inside tasks (or task::block_in_place)"
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
    let id = next_id();
    let mut state = Prepared::new(Tracked::new(Some(id), future));
    let mut jh = ptr::null_mut();
    // SAFETY: rt is live (caller); the vtable is the future type's static one; the state
    // pointer is valid for the call, and on success its bytes belong to the task (consumed).
    let rc = unsafe { spawn_fn(rt, &Task::<Tracked<F>>::VTABLE, state.state(), &mut jh) };
    if rc == 0 {
        state.consumed();
        // SAFETY: on success mvx_spawn* set jh to a valid handle that we now own.
        return JoinHandle::from_raw(unsafe { NonNull::new_unchecked(jh) }, id);
    }
    // Nothing was spawned: the future is still ours (header: mvx_spawn).
    drop(state.into_inner());
    match rc {
        sys::MVX_ESHUTDOWN => JoinHandle::refused(id),
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
