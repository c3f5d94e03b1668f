//! Bus -> database. A batch is acked only after its transaction committed; a failed
//! insert is retried with backoff and never acked, so the bus redelivers it and the
//! primary key makes the retry harmless.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use infra::bus::{Bus, BusError, StoredMessage};
use infra::db::{Db, DbError, SqliteWriter, messages};
use uuid::Uuid;

const BATCH: usize = 256;
const WAIT: Duration = Duration::from_millis(500);
/// Below the bus's 5 s ack wait, so the progress ack of each retry keeps the batch.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("persist consumer: {0}")]
    Bus(#[from] BusError),
}

/// Where the persister commits.
pub enum Store {
    /// Through SeaORM's pool (the worker process).
    Db(Db),
    /// Embedded mode on SQLite: a synchronous connection that the persister's own
    /// thread drives, with no hop to a connection thread (see [`SqliteWriter`]). The
    /// persister then blocks its runtime for each commit: give it a runtime of its own.
    Sqlite(SqliteWriter),
}

// `&mut self` for both: a SQLite connection may move between threads but not be
// shared, and a `&Store` held across an await would make the persister's future !Send.
impl Store {
    async fn insert_batch(&mut self, batch: &[Arc<StoredMessage>]) -> Result<u64, DbError> {
        match self {
            Store::Db(db) => messages::insert_batch(db, batch).await,
            Store::Sqlite(writer) => writer.insert_batch(batch),
        }
    }

    async fn existing(&mut self, ids: &[Uuid]) -> Result<Vec<(Uuid, u64)>, DbError> {
        match self {
            Store::Db(db) => messages::existing(db, ids).await,
            Store::Sqlite(writer) => writer.existing(ids),
        }
    }
}

/// Inserts a batch; returns the messages whose id was already stored under another
/// seq (a send retried after the dedup window): those rows are kept, not duplicated.
/// One statement in the common case: only a batch with skipped rows is looked up.
async fn persist(
    store: &mut Store,
    batch: &[Arc<StoredMessage>],
) -> Result<Vec<(Uuid, u64)>, DbError> {
    let inserted = store.insert_batch(batch).await?;
    if inserted == batch.len() as u64 {
        return Ok(Vec::new());
    }
    // Some were skipped: a row stored under another seq is an earlier copy. (A row
    // under the same seq is this message, stored now or by an earlier delivery.)
    let ids: Vec<Uuid> = batch.iter().map(|m| m.message.id).collect();
    Ok(store
        .existing(&ids)
        .await?
        .into_iter()
        .filter(|(id, seq)| batch.iter().any(|m| m.message.id == *id && m.seq != *seq))
        .collect())
}

/// Runs until `shutdown` resolves; the batch in flight is finished first.
pub async fn run_persister(
    bus: Arc<dyn Bus>,
    mut store: Store,
    shutdown: impl Future<Output = ()>,
) -> Result<(), PersistError> {
    let mut consumer = bus.persist_consumer().await?;
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(100);
    loop {
        let batch = tokio::select! {
            biased;
            _ = &mut shutdown => return Ok(()),
            batch = consumer.next_batch(BATCH, WAIT) => batch,
        };
        let batch = match batch {
            Ok(batch) if batch.is_empty() => continue,
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "persist consumer failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        match persist(&mut store, &batch).await {
            Ok(stored_before) => {
                backoff = Duration::from_millis(100);
                tracing::debug!(
                    batch = batch.len(),
                    duplicates = stored_before.len(),
                    "persisted"
                );
                if let Err(e) = consumer.ack_batch(&stored_before).await {
                    // Not acked: the batch comes again and the insert skips it.
                    tracing::warn!(error = %e, "ack after commit failed");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batch = batch.len(), "persisting a batch failed; retrying");
                tokio::select! {
                    _ = &mut shutdown => return Ok(()),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
