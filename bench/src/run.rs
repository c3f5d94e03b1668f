//! Drives one target: connect a fleet of sockets at a controlled rate (spreading
//! source addresses over 127.0.0.x), join rooms, then send at target aggregate rates
//! and measure every delivery's end-to-end latency.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tokio::net::TcpSocket;
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::error::{BenchError, Result};
use crate::procstat::{self, ProcSample};
use crate::proto::{self, Incoming, Kind};
use crate::setup::room_name;

/// Latency histograms are sharded to keep lock contention off the receive path.
const SHARDS: usize = 16;
/// Highest latency recorded (µs); slower deliveries are clamped to it.
const MAX_LATENCY_US: u64 = 60_000_000;
/// Seconds of a measured window the timeline covers (later ones share the last).
const TIMELINE_SECS: usize = 3600;
/// A delivery slower than this counts as slow in the timeline.
const SLOW_US: u64 = 10_000;

/// One system under test.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    pub kind: Kind,
    /// `http://host:port` of every node; connections are spread round-robin.
    pub urls: Vec<String>,
    /// Server processes whose RSS and CPU are reported.
    pub pids: Vec<u32>,
}

impl std::str::FromStr for Target {
    type Err = String;
    /// `NAME;KIND;URL[,URL..][;PID[,PID..]]`
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let parts: Vec<&str> = s.split(';').collect();
        if parts.len() < 3 {
            return Err("target is NAME;KIND;URL[,URL..][;PID[,PID..]]".into());
        }
        let pids = match parts.get(3) {
            Some(p) if !p.is_empty() => p
                .split(',')
                .map(|p| {
                    p.trim()
                        .parse::<u32>()
                        .map_err(|e| format!("pid `{p}`: {e}"))
                })
                .collect::<std::result::Result<_, _>>()?,
            _ => Vec::new(),
        };
        Ok(Target {
            name: parts[0].to_string(),
            kind: parts[1].parse()?,
            urls: parts[2].split(',').map(str::to_string).collect(),
            pids,
        })
    }
}

/// The shape of the load, the same for every target of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Workload {
    pub conns: usize,
    /// 0: connect only (idle).
    pub rooms: usize,
    /// ChatX users the connections are spread over (a user holds many sockets).
    pub users: usize,
    pub senders_per_room: usize,
    pub body_bytes: usize,
    /// Connections opened per second (0: as fast as `connect_concurrency` allows).
    pub connect_rate: f64,
    pub connect_concurrency: usize,
    /// Source addresses to spread connections over.
    pub src_ips: Vec<Ipv4Addr>,
    pub room_prefix: String,
    /// This process handles connections `i` with `i % shards == shard`.
    pub shard: usize,
    pub shards: usize,
}

impl Workload {
    pub fn room_of(&self, conn: usize) -> Option<usize> {
        (self.rooms > 0).then(|| conn % self.rooms)
    }
}

/// Connect-phase results.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConnectReport {
    pub requested: usize,
    pub connected: usize,
    pub failed: usize,
    /// First connect started to last socket ready (joined), seconds.
    pub secs: f64,
    /// Sockets ready per second.
    pub rate: f64,
    pub rss_before_kib: u64,
    pub rss_idle_kib: u64,
    /// Server RSS growth per connected socket.
    pub rss_per_conn_kib: Option<f64>,
    pub first_error: Option<String>,
}

/// One rate step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepReport {
    pub target_rate: f64,
    pub sent: u64,
    pub sent_per_s: f64,
    pub expected: u64,
    pub delivered: u64,
    pub delivered_per_s: f64,
    pub missing_pct: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
    /// Sends the generator could not hand to a socket in time (its own overload).
    pub gen_dropped: u64,
    pub disconnected: u64,
    pub rss_kib: u64,
    pub cpu_pct: f64,
    /// Per second of the window (by send time): where the slow deliveries were.
    #[serde(default)]
    pub timeline: Vec<SecondStat>,
    /// Wall clock at the start of the measured window (µs since the Unix epoch), to
    /// line the timeline up with traces taken outside the bench.
    #[serde(default)]
    pub window_start_us: u64,
}

/// One second of a measured window, by the send time of its messages.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SecondStat {
    pub second: usize,
    pub delivered: u64,
    /// Deliveries slower than 10 ms.
    pub slow: u64,
    pub max_ms: f64,
}

/// Per-second counters of the window, updated lock-free by every receiver.
struct Timeline {
    delivered: Vec<AtomicU64>,
    slow: Vec<AtomicU64>,
    max_us: Vec<AtomicU64>,
}

impl Timeline {
    fn new() -> Self {
        let zeros = || (0..TIMELINE_SECS).map(|_| AtomicU64::new(0)).collect();
        Self {
            delivered: zeros(),
            slow: zeros(),
            max_us: zeros(),
        }
    }

    fn reset(&self) {
        for c in self.delivered.iter().chain(&self.slow).chain(&self.max_us) {
            c.store(0, Ordering::Relaxed);
        }
    }

    fn record(&self, second: usize, latency_us: u64) {
        let i = second.min(TIMELINE_SECS - 1);
        self.delivered[i].fetch_add(1, Ordering::Relaxed);
        if latency_us > SLOW_US {
            self.slow[i].fetch_add(1, Ordering::Relaxed);
        }
        self.max_us[i].fetch_max(latency_us, Ordering::Relaxed);
    }

    fn report(&self, secs: usize) -> Vec<SecondStat> {
        (0..secs.min(TIMELINE_SECS))
            .map(|i| SecondStat {
                second: i,
                delivered: self.delivered[i].load(Ordering::Relaxed),
                slow: self.slow[i].load(Ordering::Relaxed),
                max_ms: self.max_us[i].load(Ordering::Relaxed) as f64 / 1000.0,
            })
            .collect()
    }
}

/// State shared by every connection task.
struct Ctx {
    kind: Kind,
    body_bytes: usize,
    /// Sockets per room: the deliveries one send should produce.
    members: u64,
    hists: Vec<Mutex<Histogram<u64>>>,
    timeline: Timeline,
    win_start: AtomicU64,
    win_end: AtomicU64,
    sent_win: AtomicU64,
    expected_win: AtomicU64,
    delivered_win: AtomicU64,
    delivered_all: AtomicU64,
    errors: AtomicU64,
    disconnected: AtomicU64,
    ready: AtomicUsize,
    failed: AtomicUsize,
    last_ready_us: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Ctx {
    fn in_window(&self, ts: u64) -> bool {
        ts >= self.win_start.load(Ordering::Relaxed) && ts < self.win_end.load(Ordering::Relaxed)
    }

    fn delivered(&self, ts: u64, shard: usize) {
        self.delivered_all.fetch_add(1, Ordering::Relaxed);
        if self.in_window(ts) {
            let latency = proto::now_us().saturating_sub(ts).clamp(1, MAX_LATENCY_US);
            self.delivered_win.fetch_add(1, Ordering::Relaxed);
            // Saturating: the next step may have moved the window since the check.
            let second = ts.saturating_sub(self.win_start.load(Ordering::Relaxed)) / 1_000_000;
            self.timeline.record(second as usize, latency);
            let mut h = self.hists[shard % SHARDS]
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let _ = h.record(latency);
        }
    }

    fn fail(&self, e: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(e);
        }
    }
}

/// Connected sockets of one target.
pub struct Fleet {
    ctx: Arc<Ctx>,
    /// One per sending socket, ordered so consecutive sends go to different rooms.
    senders: Vec<mpsc::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pids: Vec<u32>,
    pub connect: ConnectReport,
}

fn client_config() -> WebSocketConfig {
    // A load generator with 19k sockets cannot afford tungstenite's 128 KiB default.
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

fn progress(len: u64, template: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

struct ConnPlan {
    index: usize,
    url: String,
    addr: SocketAddr,
    src: Option<Ipv4Addr>,
    room: Option<String>,
    sender: Option<mpsc::Receiver<()>>,
}

async fn open(
    plan: &ConnPlan,
    kind: Kind,
) -> Result<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>> {
    let socket = TcpSocket::new_v4()?;
    if let Some(src) = plan.src {
        socket.bind(SocketAddr::new(src.into(), 0))?;
    }
    let stream = socket.connect(plan.addr).await?;
    stream.set_nodelay(true)?;
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(
        plan.url.as_str(),
        stream,
        Some(client_config()),
    )
    .await?;
    // Handshake (hello / Engine.IO open + namespace connect).
    let (ready, _) = proto::handshake_step(kind, "");
    if !ready || kind == Kind::Chatx {
        loop {
            let Some(frame) = ws.next().await else {
                return Err(BenchError::Protocol("closed during handshake".into()));
            };
            if let Message::Text(text) = frame? {
                let (ready, reply) = proto::handshake_step(kind, text.as_str());
                if let Some(reply) = reply {
                    ws.send(Message::text(reply)).await?;
                }
                if ready {
                    break;
                }
                if text.contains(r#""type":"error""#) {
                    return Err(BenchError::Protocol(text.to_string()));
                }
            }
        }
    }
    if let Some(room) = &plan.room
        && let Some(join) = proto::join_frame(kind, room)
    {
        ws.send(Message::text(join)).await?;
        loop {
            let Some(frame) = ws.next().await else {
                return Err(BenchError::Protocol("closed during join".into()));
            };
            if let Message::Text(text) = frame? {
                if proto::is_join_reply(kind, text.as_str()).map_err(BenchError::Protocol)? {
                    break;
                }
                if kind == Kind::Socketio && text.as_str() == "2" {
                    ws.send(Message::text("3")).await?;
                }
            }
        }
    }
    Ok(ws)
}

async fn connection(plan: ConnPlan, ctx: Arc<Ctx>, permit: tokio::sync::OwnedSemaphorePermit) {
    let ws = match tokio::time::timeout(Duration::from_secs(60), open(&plan, ctx.kind)).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => return ctx.fail(e.to_string()),
        Err(_) => return ctx.fail("connect timed out".into()),
    };
    drop(permit);
    ctx.last_ready_us
        .fetch_max(proto::now_us(), Ordering::Relaxed);
    ctx.ready.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = ws.split();
    let mut sends = plan.sender;
    let room = plan.room.unwrap_or_default();
    let mut seq = 0u64;
    loop {
        tokio::select! {
            cmd = async {
                match sends.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                let Some(()) = cmd else { break };
                seq += 1;
                let ts = proto::now_us();
                let body = proto::body(ts, ctx.body_bytes);
                let frame = proto::send_frame(ctx.kind, &room, &body, plan.index, seq);
                if ctx.in_window(ts) {
                    ctx.sent_win.fetch_add(1, Ordering::Relaxed);
                    ctx.expected_win.fetch_add(ctx.members, Ordering::Relaxed);
                }
                if sink.send(Message::text(frame)).await.is_err() {
                    ctx.disconnected.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => match proto::classify(ctx.kind, text.as_str()) {
                    Incoming::Delivery(ts) => ctx.delivered(ts, plan.index),
                    Incoming::Error => {
                        ctx.errors.fetch_add(1, Ordering::Relaxed);
                        let mut first = ctx.first_error.lock().unwrap_or_else(|p| p.into_inner());
                        if first.is_none() {
                            *first = Some(text.to_string());
                        }
                    }
                    Incoming::Reply(reply) => {
                        if sink.send(Message::text(reply)).await.is_err() {
                            ctx.disconnected.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                    Incoming::Other => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    ctx.disconnected.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Some(Ok(_)) => {}
            }
        }
    }
    let _ = sink.send(Message::Close(None)).await;
}

fn resolve(url: &str) -> Result<SocketAddr> {
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or_default();
    use std::net::ToSocketAddrs;
    host.to_socket_addrs()?
        .find(|a| a.is_ipv4())
        .ok_or_else(|| BenchError::Setup(format!("cannot resolve `{host}`")))
}

impl Fleet {
    /// Sets up (ChatX), then opens this process's share of the workload's sockets.
    pub async fn connect(
        target: &Target,
        load: &Workload,
        tokens: Option<Vec<String>>,
        quiet: bool,
    ) -> Result<Fleet> {
        let tokens = match target.kind {
            Kind::Chatx if tokens.is_some() => tokens.unwrap_or_default(),
            Kind::Chatx => {
                let base = target
                    .urls
                    .first()
                    .ok_or_else(|| BenchError::Setup("no url".into()))?;
                crate::setup::chatx(
                    base,
                    load.users.clamp(1, load.conns.max(1)),
                    load.rooms,
                    &load.room_prefix,
                )
                .await?
            }
            _ => Vec::new(),
        };
        let addrs = target
            .urls
            .iter()
            .map(|u| resolve(u))
            .collect::<Result<Vec<_>>>()?;
        let ctx = Arc::new(Ctx {
            kind: target.kind,
            body_bytes: load.body_bytes.max(proto::TS_DIGITS),
            members: load.conns.checked_div(load.rooms).unwrap_or(0) as u64,
            hists: (0..SHARDS)
                .map(|_| {
                    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                        .map(Mutex::new)
                        .map_err(|e| BenchError::Setup(e.to_string()))
                })
                .collect::<Result<_>>()?,
            timeline: Timeline::new(),
            win_start: AtomicU64::new(u64::MAX),
            win_end: AtomicU64::new(0),
            sent_win: AtomicU64::new(0),
            expected_win: AtomicU64::new(0),
            delivered_win: AtomicU64::new(0),
            delivered_all: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            disconnected: AtomicU64::new(0),
            ready: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            last_ready_us: AtomicU64::new(0),
            first_error: Mutex::new(None),
        });
        let mine: Vec<usize> = (0..load.conns)
            .filter(|i| i % load.shards.max(1) == load.shard)
            .collect();
        let before = procstat::sample(&target.pids);
        let bar = progress(
            mine.len() as u64,
            &format!(
                "{} connect {{bar:30}} {{pos}}/{{len}} {{per_sec}} {{msg}}",
                target.name
            ),
            quiet,
        );
        let permits = Arc::new(Semaphore::new(load.connect_concurrency.max(1)));
        let started = Instant::now();
        let started_us = proto::now_us();
        let mut senders: Vec<(usize, usize, mpsc::Sender<()>)> = Vec::new();
        let mut tasks = Vec::with_capacity(mine.len());
        for (n, &i) in mine.iter().enumerate() {
            if load.connect_rate > 0.0 {
                let due = started + Duration::from_secs_f64(n as f64 / load.connect_rate);
                tokio::time::sleep_until(due.into()).await;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let room = load.room_of(i);
            let member_rank = i.checked_div(load.rooms).unwrap_or(usize::MAX);
            let sender = match room {
                Some(r) if member_rank < load.senders_per_room => {
                    let (tx, rx) = mpsc::channel(256);
                    senders.push((member_rank, r, tx));
                    Some(rx)
                }
                _ => None,
            };
            let node = i % target.urls.len().max(1);
            let room_name = room.map(|r| room_name(&load.room_prefix, r));
            let token = (!tokens.is_empty()).then(|| tokens[i % tokens.len()].as_str());
            let plan = ConnPlan {
                index: i,
                url: proto::ws_url(
                    target.kind,
                    &target.urls[node],
                    room_name.as_deref().unwrap_or(""),
                    token,
                ),
                addr: addrs[node],
                src: (!load.src_ips.is_empty()).then(|| load.src_ips[i % load.src_ips.len()]),
                room: room_name,
                sender,
            };
            tasks.push(tokio::spawn(connection(plan, ctx.clone(), permit)));
            bar.set_position(ctx.ready.load(Ordering::Relaxed) as u64);
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while ctx.ready.load(Ordering::Relaxed) + ctx.failed.load(Ordering::Relaxed) < mine.len() {
            bar.set_position(ctx.ready.load(Ordering::Relaxed) as u64);
            if Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bar.finish_and_clear();
        let connected = ctx.ready.load(Ordering::Relaxed);
        let last = ctx.last_ready_us.load(Ordering::Relaxed);
        let secs = if last > started_us {
            (last - started_us) as f64 / 1e6
        } else {
            started.elapsed().as_secs_f64()
        };
        // Let the server settle (allocator, presence fan-out) before sampling RSS.
        if !target.pids.is_empty() {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let idle = procstat::sample(&target.pids);
        senders.sort_by_key(|(rank, room, _)| (*rank, *room));
        let connect = ConnectReport {
            requested: mine.len(),
            connected,
            failed: mine.len() - connected,
            secs,
            rate: if secs > 0.0 {
                connected as f64 / secs
            } else {
                0.0
            },
            rss_before_kib: before.rss_kib,
            rss_idle_kib: idle.rss_kib,
            rss_per_conn_kib: (!target.pids.is_empty() && connected > 0)
                .then(|| idle.rss_kib.saturating_sub(before.rss_kib) as f64 / connected as f64),
            first_error: ctx
                .first_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        };
        Ok(Fleet {
            ctx,
            senders: senders.into_iter().map(|(_, _, tx)| tx).collect(),
            tasks,
            pids: target.pids.clone(),
            connect,
        })
    }

    /// Sockets that closed since they connected.
    pub fn disconnected(&self) -> u64 {
        self.ctx.disconnected.load(Ordering::Relaxed)
    }

    /// Sends at `rate` messages/s for `warmup + secs`, measuring the last `secs`, then
    /// waits up to `drain` for messages in flight.
    pub async fn step(
        &self,
        rate: f64,
        warmup: Duration,
        secs: Duration,
        drain: Duration,
        label: &str,
        quiet: bool,
    ) -> StepReport {
        let ctx = &self.ctx;
        for h in &ctx.hists {
            h.lock().unwrap_or_else(|p| p.into_inner()).reset();
        }
        ctx.timeline.reset();
        for c in [&ctx.sent_win, &ctx.expected_win, &ctx.delivered_win] {
            c.store(0, Ordering::Relaxed);
        }
        let errors_before = ctx.errors.load(Ordering::Relaxed);
        let disc_before = ctx.disconnected.load(Ordering::Relaxed);
        let now = proto::now_us();
        let start_us = now + warmup.as_micros() as u64;
        ctx.win_start.store(start_us, Ordering::Relaxed);
        ctx.win_end
            .store(start_us + secs.as_micros() as u64, Ordering::Relaxed);
        let total = warmup + secs;
        let bar = progress(
            total.as_secs(),
            &format!("{label} {{bar:30}} {{pos}}/{{len}}s {{msg}}"),
            quiet,
        );
        let started = Instant::now();
        let mut proc_start = None;
        let mut sent = 0u64;
        let mut gen_dropped = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_bar = Instant::now();
        let mut delivered_mark = ctx.delivered_all.load(Ordering::Relaxed);
        loop {
            tick.tick().await;
            let elapsed = started.elapsed();
            if elapsed >= total {
                break;
            }
            if proc_start.is_none() && elapsed >= warmup {
                proc_start = Some((Instant::now(), procstat::sample(&self.pids)));
            }
            let due = (elapsed.as_secs_f64() * rate) as u64;
            while sent < due && !self.senders.is_empty() {
                let tx = &self.senders[(sent % self.senders.len() as u64) as usize];
                if tx.try_send(()).is_err() {
                    gen_dropped += 1;
                }
                sent += 1;
            }
            if last_bar.elapsed() >= Duration::from_millis(500) {
                let all = ctx.delivered_all.load(Ordering::Relaxed);
                let per_s = (all - delivered_mark) as f64 / last_bar.elapsed().as_secs_f64();
                delivered_mark = all;
                last_bar = Instant::now();
                bar.set_position(elapsed.as_secs());
                bar.set_message(format!("{per_s:.0} deliveries/s"));
            }
        }
        let proc_end = (Instant::now(), procstat::sample(&self.pids));
        let drain_until = Instant::now() + drain;
        while Instant::now() < drain_until
            && ctx.delivered_win.load(Ordering::Relaxed) < ctx.expected_win.load(Ordering::Relaxed)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bar.finish_and_clear();
        let mut hist =
            Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3).unwrap_or_else(|_| {
                Histogram::new(3)
                    .unwrap_or_else(|_| unreachable!("3 significant figures are valid"))
            });
        for h in &ctx.hists {
            let _ = hist.add(&*h.lock().unwrap_or_else(|p| p.into_inner()));
        }
        let secs_f = secs.as_secs_f64();
        let sent_win = ctx.sent_win.load(Ordering::Relaxed);
        let expected = ctx.expected_win.load(Ordering::Relaxed);
        let delivered = ctx.delivered_win.load(Ordering::Relaxed);
        let ms = |us: u64| us as f64 / 1000.0;
        let (cpu_pct, rss_kib) = match proc_start {
            Some((at, before)) => (
                procstat::cpu_pct(
                    before,
                    proc_end.1,
                    proc_end.0.duration_since(at).as_secs_f64(),
                ),
                proc_end.1.rss_kib,
            ),
            None => (0.0, proc_end.1.rss_kib),
        };
        StepReport {
            target_rate: rate,
            sent: sent_win,
            sent_per_s: sent_win as f64 / secs_f,
            expected,
            delivered,
            delivered_per_s: delivered as f64 / secs_f,
            missing_pct: if expected > 0 {
                100.0 * expected.saturating_sub(delivered) as f64 / expected as f64
            } else {
                0.0
            },
            p50_ms: ms(hist.value_at_quantile(0.5)),
            p99_ms: ms(hist.value_at_quantile(0.99)),
            p999_ms: ms(hist.value_at_quantile(0.999)),
            max_ms: ms(hist.max()),
            errors: ctx.errors.load(Ordering::Relaxed) - errors_before,
            gen_dropped,
            disconnected: ctx.disconnected.load(Ordering::Relaxed) - disc_before,
            rss_kib,
            cpu_pct,
            timeline: ctx.timeline.report(secs.as_secs().max(1) as usize),
            window_start_us: start_us,
        }
    }

    /// Server RSS now.
    pub fn rss_kib(&self) -> u64 {
        procstat::sample(&self.pids).rss_kib
    }

    /// Closes every socket.
    pub async fn close(self) {
        drop(self.senders);
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Everything measured for one target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetReport {
    pub name: String,
    pub kind: Kind,
    pub nodes: usize,
    pub connect: ConnectReport,
    pub steps: Vec<StepReport>,
    /// Highest delivered messages/s of a step with p99 < the SLO and < 1% missing.
    pub capacity_per_s: Option<f64>,
    pub disconnected: u64,
    pub errors_total: u64,
}

/// A step counts toward capacity when its p99 meets `slo_ms`, under 1% of the
/// expected deliveries are missing and the generator kept up.
pub fn capacity(steps: &[StepReport], slo_ms: f64) -> Option<f64> {
    steps
        .iter()
        .filter(|s| s.p99_ms <= slo_ms && s.missing_pct < 1.0 && s.delivered > 0)
        .map(|s| s.delivered_per_s)
        .fold(None, |best, v| Some(best.map_or(v, |b: f64| b.max(v))))
}

/// Options of one run of [`run_target`].
#[derive(Debug, Clone)]
pub struct StepPlan {
    pub rates: Vec<f64>,
    pub warmup: Duration,
    pub secs: Duration,
    pub drain: Duration,
    /// Stop ramping once p99 exceeds this (the system collapsed).
    pub stop_p99_ms: f64,
    pub slo_ms: f64,
    /// Idle hold after connecting (for connect/idle runs with no rates).
    pub hold: Duration,
}

/// Connects, runs every rate step, closes.
pub async fn run_target(
    target: &Target,
    load: &Workload,
    plan: &StepPlan,
    quiet: bool,
) -> Result<TargetReport> {
    let fleet = Fleet::connect(target, load, None, quiet).await?;
    if !quiet {
        eprintln!(
            "{}: {} of {} sockets ready in {:.1}s ({:.0}/s){}",
            target.name,
            fleet.connect.connected,
            fleet.connect.requested,
            fleet.connect.secs,
            fleet.connect.rate,
            fleet
                .connect
                .rss_per_conn_kib
                .map(|k| format!(", server RSS +{k:.1} KiB/socket"))
                .unwrap_or_default()
        );
    }
    if plan.hold > Duration::ZERO {
        tokio::time::sleep(plan.hold).await;
    }
    let mut steps = Vec::new();
    for &rate in &plan.rates {
        let label = format!("{} {rate:.0} msg/s", target.name);
        let step = fleet
            .step(rate, plan.warmup, plan.secs, plan.drain, &label, quiet)
            .await;
        if !quiet {
            eprintln!(
                "{label}: delivered {:.0}/s p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.1} ms, missing {:.2}%, errors {}, cpu {:.0}%",
                step.delivered_per_s,
                step.p50_ms,
                step.p99_ms,
                step.p999_ms,
                step.max_ms,
                step.missing_pct,
                step.errors,
                step.cpu_pct
            );
            if let Some(worst) = worst_seconds(&step.timeline, 5) {
                eprintln!("{label}: slowest seconds (> 10 ms): {worst}");
            }
        }
        let collapsed = step.p99_ms > plan.stop_p99_ms || step.missing_pct > 20.0;
        steps.push(step);
        if collapsed {
            break;
        }
    }
    let errors_total = fleet.ctx.errors.load(Ordering::Relaxed);
    let disconnected = fleet.disconnected();
    let connect = fleet.connect.clone();
    fleet.close().await;
    Ok(TargetReport {
        name: target.name.clone(),
        kind: target.kind,
        nodes: target.urls.len(),
        capacity_per_s: capacity(&steps, plan.slo_ms),
        connect,
        steps,
        disconnected,
        errors_total,
    })
}

/// The sample at `at` (for reports that only need RSS).
pub fn sample(pids: &[u32]) -> ProcSample {
    procstat::sample(pids)
}

/// The `n` seconds with the most deliveries over 10 ms, in time order, as
/// `t=12s 3.1% max 45.0ms`; `None` when no second had any.
fn worst_seconds(timeline: &[SecondStat], n: usize) -> Option<String> {
    let mut worst: Vec<&SecondStat> = timeline.iter().filter(|s| s.slow > 0).collect();
    if worst.is_empty() {
        return None;
    }
    worst.sort_by_key(|s| std::cmp::Reverse(s.slow));
    worst.truncate(n);
    worst.sort_by_key(|s| s.second);
    Some(
        worst
            .iter()
            .map(|s| {
                let pct = 100.0 * s.slow as f64 / s.delivered.max(1) as f64;
                format!("t={}s {pct:.1}% max {:.1}ms", s.second, s.max_ms)
            })
            .collect::<Vec<_>>()
            .join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_names_the_seconds_with_the_most_slow_deliveries() {
        let timeline = Timeline::new();
        timeline.record(0, 500);
        timeline.record(1, 20_000);
        timeline.record(1, 900);
        timeline.record(3, 12_000);
        timeline.record(3, 30_000);
        timeline.record(TIMELINE_SECS + 5, 11_000);
        let report = timeline.report(4);
        assert_eq!(report.len(), 4);
        assert_eq!((report[1].delivered, report[1].slow), (2, 1));
        assert_eq!(report[3].max_ms, 30.0);
        assert_eq!(
            worst_seconds(&report, 1).as_deref(),
            Some("t=3s 100.0% max 30.0ms")
        );
        assert_eq!(
            worst_seconds(&report, 5).as_deref(),
            Some("t=1s 50.0% max 20.0ms, t=3s 100.0% max 30.0ms")
        );
        assert_eq!(worst_seconds(&report[..1], 5), None);
        // A late second past the end shares the last bucket instead of panicking.
        assert_eq!(
            timeline.delivered[TIMELINE_SECS - 1].load(Ordering::Relaxed),
            1
        );
        timeline.reset();
        assert!(timeline.report(4).iter().all(|s| s.delivered == 0));
    }
}
