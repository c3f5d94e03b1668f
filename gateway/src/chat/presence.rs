//! Presence as clients see it: user ids resolved to `{id, username}`.

use infra::db::users;
use infra::protocol::UserRef;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

pub async fn room_users(state: &AppState, room: Uuid) -> Result<Vec<UserRef>, ApiError> {
    let ids = state.presence.members(room).await?;
    named(state, &ids).await
}

/// At most `limit` of the room's present users, sorted by name, and whether there are
/// more: a `joined` frame's share, read without listing a big room in full.
pub async fn some_room_users(
    state: &AppState,
    room: Uuid,
    limit: usize,
) -> Result<(Vec<UserRef>, bool), ApiError> {
    let (ids, more) = state.presence.members_upto(room, limit).await?;
    Ok((named(state, &ids).await?, more))
}

/// The users of `ids`, with their names, sorted by name.
async fn named(state: &AppState, ids: &[Uuid]) -> Result<Vec<UserRef>, ApiError> {
    let mut list: Vec<UserRef> = users::by_ids(&state.db, ids)
        .await?
        .into_iter()
        .map(|u| UserRef {
            id: u.id,
            username: u.username,
        })
        .collect();
    list.sort_by(|a, b| a.username.cmp(&b.username));
    Ok(list)
}
