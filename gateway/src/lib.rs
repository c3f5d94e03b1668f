//! The ChatX gateway: REST API, WebSocket endpoint and web client over poem. It keeps
//! only live sockets; everything else sits behind the `infra` traits.
//!
//! # Layout
//! - `startup`: settings -> backends -> [`Gateway`] (embedded mode runs the worker
//!   in-process); `drain`: the SIGTERM sequence.
//! - `api`: REST handlers (poem-openapi); `http`: ops endpoints, edge limit, web client.
//! - `ws`: the WebSocket endpoint, per-socket tasks and the fan-out hub.
//! - `chat`: room access, history/replay and limits shared by REST and WebSocket.
//! - `auth`, `error`, `state`, `metrics`: request authentication, the one error type,
//!   the shared state, Prometheus counters.

pub mod api;
pub mod auth;
pub mod chat;
pub mod drain;
pub mod error;
pub mod http;
pub mod metrics;
pub mod startup;
pub mod state;
pub mod ws;

pub use startup::{Gateway, StartError, start};

pub use infra::shutdown::shutdown_signal;
