//! Database access with SeaORM, one code path for PostgreSQL and SQLite.
//!
//! Each module holds the queries of one table; callers never build SQL themselves.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr, SqlErr};

pub mod audit;
pub mod members;
pub mod messages;
pub mod rooms;
pub mod users;

pub use sea_orm::DatabaseConnection as Db;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A unique constraint refused the row (e.g. a taken username or room name).
    #[error("already exists")]
    Conflict,
    #[error("database: {0}")]
    Db(#[source] DbErr),
}

impl From<DbErr> for DbError {
    fn from(e: DbErr) -> Self {
        match e.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => DbError::Conflict,
            _ => DbError::Db(e),
        }
    }
}

pub fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// Connects; SQLite gets WAL, `synchronous=NORMAL` and a busy timeout so the
/// in-process worker and the API can write side by side.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_string());
    options
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    if is_sqlite(url) {
        options.max_connections(8).map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
        });
    } else {
        options.max_connections(20);
    }
    Database::connect(options).await
}

pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// How many migrations the database has not applied yet (0: the schema is current).
pub async fn pending_migrations(db: &DatabaseConnection) -> Result<usize, DbErr> {
    Ok(Migrator::get_pending_migrations(db).await?.len())
}
