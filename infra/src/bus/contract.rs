//! The contract every [`Bus`] implementation passes. Run it for an implementation with
//! one line: `infra::bus_contract_tests!(|| async { Arc::new(MyBus::new()) as Arc<dyn Bus> });`
//! Each case gets a fresh bus from the factory.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use uuid::Uuid;

use super::{Bus, BusEvent, NewMessage, RoomFeed, StoredMessage, Topic};
use crate::protocol::UserRef;

const WAIT: Duration = Duration::from_secs(5);

#[macro_export]
macro_rules! bus_contract_tests {
    ($make:expr) => {
        $crate::bus_contract_tests!(@cases $make;
            publish_assigns_increasing_seqs_across_rooms,
            republishing_an_id_returns_the_original_seq,
            a_room_feed_delivers_later_messages_once_and_in_order,
            a_room_feed_sees_only_its_room,
            replay_and_head_describe_what_is_retained,
            events_reach_the_subscribers_of_their_topic_only,
            the_persist_consumer_sees_everything_and_redelivers_unacked_batches
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let bus: std::sync::Arc<dyn $crate::bus::Bus> = ($make)().await;
                $crate::bus::contract::$case(bus).await;
            }
        )*
    };
}

pub fn message(room: Uuid, body: &str) -> NewMessage {
    let user = UserRef {
        id: Uuid::new_v4(),
        username: "contract".into(),
    };
    NewMessage {
        id: Uuid::new_v4(),
        room_id: room,
        user,
        body: body.into(),
        client_msg_id: Uuid::new_v4().to_string(),
        ts: chrono::Utc::now(),
    }
}

async fn next(feed: &mut RoomFeed) -> Arc<StoredMessage> {
    tokio::time::timeout(WAIT, feed.next())
        .await
        .expect("room feed delivered nothing within 5 s")
        .expect("room feed ended")
        .expect("room feed failed")
}

pub async fn publish_assigns_increasing_seqs_across_rooms(bus: Arc<dyn Bus>) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut last = 0;
    for room in [a, b, a, b, a] {
        let ack = bus.publish(message(room, "x")).await.expect("publish");
        assert!(ack.seq > last, "seq {} after {last}", ack.seq);
        assert!(!ack.duplicate);
        last = ack.seq;
    }
}

pub async fn republishing_an_id_returns_the_original_seq(bus: Arc<dyn Bus>) {
    let room = Uuid::new_v4();
    let first = message(room, "once");
    let ack = bus.publish(first.clone()).await.expect("publish");
    bus.publish(message(room, "other")).await.expect("publish");
    let again = bus.publish(first).await.expect("republish");
    assert_eq!(again.seq, ack.seq);
    assert!(again.duplicate);
    let replay = bus.replay(room, 0, 100).await.expect("replay");
    let bodies: Vec<_> = replay
        .messages
        .iter()
        .map(|m| m.message.body.as_str())
        .collect();
    assert_eq!(
        bodies,
        ["once", "other"],
        "a duplicate must not be stored twice"
    );
}

pub async fn a_room_feed_delivers_later_messages_once_and_in_order(bus: Arc<dyn Bus>) {
    let room = Uuid::new_v4();
    bus.publish(message(room, "before")).await.expect("publish");
    let mut feed = bus.subscribe_room(room).await.expect("subscribe");
    // Concurrent publishers: the feed must still be in seq order, each message once.
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let bus = bus.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..50 {
                let ack = bus
                    .publish(message(room, &format!("{worker}-{i}")))
                    .await
                    .expect("publish");
                seqs.push(ack.seq);
            }
            seqs
        }));
    }
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.expect("publisher"));
    }
    acked.sort_unstable();
    let mut delivered = Vec::new();
    for _ in 0..acked.len() {
        delivered.push(next(&mut feed).await.seq);
    }
    assert_eq!(delivered, acked, "every acked message once, in seq order");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), feed.next())
            .await
            .is_err(),
        "nothing after the last message, and `before` never"
    );
}

pub async fn a_room_feed_sees_only_its_room(bus: Arc<dyn Bus>) {
    let (mine, other) = (Uuid::new_v4(), Uuid::new_v4());
    let mut feed = bus.subscribe_room(mine).await.expect("subscribe");
    bus.publish(message(other, "not yours"))
        .await
        .expect("publish");
    bus.publish(message(mine, "yours")).await.expect("publish");
    let got = next(&mut feed).await;
    assert_eq!(got.message.body, "yours");
    assert_eq!(got.message.room_id, mine);
}

pub async fn replay_and_head_describe_what_is_retained(bus: Arc<dyn Bus>) {
    let room = Uuid::new_v4();
    assert_eq!(bus.room_head(room).await.expect("head"), None);
    let mut seqs = Vec::new();
    for i in 0..5 {
        seqs.push(
            bus.publish(message(room, &i.to_string()))
                .await
                .expect("publish")
                .seq,
        );
        bus.publish(message(Uuid::new_v4(), "noise"))
            .await
            .expect("publish");
    }
    assert_eq!(bus.room_head(room).await.expect("head"), Some(seqs[4]));
    let replay = bus.replay(room, seqs[1], 100).await.expect("replay");
    let got: Vec<_> = replay.messages.iter().map(|m| m.seq).collect();
    assert_eq!(got, seqs[2..]);
    assert!(
        replay.complete_after < seqs[0],
        "a fresh room is fully retained"
    );
    let everything = bus.replay(room, 0, 100).await.expect("replay");
    assert_eq!(everything.messages.len(), 5);
    let page = bus.replay(room, seqs[0], 2).await.expect("replay");
    let got: Vec<_> = page.messages.iter().map(|m| m.seq).collect();
    assert_eq!(got, seqs[1..3], "a limit keeps the oldest after since");
    assert!(
        bus.replay(room, seqs[4], 100)
            .await
            .expect("replay")
            .messages
            .is_empty()
    );
}

pub async fn events_reach_the_subscribers_of_their_topic_only(bus: Arc<dyn Bus>) {
    let (session, other) = (Uuid::new_v4(), Uuid::new_v4());
    let mut feed = bus
        .subscribe(Topic::Session(session))
        .await
        .expect("subscribe");
    let mut other_feed = bus
        .subscribe(Topic::Session(other))
        .await
        .expect("subscribe");
    let event = BusEvent::SessionRevoked {
        session_id: session,
    };
    bus.emit(Topic::Session(session), event.clone())
        .await
        .expect("emit");
    let got = tokio::time::timeout(WAIT, feed.next())
        .await
        .expect("event in time");
    assert_eq!(got, Some(event));
    assert!(
        tokio::time::timeout(Duration::from_millis(200), other_feed.next())
            .await
            .is_err(),
        "an event must not leak to another topic"
    );
    // Emitting with no subscriber is not an error.
    bus.emit(
        Topic::User(Uuid::new_v4()),
        BusEvent::UserOffline { user_id: other },
    )
    .await
    .expect("emit without subscribers");
}

pub async fn the_persist_consumer_sees_everything_and_redelivers_unacked_batches(
    bus: Arc<dyn Bus>,
) {
    let room = Uuid::new_v4();
    let mut consumer = bus.persist_consumer().await.expect("consumer");
    let mut acked = Vec::new();
    for i in 0..10 {
        acked.push(
            bus.publish(message(room, &i.to_string()))
                .await
                .expect("publish")
                .seq,
        );
    }
    let mut seen = Vec::new();
    let first = consumer.next_batch(4, WAIT).await.expect("batch");
    assert!(!first.is_empty() && first.len() <= 4);
    // Not acked: the same messages come again.
    let again = consumer.next_batch(4, WAIT).await.expect("batch");
    let ids = |b: &[Arc<StoredMessage>]| b.iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!(ids(&again), ids(&first));
    consumer.ack_batch(&[]).await.expect("ack");
    seen.extend(ids(&first));
    while seen.len() < acked.len() {
        let batch = consumer.next_batch(4, WAIT).await.expect("batch");
        assert!(
            !batch.is_empty(),
            "consumer stalled with {} of {} seen",
            seen.len(),
            acked.len()
        );
        seen.extend(ids(&batch));
        consumer.ack_batch(&[]).await.expect("ack");
    }
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen, acked);
    let empty = consumer
        .next_batch(4, Duration::from_millis(100))
        .await
        .expect("batch");
    assert!(empty.is_empty());
}
