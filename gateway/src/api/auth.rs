//! `POST /api/auth/register|login|refresh|logout`.

use chrono::Utc;
use infra::auth::{RefreshToken, hash_password, verify_password};
use infra::bus::{BusEvent, Topic};
use infra::db::{audit, users};
use infra::session::{Rotation, SessionRecord};
use infra::validate::{Password, Username};
use poem::Request;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{ApiTags, UserView};
use crate::chat::limits;
use crate::error::ApiError;
use crate::http::client_ip;
use crate::state::AppState;

#[derive(Debug, Object)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Object)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Object)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub session_id: uuid::Uuid,
    pub user: UserView,
}

#[derive(ApiResponse)]
pub enum Registered {
    #[oai(status = 201)]
    Created(Json<UserView>),
}

#[derive(ApiResponse)]
pub enum LoggedOut {
    #[oai(status = 204)]
    NoContent,
}

pub struct AuthApi;

/// Unknown user and wrong password must look the same.
fn bad_credentials() -> ApiError {
    ApiError::Unauthorized("wrong username or password".into())
}

fn user_agent(req: &Request) -> Option<String> {
    req.headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect())
}

impl AuthApi {
    async fn issue(
        state: &AppState,
        user: &users::User,
        session_id: uuid::Uuid,
        refresh: &RefreshToken,
    ) -> Result<TokenPair, ApiError> {
        Ok(TokenPair {
            access_token: state.jwt.issue(user.id, session_id, &user.username)?,
            refresh_token: refresh.to_token(),
            expires_in: state.jwt.ttl().as_secs(),
            session_id,
            user: UserView {
                id: user.id,
                username: user.username.clone(),
            },
        })
    }
}

#[OpenApi(prefix_path = "/auth", tag = "ApiTags::Auth")]
impl AuthApi {
    /// Create an account.
    #[oai(path = "/register", method = "post")]
    async fn register(
        &self,
        state: Data<&AppState>,
        body: Json<Credentials>,
    ) -> Result<Registered, ApiError> {
        let username = Username::parse(&body.username)?;
        let password = Password::parse(&body.password)?;
        let hash = hash_password(password.expose(), state.settings.bcrypt_cost).await?;
        let user = users::create(&state.db, &username, hash)
            .await
            .map_err(|e| match e {
                infra::db::DbError::Conflict => {
                    ApiError::Conflict(format!("username `{}` is taken", username.as_str()))
                }
                e => e.into(),
            })?;
        Ok(Registered::Created(Json(UserView {
            id: user.id,
            username: user.username,
        })))
    }

    /// Sign in: a new session with an access token and a refresh token.
    #[oai(path = "/login", method = "post")]
    async fn login(
        &self,
        req: &Request,
        state: Data<&AppState>,
        body: Json<Credentials>,
    ) -> Result<Json<TokenPair>, ApiError> {
        let ip = client_ip(req, state.settings.trust_forwarded_for);
        let ip_key = ip.as_deref().unwrap_or("unknown");
        limits::check(&state, &format!("login:{ip_key}"), state.quotas.login_ip).await?;
        limits::check(
            &state,
            &format!("login_user:{}", body.username.to_lowercase()),
            state.quotas.login_user,
        )
        .await?;
        let user = users::by_username(&state.db, &body.username).await?;
        let verified = match &user {
            Some(user) => verify_password(&body.password, &user.password_hash).await?,
            None => false,
        };
        let Some(user) = user.filter(|_| verified) else {
            audit::record(&state.db, "login_failed", None, ip.as_deref(), serde_json::json!({ "username": body.username.chars().take(64).collect::<String>() })).await?;
            return Err(bad_credentials());
        };
        let session_id = uuid::Uuid::new_v4();
        let refresh = RefreshToken::generate(session_id);
        let now = Utc::now();
        state
            .sessions
            .create(
                SessionRecord {
                    id: session_id,
                    user_id: user.id,
                    created_at: now,
                    last_seen: now,
                    ip: ip.clone(),
                    user_agent: user_agent(req),
                    refresh_hash: refresh.hash(),
                },
                state.settings.refresh_token_ttl(),
            )
            .await?;
        audit::record(
            &state.db,
            "login",
            Some(user.id),
            ip.as_deref(),
            serde_json::json!({ "session_id": session_id }),
        )
        .await?;
        Ok(Json(
            Self::issue(&state, &user, session_id, &refresh).await?,
        ))
    }

    /// Exchange a refresh token for a new pair. The old refresh token stops working;
    /// presenting it again revokes the whole session.
    #[oai(path = "/refresh", method = "post")]
    async fn refresh(
        &self,
        state: Data<&AppState>,
        body: Json<RefreshRequest>,
    ) -> Result<Json<TokenPair>, ApiError> {
        let presented = RefreshToken::parse(&body.refresh_token)
            .ok_or_else(|| ApiError::Unauthorized("invalid refresh token".into()))?;
        let next = RefreshToken::generate(presented.session_id);
        match state
            .sessions
            .rotate_refresh(
                presented.session_id,
                &presented.hash(),
                &next.hash(),
                state.settings.refresh_token_ttl(),
            )
            .await?
        {
            Rotation::Rotated(session) => {
                let user = users::by_id(&state.db, session.user_id)
                    .await?
                    .ok_or_else(|| ApiError::Unauthorized("account no longer exists".into()))?;
                Ok(Json(Self::issue(&state, &user, session.id, &next).await?))
            }
            Rotation::Reused => {
                let session = state.sessions.get(presented.session_id).await?;
                revoke(&state, presented.session_id).await?;
                audit::record(
                    &state.db,
                    "refresh_token_reused",
                    session.map(|s| s.user_id),
                    None,
                    serde_json::json!({ "session_id": presented.session_id }),
                )
                .await?;
                Err(ApiError::Unauthorized(
                    "refresh token reused: the session is revoked".into(),
                ))
            }
            Rotation::Missing => Err(ApiError::Unauthorized(
                "session ended; sign in again".into(),
            )),
        }
    }

    /// End the session of this refresh token; its sockets close with 4001.
    #[oai(path = "/logout", method = "post")]
    async fn logout(
        &self,
        state: Data<&AppState>,
        body: Json<RefreshRequest>,
    ) -> Result<LoggedOut, ApiError> {
        let presented = RefreshToken::parse(&body.refresh_token)
            .ok_or_else(|| ApiError::Unauthorized("invalid refresh token".into()))?;
        let session = state
            .sessions
            .get(presented.session_id)
            .await?
            .filter(|s| s.refresh_hash == presented.hash())
            .ok_or_else(|| ApiError::Unauthorized("invalid refresh token".into()))?;
        revoke(&state, session.id).await?;
        audit::record(
            &state.db,
            "logout",
            Some(session.user_id),
            None,
            serde_json::json!({ "session_id": session.id }),
        )
        .await?;
        Ok(LoggedOut::NoContent)
    }
}

/// Deletes the session and tells every gateway to close its sockets (4001).
pub async fn revoke(state: &AppState, session_id: uuid::Uuid) -> Result<bool, ApiError> {
    let existed = state.sessions.delete(session_id).await?;
    state
        .bus
        .emit(
            Topic::Session(session_id),
            BusEvent::SessionRevoked { session_id },
        )
        .await?;
    Ok(existed)
}
