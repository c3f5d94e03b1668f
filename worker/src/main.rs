//! `worker`: the persister and the presence sweeper as their own process (distributed
//! mode). Several may run: they share the JetStream consumer, and a Redis lease picks
//! one sweeper.

use std::time::Duration;

use anyhow::Context;
use infra::config::{Mode, Settings};
use infra::leader::Leader;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load().context("loading settings")?;
    infra::telemetry::init(&settings.log_format);
    if settings.mode()? == Mode::Embedded {
        anyhow::bail!(
            "the worker binary runs in distributed mode (set REDIS_URL and NATS_URL); in embedded mode the gateway runs the worker in-process"
        );
    }
    let backends = infra::backends::connect(&settings).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let persister = tokio::spawn(worker::run_persister(
        backends.bus.clone(),
        worker::Store::Db(backends.db.clone()),
        until_stop(stopped.clone()),
    ));
    let every = Duration::from_secs(settings.presence_refresh_secs);
    let leader = backends.redis.clone().map(|conn| {
        Leader::new(
            conn,
            format!("{}sweeper_leader", settings.key_prefix),
            uuid::Uuid::new_v4().to_string(),
            every * 3,
        )
    });
    let sweeper = tokio::spawn(worker::run_sweeper(
        backends.presence.clone(),
        backends.bus.clone(),
        backends.db.clone(),
        every,
        leader,
        until_stop(stopped.clone()),
    ));
    tracing::info!("worker running");
    infra::shutdown::shutdown_signal().await;
    tracing::info!("stopping: finishing the batch in flight");
    let _ = stop.send(true);
    persister
        .await
        .context("persister task")?
        .context("persister")?;
    sweeper.await.context("sweeper task")?;
    tracing::info!("stopped");
    Ok(())
}
