//! Embedded mode only: copies SQLite's write-ahead log into the database file on a
//! connection of its own, every 100 ms while messages arrive and once a second when
//! they do not, so that the persister's commits rarely pay for it. The persister's
//! connection checkpoints only once the log reaches a cap that keeps it bounded (see
//! `infra::db::SqliteWriter`), and then only what the last pass here left: the log of
//! the last ~100 ms instead of the last second's.

use std::future::Future;
use std::time::Duration;

use infra::db::{self, Db};

/// The pause after a pass that found new frames. At 5,000 sends/s in 2,000 rooms
/// (about 19,000 frames/s) a pass each second left the persister's checkpoint up to
/// a second of log to sync, 22-78 ms during which every send waited (p99 61-68 ms);
/// with a pass each 100 ms the p99 was 11-12 ms (BENCHMARKS.md, optimisation 22).
const BUSY_PAUSE: Duration = Duration::from_millis(100);
/// The pause after a pass that found nothing new, or failed.
const IDLE_PAUSE: Duration = Duration::from_secs(1);

/// Runs until `shutdown` resolves. A failed checkpoint is logged and tried again
/// after [`IDLE_PAUSE`]; the log only grows meanwhile.
pub async fn run_checkpointer(db: Db, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut previous = None;
    loop {
        let pause = match db::checkpoint(&db).await {
            Ok(pass) => {
                tracing::trace!(frames = pass.0, checkpointed = pass.1, "WAL checkpoint");
                let pause = pause_after(previous, pass);
                previous = Some(pass.0);
                pause
            }
            Err(e) => {
                tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
                IDLE_PAUSE
            }
        };
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// `(frames, checkpointed)` is what a pass reported (the log's frames and how many of
/// them are in the database); `previous_frames` the log's frames at the pass before.
/// Idle means the log is all copied and held the same frames the time before.
fn pause_after(previous_frames: Option<i64>, (frames, checkpointed): (i64, i64)) -> Duration {
    if checkpointed >= frames && previous_frames == Some(frames) {
        IDLE_PAUSE
    } else {
        BUSY_PAUSE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_that_grew_or_is_behind_is_checked_again_soon() {
        // The first pass, with frames to copy.
        assert_eq!(pause_after(None, (500, 500)), BUSY_PAUSE);
        // New frames since the last pass, all copied now.
        assert_eq!(pause_after(Some(500), (900, 900)), BUSY_PAUSE);
        // Some not copied (a reader's snapshot held the pass back).
        assert_eq!(pause_after(Some(900), (900, 400)), BUSY_PAUSE);
        // The log started over and grew again.
        assert_eq!(pause_after(Some(900), (40, 40)), BUSY_PAUSE);
    }

    #[test]
    fn a_log_with_nothing_new_is_checked_once_a_second() {
        assert_eq!(pause_after(Some(900), (900, 900)), IDLE_PAUSE);
        assert_eq!(pause_after(Some(0), (0, 0)), IDLE_PAUSE);
    }
}
