//! One socket: authenticate, greet, then a reader (frames -> commands) and a writer
//! (queue -> batched writes, pings, closes) until either side ends. Pings and the idle
//! timeout come from `heartbeat`: a socket has no timer of its own.
//!
//! The reader parses frames with tungstenite on its half of the connection. The
//! writer owns the other half and is the only one that writes: it hands the encoded
//! frames of a batch (see `frame`; a room message's bytes are shared by all members)
//! to the socket in one vectored write, with no framing or copy per socket. Pongs and
//! the answer to a client's close are queued to it like any other frame.

use std::collections::HashMap;
use std::future::poll_fn;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use infra::protocol::{ClientFrame, ErrorCode, ServerFrame, UserRef, close_code, timestamp};
use poem::OnUpgrade;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::commands::Commands;
use super::frame;
use super::outbound::{
    CloseReason, CloseWatch, ConnEnds, ConnHandle, JoinedReply, Outbound, RoomFrame,
};
use super::queue::Received;
use super::transport::{ReadHalf, Transport, WriteHalf};
use crate::auth::{AuthUser, authenticate_token};
use crate::error::ApiError;
use crate::state::AppState;

/// Most queue items taken for one batch.
const MAX_BATCH: usize = 128;
/// Most frames handed to one vectored write (IOV_MAX is 1024).
const MAX_SLICES: usize = 64;
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

/// Where the socket's bytes come from.
pub enum Upgrade {
    /// Upgraded by `ws::direct` on the connection itself; `read_ahead` is what the
    /// client sent after its request head. `response` is the `101`, not yet written:
    /// a socket authenticated by `?token=` gets it in one write with its `hello`, so
    /// that the client reads both at once.
    Direct {
        tcp: TcpStream,
        read_ahead: Vec<u8>,
        response: Vec<u8>,
    },
    /// Upgraded by hyper, for a request that came through poem.
    Poem(OnUpgrade),
}

/// What the reader reads frames from.
type Stream = WebSocketStream<ReadHalf>;

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
    // The `101` still to be written (direct upgrades only; hyper wrote poem's).
    let (mut stream, mut out, mut response) = match upgrade {
        Upgrade::Direct {
            tcp,
            read_ahead,
            response,
        } => {
            let (read, write) = Transport::Tcp(tcp).split();
            let stream =
                WebSocketStream::from_partially_read(read, read_ahead, Role::Server, Some(config))
                    .await;
            (stream, write, Some(response))
        }
        Upgrade::Poem(on_upgrade) => {
            let (read, write) = Transport::Upgraded(on_upgrade.await.ok()?).split();
            let stream = WebSocketStream::from_raw_socket(read, Role::Server, Some(config)).await;
            (stream, write, None)
        }
    };
    let user = match user {
        Some(user) => user,
        // The client waits for the `101` before it sends its `auth` frame.
        None => match write_response(&mut out, response.take()).await {
            Err(_) => return None,
            Ok(()) => match first_frame_auth(&state, &mut stream, &mut out).await {
                Ok(user) => user,
                Err(e) => {
                    state.metrics.error(e.code());
                    refuse(&mut out, &e, close_code::UNAUTHORIZED).await;
                    return None;
                }
            },
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
        if write_response(&mut out, response.take()).await.is_ok() {
            refuse(&mut out, &ApiError::from(e), u16::from(CloseCode::Again)).await;
        }
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
    match response.take() {
        // One write, so the client reads the `101` and the `hello` together.
        Some(mut bytes) => {
            bytes.extend_from_slice(&frame::text(&hello.to_text()));
            if write_response(&mut out, Some(bytes)).await.is_err() {
                // The client is gone (or took nothing for the grace period): nothing
                // was joined yet, so leaving the hub is all there is to undo.
                state.hub.unregister(&conn).await;
                state.metrics.ws_connections.fetch_sub(1, Ordering::Relaxed);
                return None;
            }
        }
        None => {
            conn.send(Outbound::text(hello.to_text()));
        }
    }
    // `last_seen` is for people listing their sessions, minute precision is plenty: a
    // reconnect storm must not turn into one session-store write per socket.
    let now = chrono::Utc::now();
    if now - user.last_seen > chrono::Duration::seconds(TOUCH_AFTER_SECS) {
        let _ = state.sessions.touch(user.session_id, now).await;
    }
    let writer = tokio::spawn(write_loop(out, ends));
    let commands = Commands::new(state.clone(), conn.clone());
    Some(Box::new(Live {
        state,
        conn,
        stream,
        commands,
        writer,
    }))
}

/// Writes a direct upgrade's `101` (and what follows it in `bytes`) before the writer
/// runs; nothing for an upgrade through poem.
async fn write_response(out: &mut WriteHalf, bytes: Option<Vec<u8>>) -> std::io::Result<()> {
    let Some(bytes) = bytes else {
        return Ok(());
    };
    tokio::time::timeout(CLOSE_GRACE, out.write_all(&bytes))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// The error frame, then a close with `code` (before the writer runs).
async fn refuse(out: &mut WriteHalf, e: &ApiError, code: u16) {
    let error = frame::text(&e.to_frame(None).to_text());
    let close = frame::close(code, &e.to_string());
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        out.write_all(&error).await?;
        out.write_all(&close).await
    })
    .await;
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

/// The first text frame must be `auth`, within the auth timeout of the connect (pings
/// do not extend it). Pings before it are answered here: the writer does not run yet.
async fn first_frame_auth(
    state: &AppState,
    stream: &mut Stream,
    out: &mut WriteHalf,
) -> Result<AuthUser, ApiError> {
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(state.settings.auth_timeout_secs);
    let unauthorized =
        || ApiError::Unauthorized("send {\"type\":\"auth\",\"token\":...} first".into());
    let late = || ApiError::Unauthorized("no auth frame in time".into());
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .map_err(|_| late())?;
        match next {
            Some(Ok(Message::Text(text))) => {
                return match ClientFrame::parse(text.as_str()) {
                    Ok((ClientFrame::Auth { token }, _)) => authenticate_token(state, &token).await,
                    _ => Err(unauthorized()),
                };
            }
            // Bounded too: a client that pings and never reads must not hold the
            // socket here past the deadline.
            Some(Ok(Message::Ping(payload))) => {
                match tokio::time::timeout_at(deadline, out.write_all(&frame::pong(&payload))).await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Err(unauthorized()),
                    Err(_) => return Err(late()),
                }
            }
            Some(Ok(Message::Pong(_) | Message::Frame(_))) => continue,
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
            Some(Ok(Message::Ping(payload))) => {
                conn.send(Outbound::Frame(frame::pong(&payload)));
            }
            Some(Ok(Message::Pong(_) | Message::Frame(_))) => {}
            // The answer echoes the client's code (RFC 6455 5.5.1); tungstenite
            // already replaced a code that must not be sent.
            Some(Ok(Message::Close(close))) => {
                match close {
                    Some(close) => conn.close(u16::from(close.code), &close.reason),
                    None => conn.close(frame::NO_STATUS, ""),
                };
                return;
            }
            None => return,
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
    fn admit(&mut self, item: Outbound, out: &mut Batch) {
        match item {
            Outbound::Frame(bytes) => out.push(Chunk::Own(bytes)),
            Outbound::Shared(bytes) => out.push(Chunk::Shared(bytes)),
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
                    out.push(Chunk::Room(frame));
                }
            }
            Outbound::Hold(room) => {
                self.held.entry(room).or_default();
            }
            Outbound::Joined(joined) => {
                let JoinedReply { room, upto, frame } = *joined;
                out.push(Chunk::Own(frame));
                let held = self.held.remove(&room).unwrap_or_default();
                let last = self.position(room);
                *last = (*last).max(upto);
                for frame in held {
                    if frame.seq > *last {
                        *last = frame.seq;
                        out.push(Chunk::Room(frame));
                    }
                }
            }
            Outbound::Unhold(room) => {
                self.held.remove(&room);
            }
            Outbound::Forget(room) => self.forget(room),
            Outbound::Ping => out.push(Chunk::Static(frame::PING)),
        }
    }
}

/// One encoded frame of a batch: this socket's own, or bytes shared with others.
enum Chunk {
    Own(Box<[u8]>),
    Shared(Arc<[u8]>),
    Room(Arc<RoomFrame>),
    Static(&'static [u8]),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Own(bytes) => bytes,
            Chunk::Shared(bytes) => bytes,
            Chunk::Room(frame) => &frame.frame,
            Chunk::Static(bytes) => bytes,
        }
    }
}

/// The frames the writer is writing, and how far it got. The progress lives here,
/// not in the write's future: a write cut short (by a close request) leaves the
/// batch knowing where the next byte is, so no frame is ever written in part and
/// then followed by another.
#[derive(Default)]
struct Batch {
    chunks: Vec<Chunk>,
    /// Chunks before this one are written.
    first: usize,
    /// Bytes of `chunks[first]` already written.
    offset: usize,
}

impl Batch {
    fn push(&mut self, chunk: Chunk) {
        self.chunks.push(chunk);
    }

    /// Drops the frames not begun; one that is partly written stays to be finished.
    fn keep_only_begun(&mut self) {
        let begun = self.first + usize::from(self.offset > 0);
        self.chunks.truncate(begun);
    }

    /// Writes every frame, a vectored write of up to [`MAX_SLICES`] at a time, and
    /// empties the batch.
    async fn write_to(&mut self, out: &mut WriteHalf) -> std::io::Result<()> {
        while self.first < self.chunks.len() {
            let written = poll_fn(|cx| {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let mut n = 0;
                for (i, chunk) in self.chunks[self.first..]
                    .iter()
                    .take(MAX_SLICES)
                    .enumerate()
                {
                    let bytes = chunk.bytes();
                    slices[i] = IoSlice::new(if i == 0 { &bytes[self.offset..] } else { bytes });
                    n += 1;
                }
                Pin::new(&mut *out).poll_write_vectored(cx, &slices[..n])
            })
            .await?;
            if written == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            self.advance(written);
        }
        self.chunks.clear();
        self.first = 0;
        self.offset = 0;
        Ok(())
    }

    fn advance(&mut self, mut written: usize) {
        while written > 0 {
            let left = self.chunks[self.first].bytes().len() - self.offset;
            if written < left {
                self.offset += written;
                return;
            }
            written -= left;
            self.first += 1;
            self.offset = 0;
        }
    }
}

async fn write_loop(mut out: WriteHalf, ends: ConnEnds) {
    let ConnEnds { mut rx, close } = ends;
    let mut positions = RoomPositions::default();
    // Both grow with the first batch; an idle socket never holds more than a `hello`.
    let mut items = Vec::new();
    let mut batch = Batch::default();
    let reason = loop {
        match poll_fn(|cx| rx.poll_recv(cx, &mut items, MAX_BATCH)).await {
            Received::Items => {}
            Received::CloseRequested | Received::Ended => break closing(&close),
        }
        for item in items.drain(..) {
            positions.admit(item, &mut batch);
        }
        // Boxed: only a socket that is writing holds the write future.
        let write = Box::pin(batch.write_to(&mut out));
        tokio::select! {
            biased;
            result = write => if result.is_err() { return },
            // A write that does not complete (the peer stopped reading) must not keep
            // the socket from closing.
            _ = poll_fn(|cx| rx.poll_close_requested(cx)) => break closing(&close),
        }
    };
    // Flush what is queued (final replies, a `reconnect` notice) unless the socket is
    // being closed precisely because it does not take its queue; a frame already
    // begun is finished either way, so the close frame comes after whole frames.
    if reason.code == close_code::SLOW_CONSUMER {
        batch.keep_only_begun();
    } else {
        rx.drain(&mut items);
        for item in items.drain(..) {
            positions.admit(item, &mut batch);
        }
    }
    batch.push(Chunk::Own(frame::close(reason.code, &reason.reason)));
    let _ = tokio::time::timeout(CLOSE_GRACE, batch.write_to(&mut out)).await;
    let _ = tokio::time::timeout(CLOSE_GRACE, out.flush()).await;
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
            frame: frame::text(&format!("{room}:{seq}")),
        }))
    }

    /// The payload of a short text frame (2-byte header).
    fn payload(bytes: &[u8]) -> String {
        assert_eq!(bytes[0], 0x81, "a final text frame");
        assert!(bytes[1] < 126, "short");
        String::from_utf8(bytes[2..].to_vec()).expect("utf-8")
    }

    fn written(positions: &mut RoomPositions, items: Vec<Outbound>) -> Vec<String> {
        let mut out = Batch::default();
        for item in items {
            positions.admit(item, &mut out);
        }
        out.chunks.iter().map(|c| payload(c.bytes())).collect()
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
                    frame: frame::text("joined"),
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

    fn own(bytes: &[u8]) -> Chunk {
        Chunk::Own(bytes.to_vec().into_boxed_slice())
    }

    #[test]
    fn progress_moves_across_frames_and_stops_inside_one() {
        let mut batch = Batch::default();
        for bytes in [&b"abc"[..], b"de", b"fghi"] {
            batch.push(own(bytes));
        }
        batch.advance(4); // "abc" and "d"
        assert_eq!((batch.first, batch.offset), (1, 1));
        batch.advance(1); // "e": exactly the end of the second frame
        assert_eq!((batch.first, batch.offset), (2, 0));
        batch.advance(2);
        assert_eq!((batch.first, batch.offset), (2, 2));
    }

    #[test]
    fn a_cut_short_batch_keeps_the_frame_begun_and_drops_the_rest() {
        let mut batch = Batch::default();
        for bytes in [&b"abc"[..], b"de", b"fghi"] {
            batch.push(own(bytes));
        }
        batch.advance(4);
        batch.keep_only_begun();
        assert_eq!(batch.chunks.len(), 2, "the second frame is begun");
        batch.advance(1);
        batch.keep_only_begun();
        assert_eq!(batch.chunks.len(), 2, "nothing of the third was written");
    }

    /// A client socket and the server side's write half, over real loopback TCP.
    async fn connected_writer() -> (tokio::net::TcpStream, WriteHalf) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (client, server) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let (_read, out) = Transport::Tcp(server.expect("accept").0).split();
        (client.expect("connect"), out)
    }

    #[tokio::test]
    async fn a_batch_larger_than_one_vectored_write_arrives_whole_and_in_order() {
        use tokio::io::AsyncReadExt;

        let (mut client, mut out) = connected_writer().await;

        let room = Arc::new(RoomFrame {
            room: Uuid::new_v4(),
            seq: 1,
            frame: frame::text(&"r".repeat(3000)),
        });
        let mut batch = Batch::default();
        let mut expected = Vec::new();
        for i in 0..(3 * MAX_SLICES + 5) {
            let chunk = match i % 3 {
                0 => Chunk::Room(room.clone()),
                1 => Chunk::Static(frame::PING),
                _ => Chunk::Own(frame::text(&format!("own {i}"))),
            };
            expected.extend_from_slice(chunk.bytes());
            batch.push(chunk);
        }
        let reader = tokio::spawn(async move {
            let mut got = vec![0; expected.len()];
            client.read_exact(&mut got).await.expect("read");
            (got, expected)
        });
        batch.write_to(&mut out).await.expect("written");
        assert!(batch.chunks.is_empty());
        assert_eq!((batch.first, batch.offset), (0, 0));
        let (got, expected) = reader.await.expect("reader");
        assert!(got == expected, "the bytes arrive as queued");
    }

    /// The writer's `sendmsg` meets a full socket buffer (the peer is not reading) and
    /// must be woken when the peer reads again, not hang.
    #[tokio::test]
    async fn a_write_blocked_by_a_full_socket_finishes_once_the_peer_reads() {
        use tokio::io::AsyncReadExt;

        let (mut client, mut out) = connected_writer().await;

        // 32 MiB: more than loopback's socket buffers on both sides hold.
        let mut batch = Batch::default();
        let mut expected = Vec::new();
        for i in 0..512 {
            let chunk = Chunk::Own(frame::text(&format!("{i:05}").repeat(13_107)));
            expected.extend_from_slice(chunk.bytes());
            batch.push(chunk);
        }
        let writer =
            tokio::spawn(
                async move { batch.write_to(&mut out).await.map(|()| batch.chunks.len()) },
            );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !writer.is_finished(),
            "the write must wait for the peer: the test needs a full socket"
        );
        let mut got = vec![0; expected.len()];
        let left = tokio::time::timeout(Duration::from_secs(10), async {
            client.read_exact(&mut got).await.expect("read");
            writer.await
        })
        .await
        .expect("the writer finishes once the peer reads")
        .expect("writer task")
        .expect("written");
        assert_eq!(left, 0);
        assert!(got == expected, "the bytes arrive as queued");
    }
}
