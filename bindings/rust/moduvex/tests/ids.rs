//! Task ids: task::id()/try_id() inside tasks and blocking closures, none outside or in
//! block_on, JoinHandle::id and JoinError::id agree, and 1,000,000 spawns give distinct ids.
mod common;

use std::collections::HashSet;

use common::*;
use moduvex::task;

#[test]
fn the_id_inside_is_the_handles() {
    let rt = rt(2);
    let h = rt.spawn(async {
        moduvex::yield_now().await;
        task::id()
    });
    let id = h.id();
    assert_eq!(rt.block_on(h).unwrap(), id);
    let b = rt.spawn_blocking(task::id);
    let bid = b.id();
    assert_eq!(rt.block_on(b).unwrap(), bid);
    assert_ne!(id, bid);
    assert_eq!(format!("{id:?}"), format!("Id({})", id.as_u64()));
    assert_eq!(id.to_string(), id.as_u64().to_string());
}

#[test]
fn no_id_outside_a_task_or_in_block_on() {
    assert!(task::try_id().is_none());
    let rt = rt(1);
    assert!(rt.block_on(async { task::try_id() }).is_none());
    assert!(std::panic::catch_unwind(task::id).is_err());
    // A task's id is restored around a nested poll of another task's future (a local set
    // driven from a task).
    let outer = task::LocalSet::new();
    let ok = outer
        .block_on(&rt, async {
            task::spawn_local(async {
                let mine = task::id();
                let local = task::LocalSet::new();
                let other =
                    local.run_until(async { task::spawn_local(async { task::id() }).await });
                let other = other.await.unwrap();
                (mine == task::id(), other != mine)
            })
            .await
        })
        .unwrap();
    assert_eq!(ok, (true, true));
}

#[test]
fn a_million_spawns_have_distinct_ids() {
    let rt = rt(2);
    const N: usize = 1_000_000;
    let mut ids = HashSet::with_capacity(N);
    for _ in 0..10 {
        let handles: Vec<_> = (0..N / 10)
            .map(|_| rt.spawn(async { task::id() }))
            .collect();
        rt.block_on(async {
            for h in handles {
                let hid = h.id();
                let inner = h.await.unwrap();
                assert_eq!(inner, hid);
                assert!(ids.insert(inner.as_u64()), "id {inner} seen twice");
            }
        });
    }
    // From many threads at once too.
    let rt = std::sync::Arc::new(rt);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let rt = rt.clone();
            std::thread::spawn(move || {
                (0..10_000)
                    .map(|_| rt.spawn(async {}).id().as_u64())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        for id in t.join().unwrap() {
            assert!(ids.insert(id), "id {id} seen twice");
        }
    }
    assert_eq!(ids.len(), N + 40_000);
}
