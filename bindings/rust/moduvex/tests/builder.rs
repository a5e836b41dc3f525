//! Builder settings: thread hooks, disable_lifo_slot, global_queue_interval, event_interval,
//! max_blocking_threads, thread_keep_alive, thread_stack_size.
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moduvex::Runtime;

#[test]
fn thread_hooks_run_once_per_worker() {
    let starts = Arc::new(AtomicUsize::new(0));
    let stops = Arc::new(AtomicUsize::new(0));
    let names = Arc::new(Mutex::new(Vec::new()));
    let (s, t, n) = (starts.clone(), stops.clone(), names.clone());
    let rt = Runtime::builder()
        .worker_threads(3)
        .thread_name("hooked")
        .on_thread_start(move || {
            s.fetch_add(1, Ordering::SeqCst);
            n.lock().unwrap().push(common::thread_comm());
        })
        .on_thread_stop(move || {
            t.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    rt.block_on(rt.spawn(async {})).unwrap();
    common::wait_until(|| starts.load(Ordering::SeqCst) == 3, "hooks");
    assert_eq!(stops.load(Ordering::SeqCst), 0);
    drop(rt);
    assert_eq!(stops.load(Ordering::SeqCst), 3);
    let mut names = names.lock().unwrap().clone();
    names.sort();
    assert_eq!(names, vec!["hooked-0", "hooked-1", "hooked-2"]);
}

fn spawn_order(b: &mut moduvex::Builder) -> Vec<u32> {
    let rt = b.worker_threads(1).build().unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    rt.block_on(rt.spawn(async move {
        for i in 1..=3 {
            let o = o.clone();
            drop(moduvex::spawn(async move { o.lock().unwrap().push(i) }));
        }
    }))
    .unwrap();
    common::wait_until(|| order.lock().unwrap().len() == 3, "the three tasks");
    let v = order.lock().unwrap().clone();
    v
}

#[test]
fn disable_lifo_slot_runs_spawned_tasks_in_order() {
    assert_eq!(spawn_order(&mut Runtime::builder())[0], 3); // the LIFO slot's goes first
    assert_eq!(
        spawn_order(Runtime::builder().disable_lifo_slot()),
        vec![1, 2, 3]
    );
}

#[test]
fn intervals_are_accepted_and_zero_is_refused() {
    let rt = moduvex::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(1)
        .global_queue_interval(1)
        .event_interval(61)
        .build()
        .unwrap();
    assert_eq!(rt.block_on(rt.spawn(async { 1 })).unwrap(), 1);
    assert!(
        std::panic::catch_unwind(|| Runtime::builder().global_queue_interval(0).build()).is_err()
    );
    assert!(std::panic::catch_unwind(|| Runtime::builder().event_interval(0).build()).is_err());
}

#[test]
fn max_blocking_threads_bounds_concurrency() {
    let rt = Runtime::builder()
        .worker_threads(1)
        .max_blocking_threads(2)
        .thread_keep_alive(Duration::from_millis(1))
        .thread_stack_size(1 << 20)
        .build()
        .unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..8)
        .map(|_| {
            let (r, p) = (running.clone(), peak.clone());
            rt.spawn_blocking(move || {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
                r.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    for h in hs {
        rt.block_on(h).unwrap();
    }
    assert!(peak.load(Ordering::SeqCst) <= 2);
}
