//! `JoinSet`: a set of tasks whose outcomes come out in the order the tasks finish.
//!
//! Each task of the set has an entry, and the library holds a waker on it (a foreign
//! `mvx_waker` whose data is the entry): when the task finishes, the waker puts the entry's
//! index on the ready queue and wakes whoever waits in `join_next`. Entries live in chunks that
//! never move, shared (with the queue) by the set and the library's wakers through one `Arc`;
//! a finished entry is reused by the next spawn. So a completion allocates nothing; a spawn
//! allocates only its task (and, every 64 spawns beyond the most the set ever held, a chunk).

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::ffi::c_void;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::error::{guard, JoinError};
use crate::join::JoinHandle;
use crate::runtime::Handle;
use crate::sys::{mvx_waker, mvx_waker_vtable};
use crate::task::{self, Id};

const CHUNK: usize = 64;

/// A set of tasks spawned on the runtime, as tokio's `JoinSet`: [`join_next`](Self::join_next)
/// awaits the next one to finish and gives its outcome (`None` once the set is empty).
///
/// ```
/// let rt = moduvex::Runtime::new().unwrap();
/// let sum = rt.block_on(async {
///     let mut set = moduvex::task::JoinSet::new();
///     for i in 0..10u64 {
///         set.spawn(async move { i });
///     }
///     let mut sum = 0;
///     while let Some(r) = set.join_next().await {
///         sum += r.unwrap();
///     }
///     sum
/// });
/// assert_eq!(sum, 45);
/// ```
///
/// Dropping the set aborts every task still in it. `spawn` returns the task's [`Id`] (tokio
/// returns an `AbortHandle`, which moduvex does not have yet; use
/// [`abort_all`](Self::abort_all)).
pub struct JoinSet<T> {
    shared: Arc<Shared>,
    /// By entry index; None: a free entry.
    handles: Vec<Option<JoinHandle<T>>>,
    free: Vec<u32>,
    len: usize,
    /// Indices taken from the shared queue, served in order (owner only).
    ready: VecDeque<u32>,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Owner-only growth (&mut JoinSet); wakers reach entries only through their own pointers
    /// into boxed chunks, which never move and are freed with Shared.
    chunks: UnsafeCell<Vec<Box<[Entry]>>>,
}

// SAFETY: `chunks` is touched only by the JoinSet's owner (through &mut JoinSet) and by Drop of
// the last reference; other threads use entries through stable pointers, and entries are Sync
// (an AtomicBool and plain data written before the entry is shared).
unsafe impl Sync for Shared {}
// SAFETY: as Sync; everything else in Shared is Send.
unsafe impl Send for Shared {}

struct Queue {
    ready: VecDeque<u32>,
    waiter: Option<Waker>,
}

struct Entry {
    shared: *const Shared,
    index: u32,
    /// On the ready queue already (a task's outcome is reported once, but an entry is reused).
    queued: AtomicBool,
}

impl<T> Default for JoinSet<T> {
    fn default() -> Self {
        JoinSet::new()
    }
}

impl<T> fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinSet").field("len", &self.len).finish()
    }
}

impl<T> JoinSet<T> {
    /// An empty set.
    pub fn new() -> JoinSet<T> {
        JoinSet {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue {
                    ready: VecDeque::new(),
                    waiter: None,
                }),
                chunks: UnsafeCell::new(Vec::new()),
            }),
            handles: Vec::new(),
            free: Vec::new(),
            len: 0,
            ready: VecDeque::new(),
        }
    }

    /// The number of tasks in the set (finished ones included until `join_next` returns them).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the set holds no task.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn entry(&self, index: u32) -> *const Entry {
        // SAFETY: owner access (&self of the JoinSet); the chunk exists for every index handed
        // out, and its entries never move.
        let chunks = unsafe { &*self.shared.chunks.get() };
        &chunks[index as usize / CHUNK][index as usize % CHUNK]
    }

    fn entry_waker(&self, index: u32) -> mvx_waker {
        mvx_waker {
            vtable: &ENTRY_VT,
            data: self.entry(index) as *mut c_void,
        }
    }

    /// Adds a task by its handle: the library gets a waker on the task's entry.
    fn insert(&mut self, mut handle: JoinHandle<T>) -> Id {
        let id = handle.id();
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = self.handles.len();
                // SAFETY: owner access; wakers never touch the Vec itself.
                let chunks = unsafe { &mut *self.shared.chunks.get() };
                if i == chunks.len() * CHUNK {
                    let base = i as u32;
                    let shared = Arc::as_ptr(&self.shared);
                    chunks.push(
                        (0..CHUNK as u32)
                            .map(|k| Entry {
                                shared,
                                index: base + k,
                                queued: AtomicBool::new(false),
                            })
                            .collect(),
                    );
                }
                self.handles.push(None);
                i as u32
            }
        };
        if handle.register(&self.entry_waker(index)) {
            self.ready.push_back(index); // finished already: no wake will come
        }
        self.handles[index as usize] = Some(handle);
        self.len += 1;
        id
    }

    /// Spawns `future` on the current runtime (see [`spawn`](crate::spawn)) into the set.
    ///
    /// # Panics
    /// Outside of a moduvex runtime.
    #[track_caller]
    pub fn spawn<F>(&mut self, future: F) -> Id
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.insert(crate::spawn(future))
    }

    /// Spawns `future` on the runtime of `handle` into the set.
    pub fn spawn_on<F>(&mut self, future: F, handle: &Handle) -> Id
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.insert(handle.spawn(future))
    }

    /// Runs `f` on the current runtime's blocking pool, into the set.
    ///
    /// # Panics
    /// Outside of a moduvex runtime.
    #[track_caller]
    pub fn spawn_blocking<F>(&mut self, f: F) -> Id
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.insert(crate::spawn_blocking(f))
    }

    /// Spawns a `!Send` future into the [`LocalSet`](crate::task::LocalSet) being driven here,
    /// into the set.
    ///
    /// # Panics
    /// Outside of a `LocalSet`.
    #[track_caller]
    pub fn spawn_local<F>(&mut self, future: F) -> Id
    where
        F: Future<Output = T> + 'static,
        T: 'static,
    {
        self.insert(task::spawn_local(future))
    }

    /// Waits for the next task to finish and returns its outcome; `None` if the set is empty.
    /// Outcomes come in the order the tasks finished. Cancel-safe: dropping the future loses
    /// nothing.
    pub async fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        std::future::poll_fn(|cx| self.poll_join_next(cx)).await
    }

    /// As [`join_next`](Self::join_next), with the task's id.
    pub async fn join_next_with_id(&mut self) -> Option<Result<(Id, T), JoinError>> {
        std::future::poll_fn(|cx| self.poll_join_next_with_id(cx)).await
    }

    /// The outcome of a task that has finished, if any (without waiting); `None` also while
    /// the set holds unfinished tasks only.
    pub fn try_join_next(&mut self) -> Option<Result<T, JoinError>> {
        self.next_ready(None).map(|(_, r)| r)
    }

    /// As [`try_join_next`](Self::try_join_next), with the task's id.
    pub fn try_join_next_with_id(&mut self) -> Option<Result<(Id, T), JoinError>> {
        self.next_ready(None).map(|(id, r)| r.map(|v| (id, v)))
    }

    /// The polling form of [`join_next`](Self::join_next).
    pub fn poll_join_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, JoinError>>> {
        self.poll_join_next_with_id(cx)
            .map(|o| o.map(|r| r.map(|(_, v)| v)))
    }

    /// The polling form of [`join_next_with_id`](Self::join_next_with_id).
    pub fn poll_join_next_with_id(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(Id, T), JoinError>>> {
        if self.len == 0 {
            return Poll::Ready(None);
        }
        if task::poll_proceed(cx).is_pending() {
            return Poll::Pending;
        }
        match self.next_ready(Some(cx.waker())) {
            Some((id, r)) => Poll::Ready(Some(r.map(|v| (id, v)))),
            None => {
                task::refund();
                Poll::Pending
            }
        }
    }

    /// Takes the next finished task's outcome; with `waiter`, registers it when there is none.
    fn next_ready(&mut self, waiter: Option<&Waker>) -> Option<(Id, Result<T, JoinError>)> {
        loop {
            let index = match self.ready.pop_front() {
                Some(i) => i,
                None => {
                    let mut q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
                    if q.ready.is_empty() {
                        if let Some(w) = waiter {
                            match &q.waiter {
                                Some(old) if old.will_wake(w) => {}
                                _ => q.waiter = Some(w.clone()),
                            }
                        }
                        return None;
                    }
                    // Take the whole batch at once; our empty queue keeps its capacity there.
                    std::mem::swap(&mut q.ready, &mut self.ready);
                    continue;
                }
            };
            // SAFETY: the entry exists (indices come from our entries) and never moves.
            unsafe { &*self.entry(index) }
                .queued
                .store(false, Ordering::SeqCst);
            let waker = self.entry_waker(index);
            let Some(Some(handle)) = self.handles.get_mut(index as usize) else {
                continue; // reported for a task no longer in the set (detached)
            };
            let id = handle.id();
            if let Poll::Ready(r) = handle.poll_with(&waker) {
                self.handles[index as usize] = None;
                self.free.push(index);
                self.len -= 1;
                return Some((id, r));
            }
            // Not finished (a report for the entry's earlier task): the waker is registered again.
        }
    }

    /// Requests cancellation of every task in the set (see `JoinHandle::abort`); their
    /// outcomes still come out of `join_next`, as cancelled errors unless they finished first.
    pub fn abort_all(&mut self) {
        self.handles.iter().flatten().for_each(JoinHandle::abort);
    }

    /// Aborts every task and waits until all have finished (their outcomes are dropped).
    pub async fn shutdown(&mut self) {
        self.abort_all();
        while self.join_next().await.is_some() {}
    }

    /// Removes every task from the set without aborting it: they keep running, detached.
    pub fn detach_all(&mut self) {
        self.handles.clear(); // releasing a handle detaches its task
        self.free.clear();
        // `ready` keeps its indices: popping one clears its entry's `queued` flag, which a
        // later task of that entry needs; with no handle there, it is skipped.
        self.len = 0;
    }
}

/// Dropping the set aborts every task still in it.
impl<T> Drop for JoinSet<T> {
    fn drop(&mut self) {
        self.abort_all();
    }
}

impl<T, F> std::iter::Extend<F> for JoinSet<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    fn extend<I: IntoIterator<Item = F>>(&mut self, iter: I) {
        iter.into_iter().for_each(|f| {
            self.spawn(f);
        });
    }
}

impl<T, F> std::iter::FromIterator<F> for JoinSet<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    fn from_iter<I: IntoIterator<Item = F>>(iter: I) -> Self {
        let mut set = JoinSet::new();
        set.extend(iter);
        set
    }
}

// ---- the entry waker: data = *const Entry; each library clone holds a reference on Shared ----

static ENTRY_VT: mvx_waker_vtable = mvx_waker_vtable {
    size: std::mem::size_of::<mvx_waker_vtable>(),
    clone: Some(entry_clone),
    wake: Some(entry_wake),
    wake_by_ref: Some(entry_wake_by_ref),
    drop: Some(entry_drop),
};

unsafe extern "C" fn entry_clone(data: *mut c_void) -> *mut c_void {
    // SAFETY: the waker being cloned keeps Shared (and so the entry) alive; this adds a
    // reference for the clone. The borrowed waker of insert/next_ready is kept alive by the
    // JoinSet's own Arc.
    unsafe { Arc::increment_strong_count((*(data as *const Entry)).shared) };
    data
}

unsafe extern "C" fn entry_wake_by_ref(data: *mut c_void) {
    // SAFETY: as clone: the caller's waker keeps the entry alive.
    let entry = unsafe { &*(data as *const Entry) };
    if entry.queued.swap(true, Ordering::SeqCst) {
        return;
    }
    // SAFETY: the entry's Shared is alive while the entry is.
    let shared = unsafe { &*entry.shared };
    guard(|| {
        let waiter = {
            let mut q = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.ready.push_back(entry.index);
            q.waiter.take()
        };
        if let Some(w) = waiter {
            w.wake();
        }
    })
}

unsafe extern "C" fn entry_wake(data: *mut c_void) {
    // SAFETY: wake, then release the consumed waker's reference.
    unsafe {
        entry_wake_by_ref(data);
        entry_drop(data);
    }
}

unsafe extern "C" fn entry_drop(data: *mut c_void) {
    // SAFETY: releases this waker's reference on Shared (the last one frees it and the entry).
    guard(|| unsafe { Arc::decrement_strong_count((*(data as *const Entry)).shared) })
}
