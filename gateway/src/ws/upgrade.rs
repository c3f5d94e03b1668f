//! `GET /ws`: the checks before a socket exists, and the upgrade through poem. Refused
//! upgrades get a plain HTTP error: not a WebSocket handshake (400), draining (503), a
//! foreign `Origin` (403), an invalid `?token=` (401). Most upgrades do not come
//! through poem: see `ws::direct`.
//!
//! The handshake is done here on top of tokio-tungstenite rather than with poem's
//! `WebSocket` extractor: that one keeps the request's `Sec-WebSocket-Key` (and with
//! it hyper's whole request read buffer) alive for the socket's lifetime, and its
//! message type makes every shared frame a per-socket `String` copy.

use std::sync::atomic::Ordering;

use infra::config::Settings;
use poem::error::ResponseError;
use poem::http::{HeaderMap, Method, StatusCode, header};
use poem::web::Data;
use poem::{Request, Response, handler};
use serde::Deserialize;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::connection;
use crate::auth::{AuthUser, authenticate_token};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
struct WsQuery {
    token: Option<String>,
}

/// Browsers always send `Origin`; non-browser clients may not and are allowed.
/// With no configured list only the gateway's own host is allowed.
pub fn origin_allowed(settings: &Settings, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if !settings.allowed_origins.is_empty() {
        return settings
            .allowed_origins
            .iter()
            .any(|allowed| allowed == origin);
    }
    let host = headers.get("host").and_then(|v| v.to_str().ok());
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'));
    matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
}

const WRITE_BUFFER_BYTES: usize = 8 * 1024;

pub fn ws_config(settings: &Settings) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(settings.ws_read_buffer_bytes)
        // Frames gather up to this much before a write; the writer flushes per batch.
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(settings.ws_max_write_buffer_bytes)
        .max_message_size(Some(settings.max_frame_bytes))
        .max_frame_size(Some(settings.max_frame_bytes))
}

/// `Sec-WebSocket-Accept` for a valid WebSocket handshake request (RFC 6455 4.2.1).
fn handshake_accept(method: &Method, headers: &HeaderMap) -> Result<String, &'static str> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    if method != Method::GET
        || !has_token(header::UPGRADE, "websocket")
        || !has_token(header::CONNECTION, "upgrade")
    {
        return Err("not a WebSocket handshake: GET with Upgrade: websocket expected");
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err("unsupported WebSocket version: Sec-WebSocket-Version 13 expected");
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or("Sec-WebSocket-Key missing")?;
    Ok(derive_accept_key(key.as_bytes()))
}

/// What an upgrade request got past [`admit`] with.
pub struct Admitted {
    /// `Sec-WebSocket-Accept`.
    pub accept: String,
    /// Authenticated by `?token=`; `None`: the first frame must be `auth`.
    pub user: Option<AuthUser>,
}

/// The checks every upgrade passes, through poem or directly (`ws::direct`), in this
/// order: a valid handshake (400), not draining (503), an allowed `Origin` (403), a
/// valid `?token=` when there is one (401). Refusals are counted in the metrics.
pub async fn admit(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Admitted, ApiError> {
    let checked = check(state, method, headers, query).await;
    if let Err(e) = &checked {
        state.metrics.error(e.code());
    }
    checked
}

async fn check(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Admitted, ApiError> {
    let accept = handshake_accept(method, headers).map_err(|m| ApiError::BadRequest(m.into()))?;
    if state.draining.load(Ordering::Relaxed) {
        return Err(ApiError::Unavailable(
            "draining: connect to another gateway".into(),
        ));
    }
    if !origin_allowed(&state.settings, headers) {
        return Err(ApiError::Forbidden("origin not allowed".into()));
    }
    let query: WsQuery = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| ApiError::BadRequest(format!("invalid query string: {e}")))?;
    let user = match query.token.as_deref() {
        Some(token) => Some(authenticate_token(state, token).await?),
        None => None,
    };
    Ok(Admitted { accept, user })
}

/// The `101` that accepts an upgrade.
pub fn switching_protocols(accept: &str) -> Response {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .finish()
}

/// An upgrade that came through poem: one on a kept-alive connection, whose first
/// request was something else (`http::acceptor` sends the others directly).
#[handler]
pub async fn ws_handler(req: &Request, state: Data<&AppState>) -> Response {
    let state = state.0.clone();
    let admitted = match admit(&state, req.method(), req.headers(), req.uri().query()).await {
        Ok(admitted) => admitted,
        Err(e) => return e.as_response(),
    };
    let Ok(on_upgrade) = req.take_upgrade() else {
        let e = ApiError::BadRequest("this connection cannot be upgraded".into());
        state.metrics.error(e.code());
        return e.as_response();
    };
    let config = ws_config(&state.settings);
    // Everything the socket keeps goes into one box: the task's own future stays a
    // few words while the socket is idle.
    let pending = Box::new(connection::Pending {
        state,
        user: admitted.user,
    });
    tokio::spawn(connection::serve(
        connection::Upgrade::Poem(on_upgrade),
        config,
        pending,
    ));
    switching_protocols(&admitted.accept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn the_accept_key_follows_rfc_6455() {
        let h = headers(&[
            ("upgrade", "WebSocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        assert_eq!(
            handshake_accept(&Method::GET, &h).as_deref(),
            Ok("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
        assert!(handshake_accept(&Method::POST, &h).is_err());
    }

    #[test]
    fn incomplete_handshakes_are_refused() {
        let full = [
            ("upgrade", "websocket"),
            ("connection", "upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        for missing in 0..full.len() {
            let partial: Vec<_> = full
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != missing)
                .map(|(_, pair)| *pair)
                .collect();
            assert!(
                handshake_accept(&Method::GET, &headers(&partial)).is_err(),
                "without {}",
                full[missing].0
            );
        }
        let old = headers(&[
            ("upgrade", "websocket"),
            ("connection", "upgrade"),
            ("sec-websocket-version", "8"),
            ("sec-websocket-key", "x"),
        ]);
        assert!(handshake_accept(&Method::GET, &old).is_err());
    }
}
