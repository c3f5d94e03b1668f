//! Settings -> backends -> a running gateway.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use infra::auth::JwtKeys;
use infra::bus::{Bus, LocalBus, LocalBusOptions};
use infra::config::{ConfigError, Mode, Settings, redact_url};
use infra::db::{self, messages, rooms};
use infra::presence::{MemoryPresence, Presence};
use infra::protocol::ErrorCode;
use infra::ratelimit::MemoryRateLimiter;
use infra::session::SqlSessionStore;
use poem::endpoint::make_sync;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::middleware::Tracing;
use poem::{EndpointExt, Route, Server, get};
use rand::RngCore;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::{ApiError, error_response};
use crate::http::edge_limit::EdgeLimit;
use crate::http::{ops, web_client};
use crate::metrics::Metrics;
use crate::state::{AppState, Quotas};
use crate::ws::hub::Hub;
use crate::ws::upgrade::ws_handler;
use crate::{api, drain};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("DATABASE_URL ({url}): {source}")]
    Database {
        url: String,
        #[source]
        source: sea_orm::DbErr,
    },
    #[error("BIND_ADDR ({addr}): {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "distributed mode (REDIS_URL + NATS_URL) is not available in this build yet; unset both for embedded mode"
    )]
    DistributedUnavailable,
    #[error("embedded worker: {0}")]
    Worker(String),
}

/// A started gateway: where it listens and how to stop it.
pub struct Gateway {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
}

impl Gateway {
    /// Drains and stops; returns once every task has ended.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.server).await;
    }

    /// Runs until `signal` resolves, then drains and stops.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        signal.await;
        self.shutdown().await;
    }
}

fn jwt_secret(settings: &Settings) -> Vec<u8> {
    match &settings.jwt_secret {
        Some(secret) => secret.expose().as_bytes().to_vec(),
        None => {
            tracing::warn!(
                "JWT_SECRET is not set: using a random secret; tokens will not survive a restart"
            );
            let mut bytes = vec![0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            bytes
        }
    }
}

/// Starts the gateway in the mode its settings select.
pub async fn start(settings: Settings) -> Result<Gateway, StartError> {
    let mode = settings.mode()?;
    if let Mode::Distributed { .. } = mode {
        return Err(StartError::DistributedUnavailable);
    }
    tracing::info!(mode = "embedded", database = %redact_url(&settings.database_url), "starting");
    let database = |source| StartError::Database {
        url: redact_url(&settings.database_url),
        source,
    };
    let db = db::connect(&settings.database_url)
        .await
        .map_err(database)?;
    db::migrate(&db).await.map_err(database)?;
    if settings.create_lobby {
        rooms::ensure_lobby(&db)
            .await
            .map_err(|e| StartError::Worker(e.to_string()))?;
    }
    let start_seq = messages::max_seq(&db)
        .await
        .map_err(|e| StartError::Worker(e.to_string()))?;
    let bus: Arc<dyn Bus> = Arc::new(LocalBus::new(LocalBusOptions {
        start_seq,
        retention_per_room: settings.bus_retention_per_room,
        dedup_window: Duration::from_secs(settings.dedup_window_secs),
        ack_after_persist: true,
    }));
    let presence: Arc<dyn Presence> = Arc::new(MemoryPresence::new());
    let metrics = Arc::new(Metrics::default());
    let state = AppState {
        jwt: JwtKeys::new(&jwt_secret(&settings), settings.access_token_ttl()),
        quotas: Quotas::from_settings(&settings),
        hub: Hub::new(bus.clone(), metrics.clone()),
        db: db.clone(),
        bus: bus.clone(),
        sessions: Arc::new(SqlSessionStore::new(db.clone())),
        presence: presence.clone(),
        limiter: Arc::new(MemoryRateLimiter::new()),
        metrics,
        draining: Arc::new(AtomicBool::new(false)),
        settings: Arc::new(settings),
    };

    // The in-process worker: persister and presence sweeper.
    let (worker_stop, worker_stopped) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let persister = tokio::spawn(worker::run_persister(
        bus.clone(),
        db.clone(),
        stopped(worker_stopped.clone()),
    ));
    let sweep_every = Duration::from_secs(state.settings.presence_refresh_secs);
    let sweeper = tokio::spawn(worker::run_sweeper(
        presence.clone(),
        bus.clone(),
        db.clone(),
        sweep_every,
        stopped(worker_stopped.clone()),
    ));
    let refresher = tokio::spawn(refresh_presence(state.clone()));

    let edge = EdgeLimit::new(
        state.settings.http_per_ip_per_sec,
        state.settings.http_per_ip_burst,
        state.settings.trust_forwarded_for,
    );
    let pruner = {
        let edge = edge.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                edge.prune();
            }
        })
    };
    let app = routes(state.clone(), edge);
    let acceptor = TcpListener::bind(state.settings.bind_addr.clone())
        .into_acceptor()
        .await
        .map_err(|source| StartError::Bind {
            addr: state.settings.bind_addr.clone(),
            source,
        })?;
    let addr = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .ok_or_else(|| StartError::Bind {
            addr: state.settings.bind_addr.clone(),
            source: std::io::Error::other("no local address"),
        })?;
    tracing::info!(%addr, "listening: web client at http://{addr}/");

    let (stop, stop_rx) = oneshot::channel::<()>();
    let server_state = state.clone();
    let server = tokio::spawn(async move {
        let drain_window = Duration::from_secs(server_state.settings.drain_secs);
        let drained_state = server_state.clone();
        let signal = async move {
            let _ = stop_rx.await;
            drain::drain(&drained_state, drain_window).await;
        };
        if let Err(e) = Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(app, signal, Some(Duration::from_secs(5)))
            .await
        {
            tracing::error!(error = %e, "server failed");
        }
        refresher.abort();
        pruner.abort();
        let _ = worker_stop.send(true);
        if let Ok(Err(e)) = persister.await {
            tracing::error!(error = %e, "persister failed");
        }
        let _ = sweeper.await;
        tracing::info!("stopped");
    });
    Ok(Gateway {
        addr,
        state,
        stop: Some(stop),
        server,
    })
}

fn routes(state: AppState, edge: EdgeLimit) -> impl poem::Endpoint {
    let api = api::service();
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    Route::new()
        .nest("/api", api)
        .at("/api/openapi.json", spec)
        .nest("/api/docs", docs)
        .at("/ws", get(ws_handler))
        .at("/healthz", get(ops::healthz))
        .at("/readyz", get(ops::readyz))
        .at("/metrics", get(ops::metrics))
        .at("/", get(web_client::index))
        .at("/:name", get(web_client::file))
        .at(
            "/favicon.ico",
            make_sync(|_| poem::http::StatusCode::NO_CONTENT),
        )
        .with(edge)
        .with(Tracing)
        .data(state)
        .catch_all_error(|err: poem::Error| async move {
            if err.is::<ApiError>() {
                return err.into_response();
            }
            let status = err.status();
            let code = match status.as_u16() {
                401 => ErrorCode::Unauthorized,
                403 => ErrorCode::Forbidden,
                404 => ErrorCode::NotFound,
                413 => ErrorCode::TooLarge,
                429 => ErrorCode::RateLimited,
                503 => ErrorCode::Unavailable,
                s if s >= 500 => ErrorCode::Internal,
                _ => ErrorCode::BadRequest,
            };
            error_response(status, code, &err.to_string())
        })
}

/// Extends this gateway's presence leases in one call every refresh interval.
async fn refresh_presence(state: AppState) {
    let ttl = Duration::from_secs(state.settings.presence_ttl_secs);
    let mut tick = tokio::time::interval(Duration::from_secs(state.settings.presence_refresh_secs));
    loop {
        tick.tick().await;
        let leases = state.hub.leases();
        if leases.is_empty() {
            continue;
        }
        if let Err(e) = state.presence.refresh(&leases, ttl).await {
            tracing::warn!(error = %e, "presence refresh failed");
        }
    }
}
