//! Rate-limit checks as `ApiError`s, with the key scheme of DESIGN section 5.

use infra::ratelimit::{Decision, Quota};

use crate::error::ApiError;
use crate::state::AppState;

/// `Ok` when allowed; `rate_limited` with the wait otherwise. `scope` is e.g.
/// `msg:<user id>`.
pub async fn check(state: &AppState, scope: &str, quota: Quota) -> Result<(), ApiError> {
    match state.limiter.check(scope, quota).await? {
        Decision::Allowed => Ok(()),
        Decision::Limited { retry_after } => {
            tracing::info!(target: "audit", event = "rate_limited", scope, retry_after_ms = retry_after.as_millis() as u64);
            Err(ApiError::RateLimited { retry_after })
        }
    }
}
