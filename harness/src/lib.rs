//! The ChatX fault-test harness: a private distributed cluster on loopback and the
//! load that runs against it.
//!
//! - [`Cluster`] starts its own `nats-server -js`, `redis-server`, PostgreSQL cluster
//!   (initdb/pg_ctl in a temp dir), N gateways, M workers and nginx rendered from the
//!   shared template, on free 127.0.0.1 ports, and injects faults into them. It never
//!   touches the machine's shared servers, and stops what it started by PID (also on
//!   panic).
//! - [`load`] connects a crowd of [`chatx_client::Client`]s through nginx, all observed
//!   by one [`chatx_client::checker::Checker`], and drives sends at a fixed rate.
//! - [`figures`] turns what the clients and the checker saw into the printed figures
//!   and the pass criteria of the fault scenarios.
//!
//! `scripts/cluster` runs the `chatx-cluster` binary for people; `tests/faults` holds
//! the scenarios.
//!
//! # Layout
//! - `process`: child processes, signals, ports, RSS. `daemon`: a restartable server.
//! - `postgres`: the private PostgreSQL. `cluster`: all of it together.

#![forbid(unsafe_code)]

pub mod cluster;
pub mod daemon;
pub mod error;
pub mod figures;
pub mod load;
pub mod postgres;
pub mod process;

pub use cluster::{Cluster, ClusterConfig};
pub use error::HarnessError;
