//! Settings -> the concrete backends behind the traits, for the mode the settings
//! select. Gateway and worker binaries both start here, so both modes are assembled in
//! exactly one place.
//!
//! Distributed mode retries each unreachable dependency with backoff for
//! `startup_timeout_secs`, then gives up with one line naming the setting and the
//! (redacted) URL.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::bus::{Bus, LocalBus, LocalBusOptions, NatsBus, NatsBusOptions};
use crate::config::{ConfigError, Mode, Settings, redact_url};
use crate::db::{self, Db, SqliteWriter, messages, rooms};
use crate::presence::{MemoryPresence, Presence, RedisPresence};
use crate::ratelimit::{MemoryRateLimiter, RateLimiter, RedisRateLimiter};
use crate::redis_conn::{self, KeyPrefix};
use crate::session::{RedisSessionStore, SessionStore, SqlSessionStore};

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{setting} ({url}): unreachable after {waited_secs} s: {reason}")]
    Unreachable {
        setting: &'static str,
        url: String,
        waited_secs: u64,
        reason: String,
    },
    #[error("{setting} ({url}): {reason}")]
    Failed {
        setting: &'static str,
        url: String,
        reason: String,
    },
}

/// Everything a gateway or worker talks to.
pub struct Backends {
    pub mode: Mode,
    pub db: Db,
    pub bus: Arc<dyn Bus>,
    pub sessions: Arc<dyn SessionStore>,
    pub presence: Arc<dyn Presence>,
    pub limiter: Arc<dyn RateLimiter>,
    /// The Redis connection (distributed mode), for the sweeper's leader lock.
    pub redis: Option<redis::aio::ConnectionManager>,
    /// Embedded mode on SQLite: the in-process persister's own connection; whoever
    /// runs it also runs [`db::checkpoint`].
    pub sqlite_writer: Option<SqliteWriter>,
}

/// Retries `attempt` with exponential backoff (200 ms .. 5 s) until it succeeds or
/// `timeout` has passed.
pub async fn with_retry<T, E, F, Fut>(
    setting: &'static str,
    url: &str,
    timeout: Duration,
    mut attempt: F,
) -> Result<T, BackendError>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = tokio::time::Instant::now();
    let mut backoff = Duration::from_millis(200);
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) => {
                let waited = started.elapsed();
                if waited + backoff > timeout {
                    return Err(BackendError::Unreachable {
                        setting,
                        url: redact_url(url),
                        waited_secs: waited.as_secs(),
                        reason: e.to_string(),
                    });
                }
                tracing::warn!(setting, url = %redact_url(url), error = %e, retry_in_ms = backoff.as_millis() as u64, "dependency unreachable; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn database(settings: &Settings, migrate: bool) -> Result<Db, BackendError> {
    let url = &settings.database_url;
    let timeout = Duration::from_secs(settings.startup_timeout_secs);
    let db = with_retry("DATABASE_URL", url, timeout, || db::connect(url)).await?;
    let failed = |e: &dyn std::fmt::Display| BackendError::Failed {
        setting: "DATABASE_URL",
        url: redact_url(url),
        reason: e.to_string(),
    };
    if migrate {
        db::migrate(&db).await.map_err(|e| failed(&e))?;
    } else {
        // `migration up` (a one-shot job at each deploy) owns the schema in distributed
        // mode. Wait for it like for any dependency, then refuse to serve requests
        // against an empty or older schema.
        with_retry("DATABASE_URL", url, timeout, || async {
            match db::pending_migrations(&db).await {
                Ok(0) => Ok(()),
                Ok(n) => Err(format!(
                    "{n} migration(s) not applied: run `migration up` first"
                )),
                Err(e) => Err(e.to_string()),
            }
        })
        .await?;
    }
    if settings.create_lobby {
        rooms::ensure_lobby(&db).await.map_err(|e| failed(&e))?;
    }
    Ok(db)
}

/// Connects every backend of the configured mode. Embedded mode migrates its SQLite
/// file; distributed mode expects `migration up` to have run.
pub async fn connect(settings: &Settings) -> Result<Backends, BackendError> {
    let mode = settings.mode()?;
    match &mode {
        Mode::Embedded => {
            tracing::info!(mode = "embedded", database = %redact_url(&settings.database_url), "connecting");
            let db = database(settings, true).await?;
            let failed = |e: &dyn std::fmt::Display| BackendError::Failed {
                setting: "DATABASE_URL",
                url: redact_url(&settings.database_url),
                reason: e.to_string(),
            };
            let start_seq = messages::max_seq(&db).await.map_err(|e| failed(&e))?;
            let sqlite_writer = if db::is_sqlite(&settings.database_url) {
                Some(SqliteWriter::open(&settings.database_url).map_err(|e| failed(&e))?)
            } else {
                None
            };
            Ok(Backends {
                bus: Arc::new(LocalBus::new(LocalBusOptions {
                    start_seq,
                    retention_per_room: settings.bus_retention_per_room,
                    dedup_window: Duration::from_secs(settings.dedup_window_secs),
                    ack_after_persist: true,
                })),
                sessions: Arc::new(SqlSessionStore::new(db.clone())),
                presence: Arc::new(MemoryPresence::new()),
                limiter: Arc::new(MemoryRateLimiter::new()),
                redis: None,
                sqlite_writer,
                db,
                mode,
            })
        }
        Mode::Distributed {
            redis_url,
            nats_url,
        } => {
            tracing::info!(
                mode = "distributed",
                database = %redact_url(&settings.database_url),
                redis = %redact_url(redis_url),
                nats = %redact_url(nats_url),
                "connecting"
            );
            let timeout = Duration::from_secs(settings.startup_timeout_secs);
            let redis = with_retry("REDIS_URL", redis_url, timeout, || {
                redis_conn::connect(redis_url)
            })
            .await?;
            let options = NatsBusOptions {
                stream: settings.nats_stream.clone(),
                subject_prefix: settings.nats_subject_prefix.clone(),
                max_age: Duration::from_secs(settings.stream_max_age_secs),
                duplicate_window: Duration::from_secs(settings.dedup_window_secs),
                publish_timeout: Duration::from_millis(settings.publish_timeout_ms),
                ..NatsBusOptions::default()
            };
            let bus = with_retry("NATS_URL", nats_url, timeout, || {
                NatsBus::connect(nats_url, options.clone())
            })
            .await?;
            let db = database(settings, false).await?;
            let prefix = KeyPrefix::new(settings.key_prefix.clone());
            Ok(Backends {
                bus: Arc::new(bus),
                sessions: Arc::new(RedisSessionStore::new(redis.clone(), prefix.clone())),
                presence: Arc::new(RedisPresence::new(redis.clone(), prefix.clone())),
                limiter: Arc::new(RedisRateLimiter::new(redis.clone(), prefix)),
                redis: Some(redis),
                sqlite_writer: None,
                db,
                mode,
            })
        }
    }
}
