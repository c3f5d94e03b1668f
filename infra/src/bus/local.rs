//! In-process bus for embedded mode: single node only.
//!
//! One mutex guards the sequence counter, the per-room logs and the dedup window, so
//! publishes are totally ordered and a room's broadcast sees them in seq order. The
//! lock is never held across an await. With `ack_after_persist`, `publish` returns only
//! once the persist consumer (the in-process worker) has committed the message, which
//! keeps "acknowledged means durable" true without a broker.
//!
//! A channel exists only while someone listens: a room's live feed and an event
//! topic's channel are made by the first subscription and dropped with the last one
//! (tokio's broadcast channels allocate all their slots up front). Without that,
//! every session that ever connected kept its revocation channel, and every room its
//! feed, for the life of the process.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::future::{FutureExt, Shared};
use futures_util::{StreamExt, stream};
use tokio::sync::{broadcast, mpsc, oneshot};
use uuid::Uuid;

use super::{
    Bus, BusError, BusEvent, EventFeed, NewMessage, PersistConsumer, PublishAck, Replay, RoomFeed,
    StoredMessage, Topic,
};

/// Messages a room's live feed holds for its slowest subscriber. One that falls
/// further behind catches up from the room's log (`retention_per_room`), so this only
/// needs to cover the usual jitter of the fan-out.
const ROOM_FEED_CAPACITY: usize = 256;
/// Presence, typing and receipts of a room between two reads of its subscriber.
const ROOM_EVENTS_CAPACITY: usize = 128;
/// The other topics carry a handful of events in a socket's life (a revocation, a
/// room deleted, a canary).
const CONTROL_CAPACITY: usize = 16;

#[derive(Debug, Clone)]
pub struct LocalBusOptions {
    /// Every seq handed out is above this (the database's max seq at start).
    pub start_seq: u64,
    /// Messages kept per room for replay (never evicting unpersisted ones).
    pub retention_per_room: usize,
    pub dedup_window: Duration,
    /// `publish` waits until the persist consumer acked the message.
    pub ack_after_persist: bool,
}

impl Default for LocalBusOptions {
    fn default() -> Self {
        Self {
            start_seq: 0,
            retention_per_room: 1000,
            dedup_window: Duration::from_secs(120),
            ack_after_persist: false,
        }
    }
}

/// Resolves once persisted: `Some(seq)` when the id was already stored earlier
/// (under that seq), so the new copy was dropped.
type Persisted = Shared<oneshot::Receiver<Option<u64>>>;

struct RoomLog {
    messages: VecDeque<Arc<StoredMessage>>,
    evicted_through: u64,
    /// The live feed, while the room has subscribers.
    feed: Option<broadcast::Sender<Arc<StoredMessage>>>,
}

struct State {
    last_seq: u64,
    rooms: HashMap<Uuid, RoomLog>,
    dedup: HashMap<Uuid, u64>,
    dedup_order: VecDeque<(Instant, Uuid)>,
    /// Seqs not yet acked by the persist consumer (only with `ack_after_persist`).
    unpersisted: HashMap<u64, Persisted>,
    events: HashMap<Topic, broadcast::Sender<BusEvent>>,
}

type PersistItem = (Arc<StoredMessage>, Option<oneshot::Sender<Option<u64>>>);

pub struct LocalBus {
    options: LocalBusOptions,
    state: Arc<Mutex<State>>,
    persist_tx: mpsc::UnboundedSender<PersistItem>,
    persist_rx: Mutex<Option<mpsc::UnboundedReceiver<PersistItem>>>,
}

impl LocalBus {
    pub fn new(options: LocalBusOptions) -> Self {
        let (persist_tx, persist_rx) = mpsc::unbounded_channel();
        Self {
            state: Arc::new(Mutex::new(State {
                last_seq: options.start_seq,
                rooms: HashMap::new(),
                dedup: HashMap::new(),
                dedup_order: VecDeque::new(),
                unpersisted: HashMap::new(),
                events: HashMap::new(),
            })),
            options,
            persist_tx,
            persist_rx: Mutex::new(Some(persist_rx)),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

/// A poisoned lock only means another thread panicked mid-update of plain data; the
/// bus keeps serving rather than cascading the panic to every socket.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl State {
    fn room_log(&mut self, room: Uuid, start_seq: u64) -> &mut RoomLog {
        self.rooms.entry(room).or_insert_with(|| RoomLog {
            messages: VecDeque::new(),
            evicted_through: start_seq,
            feed: None,
        })
    }

    fn forget_expired_ids(&mut self, window: Duration) {
        let now = Instant::now();
        while let Some((at, id)) = self.dedup_order.front().copied() {
            if now.duration_since(at) < window {
                break;
            }
            self.dedup_order.pop_front();
            self.dedup.remove(&id);
        }
    }

    /// Makes a stored message visible: room log, live feed, retention. With
    /// `ack_after_persist` this runs only once the message is in the database, so no
    /// client ever sees a seq that a crash could take back.
    fn commit(&mut self, stored: &Arc<StoredMessage>, options: &LocalBusOptions) {
        let log = self.room_log(stored.message.room_id, options.start_seq);
        log.messages.push_back(stored.clone());
        // Nobody listening is fine: the message stays in the log for replay.
        if let Some(feed) = &log.feed {
            let _ = feed.send(stored.clone());
        }
        while log.messages.len() > options.retention_per_room {
            if let Some(front) = log.messages.pop_front() {
                log.evicted_through = front.seq;
            }
        }
    }
}

#[async_trait::async_trait]
impl Bus for LocalBus {
    async fn publish(&self, message: NewMessage) -> Result<PublishAck, BusError> {
        let (ack, wait) = {
            let mut state = self.state();
            state.forget_expired_ids(self.options.dedup_window);
            if let Some(&seq) = state.dedup.get(&message.id) {
                let wait = state.unpersisted.get(&seq).cloned();
                (
                    PublishAck {
                        seq,
                        duplicate: true,
                    },
                    wait,
                )
            } else {
                state.last_seq += 1;
                let seq = state.last_seq;
                state.dedup.insert(message.id, seq);
                state.dedup_order.push_back((Instant::now(), message.id));
                let stored = Arc::new(StoredMessage { seq, message });
                let (done_tx, wait) = if self.options.ack_after_persist {
                    let (tx, rx) = oneshot::channel();
                    let rx = rx.shared();
                    state.unpersisted.insert(seq, rx.clone());
                    (Some(tx), Some(rx))
                } else {
                    // Nothing to wait for: the message is live at once.
                    state.commit(&stored, &self.options);
                    (None, None)
                };
                self.persist_tx
                    .send((stored, done_tx))
                    .map_err(|_| BusError::Other("persist queue closed".into()))?;
                (
                    PublishAck {
                        seq,
                        duplicate: false,
                    },
                    wait,
                )
            }
        };
        if let Some(wait) = wait {
            let stored_before = wait.await.map_err(|_| {
                BusError::Unavailable("the persister stopped before storing the message".into())
            })?;
            if let Some(seq) = stored_before {
                return Ok(PublishAck {
                    seq,
                    duplicate: true,
                });
            }
        }
        Ok(ack)
    }

    async fn subscribe_room(&self, room: Uuid) -> Result<RoomFeed, BusError> {
        let (rx, last) = {
            let mut state = self.state();
            let log = state.room_log(room, self.options.start_seq);
            let last = log.messages.back().map_or(log.evicted_through, |m| m.seq);
            let feed = log
                .feed
                .get_or_insert_with(|| broadcast::channel(ROOM_FEED_CAPACITY).0);
            (feed.subscribe(), last)
        };
        let feed = FeedState {
            rx,
            last,
            backlog: VecDeque::new(),
            done: false,
            room,
            state: self.state.clone(),
        };
        Ok(stream::unfold(feed, FeedState::next).boxed())
    }

    async fn replay(&self, room: Uuid, since: u64, limit: usize) -> Result<Replay, BusError> {
        let mut state = self.state();
        let log = state.room_log(room, self.options.start_seq);
        // Seqs are increasing in the log: skip to `since` by binary search.
        let start = log.messages.partition_point(|m| m.seq <= since);
        Ok(Replay {
            messages: log.messages.range(start..).take(limit).cloned().collect(),
            complete_after: log.evicted_through,
        })
    }

    async fn room_head(&self, room: Uuid) -> Result<Option<u64>, BusError> {
        let state = self.state();
        Ok(state
            .rooms
            .get(&room)
            .and_then(|log| log.messages.back().map(|m| m.seq)))
    }

    async fn emit(&self, topic: Topic, event: BusEvent) -> Result<(), BusError> {
        let mut state = self.state();
        if let Some(tx) = state.events.get(&topic)
            && tx.send(event).is_err()
        {
            state.events.remove(&topic);
        }
        Ok(())
    }

    async fn subscribe(&self, topic: Topic) -> Result<EventFeed, BusError> {
        let capacity = match topic {
            Topic::RoomEvents(_) => ROOM_EVENTS_CAPACITY,
            _ => CONTROL_CAPACITY,
        };
        let rx = self
            .state()
            .events
            .entry(topic)
            .or_insert_with(|| broadcast::channel(capacity).0)
            .subscribe();
        let subscription = EventSubscription {
            rx,
            topic,
            state: self.state.clone(),
        };
        Ok(stream::unfold(subscription, |mut subscription| async move {
            loop {
                match subscription.rx.recv().await {
                    Ok(event) => return Some((event, subscription)),
                    // Events are at most once: a lagging subscriber skips ahead.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .boxed())
    }

    async fn persist_consumer(&self) -> Result<Box<dyn PersistConsumer>, BusError> {
        let rx = lock(&self.persist_rx).take().ok_or_else(|| {
            BusError::Other("the embedded bus has one persist consumer, and it is taken".into())
        })?;
        Ok(Box::new(LocalConsumer {
            rx,
            batch: Vec::new(),
            state: self.state.clone(),
            options: self.options.clone(),
        }))
    }

    fn is_connected(&self) -> bool {
        true
    }
}

/// One topic subscription. The last one to go drops the topic's channel.
struct EventSubscription {
    rx: broadcast::Receiver<BusEvent>,
    topic: Topic,
    state: Arc<Mutex<State>>,
}

impl Drop for EventSubscription {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        // Under the lock no one subscribes meanwhile; `rx`, still alive, is counted.
        if state
            .events
            .get(&self.topic)
            .is_some_and(|tx| tx.receiver_count() <= 1)
        {
            state.events.remove(&self.topic);
        }
    }
}

/// One room subscription: the broadcast receiver plus gap filling from the room log
/// when the receiver lagged. The last one to go drops the room's live feed.
struct FeedState {
    rx: broadcast::Receiver<Arc<StoredMessage>>,
    last: u64,
    backlog: VecDeque<Arc<StoredMessage>>,
    done: bool,
    room: Uuid,
    state: Arc<Mutex<State>>,
}

impl FeedState {
    async fn next(mut self) -> Option<(Result<Arc<StoredMessage>, BusError>, Self)> {
        if self.done {
            return None;
        }
        loop {
            if let Some(message) = self.backlog.pop_front() {
                self.last = message.seq;
                return Some((Ok(message), self));
            }
            match self.rx.recv().await {
                Ok(message) if message.seq > self.last => {
                    self.last = message.seq;
                    return Some((Ok(message), self));
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let state = lock(&self.state);
                    let log = state.rooms.get(&self.room)?;
                    if log.evicted_through > self.last {
                        let after = self.last;
                        drop(state);
                        self.done = true;
                        return Some((Err(BusError::Lagged { after }), self));
                    }
                    let last = self.last;
                    self.backlog = log
                        .messages
                        .iter()
                        .filter(|m| m.seq > last)
                        .cloned()
                        .collect();
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

impl Drop for FeedState {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        // Under the lock no one subscribes meanwhile; `rx`, still alive, is counted.
        if let Some(log) = state.rooms.get_mut(&self.room)
            && log.feed.as_ref().is_some_and(|tx| tx.receiver_count() <= 1)
        {
            log.feed = None;
        }
    }
}

struct LocalConsumer {
    rx: mpsc::UnboundedReceiver<PersistItem>,
    /// The batch handed out and not acked yet.
    batch: Vec<PersistItem>,
    state: Arc<Mutex<State>>,
    options: LocalBusOptions,
}

#[async_trait::async_trait]
impl PersistConsumer for LocalConsumer {
    async fn next_batch(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Arc<StoredMessage>>, BusError> {
        if self.batch.is_empty() {
            match tokio::time::timeout(wait, self.rx.recv()).await {
                Ok(Some(item)) => self.batch.push(item),
                Ok(None) => return Err(BusError::Other("bus closed".into())),
                Err(_) => return Ok(Vec::new()),
            }
            while self.batch.len() < max {
                match self.rx.try_recv() {
                    Ok(item) => self.batch.push(item),
                    Err(_) => break,
                }
            }
        }
        Ok(self.batch.iter().map(|(m, _)| m.clone()).collect())
    }

    async fn ack_batch(&mut self, stored_before: &[(Uuid, u64)]) -> Result<(), BusError> {
        let mut state = lock(&self.state);
        for (stored, done) in self.batch.drain(..) {
            let Some(done) = done else { continue };
            state.unpersisted.remove(&stored.seq);
            let earlier = stored_before
                .iter()
                .find(|(id, _)| *id == stored.message.id)
                .map(|(_, seq)| *seq);
            match earlier {
                // A retry from outside the dedup window (or from before a restart):
                // the new copy is dropped and its sender learns the original seq.
                Some(seq) => {
                    state.dedup.insert(stored.message.id, seq);
                }
                None => state.commit(&stored, &self.options),
            }
            // The publisher may have given up waiting; the message is stored anyway.
            let _ = done.send(earlier);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::contract::message;
    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    fn bus(retention_per_room: usize) -> LocalBus {
        LocalBus::new(LocalBusOptions {
            retention_per_room,
            ..LocalBusOptions::default()
        })
    }

    fn revoked(session_id: Uuid) -> BusEvent {
        BusEvent::SessionRevoked { session_id }
    }

    #[tokio::test]
    async fn an_event_topic_lives_as_long_as_its_subscribers() {
        let bus = bus(10);
        let session = Uuid::new_v4();
        let topic = Topic::Session(session);
        let first = bus.subscribe(topic).await.expect("subscribe");
        let mut second = bus.subscribe(topic).await.expect("subscribe");
        drop(first);
        assert!(
            bus.state().events.contains_key(&topic),
            "one subscriber is left"
        );
        bus.emit(topic, revoked(session)).await.expect("emit");
        let got = tokio::time::timeout(WAIT, second.next())
            .await
            .expect("in time");
        assert!(matches!(got, Some(BusEvent::SessionRevoked { .. })));

        drop(second);
        assert!(
            bus.state().events.is_empty(),
            "the channel went with the last one"
        );

        // A later subscriber gets a channel again and its events.
        let mut third = bus.subscribe(topic).await.expect("subscribe");
        bus.emit(topic, revoked(session)).await.expect("emit");
        let got = tokio::time::timeout(WAIT, third.next())
            .await
            .expect("in time");
        assert!(matches!(got, Some(BusEvent::SessionRevoked { .. })));
    }

    #[tokio::test]
    async fn a_room_feed_lives_as_long_as_its_subscribers_and_the_log_stays() {
        let bus = bus(100);
        let room = Uuid::new_v4();
        let feed = bus.subscribe_room(room).await.expect("subscribe");
        drop(feed);
        assert!(
            bus.state().rooms[&room].feed.is_none(),
            "no subscriber, no channel"
        );

        // Published with nobody listening: kept for replay.
        let seq = bus
            .publish(message(room, "kept"))
            .await
            .expect("publish")
            .seq;
        let replay = bus.replay(room, 0, 10).await.expect("replay");
        assert_eq!(
            replay.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [seq]
        );

        // A new subscriber gets a channel and the messages after it subscribed.
        let mut feed = bus.subscribe_room(room).await.expect("subscribe");
        let later = bus
            .publish(message(room, "later"))
            .await
            .expect("publish")
            .seq;
        let got = tokio::time::timeout(WAIT, feed.next())
            .await
            .expect("in time")
            .expect("not ended")
            .expect("no error");
        assert_eq!(got.seq, later);
    }

    #[tokio::test]
    async fn a_feed_behind_its_channel_catches_up_from_the_log_in_order() {
        let retention = ROOM_FEED_CAPACITY * 3;
        let bus = bus(retention);
        let room = Uuid::new_v4();
        let mut feed = bus.subscribe_room(room).await.expect("subscribe");
        // Twice the channel's capacity published before the subscriber reads.
        let mut seqs = Vec::new();
        for i in 0..ROOM_FEED_CAPACITY * 2 {
            let sent = bus.publish(message(room, &format!("m{i}"))).await;
            seqs.push(sent.expect("publish").seq);
        }
        let mut got = Vec::new();
        while got.len() < seqs.len() {
            let next = tokio::time::timeout(WAIT, feed.next())
                .await
                .expect("in time")
                .expect("not ended")
                .expect("caught up, not lagged");
            got.push(next.seq);
        }
        assert_eq!(got, seqs, "every message once, in order");
    }

    #[tokio::test]
    async fn a_feed_behind_the_retained_log_reports_where_it_stopped() {
        let bus = bus(10);
        let room = Uuid::new_v4();
        let mut feed = bus.subscribe_room(room).await.expect("subscribe");
        for i in 0..ROOM_FEED_CAPACITY + 1 {
            bus.publish(message(room, &format!("m{i}")))
                .await
                .expect("publish");
        }
        let got = tokio::time::timeout(WAIT, feed.next())
            .await
            .expect("in time");
        assert!(
            matches!(got, Some(Err(BusError::Lagged { after: 0 }))),
            "expected Lagged after 0, got {got:?}"
        );
        assert!(feed.next().await.is_none(), "the feed ends after the gap");
    }
}
