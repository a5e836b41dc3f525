//! Wakers in both directions.
//!
//! **moduvex -> std.** A poll receives the task's waker `{mvx_task_waker_vtable(), task}`. It
//! becomes a `std::task::Waker` whose data is the task pointer itself and whose static
//! `RawWakerVTable` (`TASK_RAW`) forwards to the library's task-waker functions: no allocation
//! per poll, and cloning one is a reference-count increment in the library. Should a context
//! ever carry another kind of waker, it is wrapped by reference (`BORROWED_RAW`) and cloned
//! into a boxed `mvx_waker` (`OWNED_RAW`).
//!
//! **std -> moduvex.** `mvx_join_poll` wants an `mvx_waker`. A `Waker` that is one of ours is
//! passed through as the `mvx_waker` it stands for; any other (another executor's) is cloned once
//! into an `Arc<Waker>` behind the static foreign vtable `FOREIGN_VT`, whose clone is a
//! reference-count increment that keeps the same data pointer, so the library's `will_wake`
//! check recognises a re-registration of the same waker.

use std::ffi::c_void;
use std::mem::ManuallyDrop;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc;
use std::task::{RawWaker, RawWakerVTable, Waker};

use crate::error::guard;
use crate::sys::{self, mvx_waker, mvx_waker_vtable};

/// The library's task-waker vtable, looked up once. Relaxed is enough: the pointee is constant
/// data of the loaded library, never written at run time.
static TASK_VT: AtomicPtr<mvx_waker_vtable> = AtomicPtr::new(ptr::null_mut());

#[inline]
pub(crate) fn task_vtable() -> *const mvx_waker_vtable {
    let vt = TASK_VT.load(Ordering::Relaxed);
    if !vt.is_null() {
        return vt;
    }
    init_task_vtable()
}

#[cold]
fn init_task_vtable() -> *const mvx_waker_vtable {
    // SAFETY: takes no argument; returns a static vtable, never NULL (header).
    let vt = unsafe { sys::mvx_task_waker_vtable() };
    assert!(!vt.is_null(), "mvx_task_waker_vtable() returned NULL");
    TASK_VT.store(vt as *mut _, Ordering::Relaxed);
    vt
}

/// The library's task-waker functions (none is NULL, header: mvx_waker_vtable).
#[inline]
fn task_fns() -> &'static mvx_waker_vtable {
    // SAFETY: task_vtable() is a non-NULL pointer to the library's static, immutable vtable.
    unsafe { &*task_vtable() }
}

// ------------------------------------------------------------------ task waker -> std Waker

/// RawWakerVTable of a std Waker standing for a moduvex task waker; data = the task pointer.
pub(crate) static TASK_RAW: RawWakerVTable =
    RawWakerVTable::new(task_clone, task_wake, task_wake_by_ref, task_drop);

unsafe fn task_clone(data: *const ()) -> RawWaker {
    let clone = task_fns().clone.expect("task waker clone");
    // SAFETY: data is a task pointer on which this waker holds a reference (or, for the
    // borrowed context waker, the poll does); the library's clone takes another one.
    let data = unsafe { clone(data as *mut c_void) };
    RawWaker::new(data as *const (), &TASK_RAW)
}

unsafe fn task_wake(data: *const ()) {
    let wake = task_fns().wake.expect("task waker wake");
    // SAFETY: consumes the reference this (owned, cloned) waker holds, as Waker::wake does.
    unsafe { wake(data as *mut c_void) }
}

unsafe fn task_wake_by_ref(data: *const ()) {
    let wake_by_ref = task_fns().wake_by_ref.expect("task waker wake_by_ref");
    // SAFETY: data is a task pointer kept alive by this waker's reference.
    unsafe { wake_by_ref(data as *mut c_void) }
}

unsafe fn task_drop(data: *const ()) {
    let drop = task_fns().drop.expect("task waker drop");
    // SAFETY: releases the reference this waker holds. Never reached for the borrowed context
    // waker, which is kept in a ManuallyDrop.
    unsafe { drop(data as *mut c_void) }
}

// ------------------------------------------- any other mvx_waker -> std Waker (fallback)

/// Data = `*const mvx_waker` borrowed from the poll context (valid during the poll only; the
/// Waker built on it is only ever lent as `&Waker`, never dropped or woken by value).
static BORROWED_RAW: RawWakerVTable = RawWakerVTable::new(
    mvx_clone_boxed,
    borrowed_wake,
    mvx_wake_by_ref,
    borrowed_drop,
);
/// Data = `Box<mvx_waker>` owning a clone.
static OWNED_RAW: RawWakerVTable =
    RawWakerVTable::new(mvx_clone_boxed, owned_wake, mvx_wake_by_ref, owned_drop);

unsafe fn mvx_clone_boxed(data: *const ()) -> RawWaker {
    let mut out = mvx_waker {
        vtable: ptr::null(),
        data: ptr::null_mut(),
    };
    // SAFETY: data points at a live mvx_waker (borrowed for the poll, or boxed and owned).
    unsafe { sys::mvx_waker_clone(data as *const mvx_waker, &mut out) };
    RawWaker::new(Box::into_raw(Box::new(out)) as *const (), &OWNED_RAW)
}

unsafe fn mvx_wake_by_ref(data: *const ()) {
    // SAFETY: data points at a live mvx_waker.
    unsafe { sys::mvx_waker_wake_by_ref(data as *const mvx_waker) }
}

unsafe fn borrowed_wake(data: *const ()) {
    // Not reachable (a borrowed waker is never owned); waking by reference is the safe answer.
    // SAFETY: as mvx_wake_by_ref.
    unsafe { mvx_wake_by_ref(data) }
}

unsafe fn borrowed_drop(_: *const ()) {}

unsafe fn owned_wake(data: *const ()) {
    // SAFETY: data is the Box<mvx_waker> this waker owns; waking consumes both.
    let mut b = unsafe { Box::from_raw(data as *mut mvx_waker) };
    // SAFETY: b holds a cloned waker that we own.
    unsafe { sys::mvx_waker_wake(&mut *b) };
}

unsafe fn owned_drop(data: *const ()) {
    // SAFETY: as owned_wake, releasing instead of waking.
    let mut b = unsafe { Box::from_raw(data as *mut mvx_waker) };
    // SAFETY: b holds a cloned waker that we own.
    unsafe { sys::mvx_waker_drop(&mut *b) };
}

/// The waker of the poll context `cx` as a std Waker, lent for the duration of the poll: the
/// ManuallyDrop keeps it from releasing a reference it does not own.
///
/// # Safety
/// `cx` is the context of the poll running on this thread; the result must not outlive it.
#[inline]
pub(crate) unsafe fn context_waker(cx: *mut sys::mvx_context) -> ManuallyDrop<Waker> {
    // SAFETY: cx is valid (caller), so mvx_context_waker returns a pointer into it.
    let w = unsafe { &*sys::mvx_context_waker(cx) };
    let raw = if w.vtable == task_vtable() {
        RawWaker::new(w.data as *const (), &TASK_RAW)
    } else {
        RawWaker::new(w as *const mvx_waker as *const (), &BORROWED_RAW)
    };
    // SAFETY: both vtables uphold the RawWaker contract for their data (see above).
    ManuallyDrop::new(unsafe { Waker::from_raw(raw) })
}

/// If `waker` is one of ours, the `mvx_waker` it stands for (borrowed: not cloned).
#[inline]
pub(crate) fn as_mvx_waker(waker: &Waker) -> Option<mvx_waker> {
    let vt = waker.vtable();
    if ptr::eq(vt, &TASK_RAW) {
        Some(mvx_waker {
            vtable: task_vtable(),
            data: waker.data() as *mut c_void,
        })
    } else if ptr::eq(vt, &BORROWED_RAW) || ptr::eq(vt, &OWNED_RAW) {
        // SAFETY: data of these vtables points at a live mvx_waker.
        Some(unsafe { *(waker.data() as *const mvx_waker) })
    } else {
        None
    }
}

// ---------------------------------------------------------- std Waker -> foreign mvx_waker

/// A std Waker of another executor, shared with the library as a foreign `mvx_waker` whose data
/// is `Arc<Waker>`: cloning adds a reference and keeps the pointer.
pub(crate) struct ForeignWaker(NonNull<Waker>);

// SAFETY: it owns one strong reference of an Arc<Waker>, and Waker is Send + Sync.
unsafe impl Send for ForeignWaker {}
// SAFETY: &ForeignWaker only reads the Waker (will_wake) or copies the pointer.
unsafe impl Sync for ForeignWaker {}

impl ForeignWaker {
    pub(crate) fn new(waker: Waker) -> ForeignWaker {
        let p = Arc::into_raw(Arc::new(waker)) as *mut Waker;
        // SAFETY: Arc::into_raw never returns NULL.
        ForeignWaker(unsafe { NonNull::new_unchecked(p) })
    }

    pub(crate) fn will_wake(&self, other: &Waker) -> bool {
        // SAFETY: we hold a strong reference, so the Waker is alive.
        unsafe { self.0.as_ref() }.will_wake(other)
    }

    /// The mvx_waker (borrowed: the library clones it to keep it).
    pub(crate) fn as_mvx(&self) -> mvx_waker {
        mvx_waker {
            vtable: &FOREIGN_VT,
            data: self.0.as_ptr() as *mut c_void,
        }
    }
}

impl Drop for ForeignWaker {
    fn drop(&mut self) {
        // SAFETY: releases the strong reference created in new().
        unsafe { Arc::decrement_strong_count(self.0.as_ptr() as *const Waker) }
    }
}

static FOREIGN_VT: mvx_waker_vtable = mvx_waker_vtable {
    size: std::mem::size_of::<mvx_waker_vtable>(),
    clone: Some(foreign_clone),
    wake: Some(foreign_wake),
    wake_by_ref: Some(foreign_wake_by_ref),
    drop: Some(foreign_drop),
};

// The library calls these from any thread; a panic in another executor's waker must not unwind
// into C, so each is guarded (the panic is dropped: std's hook has printed it already).

unsafe extern "C" fn foreign_clone(data: *mut c_void) -> *mut c_void {
    // SAFETY: data is an Arc<Waker> pointer with at least one strong reference held by the
    // waker being cloned; this adds the clone's reference. Cannot panic.
    unsafe { Arc::increment_strong_count(data as *const Waker) };
    data
}

unsafe extern "C" fn foreign_wake(data: *mut c_void) {
    guard(|| {
        // SAFETY: takes over the reference of the waker being consumed.
        let arc = unsafe { Arc::from_raw(data as *const Waker) };
        match Arc::try_unwrap(arc) {
            Ok(waker) => waker.wake(),
            Err(arc) => arc.wake_by_ref(),
        }
    })
}

unsafe extern "C" fn foreign_wake_by_ref(data: *mut c_void) {
    // SAFETY: the caller's waker holds a strong reference for the duration of the call.
    guard(|| unsafe { &*(data as *const Waker) }.wake_by_ref())
}

unsafe extern "C" fn foreign_drop(data: *mut c_void) {
    // SAFETY: releases the reference of the waker being dropped (dropping the last one drops
    // the Waker, whose own drop is guarded like the wakes).
    guard(|| unsafe { Arc::decrement_strong_count(data as *const Waker) })
}
