//! `worker`: the persister and presence sweeper as their own process (distributed mode).

use anyhow::Context;
use infra::config::{Mode, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load().context("loading settings")?;
    infra::telemetry::init(&settings.log_format);
    match settings.mode()? {
        Mode::Embedded => anyhow::bail!(
            "the worker binary runs in distributed mode (set REDIS_URL and NATS_URL); in embedded mode the gateway runs the worker in-process"
        ),
        Mode::Distributed { .. } => anyhow::bail!(
            "distributed mode needs the Redis and NATS backends, which this build does not include yet"
        ),
    }
}
