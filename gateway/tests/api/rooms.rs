use serde_json::{Value, json};

use crate::helpers::*;

fn names(list: &Value) -> Vec<String> {
    list["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .map(|r| r["name"].as_str().expect("name").to_string())
        .collect()
}

#[tokio::test]
async fn the_lobby_exists_from_the_first_start() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let list: Value = app
        .get("/api/rooms", Some(&alice.token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(names(&list), ["lobby"]);
    assert_eq!(list["rooms"][0]["kind"], "public");
}

#[tokio::test]
async fn rooms_list_public_ones_and_my_private_ones_only() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = app
        .create_room(&alice, "alices-den", Some("den password"))
        .await;
    assert_eq!(room["kind"], "private");
    assert_eq!(room["owner_id"], json!(alice.id));
    assert!(room.get("password_hash").is_none() && room.get("password").is_none());
    app.create_room(&bob, "general", None).await;
    let for_alice: Value = app
        .get("/api/rooms", Some(&alice.token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(names(&for_alice), ["alices-den", "general", "lobby"]);
    let for_bob: Value = app
        .get("/api/rooms", Some(&bob.token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(names(&for_bob), ["general", "lobby"]);
}

#[tokio::test]
async fn room_creation_validates_its_input() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let cases = [
        json!({"name": "Bad Name", "kind": "public"}),
        json!({"name": "x", "kind": "public"}),
        json!({"name": "ok-name", "kind": "private"}),
        json!({"name": "ok-name", "kind": "public", "password": "some password"}),
        json!({"name": "ok-name", "kind": "private", "password": "short"}),
        json!({"name": "ok-name", "kind": "secret"}),
    ];
    for body in cases {
        let r = app
            .post("/api/rooms", body.clone(), Some(&alice.token))
            .await;
        assert_eq!(r.status(), 400, "{body}");
        assert_eq!(
            r.json::<Value>().await.expect("json")["code"],
            "bad_request"
        );
    }
    app.create_room(&alice, "taken", None).await;
    let r = app
        .post(
            "/api/rooms",
            json!({"name": "taken", "kind": "public"}),
            Some(&alice.token),
        )
        .await;
    assert_eq!(r.status(), 409);
    let r = app
        .post(
            "/api/rooms",
            json!({"name": "anon", "kind": "public"}),
            None,
        )
        .await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn private_rooms_hide_history_presence_and_details_from_non_members() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.create_room(&alice, "secret", Some("open sesame")).await;
    for path in [
        "/api/rooms/secret",
        "/api/rooms/secret/messages",
        "/api/rooms/secret/presence",
    ] {
        let r = app.get(path, Some(&bob.token)).await;
        assert_eq!(r.status(), 403, "{path}");
        assert_eq!(r.json::<Value>().await.expect("json")["code"], "forbidden");
        assert_eq!(
            app.get(path, Some(&alice.token)).await.status(),
            200,
            "{path} for the owner"
        );
    }
    // Joining with the password makes bob a member, remembered afterwards.
    let mut ws = app.ws(&bob).await;
    let joined = ws
        .request(json!({"type": "join", "room": "secret", "password": "open sesame"}))
        .await;
    assert_eq!(joined["type"], "joined", "{joined}");
    assert_eq!(
        app.get("/api/rooms/secret/messages", Some(&bob.token))
            .await
            .status(),
        200
    );
    let mut again = app.ws(&bob).await;
    let joined = again
        .request(json!({"type": "join", "room": "secret"}))
        .await;
    assert_eq!(
        joined["type"], "joined",
        "membership is remembered: {joined}"
    );
    assert_eq!(
        app.get("/api/rooms/nope", Some(&bob.token)).await.status(),
        404
    );
}

#[tokio::test]
async fn only_the_owner_deletes_a_room_and_members_are_told() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.create_room(&alice, "doomed", None).await;
    let mut bob_ws = app.ws_in(&bob, "doomed").await;
    let r = app.delete("/api/rooms/doomed", &bob.token).await;
    assert_eq!(r.status(), 403);
    let r = app.delete("/api/rooms/lobby", &alice.token).await;
    assert_eq!(r.status(), 403, "nobody owns the lobby");
    let r = app.delete("/api/rooms/doomed", &alice.token).await;
    assert_eq!(r.status(), 204);
    let notice = bob_ws.recv_type("room_deleted").await;
    assert_eq!(notice["room"], "doomed");
    let sent = bob_ws.send_message("doomed", "anyone?", "c1").await;
    assert_eq!(sent["type"], "error");
    assert_eq!(sent["code"], "not_found");
    assert_eq!(
        app.get("/api/rooms/doomed", Some(&alice.token))
            .await
            .status(),
        404
    );
    assert_eq!(
        app.delete("/api/rooms/doomed", &alice.token).await.status(),
        404
    );
}

#[tokio::test]
async fn rest_history_pages_and_filters() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut a = app.ws_in(&alice, "lobby").await;
    let mut b = app.ws_in(&bob, "lobby").await;
    let mut seqs = Vec::new();
    for i in 0..6 {
        let (ws, body) = if i % 2 == 0 {
            (&mut a, format!("apple {i}"))
        } else {
            (&mut b, format!("Banana {i}"))
        };
        let ack = ws.send_message("lobby", &body, &format!("m{i}")).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        seqs.push(ack["seq"].as_u64().expect("seq"));
    }
    let page = |query: String| {
        let app = &app;
        let token = alice.token.clone();
        async move {
            let r = app
                .get(&format!("/api/rooms/lobby/messages{query}"), Some(&token))
                .await;
            assert_eq!(r.status(), 200, "{query}");
            r.json::<Value>().await.expect("json")
        }
    };
    let bodies = |v: &Value| {
        v["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["body"].as_str().expect("body").to_string())
            .collect::<Vec<_>>()
    };
    let latest = page("?limit=2".into()).await;
    assert_eq!(
        bodies(&latest),
        ["apple 4", "Banana 5"],
        "latest page, oldest first"
    );
    assert_eq!(latest["has_more"], true);
    let older = page(format!("?limit=2&before={}", seqs[4])).await;
    assert_eq!(bodies(&older), ["apple 2", "Banana 3"]);
    let oldest = page(format!("?limit=10&before={}", seqs[2])).await;
    assert_eq!(bodies(&oldest), ["apple 0", "Banana 1"]);
    assert_eq!(oldest["has_more"], false);
    let after = page(format!("?after={}&limit=2", seqs[1])).await;
    assert_eq!(bodies(&after), ["apple 2", "Banana 3"]);
    assert_eq!(after["has_more"], true);
    assert_eq!(
        bodies(&page("?user=bob".into()).await),
        ["Banana 1", "Banana 3", "Banana 5"]
    );
    assert_eq!(
        bodies(&page("?q=banana".into()).await),
        ["Banana 1", "Banana 3", "Banana 5"],
        "case-insensitive"
    );
    assert_eq!(
        bodies(&page("?q=%25".into()).await),
        Vec::<String>::new(),
        "% is literal, not a wildcard"
    );
    assert!(bodies(&page("?user=nobody".into()).await).is_empty());
    let message = &page("?limit=1".into()).await["messages"][0];
    assert_eq!(message["user"]["username"], "bob");
    assert_eq!(message["room"], "lobby");
    assert_eq!(message["client_msg_id"], "m5");
    let r = app
        .get("/api/rooms/lobby/messages?limit=abc", Some(&alice.token))
        .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn history_limits_over_100_are_capped_not_refused() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut ws = app.ws_in(&alice, "lobby").await;
    for i in 0..105 {
        let ack = ws
            .send_message("lobby", &format!("m{i}"), &format!("c{i}"))
            .await;
        assert_eq!(ack["type"], "ack");
    }
    let page: Value = app
        .get("/api/rooms/lobby/messages?limit=500", Some(&alice.token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(page["messages"].as_array().expect("messages").len(), 100);
    assert_eq!(page["has_more"], true);
    assert_eq!(page["messages"][99]["body"], "m104");
}
