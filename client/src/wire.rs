//! The JSON frames of the WebSocket protocol as a client reads and writes them (README,
//! "WebSocket protocol"). Unknown frame types and unknown fields are ignored, so a newer
//! server does not break an older client.
//!
//! This module only maps frames to types; what the client does with them is in
//! `driver.rs`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

/// `{id, username}` as every frame shows a user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub username: String,
}

/// A chat message, as live `message` frames and `joined.recovered` carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Room name.
    pub room: String,
    pub id: Uuid,
    /// Position in the room's stream: increasing within a room, with gaps.
    pub seq: u64,
    pub user: User,
    pub body: String,
    /// RFC 3339 with milliseconds.
    pub ts: String,
    pub client_msg_id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RoomInfo {
    pub id: Uuid,
    pub name: String,
}

/// Frames the server sends. `Other` absorbs frame types this client does not know.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ServerFrame {
    Hello {
        user: User,
    },
    Joined {
        #[serde(rename = "ref")]
        reference: Option<String>,
        room: RoomInfo,
        last_seq: u64,
        #[serde(default)]
        presence: Vec<User>,
        recovered: Option<Vec<Message>>,
        #[serde(default)]
        has_more: bool,
    },
    Ack {
        #[serde(rename = "ref")]
        reference: Option<String>,
        client_msg_id: String,
        id: Uuid,
        seq: u64,
        ts: String,
    },
    Message(Message),
    Presence {
        room: String,
        user: User,
        event: String,
    },
    Typing {
        room: String,
        user: User,
    },
    Receipt {
        room: String,
        user: User,
        seq: u64,
    },
    Error {
        #[serde(rename = "ref")]
        reference: Option<String>,
        code: String,
        message: String,
        retry_after_ms: Option<u64>,
    },
    Reconnect {
        #[serde(default)]
        after_ms: u64,
    },
    RoomDeleted {
        room: String,
    },
    #[serde(other)]
    Other,
}

impl ServerFrame {
    pub(crate) fn parse(text: &str) -> Result<ServerFrame, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// Client frames, as JSON text.
pub(crate) fn join(
    reference: &str,
    room: &str,
    password: Option<&str>,
    since: Option<u64>,
) -> String {
    let mut frame = json!({"type": "join", "ref": reference, "room": room});
    if let Some(password) = password {
        frame["password"] = Value::from(password);
    }
    if let Some(since) = since {
        frame["since"] = Value::from(since);
    }
    frame.to_string()
}

pub(crate) fn leave(room: &str) -> String {
    json!({"type": "leave", "room": room}).to_string()
}

pub(crate) fn send(reference: &str, room: &str, body: &str, client_msg_id: &str) -> String {
    json!({"type": "send", "ref": reference, "room": room, "body": body, "client_msg_id": client_msg_id})
        .to_string()
}

pub(crate) fn ping() -> String {
    json!({"type": "ping"}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_frames_parse_and_unknown_types_are_tolerated() {
        let joined = ServerFrame::parse(
            r#"{"type":"joined","ref":"c1","room":{"id":"00000000-0000-0000-0000-000000000001","name":"lobby","kind":"public"},"last_seq":7,"presence":[],"recovered":[],"has_more":true}"#,
        )
        .expect("joined parses");
        assert!(matches!(
            joined,
            ServerFrame::Joined {
                last_seq: 7,
                has_more: true,
                ..
            }
        ));
        let message = ServerFrame::parse(
            r#"{"type":"message","room":"lobby","id":"00000000-0000-0000-0000-000000000002","seq":9,"user":{"id":"00000000-0000-0000-0000-000000000003","username":"ann"},"body":"hi","ts":"2026-01-01T00:00:00.000Z","client_msg_id":"c"}"#,
        )
        .expect("message parses");
        assert!(matches!(
            message,
            ServerFrame::Message(Message { seq: 9, .. })
        ));
        let future = ServerFrame::parse(r#"{"type":"hologram","x":1}"#).expect("tolerated");
        assert!(matches!(future, ServerFrame::Other));
        let notice = ServerFrame::parse(r#"{"type":"reconnect","reason":"drain","after_ms":0}"#)
            .expect("reconnect parses");
        assert!(matches!(notice, ServerFrame::Reconnect { after_ms: 0 }));
    }

    #[test]
    fn client_frames_carry_only_the_fields_given() {
        let v: Value = serde_json::from_str(&join("r1", "lobby", None, Some(4))).expect("json");
        assert_eq!(v["since"], 4);
        assert!(v.get("password").is_none());
        let v: Value = serde_json::from_str(&join("r2", "lobby", None, None)).expect("json");
        assert!(v.get("since").is_none());
        let v: Value = serde_json::from_str(&send("r3", "lobby", "b", "m1")).expect("json");
        assert_eq!(v["client_msg_id"], "m1");
    }
}
