//! The distributed bus: NATS JetStream stores room messages, core NATS fans them out.
//!
//! Holds [`NatsBus`] (publish, room feeds with gap filling, replay, events) and its
//! durable persist consumer. It must not hold anything a gateway or worker decides
//! (membership, rate limits, persistence): only the mapping of the [`Bus`] contract
//! onto NATS subjects, the stream and its consumers (DESIGN.md section 4).
//!
//! Subjects, all behind `subject_prefix`: `chat.room.<id>` is stored in the stream,
//! which republishes every stored message to `fanout.room.<id>` with the headers
//! `Nats-Sequence` (its seq) and `Nats-Last-Sequence` (the previous seq of the same
//! room). A room feed is a core subscription on the fanout subject; the second header
//! tells it when it missed a message, which it then reads back from the stream.

use std::collections::VecDeque;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::client::RequestErrorKind;
use async_nats::header::{NATS_LAST_SEQUENCE, NATS_MESSAGE_ID, NATS_SEQUENCE};
use async_nats::jetstream::consumer::pull::{self, OrderedConfig};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::stream::{
    self as js_stream, DiscardPolicy, RawMessageErrorKind, Republish, RetentionPolicy, StorageType,
};
use async_nats::jetstream::{self, Context};
use async_nats::{Client, ConnectOptions, Event, HeaderMap, Subscriber};
use bytes::Bytes;
use futures_util::{StreamExt, future, stream};
use uuid::Uuid;

use super::{
    Bus, BusError, BusEvent, EventFeed, NewMessage, PersistConsumer, PublishAck, Replay, RoomFeed,
    StoredMessage, Topic,
};

/// A replay or gap of up to this many messages is read with one `STREAM.MSG.GET` each:
/// the common resume (a few messages) costs no consumer. Longer ones stream the rest
/// through one ordered consumer instead of a round trip per message.
const DIRECT_READS: usize = 16;
/// Ack wait of the persist consumer: how long the batch of a crashed worker waits
/// before another worker gets it. A live worker that holds a batch longer (database
/// down) sends progress acks on every retry; should one come late, the redelivered
/// batch is inserted idempotently, so a short wait costs at most some repeated work.
const PERSIST_ACK_WAIT: Duration = Duration::from_secs(5);
/// Un-acked messages the persist consumer hands out across all workers.
const PERSIST_MAX_ACK_PENDING: i64 = 8192;
/// Messages one worker's pull stream asks for at a time.
const PERSIST_PULL: usize = 256;
/// A pull request's lifetime, and the heartbeat that tells a dead one from a quiet one.
const PERSIST_PULL_EXPIRES: Duration = Duration::from_secs(30);
const PERSIST_PULL_HEARTBEAT: Duration = Duration::from_secs(10);
/// How long a batch waits for more messages after its first: fewer, larger inserts.
const PERSIST_LINGER: Duration = Duration::from_millis(20);

/// Settings of [`NatsBus`]. The defaults match the gateway's settings defaults.
#[derive(Debug, Clone)]
pub struct NatsBusOptions {
    /// JetStream stream holding room messages.
    pub stream: String,
    /// Put before every subject (`<prefix>chat.room.<id>`), so that several
    /// deployments (or tests) can share one NATS; streams must not overlap.
    pub subject_prefix: String,
    /// Retention limits; older messages are served from the database.
    /// `Duration::ZERO` keeps messages forever.
    pub max_age: Duration,
    /// `None`: no limit on the message count.
    pub max_messages: Option<u64>,
    /// `None`: no limit on the stream size.
    pub max_bytes: Option<u64>,
    /// A publish repeating a `Nats-Msg-Id` within this window stores nothing.
    pub duplicate_window: Duration,
    /// Durable name of the persist consumer that all workers share.
    pub consumer: String,
    /// How long `publish` (and any other broker round trip) waits before answering
    /// [`BusError::Unavailable`].
    pub publish_timeout: Duration,
}

impl Default for NatsBusOptions {
    fn default() -> Self {
        Self {
            stream: "CHAT".into(),
            subject_prefix: String::new(),
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_messages: None,
            max_bytes: None,
            duplicate_window: Duration::from_secs(120),
            consumer: "persist".into(),
            publish_timeout: Duration::from_secs(5),
        }
    }
}

/// Connection state as the client's event callback reports it.
#[derive(Debug, Default)]
struct Link {
    connected: AtomicBool,
    /// Disconnects and slow-consumer drops seen so far: the only ways a core
    /// subscription loses messages. Room feeds compare it to decide whether a gap they
    /// cannot read back any more may have held messages (see `Feed::fill_gap`).
    losses: AtomicU64,
}

impl Link {
    fn on_event(&self, event: Event) {
        match event {
            Event::Connected => {
                tracing::info!("NATS connected");
                self.connected.store(true, Ordering::SeqCst);
            }
            Event::Disconnected => {
                tracing::warn!("NATS disconnected; reconnecting");
                self.connected.store(false, Ordering::SeqCst);
                self.losses.fetch_add(1, Ordering::SeqCst);
            }
            Event::Closed => {
                self.connected.store(false, Ordering::SeqCst);
            }
            Event::SlowConsumer(sid) => {
                tracing::warn!(sid, "NATS subscription dropped messages (slow consumer)");
                self.losses.fetch_add(1, Ordering::SeqCst);
            }
            other => tracing::warn!(event = %other, "NATS"),
        }
    }

    fn losses(&self) -> u64 {
        self.losses.load(Ordering::SeqCst)
    }
}

fn unavailable(what: &str, e: impl Display) -> BusError {
    BusError::Unavailable(format!("{what}: {e}"))
}

/// Bounds a broker round trip: async-nats queues commands while it reconnects, so
/// without a deadline a caller would wait for as long as the outage lasts.
async fn within<T, E: Display>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, BusError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(unavailable(what, e)),
        Err(_) => Err(BusError::Unavailable(format!(
            "{what}: no answer from NATS within {limit:?}"
        ))),
    }
}

/// A stored payload; `None` (logged) for anything that is not a [`NewMessage`], which
/// only a foreign publisher on our subjects can produce.
fn decode(seq: u64, payload: &[u8]) -> Option<Arc<StoredMessage>> {
    match serde_json::from_slice::<NewMessage>(payload) {
        Ok(message) => Some(Arc::new(StoredMessage { seq, message })),
        Err(e) => {
            tracing::warn!(seq, error = %e, "skipping a stream message that is not a chat message");
            None
        }
    }
}

/// Reads of the stream shared by the bus and its room feeds.
#[derive(Clone)]
struct Store {
    stream: js_stream::Stream<()>,
    timeout: Duration,
}

impl Store {
    /// Retained messages of `subject` with `after < seq < before`, oldest first.
    async fn read(
        &self,
        subject: &str,
        after: u64,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Arc<StoredMessage>>, BusError> {
        let mut out = Vec::new();
        let mut next = after + 1;
        for _ in 0..DIRECT_READS {
            if out.len() >= limit {
                return Ok(out);
            }
            // The stream leader answers, so this sees every message it has republished
            // (a direct get may be served by a replica that is behind).
            let got = tokio::time::timeout(
                self.timeout,
                self.stream.get_first_raw_message_by_subject(subject, next),
            )
            .await
            .map_err(|_| unavailable("reading room messages", "timed out"))?;
            let raw = match got {
                Ok(raw) => raw,
                Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => return Ok(out),
                Err(e) => return Err(unavailable("reading room messages", e)),
            };
            if before.is_some_and(|before| raw.sequence >= before) {
                return Ok(out);
            }
            next = raw.sequence + 1;
            out.extend(decode(raw.sequence, &raw.payload));
        }
        if out.len() < limit {
            let rest = limit - out.len();
            out.extend(self.read_with_consumer(subject, next, before, rest).await?);
        }
        Ok(out)
    }

    /// The long tail of [`Store::read`]: one ordered consumer from `from` on.
    async fn read_with_consumer(
        &self,
        subject: &str,
        from: u64,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Arc<StoredMessage>>, BusError> {
        let consumer = within(
            self.timeout,
            "creating a replay consumer",
            self.stream.create_consumer(OrderedConfig {
                filter_subject: subject.to_string(),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: from,
                },
                ..Default::default()
            }),
        )
        .await?;
        let name = consumer.cached_info().name.clone();
        let mut out = Vec::new();
        if consumer.cached_info().num_pending > 0 {
            let mut messages =
                within(self.timeout, "reading room messages", consumer.messages()).await?;
            // Per message, not overall: a long replay is fine as long as it moves.
            while let Some(message) = within(self.timeout, "reading room messages", async {
                messages.next().await.transpose()
            })
            .await?
            {
                let info = message
                    .info()
                    .map_err(|e| BusError::Other(format!("replay message metadata: {e}")))?;
                let (seq, pending) = (info.stream_sequence, info.pending);
                if before.is_some_and(|before| seq >= before) {
                    break;
                }
                out.extend(decode(seq, &message.payload));
                if pending == 0 || out.len() >= limit {
                    break;
                }
            }
        }
        // The ephemeral consumer would expire on its own after 30 s of inactivity;
        // deleting it keeps a burst of resumes from piling consumers up. Nobody waits
        // for that.
        let stream = self.stream.clone();
        tokio::spawn(async move {
            if let Err(e) = stream.delete_consumer(&name).await {
                tracing::debug!(error = %e, "deleting a replay consumer");
            }
        });
        Ok(out)
    }

    /// The room's latest retained seq.
    async fn head(&self, subject: &str) -> Result<Option<u64>, BusError> {
        let got = tokio::time::timeout(
            self.timeout,
            self.stream.get_last_raw_message_by_subject(subject),
        )
        .await
        .map_err(|_| unavailable("reading the room head", "timed out"))?;
        match got {
            Ok(raw) => Ok(Some(raw.sequence)),
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(unavailable("reading the room head", e)),
        }
    }

    /// `(first, last)` seq of the stream; `first` is `last + 1` when it is empty.
    async fn bounds(&self) -> Result<(u64, u64), BusError> {
        let info = within(
            self.timeout,
            "reading the stream state",
            self.stream.get_info(),
        )
        .await?;
        Ok((info.state.first_sequence, info.state.last_sequence))
    }
}

/// The [`Bus`] over NATS JetStream; see the module doc.
pub struct NatsBus {
    client: Client,
    jetstream: Context,
    store: Store,
    link: Arc<Link>,
    options: NatsBusOptions,
}

impl NatsBus {
    /// Connects and creates (or updates to `options`) the stream. Fails when NATS is
    /// unreachable now; once connected, async-nats reconnects forever and re-subscribes.
    pub async fn connect(url: &str, options: NatsBusOptions) -> Result<Self, BusError> {
        // `NATS_URL` may list a cluster's servers, comma-separated (the usual NATS form).
        let servers = url
            .split(',')
            .map(|server| server.trim().parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| unavailable("parsing NATS_URL", e))?;
        let link = Arc::new(Link::default());
        let events = link.clone();
        let client = ConnectOptions::new()
            .name("chatx")
            .event_callback(move |event| {
                let link = events.clone();
                async move { link.on_event(event) }
            })
            .connect(servers)
            .await
            .map_err(|e| unavailable("connecting to NATS", e))?;
        // The callback may not have run yet for the first connection.
        if client.connection_state() == async_nats::connection::State::Connected {
            link.connected.store(true, Ordering::SeqCst);
        }
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(options.publish_timeout)
            .build(client.clone());
        let prefix = &options.subject_prefix;
        let limit = |value: Option<u64>| value.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX));
        let config = js_stream::Config {
            name: options.stream.clone(),
            subjects: vec![format!("{prefix}chat.room.*")],
            storage: StorageType::File,
            retention: RetentionPolicy::Limits,
            discard: DiscardPolicy::Old,
            max_age: options.max_age,
            max_messages: limit(options.max_messages),
            max_bytes: limit(options.max_bytes),
            duplicate_window: options.duplicate_window,
            republish: Some(Republish {
                source: format!("{prefix}chat.room.>"),
                destination: format!("{prefix}fanout.room.>"),
                headers_only: false,
            }),
            ..Default::default()
        };
        within(
            options.publish_timeout,
            "creating the JetStream stream",
            jetstream.create_or_update_stream(config),
        )
        .await?;
        let stream = jetstream
            .get_stream_no_info(&options.stream)
            .await
            .map_err(|e| BusError::Other(format!("stream {}: {e}", options.stream)))?;
        Ok(Self {
            store: Store {
                stream,
                timeout: options.publish_timeout,
            },
            client,
            jetstream,
            link,
            options,
        })
    }

    fn room_subject(&self, room: Uuid) -> String {
        format!("{}chat.room.{room}", self.options.subject_prefix)
    }

    fn fanout_subject(&self, room: Uuid) -> String {
        format!("{}fanout.room.{room}", self.options.subject_prefix)
    }

    fn event_subject(&self, topic: Topic) -> String {
        format!("{}{}", self.options.subject_prefix, topic.subject())
    }

    /// A core subscription that the server has registered when this returns, so that
    /// whatever anyone publishes afterwards reaches it.
    async fn subscribe_core(&self, subject: String) -> Result<Subscriber, BusError> {
        let limit = self.options.publish_timeout;
        let subscriber = within(limit, "subscribing", self.client.subscribe(subject)).await?;
        self.round_trip().await?;
        Ok(subscriber)
    }

    /// Returns once the server has processed everything this connection sent before.
    /// `Client::flush` only empties the local buffer; a request to a subject nobody
    /// serves is answered "no responders" by the server itself, after it handled the
    /// commands queued ahead of it.
    async fn round_trip(&self) -> Result<(), BusError> {
        let probe = self.client.new_inbox();
        let answer = tokio::time::timeout(
            self.options.publish_timeout,
            self.client.request(probe, Bytes::new()),
        )
        .await
        .map_err(|_| unavailable("subscribing", "no answer from NATS"))?;
        match answer {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == RequestErrorKind::NoResponders => Ok(()),
            Err(e) => Err(unavailable("subscribing", e)),
        }
    }
}

#[async_trait::async_trait]
impl Bus for NatsBus {
    async fn publish(&self, message: NewMessage) -> Result<PublishAck, BusError> {
        let payload = serde_json::to_vec(&message)
            .map_err(|e| BusError::Other(format!("encoding a message: {e}")))?;
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, message.id.to_string().as_str());
        let subject = self.room_subject(message.room_id);
        let stored = async {
            let ack = self
                .jetstream
                .publish_with_headers(subject, headers, payload.into())
                .await
                .map_err(|e| match e.kind() {
                    PublishErrorKind::MaxPayloadExceeded => BusError::Other(e.to_string()),
                    _ => unavailable("publishing", e),
                })?;
            ack.await.map_err(|e| unavailable("publishing", e))
        };
        // One deadline over sending and the PubAck: "acknowledged means durable", so
        // without a PubAck in time the sender hears `unavailable` and retries with the
        // same id, which the stream deduplicates if the first attempt did land.
        let ack = tokio::time::timeout(self.options.publish_timeout, stored)
            .await
            .map_err(|_| {
                BusError::Unavailable(format!(
                    "no PubAck from JetStream within {:?}",
                    self.options.publish_timeout
                ))
            })??;
        Ok(PublishAck {
            seq: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    async fn subscribe_room(&self, room: Uuid) -> Result<RoomFeed, BusError> {
        // Counted before subscribing: a loss racing with the start makes the feed
        // cautious, never careless.
        let losses = self.link.losses();
        let subscriber = self.subscribe_core(self.fanout_subject(room)).await?;
        let subject = self.room_subject(room);
        // The stream's last seq BEFORE the room head: every message of the room at or
        // below it is at or below the head, so (max(head, floor), ..) is all the feed
        // ever owes (see `Feed::fill_gap`).
        let (_, floor) = self.store.bounds().await?;
        let last = self.store.head(&subject).await?.unwrap_or(0);
        let feed = Feed {
            subscriber,
            store: self.store.clone(),
            subject,
            last,
            floor,
            losses,
            link: self.link.clone(),
            backlog: VecDeque::new(),
            done: false,
        };
        Ok(stream::unfold(feed, Feed::next).boxed())
    }

    async fn replay(&self, room: Uuid, since: u64, limit: usize) -> Result<Replay, BusError> {
        let messages = self
            .store
            .read(&self.room_subject(room), since, None, limit)
            .await?;
        // Read AFTER the messages: retention only ever drops the oldest, so everything
        // at or above this first seq was still there while we read.
        let (first, _) = self.store.bounds().await?;
        Ok(Replay {
            messages,
            complete_after: first.saturating_sub(1),
        })
    }

    async fn room_head(&self, room: Uuid) -> Result<Option<u64>, BusError> {
        self.store.head(&self.room_subject(room)).await
    }

    async fn emit(&self, topic: Topic, event: BusEvent) -> Result<(), BusError> {
        // Events are at most once and only matter now: better an error the caller can
        // report than a typing notice (or a revocation) sent minutes later.
        if !self.is_connected() {
            return Err(BusError::Unavailable("not connected to NATS".into()));
        }
        let payload = serde_json::to_vec(&event)
            .map_err(|e| BusError::Other(format!("encoding an event: {e}")))?;
        within(
            self.options.publish_timeout,
            "emitting an event",
            self.client
                .publish(self.event_subject(topic), payload.into()),
        )
        .await
    }

    async fn subscribe(&self, topic: Topic) -> Result<EventFeed, BusError> {
        let subscriber = self.subscribe_core(self.event_subject(topic)).await?;
        Ok(subscriber
            .filter_map(|message| {
                let event = serde_json::from_slice::<BusEvent>(&message.payload)
                    .map_err(|e| tracing::warn!(subject = %message.subject, error = %e, "skipping an event that does not parse"))
                    .ok();
                future::ready(event)
            })
            .boxed())
    }

    async fn persist_consumer(&self) -> Result<Box<dyn PersistConsumer>, BusError> {
        let name = self.options.consumer.clone();
        let config = pull::Config {
            durable_name: Some(name.clone()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: PERSIST_ACK_WAIT,
            max_ack_pending: PERSIST_MAX_ACK_PENDING,
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        };
        // get-or-create: every worker binds to the same durable; an existing one is
        // used as it is rather than reconfigured under the feet of the others.
        let consumer = within(
            self.options.publish_timeout,
            "creating the persist consumer",
            self.store.stream.get_or_create_consumer(&name, config),
        )
        .await?;
        Ok(Box::new(NatsPersistConsumer {
            consumer,
            messages: None,
            batch: Vec::new(),
            timeout: self.options.publish_timeout,
        }))
    }

    fn is_connected(&self) -> bool {
        self.link.connected.load(Ordering::SeqCst)
    }
}

/// One room feed: the fanout subscription plus what it needs to fill gaps.
struct Feed {
    subscriber: Subscriber,
    store: Store,
    subject: String,
    /// Seq of the last message yielded (or skipped); the room head at start.
    last: u64,
    /// The stream's last seq at start: the feed owes nothing at or below it.
    floor: u64,
    /// `Link::losses` at start.
    losses: u64,
    link: Arc<Link>,
    /// Ready to yield: a filled gap, then the message that revealed it. `None` marks a
    /// seq that carries nothing to yield (a foreign payload) but still counts as seen.
    backlog: VecDeque<(u64, Option<Arc<StoredMessage>>)>,
    done: bool,
}

impl Feed {
    async fn next(mut self) -> Option<(Result<Arc<StoredMessage>, BusError>, Self)> {
        loop {
            if self.done {
                return None;
            }
            if let Some((seq, message)) = self.backlog.pop_front() {
                self.last = seq;
                match message {
                    Some(message) => return Some((Ok(message), self)),
                    None => continue,
                }
            }
            // `None`: the connection was closed for good; the feed just ends.
            let delivered = self.subscriber.next().await?;
            let Some((seq, prev)) = sequence_headers(delivered.headers.as_ref()) else {
                tracing::warn!(subject = %delivered.subject, "fanout message without sequence headers");
                continue;
            };
            if seq <= self.last {
                // Stored before the feed started, or already read back in a gap.
                continue;
            }
            if prev != self.last {
                match self.fill_gap(prev, seq).await {
                    Ok(gap) => self
                        .backlog
                        .extend(gap.into_iter().map(|m| (m.seq, Some(m)))),
                    Err(e) => {
                        self.done = true;
                        return Some((Err(e), self));
                    }
                }
            }
            self.backlog
                .push_back((seq, decode(seq, &delivered.payload)));
        }
    }

    /// The messages of the room between the last one yielded and `seq`, whose
    /// republish said the previous message of the room was `prev`.
    async fn fill_gap(&self, prev: u64, seq: u64) -> Result<Vec<Arc<StoredMessage>>, BusError> {
        // Bounded by `seq`: a gap holds what one subscription missed, not a backlog.
        let gap = self
            .store
            .read(&self.subject, self.last, Some(seq), usize::MAX)
            .await?;
        // After the read, as in `replay`: everything from `first` on was readable.
        let (first, _) = self.store.bounds().await?;
        let owed_from = self.last.max(self.floor);
        if first > owed_from + 1 {
            // Retention dropped the start of the gap. If the subscription lost
            // something (`prev` beyond what we have, or any disconnect or slow-consumer
            // drop since the start), the dropped part may have held messages of this
            // room: only a resume from the database can tell. Otherwise `prev < last`
            // just means our last message aged out of a quiet room, and nothing is
            // missing.
            if prev > self.last || self.link.losses() != self.losses {
                return Err(BusError::Lagged { after: self.last });
            }
        }
        Ok(gap)
    }
}

/// `(Nats-Sequence, Nats-Last-Sequence)` of a republished message.
fn sequence_headers(headers: Option<&HeaderMap>) -> Option<(u64, u64)> {
    let headers = headers?;
    let seq = headers.get(NATS_SEQUENCE)?.as_str().parse().ok()?;
    let prev = headers.get(NATS_LAST_SEQUENCE)?.as_str().parse().ok()?;
    Some((seq, prev))
}

/// A worker's handle on the durable persist consumer. Several workers bind to the same
/// durable and the server spreads messages between them.
///
/// One long-lived pull stream feeds it (the server pushes up to [`PERSIST_PULL`]
/// messages ahead and is asked for more as they are taken), so a batch costs no
/// subscription or pull request of its own. A batch is acked with plain acks and one
/// confirmed ack of its last message: the server handles a connection's acks in order,
/// so that confirmation covers the whole batch.
struct NatsPersistConsumer {
    consumer: PullConsumer,
    /// The pull stream; `None` until first used and after it failed.
    messages: Option<pull::Stream>,
    /// The batch handed out and not acked yet, with the JetStream messages to ack.
    batch: Vec<(jetstream::Message, Arc<StoredMessage>)>,
    timeout: Duration,
}

impl NatsPersistConsumer {
    async fn open(&self) -> Result<pull::Stream, BusError> {
        within(
            self.timeout,
            "opening the persist consumer's pull stream",
            self.consumer
                .stream()
                .max_messages_per_batch(PERSIST_PULL)
                .expires(PERSIST_PULL_EXPIRES)
                .heartbeat(PERSIST_PULL_HEARTBEAT)
                .messages(),
        )
        .await
    }

    /// The first message to arrive within `wait`, then whatever else arrives within
    /// [`PERSIST_LINGER`] of it, up to `max`. Lingering costs nothing users see: the
    /// room feeds and the sender's ack come from JetStream, not from the database.
    /// A stream that failed is not kept; the next call opens a new one.
    async fn take(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<jetstream::Message>, BusError> {
        let mut stream = match self.messages.take() {
            Some(stream) => stream,
            None => self.open().await?,
        };
        let first = match tokio::time::timeout(wait, stream.next()).await {
            Err(_) => {
                self.messages = Some(stream);
                return Ok(Vec::new());
            }
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(e))) => return Err(unavailable("reading the persist consumer", e)),
            Ok(None) => {
                return Err(BusError::Unavailable(
                    "the persist pull stream ended".into(),
                ));
            }
        };
        let mut messages = vec![first];
        let until = tokio::time::Instant::now() + PERSIST_LINGER;
        while messages.len() < max {
            match tokio::time::timeout_at(until, stream.next()).await {
                Ok(Some(Ok(message))) => messages.push(message),
                Ok(Some(Err(e))) => {
                    // What was taken is still good.
                    tracing::warn!(error = %e, "persist pull stream failed; reopening");
                    return Ok(messages);
                }
                Ok(None) => return Ok(messages),
                Err(_) => break,
            }
        }
        self.messages = Some(stream);
        Ok(messages)
    }

    /// Keeps the decodable messages; the rest are terminated so they never block the
    /// workers again.
    async fn admit(&mut self, messages: Vec<jetstream::Message>) -> Result<(), BusError> {
        for message in messages {
            let seq = message
                .info()
                .map_err(|e| BusError::Other(format!("persist message metadata: {e}")))?
                .stream_sequence;
            match decode(seq, &message.payload) {
                Some(stored) => self.batch.push((message, stored)),
                None => {
                    if let Err(e) = message.ack_with(AckKind::Term).await {
                        tracing::warn!(seq, error = %e, "terminating an undecodable message");
                    }
                }
            }
        }
        Ok(())
    }

    fn view(&self) -> Vec<Arc<StoredMessage>> {
        self.batch.iter().map(|(_, m)| m.clone()).collect()
    }
}

#[async_trait::async_trait]
impl PersistConsumer for NatsPersistConsumer {
    async fn next_batch(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Arc<StoredMessage>>, BusError> {
        if !self.batch.is_empty() {
            // The worker is still on it (its insert failed and is being retried):
            // restart the ack wait so the server does not hand the batch to another
            // worker meanwhile. Best effort; a redelivery is harmless anyway.
            let progress = self
                .batch
                .iter()
                .map(|(message, _)| message.ack_with(AckKind::Progress));
            let _ = tokio::time::timeout(self.timeout, future::join_all(progress)).await;
            return Ok(self.view());
        }
        let messages = self.take(max.max(1), wait).await?;
        self.admit(messages).await?;
        Ok(self.view())
    }

    /// `stored_before` needs nothing here: JetStream assigned the copy its seq, answered
    /// its publisher and republished it to the room feeds when it was stored, so there
    /// is nothing left to hold back or re-answer. The database keeps the original row
    /// (the insert skips the known id), which is what history and replay serve.
    async fn ack_batch(&mut self, _stored_before: &[(Uuid, u64)]) -> Result<(), BusError> {
        // The batch only counts as acked once the server confirmed it, otherwise it
        // would be redelivered while we believe it done: plain acks for all but the
        // last message, then a confirmed ack of the last, which the server handles
        // after the others (one connection, in order). Should an ack still be lost,
        // the redelivered message is inserted again, which skips the stored row.
        let Some(((last, _), rest)) = self.batch.split_last() else {
            return Ok(());
        };
        let acks = async {
            for (message, _) in rest {
                message.ack().await?;
            }
            last.double_ack().await
        };
        // Until then the batch is kept: `next_batch` hands it out again and the insert
        // skips what is stored.
        within(self.timeout, "acking the persist batch", acks).await?;
        self.batch.clear();
        Ok(())
    }
}
