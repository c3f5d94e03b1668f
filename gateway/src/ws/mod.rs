//! The WebSocket endpoint: upgrade checks (`upgrade`), one task pair per socket
//! (`connection`: reader + batched writer, fed by its `queue`), frame handling
//! (`commands`), and the per-gateway fan-out of rooms and sessions (`hub`).

pub mod commands;
pub mod connection;
pub mod hub;
pub mod outbound;
pub mod queue;
pub mod upgrade;
