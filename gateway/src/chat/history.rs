//! History pages and `since` replay. Replay reads the bus first (recent messages) and
//! the database for anything older than what the bus retains, so the seam between the
//! two has no gap and no duplicate.

use infra::bus::StoredMessage;
use infra::db::messages::{self, HistoryQuery};
use infra::protocol::{MessageView, timestamp};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// Most messages one `join` replays; past it `joined.has_more` tells the client to
/// page the rest with REST history `after`.
pub const MAX_REPLAY: usize = 1000;

pub fn view(room_name: &str, m: &StoredMessage) -> MessageView {
    MessageView {
        room: room_name.to_string(),
        id: m.message.id,
        seq: m.seq,
        user: m.message.user.clone(),
        body: m.message.body.clone(),
        ts: timestamp(m.message.ts),
        client_msg_id: m.message.client_msg_id.clone(),
    }
}

pub async fn page(
    state: &AppState,
    room: Uuid,
    room_name: &str,
    query: &HistoryQuery,
) -> Result<(Vec<MessageView>, bool), ApiError> {
    let (rows, has_more) = messages::history(&state.db, room, query).await?;
    Ok((rows.iter().map(|m| view(room_name, m)).collect(), has_more))
}

/// The room's latest seq (0 for an empty room).
pub async fn head(state: &AppState, room: Uuid) -> Result<u64, ApiError> {
    match state.bus.room_head(room).await? {
        Some(seq) => Ok(seq),
        None => Ok(messages::room_head(&state.db, room).await?),
    }
}

/// Every message of the room with seq > `since`, oldest first, at most [`MAX_REPLAY`];
/// `true` when more exist.
pub async fn replay(
    state: &AppState,
    room: Uuid,
    room_name: &str,
    since: u64,
) -> Result<(Vec<MessageView>, bool), ApiError> {
    let retained = state.bus.replay(room, since).await?;
    let mut out: Vec<MessageView> = Vec::new();
    if since < retained.complete_after {
        let older = messages::range(
            &state.db,
            room,
            since,
            Some(retained.complete_after),
            MAX_REPLAY as u64 + 1,
        )
        .await?;
        out.extend(older.iter().map(|m| view(room_name, m)));
    }
    let floor = out.last().map_or(since, |m| m.seq);
    out.extend(
        retained
            .messages
            .iter()
            .filter(|m| m.seq > floor)
            .map(|m| view(room_name, m)),
    );
    let has_more = out.len() > MAX_REPLAY;
    out.truncate(MAX_REPLAY);
    Ok((out, has_more))
}
