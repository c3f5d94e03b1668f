//! The client's one task. It owns the socket, the joined rooms and the pending sends,
//! and turns application commands, server frames and timers into frames, replies and
//! events. Nothing else touches that state, so none of it needs a lock.
//!
//! The loop: write what is due (`pump` + `flush`), then wait for the first of a
//! command, a frame (or the end of a connection attempt) and the next timer.
//!
//! Life of a socket: `Down` (waiting out a backoff) -> `Connecting` (sign-in, upgrade,
//! `hello`) -> `Up`. On `Up` every room is joined again with `since` = the last seq the
//! application got; a room's sends are written only once its `joined` arrived on this
//! socket (the server would refuse them before). A lost socket puts every unacked send
//! back in the queue: it is written again, with the same `client_msg_id`, on the next
//! socket, and the server answers it with the original seq if the first copy landed.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::config::ClientConfig;
use crate::error::{ClientError, retryable};
use crate::observer::{SocketId, Via};
use crate::order::{Admission, RoomOrder};
use crate::session::{Session, Ws};
use crate::stats::{Counters, Outage};
use crate::wire::{self, Message, ServerFrame, User};
use crate::{Ack, Event, Joined};

/// A failed send is refused for good after this many `forbidden` answers in a row
/// (each one re-joins the room first).
const MAX_FORBIDDEN: u32 = 3;
/// How long the goodbye close frame may take.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

pub(crate) type Reply<T> = oneshot::Sender<Result<T, ClientError>>;

pub(crate) enum Command {
    Join {
        room: String,
        password: Option<String>,
        since: Option<u64>,
        reply: Reply<Joined>,
    },
    Leave {
        room: String,
        reply: Reply<()>,
    },
    Send {
        room: String,
        body: String,
        client_msg_id: String,
        reply: Reply<Ack>,
    },
    DropConnection,
    Close {
        reply: oneshot::Sender<()>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RoomState {
    /// Join on the next write.
    NeedJoin,
    /// A transient error: join again then.
    RetryAt(Instant),
    Joining,
    Joined,
}

struct Room {
    password: Option<String>,
    state: RoomState,
    order: RoomOrder,
    /// The room was joined on the current socket already: a further join is a
    /// catch-up whose replay overlaps what the socket received live.
    joined_on_socket: bool,
    /// The membership start was reported to the observer.
    member: bool,
    first_since: Option<u64>,
    info: Option<Joined>,
    waiters: Vec<Reply<Joined>>,
    attempts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SendState {
    Queued,
    RetryAt(Instant),
    InFlight,
}

struct PendingSend {
    room: String,
    body: String,
    client_msg_id: String,
    reply: Option<Reply<Ack>>,
    state: SendState,
    /// Times written to a socket.
    written: u32,
    /// Transient errors so far (backoff exponent).
    attempts: u32,
    forbidden: u32,
}

enum Request {
    Join(String),
    Send(u64),
}

type Opening = Pin<Box<dyn Future<Output = Result<(Ws, User), ClientError>> + Send>>;

struct Up {
    ws: Ws,
    socket: SocketId,
    last_rx: Instant,
    next_ping: Instant,
    /// Every room is joined on this socket (the outage, if any, is over).
    resumed: bool,
}

enum Link {
    Down { retry_at: Instant },
    Connecting(Opening),
    Up(Box<Up>),
}

enum LinkEvent {
    Frame(Option<Result<WsMessage, WsError>>),
    Opened(Box<Result<(Ws, User), ClientError>>),
}

/// The next thing the connection has to say; pending forever when it has nothing.
async fn link_event(link: &mut Link, paused: bool) -> LinkEvent {
    match link {
        Link::Up(up) if !paused => LinkEvent::Frame(up.ws.next().await),
        Link::Connecting(opening) => LinkEvent::Opened(Box::new(opening.await)),
        _ => std::future::pending().await,
    }
}

pub(crate) struct Driver {
    name: Arc<str>,
    cfg: ClientConfig,
    session: Arc<Session>,
    counters: Arc<Counters>,
    commands: mpsc::UnboundedReceiver<Command>,
    events: Option<mpsc::UnboundedSender<Event>>,
    paused: watch::Receiver<bool>,
    paused_open: bool,
    link: Link,
    /// Consecutive failures; the exponent of the reconnect backoff.
    attempt: u32,
    /// A `reconnect` notice asked to wait this long before reconnecting.
    reconnect_hint: Option<Duration>,
    /// An outage in progress (lost, not yet resumed).
    outage: bool,
    /// Resumed after an outage, some replay not complete yet.
    catching_up: bool,
    rooms: BTreeMap<String, Room>,
    sends: BTreeMap<u64, PendingSend>,
    by_client_msg_id: HashMap<String, u64>,
    next_send: u64,
    requests: HashMap<String, Request>,
    next_ref: u64,
    outbox: Vec<String>,
}

pub(crate) struct DriverParts {
    pub cfg: ClientConfig,
    pub session: Arc<Session>,
    pub counters: Arc<Counters>,
    pub commands: mpsc::UnboundedReceiver<Command>,
    pub events: Option<mpsc::UnboundedSender<Event>>,
    pub paused: watch::Receiver<bool>,
}

impl Driver {
    /// A driver that starts on the socket `Client::connect` opened.
    pub(crate) fn new(parts: DriverParts, ws: Ws, user: User) -> Self {
        let mut driver = Driver {
            name: Arc::from(parts.cfg.username.as_str()),
            cfg: parts.cfg,
            session: parts.session,
            counters: parts.counters,
            commands: parts.commands,
            events: parts.events,
            paused: parts.paused,
            paused_open: true,
            link: Link::Down {
                retry_at: Instant::now(),
            },
            attempt: 0,
            reconnect_hint: None,
            outage: false,
            catching_up: false,
            rooms: BTreeMap::new(),
            sends: BTreeMap::new(),
            by_client_msg_id: HashMap::new(),
            next_send: 0,
            requests: HashMap::new(),
            next_ref: 0,
            outbox: Vec::new(),
        };
        driver.opened(Ok((ws, user)));
        driver
    }

    pub(crate) async fn run(mut self) {
        loop {
            self.pump();
            if !self.flush().await {
                tracing::debug!(client = %self.name, "writing to the socket failed");
                self.lost(None);
                continue;
            }
            let wake = self.next_wake();
            let paused = *self.paused.borrow();
            tokio::select! {
                command = self.commands.recv() => match command {
                    // Every handle is gone: nobody can receive anything any more.
                    None => {
                        self.shutdown().await;
                        return;
                    }
                    Some(Command::Close { reply }) => {
                        self.shutdown().await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(command) => self.command(command),
                },
                event = link_event(&mut self.link, paused) => match event {
                    LinkEvent::Frame(frame) => self.frame(frame),
                    LinkEvent::Opened(result) => self.opened(*result),
                },
                changed = self.paused.changed(), if self.paused_open => {
                    if changed.is_err() {
                        self.paused_open = false;
                    }
                }
                _ = tokio::time::sleep_until(wake) => self.tick(),
            }
        }
    }

    fn socket(&self) -> Option<SocketId> {
        match &self.link {
            Link::Up(up) => Some(up.socket),
            _ => None,
        }
    }

    fn new_ref(&mut self) -> String {
        self.next_ref += 1;
        format!("c{}", self.next_ref)
    }

    fn emit(&self, event: Event) {
        if let Some(events) = &self.events {
            let _ = events.send(event);
        }
    }

    // ---- commands ------------------------------------------------------------------

    fn command(&mut self, command: Command) {
        match command {
            Command::Join {
                room,
                password,
                since,
                reply,
            } => {
                if let Some(existing) = self.rooms.get_mut(&room) {
                    match (&existing.info, existing.state) {
                        (Some(info), RoomState::Joined) => {
                            let _ = reply.send(Ok(info.clone()));
                        }
                        _ => existing.waiters.push(reply),
                    }
                    return;
                }
                self.rooms.insert(
                    room,
                    Room {
                        password,
                        state: RoomState::NeedJoin,
                        order: RoomOrder::starting_at(since),
                        joined_on_socket: false,
                        member: false,
                        first_since: since,
                        info: None,
                        waiters: vec![reply],
                        attempts: 0,
                    },
                );
            }
            Command::Leave { room, reply } => {
                if self.rooms.contains_key(&room) {
                    self.forget_room(&room, || ClientError::RoomGone(room.clone()));
                    if matches!(self.link, Link::Up(_)) {
                        self.outbox.push(wire::leave(&room));
                    }
                }
                let _ = reply.send(Ok(()));
            }
            Command::Send {
                room,
                body,
                client_msg_id,
                reply,
            } => {
                if !self.rooms.contains_key(&room) {
                    let _ = reply.send(Err(ClientError::NotJoined(room)));
                    return;
                }
                if self.by_client_msg_id.contains_key(&client_msg_id) {
                    let _ = reply.send(Err(ClientError::refused(
                        "conflict",
                        "a send with this client_msg_id is already pending",
                    )));
                    return;
                }
                self.counters.bump(|c| c.sends += 1);
                let key = self.next_send;
                self.next_send += 1;
                self.by_client_msg_id.insert(client_msg_id.clone(), key);
                self.sends.insert(
                    key,
                    PendingSend {
                        room,
                        body,
                        client_msg_id,
                        reply: Some(reply),
                        state: SendState::Queued,
                        written: 0,
                        attempts: 0,
                        forbidden: 0,
                    },
                );
            }
            Command::DropConnection => self.lost(None),
            Command::Close { .. } => {}
        }
    }

    /// Removes a room with its waiters and pending sends, failing them with `error`.
    fn forget_room(&mut self, room: &str, error: impl Fn() -> ClientError) {
        if let Some(state) = self.rooms.remove(room) {
            for waiter in state.waiters {
                let _ = waiter.send(Err(error()));
            }
        }
        let keys: Vec<u64> = self
            .sends
            .iter()
            .filter(|(_, s)| s.room == room)
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            self.fail_send(key, error());
        }
    }

    fn fail_send(&mut self, key: u64, error: ClientError) {
        if let Some(mut send) = self.sends.remove(&key) {
            self.by_client_msg_id.remove(&send.client_msg_id);
            if let Some(reply) = send.reply.take() {
                let _ = reply.send(Err(error));
            }
        }
    }

    // ---- writing -------------------------------------------------------------------

    /// Queues the joins and sends that are due on the current socket.
    fn pump(&mut self) {
        if !matches!(self.link, Link::Up(_)) {
            return;
        }
        let now = Instant::now();
        let due: Vec<String> = self
            .rooms
            .iter()
            .filter(|(_, r)| match r.state {
                RoomState::NeedJoin => true,
                RoomState::RetryAt(at) => at <= now,
                _ => false,
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            let reference = self.new_ref();
            let Some(room) = self.rooms.get_mut(&name) else {
                continue;
            };
            if room.order.catching_up() {
                self.counters.bump(|c| c.catch_up_joins += 1);
            }
            self.outbox.push(wire::join(
                &reference,
                &name,
                room.password.as_deref(),
                room.order.since(),
            ));
            room.state = RoomState::Joining;
            self.requests.insert(reference, Request::Join(name));
        }
        let mut in_flight = self
            .sends
            .values()
            .filter(|s| s.state == SendState::InFlight)
            .count();
        let ready: Vec<u64> = self
            .sends
            .iter()
            .filter(|(_, s)| match s.state {
                SendState::Queued => true,
                SendState::RetryAt(at) => at <= now,
                SendState::InFlight => false,
            })
            // Joined on this socket is enough: during a catch-up the server already
            // counts the socket as a member.
            .filter(|(_, s)| self.rooms.get(&s.room).is_some_and(|r| r.joined_on_socket))
            .map(|(k, _)| *k)
            .collect();
        for key in ready {
            if in_flight >= self.cfg.max_in_flight {
                break;
            }
            let reference = self.new_ref();
            let Some(send) = self.sends.get_mut(&key) else {
                continue;
            };
            self.outbox.push(wire::send(
                &reference,
                &send.room,
                &send.body,
                &send.client_msg_id,
            ));
            if send.written > 0 {
                self.counters.bump(|c| c.resends += 1);
            }
            send.written += 1;
            send.state = SendState::InFlight;
            self.requests.insert(reference, Request::Send(key));
            in_flight += 1;
        }
    }

    /// Writes the queued frames; `false` when the socket failed.
    async fn flush(&mut self) -> bool {
        if self.outbox.is_empty() {
            return true;
        }
        let frames = std::mem::take(&mut self.outbox);
        let Link::Up(up) = &mut self.link else {
            return true;
        };
        let write = async {
            for frame in frames {
                up.ws.feed(WsMessage::text(frame)).await?;
            }
            up.ws.flush().await
        };
        // A socket that does not take a few frames within the connect timeout is as
        // good as gone.
        matches!(
            tokio::time::timeout(self.cfg.connect_timeout, write).await,
            Ok(Ok(()))
        )
    }

    // ---- timers --------------------------------------------------------------------

    fn next_wake(&self) -> Instant {
        let mut wake = Instant::now() + Duration::from_secs(3600);
        match &self.link {
            Link::Down { retry_at } => wake = wake.min(*retry_at),
            Link::Up(up) => {
                wake = wake.min(up.next_ping);
                wake = wake.min(up.last_rx + self.cfg.liveness_timeout);
            }
            Link::Connecting(_) => {}
        }
        for room in self.rooms.values() {
            if let RoomState::RetryAt(at) = room.state {
                wake = wake.min(at);
            }
        }
        for send in self.sends.values() {
            if let SendState::RetryAt(at) = send.state {
                wake = wake.min(at);
            }
        }
        wake
    }

    fn tick(&mut self) {
        let now = Instant::now();
        let paused = *self.paused.borrow();
        match &mut self.link {
            Link::Down { retry_at } if *retry_at <= now => {
                tracing::debug!(client = %self.name, "connecting");
                let session = self.session.clone();
                let limit = self.cfg.connect_timeout;
                self.link = Link::Connecting(Box::pin(async move {
                    match tokio::time::timeout(limit, session.open()).await {
                        Ok(result) => result,
                        Err(_) => Err(ClientError::Connect(format!("no hello within {limit:?}"))),
                    }
                }));
            }
            Link::Up(up) => {
                if up.next_ping <= now {
                    up.next_ping = now + self.cfg.ping_interval;
                    self.outbox.push(wire::ping());
                }
                // A paused reader cannot tell a silent socket from a dead one.
                if !paused && now.duration_since(up.last_rx) >= self.cfg.liveness_timeout {
                    tracing::info!(client = %self.name, "socket silent past the liveness timeout; replacing it");
                    self.lost(None);
                }
            }
            _ => {}
        }
    }

    // ---- connection ----------------------------------------------------------------

    fn opened(&mut self, result: Result<(Ws, User), ClientError>) {
        let now = Instant::now();
        match result {
            Ok((ws, _user)) => {
                let socket = SocketId::next();
                tracing::debug!(client = %self.name, %socket, rooms = self.rooms.len(), "socket open; joining rooms");
                if let Some(observer) = &self.cfg.observer {
                    observer.socket_opened(&self.name, socket);
                }
                let outage = self.outage;
                self.counters.bump(|c| {
                    c.sockets += 1;
                    if outage && let Some(last) = c.outages.last_mut() {
                        last.sockets += 1;
                    }
                });
                self.link = Link::Up(Box::new(Up {
                    ws,
                    socket,
                    last_rx: now,
                    next_ping: now + self.cfg.ping_interval,
                    resumed: false,
                }));
                for room in self.rooms.values_mut() {
                    room.state = RoomState::NeedJoin;
                    room.joined_on_socket = false;
                }
                self.check_resumed();
            }
            Err(e) => {
                self.counters.bump(|c| {
                    c.failed_connects += 1;
                    c.last_connect_error = Some(e.to_string());
                });
                let delay = self.cfg.reconnect.delay(self.attempt);
                self.attempt = self.attempt.saturating_add(1);
                tracing::debug!(client = %self.name, error = %e, retry_in_ms = delay.as_millis() as u64, "connecting failed");
                self.link = Link::Down {
                    retry_at: now + delay,
                };
            }
        }
    }

    /// The socket is gone (or is being dropped): everything in flight is queued again
    /// for the next one.
    fn lost(&mut self, code: Option<u16>) {
        let now = Instant::now();
        let previous = std::mem::replace(&mut self.link, Link::Down { retry_at: now });
        let Link::Up(up) = previous else {
            self.link = previous;
            return;
        };
        let socket = up.socket;
        drop(up);
        if let Some(observer) = &self.cfg.observer {
            observer.socket_closed(&self.name, socket, code);
        }
        let started = !self.outage;
        self.outage = true;
        self.catching_up = false;
        self.counters.bump(|c| {
            c.connected = false;
            c.disconnects += 1;
            *c.close_codes.entry(code.unwrap_or(1006)).or_default() += 1;
            if started {
                c.outages.push(Outage {
                    lost_at: now.into_std(),
                    resumed_at: None,
                    caught_up_at: None,
                    close_code: code,
                    sockets: 0,
                });
            }
        });
        for room in self.rooms.values_mut() {
            room.state = RoomState::NeedJoin;
            room.joined_on_socket = false;
            room.order.reset();
        }
        for send in self.sends.values_mut() {
            if send.state == SendState::InFlight {
                send.state = SendState::Queued;
            }
        }
        self.requests.clear();
        self.outbox.clear();
        // A drain (`reconnect` notice, 1012) or a slow-consumer close (4008) is not a
        // failure of the service: come back at once, spread by jitter. Anything else
        // backs off.
        let delay = match (self.reconnect_hint.take(), code) {
            (Some(after), _) => after + self.cfg.reconnect.delay(0),
            (None, Some(1001 | 1012 | 4008)) => self.cfg.reconnect.delay(0),
            _ => {
                let delay = self.cfg.reconnect.delay(self.attempt);
                self.attempt = self.attempt.saturating_add(1);
                delay
            }
        };
        tracing::debug!(client = %self.name, %socket, ?code, retry_in_ms = delay.as_millis() as u64, "socket lost");
        self.link = Link::Down {
            retry_at: now + delay,
        };
        self.emit(Event::Disconnected { code });
    }

    /// Marks the outage over once every room is joined on the current socket, and
    /// caught up once every room's replay is complete.
    fn check_resumed(&mut self) {
        let joined = self.rooms.values().all(|r| r.joined_on_socket);
        let complete = self.rooms.values().all(|r| r.state == RoomState::Joined);
        let Link::Up(up) = &mut self.link else {
            return;
        };
        let socket = up.socket;
        let resumes = !up.resumed && joined;
        if resumes {
            up.resumed = true;
        }
        let resumed = up.resumed;
        let now = Instant::now().into_std();
        if resumes {
            tracing::debug!(client = %self.name, %socket, "every room joined");
            self.attempt = 0;
            let ended = std::mem::take(&mut self.outage);
            self.catching_up = ended;
            self.counters.bump(|c| {
                c.connected = true;
                if ended {
                    c.reconnects += 1;
                    if let Some(outage) = c.outages.last_mut() {
                        outage.resumed_at = Some(now);
                    }
                }
            });
            if ended {
                self.emit(Event::Resumed);
            }
        }
        if resumed && complete && std::mem::take(&mut self.catching_up) {
            tracing::debug!(client = %self.name, %socket, "every replay complete");
            self.counters.bump(|c| {
                if let Some(outage) = c.outages.last_mut() {
                    outage.caught_up_at = Some(now);
                }
            });
        }
    }

    async fn shutdown(&mut self) {
        if let Link::Up(up) = &mut self.link {
            let _ = tokio::time::timeout(CLOSE_GRACE, up.ws.close(None)).await;
            if let Some(observer) = &self.cfg.observer {
                observer.socket_closed(&self.name, up.socket, Some(1000));
            }
        }
        self.link = Link::Down {
            retry_at: Instant::now() + Duration::from_secs(3600),
        };
        let keys: Vec<u64> = self.sends.keys().copied().collect();
        for key in keys {
            self.fail_send(key, ClientError::Closed);
        }
        for (_, room) in std::mem::take(&mut self.rooms) {
            for waiter in room.waiters {
                let _ = waiter.send(Err(ClientError::Closed));
            }
        }
    }

    // ---- reading -------------------------------------------------------------------

    fn frame(&mut self, frame: Option<Result<WsMessage, WsError>>) {
        if let Link::Up(up) = &mut self.link {
            up.last_rx = Instant::now();
        }
        match frame {
            Some(Ok(WsMessage::Text(text))) => match ServerFrame::parse(&text) {
                Ok(frame) => self.server_frame(frame),
                Err(e) => {
                    tracing::warn!(client = %self.name, error = %e, "ignoring a frame that does not parse")
                }
            },
            Some(Ok(WsMessage::Close(close))) => {
                self.lost(Some(close.map_or(1005, |c| u16::from(c.code))));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                tracing::debug!(client = %self.name, error = %e, "socket failed");
                self.lost(None);
            }
            None => self.lost(None),
        }
    }

    fn deliver(&mut self, messages: Vec<Message>, duplicates: u64) {
        let count = messages.len() as u64;
        self.counters.bump(|c| {
            c.delivered += count;
            c.duplicates_dropped += duplicates;
        });
        for message in messages {
            if let Some(observer) = &self.cfg.observer {
                observer.delivered(&self.name, &message);
            }
            self.emit(Event::Message(message));
        }
    }

    fn server_frame(&mut self, frame: ServerFrame) {
        let socket = self.socket();
        match frame {
            ServerFrame::Joined {
                reference,
                room,
                last_seq,
                presence,
                recovered,
                has_more,
            } => {
                if let Some(reference) = reference {
                    self.requests.remove(&reference);
                }
                self.joined(socket, room, last_seq, presence, recovered, has_more);
            }
            ServerFrame::Ack {
                reference,
                client_msg_id,
                id,
                seq,
                ts,
            } => {
                if let Some(reference) = reference {
                    self.requests.remove(&reference);
                }
                let Some(key) = self.by_client_msg_id.remove(&client_msg_id) else {
                    tracing::debug!(client = %self.name, client_msg_id, "ack of no pending send");
                    return;
                };
                let Some(mut send) = self.sends.remove(&key) else {
                    return;
                };
                let ack = Ack {
                    room: send.room.clone(),
                    client_msg_id,
                    id,
                    seq,
                    ts,
                };
                if let (Some(observer), Some(socket)) = (&self.cfg.observer, socket) {
                    observer.acked(&self.name, socket, &ack);
                }
                self.counters.bump(|c| c.acked += 1);
                if let Some(reply) = send.reply.take() {
                    let _ = reply.send(Ok(ack));
                }
            }
            ServerFrame::Message(message) => {
                if let (Some(observer), Some(socket)) = (&self.cfg.observer, socket) {
                    observer.received(&self.name, socket, &message, Via::Live);
                }
                let Some(room) = self.rooms.get_mut(&message.room) else {
                    return;
                };
                match room.order.live(message) {
                    (Admission::Delivered, Some(message)) => self.deliver(vec![message], 0),
                    (Admission::Duplicate, _) => self.deliver(Vec::new(), 1),
                    _ => {}
                }
            }
            ServerFrame::Error {
                reference,
                code,
                message,
                retry_after_ms,
            } => {
                let request = reference.and_then(|r| self.requests.remove(&r));
                match request {
                    Some(Request::Send(key)) => {
                        self.send_refused(key, &code, &message, retry_after_ms)
                    }
                    Some(Request::Join(room)) => {
                        self.join_refused(&room, &code, &message, retry_after_ms)
                    }
                    None => tracing::debug!(client = %self.name, code, message, "server error"),
                }
            }
            ServerFrame::Reconnect { after_ms } => {
                self.reconnect_hint = Some(Duration::from_millis(after_ms));
                self.counters.bump(|c| c.reconnect_notices += 1);
            }
            ServerFrame::RoomDeleted { room } => {
                if self.rooms.contains_key(&room) {
                    self.forget_room(&room, || ClientError::RoomGone(room.clone()));
                    self.emit(Event::RoomGone {
                        room,
                        reason: "deleted".into(),
                    });
                }
            }
            ServerFrame::Presence { room, user, event } => self.emit(Event::Presence {
                room,
                user,
                joined: event == "join",
            }),
            ServerFrame::Typing { room, user } => self.emit(Event::Typing { room, user }),
            ServerFrame::Receipt { room, user, seq } => {
                self.emit(Event::Receipt { room, user, seq })
            }
            ServerFrame::Hello { .. } | ServerFrame::Other => {}
        }
    }

    fn joined(
        &mut self,
        socket: Option<SocketId>,
        info: wire::RoomInfo,
        last_seq: u64,
        presence: Vec<User>,
        recovered: Option<Vec<Message>>,
        has_more: bool,
    ) {
        let Some(room) = self.rooms.get_mut(&info.name) else {
            // Left meanwhile; the `leave` frame follows the join on the socket.
            return;
        };
        let recovered = recovered.unwrap_or_default();
        if let (Some(observer), Some(socket)) = (&self.cfg.observer, socket) {
            let via = if room.joined_on_socket {
                Via::CatchUp
            } else {
                Via::Recovered
            };
            for message in &recovered {
                observer.received(&self.name, socket, message, via);
            }
            if !room.member {
                observer.member_since(&self.name, &info.name, room.first_since.unwrap_or(last_seq));
            }
        }
        room.member = true;
        room.joined_on_socket = true;
        let (out, duplicates) = room.order.joined(last_seq, recovered, has_more);
        let mut waiters = Vec::new();
        let mut answer = None;
        if has_more {
            // The replay was cut: ask for the rest at once, still on this socket.
            room.state = RoomState::NeedJoin;
        } else {
            room.state = RoomState::Joined;
            room.attempts = 0;
            let joined = Joined {
                room: info.name.clone(),
                room_id: info.id,
                last_seq,
                presence,
            };
            room.info = Some(joined.clone());
            waiters = std::mem::take(&mut room.waiters);
            answer = Some(joined);
        }
        self.deliver(out, duplicates);
        if let Some(joined) = answer {
            for waiter in waiters {
                let _ = waiter.send(Ok(joined.clone()));
            }
        }
        self.check_resumed();
    }

    fn retry_delay(&self, attempts: u32, retry_after_ms: Option<u64>) -> Duration {
        match retry_after_ms {
            Some(ms) => Duration::from_millis(ms),
            None => self.cfg.retry.delay(attempts.saturating_sub(1)),
        }
    }

    fn send_refused(&mut self, key: u64, code: &str, message: &str, retry_after_ms: Option<u64>) {
        let Some(send) = self.sends.get_mut(&key) else {
            return;
        };
        if let Some(observer) = &self.cfg.observer {
            observer.send_refused(&self.name, &send.room, &send.client_msg_id, code);
        }
        if retryable(code) {
            send.attempts += 1;
            let attempts = send.attempts;
            let delay = self.retry_delay(attempts, retry_after_ms);
            if let Some(send) = self.sends.get_mut(&key) {
                send.state = SendState::RetryAt(Instant::now() + delay);
            }
            self.counters.bump(|c| {
                c.retries += 1;
                if code == "unavailable" {
                    c.unavailable += 1;
                }
            });
            return;
        }
        if code == "forbidden" && send.forbidden < MAX_FORBIDDEN {
            // The socket does not count the room as joined (a join lost in a race with
            // a server-side change): join again, then send again.
            send.forbidden += 1;
            send.state = SendState::Queued;
            let room = send.room.clone();
            if let Some(room) = self.rooms.get_mut(&room)
                && room.state != RoomState::Joining
            {
                room.state = RoomState::NeedJoin;
                room.joined_on_socket = false;
            }
            return;
        }
        self.fail_send(key, ClientError::refused(code, message));
    }

    fn join_refused(&mut self, name: &str, code: &str, message: &str, retry_after_ms: Option<u64>) {
        if retryable(code) {
            let Some(room) = self.rooms.get_mut(name) else {
                return;
            };
            room.attempts += 1;
            let attempts = room.attempts;
            let delay = self.retry_delay(attempts, retry_after_ms);
            if let Some(room) = self.rooms.get_mut(name) {
                room.state = RoomState::RetryAt(Instant::now() + delay);
            }
            self.counters.bump(|c| c.retries += 1);
            return;
        }
        if !self.rooms.contains_key(name) {
            return;
        }
        let reason = format!("{code}: {message}");
        self.forget_room(name, || ClientError::refused(code, message));
        self.emit(Event::RoomGone {
            room: name.to_string(),
            reason,
        });
        self.check_resumed();
    }
}
