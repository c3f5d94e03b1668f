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

#[tokio::test]
async fn the_presence_list_comes_in_pages_that_cover_the_room_once() {
    let app = spawn_app().await;
    let names = ["alice", "bob", "carol", "dave"];
    let mut users = Vec::new();
    let mut sockets = Vec::new();
    for name in names {
        let user = app.user(name).await;
        sockets.push(app.ws_in(&user, "lobby").await);
        users.push(user);
    }
    let alice = &users[0];
    let page = |query: String| {
        let app = &app;
        async move {
            let r = app
                .get(
                    &format!("/api/rooms/lobby/presence{query}"),
                    Some(&alice.token),
                )
                .await;
            assert_eq!(r.status(), 200, "{query}");
            r.json::<Value>().await.expect("json")
        }
    };

    let whole = page(String::new()).await;
    assert_eq!(whole["users"].as_array().map(Vec::len), Some(4));
    assert!(whole.get("next").is_none(), "one page holds them: {whole}");

    // Pages of two: the cursor is the last id of a page, ids only grow, nobody twice.
    let (mut seen, mut after, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let query = match &after {
            Some(a) => format!("?limit=2&after={a}"),
            None => "?limit=2".to_string(),
        };
        let v = page(query).await;
        pages += 1;
        let mut ids: Vec<String> = v["users"]
            .as_array()
            .expect("users")
            .iter()
            .map(|u| u["id"].as_str().expect("id").to_string())
            .collect();
        ids.sort();
        assert!(ids.len() <= 2, "{v}");
        if let Some(a) = &after {
            assert!(ids.iter().all(|id| id > a), "past the cursor: {v}");
        }
        seen.extend(
            v["users"]
                .as_array()
                .expect("users")
                .iter()
                .map(|u| u["username"].as_str().expect("name").to_string()),
        );
        match v["next"].as_str() {
            Some(next) => {
                assert_eq!(Some(next), ids.last().map(String::as_str), "{v}");
                after = Some(next.to_string());
            }
            None => break,
        }
        assert!(pages < 5, "the walk ends");
    }
    seen.sort();
    assert_eq!(seen, names, "every present user once");
    assert_eq!(pages, 2);

    let v = page("?limit=0".to_string()).await;
    assert_eq!(
        v["users"].as_array().map(Vec::len),
        Some(1),
        "a limit below 1 is 1"
    );
    assert!(v["next"].is_string(), "{v}");
}

#[tokio::test]
async fn a_malformed_presence_cursor_or_limit_is_a_bad_request() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let _in_lobby = app.ws_in(&alice, "lobby").await;
    for query in ["after=bob", "after=", "limit=-1", "limit=many"] {
        let r = app
            .get(
                &format!("/api/rooms/lobby/presence?{query}"),
                Some(&alice.token),
            )
            .await;
        assert_eq!(r.status(), 400, "{query}");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["code"], "bad_request", "{query}: {body}");
    }
}
