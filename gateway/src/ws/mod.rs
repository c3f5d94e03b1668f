//! The WebSocket endpoint: upgrade checks (`upgrade`, and `direct` for upgrades
//! served on their own `TcpStream`, below the `transport` either way), one task pair
//! per socket (`connection`: reader + batched writer, fed by its `queue`), frame
//! handling (`commands`), and the per-gateway fan-out of rooms and sessions (`hub`).

pub mod commands;
pub mod connection;
pub mod direct;
pub mod hub;
pub mod outbound;
pub mod queue;
pub mod transport;
pub mod upgrade;
