//! The declarations agree with the library that is linked: struct layouts (LP64), constants,
//! and the header's own example driven through the raw API.
use core::ffi::{c_int, c_void, CStr};
use core::mem::{align_of, offset_of, size_of};
use core::ptr;
use moduvex_sys::*;

fn cstr(p: *const core::ffi::c_char) -> String {
    assert!(!p.is_null());
    // SAFETY: the library returns static NUL-terminated strings from these functions.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned()
}

#[test]
#[cfg(target_pointer_width = "64")]
fn struct_layouts_match_the_header_on_lp64() {
    assert_eq!((size_of::<mvx_waker>(), align_of::<mvx_waker>()), (16, 8));
    assert_eq!(size_of::<mvx_waker_vtable>(), 40);
    assert_eq!(size_of::<mvx_task_vtable>(), 80);
    assert_eq!(offset_of!(mvx_task_vtable, state_size), 32);
    assert_eq!(offset_of!(mvx_task_vtable, output_align), 56);
    assert_eq!(offset_of!(mvx_task_vtable, drop_signature), 72);
    assert_eq!(size_of::<mvx_failure>(), 40);
    assert_eq!(offset_of!(mvx_failure, code), 8);
    assert_eq!(offset_of!(mvx_failure, message), 16);
    assert_eq!(offset_of!(mvx_failure, payload_drop), 32);
    assert_eq!(size_of::<mvx_runtime_config>(), 112);
    assert_eq!(offset_of!(mvx_runtime_config, worker_slice_ns), 104);
    assert_eq!(offset_of!(mvx_runtime_config, spawn_backlog_ns), 88);
    assert_eq!(offset_of!(mvx_runtime_config, blocking_flags), 96);
    assert_eq!(offset_of!(mvx_runtime_config, global_queue_interval), 72);
    assert_eq!(offset_of!(mvx_runtime_config, disable_lifo_slot), 76);
    assert_eq!(offset_of!(mvx_runtime_config, spin_ns), 80);
    assert_eq!(offset_of!(mvx_runtime_config, thread_name), 16);
    assert_eq!(offset_of!(mvx_runtime_config, hook_data), 48);
    assert_eq!(offset_of!(mvx_runtime_config, max_blocking_threads), 56);
    assert_eq!(offset_of!(mvx_runtime_config, blocking_keep_alive_ns), 64);
    assert_eq!(size_of::<mvx_worker_stats>(), 72);
    assert_eq!(size_of::<mvx_blocking_stats>(), 32);
    assert_eq!(offset_of!(mvx_blocking_stats, completed), 24);
}

#[test]
fn version_and_error_names_agree_with_the_library() {
    // SAFETY: these functions take no pointers and return static strings.
    unsafe {
        assert_eq!(mvx_version() / 10000, MVX_VERSION_MAJOR);
        assert!(mvx_version() >= MVX_VERSION_HEX);
        assert!(cstr(mvx_version_string()).starts_with("1."));
        let names = [
            (MVX_OK, "MVX_OK"),
            (MVX_EINVAL, "MVX_EINVAL"),
            (MVX_ENOMEM, "MVX_ENOMEM"),
            (MVX_ESHUTDOWN, "MVX_ESHUTDOWN"),
            (MVX_EDEADLK, "MVX_EDEADLK"),
            (MVX_ETIMEDOUT, "MVX_ETIMEDOUT"),
            (MVX_EAGAIN, "MVX_EAGAIN"),
            (MVX_ECANCELLED, "MVX_ECANCELLED"),
            (MVX_EFAILED, "MVX_EFAILED"),
            (MVX_ETAKEN, "MVX_ETAKEN"),
            (MVX_EPERM, "MVX_EPERM"),
            (MVX_ESYSTEM, "MVX_ESYSTEM"),
        ];
        for (code, name) in names {
            assert_eq!(cstr(mvx_err_name(code)), name);
        }
        assert_eq!(cstr(mvx_strerror(MVX_ECANCELLED)), "task was cancelled");
        assert_eq!(cstr(mvx_strerror(MVX_EFAILED)), "task panicked");
    }
}

#[test]
fn config_init_accepts_our_struct_size() {
    // SAFETY: config is a valid, writable mvx_runtime_config of the size we pass.
    unsafe {
        let mut cfg: mvx_runtime_config = core::mem::zeroed();
        assert_eq!(
            mvx_runtime_config_init(&mut cfg, size_of::<mvx_runtime_config>()),
            MVX_OK
        );
        assert_eq!(cfg.size, size_of::<mvx_runtime_config>());
        assert_eq!(mvx_runtime_config_init(ptr::null_mut(), 0), MVX_EINVAL);
        assert!(cstr(mvx_last_error()).contains("mvx_runtime_config_init"));
    }
}

// The header's example: a task that yields until its counter reaches 0, then outputs 42.
unsafe extern "C" fn count_down(
    state: *mut c_void,
    cx: *mut mvx_context,
    output: *mut c_void,
) -> c_int {
    // SAFETY: state is the task's inline c_int, output its c_int slot, cx valid for this call.
    unsafe {
        let n = state as *mut c_int;
        *n -= 1;
        if *n > 0 {
            mvx_waker_wake_by_ref(mvx_context_waker(cx));
            return MVX_POLL_PENDING;
        }
        *(output as *mut c_int) = 42;
        MVX_POLL_READY
    }
}

static COUNT_DOWN_VT: mvx_task_vtable = mvx_task_vtable {
    size: size_of::<mvx_task_vtable>(),
    poll: Some(count_down),
    drop: None,
    output_drop: None,
    state_size: size_of::<c_int>(),
    state_align: align_of::<c_int>(),
    output_size: size_of::<c_int>(),
    output_align: align_of::<c_int>(),
    poll_signature: ptr::null(),
    drop_signature: ptr::null(),
};

#[test]
fn the_headers_example_runs_through_the_raw_api() {
    // SAFETY: the calls follow the header: rt and jh are used before being released, n is copied
    // into the task at spawn, out has the vtable's output size.
    unsafe {
        let mut cfg: mvx_runtime_config = core::mem::zeroed();
        assert_eq!(
            mvx_runtime_config_init(&mut cfg, size_of::<mvx_runtime_config>()),
            0
        );
        cfg.worker_threads = 2;
        let mut rt = ptr::null_mut();
        assert_eq!(mvx_runtime_new(&cfg, &mut rt), 0);
        assert_eq!(mvx_runtime_worker_count(rt), 2);
        let mut jh = ptr::null_mut();
        let mut n: c_int = 10;
        assert_eq!(
            mvx_spawn(
                rt,
                &COUNT_DOWN_VT,
                &mut n as *mut c_int as *mut c_void,
                &mut jh
            ),
            0
        );
        assert_eq!(mvx_join_wait(jh, MVX_TIMEOUT_INFINITE), 0);
        let mut out: c_int = 0;
        let size = size_of::<c_int>();
        assert_eq!(
            mvx_join_take(
                jh,
                &mut out as *mut c_int as *mut c_void,
                size,
                ptr::null_mut()
            ),
            0
        );
        assert_eq!(out, 42);
        assert_eq!(
            mvx_join_take(
                jh,
                &mut out as *mut c_int as *mut c_void,
                size,
                ptr::null_mut()
            ),
            MVX_ETAKEN
        );
        mvx_join_release(jh);
        assert_eq!(mvx_runtime_release(rt), 0);
    }
}
