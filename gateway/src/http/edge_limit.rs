//! Per-IP request limit at the edge with `governor` (the GCRA engine under
//! tower_governor, whose layer does not fit poem: see docs/deviations.md). Local to
//! each gateway; the shared per-user limits live behind `RateLimiter`.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use poem::http::HeaderMap;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

use super::client_ip_of;
use crate::error::ApiError;

#[derive(Clone)]
pub struct EdgeLimit {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    trust_forwarded_for: bool,
}

impl EdgeLimit {
    pub fn new(per_sec: u32, burst: u32, trust_forwarded_for: bool) -> Self {
        let quota = Quota::per_second(NonZeroU32::new(per_sec).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        Self {
            limiter: Arc::new(RateLimiter::keyed(quota)),
            trust_forwarded_for,
        }
    }

    /// Whether one more request from this client is allowed now. Used by the
    /// middleware and by the WebSocket upgrades that bypass poem.
    pub fn check(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Result<(), ApiError> {
        let Some(ip) = client_ip_of(headers, peer, self.trust_forwarded_for)
            .and_then(|ip| ip.parse::<IpAddr>().ok())
        else {
            return Ok(());
        };
        self.limiter.check_key(&ip).map_err(|not_until| {
            let retry_after: Duration = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::RateLimited { retry_after }
        })
    }

    /// Drops state of IPs whose allowance is full again; called periodically.
    pub fn prune(&self) {
        self.limiter.retain_recent();
    }
}

/// Paths that are never limited: probes and the static web client.
fn exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
        || !(path.starts_with("/api") || path == "/ws")
}

impl<E: Endpoint> Middleware<E> for EdgeLimit {
    type Output = EdgeLimitEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        EdgeLimitEndpoint {
            inner: ep,
            limit: self.clone(),
        }
    }
}

pub struct EdgeLimitEndpoint<E> {
    inner: E,
    limit: EdgeLimit,
}

impl<E: Endpoint> Endpoint for EdgeLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        if !exempt(req.uri().path()) {
            let peer = req.remote_addr().as_socket_addr().copied();
            self.limit.check(req.headers(), peer)?;
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}
