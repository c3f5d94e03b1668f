//! Drain (DESIGN section 9): readiness goes 503 and upgrades are refused at once; each
//! socket gets a `reconnect` notice, spread evenly over the drain window so clients do
//! not stampede the remaining gateways, and is then closed (1012 service restart).

use std::sync::atomic::Ordering;
use std::time::Duration;

use infra::protocol::ServerFrame;

use crate::state::AppState;
use crate::ws::outbound::Outbound;

/// Close code "service restart": the client reconnects (elsewhere) and resumes.
pub const CLOSE_RESTART: u16 = 1012;

pub async fn drain(state: &AppState, window: Duration) {
    state.draining.store(true, Ordering::Relaxed);
    let conns = state.hub.connections();
    let count = conns.len().max(1) as u32;
    let step = window / count;
    tracing::info!(
        sockets = conns.len(),
        window_ms = window.as_millis() as u64,
        "draining"
    );
    for conn in conns {
        let notice = ServerFrame::Reconnect {
            reason: "server shutting down".into(),
            after_ms: 0,
        };
        conn.send(Outbound::text(notice.to_text()));
        conn.close(CLOSE_RESTART, "server shutting down: reconnect");
        tokio::time::sleep(step).await;
    }
    // Let the last writers flush their close frames.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while state.metrics.ws_connections.load(Ordering::Relaxed) > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
