//! Distributed mode: 3 gateway and 2 worker processes sharing one Redis, one NATS
//! (JetStream) and one PostgreSQL database created for the test.

#[path = "../support/client.rs"]
mod client;
mod cluster;

use std::time::Duration;

use cluster::{Cluster, eventually};
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Value, json};

fn seq(v: &Value) -> u64 {
    v["seq"].as_u64().unwrap_or_else(|| panic!("no seq in {v}"))
}

async fn db_seqs(cluster: &Cluster) -> Vec<u64> {
    let db = Database::connect(cluster.database_url.clone())
        .await
        .expect("db");
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT seq FROM messages ORDER BY seq",
        ))
        .await
        .expect("query");
    let seqs = rows
        .iter()
        .map(|r| r.try_get::<i64>("", "seq").expect("seq") as u64)
        .collect();
    db.close().await.expect("close");
    seqs
}

#[tokio::test]
async fn a_message_through_one_gateway_reaches_members_on_the_others_once_and_in_order() {
    let cluster = Cluster::start(3, 2, &[]).await;
    let alice = cluster.api(0).user("alice").await;
    let bob = cluster.api(0).user("bob").await;
    let carol = cluster.api(0).user("carol").await;
    let mut alice_ws = cluster.api(0).ws_in(&alice, "lobby").await;
    let mut alice_other = cluster.api(2).ws_in(&alice, "lobby").await;
    let mut bob_ws = cluster.api(1).ws_in(&bob, "lobby").await;
    let mut carol_ws = cluster.api(2).ws_in(&carol, "lobby").await;
    let mut acked = Vec::new();
    for i in 0..30 {
        let ack = alice_ws
            .send_message("lobby", &format!("m{i}"), &format!("c{i}"))
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
        acked.push(seq(&ack));
    }
    for ws in [&mut bob_ws, &mut carol_ws, &mut alice_other] {
        let mut got = Vec::new();
        while got.len() < acked.len() {
            got.push(seq(&ws.recv_type("message").await));
        }
        assert_eq!(got, acked, "each message once, in seq order");
        ws.no_frame_of_type("message", 300).await;
    }
    cluster.stop().await;
}

#[tokio::test]
async fn presence_is_shared_and_a_killed_gateways_users_expire() {
    let mut cluster = Cluster::start(3, 1, &[]).await;
    let alice = cluster.api(0).user("alice").await;
    let bob = cluster.api(0).user("bob").await;
    let mut alice_ws = cluster.api(0).ws_in(&alice, "lobby").await;
    let bob_on_1 = cluster.api(1).ws_in(&bob, "lobby").await;
    let _bob_on_2 = cluster.api(2).ws_in(&bob, "lobby").await;
    assert_eq!(alice_ws.recv_type("presence").await["event"], "join");
    for i in 0..3 {
        let v: Value = cluster
            .api(i)
            .get("/api/rooms/lobby/presence", Some(&alice.token))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(
            v["users"].as_array().expect("users").len(),
            2,
            "gateway {i}: {v}"
        );
    }
    // Pages of one, the second asked of another gateway: each user once.
    let first: Value = cluster
        .api(0)
        .get("/api/rooms/lobby/presence?limit=1", Some(&alice.token))
        .await
        .json()
        .await
        .expect("json");
    let next = first["next"].as_str().expect("a second page");
    let second: Value = cluster
        .api(1)
        .get(
            &format!("/api/rooms/lobby/presence?limit=1&after={next}"),
            Some(&alice.token),
        )
        .await
        .json()
        .await
        .expect("json");
    assert!(second.get("next").is_none(), "{second}");
    let mut names: Vec<&str> = [&first, &second]
        .iter()
        .flat_map(|page| page["users"].as_array().expect("users"))
        .map(|u| u["username"].as_str().expect("name"))
        .collect();
    names.sort();
    assert_eq!(names, ["alice", "bob"]);
    // Bob leaves one of his two gateways: still present, no leave.
    drop(bob_on_1);
    alice_ws.no_frame_of_type("presence", 1500).await;
    // SIGKILL the gateway holding Bob's other socket: no goodbye is said, his lease
    // expires (TTL 3 s) and the sweeping worker announces the departure.
    cluster.kill_gateway(2);
    let started = tokio::time::Instant::now();
    let leave = alice_ws.recv_type("presence").await;
    assert_eq!(leave["event"], "leave");
    assert_eq!(leave["user"]["username"], "bob");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "leave took {:?}",
        started.elapsed()
    );
    cluster.stop().await;
}

#[tokio::test]
async fn revoking_a_session_on_one_gateway_closes_its_socket_on_another_within_a_second() {
    let cluster = Cluster::start(2, 1, &[]).await;
    let alice = cluster.api(0).user("alice").await;
    let other = cluster.api(0).sign_in("alice").await;
    let mut ws = cluster.api(1).ws(&alice).await;
    let started = tokio::time::Instant::now();
    let r = cluster
        .api(0)
        .delete(&format!("/api/sessions/{}", alice.session_id), &other.token)
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(ws.closed().await, 4001);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    cluster.stop().await;
}

#[tokio::test]
async fn deleting_a_room_notifies_members_on_every_gateway() {
    let cluster = Cluster::start(3, 1, &[]).await;
    let alice = cluster.api(0).user("alice").await;
    let bob = cluster.api(0).user("bob").await;
    cluster.api(0).create_room(&alice, "doomed", None).await;
    let mut sockets = Vec::new();
    for i in 0..3 {
        sockets.push(cluster.api(i).ws_in(&bob, "doomed").await);
    }
    assert_eq!(
        cluster
            .api(1)
            .delete("/api/rooms/doomed", &alice.token)
            .await
            .status(),
        204
    );
    for ws in &mut sockets {
        assert_eq!(ws.recv_type("room_deleted").await["room"], "doomed");
    }
    cluster.stop().await;
}

#[tokio::test]
async fn the_message_rate_limit_is_shared_by_all_gateways() {
    let cluster = Cluster::start(
        3,
        1,
        &[
            ("CHATX_RATE_MSG_PER_SEC", "0.1"),
            ("CHATX_RATE_MSG_BURST", "5"),
        ],
    )
    .await;
    let alice = cluster.api(0).user("alice").await;
    let mut sockets = Vec::new();
    for i in 0..3 {
        sockets.push(cluster.api(i).ws_in(&alice, "lobby").await);
    }
    let mut acked = 0;
    for n in 0..15 {
        let reply = sockets[n % 3]
            .send_message("lobby", "spread", &format!("c{n}"))
            .await;
        if reply["type"] == "ack" {
            acked += 1;
        } else {
            assert_eq!(reply["code"], "rate_limited", "{reply}");
        }
    }
    assert_eq!(acked, 5, "three gateways must not triple the allowance");
    cluster.stop().await;
}

#[tokio::test]
async fn history_from_any_gateway_equals_the_acked_messages() {
    let cluster = Cluster::start(3, 2, &[]).await;
    let alice = cluster.api(0).user("alice").await;
    let mut acked = Vec::new();
    for i in 0..3 {
        let mut ws = cluster.api(i).ws_in(&alice, "lobby").await;
        for n in 0..10 {
            let ack = ws
                .send_message("lobby", &format!("g{i} m{n}"), &format!("g{i}-{n}"))
                .await;
            acked.push(seq(&ack));
        }
    }
    acked.sort_unstable();
    for i in 0..3 {
        let api = cluster.api(i).clone();
        let token = alice.token.clone();
        let expected = acked.clone();
        eventually(
            Duration::from_secs(10),
            "history equals the acks",
            move || {
                let (api, token, expected) = (api.clone(), token.clone(), expected.clone());
                async move {
                    let page: Value = api
                        .get("/api/rooms/lobby/messages?limit=100", Some(&token))
                        .await
                        .json()
                        .await
                        .expect("json");
                    let got: Vec<u64> = page["messages"]
                        .as_array()
                        .expect("messages")
                        .iter()
                        .map(seq)
                        .collect();
                    got == expected
                }
            },
        )
        .await;
    }
    cluster.stop().await;
}

#[tokio::test]
async fn a_worker_killed_mid_stream_loses_and_duplicates_nothing() {
    let mut cluster = Cluster::start(1, 2, &[]).await;
    let alice = cluster.api(0).user("alice").await;
    let mut ws = cluster.api(0).ws_in(&alice, "lobby").await;
    let mut acked = Vec::new();
    for n in 0..200 {
        if n == 60 {
            cluster.kill_worker(0);
        }
        if n == 140 {
            cluster.restart_worker(0);
        }
        let ack = ws
            .send_message("lobby", &format!("m{n}"), &format!("c{n}"))
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
        acked.push(seq(&ack));
    }
    let expected = acked.clone();
    let c = &cluster;
    eventually(
        Duration::from_secs(15),
        "every acked message in PostgreSQL exactly once",
        || {
            let expected = expected.clone();
            async move { db_seqs(c).await == expected }
        },
    )
    .await;
    cluster.stop().await;
}

#[tokio::test]
async fn a_client_resumes_on_another_gateway_with_since() {
    let mut cluster = Cluster::start(2, 1, &[]).await;
    let alice = cluster.api(0).user("alice").await;
    let bob = cluster.api(0).user("bob").await;
    let mut alice_ws = cluster.api(0).ws_in(&alice, "lobby").await;
    let mut bob_ws = cluster.api(1).ws_in(&bob, "lobby").await;
    alice_ws.send_message("lobby", "seen", "c0").await;
    let last = seq(&bob_ws.recv_type("message").await);
    cluster.kill_gateway(1);
    let mut missed = Vec::new();
    for n in 1..=5 {
        missed.push(seq(&alice_ws
            .send_message("lobby", &format!("missed {n}"), &format!("c{n}"))
            .await));
    }
    // No sticky sessions: Bob resumes on gateway 0.
    let mut bob_ws = cluster.api(0).ws(&bob).await;
    let joined = bob_ws
        .request(json!({"type": "join", "room": "lobby", "since": last}))
        .await;
    let recovered: Vec<u64> = joined["recovered"]
        .as_array()
        .expect("recovered")
        .iter()
        .map(seq)
        .collect();
    assert_eq!(recovered, missed);
    cluster.stop().await;
}
