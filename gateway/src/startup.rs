//! Settings -> backends -> a running gateway.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use infra::auth::JwtKeys;
use infra::backends::BackendError;
use infra::config::{ConfigError, Mode, Settings};
use infra::protocol::ErrorCode;
use poem::endpoint::make_sync;
use poem::middleware::Tracing;
use poem::{EndpointExt, Route, Server, get};
use rand::RngCore;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::{ApiError, error_response};
use crate::http::acceptor::{self, DirectUpgrade, GatewayAcceptor};
use crate::http::canary::Canary;
use crate::http::edge_limit::EdgeLimit;
use crate::http::{ops, web_client};
use crate::metrics::Metrics;
use crate::state::{AppParts, AppState, Quotas};
use crate::ws::fanout::FanoutThread;
use crate::ws::hub::Hub;
use crate::ws::upgrade::ws_handler;
use crate::{api, drain, ws};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("BIND_ADDR ({addr}): {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the in-process worker's runtime: {0}")]
    WorkerRuntime(#[source] std::io::Error),
    #[error("starting the fan-out thread: {0}")]
    FanoutThread(#[source] std::io::Error),
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

/// Starts the gateway in the mode its settings select. Embedded mode also runs the
/// worker (persister and presence sweeper) in-process.
pub async fn start(settings: Settings) -> Result<Gateway, StartError> {
    let mut backends = infra::backends::connect(&settings).await?;
    let metrics = Arc::new(Metrics::default());
    let gateway_id = uuid::Uuid::new_v4();
    // Stops (cancelling its room tasks) when dropped: at the end of the server task
    // below, or on the way out of a start that fails.
    let fanout = FanoutThread::start().map_err(StartError::FanoutThread)?;
    let state = AppState::new(AppParts {
        jwt: JwtKeys::new(&jwt_secret(&settings), settings.access_token_ttl()),
        quotas: Quotas::from_settings(&settings),
        hub: Hub::new(backends.bus.clone(), metrics.clone(), fanout.handle()),
        db: backends.db.clone(),
        bus: backends.bus.clone(),
        sessions: backends.sessions.clone(),
        presence: backends.presence.clone(),
        limiter: backends.limiter.clone(),
        metrics,
        draining: Arc::new(AtomicBool::new(false)),
        redis: backends.redis.clone(),
        canary: Arc::new(Canary::new(
            gateway_id,
            Duration::from_millis(settings.canary_interval_ms),
        )),
        settings: Arc::new(settings),
    });

    let (worker_stop, worker_stopped) = tokio::sync::watch::channel(false);
    let until_stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let mut background: Vec<JoinHandle<()>> = Vec::new();
    if backends.mode == Mode::Embedded {
        let (bus, db, presence) = (
            backends.bus.clone(),
            backends.db.clone(),
            backends.presence.clone(),
        );
        // On SQLite the persister commits on a connection of its own; the WAL
        // checkpoints it skips run on the shared pool (every 100 ms while busy).
        let store = match backends.sqlite_writer.take() {
            Some(writer) => worker::Store::Sqlite(writer),
            None => worker::Store::Db(db.clone()),
        };
        let persister =
            worker::run_persister(bus.clone(), store, until_stop(worker_stopped.clone()));
        background.push(tokio::spawn(worker::run_checkpointer(
            db.clone(),
            until_stop(worker_stopped.clone()),
        )));
        // Its own thread and runtime: every send waits for this loop's commit, so it
        // must not queue behind thousands of socket tasks when the gateway is busy,
        // and a SQLite commit blocks the thread it runs on.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StartError::WorkerRuntime)?;
        background.push(tokio::task::spawn_blocking(move || {
            if let Err(e) = runtime.block_on(persister) {
                tracing::error!(error = %e, "persister failed");
            }
        }));
        let every = Duration::from_secs(state.settings.presence_refresh_secs);
        background.push(tokio::spawn(worker::run_sweeper(
            presence,
            bus,
            db,
            every,
            None,
            until_stop(worker_stopped.clone()),
        )));
    }
    let mut aborted_on_stop: Vec<JoinHandle<()>> = vec![
        tokio::spawn(refresh_presence(state.clone())),
        tokio::spawn(crate::http::canary::run(state.clone())),
        tokio::spawn(ws::heartbeat::run(
            state.hub.clone(),
            Duration::from_secs(state.settings.ping_interval_secs),
            Duration::from_secs(state.settings.idle_timeout_secs),
        )),
    ];

    let edge = EdgeLimit::new(
        state.settings.http_per_ip_per_sec,
        state.settings.http_per_ip_burst,
        state.settings.trust_forwarded_for,
    );
    {
        let edge = edge.clone();
        aborted_on_stop.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                edge.prune();
            }
        }));
    }
    let bind_error = |source| StartError::Bind {
        addr: state.settings.bind_addr.clone(),
        source,
    };
    let bind_addr = state
        .settings
        .bind_addr
        .parse()
        .map_err(|e| bind_error(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
    let listener = acceptor::bind(bind_addr, state.settings.listen_backlog).map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let direct: DirectUpgrade = {
        let (state, edge) = (state.clone(), edge.clone());
        Arc::new(move |tcp, read, peer| {
            Box::pin(ws::direct::serve(
                tcp,
                read,
                peer,
                state.clone(),
                edge.clone(),
            ))
        })
    };
    let acceptor = GatewayAcceptor::start(listener, direct).map_err(bind_error)?;
    let app = routes(state.clone(), edge);
    tracing::info!(%addr, gateway = %gateway_id, "listening: web client at http://{addr}/");

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
        for task in aborted_on_stop {
            task.abort();
        }
        let _ = worker_stop.send(true);
        for task in background {
            let _ = task.await;
        }
        drop(fanout);
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
