//! `GET /ws`: the checks before a socket exists. Refused upgrades get a plain HTTP
//! error: draining (503), a foreign `Origin` (403), an invalid `?token=` (401).

use infra::config::Settings;
use poem::http::{HeaderMap, StatusCode};
use poem::web::websocket::{WebSocket, WebSocketConfig};
use poem::web::{Data, Query};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;
use std::sync::atomic::Ordering;

use super::connection::{self, ConnMeta};
use crate::auth::authenticate_token;
use crate::error::error_response;
use crate::http::client_ip;
use crate::state::AppState;
use infra::protocol::ErrorCode;

#[derive(Deserialize)]
pub struct WsQuery {
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

#[handler]
pub async fn ws_handler(
    req: &Request,
    ws: WebSocket,
    Query(query): Query<WsQuery>,
    state: Data<&AppState>,
) -> Response {
    let state = state.0.clone();
    if state.draining.load(Ordering::Relaxed) {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "draining: connect to another gateway",
        );
    }
    if !origin_allowed(&state.settings, req.headers()) {
        state.metrics.error(ErrorCode::Forbidden);
        return error_response(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "origin not allowed",
        );
    }
    let user = match query.token.as_deref() {
        Some(token) => match authenticate_token(&state, token).await {
            Ok(user) => Some(user),
            Err(e) => {
                state.metrics.error(e.code());
                return poem::error::ResponseError::as_response(&e);
            }
        },
        None => None,
    };
    let meta = ConnMeta {
        ip: client_ip(req, state.settings.trust_forwarded_for),
    };
    let config = ws_config(&state.settings);
    ws.config(config)
        .on_upgrade(move |socket| connection::serve(socket, state, user, meta))
        .into_response()
}
