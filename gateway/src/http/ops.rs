//! `/healthz` (process up), `/readyz` (dependencies reachable, own canary coming
//! back through the bus, not draining),
//! `/metrics` (Prometheus text).

use std::sync::atomic::Ordering;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{IntoResponse, Response, handler};
use sea_orm::ConnectionTrait;

use crate::state::AppState;

#[handler]
pub async fn healthz() -> &'static str {
    "ok"
}

#[handler]
pub async fn readyz(state: Data<&AppState>) -> Response {
    if state.draining.load(Ordering::Relaxed) {
        return "draining"
            .with_status(StatusCode::SERVICE_UNAVAILABLE)
            .into_response();
    }
    let db_ok = state.db.execute_unprepared("SELECT 1").await.is_ok();
    let bus_ok = state.bus.is_connected();
    let canary_ok = state.canary.healthy();
    let redis_ok = match state.redis.clone() {
        Some(mut conn) => redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .is_ok(),
        None => true,
    };
    if db_ok && bus_ok && canary_ok && redis_ok {
        "ready".into_response()
    } else {
        format!(
            "not ready: database {}, redis {}, bus {}, canary {}",
            up(db_ok),
            up(redis_ok),
            up(bus_ok),
            up(canary_ok)
        )
        .with_status(StatusCode::SERVICE_UNAVAILABLE)
        .into_response()
    }
}

fn up(ok: bool) -> &'static str {
    if ok { "up" } else { "down" }
}

#[handler]
pub async fn metrics(state: Data<&AppState>) -> Response {
    state
        .metrics
        .render()
        .with_content_type("text/plain; version=0.0.4")
        .into_response()
}
