//! Rust futures as moduvex tasks: one `mvx_task_vtable` per future type, the future itself as
//! the task's inline state, its output in the task's output slot.
//!
//! `Task::<F>::VTABLE` is an associated constant, and `&Task::<F>::VTABLE` is promoted to a
//! `'static` reference (as in the async-task crate): every future type gets its own static
//! vtable, built at compile time.
//!
//! **State.** Spawning passes a pointer to the future with `state_size = size_of::<F>()`; the
//! library copies the bytes into the task's allocation, which is a Rust move: the caller then
//! forgets its copy. The library never moves a task, so the future is pinned there until its
//! `drop` callback runs. A zero-sized future still gets `state_size = 1` (0 would mean "the state
//! is a pointer"). A future that does not fit the header's limits (alignment above 16, or state
//! plus output above `MVX_INLINE_MAX`) is boxed and passed by pointer (`state_size = 0`). The
//! poll sees a `*mut F` either way; only the drop differs.
//!
//! **Output.** The output is written into the output slot (`output_size = size_of::<T>()`), or a
//! `Box<T>` when `T` is over-aligned or larger than `OUTPUT_INLINE_MAX`. A zero-sized output
//! uses `output_size = 0` and is read and written through a dangling, well-aligned pointer.

use std::ffi::{c_int, c_void};
use std::future::Future;
use std::marker::PhantomData;
use std::mem::{align_of, needs_drop, size_of, ManuallyDrop};
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::task::{Context, Poll};

use crate::error::{guard, report_panic};
use crate::sys::{self, mvx_task_vtable, MVX_INLINE_MAX};
use crate::waker;

/// The largest alignment the library accepts for inline state and output.
const MAX_ALIGN: usize = 16;
/// Outputs larger than this are boxed, leaving at least as much room for the state.
const OUTPUT_INLINE_MAX: usize = MVX_INLINE_MAX / 2;

/// How a `T` is kept in a task's output slot.
pub(crate) struct Output<T>(PhantomData<T>);

impl<T> Output<T> {
    const ZST: bool = size_of::<T>() == 0;
    /// T itself goes in the slot; otherwise a Box<T>.
    const INLINE: bool = align_of::<T>() <= MAX_ALIGN && size_of::<T>() <= OUTPUT_INLINE_MAX;
    pub(crate) const SIZE: usize = if Self::ZST {
        0
    } else if Self::INLINE {
        size_of::<T>()
    } else {
        size_of::<Box<T>>()
    };
    const ALIGN: usize = if Self::ZST {
        1
    } else if Self::INLINE {
        align_of::<T>()
    } else {
        align_of::<Box<T>>()
    };
    const DROP: Option<unsafe extern "C" fn(*mut c_void)> = if !Self::INLINE || needs_drop::<T>() {
        Some(Self::drop_slot)
    } else {
        None
    };

    /// Moves `value` into the slot.
    ///
    /// # Safety
    /// `slot` is the task's output slot (SIZE bytes, ALIGN-aligned), holding no value.
    #[inline]
    pub(crate) unsafe fn write(slot: *mut c_void, value: T) {
        // SAFETY: (all arms) the slot is valid for the representation chosen by the consts; a
        // ZST is written through a dangling aligned pointer, which is valid for size 0.
        unsafe {
            if Self::ZST {
                ptr::write(NonNull::<T>::dangling().as_ptr(), value)
            } else if Self::INLINE {
                ptr::write(slot as *mut T, value)
            } else {
                ptr::write(slot as *mut Box<T>, Box::new(value))
            }
        }
    }

    /// Moves the value out of a slot filled by `write` (or a copy of its bytes).
    ///
    /// # Safety
    /// `slot` holds a value written by `write` that nobody else will read or drop.
    #[inline]
    pub(crate) unsafe fn read(slot: *const c_void) -> T {
        // SAFETY: as write.
        unsafe {
            if Self::ZST {
                ptr::read(NonNull::<T>::dangling().as_ptr())
            } else if Self::INLINE {
                ptr::read(slot as *const T)
            } else {
                *ptr::read(slot as *const Box<T>)
            }
        }
    }

    /// `output_drop`: an output nobody took. A panic in T's destructor is caught and dropped.
    unsafe extern "C" fn drop_slot(slot: *mut c_void) {
        // SAFETY: the library calls output_drop once, on a slot that poll filled.
        guard(|| drop(unsafe { Self::read(slot) }))
    }
}

/// The task type of a future `F`.
pub(crate) struct Task<F>(PhantomData<F>);

impl<F: Future> Task<F> {
    /// The future is copied into the task (else boxed, and the pointer stored).
    const INLINE: bool = align_of::<F>() <= MAX_ALIGN
        && Self::INLINE_SIZE + Output::<F::Output>::SIZE <= MVX_INLINE_MAX;
    /// A zero-sized future still takes one byte (state_size 0 means "pointer").
    const INLINE_SIZE: usize = if size_of::<F>() == 0 {
        1
    } else {
        size_of::<F>()
    };

    pub(crate) const VTABLE: mvx_task_vtable = mvx_task_vtable {
        size: size_of::<mvx_task_vtable>(),
        poll: Some(Self::poll),
        drop: if !Self::INLINE {
            Some(Self::drop_boxed)
        } else if needs_drop::<F>() {
            Some(Self::drop_inline)
        } else {
            None
        },
        output_drop: Output::<F::Output>::DROP,
        state_size: if Self::INLINE { Self::INLINE_SIZE } else { 0 },
        state_align: if Self::INLINE {
            align_of::<F>()
        } else {
            align_of::<*mut F>()
        },
        output_size: Output::<F::Output>::SIZE,
        output_align: Output::<F::Output>::ALIGN,
        poll_signature: ptr::null(),
        drop_signature: ptr::null(),
    };

    /// The poll callback. Every panic of `Future::poll` is caught here and reported with
    /// `mvx_context_fail`; nothing unwinds into the library. A future whose poll panics is
    /// dropped during that unwind, as in tokio (its destructors see `std::thread::panicking()`,
    /// so unwind-only cleanup runs), and the library is told the state is gone.
    unsafe extern "C" fn poll(
        state: *mut c_void,
        cx: *mut sys::mvx_context,
        out: *mut c_void,
    ) -> c_int {
        // SAFETY: cx is this poll's context; the waker is only lent for this call.
        let waker = unsafe { waker::context_waker(cx) };
        let mut context = Context::from_waker(&waker);
        let on_unwind = DropOnUnwind::<F> {
            state,
            cx,
            _f: PhantomData,
        };
        // AssertUnwindSafe: after a panic the future is gone (dropped by on_unwind).
        let polled = panic::catch_unwind(AssertUnwindSafe(move || {
            // SAFETY: state points at the task's F (inline copy or box), which the library never
            // moves and drops only through our drop callback (or on_unwind): it is pinned. The
            // library never polls a task concurrently with itself, so this &mut is unique.
            let fut = unsafe { Pin::new_unchecked(&mut *(state as *mut F)) };
            let r = fut.poll(&mut context);
            std::mem::forget(on_unwind);
            r
        }));
        match polled {
            Ok(Poll::Pending) => sys::MVX_POLL_PENDING,
            Ok(Poll::Ready(value)) => {
                // SAFETY: out is this task's empty output slot with the vtable's layout.
                unsafe { Output::write(out, value) };
                sys::MVX_POLL_READY
            }
            Err(payload) => {
                // SAFETY: cx is this poll's context.
                unsafe { report_panic(cx, payload) };
                sys::MVX_POLL_FAILED
            }
        }
    }

    /// Drops the future without catching a panic: for the unwinding path, where a second panic
    /// aborts anyway (as in tokio).
    ///
    /// # Safety
    /// `state` is the task's live future, which nothing uses or drops afterwards.
    unsafe fn drop_future(state: *mut c_void) {
        // SAFETY: (both arms) as drop_inline / drop_boxed.
        unsafe {
            if Self::INLINE {
                ptr::drop_in_place(state as *mut F)
            } else {
                drop(Box::from_raw(state as *mut F))
            }
        }
    }

    /// Drops the inline future. A panic in its destructor is caught and dropped (there is no way
    /// to report it: the task's outcome, its output or its cancellation, stands).
    unsafe extern "C" fn drop_inline(state: *mut c_void) {
        // SAFETY: called once by the library, on the F that spawn moved into the task.
        guard(|| unsafe { ptr::drop_in_place(state as *mut F) })
    }

    /// Frees the boxed future; a panic in its destructor is caught as in drop_inline (the box
    /// itself is freed anyway: Box's drop glue frees it while unwinding).
    unsafe extern "C" fn drop_boxed(state: *mut c_void) {
        // SAFETY: state is the Box<F> pointer that spawn gave the library, dropped once.
        guard(|| drop(unsafe { Box::from_raw(state as *mut F) }))
    }
}

/// Armed around `Future::poll`: dropped only if the poll unwinds, it drops the future then, and
/// tells the library (`mvx_context_forget_state`) not to call the drop callback for it.
struct DropOnUnwind<F: Future> {
    state: *mut c_void,
    cx: *mut sys::mvx_context,
    _f: PhantomData<F>,
}

impl<F: Future> Drop for DropOnUnwind<F> {
    fn drop(&mut self) {
        // SAFETY: cx is the context of the poll that is unwinding; the state is the task's live
        // future, which the library will not drop now and which is never polled again.
        unsafe {
            sys::mvx_context_forget_state(self.cx);
            Task::<F>::drop_future(self.state);
        }
    }
}

/// A future in the form the library takes as `state`: the future itself (to be copied) or a
/// box. If the library did not take it (spawn failed), `into_inner` gives it back.
pub(crate) enum Prepared<F> {
    Inline(ManuallyDrop<F>),
    Boxed(*mut F),
}

/// The bytes handed over for a zero-sized future (it has none of its own).
static ZST_STATE: u8 = 0;

impl<F: Future> Prepared<F> {
    #[inline]
    pub(crate) fn new(fut: F) -> Prepared<F> {
        if Task::<F>::INLINE {
            Prepared::Inline(ManuallyDrop::new(fut))
        } else {
            Prepared::Boxed(Box::into_raw(Box::new(fut)))
        }
    }

    /// The `state` argument for the library: valid while `self` is neither moved nor dropped.
    #[inline]
    pub(crate) fn state(&mut self) -> *mut c_void {
        match self {
            Prepared::Inline(_) if size_of::<F>() == 0 => &ZST_STATE as *const u8 as *mut c_void,
            Prepared::Inline(f) => &mut **f as *mut F as *mut c_void,
            Prepared::Boxed(p) => *p as *mut c_void,
        }
    }

    /// The library took the state: it owns the future now (our bytes are a moved-from copy).
    /// Prepared has no drop glue (a ManuallyDrop or a raw pointer), so letting it go here drops
    /// nothing of the future.
    #[inline]
    pub(crate) fn consumed(self) {}

    /// The library did not take the state: the future is still ours.
    pub(crate) fn into_inner(self) -> F {
        match self {
            Prepared::Inline(f) => ManuallyDrop::into_inner(f),
            // SAFETY: the pointer came from Box::into_raw in new() and was not handed over.
            Prepared::Boxed(p) => *unsafe { Box::from_raw(p) },
        }
    }
}
