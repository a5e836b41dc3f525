//! The cooperative budget, as tokio's: a task gets 128 units per poll; each of the binding's
//! awaitables that is ready (a finished `JoinHandle`, `JoinSet::join_next`, the second poll of
//! `yield_now`, `consume_budget`) uses one, and once they are used up it returns pending after
//! waking its task, so a task looping on always-ready handles still yields every 128 of them.
//! Outside of a task (another executor, a plain thread) nothing is counted.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Units left in this poll; None: unconstrained.
#[derive(Clone, Copy)]
pub(crate) struct Budget(Option<u8>);

impl Budget {
    pub(crate) const fn initial() -> Budget {
        Budget(Some(128))
    }
}

thread_local! {
    static BUDGET: Cell<Budget> = const { Cell::new(Budget(None)) };
}

/// Sets the thread's budget; returns the previous one.
#[inline]
pub(crate) fn set(b: Budget) -> Budget {
    BUDGET.with(|c| c.replace(b))
}

/// Uses one unit; when none is left, wakes the task and returns pending (it yields).
#[inline]
pub(crate) fn poll_proceed(cx: &Context<'_>) -> Poll<()> {
    BUDGET.with(|c| match c.get().0 {
        None => Poll::Ready(()),
        Some(0) => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        Some(n) => {
            c.set(Budget(Some(n - 1)));
            Poll::Ready(())
        }
    })
}

/// Gives back the unit of a `poll_proceed` whose awaitable then was not ready (no progress).
#[inline]
pub(crate) fn refund() {
    BUDGET.with(|c| {
        if let Some(n) = c.get().0 {
            c.set(Budget(Some(n.saturating_add(1))));
        }
    })
}

/// Uses one unit of the task's budget, yielding first if it is used up: put it in loops that do
/// not otherwise reach a point where they would wait, so that they let other tasks run.
///
/// ```
/// # let rt = moduvex::Runtime::new().unwrap();
/// rt.block_on(async {
///     for _ in 0..1000 {
///         moduvex::task::consume_budget().await; // yields once every 128 rounds
///     }
/// });
/// ```
pub async fn consume_budget() {
    std::future::poll_fn(|cx| poll_proceed(cx)).await
}

/// Runs `future` without a budget: the binding's awaitables inside it never yield because of
/// the budget (they still wait when they are not ready).
pub fn unconstrained<F: Future>(future: F) -> Unconstrained<F> {
    Unconstrained { future }
}

/// The future of [`unconstrained`].
#[must_use = "futures do nothing unless awaited"]
pub struct Unconstrained<F> {
    future: F,
}

impl<F: Future> Future for Unconstrained<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        struct Restore(Budget);
        impl Drop for Restore {
            fn drop(&mut self) {
                set(self.0);
            }
        }
        let _restore = Restore(set(Budget(None)));
        // SAFETY: structurally pinned, never moved out.
        unsafe { self.map_unchecked_mut(|u| &mut u.future) }.poll(cx)
    }
}
