//! `chatx-cluster`: starts a private distributed ChatX on loopback (NATS, Redis,
//! PostgreSQL, gateways, workers, nginx), prints where it is, and runs until SIGTERM
//! or Ctrl-C, then stops every process it started. `scripts/cluster` wraps it.
//!
//! ```text
//! chatx-cluster [--gateways N] [--workers M] [--port P] [--dir DIR] [--state FILE]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use chatx_harness::{Cluster, ClusterConfig};

const USAGE: &str =
    "usage: chatx-cluster [--gateways N] [--workers M] [--port P] [--dir DIR] [--state FILE]";

struct Args {
    config: ClusterConfig,
    state: Option<PathBuf>,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut config = ClusterConfig::default();
    let mut state = None;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--gateways" => config.gateways = number(value()?)?,
            "--workers" => config.workers = number(value()?)?,
            "--port" => {
                let v = value()?;
                config.port = Some(v.parse().map_err(|_| format!("--port: not a port: {v}"))?);
            }
            "--dir" => config.dir = Some(PathBuf::from(value()?)),
            "--state" => state = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if config.gateways == 0 {
        return Err("--gateways must be at least 1".into());
    }
    Ok(Args { config, state })
}

/// Writes `text` to `path` at once (a reader never sees half of it).
fn write_state(path: &PathBuf, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_init();
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let (gateways, workers) = (args.config.gateways, args.config.workers);
    let cluster = match Cluster::start(args.config).await {
        Ok(cluster) => cluster,
        Err(e) => {
            eprintln!("chatx-cluster: {e}");
            return ExitCode::FAILURE;
        }
    };
    let description = cluster.describe();
    if let Some(state) = &args.state
        && let Err(e) = write_state(state, &description)
    {
        eprintln!("chatx-cluster: writing {}: {e}", state.display());
        return ExitCode::FAILURE;
    }
    println!(
        "ChatX cluster up: {gateways} gateways, {workers} workers behind nginx at {}\n{description}",
        cluster.url()
    );
    infra::shutdown::shutdown_signal().await;
    println!("stopping every process of the cluster");
    drop(cluster);
    ExitCode::SUCCESS
}

fn tracing_init() {
    // Warnings of the harness (a process that needed SIGKILL) go to stderr.
    infra::telemetry::init("pretty");
}
