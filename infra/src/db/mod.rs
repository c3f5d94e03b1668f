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
/// before every query (one more thread wake-up per persisted message).
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
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true)
}

/// Embedded mode's message writer: a pool of exactly one SQLite connection, for the
/// persister that commits every message, with automatic WAL checkpoints off.
///
/// - One connection: its page cache stays warm. Through the shared pool each commit
///   landed on whichever connection was free, whose cache another connection's writes
///   had made stale, and it read ~10 pages back first (S1: 10.7 `pread64` per commit).
/// - No automatic checkpoint: with it, the commit that took the WAL past 1,000 pages
///   copied them into the database and fsynced (S1: ~3.6 times a second), and every
///   message behind it waited. [`checkpoint`] runs instead, on another connection.
pub async fn connect_sqlite_writer(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut options = options(url);
    options
        .max_connections(1)
        .min_connections(1)
        .map_sqlx_sqlite_opts(|o| sqlite_pragmas(o).pragma("wal_autocheckpoint", "0"));
    Database::connect(options).await
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
    use sea_orm::{ConnectionTrait, Statement};

    use super::*;

    /// The first column of the first row of `sql`, an integer.
    async fn integer(db: &DatabaseConnection, sql: &str) -> i64 {
        let row = db
            .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .expect("query")
            .expect("a row");
        row.try_get_by_index(0).expect("an integer")
    }

    /// A fresh SQLite file with both embedded pools on it (the directory lives as
    /// long as the first value).
    async fn shared_and_writer() -> (tempfile::TempDir, DatabaseConnection, DatabaseConnection) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/chatx.db?mode=rwc", dir.path().display());
        let shared = connect(&url).await.expect("shared pool");
        let writer = connect_sqlite_writer(&url).await.expect("writer");
        (dir, shared, writer)
    }

    #[tokio::test]
    async fn the_writer_leaves_the_wal_to_the_checkpointer() {
        let (_dir, shared, writer) = shared_and_writer().await;
        let autocheckpoint = "PRAGMA wal_autocheckpoint";
        assert_eq!(integer(&writer, autocheckpoint).await, 0);
        assert_eq!(
            integer(&shared, autocheckpoint).await,
            1000,
            "SQLite's default"
        );

        writer
            .execute_unprepared("CREATE TABLE t (x INTEGER)")
            .await
            .expect("create");
        // Each commit appends at least one frame: 1,200 commits would have passed the
        // default 1,000-frame threshold and reset the log.
        for x in 0..1200 {
            writer
                .execute_unprepared(&format!("INSERT INTO t VALUES ({x})"))
                .await
                .expect("insert");
        }
        let (frames, checkpointed) = checkpoint(&shared).await.expect("checkpoint");
        assert!(frames >= 1200, "{frames} frames");
        assert_eq!(
            checkpointed, frames,
            "nothing kept the checkpoint from finishing"
        );

        // The next commit starts the log over; the data is all there.
        writer
            .execute_unprepared("INSERT INTO t VALUES (1200)")
            .await
            .expect("insert");
        let (frames, _) = checkpoint(&shared).await.expect("checkpoint");
        assert!(frames < 10, "{frames} frames after the restart");
        assert_eq!(integer(&shared, "SELECT COUNT(*) FROM t").await, 1201);
    }

    #[tokio::test]
    async fn sqlite_pools_hand_out_connections_without_a_ping() {
        let (_dir, shared, writer) = shared_and_writer().await;
        for db in [&shared, &writer] {
            let pool = db.get_sqlite_connection_pool();
            assert!(!pool.options().get_test_before_acquire());
        }
        assert!(
            options("postgres://postgres@127.0.0.1/chatx").get_test_before_acquire(),
            "PostgreSQL pools keep the ping: their server can go away"
        );
    }
}
