//! Presence as clients see it: user ids resolved to `{id, username}`.

use infra::db::users;
use infra::protocol::UserRef;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// The most users one page of the REST presence list holds, and its default size.
pub const MAX_PAGE: usize = 1000;

/// One page of the room's present users: up to `limit` users whose id sorts after
/// `after`, sorted by name, and the cursor of the next page when there is one (the last
/// id of this page: pages follow user-id order, which a name sort cannot page by).
pub async fn room_users_page(
    state: &AppState,
    room: Uuid,
    after: Option<Uuid>,
    limit: usize,
) -> Result<(Vec<UserRef>, Option<Uuid>), ApiError> {
    let (ids, more) = state.presence.members_page(room, after, limit).await?;
    let next = if more { ids.last().copied() } else { None };
    Ok((named(state, &ids).await?, next))
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
