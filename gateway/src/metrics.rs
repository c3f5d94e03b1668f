//! Prometheus metrics, rendered by hand: a handful of atomics needs no registry crate.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use infra::protocol::ErrorCode;

#[derive(Default)]
pub struct Metrics {
    pub ws_connections: AtomicI64,
    pub ws_connections_total: AtomicU64,
    pub messages_received: AtomicU64,
    pub messages_delivered: AtomicU64,
    pub slow_consumers: AtomicU64,
    errors: [AtomicU64; ErrorCode::ALL.len()],
}

impl Metrics {
    pub fn error(&self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|c| *c == code) {
            self.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "chatx_ws_connections",
            "gauge",
            "Open WebSocket connections.",
            self.ws_connections.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "chatx_ws_connections_total",
            "counter",
            "WebSocket connections accepted.",
            self.ws_connections_total
                .load(Ordering::Relaxed)
                .to_string(),
        );
        metric(
            "chatx_messages_received_total",
            "counter",
            "Chat messages acknowledged to their senders.",
            self.messages_received.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "chatx_messages_delivered_total",
            "counter",
            "Chat messages queued to sockets.",
            self.messages_delivered.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "chatx_slow_consumers_total",
            "counter",
            "Sockets closed because their outbound queue overflowed.",
            self.slow_consumers.load(Ordering::Relaxed).to_string(),
        );
        let _ = writeln!(
            out,
            "# HELP chatx_errors_total Errors answered to clients, by code.\n# TYPE chatx_errors_total counter"
        );
        for (code, count) in ErrorCode::ALL.iter().zip(&self.errors) {
            let _ = writeln!(
                out,
                "chatx_errors_total{{code=\"{}\"}} {}",
                code.as_str(),
                count.load(Ordering::Relaxed)
            );
        }
        out
    }
}
