//! A crowd of resilient clients connected through the load balancer, all observed by
//! one [`Checker`], and a steady send load spread over them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chatx_client::checker::Checker;
use chatx_client::{Client, ClientConfig, Stats};
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::error::HarnessError;

pub const PASSWORD: &str = "harness-password";

/// Who connects and which rooms they follow.
#[derive(Debug, Clone)]
pub struct CrowdConfig {
    pub clients: usize,
    pub rooms: usize,
    /// Each client joins this many rooms (neighbours: client `i` joins rooms `i`,
    /// `i + 1`, ... modulo `rooms`), so every room has members on every gateway.
    pub rooms_per_client: usize,
    /// Usernames are `<prefix><n>`, rooms `<prefix>-<n>`.
    pub prefix: String,
    /// Clients signing in at the same time.
    pub concurrency: usize,
}

impl Default for CrowdConfig {
    fn default() -> Self {
        Self {
            clients: 300,
            rooms: 10,
            rooms_per_client: 2,
            prefix: "u".into(),
            concurrency: 16,
        }
    }
}

pub struct Member {
    pub name: String,
    pub client: Client,
    pub rooms: Vec<String>,
}

pub struct Crowd {
    pub base_url: String,
    pub checker: Arc<Checker>,
    pub members: Vec<Member>,
    pub rooms: Vec<String>,
}

/// Registers `owner` and creates the public `rooms` (an existing room is fine).
async fn create_rooms(base_url: &str, owner: &str, rooms: &[String]) -> Result<(), HarnessError> {
    let http = reqwest::Client::new();
    let failed = |e: reqwest::Error| HarnessError::Http(e.to_string());
    let credentials = json!({"username": owner, "password": PASSWORD});
    http.post(format!("{base_url}/api/auth/register"))
        .json(&credentials)
        .send()
        .await
        .map_err(failed)?;
    let login: Value = http
        .post(format!("{base_url}/api/auth/login"))
        .json(&credentials)
        .send()
        .await
        .map_err(failed)?
        .json()
        .await
        .map_err(failed)?;
    let token = login["access_token"]
        .as_str()
        .ok_or_else(|| HarnessError::Http(format!("login of {owner}: {login}")))?;
    for room in rooms {
        let response = http
            .post(format!("{base_url}/api/rooms"))
            .bearer_auth(token)
            .json(&json!({"name": room, "kind": "public"}))
            .send()
            .await
            .map_err(failed)?;
        if !(response.status().is_success() || response.status() == 409) {
            return Err(HarnessError::Http(format!(
                "creating room {room}: {}",
                response.status()
            )));
        }
    }
    Ok(())
}

impl Crowd {
    /// Creates the rooms, then signs in every client (registering it) through
    /// `base_url` and joins its rooms. `tweak` adjusts each client's configuration.
    pub async fn connect(
        base_url: &str,
        config: &CrowdConfig,
        tweak: impl Fn(&mut ClientConfig),
    ) -> Result<Crowd, HarnessError> {
        let rooms: Vec<String> = (0..config.rooms)
            .map(|n| format!("{}-{n:02}", config.prefix))
            .collect();
        create_rooms(base_url, &format!("{}owner", config.prefix), &rooms).await?;
        let mut crowd = Crowd {
            base_url: base_url.to_string(),
            checker: Arc::new(Checker::new()),
            members: Vec::new(),
            rooms: rooms.clone(),
        };
        let plans: Vec<(String, Vec<String>)> = (0..config.clients)
            .map(|i| {
                let mine = (0..config.rooms_per_client.min(config.rooms))
                    .map(|k| rooms[(i + k) % rooms.len()].clone())
                    .collect();
                (format!("{}{i:03}", config.prefix), mine)
            })
            .collect();
        let configs: Vec<(ClientConfig, Vec<String>)> = plans
            .into_iter()
            .map(|(name, rooms)| {
                let config = crowd.client_config(&name, &tweak);
                (config, rooms)
            })
            .collect();
        let results: Vec<Result<Member, HarnessError>> = stream::iter(configs)
            .map(|(config, rooms)| async move { join_member(config, rooms).await })
            .buffer_unordered(config.concurrency.max(1))
            .collect()
            .await;
        for member in results {
            crowd.members.push(member?);
        }
        crowd.members.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(crowd)
    }

    /// The configuration the crowd's clients use: registered on first use, observed
    /// by the crowd's checker, no event queue (the checker sees every delivery).
    pub fn client_config(&self, name: &str, tweak: &impl Fn(&mut ClientConfig)) -> ClientConfig {
        let mut config = ClientConfig::new(self.base_url.clone(), name, PASSWORD);
        config.register = true;
        config.emit_events = false;
        config.observer = Some(self.checker.clone());
        tweak(&mut config);
        config
    }

    /// Adds one more client (a slow consumer, a flooder) to the crowd.
    pub async fn add(
        &mut self,
        name: &str,
        rooms: &[&str],
        tweak: impl Fn(&mut ClientConfig),
    ) -> Result<Client, HarnessError> {
        let config = self.client_config(name, &tweak);
        let member = join_member(config, rooms.iter().map(|r| r.to_string()).collect()).await?;
        let client = member.client.clone();
        self.members.push(member);
        Ok(client)
    }

    pub fn stats(&self) -> Vec<Stats> {
        self.members.iter().map(|m| m.client.stats()).collect()
    }

    /// Waits until every acked message reached every member's application.
    pub async fn settle(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.checker.outstanding() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn close(&self) {
        for member in &self.members {
            member.client.close().await;
        }
    }
}

async fn join_member(config: ClientConfig, rooms: Vec<String>) -> Result<Member, HarnessError> {
    let name = config.username.clone();
    let client = Client::connect(config).await?;
    for room in &rooms {
        client.join(room).await?;
    }
    Ok(Member {
        name,
        client,
        rooms,
    })
}

/// What a [`Load`] did.
#[derive(Debug, Clone, Default)]
pub struct LoadTotals {
    /// Sends started.
    pub offered: u64,
    /// For how long sends were started.
    pub offered_for: Duration,
    pub acked: u64,
    /// Sends that failed (a final refusal) or were still pending at the end.
    pub failed: u64,
    pub failures: Vec<String>,
    pub max_ack_latency: Duration,
    pub mean_ack_latency: Duration,
}

impl LoadTotals {
    pub fn rate(&self) -> f64 {
        self.offered as f64 / self.offered_for.as_secs_f64().max(0.001)
    }
}

/// Sends at a steady rate, round robin over a crowd's members and their rooms. Each
/// send runs on its own task, so a send held up by an outage does not slow the rate.
pub struct Load {
    stop: watch::Sender<Option<Duration>>,
    offered: Arc<AtomicU64>,
    task: JoinHandle<LoadTotals>,
}

impl Load {
    pub fn start(crowd: &Crowd, per_second: f64, body_bytes: usize) -> Load {
        let targets: Vec<(String, Client, Vec<String>)> = crowd
            .members
            .iter()
            .filter(|m| !m.rooms.is_empty())
            .map(|m| (m.name.clone(), m.client.clone(), m.rooms.clone()))
            .collect();
        let (stop, mut stopped) = watch::channel(None);
        let offered = Arc::new(AtomicU64::new(0));
        let counter = offered.clone();
        let task = tokio::spawn(async move {
            let mut totals = LoadTotals::default();
            let mut sends = JoinSet::new();
            let mut latency_sum = Duration::ZERO;
            let mut record = |result: Result<
                (
                    Result<chatx_client::Ack, chatx_client::ClientError>,
                    Duration,
                ),
                tokio::task::JoinError,
            >,
                              totals: &mut LoadTotals| {
                match result {
                    Ok((Ok(_), latency)) => {
                        totals.acked += 1;
                        latency_sum += latency;
                        totals.max_ack_latency = totals.max_ack_latency.max(latency);
                    }
                    Ok((Err(e), _)) => {
                        totals.failed += 1;
                        if totals.failures.len() < 10 {
                            totals.failures.push(e.to_string());
                        }
                    }
                    Err(e) => {
                        totals.failed += 1;
                        totals.failures.push(e.to_string());
                    }
                }
            };
            if targets.is_empty() {
                return totals;
            }
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
            let padding = "x".repeat(body_bytes.saturating_sub(24));
            let mut n: usize = 0;
            let grace = loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let (name, client, rooms) = &targets[n % targets.len()];
                        let room = rooms[(n / targets.len()) % rooms.len()].clone();
                        let body = format!("{name} #{n} {padding}");
                        let client = client.clone();
                        sends.spawn(async move {
                            let at = Instant::now();
                            let result = client.send(&room, &body).await;
                            (result, at.elapsed())
                        });
                        n += 1;
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(result) = sends.join_next() => record(result, &mut totals),
                    changed = stopped.changed() => {
                        let grace = *stopped.borrow();
                        if changed.is_err() || grace.is_some() {
                            break grace.unwrap_or_default();
                        }
                    }
                }
            };
            totals.offered = n as u64;
            totals.offered_for = started.elapsed();
            let deadline = Instant::now() + grace;
            while !sends.is_empty() {
                match tokio::time::timeout_at(deadline, sends.join_next()).await {
                    Ok(Some(result)) => record(result, &mut totals),
                    Ok(None) => break,
                    Err(_) => {
                        let pending = sends.len() as u64;
                        totals.failed += pending;
                        totals
                            .failures
                            .push(format!("{pending} sends still unacked after {grace:?}"));
                        sends.abort_all();
                        break;
                    }
                }
            }
            if totals.acked > 0 {
                totals.mean_ack_latency =
                    latency_sum / u32::try_from(totals.acked).unwrap_or(u32::MAX);
            }
            totals
        });
        Load {
            stop,
            offered,
            task,
        }
    }

    /// Sends started so far.
    pub fn offered(&self) -> u64 {
        self.offered.load(Ordering::Relaxed)
    }

    /// Stops starting sends and waits up to `grace` for the pending ones.
    pub async fn finish(self, grace: Duration) -> LoadTotals {
        let _ = self.stop.send(Some(grace));
        self.task.await.unwrap_or_else(|e| LoadTotals {
            failures: vec![format!("load task: {e}")],
            ..LoadTotals::default()
        })
    }
}
