//! `LocalSet` and `spawn_local`, over the library's local task sets: tasks that are polled and
//! dropped only on the thread that owns the set, so their futures need not be `Send`.

use std::cell::Cell;
use std::ffi::c_void;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::error::guard;
use crate::join::JoinHandle;
use crate::raw_task::{Prepared, Task};
use crate::sys::{self, mvx_local_set, mvx_waker, mvx_waker_vtable};
use crate::task::{next_id, Tracked};

/// A set of tasks that all run on the thread driving it, as tokio's `LocalSet`: spawn `!Send`
/// futures into it with [`spawn_local`](LocalSet::spawn_local) (or [`task::spawn_local`](spawn_local)
/// from inside it), and drive them with [`run_until`](LocalSet::run_until),
/// [`block_on`](LocalSet::block_on) or by awaiting the set itself (until all its tasks are done).
///
/// ```
/// use std::rc::Rc;
/// let rt = moduvex::Runtime::new().unwrap();
/// let local = moduvex::task::LocalSet::new();
/// let shared = Rc::new(5); // not Send
/// let n = local.block_on(&rt, async move {
///     let s = shared.clone();
///     moduvex::task::spawn_local(async move { *s * 2 }).await.unwrap()
/// });
/// assert_eq!(n, 10);
/// ```
///
/// The set's tasks may be woken from any thread, and may await tasks of the runtime (and the
/// other way round). The library set is made on first use, tied to the current runtime (the one
/// running the calling task, or entered with `Runtime::enter`).
///
/// Dropping the set cancels its tasks: each unfinished future is dropped, there, on the owner
/// thread, and their join handles resolve to a cancelled `JoinError`.
pub struct LocalSet {
    inner: Rc<Inner>,
}

struct Inner {
    set: Cell<*mut mvx_local_set>,
    /// Unfinished tasks (the set, awaited, ends at 0).
    live: Cell<usize>,
    /// Woken by the library when a task becomes ready while nobody drives the set.
    notify: Arc<Notify>,
}

thread_local! {
    /// The set being driven on this thread (for `task::spawn_local`).
    static CURRENT: Cell<*const Inner> = const { Cell::new(ptr::null()) };
}

impl Default for LocalSet {
    fn default() -> Self {
        LocalSet::new()
    }
}

impl fmt::Debug for LocalSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSet")
            .field("tasks", &self.inner.live.get())
            .finish()
    }
}

impl LocalSet {
    /// An empty set, owned by the calling thread.
    pub fn new() -> LocalSet {
        LocalSet {
            inner: Rc::new(Inner {
                set: Cell::new(ptr::null_mut()),
                live: Cell::new(0),
                notify: Arc::new(Notify {
                    waker: Mutex::new(None),
                }),
            }),
        }
    }

    /// Spawns a `!Send` future into the set; it runs only while the set is driven.
    ///
    /// # Panics
    /// On the set's first use outside of a moduvex runtime: unlike tokio's, a set is tied to a
    /// runtime when it is first used, so spawning into a set before driving it needs a current
    /// runtime (inside a task or `block_on`, or under `Runtime::enter`).
    #[track_caller]
    pub fn spawn_local<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        spawn_into(&self.inner, future)
    }

    /// Runs `future` to completion on the current thread, in the set's context, driving the set's
    /// tasks meanwhile: `task::spawn_local` inside it spawns into this set.
    pub fn run_until<F: Future>(&self, future: F) -> RunUntil<'_, F> {
        RunUntil {
            local: self,
            future,
        }
    }

    /// `rt.block_on(self.run_until(future))`.
    #[track_caller]
    pub fn block_on<F: Future>(&self, rt: &crate::Runtime, future: F) -> F::Output {
        rt.block_on(self.run_until(future))
    }
}

/// The set of the runtime current here, made on first use.
#[track_caller]
fn raw_set(inner: &Inner) -> *mut mvx_local_set {
    let set = inner.set.get();
    if !set.is_null() {
        return set;
    }
    let rt = match crate::runtime::entered_raw() {
        Some(rt) => rt.as_ptr(),
        // SAFETY: no arguments; a borrowed pointer or NULL.
        None => unsafe { sys::mvx_runtime_current() },
    };
    if rt.is_null() {
        panic!(
            "LocalSet used outside of a moduvex runtime: drive it with Runtime::block_on or \
             LocalSet::block_on, or spawn into it inside Runtime::enter"
        );
    }
    let notify = mvx_waker {
        vtable: &NOTIFY_VT,
        data: Arc::as_ptr(&inner.notify) as *mut c_void,
    };
    let mut set = ptr::null_mut();
    // SAFETY: rt is live (it runs this thread's task, or is entered); notify is a valid waker
    // that the library clones.
    let rc = unsafe { sys::mvx_local_set_new(rt, &notify, &mut set) };
    assert_eq!(rc, 0, "mvx_local_set_new failed: {}", crate::last_error());
    inner.set.set(set);
    set
}

#[track_caller]
fn spawn_into<F>(inner: &Rc<Inner>, future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let set = raw_set(inner);
    let id = next_id();
    inner.live.set(inner.live.get() + 1);
    let future = Tracked::new(
        Some(id),
        Counted {
            inner: inner.clone(),
            future,
        },
    );
    let mut state = Prepared::new(future);
    let mut jh = ptr::null_mut();
    // SAFETY: set is this thread's live set; the vtable is the future type's static one; on
    // success the task owns the state. The future is polled and dropped on this thread only.
    let rc = unsafe {
        sys::mvx_local_spawn(
            set,
            &Task::<Tracked<Counted<F>>>::VTABLE,
            state.state(),
            &mut jh,
        )
    };
    if rc == 0 {
        state.consumed();
        // SAFETY: a valid handle we own.
        return JoinHandle::from_raw(unsafe { NonNull::new_unchecked(jh) }, id);
    }
    drop(state.into_inner()); // also counts the task as finished
    match rc {
        sys::MVX_ESHUTDOWN => JoinHandle::refused(id),
        _ => panic!("mvx_local_spawn failed ({rc}): {}", crate::last_error()),
    }
}

/// A local task's future, counting itself out of `live` when dropped (completed or cancelled).
struct Counted<F> {
    inner: Rc<Inner>,
    future: F,
}

impl<F> Drop for Counted<F> {
    fn drop(&mut self) {
        self.inner.live.set(self.inner.live.get() - 1);
    }
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: structurally pinned, never moved out.
        unsafe { self.map_unchecked_mut(|c| &mut c.future) }.poll(cx)
    }
}

/// Spawns a `!Send` future into the [`LocalSet`] being driven on this thread (from one of its
/// tasks, or inside its `run_until`).
///
/// # Panics
/// Outside of a `LocalSet`, with tokio's message.
#[track_caller]
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let cur = CURRENT.with(Cell::get);
    if cur.is_null() {
        panic!("`spawn_local` called from outside of a `task::LocalSet`");
    }
    // SAFETY: CURRENT points at the Inner of a set being driven on this thread (Drive keeps it
    // alive and resets CURRENT when done). Cloning the Rc through a ManuallyDrop borrow keeps
    // its count right.
    let inner = std::mem::ManuallyDrop::new(unsafe { Rc::from_raw(cur) });
    spawn_into(&inner, future)
}

/// Sets CURRENT for the duration of a drive, restoring the outer one (sets may nest).
struct Enter(*const Inner);

impl Enter {
    fn new(inner: &Rc<Inner>) -> Enter {
        Enter(CURRENT.with(|c| c.replace(Rc::as_ptr(inner))))
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

/// Rounds of (poll the future, run the ready tasks) in one poll before yielding.
const ROUNDS: usize = 32;

/// Runs the set's ready tasks; true if any ran.
fn tick(set: *mut mvx_local_set) -> bool {
    // SAFETY: the set is live and owned by this thread (LocalSet is !Send). Driving it again
    // from one of its own tasks nests, which the library allows.
    let n = unsafe { sys::mvx_local_set_run_until_idle(set) };
    n > 0
}

/// The future of [`LocalSet::run_until`].
#[must_use = "futures do nothing unless awaited"]
pub struct RunUntil<'a, F> {
    local: &'a LocalSet,
    future: F,
}

impl<F: Future> Future for RunUntil<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned; `local` is a shared reference.
        let this = unsafe { self.get_unchecked_mut() };
        let inner = &this.local.inner;
        let set = raw_set(inner);
        inner.notify.register(cx.waker());
        let _enter = Enter::new(inner);
        for _ in 0..ROUNDS {
            // SAFETY: as above.
            if let Poll::Ready(v) = unsafe { Pin::new_unchecked(&mut this.future) }.poll(cx) {
                return Poll::Ready(v);
            }
            if !tick(set) {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref(); // more to do: let others run first
        Poll::Pending
    }
}

/// Awaiting the set runs its tasks until every one has finished.
impl Future for LocalSet {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let inner = &self.inner;
        if inner.live.get() == 0 {
            return Poll::Ready(());
        }
        let set = raw_set(inner);
        inner.notify.register(cx.waker());
        let _enter = Enter::new(inner);
        for _ in 0..ROUNDS {
            let ran = tick(set);
            if inner.live.get() == 0 {
                return Poll::Ready(());
            }
            if !ran {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Drop for LocalSet {
    fn drop(&mut self) {
        let set = self.inner.set.get();
        if set.is_null() {
            return;
        }
        let _enter = Enter::new(&self.inner);
        // SAFETY: our set, on its owner thread (LocalSet is !Send); it cancels every task,
        // dropping their futures here.
        let rc = unsafe { sys::mvx_local_set_free(set) };
        if rc == 0 {
            self.inner.set.set(ptr::null_mut());
        } // else: dropped from inside one of its own tasks; the set is leaked.
    }
}

/// The waker slot the library's notify waker wakes: whoever drives the set last registered.
struct Notify {
    waker: Mutex<Option<Waker>>,
}

impl Notify {
    fn register(&self, w: &Waker) {
        let mut slot = self.waker.lock().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Some(old) if old.will_wake(w) => {}
            _ => *slot = Some(w.clone()),
        }
    }

    fn wake(&self) {
        let w = self.waker.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(w) = w {
            w.wake();
        }
    }
}

static NOTIFY_VT: mvx_waker_vtable = mvx_waker_vtable {
    size: std::mem::size_of::<mvx_waker_vtable>(),
    clone: Some(notify_clone),
    wake: Some(notify_wake),
    wake_by_ref: Some(notify_wake_by_ref),
    drop: Some(notify_drop),
};

// data: an Arc<Notify> pointer; each library waker holds one strong reference.
unsafe extern "C" fn notify_clone(data: *mut c_void) -> *mut c_void {
    // SAFETY: the waker being cloned holds a reference.
    unsafe { Arc::increment_strong_count(data as *const Notify) };
    data
}
unsafe extern "C" fn notify_wake_by_ref(data: *mut c_void) {
    // SAFETY: the caller's waker holds a reference for the call.
    guard(|| unsafe { &*(data as *const Notify) }.wake())
}
unsafe extern "C" fn notify_wake(data: *mut c_void) {
    // SAFETY: as wake_by_ref, then the consumed waker's reference is released.
    unsafe {
        notify_wake_by_ref(data);
        notify_drop(data);
    }
}
unsafe extern "C" fn notify_drop(data: *mut c_void) {
    // SAFETY: releases the reference of the waker being dropped.
    guard(|| unsafe { Arc::decrement_strong_count(data as *const Notify) })
}
