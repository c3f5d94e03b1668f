//! Presence as clients see it: user ids resolved to `{id, username}`.

use infra::db::users;
use infra::protocol::UserRef;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

pub async fn room_users(state: &AppState, room: Uuid) -> Result<Vec<UserRef>, ApiError> {
    let ids = state.presence.members(room).await?;
    let mut list: Vec<UserRef> = users::by_ids(&state.db, &ids)
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
