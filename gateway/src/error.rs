//! `ApiError`: the one error type of the gateway, mapped once to an HTTP status with a
//! `{code, message}` body and to a WebSocket `error` frame. Internal causes are logged
//! with their chain and shown to clients as a generic message.

use std::time::Duration;

use infra::bus::BusError;
use infra::db::DbError;
use infra::presence::PresenceError;
use infra::protocol::{ErrorCode, ServerFrame};
use infra::ratelimit::RateLimitError;
use infra::session::SessionError;
use infra::validate::InvalidInput;
use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::ToJSON;
use poem_openapi::{ApiResponse, Object};

type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    WrongPassword(String),
    #[error("too many requests; retry in {} ms", retry_after.as_millis())]
    RateLimited { retry_after: Duration },
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] Cause),
}

/// The JSON body of every REST error.
#[derive(Debug, Object)]
pub struct ErrorBody {
    /// Machine-readable code (`bad_request`, `unauthorized`, `forbidden`, ...).
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn internal(cause: impl Into<Cause>) -> Self {
        let cause = cause.into();
        tracing::error!(error = %cause, source = ?cause.source(), "internal error");
        ApiError::Internal(cause)
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest(_) => ErrorCode::BadRequest,
            ApiError::Unauthorized(_) => ErrorCode::Unauthorized,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::WrongPassword(_) => ErrorCode::WrongPassword,
            ApiError::RateLimited { .. } => ErrorCode::RateLimited,
            ApiError::TooLarge(_) => ErrorCode::TooLarge,
            ApiError::Conflict(_) => ErrorCode::Conflict,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::WrongPassword(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// The WebSocket form of this error.
    pub fn to_frame(&self, reference: Option<String>) -> ServerFrame {
        ServerFrame::Error {
            reference,
            code: self.code(),
            message: self.to_string(),
            retry_after_ms: self.retry_after().map(|d| d.as_millis().max(1) as u64),
        }
    }
}

/// JSON error response for any status (also used for poem's own errors).
pub fn error_response(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    let body = ErrorBody {
        code: code.as_str().to_string(),
        message: message.to_string(),
    };
    let json = body.to_json_string();
    json.with_status(status)
        .with_content_type("application/json; charset=utf-8")
        .into_response()
}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        ApiError::status(self)
    }

    fn as_response(&self) -> Response {
        let mut response = error_response(self.status(), self.code(), &self.to_string());
        if let Some(retry) = self.retry_after() {
            let secs = retry.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(value) = secs.to_string().parse() {
                response.headers_mut().insert("retry-after", value);
            }
        }
        response
    }
}

impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        let statuses: [(u16, &'static str); 9] = [
            (400, "Bad input (`bad_request`)"),
            (401, "Missing or invalid credentials (`unauthorized`)"),
            (403, "Not allowed (`forbidden`, `wrong_password`)"),
            (404, "Unknown resource (`not_found`)"),
            (409, "Conflict (`conflict`)"),
            (413, "Too large (`too_large`)"),
            (429, "Rate limited (`rate_limited`, with Retry-After)"),
            (500, "Internal error"),
            (503, "A dependency is unavailable (`unavailable`)"),
        ];
        MetaResponses {
            responses: statuses
                .into_iter()
                .map(|(status, description)| MetaResponse {
                    description,
                    status: Some(status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: "application/json; charset=utf-8",
                        schema: <ErrorBody as poem_openapi::types::Type>::schema_ref(),
                    }],
                    headers: Vec::new(),
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        <ErrorBody as poem_openapi::types::Type>::register(registry);
    }
}

impl From<InvalidInput> for ApiError {
    fn from(e: InvalidInput) -> Self {
        match e {
            InvalidInput::Bad(m) => ApiError::BadRequest(m),
            InvalidInput::TooLarge(m) => ApiError::TooLarge(m),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Conflict => ApiError::Conflict("already exists".into()),
            other => ApiError::internal(other),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        tracing::warn!(error = %e, "session store");
        ApiError::Unavailable("session store unavailable".into())
    }
}

impl From<PresenceError> for ApiError {
    fn from(e: PresenceError) -> Self {
        tracing::warn!(error = %e, "presence store");
        ApiError::Unavailable("presence unavailable".into())
    }
}

impl From<RateLimitError> for ApiError {
    fn from(e: RateLimitError) -> Self {
        tracing::warn!(error = %e, "rate limiter");
        ApiError::Unavailable("rate limiter unavailable".into())
    }
}

impl From<BusError> for ApiError {
    fn from(e: BusError) -> Self {
        tracing::warn!(error = %e, "bus");
        ApiError::Unavailable("message bus unavailable; retry".into())
    }
}

impl From<infra::auth::PasswordError> for ApiError {
    fn from(e: infra::auth::PasswordError) -> Self {
        ApiError::internal(e)
    }
}

impl From<infra::auth::TokenError> for ApiError {
    fn from(e: infra::auth::TokenError) -> Self {
        match e {
            infra::auth::TokenError::Invalid => {
                ApiError::Unauthorized("invalid or expired token".into())
            }
            e @ infra::auth::TokenError::Sign(_) => ApiError::internal(e),
        }
    }
}
