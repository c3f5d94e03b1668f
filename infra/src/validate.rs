//! Validated newtypes for user input: parse once at the edge, carry the type inward.
//! Nothing here touches I/O; every rule of the wire protocol's input section lives here.

use std::fmt;

/// A rule that user input broke. The message is safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    #[error("{0}")]
    Bad(String),
    /// The input is well-formed but over a size limit (`too_large`).
    #[error("{0}")]
    TooLarge(String),
}

fn bad(message: impl Into<String>) -> InvalidInput {
    InvalidInput::Bad(message.into())
}

/// `^[A-Za-z0-9_]{3,32}$`
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        let ok = (3..=32).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(bad(
                "username must be 3 to 32 characters of A-Z, a-z, 0-9 and _",
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `^[a-z0-9][a-z0-9_-]{1,63}$`
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomName(String);

impl RoomName {
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        let bytes = s.as_bytes();
        let ok = (2..=64).contains(&bytes.len())
            && bytes[0].is_ascii_lowercase() | bytes[0].is_ascii_digit()
            && bytes[1..]
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-');
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(bad(
                "room name must be 2 to 64 characters of a-z, 0-9, _ and -, starting with a letter or digit",
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// 8..=128 bytes. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        if (8..=128).contains(&s.len()) {
            Ok(Self(s.to_string()))
        } else {
            Err(bad("password must be 8 to 128 bytes"))
        }
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// Non-empty UTF-8 up to `max_bytes`, no control characters but `\n` and `\t`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

impl MessageBody {
    pub fn parse(s: &str, max_bytes: usize) -> Result<Self, InvalidInput> {
        if s.len() > max_bytes {
            return Err(InvalidInput::TooLarge(format!(
                "message body is {} bytes; the limit is {max_bytes}",
                s.len()
            )));
        }
        if s.trim().is_empty() {
            return Err(bad("message body must not be empty"));
        }
        if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            return Err(bad(
                "message body must not contain control characters other than \\n and \\t",
            ));
        }
        Ok(Self(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

/// The client's idempotency key for a `send`: 1..=64 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMsgId(String);

impl ClientMsgId {
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        if (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(s.to_string()))
        } else {
            Err(bad(
                "client_msg_id must be 1 to 64 printable ASCII characters",
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_documented_pattern() {
        for ok in ["abc", "A_b_9", &"x".repeat(32)] {
            assert!(Username::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["ab", &"x".repeat(33), "with space", "dash-no", "ünï", ""] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn room_names_follow_the_documented_pattern() {
        for ok in ["lobby", "0a", "a-b_c", &"a".repeat(64)] {
            assert!(RoomName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["a", "-ab", "_ab", "Upper", &"a".repeat(65), "a b", "a.b"] {
            assert!(RoomName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_are_8_to_128_bytes_and_hidden_from_debug() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse(&"p".repeat(129)).is_err());
        let p = Password::parse("correct horse").expect("valid");
        assert_eq!(format!("{p:?}"), "Password(***)");
    }

    #[test]
    fn message_bodies_reject_empty_oversize_and_control_characters() {
        assert!(MessageBody::parse("hi\n\tthere", 10).is_ok());
        assert!(matches!(
            MessageBody::parse("", 10),
            Err(InvalidInput::Bad(_))
        ));
        assert!(matches!(
            MessageBody::parse("  \n", 10),
            Err(InvalidInput::Bad(_))
        ));
        assert!(matches!(
            MessageBody::parse("a\u{7}b", 10),
            Err(InvalidInput::Bad(_))
        ));
        assert!(matches!(
            MessageBody::parse("a\rb", 10),
            Err(InvalidInput::Bad(_))
        ));
        assert!(matches!(
            MessageBody::parse(&"x".repeat(11), 10),
            Err(InvalidInput::TooLarge(_))
        ));
        // Limits count bytes, not characters.
        assert!(MessageBody::parse(&"é".repeat(5), 10).is_ok());
        assert!(MessageBody::parse(&"é".repeat(6), 10).is_err());
    }

    #[test]
    fn client_msg_ids_are_short_printable_ascii() {
        assert!(ClientMsgId::parse("c-1").is_ok());
        assert!(ClientMsgId::parse("").is_err());
        assert!(ClientMsgId::parse("has space").is_err());
        assert!(ClientMsgId::parse(&"x".repeat(65)).is_err());
    }
}
