//! One socket: authenticate, greet, then a reader (frames -> commands) and a writer
//! (queue -> batched writes, pings, closes) until either side ends. Pings and the idle
//! timeout come from `heartbeat`: a socket has no timer of its own.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use infra::protocol::{ClientFrame, ErrorCode, ServerFrame, UserRef, close_code, timestamp};
use poem::OnUpgrade;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};

use super::commands::Commands;
use super::outbound::{
    CloseReason, CloseWatch, ConnEnds, ConnHandle, JoinedReply, Outbound, RoomFrame,
};
use super::queue::Received;
use super::transport::Transport;
use crate::auth::{AuthUser, authenticate_token};
use crate::error::ApiError;
use crate::state::AppState;

/// Most frames written before one flush.
const MAX_BATCH: usize = 128;
/// A connect records session activity only when the last record is older than this.
const TOUCH_AFTER_SECS: i64 = 60;
/// How long a closing socket gets to take its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What the upgrade handler hands to the socket's task.
pub struct Pending {
    pub state: AppState,
    /// Authenticated by `?token=`; `None`: the first frame must be `auth`.
    pub user: Option<AuthUser>,
}

/// Where the socket's bytes come from once the `101` is out.
pub enum Upgrade {
    /// Upgraded by `ws::direct` on the connection itself; `read_ahead` is what the
    /// client sent after its request head.
    Direct { tcp: TcpStream, read_ahead: Vec<u8> },
    /// Upgraded by hyper, for a request that came through poem.
    Poem(OnUpgrade),
}

type Socket = WebSocketStream<Transport>;
type Sink = SplitSink<Socket, Message>;
type Stream = SplitStream<Socket>;

/// A socket past authentication: what its reader holds while it waits for frames.
struct Live {
    state: AppState,
    conn: ConnHandle,
    stream: Stream,
    commands: Commands,
    writer: JoinHandle<()>,
}

/// The socket's task. Every phase is boxed and only the read loop lives long: an idle
/// socket's task holds a few words, not the largest future it ever awaited (set-up,
/// commands, tear-down).
pub async fn serve(upgrade: Upgrade, config: WebSocketConfig, pending: Box<Pending>) {
    let Some(mut live) = Box::pin(open(upgrade, config, pending)).await else {
        return;
    };
    let Live {
        state,
        conn,
        stream,
        commands,
        ..
    } = &mut *live;
    Box::pin(read_loop(state, conn, stream, commands)).await;
    Box::pin(finish(live)).await;
}

/// Upgrade, authenticate, register with the hub, greet, start the writer.
async fn open(
    upgrade: Upgrade,
    config: WebSocketConfig,
    pending: Box<Pending>,
) -> Option<Box<Live>> {
    let Pending { state, user } = *pending;
    let socket = match upgrade {
        Upgrade::Direct { tcp, read_ahead } => {
            let tcp = Transport::Tcp(tcp);
            WebSocketStream::from_partially_read(tcp, read_ahead, Role::Server, Some(config)).await
        }
        Upgrade::Poem(on_upgrade) => {
            let upgraded = Transport::Upgraded(on_upgrade.await.ok()?);
            WebSocketStream::from_raw_socket(upgraded, Role::Server, Some(config)).await
        }
    };
    let (mut sink, mut stream) = socket.split();
    let user = match user {
        Some(user) => user,
        None => match first_frame_auth(&state, &mut stream).await {
            Ok(user) => user,
            Err(e) => {
                state.metrics.error(e.code());
                refuse(&mut sink, &e, close_code::UNAUTHORIZED).await;
                return None;
            }
        },
    };
    let (conn, ends) = ConnHandle::new(
        user.user_id,
        user.username.clone(),
        user.session_id,
        state.settings.outbound_queue_frames,
        state.metrics.clone(),
    );
    if let Err(e) = state.hub.register(&conn).await {
        refuse(&mut sink, &ApiError::from(e), u16::from(CloseCode::Again)).await;
        return None;
    }
    state.metrics.ws_connections.fetch_add(1, Ordering::Relaxed);
    state
        .metrics
        .ws_connections_total
        .fetch_add(1, Ordering::Relaxed);
    let hello = ServerFrame::Hello {
        user: UserRef {
            id: user.user_id,
            username: user.username.clone(),
        },
        session_id: user.session_id,
        conn_id: conn.id,
        server_time: timestamp(chrono::Utc::now()),
    };
    conn.send(Outbound::text(hello.to_text()));
    // `last_seen` is for people listing their sessions, minute precision is plenty: a
    // reconnect storm must not turn into one session-store write per socket.
    let now = chrono::Utc::now();
    if now - user.last_seen > chrono::Duration::seconds(TOUCH_AFTER_SECS) {
        let _ = state.sessions.touch(user.session_id, now).await;
    }
    let writer = tokio::spawn(write_loop(sink, ends));
    let commands = Commands::new(state.clone(), conn.clone());
    Some(Box::new(Live {
        state,
        conn,
        stream,
        commands,
        writer,
    }))
}

/// The error frame, then a close with `code`.
async fn refuse(sink: &mut Sink, e: &ApiError, code: u16) {
    let _ = sink.send(Message::text(e.to_frame(None).to_text())).await;
    let _ = sink.send(close_message(code, e.to_string())).await;
}

fn close_message(code: u16, reason: String) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    }))
}

/// The reader is done: leave the rooms, let the writer send what is queued and the
/// close frame.
async fn finish(live: Box<Live>) {
    let Live {
        state,
        conn,
        mut stream,
        mut commands,
        writer,
    } = *live;
    commands.disconnect().await;
    state.hub.unregister(&conn).await;
    conn.close(1000, "bye");
    let _ = writer.await;
    // The closing handshake (RFC 6455 7.1.1): read what the client still sends (pongs,
    // its close frame) until its close or the grace runs out, and only then drop the
    // connection. Dropping it with unread bytes would reset it, and the reset can take
    // our close frame with it.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(message)) = stream.next().await {
            if message.is_close() {
                break;
            }
        }
    })
    .await;
    state.metrics.ws_connections.fetch_sub(1, Ordering::Relaxed);
}

async fn first_frame_auth(state: &AppState, stream: &mut Stream) -> Result<AuthUser, ApiError> {
    let timeout = Duration::from_secs(state.settings.auth_timeout_secs);
    let unauthorized =
        || ApiError::Unauthorized("send {\"type\":\"auth\",\"token\":...} first".into());
    loop {
        let frame = tokio::time::timeout(timeout, stream.next())
            .await
            .map_err(|_| ApiError::Unauthorized("no auth frame in time".into()))?;
        match frame {
            Some(Ok(Message::Text(text))) => {
                return match ClientFrame::parse(text.as_str()) {
                    Ok((ClientFrame::Auth { token }, _)) => authenticate_token(state, &token).await,
                    _ => Err(unauthorized()),
                };
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            _ => return Err(unauthorized()),
        }
    }
}

async fn read_loop(
    state: &AppState,
    conn: &ConnHandle,
    stream: &mut Stream,
    commands: &mut Commands,
) {
    // Registered once for the socket's life, not once per frame. The idle timeout is
    // the heartbeat's: the reader only records that it read.
    let requested = conn.close_requested();
    let writer_gone = conn.writer_gone();
    tokio::pin!(requested, writer_gone);
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            // The server is closing this socket (revoked, slow, drained, idle).
            _ = &mut requested => return,
            _ = &mut writer_gone => return,
        };
        conn.mark_read();
        match next {
            // Boxed for the same reason: the command futures (database queries, bus
            // publishes) are many KiB; an idle socket holds none of them.
            Some(Ok(Message::Text(text))) => Box::pin(commands.handle(text.as_str())).await,
            Some(Ok(Message::Binary(_))) => {
                let e =
                    ApiError::BadRequest("binary frames are not supported; send JSON text".into());
                state.metrics.error(e.code());
                conn.send(Outbound::text(e.to_frame(None).to_text()));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(Message::Close(_))) | None => return,
            Some(Err(WsError::Capacity(_))) => {
                state.metrics.error(ErrorCode::TooLarge);
                conn.close(1009, "frame too large");
                return;
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "socket read failed");
                return;
            }
        }
    }
}

/// Per-room seq positions and held (buffered) messages of one socket.
///
/// The position of the room last written to is kept inline (`recent`), in the writer's
/// own task, which is in cache while it runs: most sockets are in one or a few rooms,
/// and a map lookup per delivery cost a cache miss or two on every socket (the top
/// user-space symbol in the S2 profile). The map holds the other rooms; `recent`'s
/// room is never in it.
#[derive(Default)]
struct RoomPositions {
    recent: Option<(uuid::Uuid, u64)>,
    last: HashMap<uuid::Uuid, u64>,
    held: HashMap<uuid::Uuid, Vec<Arc<RoomFrame>>>,
}

impl RoomPositions {
    /// The last seq written for `room` (0: none yet), made the recent one.
    fn position(&mut self, room: uuid::Uuid) -> &mut u64 {
        if self.recent.is_none_or(|(recent, _)| recent != room) {
            let seq = self.last.remove(&room).unwrap_or(0);
            if let Some((other, other_seq)) = self.recent.replace((room, seq)) {
                self.last.insert(other, other_seq);
            }
        }
        &mut self.recent.get_or_insert((room, 0)).1
    }

    fn forget(&mut self, room: uuid::Uuid) {
        if self.recent.is_some_and(|(recent, _)| recent == room) {
            self.recent = None;
        }
        self.last.remove(&room);
        self.held.remove(&room);
    }

    /// The frames to write for one queue item, in order. Shared frames are written
    /// from the same bytes by every socket (a reference count, no copy).
    fn admit(&mut self, item: Outbound, out: &mut Vec<Message>) {
        match item {
            Outbound::Text(text) => out.push(Message::text(String::from(text))),
            Outbound::Shared(text) => out.push(Message::Text((*text).clone())),
            Outbound::Message(frame) => {
                if !self.held.is_empty()
                    && let Some(held) = self.held.get_mut(&frame.room)
                {
                    held.push(frame);
                    return;
                }
                let last = self.position(frame.room);
                if frame.seq > *last {
                    *last = frame.seq;
                    out.push(Message::Text(frame.text.clone()));
                }
            }
            Outbound::Hold(room) => {
                self.held.entry(room).or_default();
            }
            Outbound::Joined(joined) => {
                let JoinedReply { room, upto, text } = *joined;
                out.push(Message::text(text));
                let held = self.held.remove(&room).unwrap_or_default();
                let last = self.position(room);
                *last = (*last).max(upto);
                for frame in held {
                    if frame.seq > *last {
                        *last = frame.seq;
                        out.push(Message::Text(frame.text.clone()));
                    }
                }
            }
            Outbound::Unhold(room) => {
                self.held.remove(&room);
            }
            Outbound::Forget(room) => self.forget(room),
            Outbound::Ping => out.push(Message::Ping(Bytes::new())),
        }
    }
}

async fn write_loop(mut sink: Sink, ends: ConnEnds) {
    let ConnEnds { mut rx, close } = ends;
    let mut positions = RoomPositions::default();
    // Both grow with the first batch; an idle socket never holds more than a `hello`.
    let mut items = Vec::new();
    let mut batch = Vec::new();
    let reason = loop {
        match std::future::poll_fn(|cx| rx.poll_recv(cx, &mut items, MAX_BATCH)).await {
            Received::Items => {}
            Received::CloseRequested | Received::Ended => break closing(&close),
        }
        for item in items.drain(..) {
            positions.admit(item, &mut batch);
        }
        // Boxed: only a socket that is writing holds the write futures.
        let write = Box::pin(write_batch(&mut sink, &mut batch));
        tokio::select! {
            biased;
            result = write => if result.is_err() { return },
            // A write that does not complete (the peer stopped reading) must not keep
            // the socket from closing.
            _ = std::future::poll_fn(|cx| rx.poll_close_requested(cx)) => break closing(&close),
        }
    };
    // Flush what is queued (final replies, a `reconnect` notice) unless the socket is
    // being closed precisely because it does not take its queue.
    if reason.code != close_code::SLOW_CONSUMER {
        rx.drain(&mut items);
        for item in items.drain(..) {
            positions.admit(item, &mut batch);
        }
        for message in batch.drain(..) {
            let _ = tokio::time::timeout(CLOSE_GRACE, sink.feed(message)).await;
        }
    }
    let close = close_message(reason.code, reason.reason);
    let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(close)).await;
}

async fn write_batch(
    sink: &mut Sink,
    batch: &mut Vec<Message>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    for message in batch.drain(..) {
        sink.feed(message).await?;
    }
    sink.flush().await
}

fn closing(close: &CloseWatch) -> CloseReason {
    close.reason().unwrap_or(CloseReason {
        code: 1000,
        reason: "bye".into(),
    })
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn message(room: Uuid, seq: u64) -> Outbound {
        Outbound::Message(Arc::new(RoomFrame {
            room,
            seq,
            text: format!("{room}:{seq}").into(),
        }))
    }

    fn written(positions: &mut RoomPositions, items: Vec<Outbound>) -> Vec<String> {
        let mut out = Vec::new();
        for item in items {
            positions.admit(item, &mut out);
        }
        out.into_iter()
            .map(|m| m.into_text().expect("text").to_string())
            .collect()
    }

    #[test]
    fn each_room_keeps_its_own_position_when_rooms_interleave() {
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut positions = RoomPositions::default();
        let out = written(
            &mut positions,
            vec![
                message(a, 1),
                message(b, 1),
                message(a, 2),
                message(b, 1),
                message(a, 2),
                message(c, 4),
                message(a, 1),
                message(b, 3),
                message(c, 4),
            ],
        );
        assert_eq!(
            out,
            [
                format!("{a}:1"),
                format!("{b}:1"),
                format!("{a}:2"),
                format!("{c}:4"),
                format!("{b}:3"),
            ]
        );
    }

    #[test]
    fn a_forgotten_room_starts_over_whether_recent_or_not() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut positions = RoomPositions::default();
        written(&mut positions, vec![message(a, 5), message(b, 5)]);
        // `b` is the recent room, `a` is in the map.
        let out = written(
            &mut positions,
            vec![
                Outbound::Forget(a),
                Outbound::Forget(b),
                message(a, 5),
                message(b, 5),
            ],
        );
        assert_eq!(out, [format!("{a}:5"), format!("{b}:5")]);
    }

    #[test]
    fn held_messages_are_released_after_the_joined_reply_without_duplicates() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut positions = RoomPositions::default();
        let out = written(
            &mut positions,
            vec![
                message(b, 1),
                Outbound::Hold(a),
                message(a, 3),
                message(b, 2),
                message(a, 4),
                Outbound::Joined(Box::new(JoinedReply {
                    room: a,
                    upto: 3,
                    text: "joined".into(),
                })),
                message(a, 4),
                message(a, 5),
                message(b, 2),
            ],
        );
        assert_eq!(
            out,
            [
                format!("{b}:1"),
                format!("{b}:2"),
                "joined".to_string(),
                format!("{a}:4"),
                format!("{a}:5"),
            ]
        );
    }

    #[test]
    fn an_unheld_room_drops_what_was_buffered() {
        let a = Uuid::new_v4();
        let mut positions = RoomPositions::default();
        let out = written(
            &mut positions,
            vec![
                Outbound::Hold(a),
                message(a, 1),
                Outbound::Unhold(a),
                message(a, 2),
            ],
        );
        assert_eq!(out, [format!("{a}:2")]);
    }
}
