//! Raw FFI declarations of libmoduvex, written by hand to match `include/moduvex.h` (version
//! 1.0) one for one: same names, `#[repr(C)]` structs with the same fields in the same order,
//! the same constants. Nothing here is safe to call without reading the header's comment for the
//! function: it documents every function's ownership and thread rules. The safe API is the
//! `moduvex` crate.
//!
//! Type mapping: `size_t` is `usize`, `int64_t` is `i64`, `int`/`unsigned`/`char` are the
//! `core::ffi` types, a nullable C function pointer is `Option<unsafe extern "C" fn ...>`, and the
//! opaque handle types are zero-sized `#[repr(C)]` structs that are neither `Send`, `Sync` nor
//! `Unpin` (they are only ever used behind raw pointers).
//!
//! The library is found through pkg-config by the build script; see `build.rs`.
#![no_std]
#![allow(non_camel_case_types)]

use core::ffi::{c_char, c_int, c_uint, c_void};
use core::marker::{PhantomData, PhantomPinned};

macro_rules! opaque {
    ($($(#[$m:meta])* $name:ident;)*) => {$(
        $(#[$m])*
        #[repr(C)]
        pub struct $name {
            _data: [u8; 0],
            _marker: PhantomData<(*mut u8, PhantomPinned)>,
        }
    )*};
}

// ---------------------------------------------------------------------------------- version

pub const MVX_VERSION_MAJOR: c_int = 1;
pub const MVX_VERSION_MINOR: c_int = 0;
pub const MVX_VERSION_PATCH: c_int = 0;
/// MAJOR*10000 + MINOR*100 + PATCH of the header these declarations follow.
pub const MVX_VERSION_HEX: c_int =
    MVX_VERSION_MAJOR * 10000 + MVX_VERSION_MINOR * 100 + MVX_VERSION_PATCH;

// ----------------------------------------------------------------------------------- errors

pub const MVX_OK: c_int = 0;
pub const MVX_EINVAL: c_int = -1;
pub const MVX_ENOMEM: c_int = -2;
pub const MVX_ESHUTDOWN: c_int = -3;
pub const MVX_EDEADLK: c_int = -4;
pub const MVX_ETIMEDOUT: c_int = -5;
pub const MVX_EAGAIN: c_int = -6;
pub const MVX_ECANCELLED: c_int = -7;
pub const MVX_EFAILED: c_int = -8;
pub const MVX_ETAKEN: c_int = -9;
pub const MVX_EPERM: c_int = -10;
pub const MVX_ESYSTEM: c_int = -11;

/// Relative nanoseconds: any negative value waits forever, 0 does not wait.
pub const MVX_TIMEOUT_INFINITE: i64 = -1;

// ----------------------------------------------------------------------------------- wakers

/// How a waker is implemented; every callback may be called from any thread, none may be NULL.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct mvx_waker_vtable {
    /// `size_of::<mvx_waker_vtable>()`
    pub size: usize,
    pub clone: Option<unsafe extern "C" fn(data: *mut c_void) -> *mut c_void>,
    pub wake: Option<unsafe extern "C" fn(data: *mut c_void)>,
    pub wake_by_ref: Option<unsafe extern "C" fn(data: *mut c_void)>,
    pub drop: Option<unsafe extern "C" fn(data: *mut c_void)>,
}

/// A waker value `{vtable, data}`; copying it does not clone it. `{NULL, NULL}` is "no waker".
/// Layout frozen: two pointers.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct mvx_waker {
    pub vtable: *const mvx_waker_vtable,
    pub data: *mut c_void,
}

// ------------------------------------------------------------------------------------ tasks

pub const MVX_POLL_PENDING: c_int = 0;
pub const MVX_POLL_READY: c_int = 1;
pub const MVX_POLL_FAILED: c_int = 2;

opaque! {
    /// The poll context: valid only during the poll call that receives it, on that thread.
    mvx_context;
    /// A C function signature prepared for libffi.
    mvx_signature;
    /// A runtime (reference counted; see mvx_runtime_release).
    mvx_runtime;
    /// A task's join handle (one per task; see mvx_join_release).
    mvx_join_handle;
    /// A set of tasks pinned to the thread that created it.
    mvx_local_set;
}

/// `int (*)(void *state, mvx_context *cx, void *output)`
pub type mvx_poll_fn =
    unsafe extern "C" fn(state: *mut c_void, cx: *mut mvx_context, output: *mut c_void) -> c_int;

/// A task type: its callbacks and the layout of its state and output. Must outlive every task
/// spawned with it (static storage).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct mvx_task_vtable {
    /// `size_of::<mvx_task_vtable>()`
    pub size: usize,
    /// Required.
    pub poll: Option<mvx_poll_fn>,
    /// Frees the state when the task completes, fails or is cancelled; exactly once; may be None.
    pub drop: Option<unsafe extern "C" fn(state: *mut c_void)>,
    /// Frees an output that was never taken; may be None.
    pub output_drop: Option<unsafe extern "C" fn(output: *mut c_void)>,
    /// > 0: the state is copied inline; 0: the state pointer itself is stored.
    pub state_size: usize,
    pub state_align: usize,
    pub output_size: usize,
    pub output_align: usize,
    /// Optional libffi signature of `poll` (NULL: the native signature, called directly).
    pub poll_signature: *const mvx_signature,
    /// Optional libffi signature of `drop`.
    pub drop_signature: *const mvx_signature,
}

// SAFETY: a vtable is immutable data (numbers, function pointers and pointers to immutable,
// shareable signatures); the library reads it from any thread.
unsafe impl Sync for mvx_task_vtable {}
unsafe impl Send for mvx_task_vtable {}

/// The largest `state_size + output_size` copied inline into a task.
pub const MVX_INLINE_MAX: usize = 16000;

/// A task failure moved out of a join handle by `mvx_join_take`.
#[repr(C)]
#[derive(Debug)]
pub struct mvx_failure {
    /// Set by the caller: `size_of::<mvx_failure>()`.
    pub size: usize,
    pub code: c_int,
    pub message: *mut c_char,
    pub payload: *mut c_void,
    pub payload_drop: Option<unsafe extern "C" fn(payload: *mut c_void)>,
}

// ---------------------------------------------------------------------------------- runtime

/// Runtime settings; fill with `mvx_runtime_config_init`, then change what you need.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct mvx_runtime_config {
    pub size: usize,
    pub worker_threads: c_uint,
    pub thread_name: *const c_char,
    pub stack_size: usize,
    pub on_thread_start: Option<unsafe extern "C" fn(hook_data: *mut c_void, worker_index: c_uint)>,
    pub on_thread_stop: Option<unsafe extern "C" fn(hook_data: *mut c_void, worker_index: c_uint)>,
    pub hook_data: *mut c_void,
    pub max_blocking_threads: c_uint,
    pub blocking_keep_alive_ns: i64,
    /// Since 1.1.
    pub global_queue_interval: c_uint,
    /// Since 1.1.
    pub disable_lifo_slot: c_int,
    /// Since 1.1: `MVX_SPIN_ADAPTIVE` (the default), 0 (never spin) or a fixed spin in ns.
    pub spin_ns: i64,
    /// Since 1.1: how far the workers may lag before a spawn from outside waits for them
    /// (0: 500 us, negative: never wait).
    pub spawn_backlog_ns: i64,
    /// Since 1.1: `MVX_BLOCKING_*` bits; without `MVX_BLOCKING_INHERIT_SCHED` (the default),
    /// blocking-pool threads started under SCHED_OTHER run as SCHED_BATCH.
    pub blocking_flags: u64,
    /// Since 1.1: the time slice workers ask the kernel for (Linux 6.12+): 0 is 100 us,
    /// positive 100 us to 100 ms, negative keeps the slice they inherit.
    pub worker_slice_ns: i64,
}

/// `mvx_runtime_config::spin_ns`: spin only while spinning pays (the default).
pub const MVX_SPIN_ADAPTIVE: i64 = -1;
/// `mvx_runtime_config::blocking_flags`: pool threads keep their inherited scheduling policy.
pub const MVX_BLOCKING_INHERIT_SCHED: u64 = 1;

/// Counters of one worker.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct mvx_worker_stats {
    pub size: usize,
    pub polls: u64,
    pub local_spawns: u64,
    pub remote_tasks: u64,
    pub steals: u64,
    pub stolen_tasks: u64,
    pub parks: u64,
    /// Since 1.1: idle rounds that did not end asleep, and those of them that found work.
    pub spins: u64,
    pub spins_found: u64,
}

/// A snapshot of the blocking pool.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct mvx_blocking_stats {
    pub size: usize,
    pub threads: c_uint,
    pub idle_threads: c_uint,
    pub running: c_uint,
    pub queued: c_uint,
    pub completed: u64,
}

/// Run the call on the blocking pool, not on a worker (`mvx_spawn_call` flags).
pub const MVX_CALL_BLOCKING: c_uint = 0x1;

extern "C" {
    // version
    pub fn mvx_version() -> c_int;
    pub fn mvx_version_string() -> *const c_char;

    // errors
    pub fn mvx_strerror(code: c_int) -> *const c_char;
    pub fn mvx_err_name(code: c_int) -> *const c_char;
    pub fn mvx_last_error() -> *const c_char;

    // wakers
    pub fn mvx_waker_clone(waker: *const mvx_waker, out: *mut mvx_waker) -> c_int;
    pub fn mvx_waker_wake(waker: *mut mvx_waker);
    pub fn mvx_waker_wake_by_ref(waker: *const mvx_waker);
    pub fn mvx_waker_drop(waker: *mut mvx_waker);
    pub fn mvx_waker_will_wake(a: *const mvx_waker, b: *const mvx_waker) -> c_int;
    pub fn mvx_task_waker_vtable() -> *const mvx_waker_vtable;

    // tasks
    pub fn mvx_context_waker(cx: *mut mvx_context) -> *const mvx_waker;
    pub fn mvx_context_fail(
        cx: *mut mvx_context,
        code: c_int,
        message: *const c_char,
        payload: *mut c_void,
        payload_drop: Option<unsafe extern "C" fn(payload: *mut c_void)>,
    ) -> c_int;
    pub fn mvx_failure_clear(failure: *mut mvx_failure);
    /// 1.1: the poll dropped the task's state itself; the library will not call `drop`.
    pub fn mvx_context_forget_state(cx: *mut mvx_context) -> c_int;

    // runtime
    pub fn mvx_runtime_config_init(config: *mut mvx_runtime_config, config_size: usize) -> c_int;
    pub fn mvx_runtime_new(config: *const mvx_runtime_config, out: *mut *mut mvx_runtime) -> c_int;
    pub fn mvx_runtime_shutdown(rt: *mut mvx_runtime, timeout_ns: i64) -> c_int;
    pub fn mvx_runtime_release(rt: *mut mvx_runtime) -> c_int;
    pub fn mvx_runtime_current() -> *mut mvx_runtime;
    pub fn mvx_runtime_worker_count(rt: *const mvx_runtime) -> c_uint;
    pub fn mvx_runtime_worker_stats(
        rt: *mut mvx_runtime,
        worker: c_uint,
        stats: *mut mvx_worker_stats,
    ) -> c_int;

    // spawning and joining
    pub fn mvx_spawn(
        rt: *mut mvx_runtime,
        vtable: *const mvx_task_vtable,
        state: *mut c_void,
        join: *mut *mut mvx_join_handle,
    ) -> c_int;
    pub fn mvx_join_wait(join: *mut mvx_join_handle, timeout_ns: i64) -> c_int;
    pub fn mvx_join_try(join: *mut mvx_join_handle) -> c_int;
    pub fn mvx_join_poll(join: *mut mvx_join_handle, waker: *const mvx_waker) -> c_int;
    pub fn mvx_join_take(
        join: *mut mvx_join_handle,
        output: *mut c_void,
        output_size: usize,
        failure: *mut mvx_failure,
    ) -> c_int;
    pub fn mvx_join_abort(join: *mut mvx_join_handle) -> c_int;
    pub fn mvx_join_is_finished(join: *const mvx_join_handle) -> c_int;
    /// Since 1.1.
    pub fn mvx_join_output_size(join: *const mvx_join_handle) -> usize;
    pub fn mvx_join_release(join: *mut mvx_join_handle);
    pub fn mvx_block_on(
        rt: *mut mvx_runtime,
        vtable: *const mvx_task_vtable,
        state: *mut c_void,
        output: *mut c_void,
        output_size: usize,
        failure: *mut mvx_failure,
    ) -> c_int;

    // the blocking pool
    pub fn mvx_spawn_blocking(
        rt: *mut mvx_runtime,
        vtable: *const mvx_task_vtable,
        state: *mut c_void,
        join: *mut *mut mvx_join_handle,
    ) -> c_int;
    pub fn mvx_runtime_blocking_stats(
        rt: *mut mvx_runtime,
        stats: *mut mvx_blocking_stats,
    ) -> c_int;

    // signatures and call tasks
    pub fn mvx_signature_parse(
        text: *const c_char,
        length: usize,
        out: *mut *mut mvx_signature,
    ) -> c_int;
    pub fn mvx_signature_ref(sig: *mut mvx_signature) -> *mut mvx_signature;
    pub fn mvx_signature_release(sig: *mut mvx_signature);
    pub fn mvx_signature_arg_count(sig: *const mvx_signature) -> c_int;
    pub fn mvx_signature_return_size(sig: *const mvx_signature) -> usize;
    pub fn mvx_spawn_call(
        rt: *mut mvx_runtime,
        fn_: Option<unsafe extern "C" fn()>,
        sig: *const mvx_signature,
        args: *const *mut c_void,
        flags: c_uint,
        join: *mut *mut mvx_join_handle,
    ) -> c_int;

    // local task sets
    pub fn mvx_local_set_new(
        rt: *mut mvx_runtime,
        notify: *const mvx_waker,
        out: *mut *mut mvx_local_set,
    ) -> c_int;
    pub fn mvx_local_spawn(
        set: *mut mvx_local_set,
        vtable: *const mvx_task_vtable,
        state: *mut c_void,
        join: *mut *mut mvx_join_handle,
    ) -> c_int;
    pub fn mvx_local_set_run_until_idle(set: *mut mvx_local_set) -> c_int;
    pub fn mvx_local_set_run_until(
        set: *mut mvx_local_set,
        until: *mut mvx_join_handle,
        timeout_ns: i64,
    ) -> c_int;
    pub fn mvx_local_set_free(set: *mut mvx_local_set) -> c_int;

    // since 1.1 (MODUVEX_1.1)
    pub fn mvx_block_in_place(
        fn_: Option<unsafe extern "C" fn(arg: *mut c_void)>,
        arg: *mut c_void,
    ) -> c_int;
}

// ------------------------------------------------------------------------- time (MODUVEX_1.1)

/// `mvx_timer`: 48 bytes of private storage, layout frozen (header: "Time").
#[repr(C)]
#[derive(Debug)]
pub struct mvx_timer {
    pub opaque: [*mut c_void; 6],
}

extern "C" {
    pub fn mvx_now() -> i64;
    pub fn mvx_timer_init(timer: *mut mvx_timer, rt: *mut mvx_runtime) -> c_int;
    pub fn mvx_timer_arm(timer: *mut mvx_timer, deadline_ns: i64, waker: *const mvx_waker)
        -> c_int;
    pub fn mvx_timer_cancel(timer: *mut mvx_timer) -> c_int;
    pub fn mvx_timer_fini(timer: *mut mvx_timer);
    pub fn mvx_spawn_sleep(
        rt: *mut mvx_runtime,
        deadline_ns: i64,
        join: *mut *mut mvx_join_handle,
    ) -> c_int;
    pub fn mvx_join_poll_until(
        join: *mut mvx_join_handle,
        timer: *mut mvx_timer,
        deadline_ns: i64,
        waker: *const mvx_waker,
    ) -> c_int;
}
