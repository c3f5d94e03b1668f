use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = spawn_app().await;
    assert_eq!(
        app.get("/healthz", None).await.text().await.expect("text"),
        "ok"
    );
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status(), 200);
    let alice = app.user("alice").await;
    let mut ws = app.ws_in(&alice, "lobby").await;
    ws.send_message("lobby", "counted", "c1").await;
    ws.request(serde_json::json!({"type": "join", "room": "missing"}))
        .await;
    ws.recv_type("message").await;
    let metrics = app.metrics().await;
    for line in [
        "chatx_ws_connections 1",
        "chatx_messages_received_total 1",
        "chatx_messages_delivered_total 1",
        "chatx_errors_total{code=\"not_found\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing `{line}` in\n{metrics}"
        );
    }
}

#[tokio::test]
async fn the_openapi_spec_and_docs_are_served() {
    let app = spawn_app().await;
    let spec: Value = app
        .get("/api/openapi.json", None)
        .await
        .json()
        .await
        .expect("json");
    let paths = spec["paths"].as_object().expect("paths");
    for path in [
        "/api/auth/register",
        "/api/auth/login",
        "/api/auth/refresh",
        "/api/auth/logout",
        "/api/me",
        "/api/sessions",
        "/api/sessions/{id}",
        "/api/rooms",
        "/api/rooms/{name}",
        "/api/rooms/{name}/presence",
        "/api/rooms/{name}/messages",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    let docs = app.get("/api/docs", None).await;
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.expect("text").contains("swagger"));
}

#[tokio::test]
async fn the_web_client_is_served_at_the_root() {
    let app = spawn_app().await;
    let index = app.get("/", None).await;
    assert_eq!(index.status(), 200);
    assert!(
        index.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    for asset in ["/app.js", "/style.css", "/resilient-client.js"] {
        assert_eq!(app.get(asset, None).await.status(), 200, "{asset}");
    }
    let missing = app.get("/nothing-here.js", None).await;
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn the_per_ip_edge_limit_answers_429_with_retry_after() {
    let app = spawn_app_with(|s| {
        s.http_per_ip_per_sec = 1;
        s.http_per_ip_burst = 2;
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(app.get("/api/me", None).await);
    }
    assert_eq!(statuses[0].status(), 401);
    let limited = statuses.pop().expect("third");
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(
        limited.json::<Value>().await.expect("json")["code"],
        "rate_limited"
    );
    assert_eq!(
        app.get("/healthz", None).await.status(),
        200,
        "probes are never limited"
    );
}

#[tokio::test]
async fn drain_sends_reconnect_closes_sockets_and_fails_readiness() {
    let mut app = spawn_app_with(|s| s.drain_secs = 2).await;
    let alice = app.user("alice").await;
    let mut ws = app.ws_in(&alice, "lobby").await;
    let _second = app.ws(&alice).await;
    let state = app.state().clone();
    let stopper = tokio::spawn(async move { app.stop().await });
    let notice = ws.recv_type("reconnect").await;
    assert!(notice["reason"].is_string());
    assert_eq!(ws.closed().await, 1012);
    assert!(state.draining.load(std::sync::atomic::Ordering::Relaxed));
    stopper.await.expect("stopped");
}

/// A signed-in socket on a gateway that pings every second and closes after 2 s of
/// silence.
async fn socket_with_fast_heartbeat() -> (TestApp, WsClient) {
    let app = spawn_app_with(|s| {
        s.ping_interval_secs = 1;
        s.idle_timeout_secs = 2;
    })
    .await;
    let alice = app.user("alice").await;
    let ws = app.ws(&alice).await;
    (app, ws)
}

#[tokio::test]
async fn the_server_pings_and_closes_idle_sockets() {
    let (_app, mut ws) = socket_with_fast_heartbeat().await;
    ws.ping_frame().await;
    // This client stops reading, so it answers no pings: after 2 s it is idle.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(ws.closed().await, 4000);
}

#[tokio::test]
async fn a_client_that_answers_pings_is_not_idle() {
    let (_app, mut ws) = socket_with_fast_heartbeat().await;
    // Reading is all this client does: its library answers every ping with a pong,
    // and the pongs alone keep the socket open well past the idle timeout.
    ws.no_frame_of_type("error", 4500).await;
    let pong = ws.request(serde_json::json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong", "{pong}");
}
