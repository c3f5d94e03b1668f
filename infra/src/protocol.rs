//! The WebSocket wire protocol of DESIGN section 7: JSON text frames.
//!
//! Client frames are parsed in two steps (JSON value, then typed frame) so that a
//! malformed frame still gets its `ref` echoed in the `bad_request` error.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Error codes shared by the WebSocket `error` frame and the REST `{code, message}` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    WrongPassword,
    RateLimited,
    TooLarge,
    Conflict,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::WrongPassword,
        ErrorCode::RateLimited,
        ErrorCode::TooLarge,
        ErrorCode::Conflict,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::WrongPassword => "wrong_password",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

/// Close codes the server uses besides the standard ones.
pub mod close_code {
    /// The session was revoked (logout elsewhere, `DELETE /api/sessions/{id}`).
    pub const SESSION_REVOKED: u16 = 4001;
    /// No valid `auth` frame in time, or an invalid token.
    pub const UNAUTHORIZED: u16 = 4003;
    /// The socket's outbound queue overflowed: resume with `since`.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// Idle timeout: nothing received (not even a pong) for too long.
    pub const IDLE: u16 = 4000;
}

/// Frames a client sends.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Auth {
        token: String,
    },
    Join {
        room: String,
        password: Option<String>,
        since: Option<u64>,
    },
    Leave {
        room: String,
    },
    Send {
        room: String,
        body: String,
        client_msg_id: String,
    },
    History {
        room: String,
        before: Option<u64>,
        limit: Option<u64>,
    },
    Typing {
        room: String,
    },
    Read {
        room: String,
        seq: u64,
    },
    Ping {},
}

/// A frame that could not be parsed: the `ref` it carried (if any) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameError {
    pub reference: Option<String>,
    pub message: String,
}

impl ClientFrame {
    /// Parses one text frame. Never panics on any input.
    pub fn parse(text: &str) -> Result<(ClientFrame, Option<String>), FrameError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| FrameError {
            reference: None,
            message: format!("invalid JSON: {e}"),
        })?;
        let reference = match value.get("ref") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(FrameError {
                    reference: None,
                    message: "`ref` must be a string".into(),
                });
            }
        };
        if !value.is_object() {
            return Err(FrameError {
                reference,
                message: "a frame must be a JSON object".into(),
            });
        }
        match value.get("type") {
            Some(serde_json::Value::String(_)) => {}
            _ => {
                return Err(FrameError {
                    reference,
                    message: "missing string field `type`".into(),
                });
            }
        }
        serde_json::from_value::<ClientFrame>(value)
            .map(|frame| (frame, reference.clone()))
            .map_err(|e| FrameError {
                reference,
                message: e.to_string(),
            })
    }
}

/// `{id, username}` as every frame shows a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    pub id: Uuid,
    pub username: String,
}

/// `{id, name, kind}` in `joined`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomRef {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
}

/// A chat message as clients see it (live `message` frames, `recovered`, history).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    pub room: String,
    pub id: Uuid,
    pub seq: u64,
    pub user: UserRef,
    pub body: String,
    pub ts: String,
    pub client_msg_id: String,
}

/// RFC 3339 with milliseconds and `Z`, the one timestamp format of the API.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceChange {
    Join,
    Leave,
}

/// Frames the server sends.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Hello {
        user: UserRef,
        session_id: Uuid,
        conn_id: Uuid,
        server_time: String,
    },
    Joined {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        room: RoomRef,
        last_seq: u64,
        presence: Vec<UserRef>,
        /// Present and true when `presence` was cut to fit one frame (a very large
        /// room): the whole list is at REST `GET /api/rooms/{name}/presence`.
        #[serde(skip_serializing_if = "Option::is_none")]
        presence_has_more: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        recovered: Option<Vec<MessageView>>,
        /// Present and true when `recovered` was cut at the replay limit: `join` again
        /// with `since` = the last recovered seq for the rest.
        #[serde(skip_serializing_if = "Option::is_none")]
        has_more: Option<bool>,
    },
    Left {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        room: String,
    },
    Ack {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        client_msg_id: String,
        id: Uuid,
        seq: u64,
        ts: String,
    },
    Message(MessageView),
    History {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        room: String,
        messages: Vec<MessageView>,
        has_more: bool,
    },
    Presence {
        room: String,
        user: UserRef,
        event: PresenceChange,
    },
    Typing {
        room: String,
        user: UserRef,
    },
    Receipt {
        room: String,
        user: UserRef,
        seq: u64,
    },
    Pong {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    Error {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        code: ErrorCode,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    Reconnect {
        reason: String,
        after_ms: u64,
    },
    RoomDeleted {
        room: String,
    },
}

impl ServerFrame {
    /// Serializes to the text of one frame. Serialization of these types cannot fail
    /// (string keys, no maps with non-string keys), so a failure is a programming error
    /// reported as an `internal` error frame rather than a panic.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(r#"{{"type":"error","code":"internal","message":"serialization failed: {e}"}}"#)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_frame_parses_with_its_ref() {
        let (frame, r) = ClientFrame::parse(
            r#"{"type":"send","room":"lobby","body":"hi","client_msg_id":"c1","ref":"7"}"#,
        )
        .expect("valid");
        assert_eq!(r.as_deref(), Some("7"));
        assert!(matches!(frame, ClientFrame::Send { ref body, .. } if body == "hi"));
    }

    #[test]
    fn malformed_frames_explain_and_keep_the_ref() {
        let e = ClientFrame::parse("{nope").expect_err("bad json");
        assert!(e.message.contains("invalid JSON"));
        let e = ClientFrame::parse(r#"{"type":"warp","ref":"a"}"#).expect_err("unknown type");
        assert_eq!(e.reference.as_deref(), Some("a"));
        assert!(e.message.contains("unknown variant"), "{}", e.message);
        let e = ClientFrame::parse(r#"{"type":"send","room":"x","ref":"b"}"#).expect_err("missing");
        assert_eq!(e.reference.as_deref(), Some("b"));
        assert!(e.message.contains("missing field"), "{}", e.message);
        let e = ClientFrame::parse(r#"{"room":"x"}"#).expect_err("no type");
        assert!(e.message.contains("type"));
        let e = ClientFrame::parse(r#"[1,2]"#).expect_err("array");
        assert!(e.message.contains("object"));
        let e = ClientFrame::parse(r#"{"type":"ping","ref":5}"#).expect_err("ref type");
        assert!(e.message.contains("ref"));
    }

    #[test]
    fn server_frames_serialize_with_snake_case_tags() {
        let text = ServerFrame::Error {
            reference: Some("1".into()),
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            retry_after_ms: Some(250),
        }
        .to_text();
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["type"], "error");
        assert_eq!(v["code"], "rate_limited");
        assert_eq!(v["ref"], "1");
        assert_eq!(v["retry_after_ms"], 250);
        let text = ServerFrame::RoomDeleted { room: "r".into() }.to_text();
        assert_eq!(text, r#"{"type":"room_deleted","room":"r"}"#);
    }
}
