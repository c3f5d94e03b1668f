//! `chatx-bench`: load generator for ChatX, the baseline server and Socket.IO.
//!
//! `chatx-bench run --target 'NAME;KIND;URL[,URL..][;PID,..]' ...` runs the same
//! workload against every target one after the other and prints one table, optional
//! JSON (`--json`) and an SVG chart of p99 latency against delivered messages/s.
//! With `--procs P` (connect/idle runs) the sockets are split over P child processes,
//! since one process holds at most ~19,900 sockets here.

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use bench::proto::Kind;
use bench::run::{self, ConnectReport, Fleet, StepPlan, Target, TargetReport, Workload};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "ChatX load generator")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs a workload against one or more targets.
    Run(Box<RunArgs>),
    /// The median of repeated runs of one workload (the `--out` files of `run`): each
    /// figure of each step is its median over the runs; capacity follows the medians.
    Median(MedianArgs),
    /// Deletes a JetStream stream (clean-up after distributed runs).
    NatsDeleteStream {
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        url: String,
        #[arg(long)]
        stream: String,
    },
}

#[derive(Parser, Clone)]
struct RunArgs {
    /// `NAME;KIND;URL[,URL..][;PID[,PID..]]`, KIND = chatx | baseline | socketio.
    #[arg(long = "target", required = true)]
    targets: Vec<Target>,
    #[arg(long, default_value_t = 1000)]
    conns: usize,
    /// Rooms (0: connect only, no joins).
    #[arg(long, default_value_t = 10)]
    rooms: usize,
    /// ChatX users the sockets are spread over.
    #[arg(long, default_value_t = 20)]
    users: usize,
    #[arg(long, default_value_t = 4)]
    senders_per_room: usize,
    #[arg(long, default_value_t = 64)]
    body_bytes: usize,
    /// Connections opened per second (0: unpaced).
    #[arg(long, default_value_t = 0.0)]
    connect_rate: f64,
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Source addresses `127.0.0.A-127.0.0.B` (or one address).
    #[arg(long, default_value = "127.0.0.2-127.0.0.41")]
    src_ips: String,
    #[arg(long, default_value = "bench-")]
    room_prefix: String,
    /// Aggregate send rates (messages/s), one step each.
    #[arg(long, value_delimiter = ',')]
    rates: Vec<f64>,
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Measured seconds per step.
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    #[arg(long, default_value_t = 3.0)]
    drain: f64,
    /// Idle seconds after connecting.
    #[arg(long, default_value_t = 0.0)]
    hold: f64,
    #[arg(long, default_value_t = 50.0)]
    slo_ms: f64,
    /// Stop ramping a target whose p99 exceeds this.
    #[arg(long, default_value_t = 1000.0)]
    stop_p99_ms: f64,
    /// Split the sockets over this many processes (connect/idle runs).
    #[arg(long, default_value_t = 1)]
    procs: usize,
    /// Internal: `I/P`, this child's share.
    #[arg(long, hide = true)]
    shard: Option<String>,
    /// Internal: ChatX access tokens, one a line.
    #[arg(long, hide = true)]
    tokens_file: Option<PathBuf>,
    /// Print the JSON report on stdout.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the SVG chart here.
    #[arg(long)]
    chart: Option<PathBuf>,
    #[arg(long, default_value = "p99 latency vs delivered messages/s")]
    title: String,
    /// No progress bars or step lines.
    #[arg(long)]
    quiet: bool,
}

fn parse_ips(spec: &str) -> anyhow::Result<Vec<Ipv4Addr>> {
    let (a, b) = spec.split_once('-').unwrap_or((spec, spec));
    let (a, b): (Ipv4Addr, Ipv4Addr) = (a.parse()?, b.parse()?);
    let (a, b) = (u32::from(a), u32::from(b));
    if b < a {
        bail!("empty address range {spec}");
    }
    Ok((a..=b).map(Ipv4Addr::from).collect())
}

fn workload(args: &RunArgs) -> anyhow::Result<Workload> {
    let (shard, shards) = match &args.shard {
        Some(s) => {
            let (i, p) = s.split_once('/').context("--shard I/P")?;
            (i.parse()?, p.parse()?)
        }
        None => (0, 1),
    };
    Ok(Workload {
        conns: args.conns,
        rooms: args.rooms,
        users: args.users,
        senders_per_room: args.senders_per_room,
        body_bytes: args.body_bytes,
        connect_rate: args.connect_rate,
        connect_concurrency: args.connect_concurrency,
        src_ips: parse_ips(&args.src_ips)?,
        room_prefix: args.room_prefix.clone(),
        shard,
        shards,
    })
}

#[derive(clap::Args)]
struct MedianArgs {
    /// The runs' JSON reports, each written by `chatx-bench run --out`.
    #[arg(required = true, num_args = 1..)]
    runs: Vec<PathBuf>,
    /// Where to write the median report (JSON).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Chart of the median p99 against delivered messages/s (SVG).
    #[arg(long)]
    chart: Option<PathBuf>,
    /// The chart's title.
    #[arg(long, default_value = "median of runs")]
    title: String,
    /// Capacity counts steps whose median p99 is at most this.
    #[arg(long, default_value_t = 50.0)]
    slo_ms: f64,
}

fn median(args: MedianArgs) -> anyhow::Result<()> {
    let runs = args
        .runs
        .iter()
        .map(|path| {
            let json = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
            bench::median::read_run(&json)
                .with_context(|| format!("{} is not a report of `chatx-bench run`", path.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let reports = bench::median::median_reports(&runs, args.slo_ms)?;
    eprintln!(
        "median of {} runs\n\n{}",
        runs.len(),
        bench::report::table(&reports)
    );
    // The first run's workload and rates, so that medians can be compared (and
    // taken) like runs.
    let json = serde_json::to_string_pretty(&serde_json::json!({
        "median_of": args.runs,
        "slo_ms": args.slo_ms,
        "workload": runs[0].workload,
        "rates": runs[0].rates,
        "reports": reports,
    }))?;
    if let Some(out) = &args.out {
        std::fs::write(out, &json).with_context(|| out.display().to_string())?;
    }
    if let Some(path) = &args.chart {
        bench::report::chart(&reports, path, &args.title)?;
        eprintln!("chart: {}", path.display());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Run(args) if args.shard.is_some() => child(*args).await,
        Cmd::Run(args) => run(*args).await,
        Cmd::Median(args) => median(args),
        Cmd::NatsDeleteStream { url, stream } => {
            let client = async_nats::connect(&url).await?;
            let js = async_nats::jetstream::new(client);
            js.delete_stream(&stream).await?;
            Ok(())
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let load = workload(&args)?;
    let plan = StepPlan {
        rates: args.rates.clone(),
        warmup: Duration::from_secs_f64(args.warmup),
        secs: Duration::from_secs_f64(args.secs),
        drain: Duration::from_secs_f64(args.drain),
        stop_p99_ms: args.stop_p99_ms,
        slo_ms: args.slo_ms,
        hold: Duration::from_secs_f64(args.hold),
    };
    let mut reports = Vec::new();
    for target in &args.targets {
        let report = if args.procs > 1 {
            split_run(&args, target, &load).await?
        } else {
            run::run_target(target, &load, &plan, args.quiet)
                .await
                .with_context(|| format!("target {}", target.name))?
        };
        reports.push(report);
        // Let the previous system settle before the next one starts.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    eprintln!("\n{}", bench::report::table(&reports));
    let json = serde_json::to_string_pretty(&serde_json::json!({
        "workload": load,
        "rates": args.rates,
        "secs": args.secs,
        "warmup": args.warmup,
        "procs": args.procs,
        "reports": reports,
    }))?;
    if let Some(out) = &args.out {
        std::fs::write(out, &json).with_context(|| out.display().to_string())?;
    }
    if args.json {
        println!("{json}");
    }
    if let Some(path) = &args.chart {
        bench::report::chart(&reports, path, &args.title)?;
        eprintln!("chart: {}", path.display());
    }
    Ok(())
}

/// A child of `--procs`: connect its share, report, hold, report again.
async fn child(args: RunArgs) -> anyhow::Result<()> {
    let load = workload(&args)?;
    let target = args.targets.first().context("one target")?;
    let tokens = match &args.tokens_file {
        Some(path) => Some(
            std::fs::read_to_string(path)?
                .lines()
                .map(str::to_string)
                .collect(),
        ),
        None => None,
    };
    let fleet = Fleet::connect(target, &load, tokens, true).await?;
    let mut out = std::io::stdout();
    writeln!(out, "READY {}", serde_json::to_string(&fleet.connect)?)?;
    out.flush()?;
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    writeln!(out, "DONE {}", fleet.disconnected())?;
    out.flush()?;
    fleet.close().await;
    Ok(())
}

/// Splits one connect/idle run over `--procs` child processes and adds them up.
async fn split_run(
    args: &RunArgs,
    target: &Target,
    load: &Workload,
) -> anyhow::Result<TargetReport> {
    let tokens_file =
        std::env::temp_dir().join(format!("chatx-bench-tokens-{}", std::process::id()));
    if target.kind == Kind::Chatx {
        let base = target.urls.first().context("url")?;
        let tokens =
            bench::setup::chatx(base, load.users.max(1), load.rooms, &load.room_prefix).await?;
        std::fs::write(&tokens_file, tokens.join("\n"))?;
    }
    let before = run::sample(&target.pids);
    let exe = std::env::current_exe()?;
    let spec = format!(
        "{};{};{};{}",
        target.name,
        match target.kind {
            Kind::Chatx => "chatx",
            Kind::Baseline => "baseline",
            Kind::Socketio => "socketio",
        },
        target.urls.join(","),
        target
            .pids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut children = Vec::new();
    for i in 0..args.procs {
        let mut cmd = Command::new(&exe);
        cmd.arg("run")
            .arg("--target")
            .arg(&spec)
            .args(["--conns", &load.conns.to_string()])
            .args(["--rooms", &load.rooms.to_string()])
            .args(["--users", &load.users.to_string()])
            .args([
                "--connect-rate",
                &(load.connect_rate / args.procs as f64).to_string(),
            ])
            .args([
                "--connect-concurrency",
                &load.connect_concurrency.to_string(),
            ])
            .args(["--src-ips", &args.src_ips])
            .args(["--room-prefix", &load.room_prefix])
            .args(["--hold", &args.hold.to_string()])
            .args(["--shard", &format!("{i}/{}", args.procs)])
            .stdout(Stdio::piped())
            .stdin(Stdio::null());
        if target.kind == Kind::Chatx {
            cmd.arg("--tokens-file").arg(&tokens_file);
        }
        children.push(cmd.spawn().context("spawning a child generator")?);
    }
    let mut readers: Vec<_> = children
        .iter_mut()
        .map(|c| c.stdout.take().map(BufReader::new))
        .collect();
    let line_of = |r: &mut Option<BufReader<std::process::ChildStdout>>,
                   tag: &str|
     -> anyhow::Result<String> {
        let r = r.as_mut().context("child stdout")?;
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                bail!("a child generator ended early");
            }
            if let Some(rest) = line.trim_end().strip_prefix(tag) {
                return Ok(rest.to_string());
            }
        }
    };
    let mut connect = ConnectReport::default();
    let ready = tokio::task::block_in_place(|| {
        readers
            .iter_mut()
            .map(|r| line_of(r, "READY "))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    for line in ready {
        let part: ConnectReport = serde_json::from_str(&line)?;
        connect.requested += part.requested;
        connect.connected += part.connected;
        connect.failed += part.failed;
        connect.secs = connect.secs.max(part.secs);
        if connect.first_error.is_none() {
            connect.first_error = part.first_error;
        }
    }
    connect.rate = connect.connected as f64 / connect.secs.max(1e-9);
    let idle = run::sample(&target.pids);
    connect.rss_before_kib = before.rss_kib;
    connect.rss_idle_kib = idle.rss_kib;
    connect.rss_per_conn_kib = (!target.pids.is_empty() && connect.connected > 0)
        .then(|| idle.rss_kib.saturating_sub(before.rss_kib) as f64 / connect.connected as f64);
    eprintln!(
        "{}: {} of {} sockets ready over {} processes in {:.1}s ({:.0}/s), {} failed{}",
        target.name,
        connect.connected,
        connect.requested,
        args.procs,
        connect.secs,
        connect.rate,
        connect.failed,
        connect
            .first_error
            .as_deref()
            .map(|e| format!(" (first error: {e})"))
            .unwrap_or_default()
    );
    let done = tokio::task::block_in_place(|| {
        readers
            .iter_mut()
            .map(|r| line_of(r, "DONE "))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let disconnected = done
        .iter()
        .map(|d| d.trim().parse::<u64>().unwrap_or(0))
        .sum();
    for mut c in children {
        let _ = c.wait();
    }
    let _ = std::fs::remove_file(&tokens_file);
    Ok(TargetReport {
        name: target.name.clone(),
        kind: target.kind,
        nodes: target.urls.len(),
        connect,
        steps: Vec::new(),
        capacity_per_s: None,
        disconnected,
        errors_total: 0,
    })
}
