//! WebSocket upgrades on raw connections: the handshake the gateway does itself for a
//! connection whose first request is `GET /ws`, its refusals, and the upgrade through
//! poem for one that arrives on a kept-alive connection.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn upgrade_request(query: &str, extra_headers: &str) -> String {
    format!(
        "GET /ws{query} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n\
         {extra_headers}\r\n"
    )
}

/// Reads one response head, byte by byte so that nothing after it is consumed.
async fn read_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = tokio::time::timeout(WAIT, tcp.read_u8())
            .await
            .expect("a response in time")
            .expect("a response head");
        head.push(byte);
    }
    String::from_utf8(head).expect("text")
}

fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .expect("content-length")
}

/// A refusal: its head, and its JSON body; the gateway then closes the connection.
async fn refusal(tcp: &mut TcpStream) -> (String, Value) {
    let head = read_head(tcp).await;
    let mut body = vec![0; content_length(&head)];
    tcp.read_exact(&mut body).await.expect("the body");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(WAIT, tcp.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0))),
        "closed after the refusal: {closed:?}"
    );
    (head, serde_json::from_slice(&body).expect("a JSON body"))
}

/// A new connection to `addr` that has sent `request`.
async fn sent(addr: SocketAddr, request: &[u8]) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(request).await.expect("write");
    tcp
}

/// A masked client text frame (RFC 6455 5.2), as a client would send it.
fn client_text_frame(text: &str) -> Vec<u8> {
    let payload = text.as_bytes();
    let mut frame = vec![0x81];
    if payload.len() < 126 {
        frame.push(0x80 | payload.len() as u8);
    } else {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    let mask = [0x12, 0x34, 0x56, 0x78];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

#[tokio::test]
async fn a_direct_upgrade_takes_frames_sent_right_behind_its_head() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let auth = json!({"type": "auth", "token": alice.token}).to_string();
    let mut bytes = upgrade_request("", "").into_bytes();
    bytes.extend(client_text_frame(&auth));
    let mut tcp = sent(app.addr, &bytes).await;
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(
        head.contains(&format!("sec-websocket-accept: {ACCEPT}\r\n")),
        "{head}"
    );
    let mut ws = WsClient::from_upgraded(tcp).await;
    let hello = ws.recv().await;
    assert_eq!(hello["type"], "hello", "{hello}");
    assert_eq!(hello["user"]["username"], "alice");
}

/// How many TCP segments with data the socket on local port `port` has received, as
/// the kernel counts them (`ss -ti`, iproute2: `tcpi_data_segs_in`).
fn data_segments_received(port: u16) -> u64 {
    let out = std::process::Command::new("ss")
        .args([
            "-tinH",
            "state",
            "established",
            &format!("( sport = :{port} )"),
        ])
        .output()
        .expect("ss (iproute2) runs");
    assert!(out.status.success(), "ss: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find_map(|field| field.strip_prefix("data_segs_in:"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no data_segs_in for port {port} in {text:?}"))
}

#[tokio::test]
async fn a_socket_authenticated_by_its_token_gets_the_101_and_the_hello_in_one_write() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let request = upgrade_request(&format!("?token={}", alice.token), "");
    let mut tcp = sent(app.addr, request.as_bytes()).await;
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(head.contains(ACCEPT), "{head}");
    let port = tcp.local_addr().expect("address").port();
    let mut ws = WsClient::from_upgraded(tcp).await;
    let hello = ws.recv().await;
    assert_eq!(hello["type"], "hello", "{hello}");
    assert_eq!(hello["user"]["username"], "alice");
    // Nagle is off on the gateway's sockets, so two writes would have been two
    // segments.
    assert_eq!(
        data_segments_received(port),
        1,
        "the 101 and the hello arrive in one segment"
    );
    // The socket goes on as any other.
    let pong = ws.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong", "{pong}");
}

#[tokio::test]
async fn an_upgrade_on_a_kept_alive_connection_goes_through_poem() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut tcp = sent(
        app.addr,
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await;
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let mut body = vec![0; content_length(&head)];
    tcp.read_exact(&mut body).await.expect("the body");

    let request = upgrade_request(&format!("?token={}", alice.token), "");
    tcp.write_all(request.as_bytes()).await.expect("write");
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(head.contains(ACCEPT), "{head}");
    let mut ws = WsClient::from_upgraded(tcp).await;
    assert_eq!(ws.recv().await["type"], "hello");
    let pong = ws.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong", "{pong}");
}

#[tokio::test]
async fn malformed_or_oversized_heads_are_refused_with_400() {
    let app = spawn_app().await;
    let cases: [(Vec<u8>, &str); 4] = [
        (
            b"GET /ws HTTP/1.1\r\nHost: localhost\r\nno colon here\r\n\r\n".to_vec(),
            "malformed",
        ),
        (
            b"GET /ws HTTP/1.0\r\nHost: localhost\r\n\r\n".to_vec(),
            "HTTP/1.1",
        ),
        (
            upgrade_request("", &format!("X-Padding: {}\r\n", "p".repeat(17 * 1024))).into_bytes(),
            "larger than",
        ),
        (
            upgrade_request("", &"X-Many: 1\r\n".repeat(70)).into_bytes(),
            "headers",
        ),
    ];
    for (bytes, expected) in cases {
        let mut tcp = TcpStream::connect(app.addr).await.expect("connect");
        // The refusal may come before the whole request is written.
        let _ = tcp.write_all(&bytes).await;
        let (head, body) = refusal(&mut tcp).await;
        assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
        assert_eq!(body["code"], "bad_request", "{body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains(expected)),
            "{expected}: {body}"
        );
    }
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("chatx_errors_total{code=\"bad_request\"} 4"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_head_that_does_not_arrive_in_time_is_refused() {
    let app = spawn_app_with(|s| s.auth_timeout_secs = 1).await;
    let mut tcp = sent(app.addr, b"GET /ws?token=x HTTP/1.1\r\nHost: localhost\r\n").await;
    let (head, body) = refusal(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("not received in time")),
        "{body}"
    );
}

#[tokio::test]
async fn direct_upgrades_are_refused_like_poems_with_the_reason() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let cases = [
        (upgrade_request("?token=forged", ""), "401", "unauthorized"),
        (
            upgrade_request(
                &format!("?token={}", alice.token),
                "Origin: https://evil.example\r\n",
            ),
            "403",
            "forbidden",
        ),
        (
            "GET /ws HTTP/1.1\r\nHost: localhost\r\n\r\n".to_string(),
            "400",
            "bad_request",
        ),
        (
            upgrade_request("?token=%ZZ&token=2", ""),
            "400",
            "bad_request",
        ),
    ];
    for (request, status, code) in cases {
        let mut tcp = sent(app.addr, request.as_bytes()).await;
        let (head, body) = refusal(&mut tcp).await;
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert_eq!(body["code"], code, "{body}");
    }
    // Each refusal is counted once.
    let metrics = app.metrics().await;
    for (code, count) in [("unauthorized", 1), ("forbidden", 1), ("bad_request", 2)] {
        assert!(
            metrics.contains(&format!("chatx_errors_total{{code=\"{code}\"}} {count}\n")),
            "{code}: {metrics}"
        );
    }
}

#[tokio::test]
async fn the_per_ip_edge_limit_covers_direct_upgrades() {
    let app = spawn_app_with(|s| {
        s.http_per_ip_per_sec = 1;
        s.http_per_ip_burst = 1;
        s.trust_forwarded_for = true;
    })
    .await;
    // The limit is per client address, here the one the balancer appends.
    let from = "X-Forwarded-For: 203.0.113.9\r\n";
    let mut first = sent(app.addr, upgrade_request("", from).as_bytes()).await;
    assert!(read_head(&mut first).await.starts_with("HTTP/1.1 101 "));

    let mut second = sent(app.addr, upgrade_request("", from).as_bytes()).await;
    let (head, body) = refusal(&mut second).await;
    assert!(head.starts_with("HTTP/1.1 429 "), "{head}");
    assert!(head.contains("retry-after: "), "{head}");
    assert_eq!(body["code"], "rate_limited", "{body}");

    let other_client = upgrade_request("", "X-Forwarded-For: 203.0.113.10\r\n");
    let mut other = sent(app.addr, other_client.as_bytes()).await;
    assert!(read_head(&mut other).await.starts_with("HTTP/1.1 101 "));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut later = sent(app.addr, upgrade_request("", from).as_bytes()).await;
    assert!(read_head(&mut later).await.starts_with("HTTP/1.1 101 "));
}

#[tokio::test]
async fn a_draining_gateway_refuses_direct_upgrades_with_503() {
    let mut app = spawn_app_with(|s| s.drain_secs = 3).await;
    let alice = app.user("alice").await;
    let mut ws = app.ws(&alice).await;
    let addr = app.addr;
    let stopper = tokio::spawn(async move { app.stop().await });
    ws.recv_type("reconnect").await;
    // Still accepting while draining.
    let request = upgrade_request(&format!("?token={}", alice.token), "");
    let mut tcp = sent(addr, request.as_bytes()).await;
    let (head, body) = refusal(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    assert_eq!(body["code"], "unavailable", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("draining")),
        "{body}"
    );
    stopper.await.expect("stopped");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed once the gateway stopped"
    );
}
