//! The delivery contract: acked means durable, exactly once per socket, in order,
//! idempotent sends, gapless `since` replay.

use std::time::Duration;

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::helpers::*;

fn seqs(messages: &Value) -> Vec<u64> {
    messages
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect()
}

#[tokio::test]
async fn a_retried_send_is_acked_with_the_same_message_and_stored_once() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut alice_ws = app.ws_in(&alice, "lobby").await;
    let mut bob_ws = app.ws_in(&bob, "lobby").await;
    let first = alice_ws.send_message("lobby", "only once", "same-id").await;
    let retry = alice_ws.send_message("lobby", "only once", "same-id").await;
    assert_eq!(retry["type"], "ack");
    assert_eq!(retry["id"], first["id"]);
    assert_eq!(retry["seq"], first["seq"]);
    // A reconnecting client retrying on a new socket is deduplicated too.
    let mut fresh = app.ws_in(&alice, "lobby").await;
    let third = fresh.send_message("lobby", "only once", "same-id").await;
    assert_eq!(third["seq"], first["seq"]);
    bob_ws.recv_type("message").await;
    bob_ws.no_frame_of_type("message", 400).await;
    let history: Value = app
        .get("/api/rooms/lobby/messages", Some(&bob.token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(history["messages"].as_array().expect("messages").len(), 1);
}

#[tokio::test]
async fn a_retry_after_the_dedup_window_is_still_one_message() {
    let app = spawn_app_with(|s| s.dedup_window_secs = 1).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut alice_ws = app.ws_in(&alice, "lobby").await;
    let mut bob_ws = app.ws_in(&bob, "lobby").await;
    let first = alice_ws
        .send_message("lobby", "late retry", "slow-id")
        .await;
    bob_ws.recv_type("message").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let retry = alice_ws
        .send_message("lobby", "late retry", "slow-id")
        .await;
    assert_eq!(retry["type"], "ack", "{retry}");
    assert_eq!(
        retry["seq"], first["seq"],
        "the original seq, not a new one"
    );
    assert_eq!(retry["id"], first["id"]);
    bob_ws.no_frame_of_type("message", 400).await;
    let history: Value = app
        .get("/api/rooms/lobby/messages", Some(&bob.token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        seqs(&history["messages"]),
        [first["seq"].as_u64().expect("seq")]
    );
}

#[tokio::test]
async fn a_client_that_reconnects_with_since_gets_exactly_what_it_missed() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut alice_ws = app.ws_in(&alice, "lobby").await;
    let mut bob_ws = app.ws_in(&bob, "lobby").await;
    alice_ws.send_message("lobby", "seen", "c0").await;
    let last_seen = bob_ws.recv_type("message").await["seq"]
        .as_u64()
        .expect("seq");
    drop(bob_ws);
    let mut missed = Vec::new();
    for i in 1..=3 {
        missed.push(
            alice_ws
                .send_message("lobby", &format!("missed {i}"), &format!("c{i}"))
                .await["seq"]
                .as_u64()
                .expect("seq"),
        );
    }
    let mut bob_ws = app.ws(&bob).await;
    let joined = bob_ws
        .request(json!({"type": "join", "room": "lobby", "since": last_seen}))
        .await;
    assert_eq!(joined["type"], "joined", "{joined}");
    assert_eq!(seqs(&joined["recovered"]), missed);
    assert_eq!(joined["recovered"][0]["body"], "missed 1");
    assert_eq!(joined["last_seq"], missed[2]);
    let live = alice_ws.send_message("lobby", "live", "c9").await["seq"]
        .as_u64()
        .expect("seq");
    let next = bob_ws.recv_type("message").await;
    assert_eq!(
        next["seq"], live,
        "live delivery continues right after the replay"
    );
    bob_ws.no_frame_of_type("message", 300).await;
}

#[tokio::test]
async fn replay_spans_the_database_and_the_bus_without_gap_or_duplicate() {
    // Retention 2: older messages of the room are only in the database.
    let app = spawn_app_with(|s| s.bus_retention_per_room = 2).await;
    let alice = app.user("alice").await;
    let mut ws = app.ws_in(&alice, "lobby").await;
    let mut acked = Vec::new();
    for i in 0..7 {
        acked.push(
            ws.send_message("lobby", &format!("m{i}"), &format!("c{i}"))
                .await["seq"]
                .as_u64()
                .expect("seq"),
        );
    }
    let mut other = app.ws(&alice).await;
    for since in [0, acked[1], acked[4]] {
        let joined = other
            .request(json!({"type": "join", "room": "lobby", "since": since}))
            .await;
        let expected: Vec<u64> = acked.iter().copied().filter(|s| *s > since).collect();
        assert_eq!(seqs(&joined["recovered"]), expected, "since {since}");
    }
}

#[tokio::test]
async fn messages_and_sessions_survive_a_restart_and_seqs_continue_upward() {
    let mut app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut ws = app.ws_in(&alice, "lobby").await;
    let before = ws.send_message("lobby", "before restart", "c1").await["seq"]
        .as_u64()
        .expect("seq");
    drop(ws);
    app.stop().await;
    let dir = std::mem::replace(&mut app.dir, tempfile::tempdir().expect("dir"));
    let settings = test_settings(&dir);
    let app = start_in(dir, settings).await;
    // The session outlived the process: the old tokens still work.
    let mut ws = app.ws(&alice).await;
    let r = app
        .post(
            "/api/auth/refresh",
            json!({"refresh_token": alice.refresh}),
            None,
        )
        .await;
    assert_eq!(r.status(), 200, "refresh after a restart");
    let joined = ws
        .request(json!({"type": "join", "room": "lobby", "since": 0}))
        .await;
    assert_eq!(seqs(&joined["recovered"]), [before]);
    assert_eq!(joined["last_seq"], before);
    let after = ws.send_message("lobby", "after restart", "c2").await["seq"]
        .as_u64()
        .expect("seq");
    assert!(after > before, "{after} > {before}");
}

#[tokio::test]
async fn a_send_that_cannot_be_stored_is_never_acked_and_its_retry_is() {
    let app = spawn_app_with(|s| s.publish_timeout_ms = 400).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut alice_ws = app.ws_in(&alice, "lobby").await;
    let mut bob_ws = app.ws_in(&bob, "lobby").await;
    // Break the database under the worker: the message cannot be persisted.
    let db = infra::db::connect(&app.db_url).await.expect("db");
    db.execute_unprepared("ALTER TABLE messages RENAME TO messages_away")
        .await
        .expect("rename");
    let refused = alice_ws.send_message("lobby", "important", "c-1").await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "unavailable");
    bob_ws.no_frame_of_type("message", 300).await;
    db.execute_unprepared("ALTER TABLE messages_away RENAME TO messages")
        .await
        .expect("rename back");
    let mut retry = None;
    for _ in 0..20 {
        let reply = alice_ws.send_message("lobby", "important", "c-1").await;
        if reply["type"] == "ack" {
            retry = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let retry = retry.expect("acked once the database is back");
    let delivered = bob_ws.recv_type("message").await;
    assert_eq!(delivered["seq"], retry["seq"]);
    bob_ws.no_frame_of_type("message", 300).await;
    let history: Value = app
        .get("/api/rooms/lobby/messages", Some(&bob.token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        seqs(&history["messages"]),
        [retry["seq"].as_u64().expect("seq")]
    );
}

#[tokio::test]
async fn concurrent_senders_are_delivered_to_everyone_in_the_same_order() {
    let app = spawn_app().await;
    let users = [
        app.user("alice").await,
        app.user("bob").await,
        app.user("carol").await,
    ];
    let mut readers = Vec::new();
    for u in &users {
        readers.push(app.ws_in(u, "lobby").await);
    }
    let mut senders = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let mut ws = app.ws_in(u, "lobby").await;
        senders.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for n in 0..20 {
                let ack = ws
                    .send_message("lobby", &format!("{i}-{n}"), &format!("{i}-{n}"))
                    .await;
                acked.push(ack["seq"].as_u64().expect("seq"));
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for s in senders {
        acked.extend(s.await.expect("sender"));
    }
    acked.sort_unstable();
    for reader in &mut readers {
        let mut got = Vec::new();
        while got.len() < acked.len() {
            got.push(
                reader.recv_type("message").await["seq"]
                    .as_u64()
                    .expect("seq"),
            );
        }
        assert_eq!(got, acked, "every acked message once, in seq order");
    }
}
