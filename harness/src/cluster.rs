//! [`Cluster`]: a whole distributed ChatX on loopback, private to one test (or one
//! `scripts/cluster up`): its own `nats-server -js`, `redis-server` and PostgreSQL
//! cluster, N gateway and M worker processes, and nginx rendered from
//! `deploy/nginx/chatx.conf.template` as the WebSocket load balancer in front.
//!
//! Every process it starts it stops again by PID: explicitly (the fault methods), and
//! when dropped, also while a failing test unwinds. The machine's shared PostgreSQL,
//! Redis and NATS are never touched.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chatx_client::checker::DbMessage;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use tempfile::TempDir;
use uuid::Uuid;

use crate::daemon::Daemon;
use crate::error::HarnessError;
use crate::postgres::Postgres;
use crate::process::{Signal, free_port, rss_bytes};

/// How long a gateway may take to answer `/readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a SIGTERMed gateway may drain (its window plus the server's own grace).
const DRAIN_GRACE: Duration = Duration::from_secs(30);
/// The JWT secret every process of the cluster shares.
const JWT_SECRET: &str = "harness-jwt-secret-harness-jwt-secret-0123";

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub gateways: usize,
    pub workers: usize,
    /// Settings for gateways and workers that override the harness defaults
    /// (`CHATX_DRAIN_SECS`, `RUST_LOG`, ...).
    pub env: Vec<(String, String)>,
    /// Where data and logs go; `None`: a temporary directory, removed when the
    /// cluster is dropped (kept, and printed, when a panic is unwinding or
    /// `CHATX_KEEP_CLUSTER` is set).
    pub dir: Option<PathBuf>,
    /// nginx's port; `None`: a free one.
    pub port: Option<u16>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            gateways: 3,
            workers: 1,
            env: Vec::new(),
            dir: None,
            port: None,
        }
    }
}

pub struct Cluster {
    dir: PathBuf,
    temp: Option<TempDir>,
    env: BTreeMap<String, String>,
    bin_dir: PathBuf,
    postgres: Postgres,
    nats: Daemon,
    redis: Daemon,
    workers: Vec<Daemon>,
    gateways: Vec<Daemon>,
    nginx: Daemon,
    http: reqwest::Client,
}

/// Where the `gateway` and `worker` binaries are: `CHATX_BIN_DIR`, or the target
/// directory of the running executable (a test binary in `target/debug/deps`, or
/// `chatx-cluster` in `target/debug`).
pub fn bin_dir() -> Result<PathBuf, HarnessError> {
    if let Ok(dir) = std::env::var("CHATX_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().map_err(HarnessError::io("locating this executable"))?;
    exe.ancestors()
        .skip(1)
        .take(2)
        .find(|dir| dir.join("gateway").is_file() && dir.join("worker").is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            HarnessError::Missing(
                "the gateway and worker binaries".into(),
                "run `cargo build --workspace --bins` first, or set CHATX_BIN_DIR".into(),
            )
        })
}

fn program(name: &str, fallbacks: &[&str]) -> Result<PathBuf, HarnessError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .chain(fallbacks.iter().map(PathBuf::from))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            HarnessError::Missing(name.into(), "install it (scripts/services does)".into())
        })
}

/// The settings every gateway and worker of a harness cluster gets: limits raised so
/// that only the faults under test decide what happens, fast bcrypt, short presence
/// timings and a short drain window.
fn base_env(postgres: &Postgres, redis_port: u16, nats_port: u16) -> BTreeMap<String, String> {
    let log = std::env::var("CHATX_CLUSTER_LOG").unwrap_or_else(|_| "warn".into());
    [
        ("DATABASE_URL", postgres.url("chatx")),
        ("REDIS_URL", format!("redis://127.0.0.1:{redis_port}")),
        ("NATS_URL", format!("nats://127.0.0.1:{nats_port}")),
        ("JWT_SECRET", JWT_SECRET.into()),
        ("CHATX_TRUST_FORWARDED_FOR", "true".into()),
        ("CHATX_BCRYPT_COST", "4".into()),
        ("CHATX_RATE_MSG_PER_SEC", "1000".into()),
        ("CHATX_RATE_MSG_BURST", "1000".into()),
        ("CHATX_RATE_JOIN_PER_SEC", "1000".into()),
        ("CHATX_RATE_JOIN_BURST", "1000".into()),
        ("CHATX_RATE_LOGIN_IP_PER_MIN", "1000000".into()),
        ("CHATX_RATE_LOGIN_IP_BURST", "100000".into()),
        ("CHATX_RATE_LOGIN_USER_PER_MIN", "100000".into()),
        ("CHATX_RATE_LOGIN_USER_BURST", "1000".into()),
        ("CHATX_HTTP_PER_IP_PER_SEC", "1000000".into()),
        ("CHATX_HTTP_PER_IP_BURST", "1000000".into()),
        ("CHATX_PRESENCE_TTL_SECS", "10".into()),
        ("CHATX_PRESENCE_REFRESH_SECS", "3".into()),
        ("CHATX_PRESENCE_GRACE_MS", "1000".into()),
        ("CHATX_DRAIN_SECS", "3".into()),
        ("CHATX_STARTUP_TIMEOUT_SECS", "30".into()),
        ("RUST_LOG", log),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

impl Cluster {
    /// Starts everything and waits until every gateway is ready and nginx listens.
    /// On failure everything started so far is stopped, and a temporary directory is
    /// kept for its logs (its path is in the error's log path).
    pub async fn start(config: ClusterConfig) -> Result<Cluster, HarnessError> {
        let (dir, temp) = match &config.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(HarnessError::io(format!("creating {}", dir.display())))?;
                (dir.clone(), None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("chatx-cluster-")
                    .tempdir()
                    .map_err(HarnessError::io("creating the cluster directory"))?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        match Self::start_in(&config, dir).await {
            Ok(mut cluster) => {
                cluster.temp = temp;
                Ok(cluster)
            }
            Err(e) => {
                if let Some(temp) = temp {
                    let _ = temp.keep();
                }
                Err(e)
            }
        }
    }

    async fn start_in(config: &ClusterConfig, dir: PathBuf) -> Result<Cluster, HarnessError> {
        let bin_dir = bin_dir()?;
        let nats_bin = program("nats-server", &["/usr/sbin/nats-server"])?;
        let redis_bin = program("redis-server", &["/usr/bin/redis-server"])?;
        let nginx_bin = program("nginx", &["/usr/sbin/nginx"])?;
        // PostgreSQL (another user) and nginx workers must reach their subdirectories.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .map_err(HarnessError::io("chmod of the cluster directory"))?;
        let logs = dir.join("logs");
        for sub in [&logs, &dir.join("nats"), &dir.join("redis")] {
            std::fs::create_dir_all(sub)
                .map_err(HarnessError::io(format!("creating {}", sub.display())))?;
        }

        let mut postgres = Postgres::init(&dir.join("postgres"), free_port()?).await?;
        postgres.start().await?;
        create_database(&postgres).await?;

        let nats_port = free_port()?;
        let nats_store = dir.join("nats").display().to_string();
        let nats_port_arg = nats_port.to_string();
        let mut nats = Daemon::new(
            "nats",
            &nats_bin,
            &[
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &nats_port_arg,
                "-sd",
                &nats_store,
                "-n",
                "chatx-harness",
            ],
            &logs.join("nats.log"),
        )
        .port(nats_port);
        nats.start().await?;

        let redis_port = free_port()?;
        let redis_port_arg = redis_port.to_string();
        let redis_dir = dir.join("redis").display().to_string();
        // No persistence: a restart loses every session, presence lease and rate-limit
        // bucket, the hardest case for clients (they must sign in again).
        let mut redis = Daemon::new(
            "redis",
            &redis_bin,
            &[
                "--bind",
                "127.0.0.1",
                "--port",
                &redis_port_arg,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &redis_dir,
                "--protected-mode",
                "no",
                "--loglevel",
                "warning",
            ],
            &logs.join("redis.log"),
        )
        .port(redis_port);
        redis.start().await?;

        let mut env = base_env(&postgres, redis_port, nats_port);
        for (key, value) in &config.env {
            env.insert(key.clone(), value.clone());
        }

        let mut workers = Vec::new();
        for i in 0..config.workers {
            let mut worker = Daemon::new(
                &format!("worker-{i}"),
                &bin_dir.join("worker"),
                &[],
                &logs.join(format!("worker-{i}.log")),
            )
            .env(env.clone());
            worker.start().await?;
            workers.push(worker);
        }

        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| HarnessError::Http(e.to_string()))?;
        let mut gateways = Vec::new();
        for i in 0..config.gateways {
            let port = free_port()?;
            let mut gateway_env = env.clone();
            gateway_env.insert("BIND_ADDR".into(), format!("127.0.0.1:{port}"));
            let mut gateway = Daemon::new(
                &format!("gateway-{i}"),
                &bin_dir.join("gateway"),
                &[],
                &logs.join(format!("gateway-{i}.log")),
            )
            .env(gateway_env)
            .port(port);
            gateway.start().await?;
            wait_ready(&http, &mut gateway).await?;
            gateways.push(gateway);
        }

        let nginx_port = match config.port {
            Some(port) => port,
            None => free_port()?,
        };
        let nginx =
            start_nginx(&nginx_bin, &dir.join("nginx"), &logs, nginx_port, &gateways).await?;

        Ok(Cluster {
            dir,
            temp: None,
            env,
            bin_dir,
            postgres,
            nats,
            redis,
            workers,
            gateways,
            nginx,
            http,
        })
    }

    /// The load balancer: `http://127.0.0.1:<nginx port>`. Clients connect here.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.nginx.listen_port().unwrap_or(0))
    }

    /// One gateway directly (bypassing nginx): metrics, readiness.
    pub fn gateway_url(&self, i: usize) -> String {
        format!(
            "http://127.0.0.1:{}",
            self.gateways[i].listen_port().unwrap_or(0)
        )
    }

    pub fn gateway_count(&self) -> usize {
        self.gateways.len()
    }

    pub fn database_url(&self) -> String {
        self.postgres.url("chatx")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The settings the gateways and workers run with.
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    /// `(name, pid)` of every running process the cluster started.
    pub fn pids(&self) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        if let Some(pid) = self.postgres.pid() {
            out.push(("postgres".to_string(), pid));
        }
        for daemon in [&self.nats, &self.redis, &self.nginx]
            .into_iter()
            .chain(&self.workers)
            .chain(&self.gateways)
        {
            if let Some(pid) = daemon.pid() {
                out.push((daemon.name().to_string(), pid));
            }
        }
        out
    }

    // ---- faults ------------------------------------------------------------------------

    /// SIGKILL: no drain, no goodbye.
    pub fn kill_gateway(&mut self, i: usize) {
        self.gateways[i].kill();
    }

    /// SIGTERM and wait for the drain to finish and the process to exit.
    pub async fn stop_gateway(&mut self, i: usize) {
        self.gateways[i].stop(Signal::SIGTERM, DRAIN_GRACE).await;
    }

    /// Starts gateway `i` again on its port and waits until it is ready.
    pub async fn start_gateway(&mut self, i: usize) -> Result<(), HarnessError> {
        let gateway = &mut self.gateways[i];
        gateway.start().await?;
        wait_ready(&self.http, gateway).await
    }

    pub fn kill_worker(&mut self, i: usize) {
        self.workers[i].kill();
    }

    pub async fn start_worker(&mut self, i: usize) -> Result<(), HarnessError> {
        self.workers[i].start().await
    }

    /// Stops NATS cleanly (SIGTERM). Its JetStream store stays for the restart.
    pub async fn stop_nats(&mut self) {
        self.nats
            .stop(Signal::SIGTERM, Duration::from_secs(10))
            .await;
    }

    pub async fn start_nats(&mut self) -> Result<(), HarnessError> {
        self.nats.start().await
    }

    /// Stops Redis (SIGTERM); with no persistence its data is gone.
    pub async fn stop_redis(&mut self) {
        self.redis
            .stop(Signal::SIGTERM, Duration::from_secs(10))
            .await;
    }

    pub async fn start_redis(&mut self) -> Result<(), HarnessError> {
        self.redis.start().await
    }

    /// `pg_ctl stop -m fast`.
    pub async fn stop_postgres(&mut self) -> Result<(), HarnessError> {
        self.postgres.stop().await
    }

    pub async fn start_postgres(&mut self) -> Result<(), HarnessError> {
        self.postgres.start().await
    }

    // ---- observation ----------------------------------------------------------------

    /// Resident memory of gateway `i` (while it runs).
    pub fn gateway_rss(&self, i: usize) -> Option<u64> {
        self.gateways[i].pid().and_then(rss_bytes)
    }

    /// One value of gateway `i`'s `/metrics` (an unlabelled metric).
    pub async fn gateway_metric(&self, i: usize, name: &str) -> Option<f64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.gateway_url(i)))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines().find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
    }

    /// Every message row of the database.
    pub async fn messages(&self) -> Result<Vec<DbMessage>, HarnessError> {
        let db = Database::connect(self.database_url())
            .await
            .map_err(|e| HarnessError::Db(e.to_string()))?;
        let rows = db
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT seq, id FROM messages ORDER BY seq",
            ))
            .await
            .map_err(|e| HarnessError::Db(e.to_string()));
        let _ = db.close().await;
        rows?
            .iter()
            .map(|row| {
                let seq: i64 = row
                    .try_get("", "seq")
                    .map_err(|e| HarnessError::Db(e.to_string()))?;
                let id: Uuid = row
                    .try_get("", "id")
                    .map_err(|e| HarnessError::Db(e.to_string()))?;
                Ok(DbMessage {
                    seq: u64::try_from(seq).unwrap_or(0),
                    id,
                })
            })
            .collect()
    }

    /// `KEY=value` lines for shell scripts: URLs, logs and the PIDs.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "CHATX_URL={}\nDATABASE_URL={}\nREDIS_URL={}\nNATS_URL={}\nCLUSTER_DIR={}\nBIN_DIR={}\n",
            self.url(),
            self.database_url(),
            self.env.get("REDIS_URL").map_or("", String::as_str),
            self.env.get("NATS_URL").map_or("", String::as_str),
            self.dir.display(),
            self.bin_dir.display(),
        );
        for i in 0..self.gateways.len() {
            out.push_str(&format!("GATEWAY_{i}_URL={}\n", self.gateway_url(i)));
        }
        let pids: Vec<String> = self
            .pids()
            .into_iter()
            .map(|(name, pid)| format!("{name}:{pid}"))
            .collect();
        out.push_str(&format!("PIDS=\"{}\"\n", pids.join(" ")));
        out
    }

    /// Stops everything (also what `Drop` does).
    pub fn stop(&mut self) {
        self.nginx.kill();
        for gateway in &mut self.gateways {
            gateway.kill();
        }
        for worker in &mut self.workers {
            worker.kill();
        }
        self.nats.kill();
        self.redis.kill();
        self.postgres.kill();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        let keep = std::thread::panicking() || std::env::var_os("CHATX_KEEP_CLUSTER").is_some();
        if keep && let Some(temp) = self.temp.take() {
            eprintln!("cluster files (logs) kept in {}", temp.keep().display());
        }
    }
}

async fn create_database(postgres: &Postgres) -> Result<(), HarnessError> {
    let db_error = |e: sea_orm::DbErr| HarnessError::Db(e.to_string());
    let admin = Database::connect(postgres.url("postgres"))
        .await
        .map_err(db_error)?;
    admin
        .execute_unprepared("CREATE DATABASE chatx")
        .await
        .map_err(db_error)?;
    let _ = admin.close().await;
    let db = infra::db::connect(&postgres.url("chatx"))
        .await
        .map_err(|e| HarnessError::Db(e.to_string()))?;
    infra::db::migrate(&db)
        .await
        .map_err(|e| HarnessError::Db(format!("migrations: {e}")))?;
    let _ = db.close().await;
    Ok(())
}

async fn wait_ready(http: &reqwest::Client, gateway: &mut Daemon) -> Result<(), HarnessError> {
    let port = gateway.listen_port().unwrap_or(0);
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(response) = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            && response.status() == 200
        {
            return Ok(());
        }
        if !gateway.running() {
            return Err(gateway.failed("exited before it was ready"));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(HarnessError::Timeout(
                format!("{} ready", gateway.name()),
                READY_TIMEOUT,
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Renders the shared template with `deploy/nginx/render --standalone` and starts
/// nginx in the foreground on that file.
async fn start_nginx(
    nginx: &Path,
    dir: &Path,
    logs: &Path,
    port: u16,
    gateways: &[Daemon],
) -> Result<Daemon, HarnessError> {
    let render = std::env::var_os("CHATX_NGINX_RENDER")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx/render"));
    let conf = dir.join("nginx.conf");
    let mut command = tokio::process::Command::new(&render);
    // `max_fails=0`: no passive marking. Open-source nginx records a proxied
    // WebSocket's success only when the socket closes, so a gateway marked failed (a
    // draining gateway's 503s, a restart) admits one new socket per `fail_timeout`
    // until its probe socket ends: a rolling restart locked clients out for minutes.
    // Without marking, a dead or draining gateway costs one refused attempt, and
    // `proxy_next_upstream` moves the request to the next gateway.
    command.args(["--standalone", "--max-fails", "0", "--listen"]);
    command.arg(port.to_string()).arg("--out").arg(&conf);
    for gateway in gateways {
        command.arg(format!("127.0.0.1:{}", gateway.listen_port().unwrap_or(0)));
    }
    let output = command
        .output()
        .await
        .map_err(HarnessError::io(format!("running {}", render.display())))?;
    if !output.status.success() {
        return Err(HarnessError::Process {
            name: "deploy/nginx/render".into(),
            reason: String::from_utf8_lossy(&output.stderr).into_owned(),
            log: conf,
        });
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(HarnessError::io("chmod of the nginx directory"))?;
    let prefix = dir.display().to_string();
    let conf = conf.display().to_string();
    let mut daemon = Daemon::new(
        "nginx",
        nginx,
        &[
            "-p",
            &prefix,
            "-c",
            &conf,
            "-e",
            "stderr",
            "-g",
            "daemon off;",
        ],
        &logs.join("nginx.log"),
    )
    .port(port);
    daemon.start().await?;
    Ok(daemon)
}
