//! Database access with SeaORM, one code path for PostgreSQL and SQLite.
//!
//! Each module holds the queries of one table; callers never build SQL themselves.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::SqliteConnectOptions;
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr, SqlErr};

pub mod audit;
pub mod members;
pub mod messages;
pub mod rooms;
pub mod sqlite_writer;
pub mod users;

pub use sea_orm::DatabaseConnection as Db;
pub use sqlite_writer::SqliteWriter;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A unique constraint refused the row (e.g. a taken username or room name).
    #[error("already exists")]
    Conflict,
    #[error("database: {0}")]
    Db(#[source] DbErr),
    /// The embedded persister's own SQLite connection failed.
    #[error("database: {0}")]
    Sqlite(#[source] rusqlite::Error),
    /// The database URL cannot serve this use.
    #[error("database URL: {0}")]
    Invalid(String),
}

impl From<DbErr> for DbError {
    fn from(e: DbErr) -> Self {
        match e.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => DbError::Conflict,
            _ => DbError::Db(e),
        }
    }
}

/// How long a SQLite write waits for another connection's write lock, on the pools and
/// on the persister's [`SqliteWriter`] alike.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// Connects; SQLite gets WAL, `synchronous=NORMAL` and a busy timeout so the
/// in-process worker and the API can write side by side.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut options = options(url);
    if is_sqlite(url) {
        options
            .max_connections(8)
            .map_sqlx_sqlite_opts(sqlite_pragmas);
    } else {
        options.max_connections(20);
    }
    Database::connect(options).await
}

/// What every pool shares. A SQLite pool also skips the ping that sqlx sends by
/// default on every acquire: an in-process database has no server or network to lose
/// a connection to, and the ping was a round trip to the connection's worker thread
/// before every query.
fn options(url: &str) -> ConnectOptions {
    let mut options = ConnectOptions::new(url.to_string());
    options
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false)
        .test_before_acquire(!is_sqlite(url));
    options
}

fn sqlite_pragmas(o: SqliteConnectOptions) -> SqliteConnectOptions {
    o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .foreign_keys(true)
}

/// Copies what the WAL holds into the SQLite database file, without waiting for
/// readers or writers (`PRAGMA wal_checkpoint(PASSIVE)`). Returns the WAL's frames and
/// how many of them are now in the database.
pub async fn checkpoint(db: &DatabaseConnection) -> Result<(i64, i64), DbErr> {
    use sea_orm::{ConnectionTrait, Statement};
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "PRAGMA wal_checkpoint(PASSIVE)",
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("wal_checkpoint returned no row".into()))?;
    let frames: i64 = row.try_get_by_index(1)?;
    let checkpointed: i64 = row.try_get_by_index(2)?;
    Ok((frames, checkpointed))
}

pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// How many migrations the database has not applied yet (0: the schema is current).
pub async fn pending_migrations(db: &DatabaseConnection) -> Result<usize, DbErr> {
    Ok(Migrator::get_pending_migrations(db).await?.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_pools_hand_out_connections_without_a_ping() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/chatx.db?mode=rwc", dir.path().display());
        let shared = connect(&url).await.expect("shared pool");
        let pool = shared.get_sqlite_connection_pool();
        assert!(!pool.options().get_test_before_acquire());
        assert!(
            options("postgres://postgres@127.0.0.1/chatx").get_test_before_acquire(),
            "PostgreSQL pools keep the ping: their server can go away"
        );
    }
}
