//! The ChatX worker: persists the bus's messages to the database and sweeps stale
//! presence. The `worker` binary runs it in distributed mode; in embedded mode the
//! gateway runs the same tasks in-process.
//!
//! # Layout
//! - `persister`: batch consumer -> idempotent inserts -> ack after commit.
//! - `sweeper`: expired presence leases -> `leave` events.

pub mod persister;
pub mod sweeper;

pub use persister::run_persister;
pub use sweeper::run_sweeper;
