//! Embedded mode's message writer: one synchronous SQLite connection (rusqlite), owned
//! by the persister's thread, for the one statement every acknowledged send waits on.
//!
//! Through sqlx, each commit was a round trip to the connection's own worker thread:
//! two more thread wake-ups on the path of every send, on a machine whose cores the
//! sockets keep busy. Here the persister's thread runs the statement itself.
//!
//! It writes the rows exactly as SeaORM writes them (uuid as 16-byte blob, timestamps
//! as RFC 3339 text), so every other query keeps reading them through SeaORM; a test
//! compares the stored bytes of both paths.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use chrono::SecondsFormat;
use rusqlite::{Connection, OpenFlags, params};
use sea_orm::sqlx::sqlite::SqliteConnectOptions;
use uuid::Uuid;

use super::{DbError, SQLITE_BUSY_TIMEOUT};
use crate::bus::StoredMessage;

const INSERT: &str = "INSERT INTO messages \
     (id, room_id, seq, user_id, body, client_msg_id, created_at, edited_at, deleted_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, NULL) ON CONFLICT (id) DO NOTHING";
const SEQ_OF: &str = "SELECT seq FROM messages WHERE id = ?1";

/// The WAL's size, in frames of one page (4 KiB by default), at which the writer runs
/// a checkpoint itself: 256 MiB of log. Messages in many rooms write about four
/// frames each (the row, and a leaf of each of the three indexes), so at 5,000 sends/s
/// the cap comes every ~3.2 s; with 16,384 frames it came every ~0.85 s, and each
/// time every send waited for the sync (p99 11-12 ms against 3.4-4.1 ms at that load,
/// BENCHMARKS.md, optimisation 22). The file stays at about this size once reached.
const WAL_CAP_FRAMES: u32 = 65_536;

/// The persister's connection: one, so its page cache stays warm (commits spread over
/// a pool's connections each read back pages that the others' writes had made stale).
/// The WAL is copied into the database by [`super::checkpoint`], every 100 ms while
/// messages arrive (`worker::run_checkpointer`), on the shared pool, off the path of
/// the messages. With SQLite's default automatic checkpoint (1,000 pages) the commit
/// that crossed it copied them and fsynced while every message behind it waited. But a
/// checkpoint on another connection never lets the log start over while this one
/// keeps committing (the log restarts only at a commit that finds every frame copied),
/// so under steady traffic the WAL grew without bound: 468 MB after 45 s at 560
/// sends/s. The writer therefore checkpoints itself once the log holds
/// [`WAL_CAP_FRAMES`]: only the frames the background pass has not copied yet (the
/// last ~100 ms of log), after which its next commit starts the log over.
pub struct SqliteWriter {
    conn: Connection,
}

impl SqliteWriter {
    /// Opens the database of `url` (a `sqlite:` URL as the pools take it; the file
    /// must exist, which the migrations have seen to) with the pools' pragmas: WAL,
    /// `synchronous=NORMAL`, a 5 s busy timeout and foreign keys.
    pub fn open(url: &str) -> Result<Self, DbError> {
        Self::open_with_wal_cap(url, WAL_CAP_FRAMES)
    }

    fn open_with_wal_cap(url: &str, wal_cap_frames: u32) -> Result<Self, DbError> {
        let path = file_of(url)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(DbError::Sqlite)?;
        conn.busy_timeout(SQLITE_BUSY_TIMEOUT)
            .map_err(DbError::Sqlite)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA foreign_keys = ON;",
        )
        .map_err(DbError::Sqlite)?;
        conn.pragma_update(None, "wal_autocheckpoint", wal_cap_frames)
            .map_err(DbError::Sqlite)?;
        Ok(Self { conn })
    }

    /// Inserts a batch in one transaction; messages already stored (same id) are
    /// skipped, so redelivery after a crash is harmless. Returns how many rows were
    /// new, like [`super::messages::insert_batch`].
    pub fn insert_batch(&mut self, batch: &[Arc<StoredMessage>]) -> Result<u64, DbError> {
        if batch.is_empty() {
            return Ok(0);
        }
        // A deferred BEGIN: the first INSERT takes the write lock, with no read before
        // it, so the busy timeout waits out a writer on the shared pool (tested).
        let tx = self.conn.transaction().map_err(DbError::Sqlite)?;
        let mut inserted = 0;
        {
            let mut insert = tx.prepare_cached(INSERT).map_err(DbError::Sqlite)?;
            for m in batch {
                let seq = i64::try_from(m.seq).unwrap_or(i64::MAX);
                inserted += insert
                    .execute(params![
                        m.message.id.as_bytes(),
                        m.message.room_id.as_bytes(),
                        seq,
                        m.message.user.id.as_bytes(),
                        m.message.body,
                        m.message.client_msg_id,
                        m.message.ts.to_rfc3339_opts(SecondsFormat::AutoSi, false),
                    ])
                    .map_err(DbError::Sqlite)? as u64;
            }
        }
        tx.commit().map_err(DbError::Sqlite)?;
        Ok(inserted)
    }

    /// `(id, seq)` of the messages among `ids` that are already stored.
    pub fn existing(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, u64)>, DbError> {
        let mut seq_of = self.conn.prepare_cached(SEQ_OF).map_err(DbError::Sqlite)?;
        let mut found = Vec::new();
        for id in ids {
            let mut rows = seq_of.query([id.as_bytes()]).map_err(DbError::Sqlite)?;
            if let Some(row) = rows.next().map_err(DbError::Sqlite)? {
                let seq: i64 = row.get(0).map_err(DbError::Sqlite)?;
                found.push((*id, u64::try_from(seq).unwrap_or(0)));
            }
        }
        Ok(found)
    }
}

/// The file a `sqlite:` URL names, read the way the pools read it (sqlx's parser).
fn file_of(url: &str) -> Result<PathBuf, DbError> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Err(DbError::Invalid(
            "embedded mode needs a SQLite database file, not an in-memory database: \
             the persister writes it from a connection of its own"
                .into(),
        ));
    }
    let options =
        SqliteConnectOptions::from_str(url).map_err(|e| DbError::Invalid(e.to_string()))?;
    Ok(options.get_filename().to_path_buf())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{TimeZone, Utc};
    use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

    use rusqlite::TransactionBehavior;

    use super::*;
    use crate::bus::NewMessage;
    use crate::db::{checkpoint, connect, messages, migrate, users};
    use crate::protocol::UserRef;
    use crate::validate::Username;

    /// A migrated SQLite file, its shared pool and its URL (the directory lives as long
    /// as the first value).
    async fn database() -> (tempfile::TempDir, DatabaseConnection, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/chatx.db?mode=rwc", dir.path().display());
        let shared = connect(&url).await.expect("shared pool");
        migrate(&shared).await.expect("migrate");
        (dir, shared, url)
    }

    fn message(seq: u64, user: &UserRef, client_msg_id: &str) -> Arc<StoredMessage> {
        Arc::new(StoredMessage {
            seq,
            message: NewMessage {
                id: Uuid::new_v4(),
                room_id: Uuid::from_u128(7),
                user: user.clone(),
                body: format!("hello ünïcode {seq}"),
                client_msg_id: client_msg_id.into(),
                // Sub-microsecond digits: the text must keep them as SeaORM does.
                ts: Utc.timestamp_opt(1_795_000_000, 123_456_789).unwrap(),
            },
        })
    }

    /// Every column of every message, as SQLite stores it (types and bytes).
    async fn stored_rows(db: &DatabaseConnection) -> Vec<Vec<String>> {
        let sql = "SELECT typeof(id) || ':' || hex(id), typeof(room_id) || ':' || hex(room_id), \
                   typeof(seq) || ':' || seq, typeof(user_id) || ':' || hex(user_id), \
                   typeof(body) || ':' || body, typeof(client_msg_id) || ':' || client_msg_id, \
                   typeof(created_at) || ':' || created_at, typeof(edited_at), typeof(deleted_at) \
                   FROM messages ORDER BY seq";
        let rows = db
            .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .expect("select");
        rows.iter()
            .map(|row| {
                (0..9)
                    .map(|i| row.try_get_by_index(i).expect("text"))
                    .collect()
            })
            .collect()
    }

    async fn author(db: &DatabaseConnection) -> UserRef {
        let name = Username::parse("writer").expect("username");
        let user = users::create(db, &name, "x".into()).await.expect("user");
        UserRef {
            id: user.id,
            username: user.username,
        }
    }

    #[tokio::test]
    async fn rows_are_stored_exactly_as_seaorm_stores_them() {
        let (_a, orm_db, _) = database().await;
        let (_b, shared, url) = database().await;
        let user = author(&shared).await;
        let batch = vec![message(1, &user, "c1"), message(2, &user, "c2")];

        messages::insert_batch(&orm_db, &batch)
            .await
            .expect("SeaORM insert");
        let mut writer = SqliteWriter::open(&url).expect("writer");
        assert_eq!(writer.insert_batch(&batch).expect("insert"), 2);

        let through_orm = stored_rows(&orm_db).await;
        assert_eq!(through_orm.len(), 2);
        assert_eq!(stored_rows(&shared).await, through_orm);
        // And SeaORM reads them back whole.
        let read = messages::range(&shared, Uuid::from_u128(7), 0, None, 10)
            .await
            .expect("range");
        let expected: Vec<StoredMessage> = batch.iter().map(|m| (**m).clone()).collect();
        assert_eq!(read, expected);
    }

    #[tokio::test]
    async fn stored_ids_are_skipped_and_found_with_their_first_seq() {
        let (_dir, shared, url) = database().await;
        let user = author(&shared).await;
        let mut writer = SqliteWriter::open(&url).expect("writer");
        let first = message(1, &user, "c1");
        assert_eq!(
            writer
                .insert_batch(std::slice::from_ref(&first))
                .expect("insert"),
            1
        );

        // The same id again under a later seq (a retry after the dedup window), and a
        // new message: only the new one is inserted.
        let retried = Arc::new(StoredMessage {
            seq: 5,
            message: first.message.clone(),
        });
        let new = message(6, &user, "c2");
        assert_eq!(
            writer
                .insert_batch(&[retried, new.clone()])
                .expect("insert"),
            1
        );
        let unknown = Uuid::new_v4();
        assert_eq!(
            writer
                .existing(&[first.message.id, new.message.id, unknown])
                .expect("existing"),
            vec![(first.message.id, 1), (new.message.id, 6)]
        );
        assert_eq!(writer.insert_batch(&[]).expect("empty batch"), 0);
    }

    #[tokio::test]
    async fn the_writer_leaves_the_wal_to_the_checkpointer() {
        let (_dir, shared, url) = database().await;
        let user = author(&shared).await;
        let mut writer = SqliteWriter::open(&url).expect("writer");
        let autocheckpoint = |conn: &Connection| -> i64 {
            conn.query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))
                .expect("pragma")
        };
        assert_eq!(autocheckpoint(&writer.conn), i64::from(WAL_CAP_FRAMES));
        let shared_autocheckpoint: i64 = shared
            .query_one_raw(Statement::from_string(
                shared.get_database_backend(),
                "PRAGMA wal_autocheckpoint",
            ))
            .await
            .expect("pragma")
            .expect("a row")
            .try_get_by_index(0)
            .expect("an integer");
        assert_eq!(shared_autocheckpoint, 1000, "SQLite's default");

        // Each commit appends at least one frame: 1,200 commits would have passed the
        // default 1,000-frame threshold and reset the log, but not the writer's cap.
        checkpoint(&shared).await.expect("checkpoint");
        for seq in 1..=1200 {
            writer
                .insert_batch(&[message(seq, &user, &format!("c{seq}"))])
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
            .insert_batch(&[message(1201, &user, "c1201")])
            .expect("insert");
        let (frames, _) = checkpoint(&shared).await.expect("checkpoint");
        assert!(frames < 10, "{frames} frames after the restart");
        assert_eq!(messages::max_seq(&shared).await.expect("max"), 1201);
    }

    #[tokio::test]
    async fn the_wal_stays_bounded_while_the_writer_never_pauses() {
        // Under steady traffic a commit always lands while the background checkpoint
        // copies, so no commit finds the log fully copied and the log never restarts.
        // A reader's snapshot makes that race happen every time here: the checkpoint
        // stops at the snapshot, and the writer commits past it.
        const CAP: u32 = 200;
        let (_dir, shared, url) = database().await;
        let user = author(&shared).await;
        let mut writer = SqliteWriter::open_with_wal_cap(&url, CAP).expect("writer");
        let path = file_of(&url).expect("path");
        let reader = Connection::open(&path).expect("reader");
        let mut largest = 0;
        for round in 1..=400u64 {
            let (first, second) = (2 * round - 1, 2 * round);
            writer
                .insert_batch(&[message(first, &user, &format!("c{first}"))])
                .expect("insert");
            reader.execute_batch("BEGIN").expect("begin");
            let _: i64 = reader
                .query_row("SELECT count(*) FROM messages", [], |row| row.get(0))
                .expect("read");
            writer
                .insert_batch(&[message(second, &user, &format!("c{second}"))])
                .expect("insert");
            // The checkpointer's own pass, on the shared pool.
            let (frames, _) = checkpoint(&shared).await.expect("checkpoint");
            largest = largest.max(frames);
            reader.execute_batch("COMMIT").expect("commit");
        }
        // 800 commits of several frames each: far past the cap if nothing restarts.
        assert!(
            largest < i64::from(CAP) + 100,
            "the log reached {largest} frames (cap {CAP})"
        );
        assert_eq!(messages::max_seq(&shared).await.expect("max"), 800);
    }

    #[tokio::test]
    async fn a_commit_waits_for_a_writer_on_the_shared_pool() {
        let (dir, shared, url) = database().await;
        let user = author(&shared).await;
        let mut writer = SqliteWriter::open(&url).expect("writer");
        // Another connection holds the write lock for 300 ms, as the API's writes do.
        let path = dir.path().join("chatx.db");
        let (locked_tx, locked) = std::sync::mpsc::channel();
        let release = std::thread::spawn(move || {
            let mut other = Connection::open(path).expect("open");
            let held = other
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .expect("lock");
            locked_tx.send(()).expect("signal");
            std::thread::sleep(Duration::from_millis(300));
            held.commit().expect("release");
        });
        locked.recv().expect("the lock is held");
        let started = std::time::Instant::now();
        assert_eq!(
            writer
                .insert_batch(&[message(1, &user, "c1")])
                .expect("waits, then commits"),
            1
        );
        assert!(started.elapsed() >= Duration::from_millis(250));
        release.join().expect("thread");
        assert_eq!(messages::max_seq(&shared).await.expect("max"), 1);
    }

    #[test]
    fn an_in_memory_database_is_refused_with_the_reason() {
        for url in ["sqlite::memory:", "sqlite://chatx.db?mode=memory"] {
            let Err(DbError::Invalid(reason)) = SqliteWriter::open(url) else {
                panic!("{url} was not refused");
            };
            assert!(reason.contains("in-memory"), "{reason}");
        }
    }

    #[test]
    fn a_missing_file_or_table_is_an_error_not_a_new_database() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = format!("sqlite://{}/none.db?mode=rwc", dir.path().display());
        assert!(matches!(
            SqliteWriter::open(&missing),
            Err(DbError::Sqlite(_))
        ));
        assert!(!dir.path().join("none.db").exists());

        // A database without the schema: the insert fails and nothing is half-written.
        let empty = dir.path().join("empty.db");
        Connection::open(&empty).expect("create");
        let url = format!("sqlite://{}", empty.display());
        let mut writer = SqliteWriter::open(&url).expect("writer");
        let user = UserRef {
            id: Uuid::new_v4(),
            username: "u".into(),
        };
        let err = writer
            .insert_batch(&[message(1, &user, "c1")])
            .expect_err("no messages table");
        assert!(err.to_string().contains("no such table"), "{err}");
    }
}
