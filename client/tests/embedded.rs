//! The client against a real gateway in embedded mode, in-process: restarts, revoked
//! sessions, slow-consumer closes and refused sends, each checked by the checker.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chatx_client::checker::Checker;
use chatx_client::{Client, ClientConfig, ClientError, Event};
use infra::config::{Secret, Settings};
use serde_json::Value;
use tempfile::TempDir;

const PASSWORD: &str = "correct horse battery";

fn settings(dir: &TempDir) -> Settings {
    Settings {
        bind_addr: "127.0.0.1:0".into(),
        database_url: format!("sqlite://{}/chatx.db?mode=rwc", dir.path().display()),
        jwt_secret: Some(Secret::new("client-test-secret-client-test-secret")),
        bcrypt_cost: 4,
        rate_msg_per_sec: 10_000.0,
        rate_msg_burst: 10_000,
        rate_join_per_sec: 1000.0,
        rate_join_burst: 1000,
        rate_login_ip_per_min: 10_000.0,
        rate_login_ip_burst: 1000,
        rate_login_user_per_min: 10_000.0,
        rate_login_user_burst: 1000,
        http_per_ip_per_sec: 10_000,
        http_per_ip_burst: 10_000,
        presence_grace_ms: 200,
        drain_secs: 1,
        ..Settings::default()
    }
}

/// An embedded gateway that can be stopped and started again on the same address
/// and database.
struct Server {
    dir: TempDir,
    settings: Settings,
    gateway: Option<gateway::Gateway>,
    base: String,
}

impl Server {
    async fn start(tweak: impl FnOnce(&mut Settings)) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = settings(&dir);
        tweak(&mut settings);
        let gateway = gateway::start(settings.clone())
            .await
            .expect("gateway starts");
        // Restarts bind the same port, so clients find the new process where the old was.
        settings.bind_addr = gateway.addr.to_string();
        Server {
            base: format!("http://{}", gateway.addr),
            dir,
            settings,
            gateway: Some(gateway),
        }
    }

    async fn stop(&mut self) {
        if let Some(gateway) = self.gateway.take() {
            gateway.shutdown().await;
        }
    }

    async fn restart(&mut self) {
        self.stop().await;
        let _ = &self.dir;
        self.gateway = Some(
            gateway::start(self.settings.clone())
                .await
                .expect("gateway restarts"),
        );
    }

    fn slow_consumers(&self) -> u64 {
        self.gateway.as_ref().map_or(0, |g| {
            g.state.metrics.slow_consumers.load(Ordering::Relaxed)
        })
    }

    fn config(&self, user: &str, checker: &Arc<Checker>) -> ClientConfig {
        let mut config = ClientConfig::new(self.base.clone(), user, PASSWORD);
        config.register = true;
        config.observer = Some(checker.clone());
        config
    }
}

/// Every message event of `client` until `count` arrived (or 20 s passed).
async fn messages(client: &Client, count: usize) -> Vec<u64> {
    let mut seqs = Vec::new();
    while seqs.len() < count {
        match client.next_event_within(Duration::from_secs(20)).await {
            Some(Event::Message(m)) => seqs.push(m.seq),
            Some(_) => {}
            None => break,
        }
    }
    seqs
}

fn assert_clean(checker: &Checker) {
    let report = checker.report(None);
    println!("{report}");
    assert!(report.passed(), "{:?}", report.failures());
}

#[tokio::test]
async fn messages_reach_another_client_once_and_in_order() {
    let server = Server::start(|_| {}).await;
    let checker = Arc::new(Checker::new());
    let ann = Client::connect(server.config("ann", &checker))
        .await
        .expect("ann");
    let bob = Client::connect(server.config("bob", &checker))
        .await
        .expect("bob");
    ann.join("lobby").await.expect("join");
    bob.join("lobby").await.expect("join");
    let mut acked = Vec::new();
    for n in 0..20 {
        acked.push(
            ann.send("lobby", &format!("m{n}"))
                .await
                .expect("acked")
                .seq,
        );
    }
    assert_eq!(messages(&bob, 20).await, acked);
    assert_eq!(
        messages(&ann, 20).await,
        acked,
        "the sender sees its own messages"
    );
    assert_clean(&checker);
}

#[tokio::test]
async fn a_gateway_restart_under_load_is_invisible_to_the_application() {
    let mut server = Server::start(|_| {}).await;
    let checker = Arc::new(Checker::new());
    let ann = Client::connect(server.config("ann", &checker))
        .await
        .expect("ann");
    let bob = Client::connect(server.config("bob", &checker))
        .await
        .expect("bob");
    ann.join("lobby").await.expect("join");
    bob.join("lobby").await.expect("join");
    let sender = {
        let ann = ann.clone();
        tokio::spawn(async move {
            let mut sends = Vec::new();
            for n in 0..150 {
                let ann = ann.clone();
                sends.push(tokio::spawn(async move {
                    ann.send("lobby", &format!("m{n}")).await
                }));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let mut acked = Vec::new();
            for send in sends {
                acked.push(send.await.expect("task").expect("acked").seq);
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    server.restart().await;
    let mut acked = sender.await.expect("sender");
    acked.sort_unstable();
    assert_eq!(messages(&bob, acked.len()).await, acked);
    let stats = bob.stats();
    assert!(stats.reconnects >= 1, "{stats:?}");
    assert!(ann.stats().reconnects >= 1);
    assert_clean(&checker);
}

#[tokio::test]
async fn a_revoked_session_makes_the_client_sign_in_again() {
    let server = Server::start(|_| {}).await;
    let checker = Arc::new(Checker::new());
    let ann = Client::connect(server.config("ann", &checker))
        .await
        .expect("ann");
    ann.join("lobby").await.expect("join");
    // Revoke every other session of ann from a second sign-in.
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{}/api/auth/login", server.base))
        .json(&serde_json::json!({"username": "ann", "password": PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = login["access_token"].as_str().expect("token");
    let sessions: Value = http
        .get(format!("{}/api/sessions", server.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("sessions")
        .json()
        .await
        .expect("json");
    for session in sessions["sessions"].as_array().expect("list") {
        if session["current"] == false {
            let id = session["id"].as_str().expect("id");
            let r = http
                .delete(format!("{}/api/sessions/{id}", server.base))
                .bearer_auth(token)
                .send()
                .await
                .expect("revoke");
            assert_eq!(r.status(), 204);
        }
    }
    // The socket closes with 4001; the old refresh token is dead too, so the client
    // signs in with the password and carries on.
    let ack = ann.send("lobby", "after revocation").await.expect("acked");
    assert_eq!(messages(&ann, 1).await, vec![ack.seq]);
    let stats = ann.stats();
    assert_eq!(stats.close_codes.get(&4001), Some(&1), "{stats:?}");
    assert_eq!(stats.relogins, 1, "{stats:?}");
    assert_clean(&checker);
}

#[tokio::test]
async fn a_slow_consumer_is_cut_off_and_then_misses_nothing() {
    let server = Server::start(|s| s.outbound_queue_frames = 32).await;
    let checker = Arc::new(Checker::new());
    let mut slow_config = server.config("slow", &checker);
    slow_config.recv_buffer_bytes = Some(4096);
    let slow = Client::connect(slow_config).await.expect("slow");
    let ann = Client::connect(server.config("ann", &checker))
        .await
        .expect("ann");
    slow.join("lobby").await.expect("join");
    ann.join("lobby").await.expect("join");
    slow.pause_reading(true);
    let body = "x".repeat(3000);
    let mut acked = Vec::new();
    let mut after_cut = 0;
    // Until the gateway gives up on the socket, then enough for a replay longer than
    // the server's 1000-message limit.
    while after_cut < 1100 {
        acked.push(ann.send("lobby", &body).await.expect("acked").seq);
        if server.slow_consumers() > 0 {
            after_cut += 1;
        }
        assert!(
            acked.len() < 20_000,
            "the gateway never cut the slow consumer off"
        );
    }
    slow.pause_reading(false);
    let got = messages(&slow, acked.len()).await;
    let stats = slow.stats();
    if got != acked {
        let have: std::collections::HashSet<u64> = got.iter().copied().collect();
        let missing: Vec<u64> = acked
            .iter()
            .copied()
            .filter(|s| !have.contains(s))
            .collect();
        panic!(
            "got {} of {}; missing {} (first {:?}, last {:?}); stats {stats:?}\n{}",
            got.len(),
            acked.len(),
            missing.len(),
            missing.first(),
            missing.last(),
            checker.report(None)
        );
    }

    println!(
        "slow consumer: {} sends before the cut, {stats:?}",
        acked.len() - 1100
    );
    assert!(stats.reconnects >= 1, "{stats:?}");
    assert!(stats.catch_up_joins >= 1, "the replay was cut: {stats:?}");
    assert!(
        stats.outages.iter().all(|o| o.caught_up_at.is_some()),
        "{stats:?}"
    );
    assert_clean(&checker);
}

#[tokio::test]
async fn final_refusals_fail_the_call_and_transient_ones_do_not() {
    let server = Server::start(|s| s.max_message_bytes = 100).await;
    let checker = Arc::new(Checker::new());
    let mut wrong = server.config("ann", &checker);
    Client::connect(wrong.clone()).await.expect("registers ann");
    wrong.password = "not the password".into();
    wrong.register = false;
    assert!(matches!(
        Client::connect(wrong).await,
        Err(ClientError::Credentials(_))
    ));
    let ann = Client::connect(server.config("ann", &checker))
        .await
        .expect("ann");
    assert!(matches!(
        ann.send("lobby", "not joined").await,
        Err(ClientError::NotJoined(_))
    ));
    ann.join("lobby").await.expect("join");
    match ann.send("lobby", &"x".repeat(101)).await {
        Err(ClientError::Refused { code, .. }) => assert_eq!(code, "too_large"),
        other => panic!("expected too_large, got {other:?}"),
    }
    assert!(matches!(
        ann.join("no-such-room").await,
        Err(ClientError::Refused { code, .. }) if code == "not_found"
    ));
    // The same client_msg_id twice is one message with one seq.
    let first = ann
        .send_with_id("lobby", "once", "fixed-id")
        .await
        .expect("acked");
    let again = ann
        .send_with_id("lobby", "once", "fixed-id")
        .await
        .expect("acked");
    assert_eq!(first.seq, again.seq);
    assert_eq!(messages(&ann, 1).await, vec![first.seq]);
    assert!(
        ann.next_event_within(Duration::from_millis(300))
            .await
            .is_none()
    );
    ann.close().await;
    assert!(matches!(
        ann.send("lobby", "closed").await,
        Err(ClientError::Closed)
    ));
}
