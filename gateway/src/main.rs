//! `gateway`: settings and telemetry, then the library does the rest. With no
//! configuration it runs in embedded mode on 0.0.0.0:8080.

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = infra::config::Settings::load().context("loading settings")?;
    infra::telemetry::init(&settings.log_format);
    let gateway = gateway::start(settings).await?;
    println!("ChatX listening on http://{}/", gateway.addr);
    gateway.run_until(gateway::shutdown_signal()).await;
    Ok(())
}
