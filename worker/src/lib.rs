//! The ChatX worker: persists the bus's messages to the database and sweeps stale
//! presence. The `worker` binary runs it in distributed mode; in embedded mode the
//! gateway runs the same tasks in-process.
//!
//! # Layout
//! - `persister`: batch consumer -> idempotent inserts -> ack after commit.
//! - `sweeper`: expired presence leases -> `leave` events.
//! - `checkpointer`: embedded mode's SQLite WAL checkpoints, off the persister's path.

pub mod checkpointer;
pub mod persister;
pub mod sweeper;

pub use checkpointer::run_checkpointer;
pub use persister::{Store, run_persister};
pub use sweeper::run_sweeper;
