//! Authentication of requests and sockets: a valid access JWT whose session still
//! exists (logout and revocation take effect at once, not at token expiry).

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: Uuid,
    pub username: String,
    pub session_id: Uuid,
    /// The session's last recorded activity (as read while authenticating).
    pub last_seen: chrono::DateTime<chrono::Utc>,
}

pub async fn authenticate_token(state: &AppState, token: &str) -> Result<AuthUser, ApiError> {
    let claims = state.jwt.verify(token)?;
    match state.sessions.get(claims.sid).await? {
        Some(session) if session.user_id == claims.sub => Ok(AuthUser {
            user_id: claims.sub,
            username: claims.name,
            session_id: claims.sid,
            last_seen: session.last_seen,
        }),
        _ => Err(ApiError::Unauthorized(
            "session ended; sign in again".into(),
        )),
    }
}

/// `Authorization: Bearer <access token>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_bearer")]
pub struct BearerAuth(pub AuthUser);

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<AuthUser> {
    let state = req
        .data::<AppState>()
        .ok_or_else(|| poem::Error::from(ApiError::internal("application state missing")))?;
    authenticate_token(state, &bearer.token)
        .await
        .map_err(poem::Error::from)
}
