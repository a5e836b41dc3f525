//! Task ids, and the wrapper every spawned future runs in: it tells the thread which task it is
//! polling (for `task::id()`) and gives the poll a fresh cooperative budget.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::num::NonZeroU64;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use super::coop;

/// A task's id: unique among every task of the process, for its whole life (so unique for a
/// runtime's life too). `Display` is the number, `Debug` is `Id(N)`, as tokio's. Ids are not
/// ordered by spawn time across threads (each thread takes them in blocks).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(NonZeroU64);

impl Id {
    /// The number.
    pub fn as_u64(self) -> u64 {
        self.0.get()
    }

    /// # Safety
    /// `n` is not 0.
    pub(crate) unsafe fn from_u64_unchecked(n: u64) -> Id {
        // SAFETY: the caller's.
        Id(unsafe { NonZeroU64::new_unchecked(n) })
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.0)
    }
}

/// Ids are handed to threads in blocks, so that spawning does not contend on one counter.
const BLOCK: u64 = 1024;
static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// (next id, end of this thread's block)
    static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    /// The id of the task being polled on this thread; 0: none.
    static CURRENT: Cell<u64> = const { Cell::new(0) };
}

/// A new id. A 64-bit counter does not wrap within any program's life.
#[inline]
pub(crate) fn next_id() -> Id {
    let n = IDS.with(|c| {
        let (next, end) = c.get();
        if next != end {
            c.set((next + 1, end));
            return next;
        }
        let first = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed);
        c.set((first + 1, first + BLOCK));
        first
    });
    Id(NonZeroU64::new(n).expect("task ids start at 1"))
}

/// The id of the task being polled, or of the `spawn_blocking` closure running.
///
/// # Panics
/// Outside of a task (tokio's message).
#[track_caller]
pub fn id() -> Id {
    try_id().expect("Can't get a task id when not inside a task")
}

/// The id of the task being polled, or None outside of a task (also inside a `block_on`
/// future, which is no task, as in tokio).
pub fn try_id() -> Option<Id> {
    NonZeroU64::new(CURRENT.with(Cell::get)).map(Id)
}

/// A spawned future with its id. Each poll runs with the thread's current id set to the task's
/// and a fresh budget, both restored afterwards (also when the poll panics), so nested polls
/// (a local set driven from inside a task) see their own.
pub(crate) struct Tracked<F> {
    id: u64,
    future: F,
}

impl<F> Tracked<F> {
    /// `id` None: a `block_on` future (a budget, no id).
    #[inline]
    pub(crate) fn new(id: Option<Id>, future: F) -> Tracked<F> {
        Tracked {
            id: id.map_or(0, Id::as_u64),
            future,
        }
    }
}

struct Restore {
    id: u64,
    budget: coop::Budget,
}

impl Drop for Restore {
    #[inline]
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.id));
        coop::set(self.budget);
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: the future is structurally pinned: never moved out of the pinned Tracked.
        let this = unsafe { self.get_unchecked_mut() };
        let _restore = Restore {
            id: CURRENT.with(|c| c.replace(this.id)),
            budget: coop::set(coop::Budget::initial()),
        };
        // SAFETY: as above.
        unsafe { Pin::new_unchecked(&mut this.future) }.poll(cx)
    }
}
