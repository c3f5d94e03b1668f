use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::*;

#[tokio::test]
async fn a_socket_authenticates_by_query_token_and_is_greeted() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut ws = WsClient::connect(&format!("{}?token={}", app.ws_url(), alice.token)).await;
    let hello = ws.recv().await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["user"]["username"], "alice");
    assert_eq!(hello["user"]["id"], json!(alice.id));
    assert_eq!(hello["session_id"], json!(alice.session_id));
    assert!(hello["conn_id"].is_string() && hello["server_time"].is_string());
}

#[tokio::test]
async fn a_socket_authenticates_by_its_first_frame() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut ws = WsClient::connect(&app.ws_url()).await;
    ws.send_json(json!({"type": "auth", "token": alice.token}))
        .await;
    let hello = ws.recv().await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["user"]["username"], "alice");
}

#[tokio::test]
async fn pings_are_answered_with_the_ref_echoed() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut ws = app.ws(&alice).await;
    ws.send_json(json!({"type": "ping", "ref": "abc"})).await;
    let pong = ws.recv().await;
    assert_eq!(pong, json!({"type": "pong", "ref": "abc"}));
}

#[tokio::test]
async fn a_clients_ping_is_answered_with_its_payload_before_and_after_auth() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut ws = WsClient::connect(&app.ws_url()).await;
    ws.send_raw(Message::Ping(b"before auth".to_vec().into()))
        .await;
    assert_eq!(ws.pong().await, b"before auth");
    ws.send_json(json!({"type": "auth", "token": alice.token}))
        .await;
    assert_eq!(ws.recv().await["type"], "hello");
    ws.send_raw(Message::Ping(b"after auth".to_vec().into()))
        .await;
    assert_eq!(ws.pong().await, b"after auth");
    // The socket still works after the pongs, which the writer sent between frames.
    let pong = ws.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong");
}

#[tokio::test]
async fn a_clients_close_is_answered_with_its_own_code_and_reason() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut ws = app.ws(&alice).await;
    ws.send_raw(Message::Close(Some(CloseFrame {
        code: CloseCode::from(4000),
        reason: "done here".into(),
    })))
    .await;
    assert_eq!(ws.close_frame().await, Some((4000, "done here".into())));

    // A close without a status code is answered by one without a payload.
    let mut ws = app.ws(&alice).await;
    ws.send_raw(Message::Close(None)).await;
    assert_eq!(ws.close_frame().await, None);
}

#[tokio::test]
async fn a_message_reaches_every_member_and_the_senders_other_sockets_once() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut alice_ws = app.ws_in(&alice, "lobby").await;
    let mut alice_other = app.ws_in(&alice, "lobby").await;
    let mut bob_ws = app.ws_in(&bob, "lobby").await;
    let ack = alice_ws.send_message("lobby", "hello bob", "c-1").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["client_msg_id"], "c-1");
    let seq = ack["seq"].as_u64().expect("seq");
    for ws in [&mut bob_ws, &mut alice_other] {
        let m = ws.recv_type("message").await;
        assert_eq!(m["room"], "lobby");
        assert_eq!(m["body"], "hello bob");
        assert_eq!(m["seq"], seq);
        assert_eq!(m["id"], ack["id"]);
        assert_eq!(m["user"]["username"], "alice");
        assert_eq!(m["client_msg_id"], "c-1");
        assert!(m["ts"].is_string());
        ws.no_frame_of_type("message", 300).await;
    }
    // The sending socket itself gets it as well, after its ack.
    let own = alice_ws.recv_type("message").await;
    assert_eq!(own["seq"], seq);
}

#[tokio::test]
async fn leaving_stops_delivery_and_is_acknowledged() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut alice_ws = app.ws_in(&alice, "lobby").await;
    let mut bob_ws = app.ws_in(&bob, "lobby").await;
    let left = bob_ws
        .request(json!({"type": "leave", "room": "lobby"}))
        .await;
    assert_eq!(left["type"], "left");
    assert_eq!(left["room"], "lobby");
    alice_ws.send_message("lobby", "anyone?", "c1").await;
    bob_ws.no_frame_of_type("message", 400).await;
    let again = bob_ws
        .request(json!({"type": "leave", "room": "lobby"}))
        .await;
    assert_eq!(
        again["code"], "forbidden",
        "leaving a room not joined: {again}"
    );
}

#[tokio::test]
async fn history_over_websocket_pages_backwards() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut ws = app.ws_in(&alice, "lobby").await;
    let mut seqs = Vec::new();
    for i in 0..5 {
        seqs.push(
            ws.send_message("lobby", &format!("m{i}"), &format!("c{i}"))
                .await["seq"]
                .as_u64()
                .expect("seq"),
        );
    }
    let page = ws
        .request(json!({"type": "history", "room": "lobby", "limit": 2}))
        .await;
    assert_eq!(page["type"], "history");
    assert_eq!(page["room"], "lobby");
    let bodies = |p: &Value| {
        p["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["body"].as_str().expect("body").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(bodies(&page), ["m3", "m4"]);
    assert_eq!(page["has_more"], true);
    let older = ws
        .request(json!({"type": "history", "room": "lobby", "before": seqs[3], "limit": 10}))
        .await;
    assert_eq!(bodies(&older), ["m0", "m1", "m2"]);
    assert_eq!(older["has_more"], false);
}

#[tokio::test]
async fn typing_and_read_receipts_reach_the_others() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut alice_ws = app.ws_in(&alice, "lobby").await;
    let mut bob_ws = app.ws_in(&bob, "lobby").await;
    alice_ws
        .send_json(json!({"type": "typing", "room": "lobby"}))
        .await;
    let typing = bob_ws.recv_type("typing").await;
    assert_eq!(typing["room"], "lobby");
    assert_eq!(typing["user"]["username"], "alice");
    alice_ws.no_frame_of_type("typing", 300).await;

    let seq = alice_ws.send_message("lobby", "read me", "c1").await["seq"]
        .as_u64()
        .expect("seq");
    bob_ws.recv_type("message").await;
    bob_ws
        .send_json(json!({"type": "read", "room": "lobby", "seq": seq}))
        .await;
    let receipt = alice_ws.recv_type("receipt").await;
    assert_eq!(receipt["room"], "lobby");
    assert_eq!(receipt["user"]["username"], "bob");
    assert_eq!(receipt["seq"], seq);
}

#[tokio::test]
async fn joining_returns_the_room_head_and_who_is_there() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut alice_ws = app.ws_in(&alice, "lobby").await;
    let seq = alice_ws.send_message("lobby", "first", "c1").await["seq"]
        .as_u64()
        .expect("seq");
    let mut bob_ws = app.ws(&bob).await;
    let joined = bob_ws
        .request(json!({"type": "join", "room": "lobby"}))
        .await;
    assert_eq!(joined["room"]["name"], "lobby");
    assert_eq!(joined["room"]["kind"], "public");
    assert!(joined["room"]["id"].is_string());
    assert_eq!(joined["last_seq"], seq);
    let mut present: Vec<_> = joined["presence"]
        .as_array()
        .expect("presence")
        .iter()
        .map(|u| u["username"].as_str().expect("name").to_string())
        .collect();
    present.sort();
    assert_eq!(present, ["alice", "bob"]);
    assert!(joined.get("recovered").is_none(), "no since, no recovery");
}

/// Frames larger than the socket's write-buffer bound would stop its writer for good:
/// history pages, replays and presence lists are cut to fit, say so, and page on.
#[tokio::test]
async fn large_history_replay_and_presence_are_cut_to_fit_one_frame_and_page_on() {
    let app = spawn_app_with(|s| s.ws_max_write_buffer_bytes = 16 * 1024).await;
    let alice = app.user("alice").await;
    let mut ws = app.ws_in(&alice, "lobby").await;
    let mut seqs = Vec::new();
    for i in 0..30 {
        let body = format!("{i:02}{}", "x".repeat(1000));
        let ack = ws.send_message("lobby", &body, &format!("c{i}")).await;
        seqs.push(ack["seq"].as_u64().expect("seq"));
    }
    let seqs_of = |frame: &Value, key: &str| -> Vec<u64> {
        frame[key]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["seq"].as_u64().expect("seq"))
            .collect()
    };

    // History pages backwards: each page the newest that fit, `has_more` until the start.
    let mut paged = Vec::new();
    let mut before: Option<u64> = None;
    for _ in 0..30 {
        let page = ws
            .request(json!({"type": "history", "room": "lobby", "limit": 100, "before": before}))
            .await;
        assert_eq!(page["type"], "history", "{page}");
        let got = seqs_of(&page, "messages");
        assert!(
            !got.is_empty() && got.len() < 30,
            "cut, never empty: {}",
            got.len()
        );
        before = got.first().copied();
        paged.splice(0..0, got);
        if page["has_more"] == false {
            break;
        }
    }
    assert_eq!(paged, seqs, "history pages cover every message once");

    // A `since` replay is cut too; joining again from the last recovered seq goes on.
    let bob = app.user("bob").await;
    let mut bob_ws = app.ws(&bob).await;
    let mut replayed: Vec<u64> = Vec::new();
    let mut since = 0;
    for _ in 0..30 {
        let joined = bob_ws
            .request(json!({"type": "join", "room": "lobby", "since": since}))
            .await;
        assert_eq!(joined["type"], "joined", "{joined}");
        let got = seqs_of(&joined, "recovered");
        assert!(got.len() < 30, "the replay is cut");
        replayed.extend(&got);
        match got.last() {
            Some(last) if joined["has_more"] == true => since = *last,
            _ => break,
        }
    }
    assert_eq!(replayed, seqs, "the replays cover every message once");

    // 40 more members: the `joined` presence list is cut and says so; REST has them all.
    let mut sockets = Vec::new();
    for i in 0..40 {
        let user = app.user(&format!("member{i:02}")).await;
        sockets.push(app.ws_in(&user, "lobby").await);
    }
    let carol = app.user("carol").await;
    let mut carol_ws = app.ws(&carol).await;
    let joined = carol_ws
        .request(json!({"type": "join", "room": "lobby"}))
        .await;
    let shown = joined["presence"].as_array().expect("presence").len();
    assert!((1..42).contains(&shown), "cut presence: {shown}");
    assert_eq!(joined["presence_has_more"], true);
    let all: Value = app
        .get("/api/rooms/lobby/presence", Some(&carol.token))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(all["users"].as_array().expect("users").len(), 43);
    // The socket still answers after every cut frame.
    let pong = carol_ws.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong");
}
