//! Every error path of the WebSocket protocol: a clear code, the `ref` echoed, and the
//! socket stays open (only oversize frames close it).

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::*;

async fn still_open(ws: &mut WsClient) {
    let pong = ws.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong", "the socket must stay open");
}

#[tokio::test]
async fn malformed_frames_get_bad_request_and_keep_the_socket() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut ws = app.ws(&alice).await;
    for (frame, reference) in [
        ("{not json", None),
        (r#"{"type":"teleport","ref":"t1"}"#, Some("t1")),
        (r#"{"type":"send","room":"lobby","ref":"t2"}"#, Some("t2")),
        (r#"{"room":"lobby","ref":"t3"}"#, Some("t3")),
        (r#"[1,2,3]"#, None),
        (r#"{"type":"join","room":42,"ref":"t4"}"#, Some("t4")),
        (
            r#"{"type":"read","room":"lobby","seq":-1,"ref":"t5"}"#,
            Some("t5"),
        ),
    ] {
        ws.send_text(frame).await;
        let e = ws.recv().await;
        assert_eq!(e["type"], "error", "{frame}");
        assert_eq!(e["code"], "bad_request", "{frame}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
        match reference {
            Some(r) => assert_eq!(e["ref"], r, "{frame}"),
            None => assert!(e.get("ref").is_none()),
        }
    }
    ws.send_raw(Message::Binary(vec![1, 2, 3].into())).await;
    assert_eq!(ws.recv().await["code"], "bad_request");
    let e = ws.request(json!({"type": "auth", "token": "again"})).await;
    assert_eq!(e["code"], "bad_request", "auth twice");
    still_open(&mut ws).await;
}

#[tokio::test]
async fn invalid_message_bodies_are_refused_with_their_own_codes() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut ws = app.ws_in(&alice, "lobby").await;
    let too_large = ws.send_message("lobby", &"x".repeat(4097), "c1").await;
    assert_eq!(too_large["code"], "too_large", "{too_large}");
    assert_eq!(
        ws.send_message("lobby", &"é".repeat(2048), "c2").await["type"],
        "ack",
        "4096 bytes is fine"
    );
    for (body, id) in [
        ("", "c3"),
        ("   ", "c4"),
        ("bell\u{7}", "c5"),
        ("ok", ""),
        ("ok", "has space"),
    ] {
        let e = ws.send_message("lobby", body, id).await;
        assert_eq!(e["code"], "bad_request", "{body:?}/{id:?}: {e}");
    }
    still_open(&mut ws).await;
}

#[tokio::test]
async fn frames_over_the_hard_cap_close_the_socket_with_1009() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut ws = app.ws(&alice).await;
    let huge = json!({"type": "send", "room": "lobby", "body": "x".repeat(70 * 1024), "client_msg_id": "c"});
    ws.send_json(huge).await;
    assert_eq!(ws.closed().await, 1009);
}

#[tokio::test]
async fn rooms_must_exist_be_joined_and_be_entered_with_their_password() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.create_room(&alice, "vault", Some("vault password"))
        .await;
    let mut ws = app.ws(&bob).await;
    let e = ws.request(json!({"type": "join", "room": "nowhere"})).await;
    assert_eq!(e["code"], "not_found");
    let e = ws.send_message("lobby", "not joined", "c1").await;
    assert_eq!(e["code"], "forbidden");
    let e = ws.request(json!({"type": "typing", "room": "lobby"})).await;
    assert_eq!(e["code"], "forbidden");
    let e = ws.request(json!({"type": "join", "room": "vault"})).await;
    assert_eq!(e["code"], "forbidden", "password required: {e}");
    let e = ws
        .request(json!({"type": "join", "room": "vault", "password": "guess guess"}))
        .await;
    assert_eq!(e["code"], "wrong_password");
    let e = ws
        .request(json!({"type": "history", "room": "vault"}))
        .await;
    assert_eq!(e["code"], "forbidden", "no history for non-members");
    let ok = ws
        .request(json!({"type": "join", "room": "vault", "password": "vault password"}))
        .await;
    assert_eq!(ok["type"], "joined");
    still_open(&mut ws).await;
}

#[tokio::test]
async fn wrong_room_passwords_are_rate_limited_per_user_and_room() {
    let app = spawn_app_with(|s| {
        s.rate_room_password_per_min = 1.0;
        s.rate_room_password_burst = 2;
    })
    .await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.create_room(&alice, "vault", Some("vault password"))
        .await;
    let mut ws = app.ws(&bob).await;
    for _ in 0..2 {
        let e = ws
            .request(json!({"type": "join", "room": "vault", "password": "wrong wrong"}))
            .await;
        assert_eq!(e["code"], "wrong_password");
    }
    let e = ws
        .request(json!({"type": "join", "room": "vault", "password": "vault password"}))
        .await;
    assert_eq!(
        e["code"], "rate_limited",
        "even the right password waits: {e}"
    );
    assert!(e["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0));
}

#[tokio::test]
async fn sends_and_joins_are_rate_limited_per_user() {
    let app = spawn_app_with(|s| {
        s.rate_msg_per_sec = 1.0;
        s.rate_msg_burst = 3;
        s.rate_join_per_sec = 1.0;
        s.rate_join_burst = 2;
    })
    .await;
    let alice = app.user("alice").await;
    let mut ws = app.ws_in(&alice, "lobby").await;
    for i in 0..3 {
        assert_eq!(
            ws.send_message("lobby", "hi", &format!("c{i}")).await["type"],
            "ack"
        );
    }
    let limited = ws.send_message("lobby", "hi", "c9").await;
    assert_eq!(limited["code"], "rate_limited");
    let retry = limited["retry_after_ms"].as_u64().expect("retry_after_ms");
    assert!((1..=1000).contains(&retry), "{retry}");
    // The limit is the user's, not the socket's.
    let mut other = app.ws(&alice).await;
    let joined = other
        .request(json!({"type": "join", "room": "lobby"}))
        .await;
    assert_eq!(joined["type"], "joined");
    assert_eq!(
        other.send_message("lobby", "hi", "c10").await["code"],
        "rate_limited"
    );
    let e = other
        .request(json!({"type": "join", "room": "lobby"}))
        .await;
    assert_eq!(
        e["type"], "joined",
        "rejoining a joined room is a resume, not a join"
    );
    let mut third = app.ws(&alice).await;
    let e = third
        .request(json!({"type": "join", "room": "lobby"}))
        .await;
    assert_eq!(e["code"], "rate_limited", "{e}");
    tokio::time::sleep(std::time::Duration::from_millis(retry + 50)).await;
    assert_eq!(ws.send_message("lobby", "hi", "c11").await["type"], "ack");
}

#[tokio::test]
async fn upgrades_with_a_bad_token_or_a_foreign_origin_are_refused() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let err = WsClient::connect_request(format!("{}?token=nope", app.ws_url()))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("401"), "{err}");

    let mut request = format!("{}?token={}", app.ws_url(), alice.token)
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().expect("header"));
    let err = WsClient::connect_request(request)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("403"), "{err}");

    let mut request = format!("{}?token={}", app.ws_url(), alice.token)
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "origin",
        format!("http://{}", app.addr).parse().expect("header"),
    );
    let mut ws = WsClient::connect_request(request)
        .await
        .expect("same origin is allowed");
    assert_eq!(ws.recv().await["type"], "hello");
}

#[tokio::test]
async fn a_plain_request_to_the_websocket_endpoint_gets_a_clear_400() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let response = app.get(&format!("/ws?token={}", alice.token), None).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], "bad_request", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("WebSocket handshake")),
        "{body}"
    );
}

#[tokio::test]
async fn configured_origins_are_allowed() {
    let app = spawn_app_with(|s| s.allowed_origins = vec!["https://chat.example".into()]).await;
    let alice = app.user("alice").await;
    let mut request = format!("{}?token={}", app.ws_url(), alice.token)
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("origin", "https://chat.example".parse().expect("header"));
    assert!(WsClient::connect_request(request).await.is_ok());
}

#[tokio::test]
async fn a_socket_that_does_not_authenticate_in_time_is_closed() {
    let app = spawn_app_with(|s| s.auth_timeout_secs = 1).await;
    let mut ws = WsClient::connect(&app.ws_url()).await;
    let e = ws.recv().await;
    assert_eq!(e["code"], "unauthorized");
    assert_eq!(ws.closed().await, 4003);

    let mut ws = WsClient::connect(&app.ws_url()).await;
    ws.send_json(json!({"type": "auth", "token": "forged"}))
        .await;
    assert_eq!(ws.recv().await["code"], "unauthorized");
    assert_eq!(ws.closed().await, 4003);
}

#[tokio::test]
async fn pings_do_not_extend_the_time_to_authenticate() {
    use futures_util::{SinkExt, StreamExt};
    use std::time::{Duration, Instant};

    let app = spawn_app_with(|s| s.auth_timeout_secs = 1).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(app.ws_url())
        .await
        .expect("connect");
    let connected = Instant::now();
    let mut pongs = 0;
    let code = loop {
        assert!(
            connected.elapsed() < Duration::from_secs(3),
            "still open after 3 s of pings"
        );
        // The last ping may meet a closed socket.
        let _ = ws.send(Message::Ping(b"still here".to_vec().into())).await;
        match tokio::time::timeout(Duration::from_millis(250), ws.next()).await {
            Err(_) => {}
            Ok(Some(Ok(Message::Pong(payload)))) => {
                assert_eq!(&payload[..], b"still here");
                pongs += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(Some(Ok(Message::Text(text)))) => assert!(text.contains("unauthorized"), "{text}"),
            Ok(Some(Ok(Message::Close(Some(close))))) => break u16::from(close.code),
            other => panic!("expected pongs, then the refusal: {other:?}"),
        }
    };
    assert_eq!(code, 4003);
    assert!(pongs >= 2, "pings were answered meanwhile ({pongs})");
}
