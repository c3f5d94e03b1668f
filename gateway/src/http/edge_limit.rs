//! Per-IP request limit at the edge with `governor` (the GCRA engine under
//! tower_governor, whose layer does not fit poem: see docs/deviations.md). Local to
//! each gateway; the shared per-user limits live behind `RateLimiter`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

use super::client_ip;
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
        if !exempt(req.uri().path())
            && let Some(ip) = client_ip(&req, self.limit.trust_forwarded_for)
                .and_then(|ip| ip.parse::<IpAddr>().ok())
            && let Err(not_until) = self.limit.limiter.check_key(&ip)
        {
            let retry_after: Duration = not_until.wait_time_from(DefaultClock::default().now());
            return Err(ApiError::RateLimited { retry_after }.into());
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}
