//! Protocol adapters: how each system is connected to, joined, written to, and how a
//! delivered message's send time is read back.
//!
//! - ChatX: DESIGN section 7 (`hello`, `join`/`joined`, `send`/`message`).
//! - Baseline: `GET /?room=NAME`, every text frame is broadcast to the room as-is.
//! - Socket.IO 4 over its raw WebSocket transport: Engine.IO v4 packets (`0` open,
//!   `2`/`3` ping/pong, `4` message) carrying Socket.IO packets (`0` connect, `2` event,
//!   `3` ack): `40`, `421["join",room]` -> `431[..]`, `42["msg",room,body]` ->
//!   `42["msg",body]`.
//!
//! Bodies start with the send time in microseconds since the Unix epoch as 16 decimal
//! digits, padded with `x` to the body size: no JSON escaping anywhere.

use std::time::{SystemTime, UNIX_EPOCH};

/// Which system a target runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Chatx,
    Baseline,
    Socketio,
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "chatx" => Ok(Kind::Chatx),
            "baseline" => Ok(Kind::Baseline),
            "socketio" | "socket.io" => Ok(Kind::Socketio),
            other => Err(format!(
                "unknown kind `{other}` (chatx, baseline, socketio)"
            )),
        }
    }
}

/// Digits of the send time at the start of every body.
pub const TS_DIGITS: usize = 16;

/// Microseconds since the Unix epoch (all processes on one machine share the clock).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A body of `len` bytes (at least the timestamp) stamped with `ts_us`.
pub fn body(ts_us: u64, len: usize) -> String {
    let mut body = format!("{ts_us:016}");
    while body.len() < len {
        body.push('x');
    }
    body
}

/// The WebSocket URL of one connection. `base` is `http://host:port`.
pub fn ws_url(kind: Kind, base: &str, room: &str, token: Option<&str>) -> String {
    let base = base
        .trim_end_matches('/')
        .replacen("http://", "ws://", 1)
        .replacen("https://", "wss://", 1);
    match kind {
        Kind::Chatx => format!("{base}/ws?token={}", token.unwrap_or_default()),
        Kind::Baseline => format!("{base}/?room={room}"),
        Kind::Socketio => format!("{base}/socket.io/?EIO=4&transport=websocket"),
    }
}

/// The frame that joins `room` (none for the baseline: the room is in the URL).
pub fn join_frame(kind: Kind, room: &str) -> Option<String> {
    match kind {
        Kind::Chatx => Some(format!(r#"{{"type":"join","room":"{room}","ref":"j"}}"#)),
        Kind::Baseline => None,
        Kind::Socketio => Some(format!(r#"421["join","{room}"]"#)),
    }
}

/// Whether `text` answers the join frame successfully; `Err` when it refuses it.
pub fn is_join_reply(kind: Kind, text: &str) -> Result<bool, String> {
    match kind {
        Kind::Chatx if text.contains(r#""type":"joined""#) => Ok(true),
        Kind::Chatx if text.contains(r#""type":"error""#) => Err(text.to_string()),
        Kind::Socketio => Ok(text.starts_with("431")),
        _ => Ok(false),
    }
}

/// Unique to this process. A ChatX `client_msg_id` identifies a message of its user
/// for good: the server acks a reused one with the original message and delivers
/// nothing new. The bench users are the same in every run against one server, so
/// every run needs ids of its own.
fn run_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        format!("{:x}", nanos ^ (u64::from(std::process::id()) << 40))
    })
}

/// The frame that sends `body` to `room`; the run tag, `conn` and `seq` make ChatX's
/// `client_msg_id` unique.
pub fn send_frame(kind: Kind, room: &str, body: &str, conn: usize, seq: u64) -> String {
    match kind {
        Kind::Chatx => format!(
            r#"{{"type":"send","room":"{room}","body":"{body}","client_msg_id":"b{}-{conn}-{seq}"}}"#,
            run_tag()
        ),
        Kind::Baseline => body.to_string(),
        Kind::Socketio => format!(r#"42["msg","{room}","{body}"]"#),
    }
}

/// What an incoming frame means to the load generator.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A room message sent at this time (µs).
    Delivery(u64),
    /// An error reply.
    Error,
    /// Must be answered with this frame (Engine.IO ping).
    Reply(&'static str),
    /// Anything else (acks, presence, greetings).
    Other,
}

fn stamp_after(text: &str, marker: &str) -> Option<u64> {
    let start = text.find(marker)? + marker.len();
    let digits = text.get(start..start + TS_DIGITS)?;
    digits.parse().ok()
}

/// Classifies one incoming text frame.
pub fn classify(kind: Kind, text: &str) -> Incoming {
    match kind {
        Kind::Chatx => {
            if text.starts_with(r#"{"type":"message""#) || text.contains(r#""type":"message""#) {
                stamp_after(text, r#""body":""#).map_or(Incoming::Other, Incoming::Delivery)
            } else if text.contains(r#""type":"error""#) {
                Incoming::Error
            } else {
                Incoming::Other
            }
        }
        Kind::Baseline => text
            .get(..TS_DIGITS)
            .and_then(|d| d.parse().ok())
            .map_or(Incoming::Other, Incoming::Delivery),
        Kind::Socketio => {
            if text == "2" {
                Incoming::Reply("3")
            } else if text.starts_with("42") {
                stamp_after(text, r#"["msg",""#).map_or(Incoming::Other, Incoming::Delivery)
            } else if text.starts_with("44") {
                Incoming::Error
            } else {
                Incoming::Other
            }
        }
    }
}

/// Whether the connection is ready for joins: ChatX's `hello`, Socket.IO's namespace
/// connect (`40{..}`); the baseline is ready at once. `Some(frame)` must be sent.
pub fn handshake_step(kind: Kind, text: &str) -> (bool, Option<&'static str>) {
    match kind {
        Kind::Chatx => (text.contains(r#""type":"hello""#), None),
        Kind::Baseline => (true, None),
        Kind::Socketio => {
            if text.starts_with("0{") {
                (false, Some("40"))
            } else if text.starts_with("40") {
                (true, None)
            } else if text == "2" {
                (false, Some("3"))
            } else {
                (false, None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_through_every_protocol() {
        let b = body(1_734_567_890_123_456, 64);
        assert_eq!(b.len(), 64);
        let chatx = format!(
            r#"{{"type":"message","room":"r","id":"x","seq":3,"user":{{"id":"u","username":"n"}},"body":"{b}","ts":"t","client_msg_id":"c"}}"#
        );
        assert_eq!(
            classify(Kind::Chatx, &chatx),
            Incoming::Delivery(1_734_567_890_123_456)
        );
        assert_eq!(
            classify(Kind::Baseline, &b),
            Incoming::Delivery(1_734_567_890_123_456)
        );
        let sio = format!(r#"42["msg","{b}"]"#);
        assert_eq!(
            classify(Kind::Socketio, &sio),
            Incoming::Delivery(1_734_567_890_123_456)
        );
        assert_eq!(classify(Kind::Socketio, "2"), Incoming::Reply("3"));
        assert_eq!(
            classify(Kind::Chatx, r#"{"type":"error","code":"rate_limited"}"#),
            Incoming::Error
        );
        assert_eq!(
            classify(Kind::Chatx, r#"{"type":"ack","seq":1}"#),
            Incoming::Other
        );
    }

    #[test]
    fn engine_io_handshake() {
        assert_eq!(
            handshake_step(Kind::Socketio, r#"0{"sid":"a","pingInterval":25000}"#),
            (false, Some("40"))
        );
        assert_eq!(
            handshake_step(Kind::Socketio, r#"40{"sid":"b"}"#),
            (true, None)
        );
        assert_eq!(is_join_reply(Kind::Socketio, r#"431["ok"]"#), Ok(true));
        assert_eq!(
            ws_url(Kind::Socketio, "http://127.0.0.1:3000", "r", None),
            "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"
        );
    }
}
