use serde_json::{Value, json};

use crate::helpers::*;

async fn online(app: &TestApp, user: &TestUser, room: &str) -> Vec<String> {
    let v: Value = app
        .get(&format!("/api/rooms/{room}/presence"), Some(&user.token))
        .await
        .json()
        .await
        .expect("json");
    let mut names: Vec<String> = v["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["username"].as_str().expect("name").to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn joining_and_leaving_are_announced_to_the_others() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut alice_ws = app.ws_in(&alice, "lobby").await;
    let mut bob_ws = app.ws_in(&bob, "lobby").await;
    let join = alice_ws.recv_type("presence").await;
    assert_eq!(join["event"], "join");
    assert_eq!(join["user"]["username"], "bob");
    assert_eq!(join["room"], "lobby");
    assert_eq!(online(&app, &alice, "lobby").await, ["alice", "bob"]);
    bob_ws
        .request(json!({"type": "leave", "room": "lobby"}))
        .await;
    let leave = alice_ws.recv_type("presence").await;
    assert_eq!(leave["event"], "leave");
    assert_eq!(leave["user"]["username"], "bob");
    assert_eq!(online(&app, &alice, "lobby").await, ["alice"]);
}

#[tokio::test]
async fn a_dropped_socket_is_announced_after_the_grace_window() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut alice_ws = app.ws_in(&alice, "lobby").await;
    let bob_ws = app.ws_in(&bob, "lobby").await;
    alice_ws.recv_type("presence").await;
    drop(bob_ws);
    let leave = alice_ws.recv_type("presence").await;
    assert_eq!(leave["event"], "leave");
    assert_eq!(leave["user"]["username"], "bob");
}

#[tokio::test]
async fn a_user_with_two_sockets_leaving_one_stays_present() {
    let app = spawn_app_with(|s| s.presence_grace_ms = 100).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut alice_ws = app.ws_in(&alice, "lobby").await;
    let bob_phone = app.ws_in(&bob, "lobby").await;
    let _bob_laptop = app.ws_in(&bob, "lobby").await;
    assert_eq!(alice_ws.recv_type("presence").await["event"], "join");
    alice_ws.no_frame_of_type("presence", 300).await;
    drop(bob_phone);
    alice_ws.no_frame_of_type("presence", 600).await;
    assert_eq!(online(&app, &alice, "lobby").await, ["alice", "bob"]);
}

#[tokio::test]
async fn a_quick_reconnect_within_the_grace_window_produces_no_flap() {
    let app = spawn_app_with(|s| s.presence_grace_ms = 1500).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut alice_ws = app.ws_in(&alice, "lobby").await;
    let bob_ws = app.ws_in(&bob, "lobby").await;
    assert_eq!(alice_ws.recv_type("presence").await["event"], "join");
    drop(bob_ws);
    let _back = app.ws_in(&bob, "lobby").await;
    alice_ws.no_frame_of_type("presence", 2000).await;
}
