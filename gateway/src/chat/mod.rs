//! Chat rules shared by the REST API and the WebSocket protocol: room access,
//! history and replay, rate limits, message views. Neither HTTP nor WebSocket types
//! appear here.

pub mod access;
pub mod history;
pub mod limits;
pub mod presence;
