//! `/api/rooms`: create, list, get, delete, presence, history.

use infra::auth::hash_password;
use infra::bus::{BusEvent, Topic};
use infra::db::messages::{HistoryQuery, MAX_PAGE};
use infra::db::rooms::{self, RoomKind};
use infra::db::{audit, users};
use infra::protocol::{MessageView, timestamp};
use infra::validate::{Password, RoomName};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use uuid::Uuid;

use super::{ApiTags, UserView};
use crate::auth::BearerAuth;
use crate::chat::{access, history, presence};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Kind {
    Public,
    Private,
}

#[derive(Debug, Object)]
pub struct CreateRoom {
    pub name: String,
    pub kind: Kind,
    /// Required for private rooms, refused for public ones.
    pub password: Option<String>,
}

/// A room as clients see it (never its password hash).
#[derive(Debug, Object)]
pub struct RoomView {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub owner_id: Option<Uuid>,
    pub created_at: String,
}

impl From<&rooms::Room> for RoomView {
    fn from(r: &rooms::Room) -> Self {
        Self {
            id: r.id,
            name: r.name.clone(),
            kind: r.kind.clone(),
            owner_id: r.owner_id,
            created_at: timestamp(r.created_at),
        }
    }
}

#[derive(Debug, Object)]
pub struct RoomList {
    pub rooms: Vec<RoomView>,
}

#[derive(Debug, Object)]
pub struct PresenceList {
    pub users: Vec<UserView>,
    /// Present when more users follow: pass it as `after` for the next page.
    #[oai(skip_serializing_if_is_none)]
    pub next: Option<Uuid>,
}

/// A message in a history page.
#[derive(Debug, Object)]
pub struct MessageItem {
    pub room: String,
    pub id: Uuid,
    pub seq: u64,
    pub user: UserView,
    pub body: String,
    pub ts: String,
    pub client_msg_id: String,
}

impl From<MessageView> for MessageItem {
    fn from(m: MessageView) -> Self {
        Self {
            room: m.room,
            id: m.id,
            seq: m.seq,
            user: UserView {
                id: m.user.id,
                username: m.user.username,
            },
            body: m.body,
            ts: m.ts,
            client_msg_id: m.client_msg_id,
        }
    }
}

#[derive(Debug, Object)]
pub struct MessagePage {
    /// Oldest first.
    pub messages: Vec<MessageItem>,
    pub has_more: bool,
}

#[derive(ApiResponse)]
pub enum Created {
    #[oai(status = 201)]
    Room(Json<RoomView>),
}

#[derive(ApiResponse)]
pub enum Deleted {
    #[oai(status = 204)]
    NoContent,
}

pub struct RoomsApi;

#[OpenApi(prefix_path = "/rooms", tag = "ApiTags::Rooms")]
impl RoomsApi {
    /// Public rooms and the private rooms the user is a member of.
    #[oai(path = "/", method = "get")]
    async fn list(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
    ) -> Result<Json<RoomList>, ApiError> {
        let rooms = rooms::list_visible(&state.db, auth.0.user_id).await?;
        Ok(Json(RoomList {
            rooms: rooms.iter().map(RoomView::from).collect(),
        }))
    }

    /// Create a room; private rooms need a password, and the creator owns the room.
    #[oai(path = "/", method = "post")]
    async fn create(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        body: Json<CreateRoom>,
    ) -> Result<Created, ApiError> {
        let name = RoomName::parse(&body.name)?;
        let (kind, password_hash) = match (body.kind, body.password.as_deref()) {
            (Kind::Public, None) => (RoomKind::Public, None),
            (Kind::Public, Some(_)) => {
                return Err(ApiError::BadRequest("public rooms have no password".into()));
            }
            (Kind::Private, None) => {
                return Err(ApiError::BadRequest("private rooms need a password".into()));
            }
            (Kind::Private, Some(p)) => {
                let password = Password::parse(p)?;
                (
                    RoomKind::Private,
                    Some(hash_password(password.expose(), state.settings.bcrypt_cost).await?),
                )
            }
        };
        let room = rooms::create(&state.db, &name, kind, password_hash, Some(auth.0.user_id))
            .await
            .map_err(|e| match e {
                infra::db::DbError::Conflict => {
                    ApiError::Conflict(format!("a room named `{name}` exists"))
                }
                e => e.into(),
            })?;
        Ok(Created::Room(Json(RoomView::from(&room))))
    }

    /// One room (private rooms: members only).
    #[oai(path = "/:name", method = "get")]
    async fn get(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        name: Path<String>,
    ) -> Result<Json<RoomView>, ApiError> {
        let room = access::readable(&state, &name.0, auth.0.user_id).await?;
        Ok(Json(RoomView::from(&room)))
    }

    /// Delete a room (owner only). Members get `room_deleted`.
    #[oai(path = "/:name", method = "delete")]
    async fn delete(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        name: Path<String>,
    ) -> Result<Deleted, ApiError> {
        let room = access::find(&state, &name.0).await?;
        if room.owner_id != Some(auth.0.user_id) {
            return Err(ApiError::Forbidden(
                "only the room's owner may delete it".into(),
            ));
        }
        rooms::delete(&state.db, room.id).await?;
        state
            .bus
            .emit(
                Topic::RoomControl(room.id),
                BusEvent::RoomDeleted {
                    room: room.id,
                    name: room.name.clone(),
                },
            )
            .await?;
        audit::record(
            &state.db,
            "room_deleted",
            Some(auth.0.user_id),
            None,
            serde_json::json!({ "room": room.name }),
        )
        .await?;
        Ok(Deleted::NoContent)
    }

    /// Users online in the room (private rooms: members only), a page at a time:
    /// `limit` users (default and cap 1000) whose id sorts after `after`, sorted by name
    /// within the page; `next` is the `after` of the next page.
    #[oai(path = "/:name/presence", method = "get")]
    async fn presence(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        name: Path<String>,
        after: Query<Option<Uuid>>,
        limit: Query<Option<u64>>,
    ) -> Result<Json<PresenceList>, ApiError> {
        let room = access::readable(&state, &name.0, auth.0.user_id).await?;
        let max = presence::MAX_PAGE as u64;
        let limit = limit.0.map_or(max, |l| l.clamp(1, max)) as usize;
        let (users, next) = presence::room_users_page(&state, room.id, after.0, limit).await?;
        Ok(Json(PresenceList {
            users: users
                .into_iter()
                .map(|u| UserView {
                    id: u.id,
                    username: u.username,
                })
                .collect(),
            next,
        }))
    }

    /// History, oldest first. `before`/`after` are exclusive seqs; `user` filters by
    /// author name; `q` is a case-insensitive substring; `limit` is capped at 100.
    #[oai(path = "/:name/messages", method = "get")]
    #[allow(clippy::too_many_arguments)]
    async fn messages(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        name: Path<String>,
        before: Query<Option<u64>>,
        after: Query<Option<u64>>,
        user: Query<Option<String>>,
        q: Query<Option<String>>,
        limit: Query<Option<u64>>,
    ) -> Result<Json<MessagePage>, ApiError> {
        let room = access::readable(&state, &name.0, auth.0.user_id).await?;
        let author = match user.0.as_deref() {
            Some(username) => match users::by_username(&state.db, username).await? {
                Some(u) => Some(u.id),
                None => {
                    return Ok(Json(MessagePage {
                        messages: Vec::new(),
                        has_more: false,
                    }));
                }
            },
            None => None,
        };
        if q.0.as_ref().is_some_and(|q| q.len() > 256) {
            return Err(ApiError::BadRequest("q must be at most 256 bytes".into()));
        }
        let query = HistoryQuery {
            before: before.0,
            after: after.0,
            user: author,
            text: q.0,
            limit: limit.0.unwrap_or(50).clamp(1, MAX_PAGE),
        };
        let (messages, has_more) = history::page(&state, room.id, &room.name, &query).await?;
        Ok(Json(MessagePage {
            messages: messages.into_iter().map(MessageItem::from).collect(),
            has_more,
        }))
    }
}
