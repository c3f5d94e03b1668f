//! The fault scenarios of issue 4, each against its own private cluster (3 gateways
//! behind nginx, 1 worker, private NATS/Redis/PostgreSQL) with 300 resilient clients
//! (2 rooms each, 20 rooms of 30 members)
//! and 60 sends/s, every socket watched by the checker.
//!
//! Pass criteria (`chatx_harness::figures`): 0 acked messages lost, 0 duplicates per
//! socket, seq order per room kept, every client resumed within 10 s of the fault's
//! end, database rows == acked messages. Each scenario prints its figures.
//!
//! They take about a minute each, so they are `#[ignore]`d in the plain workspace run
//! and run as their own step of `scripts/test` (see docs/guarantees.md):
//! `cargo test -p chatx-harness --test faults -- --ignored --test-threads=1 --nocapture`.
//! They also serialize themselves (two clusters at once would share 2 cores).

use std::time::Duration;

use chatx_harness::figures::{ClientTotals, Outcome, Reconnects};
use chatx_harness::load::{Crowd, CrowdConfig, Load};
use chatx_harness::process::MachineLock;
use chatx_harness::{Cluster, ClusterConfig};
use tokio::time::Instant;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CLIENTS: usize = 300;
const ROOMS: usize = 20;
const SENDS_PER_SECOND: f64 = 60.0;
const BODY_BYTES: usize = 120;
/// How long sends may stay pending once the load stops.
const ACK_GRACE: Duration = Duration::from_secs(60);
const MIB: u64 = 1024 * 1024;

struct Run {
    name: &'static str,
    cluster: Cluster,
    crowd: Crowd,
    load: Option<Load>,
    notes: Vec<String>,
    fault_start: Instant,
    fault_end: Instant,
    rss_start: Vec<u64>,
    rss_peak: Vec<u64>,
    /// Held for the whole scenario; declared last, so it is released after the
    /// cluster's processes are gone.
    _machine: MachineLock,
}

impl Run {
    async fn start(name: &'static str, env: &[(&str, &str)]) -> Run {
        if std::env::var_os("CHATX_TEST_TRACE").is_some() {
            // RUST_LOG=chatx_client=debug shows every client's reconnect steps.
            infra::telemetry::init("pretty");
        }
        let machine = MachineLock::acquire(name).await.expect("the machine lock");
        let cluster = Cluster::start(ClusterConfig {
            gateways: 3,
            workers: 1,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..ClusterConfig::default()
        })
        .await
        .expect("cluster starts");
        let connecting = Instant::now();
        let crowd = Crowd::connect(
            &cluster.url(),
            &CrowdConfig {
                clients: CLIENTS,
                rooms: ROOMS,
                rooms_per_client: 2,
                prefix: "u".into(),
                concurrency: 16,
            },
            |_| {},
        )
        .await
        .expect("the crowd connects through nginx");
        let mut per_gateway = Vec::new();
        for i in 0..cluster.gateway_count() {
            per_gateway.push(
                cluster
                    .gateway_metric(i, "chatx_ws_connections")
                    .await
                    .unwrap_or(-1.0),
            );
        }
        let rss: Vec<u64> = (0..cluster.gateway_count())
            .map(|i| cluster.gateway_rss(i).unwrap_or(0))
            .collect();
        let notes = vec![format!(
            "setup: {CLIENTS} clients in {ROOMS} rooms (2 each) connected through nginx {} in {:.1} s; sockets per gateway {per_gateway:?}",
            cluster.url(),
            connecting.elapsed().as_secs_f64()
        )];
        let load = Load::start(&crowd, SENDS_PER_SECOND, BODY_BYTES);
        let now = Instant::now();
        Run {
            _machine: machine,
            name,
            cluster,
            crowd,
            load: Some(load),
            notes,
            fault_start: now,
            fault_end: now,
            rss_peak: rss.clone(),
            rss_start: rss,
        }
    }

    fn note(&mut self, line: String) {
        self.notes.push(line);
    }

    fn sample_rss(&mut self) {
        for i in 0..self.cluster.gateway_count() {
            if let Some(rss) = self.cluster.gateway_rss(i) {
                self.rss_peak[i] = self.rss_peak[i].max(rss);
            }
        }
    }

    /// Waits, sampling the gateways' memory.
    async fn idle(&mut self, wait: Duration) {
        let until = Instant::now() + wait;
        while Instant::now() < until {
            self.sample_rss();
            tokio::time::sleep(Duration::from_millis(250).min(until - Instant::now())).await;
        }
    }

    fn fault_starts(&mut self, what: &str) {
        self.fault_start = Instant::now();
        let offered = self.load.as_ref().map_or(0, Load::offered);
        self.note(format!("fault: {what} (after {offered} sends)"));
    }

    fn fault_ends(&mut self, what: &str) {
        self.fault_end = Instant::now();
        self.note(format!(
            "fault over: {what}, {:.1} s after it started",
            (self.fault_end - self.fault_start).as_secs_f64()
        ));
    }

    async fn total_slow_consumers(&self) -> f64 {
        let mut total = 0.0;
        for i in 0..self.cluster.gateway_count() {
            total += self
                .cluster
                .gateway_metric(i, "chatx_slow_consumers_total")
                .await
                .unwrap_or(0.0);
        }
        total
    }

    /// Stops the load, lets everything settle, compares with the database, prints the
    /// figures and returns them.
    async fn finish(&mut self) -> Outcome {
        let load = self.load.take().expect("load running");
        let totals = load.finish(ACK_GRACE).await;
        let settling = Instant::now();
        let settled = self.crowd.settle(Duration::from_secs(45)).await;
        self.note(format!(
            "deliveries settled: {settled} ({:.1} s after the last ack)",
            settling.elapsed().as_secs_f64()
        ));
        let acked = self.crowd.checker.acked_count();
        let waiting = Instant::now();
        let mut rows = Vec::new();
        while waiting.elapsed() < Duration::from_secs(60) {
            match self.cluster.messages().await {
                Ok(found) => {
                    rows = found;
                    if rows.len() >= acked {
                        break;
                    }
                }
                Err(e) => eprintln!("reading the database: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        self.note(format!(
            "database: {} rows {:.1} s after the load ended",
            rows.len(),
            waiting.elapsed().as_secs_f64()
        ));
        self.sample_rss();
        let rss: Vec<String> = self
            .rss_start
            .iter()
            .zip(&self.rss_peak)
            .map(|(start, peak)| format!("{} -> {} MiB", start / MIB, peak / MIB))
            .collect();
        self.note(format!("gateway RSS (start -> peak): {}", rss.join(", ")));
        let report = self.crowd.checker.report(Some(&rows));
        let stats = self.crowd.stats();
        let mut slow: Vec<(Duration, String)> = Vec::new();
        for (member, client) in self.crowd.members.iter().zip(&stats) {
            for outage in &client.outages {
                let took = outage.resumed_at.map_or(Duration::MAX, |r| {
                    r.saturating_duration_since(outage.lost_at)
                });
                if took > Duration::from_secs(5) {
                    let at = outage
                        .lost_at
                        .saturating_duration_since(self.fault_start.into_std());
                    slow.push((
                        took,
                        format!(
                            "{} lost at fault+{:.1} s (close {:?}), {} sockets, back after {:.1} s",
                            member.name,
                            at.as_secs_f64(),
                            outage.close_code,
                            outage.sockets,
                            took.as_secs_f64()
                        ),
                    ));
                }
            }
        }
        slow.sort_by_key(|s| std::cmp::Reverse(s.0));
        if !slow.is_empty() {
            let worst: Vec<String> = slow.into_iter().take(5).map(|(_, s)| s).collect();
            self.note(format!("outages over 5 s: {}", worst.join("; ")));
        }
        let mut connect_errors: std::collections::BTreeMap<String, usize> = Default::default();
        for error in stats.iter().filter_map(|s| s.last_connect_error.clone()) {
            *connect_errors.entry(error).or_default() += 1;
        }
        if !connect_errors.is_empty() {
            self.note(format!(
                "last connect errors of clients: {connect_errors:?}"
            ));
        }
        let outcome = Outcome {
            scenario: self.name.to_string(),
            clients: self.crowd.members.len(),
            load: totals,
            report,
            reconnects: Reconnects::measure(
                &stats,
                self.fault_start.into_std(),
                self.fault_end.into_std(),
            ),
            totals: ClientTotals::sum(&stats),
            notes: std::mem::take(&mut self.notes),
        };
        println!("{}", outcome.render());
        self.crowd.close().await;
        outcome
    }
}

fn assert_passed(outcome: &Outcome) {
    let failures = outcome.failures();
    assert!(
        failures.is_empty(),
        "scenario `{}` failed:\n{}",
        outcome.scenario,
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long fault scenario (~1 min, own servers): a separate step of scripts/test"]
async fn sigkill_one_of_three_gateways_under_load() {
    let _serial = SERIAL.lock().await;
    let mut run = Run::start("SIGKILL one of 3 gateways under load", &[]).await;
    run.idle(Duration::from_secs(5)).await;
    let sockets = run
        .cluster
        .gateway_metric(1, "chatx_ws_connections")
        .await
        .unwrap_or(-1.0);
    run.fault_starts(&format!("SIGKILL gateway-1 holding {sockets} sockets"));
    run.cluster.kill_gateway(1);
    run.fault_ends("gateway-1 killed (it stays down)");
    run.idle(Duration::from_secs(12)).await;
    let outcome = run.finish().await;
    assert!(
        outcome.reconnects.clients as f64 >= sockets * 0.9,
        "the killed gateway's clients reconnected"
    );
    assert_passed(&outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long fault scenario (~1 min, own servers): a separate step of scripts/test"]
async fn rolling_restart_by_sigterm_drains_every_gateway_in_turn() {
    let _serial = SERIAL.lock().await;
    let mut run = Run::start(
        "rolling restart (SIGTERM, 3 s drain) of 3 gateways",
        &[("CHATX_DRAIN_SECS", "3")],
    )
    .await;
    run.idle(Duration::from_secs(5)).await;
    run.fault_starts("rolling restart");
    for i in 0..3 {
        let started = Instant::now();
        run.cluster.stop_gateway(i).await;
        let drained = started.elapsed();
        run.cluster
            .start_gateway(i)
            .await
            .expect("gateway restarts");
        run.note(format!(
            "gateway-{i}: drained and exited in {:.1} s, back and ready after {:.1} s",
            drained.as_secs_f64(),
            started.elapsed().as_secs_f64()
        ));
        run.idle(Duration::from_secs(2)).await;
    }
    run.fault_ends("every gateway restarted");
    run.idle(Duration::from_secs(8)).await;
    let outcome = run.finish().await;
    assert!(
        outcome.totals.reconnect_notices > 0,
        "drained clients got `reconnect` notices"
    );
    assert!(
        outcome.totals.close_codes.contains_key(&1012),
        "drained sockets close with 1012"
    );
    assert_passed(&outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long fault scenario (~1 min, own servers): a separate step of scripts/test"]
async fn sigkill_the_worker_and_restart_it_after_ten_seconds() {
    let _serial = SERIAL.lock().await;
    let mut run = Run::start("SIGKILL the worker, restart after 10 s", &[]).await;
    run.idle(Duration::from_secs(5)).await;
    run.fault_starts("SIGKILL worker-0");
    run.cluster.kill_worker(0);
    let rows_at_kill = run.cluster.messages().await.map(|r| r.len()).unwrap_or(0);
    run.idle(Duration::from_secs(10)).await;
    let rows_before_restart = run.cluster.messages().await.map(|r| r.len()).unwrap_or(0);
    run.cluster.start_worker(0).await.expect("worker restarts");
    run.fault_ends("worker-0 restarted");
    run.note(format!(
        "database rows: {rows_at_kill} at the kill, {rows_before_restart} just before the restart (nothing persisted meanwhile)"
    ));
    run.idle(Duration::from_secs(8)).await;
    let outcome = run.finish().await;
    assert_passed(&outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long fault scenario (~1 min, own servers): a separate step of scripts/test"]
async fn restart_nats_sends_answer_unavailable_and_nothing_acked_is_lost() {
    let _serial = SERIAL.lock().await;
    let mut run = Run::start("restart the harness's NATS (5 s down)", &[]).await;
    run.idle(Duration::from_secs(5)).await;
    run.fault_starts("NATS stopped (SIGTERM)");
    run.cluster.stop_nats().await;
    run.idle(Duration::from_secs(5)).await;
    run.cluster.start_nats().await.expect("NATS restarts");
    run.fault_ends("NATS started again on its store");
    run.idle(Duration::from_secs(12)).await;
    let outcome = run.finish().await;
    assert!(
        outcome.totals.unavailable > 0,
        "sends during the outage were answered `unavailable`"
    );
    assert_passed(&outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long fault scenario (~1 min, own servers): a separate step of scripts/test"]
async fn restart_redis_loses_its_data_and_nothing_acked_is_lost() {
    let _serial = SERIAL.lock().await;
    let mut run = Run::start(
        "restart the harness's Redis (5 s down, no persistence)",
        &[],
    )
    .await;
    run.idle(Duration::from_secs(5)).await;
    run.fault_starts("Redis stopped (SIGTERM)");
    run.cluster.stop_redis().await;
    run.idle(Duration::from_secs(5)).await;
    run.cluster.start_redis().await.expect("Redis restarts");
    run.fault_ends("Redis started again, empty");
    // Every session died with Redis: sockets that reconnect now must sign in again.
    for member in run.crowd.members.iter().take(30) {
        member.client.drop_connection();
    }
    run.note("30 clients dropped their socket after the restart (their sessions are gone)".into());
    run.idle(Duration::from_secs(10)).await;
    let outcome = run.finish().await;
    assert!(
        outcome.totals.relogins >= 30,
        "reconnecting clients signed in again: {}",
        outcome.totals.relogins
    );
    assert_passed(&outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long fault scenario (~1 min, own servers): a separate step of scripts/test"]
async fn stop_postgres_for_twenty_seconds() {
    let _serial = SERIAL.lock().await;
    let mut run = Run::start("stop the harness's PostgreSQL for 20 s", &[]).await;
    run.idle(Duration::from_secs(5)).await;
    run.fault_starts("PostgreSQL stopped (pg_ctl stop -m fast)");
    run.cluster.stop_postgres().await.expect("PostgreSQL stops");
    run.idle(Duration::from_secs(20)).await;
    run.cluster
        .start_postgres()
        .await
        .expect("PostgreSQL starts");
    run.fault_ends("PostgreSQL started again");
    run.idle(Duration::from_secs(10)).await;
    let outcome = run.finish().await;
    assert_passed(&outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long fault scenario (~1 min, own servers): a separate step of scripts/test"]
async fn a_slow_consumer_is_closed_with_4008_memory_stays_bounded_and_it_misses_nothing() {
    let _serial = SERIAL.lock().await;
    let mut run = Run::start("slow consumer (stops reading) in a flooded room", &[]).await;
    let flood_room = "u-flood";
    let owner = &run.crowd.members[0].client;
    // Any member may create the extra room; the crowd's owner account is not a client.
    create_room(&run.cluster.url(), owner, flood_room).await;
    let slow = run
        .crowd
        .add("slowpoke", &[flood_room], |c| {
            c.recv_buffer_bytes = Some(4096)
        })
        .await
        .expect("slow consumer joins");
    let mut flooders = Vec::new();
    for n in 0..4 {
        flooders.push(
            run.crowd
                .add(&format!("flooder{n}"), &[flood_room], |_| {})
                .await
                .expect("flooder joins"),
        );
    }
    run.idle(Duration::from_secs(3)).await;
    let slow_before = run.total_slow_consumers().await;
    slow.pause_reading(true);
    run.fault_starts("slowpoke stops reading; 4 flooders send 4000-byte messages to its room");
    let (stop_flood, flood_stopped) = tokio::sync::watch::channel(false);
    let mut flood_tasks = Vec::new();
    for flooder in flooders {
        let mut stopped = flood_stopped.clone();
        flood_tasks.push(tokio::spawn(async move {
            let body = "f".repeat(4000);
            let mut sent = 0u64;
            while !*stopped.borrow_and_update() {
                if flooder.send(flood_room, &body).await.is_ok() {
                    sent += 1;
                }
            }
            sent
        }));
    }
    let flooding = Instant::now();
    let mut cut_after = None;
    while flooding.elapsed() < Duration::from_secs(90) {
        run.idle(Duration::from_millis(500)).await;
        if run.total_slow_consumers().await > slow_before {
            cut_after = Some(flooding.elapsed());
            break;
        }
    }
    // A little more after the cut: the slow consumer must also catch up on what was
    // published after its socket was gone.
    run.idle(Duration::from_millis(500)).await;
    let _ = stop_flood.send(true);
    let mut flood_sent = 0;
    for task in flood_tasks {
        flood_sent += task.await.unwrap_or(0);
    }
    run.note(format!(
        "flood: {flood_sent} messages of 4000 bytes; gateway closed the slow consumer {:?} after the flood began (chatx_slow_consumers_total {} -> {})",
        cut_after,
        slow_before,
        run.total_slow_consumers().await
    ));
    slow.pause_reading(false);
    run.fault_ends("slowpoke reads again");
    run.idle(Duration::from_secs(10)).await;
    // The backlog (megabytes) arrives in several cut replays after the reconnect.
    let catching_up = Instant::now();
    while catching_up.elapsed() < Duration::from_secs(60)
        && slow
            .stats()
            .outages
            .last()
            .is_none_or(|o| o.caught_up_at.is_none())
    {
        run.idle(Duration::from_millis(250)).await;
    }
    let stats = slow.stats();
    run.note(format!(
        "slowpoke: close codes {:?}, reconnects {}, catch-up joins {}, delivered {}, outages (resumed, caught up; after the loss) {:?}",
        stats.close_codes,
        stats.reconnects,
        stats.catch_up_joins,
        stats.delivered,
        stats
            .outages
            .iter()
            .map(|o| {
                (
                    o.resumed_at.map(|r| r.saturating_duration_since(o.lost_at)),
                    o.caught_up_at.map(|r| r.saturating_duration_since(o.lost_at)),
                )
            })
            .collect::<Vec<_>>()
    ));
    let growth: Vec<u64> = run
        .rss_peak
        .iter()
        .zip(&run.rss_start)
        .map(|(peak, start)| peak.saturating_sub(*start))
        .collect();
    let outcome = run.finish().await;
    assert!(
        cut_after.is_some(),
        "the gateway never closed the slow consumer"
    );
    assert!(
        stats.reconnects >= 1,
        "the slow consumer came back: {stats:?}"
    );
    assert!(
        growth.iter().all(|g| *g < 128 * MIB),
        "gateway memory grew by {:?} MiB",
        growth.iter().map(|g| g / MIB).collect::<Vec<_>>()
    );
    assert_passed(&outcome);
}

/// Creates a public room with the credentials of a crowd client.
async fn create_room(base_url: &str, client: &chatx_client::Client, room: &str) {
    let http = reqwest::Client::new();
    let login: serde_json::Value = http
        .post(format!("{base_url}/api/auth/login"))
        .json(&serde_json::json!({
            "username": client.user().username,
            "password": chatx_harness::load::PASSWORD,
        }))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = login["access_token"].as_str().expect("token");
    let response = http
        .post(format!("{base_url}/api/rooms"))
        .bearer_auth(token)
        .json(&serde_json::json!({"name": room, "kind": "public"}))
        .send()
        .await
        .expect("create room");
    assert!(response.status().is_success(), "{}", response.status());
}
