//! `task_local!`: values scoped to a future, carried across its awaits (each poll of the scoped
//! future swaps the value into a thread-local and back), so neither other tasks on the same
//! thread nor tasks it spawns see it.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread::LocalKey as ThreadLocalKey;

/// Declares task-local keys, as tokio's `task_local!`:
///
/// ```
/// moduvex::task_local! {
///     static REQUEST: u32;
/// }
/// # let rt = moduvex::Runtime::new().unwrap();
/// rt.block_on(REQUEST.scope(7, async {
///     moduvex::yield_now().await;
///     assert_eq!(REQUEST.get(), 7); // still there after an await
/// }));
/// assert!(REQUEST.try_with(|_| ()).is_err()); // and gone outside the scope
/// ```
#[macro_export]
macro_rules! task_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty; $($rest:tt)*) => {
        $crate::__task_local_key!($(#[$attr])* $vis $name, $t);
        $crate::task_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty) => {
        $crate::__task_local_key!($(#[$attr])* $vis $name, $t);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __task_local_key {
    ($(#[$attr:meta])* $vis:vis $name:ident, $t:ty) => {
        $(#[$attr])*
        $vis static $name: $crate::task::LocalKey<$t> = {
            ::std::thread_local! {
                static __MVX_TASK_LOCAL: ::std::cell::RefCell<::std::option::Option<$t>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }
            $crate::task::LocalKey::__new(&__MVX_TASK_LOCAL)
        };
    };
}

/// A task-local key, declared with [`task_local!`](crate::task_local).
pub struct LocalKey<T: 'static> {
    inner: &'static ThreadLocalKey<RefCell<Option<T>>>,
}

/// The error of [`LocalKey::try_with`]: the value is not set here (outside any scope of the key).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AccessError(());

impl fmt::Debug for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessError")
    }
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task-local value not set")
    }
}

impl std::error::Error for AccessError {}

/// Puts the value into the thread-local for the duration of a poll (or a closure) and takes it
/// back out when dropped, also while unwinding.
struct Swap<'a, T: 'static> {
    key: &'static ThreadLocalKey<RefCell<Option<T>>>,
    slot: &'a mut Option<T>,
}

impl<'a, T: 'static> Swap<'a, T> {
    fn enter(key: &'static ThreadLocalKey<RefCell<Option<T>>>, slot: &'a mut Option<T>) -> Self {
        key.with(|c| std::mem::swap(&mut *c.borrow_mut(), slot));
        Swap { key, slot }
    }
}

impl<T: 'static> Drop for Swap<'_, T> {
    fn drop(&mut self) {
        // The thread-local may be gone at thread exit; the value is then dropped with it.
        let _ = self
            .key
            .try_with(|c| std::mem::swap(&mut *c.borrow_mut(), self.slot));
    }
}

impl<T: 'static> LocalKey<T> {
    #[doc(hidden)]
    pub const fn __new(inner: &'static ThreadLocalKey<RefCell<Option<T>>>) -> Self {
        LocalKey { inner }
    }

    /// Runs `future` with the key set to `value`, across all its awaits; the value is dropped
    /// with the returned future.
    pub fn scope<F: Future>(&'static self, value: T, future: F) -> TaskLocalFuture<T, F> {
        TaskLocalFuture {
            key: self,
            slot: Some(value),
            future,
        }
    }

    /// Runs `f` with the key set to `value`.
    #[track_caller]
    pub fn sync_scope<F: FnOnce() -> R, R>(&'static self, value: T, f: F) -> R {
        let mut slot = Some(value);
        let _swap = Swap::enter(self.inner, &mut slot);
        f()
    }

    /// Calls `f` with a reference to the value.
    ///
    /// # Panics
    /// Outside any scope of the key.
    #[track_caller]
    pub fn with<F: FnOnce(&T) -> R, R>(&'static self, f: F) -> R {
        match self.try_with(f) {
            Ok(r) => r,
            Err(_) => panic!(
                "cannot access a task-local storage value without setting it first; use \
                 LocalKey::scope or LocalKey::sync_scope"
            ),
        }
    }

    /// Calls `f` with a reference to the value, or returns `AccessError` outside any scope.
    pub fn try_with<F: FnOnce(&T) -> R, R>(&'static self, f: F) -> Result<R, AccessError> {
        self.inner
            .try_with(|c| c.borrow().as_ref().map(f))
            .ok()
            .flatten()
            .ok_or(AccessError(()))
    }
}

impl<T: Copy + 'static> LocalKey<T> {
    /// A copy of the value.
    ///
    /// # Panics
    /// Outside any scope of the key.
    #[track_caller]
    pub fn get(&'static self) -> T {
        self.with(|v| *v)
    }
}

impl<T: 'static> fmt::Debug for LocalKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalKey { .. }")
    }
}

/// The future of [`LocalKey::scope`].
#[must_use = "futures do nothing unless awaited"]
pub struct TaskLocalFuture<T: 'static, F> {
    key: &'static LocalKey<T>,
    slot: Option<T>,
    future: F,
}

impl<T: 'static, F: Future> Future for TaskLocalFuture<T, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned (never moved out); `slot` is not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let _swap = Swap::enter(this.key.inner, &mut this.slot);
        // SAFETY: as above.
        unsafe { Pin::new_unchecked(&mut this.future) }.poll(cx)
    }
}

impl<T: 'static, F> fmt::Debug for TaskLocalFuture<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TaskLocalFuture { .. }")
    }
}
