//! Gateway tests: the real server on a free port with a fresh SQLite file per test,
//! driven by real HTTP and WebSocket clients. One binary, one module per area.

mod helpers;

mod auth;
mod binary;
mod delivery;
mod errors;
mod ops;
mod presence;
mod rooms;
mod sessions;
mod upgrades;
mod ws_protocol;
