//! `GET /api/me`, `GET /api/sessions`, `DELETE /api/sessions/{id}`.

use infra::db::{audit, users};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::{ApiTags, UserView};
use crate::auth::BearerAuth;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Object)]
pub struct SessionView {
    pub id: Uuid,
    pub created_at: String,
    pub last_seen: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// This request's own session.
    pub current: bool,
}

#[derive(Debug, Object)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
}

#[derive(ApiResponse)]
pub enum Revoked {
    #[oai(status = 204)]
    NoContent,
}

pub struct AccountApi;

#[OpenApi(tag = "ApiTags::Account")]
impl AccountApi {
    /// The signed-in user.
    #[oai(path = "/me", method = "get")]
    async fn me(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
    ) -> Result<Json<UserView>, ApiError> {
        let user = users::by_id(&state.db, auth.0.user_id)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("account no longer exists".into()))?;
        Ok(Json(UserView {
            id: user.id,
            username: user.username,
        }))
    }

    /// The user's live sessions.
    #[oai(path = "/sessions", method = "get")]
    async fn sessions(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
    ) -> Result<Json<SessionList>, ApiError> {
        let sessions = state.sessions.list_for_user(auth.0.user_id).await?;
        Ok(Json(SessionList {
            sessions: sessions
                .into_iter()
                .map(|s| SessionView {
                    current: s.id == auth.0.session_id,
                    id: s.id,
                    created_at: infra::protocol::timestamp(s.created_at),
                    last_seen: infra::protocol::timestamp(s.last_seen),
                    ip: s.ip,
                    user_agent: s.user_agent,
                })
                .collect(),
        }))
    }

    /// Revoke one of the user's sessions: its refresh token dies and its sockets close
    /// with 4001.
    #[oai(path = "/sessions/:id", method = "delete")]
    async fn revoke(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> Result<Revoked, ApiError> {
        let owned = state
            .sessions
            .get(id.0)
            .await?
            .is_some_and(|s| s.user_id == auth.0.user_id);
        if !owned {
            return Err(ApiError::NotFound("no such session".into()));
        }
        super::auth::revoke(&state, id.0).await?;
        audit::record(
            &state.db,
            "session_revoked",
            Some(auth.0.user_id),
            None,
            serde_json::json!({ "session_id": id.0 }),
        )
        .await?;
        Ok(Revoked::NoContent)
    }
}
