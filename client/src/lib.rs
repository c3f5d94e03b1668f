//! The resilient ChatX client: what we tell users to copy.
//!
//! A [`Client`] keeps one WebSocket to ChatX (usually through a load balancer) and
//! hides every kind of connection trouble from the application:
//!
//! ```no_run
//! # async fn demo() -> Result<(), chatx_client::ClientError> {
//! use chatx_client::{Client, ClientConfig, Event};
//! let client = Client::connect(ClientConfig::new("http://127.0.0.1:8080", "ann", "secret-pw")).await?;
//! client.join("lobby").await?;
//! let ack = client.send("lobby", "hello").await?; // resolves only once stored
//! println!("stored as seq {}", ack.seq);
//! while let Some(event) = client.next_event().await {
//!     if let Event::Message(m) = event {
//!         println!("{} #{}: {}", m.room, m.seq, m.body);
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # The contract
//!
//! - **Reconnect.** A lost socket (gateway killed or drained, load balancer reset,
//!   slow-consumer close 4008, silence past [`ClientConfig::liveness_timeout`]) is
//!   replaced with exponential backoff and full jitter ([`Backoff`]). A drain notice
//!   (`reconnect`, close 1012) or a 4008 is answered at once (within the jitter).
//! - **Re-authenticate.** A token refused at the upgrade is refreshed; when the refresh
//!   token is refused too (session revoked or lost), the client signs in again with the
//!   password.
//! - **Resume.** Every joined room is joined again with `since` = the seq of the last
//!   message the application received in it. When the server cuts the replay
//!   (`has_more`), the client joins again from where the replay stopped, holding the
//!   live feed back until the gap is filled.
//! - **Exactly once, in order.** Per room, the application sees each message once, in
//!   increasing seq order ([`Event::Message`]): duplicates (replays overlapping the live
//!   feed, resends) are dropped by seq, and a second copy of a message id under a new
//!   seq (a retry stored again after the server's dedup window) by id. Messages before
//!   the first join are not delivered unless [`JoinOptions::since`] asks for them.
//! - **Sends are acknowledged or retried, never assumed.** [`Client::send`] resolves
//!   only on the server's `ack`, which means the message is durable. A send in flight
//!   when the socket is lost, or answered with a transient error (`unavailable`,
//!   `internal`, `rate_limited`), is written again later with the SAME `client_msg_id`,
//!   so the server stores it at most once and acks a retry with the original seq.
//!   Only final refusals (`forbidden`, `too_large`, ...) fail a send. A send pending
//!   when the client is closed fails with [`ClientError::Closed`]: it may or may not
//!   have been stored. Sends of one client may be acked out of submission order.
//! - **Never silently lost.** A room that cannot be joined any more (deleted, access
//!   revoked) ends with [`Event::RoomGone`] and fails its pending sends.
//!
//! [`Client::stats`] counts reconnects, resends, `unavailable` answers and outages.
//! An [`observer::Observer`] sees every socket, ack and delivery; the
//! [`checker::Checker`] uses that to prove the contract under faults. `docs/client.md`
//! explains the protocol steps behind each point.
//!
//! # Layout
//! - `config`, `backoff`: [`ClientConfig`] and the retry timing.
//! - `session`: sign-in, token renewal, socket upgrade up to `hello`.
//! - `driver`: the one task that owns socket, rooms and pending sends.
//! - `order`: per-room de-duplication and ordering (pure, unit-tested).
//! - `wire`: the JSON frames. `stats`: counters. `error`: [`ClientError`].
//! - [`observer`], [`checker`]: delivery accounting for tests.

#![forbid(unsafe_code)]

mod backoff;
pub mod checker;
mod config;
mod driver;
mod error;
pub mod observer;
mod order;
mod session;
mod stats;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use uuid::Uuid;

pub use backoff::Backoff;
pub use config::ClientConfig;
pub use error::ClientError;
pub use stats::{Outage, Stats};
pub use wire::{Message, User};

use driver::{Command, Driver, DriverParts};
use session::Session;
use stats::Counters;

/// The server's answer to a send: the message is stored under `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub room: String,
    pub client_msg_id: String,
    /// The message id (derived from the user and `client_msg_id`).
    pub id: Uuid,
    pub seq: u64,
    pub ts: String,
}

/// A completed join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub room: String,
    pub room_id: Uuid,
    /// The room's latest seq when the join completed.
    pub last_seq: u64,
    /// Users present.
    pub presence: Vec<User>,
}

/// Options of [`Client::join_with`].
#[derive(Debug, Clone, Default)]
pub struct JoinOptions {
    /// Password of a private room (needed once; afterwards the user is a member).
    pub password: Option<String>,
    /// Also deliver the room's messages after this seq (e.g. the last one a previous
    /// run of the application saw). `None`: start at the room's head.
    pub since: Option<u64>,
}

/// What the client tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The next message of a room: once, in seq order.
    Message(Message),
    Presence {
        room: String,
        user: User,
        /// `true` for a join, `false` for a leave.
        joined: bool,
    },
    Typing {
        room: String,
        user: User,
    },
    Receipt {
        room: String,
        user: User,
        seq: u64,
    },
    /// The room cannot be followed any more (deleted, or a join refused for good).
    RoomGone {
        room: String,
        reason: String,
    },
    /// The socket was lost; the client is reconnecting. `code` is the close code.
    Disconnected {
        code: Option<u16>,
    },
    /// A new socket has re-joined every room.
    Resumed,
}

struct Inner {
    commands: mpsc::UnboundedSender<Command>,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<Event>>,
    counters: Arc<Counters>,
    paused: watch::Sender<bool>,
    user: User,
}

/// A resilient connection to ChatX. Cheap to clone; the connection closes when the
/// last clone is dropped or [`Client::close`] is called.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("user", &self.inner.user.username)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Signs in (registering first when [`ClientConfig::register`] is set) and opens
    /// the first socket, retrying transient failures for
    /// [`ClientConfig::initial_connect_timeout`]. Refused credentials fail at once.
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        let counters = Arc::new(Counters::default());
        let session = Arc::new(Session::new(
            &config.base_url,
            &config.username,
            &config.password,
            config.recv_buffer_bytes,
            counters.clone(),
        )?);
        let deadline = Instant::now() + config.initial_connect_timeout;
        let mut attempt = 0;
        let (ws, user) = loop {
            let result = async {
                if config.register {
                    session.register().await?;
                }
                session.open().await
            };
            let error = match tokio::time::timeout(config.connect_timeout, result).await {
                Ok(Ok(opened)) => break opened,
                Ok(Err(e @ (ClientError::Credentials(_) | ClientError::Config(_)))) => {
                    return Err(e);
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no hello within {:?}", config.connect_timeout),
            };
            let delay = config.reconnect.delay(attempt);
            attempt += 1;
            if Instant::now() + delay >= deadline {
                return Err(ClientError::Connect(error));
            }
            tokio::time::sleep(delay).await;
        };
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (event_tx, event_rx) = mpsc::unbounded_channel();
        let (paused, paused_rx) = watch::channel(false);
        let parts = DriverParts {
            events: config.emit_events.then_some(event_tx),
            cfg: config,
            session,
            counters: counters.clone(),
            commands: command_rx,
            paused: paused_rx,
        };
        tokio::spawn(Driver::new(parts, ws, user.clone()).run());
        Ok(Client {
            inner: Arc::new(Inner {
                commands,
                events: tokio::sync::Mutex::new(event_rx),
                counters,
                paused,
                user,
            }),
        })
    }

    async fn call<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, ClientError>>) -> Command,
    ) -> Result<T, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(command(reply))
            .map_err(|_| ClientError::Closed)?;
        answer.await.map_err(|_| ClientError::Closed)?
    }

    /// The signed-in user.
    pub fn user(&self) -> &User {
        &self.inner.user
    }

    /// Joins a public room (or one the user is a member of) from its head on. The
    /// client re-joins it after every reconnect until [`Client::leave`].
    pub async fn join(&self, room: &str) -> Result<Joined, ClientError> {
        self.join_with(room, JoinOptions::default()).await
    }

    pub async fn join_with(&self, room: &str, options: JoinOptions) -> Result<Joined, ClientError> {
        self.call(|reply| Command::Join {
            room: room.to_string(),
            password: options.password,
            since: options.since,
            reply,
        })
        .await
    }

    /// Stops following a room; its pending sends fail with [`ClientError::RoomGone`].
    pub async fn leave(&self, room: &str) -> Result<(), ClientError> {
        self.call(|reply| Command::Leave {
            room: room.to_string(),
            reply,
        })
        .await
    }

    /// Sends a message with a fresh `client_msg_id`; resolves once acknowledged (see
    /// the crate doc for the retry rules).
    pub async fn send(&self, room: &str, body: &str) -> Result<Ack, ClientError> {
        self.send_with_id(room, body, &Uuid::new_v4().to_string())
            .await
    }

    /// Like [`Client::send`] with the caller's `client_msg_id` (1-64 printable ASCII
    /// characters, unique per user): an application that persists it can retry a send
    /// across restarts of its own and still store the message once.
    pub async fn send_with_id(
        &self,
        room: &str,
        body: &str,
        client_msg_id: &str,
    ) -> Result<Ack, ClientError> {
        self.call(|reply| Command::Send {
            room: room.to_string(),
            body: body.to_string(),
            client_msg_id: client_msg_id.to_string(),
            reply,
        })
        .await
    }

    /// The next event; `None` once the client is closed (or when
    /// [`ClientConfig::emit_events`] is off). Events queue up until read.
    pub async fn next_event(&self) -> Option<Event> {
        self.inner.events.lock().await.recv().await
    }

    /// Like [`Client::next_event`], giving up after `wait`.
    pub async fn next_event_within(&self, wait: Duration) -> Option<Event> {
        tokio::time::timeout(wait, self.next_event())
            .await
            .ok()
            .flatten()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// Stops (`true`) or resumes (`false`) reading the socket, as an application that
    /// stalls would. For slow-consumer tests: the server's queue for this socket fills
    /// up and it is closed (4008); after resuming, the client reconnects and resumes.
    pub fn pause_reading(&self, paused: bool) {
        self.inner.paused.send_replace(paused);
    }

    /// Drops the socket without a goodbye, as a network failure would. The client
    /// reconnects and resumes like after any other loss.
    pub fn drop_connection(&self) {
        let _ = self.inner.commands.send(Command::DropConnection);
    }

    /// Closes the socket; pending sends fail with [`ClientError::Closed`].
    pub async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.inner.commands.send(Command::Close { reply }).is_ok() {
            let _ = done.await;
        }
    }
}
