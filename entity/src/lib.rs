//! SeaORM entities of the ChatX database (DESIGN section 6).
//!
//! # Layout
//! One module per table. Entities only: no queries and no business rules live here
//! (those are in `infra::db`), so that `migration` and `infra` can both depend on it.

pub mod attachment;
pub mod audit_log;
pub mod message;
pub mod room;
pub mod room_member;
pub mod session;
pub mod user;
