//! Polls and task wakers do not allocate: a moduvex task waker becomes a std Waker whose data is
//! the task pointer, and cloning one is a reference count in the library. (Its own test binary:
//! the counting allocator sees the whole process.)
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The tests of this file run one at a time (the counter is process-wide).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn ten_thousand_polls_wakes_and_waker_clones_allocate_nothing() {
    const POLLS: usize = 10_000;
    let _serial = SERIAL.lock().unwrap();
    let rt = moduvex::Runtime::builder()
        .worker_threads(1)
        .build()
        .unwrap();
    // Warm up: first use of thread-locals, the waker vtable lookup, etc.
    rt.block_on(rt.spawn(async { moduvex::yield_now().await }))
        .unwrap();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let h = rt.spawn(async move {
        go_rx.recv().unwrap();
        for _ in 0..POLLS / 2 {
            moduvex::yield_now().await; // wake_by_ref
        }
        let mut left = POLLS / 2;
        std::future::poll_fn(|cx| {
            if left == 0 {
                return Poll::Ready(());
            }
            left -= 1;
            let w = cx.waker().clone(); // clone + wake by value
            w.wake();
            Poll::Pending
        })
        .await;
    });
    let before = ALLOCS.load(Ordering::SeqCst);
    go_tx.send(()).unwrap();
    rt.block_on(h).unwrap();
    let allocs = ALLOCS.load(Ordering::SeqCst) - before;
    // block_on's own bookkeeping may allocate a little; per-poll allocations would be >= 10,000.
    assert!(allocs < 50, "{allocs} allocations for {POLLS} polls");
}

/// A JoinSet allocates nothing per completion (and, once its entries and queues have grown,
/// nothing per spawn on the Rust side: the task itself comes from the library's arena). In the
/// same test as the one above: the counter sees the whole process, so they must not overlap.
#[test]
fn join_set_rounds_allocate_nothing_once_warm() {
    const TASKS: u64 = 10_000;
    let _serial = SERIAL.lock().unwrap();
    let rt = moduvex::Runtime::builder()
        .worker_threads(2)
        .build()
        .unwrap();
    let round = |set: &mut moduvex::task::JoinSet<u64>| {
        rt.block_on(async {
            for i in 0..TASKS {
                set.spawn(async move { i });
            }
            let mut sum = 0;
            while let Some(r) = set.join_next().await {
                sum += r.unwrap();
            }
            assert_eq!(sum, TASKS * (TASKS - 1) / 2);
        })
    };
    let mut set = moduvex::task::JoinSet::new();
    round(&mut set); // grows the entries, the handle vector and both ready queues
    round(&mut set);
    let before = ALLOCS.load(Ordering::SeqCst);
    round(&mut set);
    let allocs = ALLOCS.load(Ordering::SeqCst) - before;
    // Per-completion (or per-spawn) allocations would be >= 10,000; queue growth at most a few.
    assert!(
        allocs < 50,
        "{allocs} allocations for {TASKS} spawns and completions"
    );
}
