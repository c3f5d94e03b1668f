//! The server's WebSocket frames (RFC 6455 section 5.2), encoded once into bytes that
//! go to the socket as they are.
//!
//! A server's frames are not masked, so one room message encodes to the same bytes
//! for every member: the hub encodes it once and every member's writer hands those
//! bytes to the kernel, with no per-socket framing or copy (see `connection`).

const FIN: u8 = 0x80;
const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// A close frame's reason is at most 123 bytes (125 minus the code).
const MAX_CLOSE_REASON: usize = 123;
/// Control frames carry at most 125 bytes (section 5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;
/// "No status": never sent on the wire; a close frame without a payload means it.
pub const NO_STATUS: u16 = 1005;

/// The heartbeat's ping: no payload.
pub const PING: &[u8] = &[FIN | OP_PING, 0];

/// A text frame holding `payload` (which must be UTF-8: it is always our JSON).
pub fn text(payload: &str) -> Box<[u8]> {
    encode(OP_TEXT, payload.as_bytes())
}

/// The answer to a client's ping: the same application data (cut to 125 bytes, which
/// a valid ping never exceeds).
pub fn pong(payload: &[u8]) -> Box<[u8]> {
    encode(OP_PONG, &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)])
}

/// A close frame; [`NO_STATUS`] sends one without a payload. The reason is cut to
/// 123 bytes at a character boundary.
pub fn close(code: u16, reason: &str) -> Box<[u8]> {
    if code == NO_STATUS {
        return encode(OP_CLOSE, &[]);
    }
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    encode(OP_CLOSE, &payload)
}

/// One final, unmasked frame: the header (2, 4 or 10 bytes) and the payload.
fn encode(opcode: u8, payload: &[u8]) -> Box<[u8]> {
    let len = payload.len();
    let mut frame = Vec::with_capacity(10 + len);
    frame.push(FIN | opcode);
    if len < 126 {
        frame.push(len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        frame.push(126);
        frame.extend_from_slice(&len.to_be_bytes());
    } else {
        frame.push(127);
        frame.extend_from_slice(&(len as u64).to_be_bytes());
    }
    frame.extend_from_slice(payload);
    frame.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use tokio_tungstenite::tungstenite::error::ProtocolError;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket};
    use tokio_tungstenite::tungstenite::{Error, Message};

    use super::*;

    /// What a client (tungstenite, which checks every header bit) reads from `bytes`.
    fn read_as_client(bytes: Vec<u8>) -> Vec<Message> {
        let mut socket = WebSocket::from_raw_socket(Cursor::new(bytes), Role::Client, None);
        let mut messages = Vec::new();
        loop {
            match socket.read() {
                Ok(message) => messages.push(message),
                // The end of the bytes.
                Err(Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => break,
                // After a close frame.
                Err(Error::ConnectionClosed | Error::AlreadyClosed) => break,
                Err(e) => panic!("a client could not read our frames: {e}"),
            }
        }
        messages
    }

    #[test]
    fn text_frames_of_every_length_class_read_back_whole() {
        // 7-bit, 16-bit and 64-bit lengths, and the edges between them.
        for len in [0, 1, 125, 126, 127, 65_535, 65_536, 200_000] {
            let payload = "x".repeat(len);
            let messages = read_as_client(text(&payload).into_vec());
            assert_eq!(messages.len(), 1, "length {len}");
            assert_eq!(
                messages[0].to_text().expect("text"),
                payload,
                "length {len}"
            );
        }
    }

    #[test]
    fn frames_written_back_to_back_read_as_separate_messages() {
        let mut bytes = text("{\"a\":1}").into_vec();
        bytes.extend_from_slice(PING);
        bytes.extend_from_slice(&pong(b"abc"));
        bytes.extend_from_slice(&text("é"));
        let messages = read_as_client(bytes);
        assert_eq!(messages.len(), 4);
        assert_eq!(messages[0], Message::text("{\"a\":1}"));
        assert!(matches!(&messages[1], Message::Ping(p) if p.is_empty()));
        assert!(matches!(&messages[2], Message::Pong(p) if &p[..] == b"abc"));
        assert_eq!(messages[3], Message::text("é"));
    }

    #[test]
    fn close_frames_carry_the_code_and_a_reason_cut_at_a_character() {
        let long = "é".repeat(100); // 200 bytes
        let messages = read_as_client(close(4008, &long).into_vec());
        let Some(Message::Close(Some(frame))) = messages.first() else {
            panic!("a close frame, got {messages:?}");
        };
        assert_eq!(frame.code, CloseCode::from(4008));
        assert_eq!(frame.reason.len(), 122, "61 whole characters");
        assert!(long.starts_with(frame.reason.as_str()));
    }

    #[test]
    fn no_status_closes_without_a_payload() {
        assert_eq!(&close(NO_STATUS, "ignored")[..], &[FIN | OP_CLOSE, 0]);
        let messages = read_as_client(close(NO_STATUS, "").into_vec());
        assert!(matches!(messages.first(), Some(Message::Close(None))));
    }

    #[test]
    fn a_pong_never_exceeds_a_control_frame() {
        let frame = pong(&[7; 300]);
        assert_eq!(frame.len(), 2 + 125);
    }
}
