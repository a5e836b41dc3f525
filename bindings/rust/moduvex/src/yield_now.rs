//! `yield_now`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Yields to the scheduler: the task goes to the back of its worker's queue, so other tasks run
/// before it is polled again. Works under any executor (it wakes itself and returns pending once).
///
/// ```
/// # let rt = moduvex::Runtime::new().unwrap();
/// rt.block_on(async { moduvex::yield_now().await });
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future of [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            // The budget counts the return too: a loop of yields is a loop of polls.
            return crate::task::poll_proceed(cx);
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
