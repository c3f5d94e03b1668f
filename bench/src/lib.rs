//! ChatX benchmarks: the `chatx-bench` load generator and the `baseline` server.
//!
//! - [`proto`]: protocol adapters (ChatX, the baseline's raw broadcast, Socket.IO over
//!   Engine.IO v4 WebSocket framing).
//! - [`setup`]: ChatX users, logins and rooms through the REST API (not measured).
//! - [`run`]: connect a fleet at a controlled rate over many source addresses, send at
//!   target aggregate rates, record end-to-end latency in HDR histograms.
//! - [`report`]: results table and SVG chart; [`procstat`]: server RSS/CPU from /proc.
//! - [`median`]: the median of repeated runs of one workload.
//! - [`baseline`]: the smallest tokio-tungstenite room broadcast server.

pub mod baseline;
pub mod error;
pub mod median;
pub mod procstat;
pub mod proto;
pub mod report;
pub mod run;
pub mod setup;

pub use error::{BenchError, Result};
