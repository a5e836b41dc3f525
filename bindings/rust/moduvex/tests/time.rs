//! moduvex::time: sleep never early, timeout, interval (first tick at once, Burst, Delay, Skip),
//! reset, sleeps under another executor, dropping armed sleeps, abort and shutdown.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moduvex::time::{self, Elapsed, Instant, MissedTickBehavior};
use moduvex::Runtime;

fn runtime() -> Runtime {
    Runtime::builder().worker_threads(2).build().unwrap()
}

const MS: Duration = Duration::from_millis(1);

#[test]
fn sleeps_are_never_early() {
    let rt = runtime();
    let handles: Vec<_> = (0..200u64)
        .map(|i| {
            rt.spawn(async move {
                let d = Duration::from_micros(i * 97 % 20_000);
                let start = Instant::now();
                time::sleep(d).await;
                start.elapsed() >= d
            })
        })
        .collect();
    for h in handles {
        assert!(rt.block_on(h).unwrap());
    }
    rt.block_on(async {
        let deadline = Instant::now() + 3 * MS;
        time::sleep_until(deadline).await;
        assert!(Instant::now() >= deadline);
        time::sleep(Duration::ZERO).await; // completes at once
    });
}

#[test]
fn timeout_gives_the_output_or_elapsed() {
    let rt = runtime();
    rt.block_on(async {
        assert_eq!(time::timeout(Duration::from_secs(3600), async { 7 }).await, Ok(7));
        // Ready at once beats a deadline in the past: the future is polled first.
        assert_eq!(time::timeout(Duration::ZERO, async { 8 }).await, Ok(8));
        let never = std::future::pending::<()>();
        let start = Instant::now();
        let r: Result<(), Elapsed> = time::timeout(2 * MS, never).await;
        assert!(r.is_err());
        assert!(start.elapsed() >= 2 * MS);
        assert_eq!(r.unwrap_err().to_string(), "deadline has elapsed");
        // A join handle under a timeout.
        let slow = moduvex::spawn(time::sleep(Duration::from_secs(3600)));
        assert!(time::timeout(MS, slow).await.is_err());
    });
}

#[test]
fn interval_ticks_at_once_then_every_period() {
    let rt = runtime();
    rt.block_on(async {
        let start = Instant::now();
        let mut iv = time::interval(2 * MS);
        assert_eq!(iv.missed_tick_behavior(), MissedTickBehavior::Burst);
        let first = iv.tick().await;
        assert!(first <= Instant::now() && first >= start);
        assert!(start.elapsed() < Duration::from_secs(1)); // no wait for the first tick
        let mut prev = first;
        for _ in 0..5 {
            let t = iv.tick().await;
            assert_eq!(t, prev + 2 * MS); // scheduled instants, a period apart
            assert!(Instant::now() >= t);
            prev = t;
        }
    });
}

#[test]
fn missed_ticks_burst_delay_or_skip() {
    let rt = runtime();
    rt.block_on(async {
        for behavior in [
            MissedTickBehavior::Burst,
            MissedTickBehavior::Delay,
            MissedTickBehavior::Skip,
        ] {
            let mut iv = time::interval(10 * MS);
            iv.set_missed_tick_behavior(behavior);
            let t0 = iv.tick().await;
            std::thread::sleep(35 * MS); // miss three ticks
            let t1 = iv.tick().await;
            assert_eq!(t1, t0 + 10 * MS); // the late tick itself, at once
            let t2 = iv.tick().await;
            match behavior {
                MissedTickBehavior::Burst => assert_eq!(t2, t0 + 20 * MS),
                MissedTickBehavior::Delay => assert!(t2 >= t0 + 45 * MS),
                MissedTickBehavior::Skip => {
                    assert!(t2 >= t0 + 40 * MS);
                    assert_eq!((t2 - t0).as_nanos() % (10 * MS).as_nanos(), 0);
                }
            }
        }
    });
}

#[test]
fn reset_moves_an_armed_sleep() {
    let rt = runtime();
    rt.block_on(async {
        let s = time::sleep(Duration::from_secs(3600));
        let mut s = Box::pin(s);
        // Armed by a poll, then moved 2 ms out: completes then, not in an hour.
        assert!(futures::poll!(s.as_mut()).is_pending());
        let d = Instant::now() + 2 * MS;
        s.as_mut().reset(d);
        assert_eq!(s.deadline(), d);
        s.as_mut().await;
        assert!(Instant::now() >= d && s.is_elapsed());
    });
}

#[test]
fn a_sleep_works_under_another_executor() {
    let rt = runtime();
    let s = rt.block_on(async { time::sleep(3 * MS) });
    let start = Instant::now();
    futures::executor::block_on(s);
    assert!(start.elapsed() >= 3 * MS);
    let s = rt.block_on(async { time::sleep(2 * MS) });
    let trt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    trt.block_on(s);
}

#[test]
fn dropping_armed_sleeps_and_aborting_sleeping_tasks() {
    let rt = runtime();
    let done = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..100)
        .map(|_| {
            let done = Arc::clone(&done);
            rt.spawn(async move {
                time::sleep(Duration::from_secs(3600)).await;
                done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    rt.block_on(async {
        for _ in 0..100 {
            let mut s = Box::pin(time::sleep(Duration::from_secs(3600)));
            assert!(futures::poll!(s.as_mut()).is_pending());
        } // each dropped while armed
    });
    for h in &handles {
        h.abort();
    }
    for h in handles {
        assert!(rt.block_on(h).unwrap_err().is_cancelled());
    }
    assert_eq!(done.load(Ordering::SeqCst), 0);
}

#[test]
fn a_sleep_outlives_its_runtime() {
    let rt = runtime();
    let mut s = Box::pin(rt.block_on(async { time::sleep(Duration::from_secs(3600)) }));
    rt.block_on(async {
        assert!(futures::poll!(s.as_mut()).is_pending());
    });
    drop(rt); // shut down and released: the armed sleep never fires, and drops safely
    drop(s);
}

#[test]
#[should_panic(expected = "outside of a moduvex runtime")]
fn sleep_outside_a_runtime_panics() {
    let _ = time::sleep(MS);
}

#[test]
fn instants_convert_and_saturate() {
    let a = Instant::now();
    let std_now = std::time::Instant::now();
    let b = Instant::from_std(std_now);
    assert!((b - a).max(a - b) < Duration::from_secs(1)); // the same clock
    let back = b.into_std();
    let diff = if back > std_now { back - std_now } else { std_now - back };
    assert!(diff < Duration::from_millis(100));
    assert_eq!(a + Duration::MAX, a + Duration::from_secs(u64::MAX));
    assert_eq!(a.checked_add(Duration::MAX), None);
    assert_eq!(a.duration_since(a + MS), Duration::ZERO);
    assert_eq!((a + MS) - a, MS);
}
