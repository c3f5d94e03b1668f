//! The upgrade of a connection whose first request is `GET /ws` (see
//! `http::acceptor`): the request head is read and parsed here, it passes the same
//! checks as through poem (the per-IP edge limit, then [`upgrade::admit`]), and the
//! refusal is written by hand here, the `101` by the socket's task (with its `hello`
//! when the token authenticated the socket). The socket is served on the `TcpStream`
//! itself.
//!
//! A refusal is the same response poem would send (status, `{code, message}` body,
//! `Retry-After`), with `connection: close`: the connection ends after it.

use std::net::SocketAddr;
use std::time::Duration;

use poem::Response;
use poem::error::ResponseError;
use poem::http::{HeaderMap, HeaderName, HeaderValue, Method};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::connection::{self, Pending, Upgrade};
use super::upgrade;
use crate::error::ApiError;
use crate::http::edge_limit::EdgeLimit;
use crate::state::AppState;

/// A request head larger than this is refused.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most request headers accepted.
const MAX_HEADERS: usize = 64;
/// How long a refused client gets to read its response before the connection closes.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// A parsed request head.
#[derive(Debug)]
pub struct Head {
    pub method: Method,
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// Its length in bytes: what follows it was sent after the request.
    pub len: usize,
}

/// Serves one connection whose first bytes were `read` (at least `GET /ws?` or
/// `GET /ws `).
pub async fn serve(
    mut tcp: TcpStream,
    mut read: Vec<u8>,
    peer: SocketAddr,
    state: AppState,
    edge: EdgeLimit,
) {
    // The handshake shares the deadline a socket has to authenticate.
    let deadline = Duration::from_secs(state.settings.auth_timeout_secs);
    let head = match tokio::time::timeout(deadline, read_head(&mut tcp, &mut read)).await {
        Ok(Ok(head)) => head,
        Ok(Err(HeadError::Closed)) => return,
        Ok(Err(HeadError::Invalid(message))) => {
            let e = ApiError::BadRequest(message);
            state.metrics.error(e.code());
            refuse(&mut tcp, peer, e).await;
            return;
        }
        Err(_) => {
            let e = ApiError::BadRequest("request head not received in time".into());
            state.metrics.error(e.code());
            refuse(&mut tcp, peer, e).await;
            return;
        }
    };
    if let Err(e) = edge.check(&head.headers, Some(peer)) {
        state.metrics.error(e.code());
        refuse(&mut tcp, peer, e).await;
        return;
    }
    // `admit` counts its own refusals.
    let admitted =
        match upgrade::admit(&state, &head.method, &head.headers, head.query.as_deref()).await {
            Ok(admitted) => admitted,
            Err(e) => {
                refuse(&mut tcp, peer, e).await;
                return;
            }
        };
    // Written by the socket's task: with the `hello` when the token authenticated.
    let response = response_head(&upgrade::switching_protocols(&admitted.accept));
    // As poem's `Tracing` logs the requests it serves.
    tracing::info!(remote_addr = %peer, status = 101, "websocket upgrade");
    read.drain(..head.len);
    let config = upgrade::ws_config(&state.settings);
    let pending = Box::new(Pending {
        state,
        user: admitted.user,
    });
    // Its own task: this one holds the head's buffers, the socket's task must not.
    tokio::spawn(connection::serve(
        Upgrade::Direct {
            tcp,
            read_ahead: read,
            response,
        },
        config,
        pending,
    ));
}

#[derive(Debug, PartialEq)]
enum HeadError {
    /// The client went away.
    Closed,
    Invalid(String),
}

/// Reads until the end of the request head (after what `read` already holds) and
/// parses it.
async fn read_head(tcp: &mut TcpStream, read: &mut Vec<u8>) -> Result<Head, HeadError> {
    loop {
        if let Some(head) = parse_head(read)? {
            return Ok(head);
        }
        if read.len() >= MAX_HEAD_BYTES {
            return Err(HeadError::Invalid(format!(
                "request head larger than {MAX_HEAD_BYTES} bytes"
            )));
        }
        read.reserve(1024);
        match tcp.read_buf(read).await {
            Ok(0) | Err(_) => return Err(HeadError::Closed),
            Ok(_) => {}
        }
    }
}

/// `None` while the head is incomplete.
fn parse_head(bytes: &[u8]) -> Result<Option<Head>, HeadError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut slots);
    let len = match request.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::Invalid(format!(
                "more than {MAX_HEADERS} request headers"
            )));
        }
        Err(e) => return Err(HeadError::Invalid(format!("malformed request head: {e}"))),
    };
    if request.version != Some(1) {
        return Err(HeadError::Invalid(
            "a WebSocket handshake needs HTTP/1.1".into(),
        ));
    }
    let method = request
        .method
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        .ok_or_else(|| HeadError::Invalid("malformed request method".into()))?;
    let query = request
        .path
        .and_then(|path| path.split_once('?'))
        .map(|(_, query)| query.to_string());
    let mut headers = HeaderMap::with_capacity(request.headers.len());
    for header in request.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes());
        let value = HeaderValue::from_bytes(header.value);
        match (name, value) {
            (Ok(name), Ok(value)) => {
                headers.append(name, value);
            }
            _ => {
                return Err(HeadError::Invalid(format!(
                    "malformed request header `{}`",
                    header.name
                )));
            }
        }
    }
    Ok(Some(Head {
        method,
        query,
        headers,
        len,
    }))
}

/// Writes the refusal, closes our side, and gives the client a moment to read it
/// (closing with its unread bytes pending would reset the connection and could take
/// the response with it).
async fn refuse(tcp: &mut TcpStream, peer: SocketAddr, e: ApiError) {
    tracing::info!(remote_addr = %peer, status = e.status().as_u16(), error = %e, "websocket upgrade refused");
    let mut response = e.as_response();
    response
        .headers_mut()
        .insert("connection", HeaderValue::from_static("close"));
    let mut bytes = response_head_with_length(&mut response).await;
    let linger = async {
        tcp.write_all(&bytes).await?;
        tcp.shutdown().await?;
        bytes.clear();
        bytes.resize(1024, 0);
        while tcp.read(&mut bytes).await? > 0 {}
        std::io::Result::Ok(())
    };
    let _ = tokio::time::timeout(REFUSAL_LINGER, linger).await;
}

/// Status line and headers of `response`, then its body.
async fn response_head_with_length(response: &mut Response) -> Vec<u8> {
    let body = response.take_body().into_vec().await.unwrap_or_default();
    let mut bytes = response_head(response);
    bytes.truncate(bytes.len() - 2);
    bytes.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    bytes.extend_from_slice(&body);
    bytes
}

/// Status line and headers, up to the blank line.
fn response_head(response: &Response) -> Vec<u8> {
    let status = response.status();
    let mut bytes = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in response.headers() {
        bytes.extend_from_slice(name.as_str().as_bytes());
        bytes.extend_from_slice(b": ");
        bytes.extend_from_slice(value.as_bytes());
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"\r\n");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_head_is_parsed_with_its_length() {
        let bytes = b"GET /ws?token=a%20b HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nUpgrade: h2c\r\n\r\n\x81\x05";
        let head = parse_head(bytes).expect("valid").expect("complete");
        assert_eq!(head.method, Method::GET);
        assert_eq!(head.query.as_deref(), Some("token=a%20b"));
        assert_eq!(head.headers.get_all("upgrade").iter().count(), 2);
        assert_eq!(head.headers["host"], "x");
        assert_eq!(head.len, bytes.len() - 2);

        let head = parse_head(b"GET /ws HTTP/1.1\r\n\r\n")
            .expect("valid")
            .expect("complete");
        assert_eq!(head.query, None);
    }

    #[test]
    fn an_incomplete_head_asks_for_more() {
        assert!(matches!(
            parse_head(b"GET /ws?token=x HTTP/1.1\r\nHost: x\r\n"),
            Ok(None)
        ));
        assert!(matches!(parse_head(b"GET /ws?tok"), Ok(None)));
    }

    #[test]
    fn malformed_heads_are_refused_with_the_reason() {
        let invalid = |bytes: &[u8]| match parse_head(bytes) {
            Err(HeadError::Invalid(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert!(invalid(b"GET /ws HTTP/1.0\r\n\r\n").contains("HTTP/1.1"));
        assert!(invalid(b"GET /ws HTTP/1.1\r\nbad header\r\n\r\n").contains("malformed"));
        assert!(invalid(b"GET /ws HTTP/1.1\r\nx: \x01\r\n\r\n").contains("malformed"));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("h{i}: v\r\n")).collect();
        let bytes = format!("GET /ws HTTP/1.1\r\n{many}\r\n");
        assert!(invalid(bytes.as_bytes()).contains("headers"));
    }

    #[tokio::test]
    async fn a_refusal_is_poems_response_with_a_length() {
        let mut response = ApiError::RateLimited {
            retry_after: Duration::from_millis(1500),
        }
        .as_response();
        let bytes = response_head_with_length(&mut response).await;
        let text = String::from_utf8(bytes).expect("text");
        let (head, body) = text.split_once("\r\n\r\n").expect("a blank line");
        assert!(
            head.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nretry-after: 2"), "{head}");
        assert!(
            head.contains(&format!("\r\ncontent-length: {}", body.len())),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(body["code"], "rate_limited");
    }
}
