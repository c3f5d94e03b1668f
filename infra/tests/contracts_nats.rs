//! The bus contract suite, and what only a distributed bus can get wrong, against a real
//! nats-server with JetStream at `NATS_URL` (default `nats://127.0.0.1:4222`).
//!
//! Each test makes its own stream `T_<uuid>` on its own subject prefix (JetStream
//! refuses streams with overlapping subjects) and deletes it when it is done, even
//! when it fails. The broker-outage test starts and kills its OWN nats-server; the
//! shared one is never stopped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use infra::bus::contract::message;
use infra::bus::{
    Bus, BusError, BusEvent, EventFeed, NatsBus, NatsBusOptions, NewMessage, PersistConsumer,
    PublishAck, Replay, RoomFeed, StoredMessage, Topic,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(5);

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// Options for a stream of the test's own; the guard deletes it.
fn fresh_stream() -> (NatsBusOptions, StreamGuard) {
    let tag = Uuid::new_v4().simple();
    let options = NatsBusOptions {
        stream: format!("T_{tag}"),
        subject_prefix: format!("t{tag}."),
        // Should a deletion ever fail, the leftovers at least age out.
        max_age: Duration::from_secs(3600),
        ..NatsBusOptions::default()
    };
    let guard = StreamGuard {
        url: nats_url(),
        stream: options.stream.clone(),
    };
    (options, guard)
}

/// Deletes the test's stream when dropped (also when the test panics).
struct StreamGuard {
    url: String,
    stream: String,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let (url, stream) = (self.url.clone(), self.stream.clone());
        // Drop cannot await and the test's runtime may be winding down: a thread with
        // a runtime of its own does the deletion.
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let client = async_nats::connect(url).await.ok()?;
                async_nats::jetstream::new(client)
                    .delete_stream(&stream)
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(deleted, Ok(Some(_))) {
            eprintln!("could not delete test stream {}", self.stream);
        }
    }
}

/// A [`NatsBus`] that deletes its stream with it: what the contract suite gets.
struct Scoped {
    bus: NatsBus,
    _stream: StreamGuard,
}

#[async_trait::async_trait]
impl Bus for Scoped {
    async fn publish(&self, message: NewMessage) -> Result<PublishAck, BusError> {
        self.bus.publish(message).await
    }
    async fn subscribe_room(&self, room: Uuid) -> Result<RoomFeed, BusError> {
        self.bus.subscribe_room(room).await
    }
    async fn replay(&self, room: Uuid, since: u64, limit: usize) -> Result<Replay, BusError> {
        self.bus.replay(room, since, limit).await
    }
    async fn room_head(&self, room: Uuid) -> Result<Option<u64>, BusError> {
        self.bus.room_head(room).await
    }
    async fn emit(&self, topic: Topic, event: BusEvent) -> Result<(), BusError> {
        self.bus.emit(topic, event).await
    }
    async fn subscribe(&self, topic: Topic) -> Result<EventFeed, BusError> {
        self.bus.subscribe(topic).await
    }
    async fn persist_consumer(&self) -> Result<Box<dyn PersistConsumer>, BusError> {
        self.bus.persist_consumer().await
    }
    fn is_connected(&self) -> bool {
        self.bus.is_connected()
    }
}

async fn scoped_bus() -> Scoped {
    let (options, guard) = fresh_stream();
    let bus = connect(&nats_url(), &options).await;
    Scoped {
        bus,
        _stream: guard,
    }
}

mod nats_bus {
    use super::*;
    infra::bus_contract_tests!(|| async { Arc::new(scoped_bus().await) as Arc<dyn Bus> });
}

/// Connects, retrying briefly: nats-server 2.9.10 sometimes fails a stream creation
/// ("could not create storage directory .../$G/streams") while another test deletes
/// the account's last stream and with it that directory. A deployment keeps its stream
/// and retries start-up anyway; only tests churn streams like this.
async fn connect(url: &str, options: &NatsBusOptions) -> NatsBus {
    let mut attempts = 0;
    loop {
        match NatsBus::connect(url, options.clone()).await {
            Ok(bus) => return bus,
            Err(e) if attempts < 5 => {
                eprintln!("connect to {url} failed, retrying: {e}");
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("connect to {url} (a nats-server with -js): {e}"),
        }
    }
}

async fn next(feed: &mut RoomFeed) -> Arc<StoredMessage> {
    tokio::time::timeout(WAIT, feed.next())
        .await
        .expect("room feed delivered nothing within 5 s")
        .expect("room feed ended")
        .expect("room feed failed")
}

async fn assert_quiet(feed: &mut RoomFeed) {
    if let Ok(extra) = tokio::time::timeout(Duration::from_millis(300), feed.next()).await {
        panic!("unexpected item on the feed: {extra:?}");
    }
}

async fn publish(bus: &NatsBus, room: Uuid, body: &str) -> u64 {
    bus.publish(message(room, body)).await.expect("publish").seq
}

/// Polls a state that has no event to await (the client's connection flag).
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP proxy in front of the shared server that the test can cut: the way to make a
/// gateway's connection drop, and its room feed miss messages, while the broker and
/// other clients carry on.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    async fn start() -> Proxy {
        let url = nats_url();
        let upstream = url.trim_start_matches("nats://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (accept_up, accept_links) = (up.clone(), links.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accept_up.load(Ordering::SeqCst) {
                    // Down: the client's reconnect attempt fails at once.
                    continue;
                }
                let upstream = upstream.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                accept_links
                    .lock()
                    .expect("links")
                    .push(link.abort_handle());
            }
        })
        .abort_handle();
        Proxy {
            addr,
            up,
            links,
            accept,
        }
    }

    fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// Drops every proxied connection and refuses new ones.
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().expect("links").drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// After a reconnect the feed's subscription is re-established asynchronously: publish
/// `trigger` messages until the feed yields something, and return that first item plus
/// the seqs of every trigger published.
async fn trigger_until_the_feed_moves(
    publisher: &NatsBus,
    room: Uuid,
    feed: &mut RoomFeed,
) -> (Option<Result<Arc<StoredMessage>, BusError>>, Vec<u64>) {
    let mut triggers = Vec::new();
    for attempt in 0..40 {
        triggers.push(publish(publisher, room, &format!("trigger {attempt}")).await);
        if let Ok(item) = tokio::time::timeout(Duration::from_millis(500), feed.next()).await {
            return (item, triggers);
        }
    }
    panic!("the feed never moved after the reconnect");
}

/// What gap detection stands on (DESIGN.md section 4): `Nats-Last-Sequence` is the
/// previous seq of the same room, not of the stream.
#[tokio::test]
async fn the_stream_republishes_each_message_with_the_previous_seq_of_its_room() {
    let (options, _stream) = fresh_stream();
    let bus = connect(&nats_url(), &options).await;
    let client = async_nats::connect(nats_url()).await.expect("connect");
    let (room, other) = (Uuid::new_v4(), Uuid::new_v4());
    let mut fanout = client
        .subscribe(format!("{}fanout.room.{room}", options.subject_prefix))
        .await
        .expect("subscribe");
    // `flush` only empties the client's buffer; an unanswered request comes back from
    // the server itself, after it registered the subscription.
    let probe = client.request(client.new_inbox(), "".into()).await;
    assert!(probe.is_err(), "nobody serves a fresh inbox");
    let first = publish(&bus, room, "one").await;
    publish(&bus, other, "elsewhere").await;
    let second = publish(&bus, room, "two").await;
    let mut sequences = Vec::new();
    for _ in 0..2 {
        let republished = tokio::time::timeout(WAIT, fanout.next())
            .await
            .expect("republished in time")
            .expect("subscription open");
        let headers = republished.headers.expect("republish headers");
        let value = |name| {
            headers
                .get(name)
                .and_then(|v| v.as_str().parse::<u64>().ok())
                .expect("numeric header")
        };
        sequences.push((
            value(async_nats::header::NATS_SEQUENCE),
            value(async_nats::header::NATS_LAST_SEQUENCE),
        ));
    }
    assert_eq!(sequences, [(first, 0), (second, first)]);
}

#[tokio::test]
async fn a_message_published_through_one_gateway_reaches_a_feed_on_another_exactly_once() {
    let (options, _stream) = fresh_stream();
    let sender = Arc::new(connect(&nats_url(), &options).await);
    let receiver = connect(&nats_url(), &options).await;
    let room = Uuid::new_v4();
    let mut feed = receiver.subscribe_room(room).await.expect("subscribe");

    let retried = message(room, "sent twice");
    let first = sender.publish(retried.clone()).await.expect("publish");
    let again = sender.publish(retried).await.expect("retry");
    assert_eq!((again.seq, again.duplicate), (first.seq, true));

    // A burst from concurrent senders on the other connection.
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let sender = sender.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..50 {
                seqs.push(publish(&sender, room, &format!("{worker}-{i}")).await);
                publish(&sender, Uuid::new_v4(), "elsewhere").await;
            }
            seqs
        }));
    }
    let mut acked = vec![first.seq];
    for task in tasks {
        acked.extend(task.await.expect("sender"));
    }
    acked.sort_unstable();

    let mut delivered = Vec::new();
    for _ in 0..acked.len() {
        let got = next(&mut feed).await;
        assert_eq!(got.message.room_id, room);
        delivered.push(got.seq);
    }
    assert_eq!(delivered, acked, "every message once, in seq order");
    assert_quiet(&mut feed).await;
}

#[tokio::test]
async fn an_event_emitted_on_one_gateway_reaches_subscribers_on_another() {
    let (options, _stream) = fresh_stream();
    let a = connect(&nats_url(), &options).await;
    let b = connect(&nats_url(), &options).await;
    let session = Uuid::new_v4();
    let mut events = b
        .subscribe(Topic::Session(session))
        .await
        .expect("subscribe");
    let event = BusEvent::SessionRevoked {
        session_id: session,
    };
    a.emit(Topic::Session(session), event.clone())
        .await
        .expect("emit");
    let got = tokio::time::timeout(WAIT, events.next())
        .await
        .expect("event");
    assert_eq!(got, Some(event));
}

#[tokio::test]
async fn a_feed_fills_the_gap_a_lost_connection_left_from_the_stream() {
    let (options, _stream) = fresh_stream();
    let publisher = connect(&nats_url(), &options).await;
    let proxy = Proxy::start().await;
    let gateway = connect(&proxy.url(), &options).await;
    let room = Uuid::new_v4();
    let mut feed = gateway.subscribe_room(room).await.expect("subscribe");
    let mut acked = vec![publish(&publisher, room, "before the cut").await];
    let mut delivered = vec![next(&mut feed).await.seq];

    proxy.cut();
    eventually("the gateway notices the cut", || !gateway.is_connected()).await;
    // Republished while the gateway is away: lost to its subscription for good. More
    // than one direct read's worth, so the ordered consumer reads the tail.
    for i in 0..40 {
        acked.push(publish(&publisher, room, &format!("missed {i}")).await);
        publish(&publisher, Uuid::new_v4(), "elsewhere").await;
    }
    proxy.restore();
    eventually("the gateway reconnects", || gateway.is_connected()).await;

    let (first, triggers) = trigger_until_the_feed_moves(&publisher, room, &mut feed).await;
    acked.extend(triggers);
    delivered.push(first.expect("feed ended").expect("feed failed").seq);
    while delivered.len() < acked.len() {
        delivered.push(next(&mut feed).await.seq);
    }
    assert_eq!(
        delivered, acked,
        "the missed messages first, then the live ones"
    );
    assert_quiet(&mut feed).await;
}

#[tokio::test]
async fn a_feed_whose_gap_fell_out_of_retention_reports_lagged_and_ends() {
    let (mut options, _stream) = fresh_stream();
    options.max_messages = Some(10);
    let publisher = connect(&nats_url(), &options).await;
    let proxy = Proxy::start().await;
    let gateway = connect(&proxy.url(), &options).await;
    let room = Uuid::new_v4();
    let mut feed = gateway.subscribe_room(room).await.expect("subscribe");
    let seen = publish(&publisher, room, "seen").await;
    assert_eq!(next(&mut feed).await.seq, seen);

    proxy.cut();
    eventually("the gateway notices the cut", || !gateway.is_connected()).await;
    for i in 0..30 {
        publish(&publisher, room, &format!("missed {i}")).await;
    }
    proxy.restore();
    eventually("the gateway reconnects", || gateway.is_connected()).await;

    let (first, _) = trigger_until_the_feed_moves(&publisher, room, &mut feed).await;
    match first {
        Some(Err(BusError::Lagged { after })) => assert_eq!(after, seen),
        other => panic!("expected Lagged after {seen}, got {other:?}"),
    }
    let end = tokio::time::timeout(WAIT, feed.next())
        .await
        .expect("feed ends");
    assert!(end.is_none(), "nothing after the error");
}

#[tokio::test]
async fn a_quiet_room_whose_last_message_aged_out_is_not_reported_lagged() {
    let (mut options, _stream) = fresh_stream();
    options.max_messages = Some(3);
    let bus = connect(&nats_url(), &options).await;
    let room = Uuid::new_v4();
    let mut feed = bus.subscribe_room(room).await.expect("subscribe");
    let old = publish(&bus, room, "old").await;
    assert_eq!(next(&mut feed).await.seq, old);
    for _ in 0..5 {
        publish(&bus, Uuid::new_v4(), "other rooms push it out").await;
    }
    assert_eq!(bus.room_head(room).await.expect("head"), None);
    // Its republish says "no previous message of the room", which differs from what
    // the feed last saw; without any lost connection that is not a gap.
    let new = publish(&bus, room, "new").await;
    assert_eq!(next(&mut feed).await.seq, new);
    assert_quiet(&mut feed).await;
}

#[tokio::test]
async fn replay_after_retention_dropped_old_messages_reports_where_it_is_complete() {
    let (mut options, _stream) = fresh_stream();
    options.max_messages = Some(5);
    let bus = connect(&nats_url(), &options).await;
    let room = Uuid::new_v4();
    let mut acked = Vec::new();
    for i in 0..12 {
        acked.push(publish(&bus, room, &i.to_string()).await);
    }
    let replay = bus.replay(room, 0, usize::MAX).await.expect("replay");
    assert_eq!(
        replay.complete_after, acked[6],
        "the stream keeps the last 5"
    );
    let got: Vec<_> = replay.messages.iter().map(|m| m.seq).collect();
    assert_eq!(got, acked[7..]);
    let later = bus
        .replay(room, acked[9], usize::MAX)
        .await
        .expect("replay");
    let got: Vec<_> = later.messages.iter().map(|m| m.seq).collect();
    assert_eq!(got, acked[10..]);
    assert_eq!(later.complete_after, acked[6]);
}

#[tokio::test]
async fn a_long_replay_returns_every_retained_message_in_order() {
    let (options, _stream) = fresh_stream();
    let bus = connect(&nats_url(), &options).await;
    let room = Uuid::new_v4();
    let mut acked = Vec::new();
    for i in 0..60 {
        acked.push(publish(&bus, room, &i.to_string()).await);
        publish(&bus, Uuid::new_v4(), "noise").await;
    }
    let all = bus.replay(room, 0, usize::MAX).await.expect("replay");
    let got: Vec<_> = all.messages.iter().map(|m| m.seq).collect();
    assert_eq!(got, acked);
    assert!(all.messages.iter().all(|m| m.message.room_id == room));
    assert_eq!(all.complete_after, 0);
    let tail = bus
        .replay(room, acked[30], usize::MAX)
        .await
        .expect("replay");
    let got: Vec<_> = tail.messages.iter().map(|m| m.seq).collect();
    assert_eq!(got, acked[31..]);
    // Past the direct reads into the ordered consumer, stopping at the limit.
    let page = bus.replay(room, acked[5], 40).await.expect("replay");
    let got: Vec<_> = page.messages.iter().map(|m| m.seq).collect();
    assert_eq!(got, acked[6..46]);
    assert_eq!(
        bus.room_head(room).await.expect("head"),
        acked.last().copied()
    );
}

#[tokio::test]
async fn two_workers_sharing_the_persist_consumer_see_every_message() {
    let (options, _stream) = fresh_stream();
    let worker_a = connect(&nats_url(), &options).await;
    let worker_b = connect(&nats_url(), &options).await;
    let consumers = [
        worker_a.persist_consumer().await.expect("consumer"),
        worker_b.persist_consumer().await.expect("consumer"),
    ];
    let room = Uuid::new_v4();
    let mut acked = Vec::new();
    for i in 0..100 {
        acked.push(publish(&worker_a, room, &i.to_string()).await);
    }
    let seen = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    let total = acked.len();
    let mut tasks = Vec::new();
    for mut consumer in consumers {
        let seen = seen.clone();
        tasks.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut mine = 0;
            while seen.lock().expect("seen").len() < total && Instant::now() < deadline {
                let batch = consumer
                    .next_batch(7, Duration::from_millis(200))
                    .await
                    .expect("batch");
                mine += batch.len();
                seen.lock()
                    .expect("seen")
                    .extend(batch.iter().map(|m| m.seq));
                consumer.ack_batch(&[]).await.expect("ack");
            }
            mine
        }));
    }
    let mut handed_out = 0;
    for task in tasks {
        handed_out += task.await.expect("worker");
    }
    let seen: Vec<u64> = seen.lock().expect("seen").iter().copied().collect();
    assert_eq!(seen, acked, "every stored message reached a worker");
    assert!(handed_out >= total);
}

/// A nats-server of this test's own on a free port, killed when dropped.
struct OwnServer {
    child: tokio::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl OwnServer {
    async fn start(port: u16, dir: tempfile::TempDir) -> OwnServer {
        let child = tokio::process::Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start nats-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "own nats-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        OwnServer { child, port, dir }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn stop(mut self) -> (u16, tempfile::TempDir) {
        self.child.kill().await.expect("kill own nats-server");
        (self.port, self.dir)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

#[tokio::test]
async fn with_the_broker_gone_publish_answers_unavailable_in_bounded_time_and_recovers() {
    let server = OwnServer::start(free_port(), tempfile::tempdir().expect("dir")).await;
    let url = server.url();
    let options = NatsBusOptions {
        publish_timeout: Duration::from_secs(1),
        ..NatsBusOptions::default()
    };
    let bus = connect(&url, &options).await;
    let room = Uuid::new_v4();
    let before = publish(&bus, room, "while up").await;
    assert!(bus.is_connected());

    let (port, dir) = server.stop().await;
    eventually("the bus notices the broker is gone", || !bus.is_connected()).await;
    let started = Instant::now();
    let result = bus.publish(message(room, "while down")).await;
    assert!(
        matches!(result, Err(BusError::Unavailable(_))),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded by the publish timeout"
    );
    let event = BusEvent::UserOffline { user_id: room };
    assert!(matches!(
        bus.emit(Topic::User(room), event).await,
        Err(BusError::Unavailable(_))
    ));
    assert!(matches!(
        NatsBus::connect(&url, options.clone()).await,
        Err(BusError::Unavailable(_))
    ));

    // Same port, same store: the client reconnects by itself and the stream is back.
    let _server = OwnServer::start(port, dir).await;
    eventually("the bus reconnects", || bus.is_connected()).await;
    let after = bus
        .publish(message(room, "up again"))
        .await
        .expect("publish after the restart");
    assert!(after.seq > before);
}
