//! Shared by several test binaries; each uses a different subset.
#![allow(dead_code)]

//! Typed HTTP and WebSocket clients for the gateway tests (shared by the test
//! binaries through `#[path]`).

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

pub const WAIT: Duration = Duration::from_secs(5);
pub const PASSWORD: &str = "correct horse";

#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub token: String,
    pub refresh: String,
    pub session_id: String,
}

/// One gateway's HTTP API and WebSocket endpoint.
#[derive(Clone)]
pub struct Api {
    pub addr: std::net::SocketAddr,
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(addr: std::net::SocketAddr) -> Self {
        Self {
            addr,
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
        }
    }
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }
    pub async fn post(&self, path: &str, body: Value, token: Option<&str>) -> reqwest::Response {
        let mut req = self.http.post(self.url(path)).json(&body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.expect("request")
    }
    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.expect("request")
    }
    pub async fn delete(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }
    pub async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        self.post(
            "/api/auth/login",
            json!({"username": username, "password": password}),
            None,
        )
        .await
    }
    /// Registers and signs in a fresh user.
    pub async fn user(&self, username: &str) -> TestUser {
        let r = self
            .post(
                "/api/auth/register",
                json!({"username": username, "password": PASSWORD}),
                None,
            )
            .await;
        assert_eq!(r.status(), 201, "register {username}");
        self.sign_in(username).await
    }
    pub async fn sign_in(&self, username: &str) -> TestUser {
        let r = self.login(username, PASSWORD).await;
        assert_eq!(r.status(), 200, "login {username}");
        let v: Value = r.json().await.expect("json");
        TestUser {
            id: v["user"]["id"].as_str().expect("id").into(),

            token: v["access_token"].as_str().expect("token").into(),
            refresh: v["refresh_token"].as_str().expect("refresh").into(),
            session_id: v["session_id"].as_str().expect("sid").into(),
        }
    }
    pub async fn create_room(&self, user: &TestUser, name: &str, password: Option<&str>) -> Value {
        let body = match password {
            Some(p) => json!({"name": name, "kind": "private", "password": p}),
            None => json!({"name": name, "kind": "public"}),
        };
        let r = self.post("/api/rooms", body, Some(&user.token)).await;
        assert_eq!(r.status(), 201, "create room {name}");
        r.json().await.expect("json")
    }
    /// A socket authenticated by `?token=`, past its `hello`.
    pub async fn ws(&self, user: &TestUser) -> WsClient {
        let mut ws = WsClient::connect(&format!("{}?token={}", self.ws_url(), user.token)).await;
        let hello = ws.recv().await;
        assert_eq!(hello["type"], "hello", "{hello}");
        ws
    }
    /// A socket that joined `room` (and swallowed the `joined` reply).
    pub async fn ws_in(&self, user: &TestUser, room: &str) -> WsClient {
        let mut ws = self.ws(user).await;
        let joined = ws.request(json!({"type": "join", "room": room})).await;
        assert_eq!(joined["type"], "joined", "{joined}");
        ws
    }
    pub async fn metrics(&self) -> String {
        self.get("/metrics", None).await.text().await.expect("text")
    }
}

pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_ref: u64,
    /// Frames read while looking for another one, in arrival order.
    pending: VecDeque<Value>,
}

impl WsClient {
    pub async fn connect(url: &str) -> WsClient {
        let (stream, _) = connect_async(url).await.expect("websocket connects");
        WsClient {
            stream,
            next_ref: 0,
            pending: VecDeque::new(),
        }
    }

    pub async fn connect_request(
        request: impl IntoClientRequest + Unpin,
    ) -> Result<WsClient, tokio_tungstenite::tungstenite::Error> {
        let (stream, _) = connect_async(request).await?;
        Ok(WsClient {
            stream,
            next_ref: 0,
            pending: VecDeque::new(),
        })
    }

    /// A client on a connection whose handshake the test did itself.
    pub async fn from_upgraded(tcp: TcpStream) -> WsClient {
        let stream = WebSocketStream::from_raw_socket(
            MaybeTlsStream::Plain(tcp),
            tokio_tungstenite::tungstenite::protocol::Role::Client,
            None,
        )
        .await;
        WsClient {
            stream,
            next_ref: 0,
            pending: VecDeque::new(),
        }
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.stream.send(message).await.expect("send");
    }

    /// The next JSON frame (pings are skipped).
    pub async fn recv(&mut self) -> Value {
        if let Some(v) = self.pending.pop_front() {
            return v;
        }
        self.recv_new().await
    }

    async fn recv_new(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("a frame within 5 s")
                .expect("socket open")
                .expect("frame");
            match message {
                Message::Text(text) => return serde_json::from_str(&text).expect("JSON frame"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next frame of type `ty`; frames of other types stay queued for later.
    pub async fn recv_type(&mut self, ty: &str) -> Value {
        self.recv_where(|v| v["type"] == ty).await
    }

    async fn recv_where(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(&wanted) {
            return self.pending.remove(i).expect("present");
        }
        loop {
            let v = self.recv_new().await;
            if wanted(&v) {
                return v;
            }
            self.pending.push_back(v);
        }
    }

    /// Sends `value` with a fresh `ref` and returns the reply carrying it.
    pub async fn request(&mut self, mut value: Value) -> Value {
        self.next_ref += 1;
        let reference = format!("r{}", self.next_ref);
        value["ref"] = json!(reference);
        self.send_json(value).await;
        self.recv_where(|v| v["ref"] == json!(reference)).await
    }

    pub async fn send_message(&mut self, room: &str, body: &str, client_msg_id: &str) -> Value {
        self.request(
            json!({"type": "send", "room": room, "body": body, "client_msg_id": client_msg_id}),
        )
        .await
    }

    /// Waits for the server to close the socket; returns the close code.
    pub async fn closed(&mut self) -> u16 {
        loop {
            let next = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("closed within 5 s");
            match next {
                Some(Ok(Message::Close(frame))) => {
                    return frame.map_or(1005, |f| u16::from(f.code));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("socket failed instead of closing: {e}"),
                None => panic!("socket ended without a close frame"),
            }
        }
    }

    /// Asserts that no frame of type `ty` arrives within `ms` (nor is queued).
    pub async fn no_frame_of_type(&mut self, ty: &str, ms: u64) {
        if let Some(v) = self.pending.iter().find(|v| v["type"] == ty) {
            panic!("unexpected {v}");
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Text(text)))) => {
                    let v: Value = serde_json::from_str(&text).expect("json");
                    assert_ne!(v["type"], ty, "unexpected {v}");
                }
                Ok(Some(Ok(_))) => continue,
                Ok(other) => panic!("socket ended: {other:?}"),
            }
        }
    }

    /// The first frame `pick` takes, within 5 s; the frames before it are skipped.
    async fn next_frame_where<T>(&mut self, what: &str, pick: impl Fn(Message) -> Option<T>) -> T {
        loop {
            let next = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("{what} within 5 s"));
            let Some(message) = next else {
                panic!("{what} before the socket ended");
            };
            if let Some(found) = pick(message.expect("frame")) {
                return found;
            }
        }
    }

    /// The payload of the next pong.
    pub async fn pong(&mut self) -> Vec<u8> {
        self.next_frame_where("a pong", |m| match m {
            Message::Pong(payload) => Some(payload.to_vec()),
            _ => None,
        })
        .await
    }

    /// The server's close frame: `(code, reason)`, `None` when it had no payload.
    pub async fn close_frame(&mut self) -> Option<(u16, String)> {
        self.next_frame_where("a close frame", |m| match m {
            Message::Close(frame) => Some(frame.map(|f| (u16::from(f.code), f.reason.to_string()))),
            _ => None,
        })
        .await
    }

    pub async fn ping_frame(&mut self) {
        self.next_frame_where("a ping", |m| matches!(m, Message::Ping(_)).then_some(()))
            .await
    }
}
