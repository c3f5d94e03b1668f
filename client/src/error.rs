//! [`ClientError`]: why a client call failed.

/// Why a call failed. Transient trouble (a gateway gone, `unavailable`, a dependency
/// outage) never shows up here: the client retries it. What remains is final.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The configuration cannot work (e.g. a base URL that is not `http://`).
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// The server refused the username and password.
    #[error("sign-in refused for `{0}`: wrong username or password")]
    Credentials(String),
    /// The server answered an HTTP request with an error.
    #[error("HTTP {status} from {what}: {code}: {message}")]
    Http {
        what: &'static str,
        status: u16,
        code: String,
        message: String,
    },
    /// The server refused a request for good (`forbidden`, `not_found`,
    /// `wrong_password`, `too_large`, `bad_request`, ...).
    #[error("refused: {code}: {message}")]
    Refused { code: String, message: String },
    /// No connection could be set up in time.
    #[error("could not connect: {0}")]
    Connect(String),
    /// The call needs a joined room.
    #[error("join `{0}` first")]
    NotJoined(String),
    /// The room was deleted or the client left it while the call was pending.
    #[error("room `{0}` is gone")]
    RoomGone(String),
    /// The client was closed. A pending send may or may not have been stored.
    #[error("the client is closed")]
    Closed,
}

impl ClientError {
    pub(crate) fn refused(code: &str, message: &str) -> Self {
        ClientError::Refused {
            code: code.to_string(),
            message: message.to_string(),
        }
    }
}

/// WebSocket `error` codes worth retrying (with the same `client_msg_id` for a send):
/// the request may succeed later without any change on the client's side.
pub(crate) fn retryable(code: &str) -> bool {
    matches!(code, "unavailable" | "internal" | "rate_limited")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_codes_are_retried() {
        for code in ["unavailable", "internal", "rate_limited"] {
            assert!(retryable(code), "{code}");
        }
        for code in [
            "forbidden",
            "not_found",
            "too_large",
            "bad_request",
            "wrong_password",
            "conflict",
        ] {
            assert!(!retryable(code), "{code}");
        }
    }
}
