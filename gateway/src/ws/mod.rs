//! The WebSocket endpoint: upgrade checks (`upgrade`, and `direct` for upgrades
//! served on their own `TcpStream`, below the `transport` either way), one task pair
//! per socket (`connection`: reader + batched writer, fed by its `queue`, writing the
//! frames that `frame` encodes), frame handling (`commands`), the per-gateway fan-out
//! of rooms and sessions (`hub`) with its room tasks on a thread of their own
//! (`fanout`), and one task for every socket's pings and idle timeout (`heartbeat`).

pub mod commands;
pub mod connection;
pub mod direct;
pub mod fanout;
pub mod frame;
pub mod heartbeat;
pub mod hub;
pub mod outbound;
pub mod queue;
pub mod transport;
pub mod upgrade;
