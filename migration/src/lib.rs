//! ChatX schema migrations, one set for PostgreSQL and SQLite.
//!
//! The gateway runs them at start-up in embedded mode; in distributed mode the
//! `migration` binary (`migration up|down|status`) runs them once per deployment.

pub use sea_orm_migration::prelude::*;

mod m20261128_000001_create_tables;
mod m20261128_000002_create_sessions;
mod m20261128_000003_message_search;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_create_tables::Migration),
            Box::new(m20261128_000002_create_sessions::Migration),
            Box::new(m20261128_000003_message_search::Migration),
        ]
    }
}
