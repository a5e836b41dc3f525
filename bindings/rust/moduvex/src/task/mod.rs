//! Tasks: what tokio keeps in `tokio::task`. Spawning ([`spawn`], [`spawn_blocking`],
//! [`spawn_local`] into a [`LocalSet`]), sets of tasks ([`JoinSet`]), blocking on a worker
//! ([`block_in_place`]), task-local values ([`task_local!`](crate::task_local)), task ids
//! ([`id`], [`try_id`], [`Id`]) and the cooperative budget ([`consume_budget`],
//! [`unconstrained`], [`yield_now`]).

mod block_in_place;
mod coop;
mod id;
mod join_set;
mod local;
mod task_local;

pub use crate::error::JoinError;
pub use crate::join::JoinHandle;
pub use crate::yield_now::{yield_now, YieldNow};
pub use crate::{spawn, spawn_blocking};
pub use block_in_place::block_in_place;
pub use coop::{consume_budget, unconstrained, Unconstrained};
pub use id::{id, try_id, Id};
pub use join_set::JoinSet;
pub use local::{spawn_local, LocalSet, RunUntil};
pub use task_local::{AccessError, LocalKey, TaskLocalFuture};

pub(crate) use coop::{poll_proceed, refund};
pub(crate) use id::{next_id, Tracked};
