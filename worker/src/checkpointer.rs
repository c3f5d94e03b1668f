//! Embedded mode only: copies SQLite's write-ahead log into the database file once a
//! second, on a connection of its own, so that the persister's commits rarely pay for
//! it (its connection checkpoints only the rest, once the log reaches a cap that keeps
//! it bounded: see `infra::db::SqliteWriter`).

use std::future::Future;
use std::time::Duration;

use infra::db::{self, Db};

/// Runs until `shutdown` resolves. A failed checkpoint is logged and tried again at
/// the next tick; the log only grows meanwhile.
pub async fn run_checkpointer(db: Db, every: Duration, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        match db::checkpoint(&db).await {
            Ok((frames, checkpointed)) => {
                tracing::trace!(frames, checkpointed, "WAL checkpoint");
            }
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; retrying"),
        }
    }
}
