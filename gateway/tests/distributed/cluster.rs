//! A distributed ChatX on loopback for the tests: N gateway and M worker PROCESSES
//! sharing the machine's Redis, NATS (JetStream) and PostgreSQL, isolated per test by
//! a fresh database, a Redis key prefix, a JetStream stream and a subject prefix.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};
use uuid::Uuid;

use crate::client::Api;

pub fn postgres_server() -> String {
    std::env::var("CHATX_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub fn redis_url() -> String {
    std::env::var("CHATX_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn nats_url() -> String {
    std::env::var("CHATX_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A workspace binary next to this test's executable (`target/<profile>/<name>`).
fn binary(name: &str) -> PathBuf {
    if name == "gateway" {
        return PathBuf::from(env!("CARGO_BIN_EXE_gateway"));
    }
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

pub struct Gw {
    pub api: Api,
    child: Option<Child>,
}

pub struct Cluster {
    pub gateways: Vec<Gw>,
    workers: Vec<Option<Child>>,
    pub env: HashMap<String, String>,
    pub database_url: String,
    db_name: String,
    stream: String,
}

impl Cluster {
    /// Creates the database (migrated), then starts the processes.
    pub async fn start(gateways: usize, workers: usize, tweak: &[(&str, &str)]) -> Cluster {
        let id = Uuid::new_v4().simple().to_string();
        let db_name = format!("chatx_test_{id}");
        let admin = Database::connect(format!("{}/postgres", postgres_server()))
            .await
            .expect("postgres");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {db_name}"))
            .await
            .expect("create database");
        admin.close().await.expect("close");
        let database_url = format!("{}/{db_name}", postgres_server());
        let db = infra::db::connect(&database_url).await.expect("connect");
        infra::db::migrate(&db).await.expect("migrate");
        db.close().await.expect("close");
        let stream = format!("T_{id}");
        let mut env: HashMap<String, String> = [
            ("DATABASE_URL", database_url.clone()),
            ("REDIS_URL", redis_url()),
            ("NATS_URL", nats_url()),
            (
                "JWT_SECRET",
                "distributed-test-secret-0123456789abcdef".into(),
            ),
            ("BIND_ADDR", "127.0.0.1:0".into()),
            ("CHATX_KEY_PREFIX", format!("chatx-test:{id}:")),
            ("CHATX_NATS_STREAM", stream.clone()),
            ("CHATX_NATS_SUBJECT_PREFIX", format!("t{id}.")),
            ("CHATX_BCRYPT_COST", "4".into()),
            ("CHATX_RATE_MSG_PER_SEC", "1000".into()),
            ("CHATX_RATE_MSG_BURST", "1000".into()),
            ("CHATX_RATE_JOIN_PER_SEC", "1000".into()),
            ("CHATX_RATE_JOIN_BURST", "1000".into()),
            ("CHATX_RATE_LOGIN_IP_PER_MIN", "100000".into()),
            ("CHATX_RATE_LOGIN_IP_BURST", "1000".into()),
            ("CHATX_RATE_LOGIN_USER_PER_MIN", "100000".into()),
            ("CHATX_RATE_LOGIN_USER_BURST", "1000".into()),
            ("CHATX_HTTP_PER_IP_PER_SEC", "100000".into()),
            ("CHATX_HTTP_PER_IP_BURST", "100000".into()),
            ("CHATX_PRESENCE_TTL_SECS", "3".into()),
            ("CHATX_PRESENCE_REFRESH_SECS", "1".into()),
            ("CHATX_PRESENCE_GRACE_MS", "300".into()),
            ("CHATX_DRAIN_SECS", "1".into()),
            ("CHATX_STARTUP_TIMEOUT_SECS", "10".into()),
            ("RUST_LOG", "warn".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in tweak {
            env.insert(k.to_string(), v.to_string());
        }
        let mut cluster = Cluster {
            gateways: Vec::new(),
            workers: Vec::new(),
            env,
            database_url,
            db_name,
            stream,
        };
        for _ in 0..workers {
            let worker = cluster.spawn_worker();
            cluster.workers.push(Some(worker));
        }
        for _ in 0..gateways {
            let gw = cluster.spawn_gateway().await;
            cluster.gateways.push(gw);
        }
        cluster
    }

    fn command(&self, name: &str) -> Command {
        let mut cmd = Command::new(binary(name));
        cmd.env_clear().envs(&self.env).stdin(Stdio::null());
        cmd
    }

    async fn spawn_gateway(&self) -> Gw {
        let mut child = self
            .command("gateway")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn gateway");
        let stdout = child.stdout.take().expect("stdout");
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        })
        .await
        .expect("join")
        .expect("read gateway stdout");
        let addr: SocketAddr = line
            .trim()
            .strip_prefix("ChatX listening on http://")
            .and_then(|rest| rest.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("unexpected gateway output: {line:?}"));
        let gw = Gw {
            api: Api::new(addr),
            child: Some(child),
        };
        wait_ready(&gw.api).await;
        gw
    }

    fn spawn_worker(&self) -> Child {
        self.command("worker")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn worker")
    }

    pub fn api(&self, i: usize) -> &Api {
        &self.gateways[i].api
    }

    /// SIGKILL: no drain, no goodbye.
    pub fn kill_gateway(&mut self, i: usize) {
        if let Some(mut child) = self.gateways[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn kill_worker(&mut self, i: usize) {
        if let Some(mut child) = self.workers[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart_worker(&mut self, i: usize) {
        self.kill_worker(i);
        let worker = self.spawn_worker();
        self.workers[i] = Some(worker);
    }

    /// Stops every process and removes the test's database, stream and keys.
    pub async fn stop(mut self) {
        for i in 0..self.gateways.len() {
            self.kill_gateway(i);
        }
        for i in 0..self.workers.len() {
            self.kill_worker(i);
        }
        if let Ok(client) = async_nats::connect(nats_url()).await {
            let _ = async_nats::jetstream::new(client)
                .delete_stream(&self.stream)
                .await;
        }
        if let Ok(client) = redis::Client::open(redis_url())
            && let Ok(mut conn) = client.get_multiplexed_async_connection().await
        {
            let prefix = &self.env["CHATX_KEY_PREFIX"];
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
            }
        }
        if let Ok(admin) = Database::connect(format!("{}/postgres", postgres_server())).await {
            let _ = admin
                .execute_unprepared(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.db_name
                ))
                .await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for gw in &mut self.gateways {
            if let Some(mut child) = gw.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        for worker in self.workers.iter_mut().filter_map(Option::take) {
            let mut worker = worker;
            let _ = worker.kill();
            let _ = worker.wait();
        }
    }
}

async fn wait_ready(api: &Api) {
    for _ in 0..200 {
        if let Ok(r) = api.http.get(format!("{}/readyz", api.base)).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gateway {} never became ready", api.base);
}

/// Polls `check` until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within {within:?}: {what}");
}
