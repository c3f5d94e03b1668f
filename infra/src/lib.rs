//! Shared adapters of ChatX: everything the gateway and the worker need that is not
//! HTTP or WebSocket handling.
//!
//! # Layout
//! - `config`: settings (defaults < file < environment) and mode selection.
//! - `validate`: newtypes for user input (`Username`, `RoomName`, `Password`, ...).
//! - `protocol`: the WebSocket wire protocol and error codes.
//! - `auth`: JWT access tokens, bcrypt, refresh tokens.
//! - `bus`, `session`, `presence`, `ratelimit`: the traits at each external boundary,
//!   their in-memory implementations, and one contract test suite per trait.
//! - `db`: SeaORM queries, one module per table.
//! - `backends`: settings -> the implementations of the selected mode.
//! - `ids`, `telemetry`: deterministic ids and tracing set-up.

pub mod auth;
pub mod backends;
pub mod bus;
pub mod config;
pub mod db;
pub mod ids;
pub mod leader;
pub mod presence;
pub mod protocol;
pub mod ratelimit;
pub mod redis_conn;
pub mod session;
pub mod shutdown;
pub mod telemetry;
pub mod validate;
