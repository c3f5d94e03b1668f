//! The REST API (poem-openapi): spec at `/api/openapi.json`, UI at `/api/docs`.

pub mod account;
pub mod auth;
pub mod rooms;

use poem_openapi::{Object, OpenApiService, Tags};

#[derive(Tags)]
pub enum ApiTags {
    /// Registration, login, token refresh, logout.
    Auth,
    /// The signed-in user and their sessions.
    Account,
    /// Rooms, their history and presence.
    Rooms,
}

/// `{id, username}`
#[derive(Debug, Clone, Object)]
pub struct UserView {
    pub id: uuid::Uuid,
    pub username: String,
}

pub type Api = (auth::AuthApi, account::AccountApi, rooms::RoomsApi);

pub fn service() -> OpenApiService<Api, ()> {
    OpenApiService::new(
        (auth::AuthApi, account::AccountApi, rooms::RoomsApi),
        "ChatX",
        env!("CARGO_PKG_VERSION"),
    )
    .url_prefix("/api")
}
