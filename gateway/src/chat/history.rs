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

/// Every message of the room with seq > `since`, oldest first, at most [`MAX_REPLAY`]
/// and at most `budget` bytes of JSON; `true` when more exist.
pub async fn replay(
    state: &AppState,
    room: Uuid,
    room_name: &str,
    since: u64,
    budget: usize,
) -> Result<(Vec<MessageView>, bool), ApiError> {
    // One more than a page tells `has_more`; the bus never reads the whole tail.
    let retained = state.bus.replay(room, since, MAX_REPLAY + 1).await?;
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
    let mut has_more = out.len() > MAX_REPLAY;
    out.truncate(MAX_REPLAY);
    let (fits, _) = fitting(&out, budget);
    if fits < out.len() {
        has_more = true;
        out.truncate(fits);
    }
    Ok((out, has_more))
}

/// Bytes of items (messages, presence) one WebSocket frame may carry. tungstenite
/// refuses to queue a frame larger than the socket's write-buffer bound
/// (`ws_max_write_buffer_bytes`), and the socket's writer then stops for good: a long
/// replay or history page would leave the client with a socket that never answers.
/// Half the bound leaves room for the rest of the frame and for frames already
/// buffered.
pub fn frame_budget(state: &AppState) -> usize {
    state.settings.ws_max_write_buffer_bytes / 2
}

/// The WebSocket `history` page: cut to the newest messages that fit in one frame
/// (the client pages on with `before` = the first seq it got); `true` when cut.
pub fn fit_newest(messages: &mut Vec<MessageView>, budget: usize) -> bool {
    let (keep, _) = fitting(messages.iter().rev(), budget);
    let cut = messages.len() - keep;
    messages.drain(..cut);
    cut > 0
}

/// How many of `items` (at least one), taken in order, fit in `budget` bytes of JSON,
/// and the bytes those take.
pub fn fitting<'a, T: serde::Serialize + 'a>(
    items: impl IntoIterator<Item = &'a T>,
    budget: usize,
) -> (usize, usize) {
    let (mut count, mut used) = (0, 0);
    for item in items {
        let size = json_len(item) + 1;
        if used + size > budget && count > 0 {
            break;
        }
        used += size;
        count += 1;
    }
    (count, used)
}

/// Bytes of `item` as JSON, counted without building the string.
fn json_len<T: serde::Serialize>(item: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Plain data (messages, users) always serializes; writing to a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, item);
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use infra::protocol::UserRef;

    fn message(seq: u64, body_len: usize) -> MessageView {
        MessageView {
            room: "r".into(),
            id: Uuid::nil(),
            seq,
            user: UserRef {
                id: Uuid::nil(),
                username: "u".into(),
            },
            body: "x".repeat(body_len),
            ts: String::new(),
            client_msg_id: "c".into(),
        }
    }

    #[test]
    fn a_replay_is_cut_to_fit_the_write_buffer_but_never_to_nothing() {
        let messages: Vec<MessageView> = (1..=10).map(|seq| message(seq, 1000)).collect();
        let one = serde_json::to_string(&messages[0])
            .map(|j| j.len())
            .unwrap_or(0)
            + 1;
        assert_eq!(fitting(&messages, one * 3).0, 3);
        assert_eq!(fitting(&messages, one * 100).0, 10);
        assert_eq!(fitting(&messages, 10).0, 1, "one message always goes out");
        assert_eq!(fitting::<MessageView>(&[], 10).0, 0);
    }

    #[test]
    fn a_history_page_keeps_the_newest_messages_that_fit() {
        let mut messages: Vec<MessageView> = (1..=10).map(|seq| message(seq, 1000)).collect();
        // seq 10 takes one byte more than seq 1: leave a little room.
        let budget = fitting(&messages[..1], usize::MAX).1 * 4 + 4;
        assert!(fit_newest(&mut messages, budget));
        let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [7, 8, 9, 10]);
        assert!(!fit_newest(&mut messages, budget), "nothing more to cut");
        assert_eq!(messages.len(), 4);
    }
}
