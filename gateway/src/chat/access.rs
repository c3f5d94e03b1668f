//! Who may see and join which room. Private rooms: the password is asked once, then
//! membership is remembered; non-members see neither history, presence nor members.

use infra::auth::verify_password;
use infra::db::{audit, members, rooms};
use infra::protocol::RoomRef;
use uuid::Uuid;

use super::limits;
use crate::error::ApiError;
use crate::state::AppState;

pub use infra::db::rooms::Room;

pub fn room_ref(room: &Room) -> RoomRef {
    RoomRef {
        id: room.id,
        name: room.name.clone(),
        kind: room.kind.clone(),
    }
}

pub fn is_public(room: &Room) -> bool {
    room.kind == "public"
}

pub async fn find(state: &AppState, name: &str) -> Result<Room, ApiError> {
    rooms::by_name(&state.db, name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no room named `{name}`")))
}

/// The room, if the user may read it (public, or a member of a private one).
pub async fn readable(state: &AppState, name: &str, user: Uuid) -> Result<Room, ApiError> {
    let room = find(state, name).await?;
    if is_public(&room) || members::is_member(&state.db, room.id, user).await? {
        Ok(room)
    } else {
        Err(ApiError::Forbidden(format!(
            "`{name}` is private; join it with its password first"
        )))
    }
}

/// Admits the user to the room: public rooms always; private rooms for members, or
/// with the right password (rate-limited per user and room), which makes them members.
pub async fn admit(
    state: &AppState,
    name: &str,
    user: Uuid,
    password: Option<&str>,
) -> Result<Room, ApiError> {
    let room = find(state, name).await?;
    if is_public(&room) {
        members::add(&state.db, room.id, user).await?;
        return Ok(room);
    }
    if members::is_member(&state.db, room.id, user).await? {
        return Ok(room);
    }
    let Some(password) = password else {
        return Err(ApiError::Forbidden(format!(
            "`{name}` is private: a password is required"
        )));
    };
    limits::check(
        state,
        &format!("room_pw:{user}:{}", room.id),
        state.quotas.room_password,
    )
    .await?;
    let hash = room.password_hash.as_deref().unwrap_or_default();
    if !verify_password(password, hash).await? {
        audit::record(
            &state.db,
            "room_password_failed",
            Some(user),
            None,
            serde_json::json!({ "room": room.name }),
        )
        .await?;
        return Err(ApiError::WrongPassword(format!(
            "wrong password for `{name}`"
        )));
    }
    members::add(&state.db, room.id, user).await?;
    Ok(room)
}
