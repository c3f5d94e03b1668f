//! `AppState`: the one `Clone` handle every handler gets.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use infra::auth::JwtKeys;
use infra::bus::Bus;
use infra::config::Settings;
use infra::db::Db;
use infra::presence::Presence;
use infra::ratelimit::{Quota, RateLimiter};
use infra::session::SessionStore;

use crate::http::canary::Canary;
use crate::metrics::Metrics;
use crate::ws::hub::Hub;

/// A pointer to the gateway's shared parts: every socket holds a few clones, so a
/// clone is one reference count, not a copy of the (~600-byte) parts.
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl AppState {
    pub fn new(parts: AppParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;
    fn deref(&self) -> &AppParts {
        &self.0
    }
}

pub struct AppParts {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub bus: Arc<dyn Bus>,
    pub sessions: Arc<dyn SessionStore>,
    pub presence: Arc<dyn Presence>,
    pub limiter: Arc<dyn RateLimiter>,
    pub jwt: JwtKeys,
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    /// Set on SIGTERM: readiness fails and new upgrades are refused.
    pub draining: Arc<AtomicBool>,
    pub quotas: Quotas,
    /// This gateway's proof that its bus path delivers (readiness).
    pub canary: Arc<Canary>,
    /// Redis (distributed mode), pinged by `/readyz`.
    pub redis: Option<redis::aio::ConnectionManager>,
}

/// The configured rate limits, built once.
#[derive(Clone, Copy, Debug)]
pub struct Quotas {
    pub message: Quota,
    pub join: Quota,
    pub login_ip: Quota,
    pub login_user: Quota,
    pub room_password: Quota,
}

impl Quotas {
    pub fn from_settings(s: &Settings) -> Self {
        use std::time::Duration;
        let sec = Duration::from_secs(1);
        let min = Duration::from_secs(60);
        Self {
            message: Quota::per(s.rate_msg_per_sec, sec, s.rate_msg_burst),
            join: Quota::per(s.rate_join_per_sec, sec, s.rate_join_burst),
            login_ip: Quota::per(s.rate_login_ip_per_min, min, s.rate_login_ip_burst),
            login_user: Quota::per(s.rate_login_user_per_min, min, s.rate_login_user_burst),
            room_password: Quota::per(
                s.rate_room_password_per_min,
                min,
                s.rate_room_password_burst,
            ),
        }
    }
}
