//! Time: [`sleep`], [`timeout`], [`interval`], with tokio's shapes and semantics, on the
//! library's timers (`mvx_timer`, one hierarchical wheel per worker; see docs/timers.md).
//!
//! ```
//! use std::time::Duration;
//! use moduvex::time::{self, Instant};
//!
//! let rt = moduvex::Runtime::new().unwrap();
//! rt.block_on(async {
//!     let start = Instant::now();
//!     time::sleep(Duration::from_millis(5)).await;
//!     assert!(start.elapsed() >= Duration::from_millis(5)); // never early
//!
//!     let slow = time::sleep(Duration::from_secs(3600));
//!     assert!(time::timeout(Duration::from_millis(1), slow).await.is_err());
//!
//!     let mut ticks = time::interval(Duration::from_millis(2));
//!     ticks.tick().await; // the first tick completes at once
//!     ticks.tick().await;
//! });
//! ```
//!
//! A [`Sleep`] is created inside a runtime (a task, a `block_on` future, a blocking closure) and
//! belongs to that runtime, but may be awaited anywhere, under another executor too. The timer
//! fires no earlier than its deadline, usually within the wheel's resolution (131 us) after it.

use std::fmt;
use std::future::Future;
use std::marker::PhantomPinned;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::sys;
use crate::waker::{self, ForeignWaker};

// ------------------------------------------------------------------------------- Instant

/// A point on the runtime's clock (`mvx_now()`: CLOCK_MONOTONIC, nanoseconds), like
/// `tokio::time::Instant`. Arithmetic saturates instead of overflowing.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(i64);

impl Instant {
    /// The current instant.
    pub fn now() -> Instant {
        // SAFETY: no arguments, never fails.
        Instant(unsafe { sys::mvx_now() })
    }

    /// The instant as nanoseconds of `mvx_now()`'s clock.
    pub fn as_nanos(self) -> i64 {
        self.0
    }

    /// The instant for `std`'s `Instant` (the same clock, read at once on both sides).
    pub fn from_std(std: std::time::Instant) -> Instant {
        let (now, std_now) = (Instant::now(), std::time::Instant::now());
        match std_now.checked_duration_since(std) {
            Some(ago) => now - ago,
            None => now + std.duration_since(std_now),
        }
    }

    /// The `std` instant for this one.
    pub fn into_std(self) -> std::time::Instant {
        let (now, std_now) = (Instant::now(), std::time::Instant::now());
        if self <= now {
            std_now - now.duration_since(self)
        } else {
            std_now + self.duration_since(now)
        }
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn duration_since(&self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }

    /// The time from `earlier` to `self`, `None` if `earlier` is later.
    pub fn checked_duration_since(&self, earlier: Instant) -> Option<Duration> {
        let d = self.0.checked_sub(earlier.0)?;
        (d >= 0).then(|| Duration::from_nanos(d as u64))
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(&self, earlier: Instant) -> Duration {
        self.checked_duration_since(earlier).unwrap_or_default()
    }

    /// The time since this instant.
    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(*self)
    }

    /// `self + d`, `None` on overflow.
    pub fn checked_add(&self, d: Duration) -> Option<Instant> {
        let ns = i64::try_from(d.as_nanos()).ok()?;
        self.0.checked_add(ns).map(Instant)
    }

    /// `self - d`, `None` on overflow.
    pub fn checked_sub(&self, d: Duration) -> Option<Instant> {
        let ns = i64::try_from(d.as_nanos()).ok()?;
        self.0.checked_sub(ns).map(Instant)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        self.checked_add(d).unwrap_or(Instant(i64::MAX))
    }
}
impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}
impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, d: Duration) -> Instant {
        self.checked_sub(d).unwrap_or(Instant(i64::MIN))
    }
}
impl SubAssign<Duration> for Instant {
    fn sub_assign(&mut self, d: Duration) {
        *self = *self - d;
    }
}
impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}
impl From<std::time::Instant> for Instant {
    fn from(std: std::time::Instant) -> Instant {
        Instant::from_std(std)
    }
}
impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instant({} ns)", self.0)
    }
}

// --------------------------------------------------------------------------------- Sleep

/// Waits until `duration` has elapsed, like `tokio::time::sleep`.
///
/// # Panics
/// When called outside of a moduvex runtime.
#[track_caller]
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(Instant::now() + duration)
}

/// Waits until `deadline`, like `tokio::time::sleep_until`.
///
/// # Panics
/// When called outside of a moduvex runtime.
#[track_caller]
pub fn sleep_until(deadline: Instant) -> Sleep {
    let rt = crate::current("sleep");
    let mut timer = sys::mvx_timer {
        opaque: [std::ptr::null_mut(); 6],
    };
    // SAFETY: rt is the live runtime of this thread's task; the timer is ours (not armed, so it
    // may move into the Sleep).
    let r = unsafe { sys::mvx_timer_init(&mut timer, rt) };
    assert_eq!(r, 0, "mvx_timer_init failed: {}", crate::last_error());
    Sleep {
        timer,
        deadline,
        elapsed: false,
        foreign: None,
        last: None,
        _pinned: PhantomPinned,
    }
}

/// The future of [`sleep`] and [`sleep_until`]. `!Unpin`: the library links the armed timer
/// by its address, so await it pinned (`tokio::pin!`, `Box::pin`, or `.await` directly).
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    timer: sys::mvx_timer,
    deadline: Instant,
    elapsed: bool,
    /// Another executor's waker, shared with the library (as JoinHandle does).
    foreign: Option<ForeignWaker>,
    /// The waker of the last poll, for reset() to re-arm with.
    last: Option<std::task::Waker>,
    _pinned: PhantomPinned,
}

// SAFETY: the timer may be used from any thread, one at a time (&mut), and freed from any
// thread (header: mvx_timer); &Sleep only reads the deadline and the elapsed flag.
unsafe impl Send for Sleep {}
// SAFETY: see Send.
unsafe impl Sync for Sleep {}

impl Sleep {
    /// The instant at which this sleep completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline was seen to have passed (by a poll).
    pub fn is_elapsed(&self) -> bool {
        self.elapsed
    }

    /// Moves the deadline, as `tokio::time::Sleep::reset`: the sleep is pending again until the
    /// new deadline, and the waker of its last poll is woken at the new deadline.
    pub fn reset(self: Pin<&mut Self>, deadline: Instant) {
        // SAFETY: no field is moved out; the timer stays where it is.
        let this = unsafe { self.get_unchecked_mut() };
        this.deadline = deadline;
        this.elapsed = false;
        // SAFETY: our initialised timer, used by this thread only (&mut).
        if unsafe { sys::mvx_timer_cancel(&mut this.timer) } == 1 {
            // It was armed, so a task awaits it: re-arm for the new deadline with that task's
            // waker, or wake it at once if the new deadline has passed.
            if let Some(w) = this.last.clone() {
                if this.arm(&w).is_ready() {
                    w.wake();
                }
            }
        }
    }

    fn poll_elapsed(&mut self, cx: &Context<'_>) -> Poll<()> {
        if self.elapsed {
            return Poll::Ready(());
        }
        let w = cx.waker();
        if !self.last.as_ref().is_some_and(|l| l.will_wake(w)) {
            self.last = Some(w.clone());
        }
        self.arm(w)
    }

    fn arm(&mut self, w: &std::task::Waker) -> Poll<()> {
        let mvx = match waker::as_mvx_waker(w) {
            Some(ours) => {
                self.foreign = None;
                ours
            }
            None => {
                match &self.foreign {
                    Some(f) if f.will_wake(w) => {}
                    _ => self.foreign = Some(ForeignWaker::new(w.clone())),
                }
                self.foreign.as_ref().map(ForeignWaker::as_mvx).unwrap()
            }
        };
        // SAFETY: our initialised timer, pinned (the caller holds Pin<&mut Sleep>); mvx is a
        // valid waker for the call (the library clones it to keep it).
        match unsafe { sys::mvx_timer_arm(&mut self.timer, self.deadline.0, &mvx) } {
            0 => {
                self.elapsed = true;
                Poll::Ready(())
            }
            sys::MVX_EAGAIN => Poll::Pending,
            sys::MVX_ESHUTDOWN => panic!("sleep polled after its runtime was shut down"),
            other => panic!("mvx_timer_arm returned {other}: {}", crate::last_error()),
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: the timer is not moved; it stays pinned with self.
        unsafe { self.get_unchecked_mut() }.poll_elapsed(cx)
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        // SAFETY: our initialised timer; cancelled and released here, also after the runtime
        // was released (the timer keeps its memory alive).
        unsafe { sys::mvx_timer_fini(&mut self.timer) };
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("elapsed", &self.elapsed)
            .finish()
    }
}

// ------------------------------------------------------------------------------ Timeout

/// The error of a [`timeout`] whose deadline came first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}
impl std::error::Error for Elapsed {}

/// Runs `future` for at most `duration`, like `tokio::time::timeout`: `Ok` with its output if it
/// completes first, `Err(Elapsed)` otherwise (the future is then dropped with the `Timeout`).
/// The future is polled first, so one that is ready at once never fails.
///
/// # Panics
/// When called outside of a moduvex runtime.
#[track_caller]
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    timeout_at(Instant::now() + duration, future)
}

/// [`timeout`] with a deadline.
#[track_caller]
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    Timeout {
        value: future,
        delay: sleep_until(deadline),
    }
}

/// The future of [`timeout`].
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Timeout<F> {
    value: F,
    delay: Sleep,
}

impl<F> Timeout<F> {
    /// The wrapped future.
    pub fn get_ref(&self) -> &F {
        &self.value
    }
    /// The wrapped future, mutably.
    pub fn get_mut(&mut self) -> &mut F {
        &mut self.value
    }
    /// The wrapped future, giving up the deadline.
    pub fn into_inner(self) -> F {
        // Sleep has a destructor, so move the future out by hand.
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used again; each field is moved or dropped exactly once.
        unsafe {
            std::ptr::drop_in_place(&this.delay as *const Sleep as *mut Sleep);
            std::ptr::read(&this.value)
        }
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: structural pinning of both fields; neither is moved.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: `value` is pinned with self.
        if let Poll::Ready(v) = unsafe { Pin::new_unchecked(&mut this.value) }.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match this.delay.poll_elapsed(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed(()))),
            Poll::Pending => Poll::Pending,
        }
    }
}

// ----------------------------------------------------------------------------- Interval

/// What an [`Interval`] does about ticks it missed (tokio's enum and semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedTickBehavior {
    /// Tick as fast as possible until caught up (the default).
    #[default]
    Burst,
    /// Tick once now, then every period from now.
    Delay,
    /// Tick once now, then at the next multiple of the period from the start.
    Skip,
}

impl MissedTickBehavior {
    fn next_timeout(self, timeout: Instant, now: Instant, period: Duration) -> Instant {
        match self {
            MissedTickBehavior::Burst => timeout + period,
            MissedTickBehavior::Delay => now + period,
            MissedTickBehavior::Skip => {
                let p = period.as_nanos().max(1);
                let behind = (now - timeout).as_nanos() % p;
                now + period - Duration::from_nanos(behind as u64)
            }
        }
    }
}

/// Ticks every `period`, the first tick at once, like `tokio::time::interval`.
///
/// # Panics
/// When `period` is zero, or when called outside of a moduvex runtime.
#[track_caller]
pub fn interval(period: Duration) -> Interval {
    interval_at(Instant::now(), period)
}

/// Ticks every `period` from `start` (the first tick completes at `start`).
///
/// # Panics
/// When `period` is zero, or when called outside of a moduvex runtime.
#[track_caller]
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(period > Duration::ZERO, "`period` must be non-zero.");
    Interval {
        delay: Box::pin(sleep_until(start)),
        period,
        missed_tick_behavior: MissedTickBehavior::default(),
    }
}

/// The stream of ticks of [`interval`].
#[derive(Debug)]
pub struct Interval {
    delay: Pin<Box<Sleep>>,
    period: Duration,
    missed_tick_behavior: MissedTickBehavior,
}

impl Interval {
    /// Completes at the next tick, with its scheduled instant.
    pub async fn tick(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        if self.delay.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let timeout = self.delay.deadline();
        let now = Instant::now();
        // As tokio: a tick more than 5 ms late counts as missed.
        let next = if now.saturating_duration_since(timeout) > Duration::from_millis(5) {
            self.missed_tick_behavior
                .next_timeout(timeout, now, self.period)
        } else {
            timeout + self.period
        };
        self.delay.as_mut().reset(next);
        Poll::Ready(timeout)
    }

    /// Restarts the period from now: the next tick is one period away.
    pub fn reset(&mut self) {
        self.delay.as_mut().reset(Instant::now() + self.period);
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// What happens to missed ticks.
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed_tick_behavior
    }

    /// Sets what happens to missed ticks.
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed_tick_behavior = behavior;
    }
}
