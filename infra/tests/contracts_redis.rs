//! The shared contract suites against the Redis implementations, plus what only a
//! networked store can get wrong: two gateways sharing state, scripts missing from the
//! server's cache, and Redis being unreachable.
//!
//! Needs the Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`). Each test works
//! under its own prefix `chatx-test:<uuid>:` and deletes its keys when it ends; nothing
//! here flushes the server or touches other keys.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use infra::presence::{Lease, Presence, PresenceError, RedisPresence};
use infra::ratelimit::{Decision, Quota, RateLimitError, RateLimiter, RedisRateLimiter};
use infra::redis_conn::{self, KeyPrefix};
use infra::session::{RedisSessionStore, Rotation, SessionError, SessionRecord, SessionStore};
use redis::aio::ConnectionManager;
use uuid::Uuid;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

/// A connection of its own: a test is one gateway, and each tokio test has its own
/// runtime, which the manager's background task lives on.
async fn connection() -> ConnectionManager {
    let url = redis_url();
    redis_conn::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("Redis at {url} is needed (set REDIS_URL): {e}"))
}

/// Deletes every key under a test's prefix when dropped, at the end of the test.
struct Cleanup {
    prefix: KeyPrefix,
}

impl Cleanup {
    fn new() -> Self {
        Self {
            prefix: KeyPrefix::new(format!("chatx-test:{}:", Uuid::new_v4())),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // A blocking client: the test's runtime may already be shutting down.
        let Ok(client) = redis::Client::open(redis_url()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
            return;
        };
        let pattern = format!("{}*", self.prefix);
        let mut cursor = 0_u64;
        loop {
            let Ok((next, keys)) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query::<(u64, Vec<String>)>(&mut conn)
            else {
                return;
            };
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }
}

/// A store together with the guard that removes its keys after the test.
struct Scoped<T> {
    inner: T,
    _cleanup: Cleanup,
}

#[async_trait::async_trait]
impl<T: SessionStore> SessionStore for Scoped<T> {
    async fn create(&self, record: SessionRecord, ttl: Duration) -> Result<(), SessionError> {
        self.inner.create(record, ttl).await
    }
    async fn get(&self, id: Uuid) -> Result<Option<SessionRecord>, SessionError> {
        self.inner.get(id).await
    }
    async fn list_for_user(&self, user_id: Uuid) -> Result<Vec<SessionRecord>, SessionError> {
        self.inner.list_for_user(user_id).await
    }
    async fn rotate_refresh(
        &self,
        id: Uuid,
        presented_hash: &str,
        new_hash: &str,
        ttl: Duration,
    ) -> Result<Rotation, SessionError> {
        self.inner
            .rotate_refresh(id, presented_hash, new_hash, ttl)
            .await
    }
    async fn touch(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), SessionError> {
        self.inner.touch(id, at).await
    }
    async fn delete(&self, id: Uuid) -> Result<bool, SessionError> {
        self.inner.delete(id).await
    }
}

#[async_trait::async_trait]
impl<T: Presence> Presence for Scoped<T> {
    async fn join(&self, lease: Lease, ttl: Duration) -> Result<bool, PresenceError> {
        self.inner.join(lease, ttl).await
    }
    async fn leave(&self, lease: Lease) -> Result<bool, PresenceError> {
        self.inner.leave(lease).await
    }
    async fn refresh(&self, leases: &[Lease], ttl: Duration) -> Result<(), PresenceError> {
        self.inner.refresh(leases, ttl).await
    }
    async fn members(&self, room: Uuid) -> Result<Vec<Uuid>, PresenceError> {
        self.inner.members(room).await
    }
    async fn members_upto(
        &self,
        room: Uuid,
        limit: usize,
    ) -> Result<(Vec<Uuid>, bool), PresenceError> {
        self.inner.members_upto(room, limit).await
    }
    async fn members_page(
        &self,
        room: Uuid,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<(Vec<Uuid>, bool), PresenceError> {
        self.inner.members_page(room, after, limit).await
    }
    async fn is_present(&self, room: Uuid, user: Uuid) -> Result<bool, PresenceError> {
        self.inner.is_present(room, user).await
    }
    async fn sweep(&self) -> Result<Vec<(Uuid, Uuid)>, PresenceError> {
        self.inner.sweep().await
    }
}

#[async_trait::async_trait]
impl<T: RateLimiter> RateLimiter for Scoped<T> {
    async fn check(&self, key: &str, quota: Quota) -> Result<Decision, RateLimitError> {
        self.inner.check(key, quota).await
    }
}

async fn scoped<T>(make: impl FnOnce(ConnectionManager, KeyPrefix) -> T) -> Arc<Scoped<T>> {
    let cleanup = Cleanup::new();
    let inner = make(connection().await, cleanup.prefix.clone());
    Arc::new(Scoped {
        inner,
        _cleanup: cleanup,
    })
}

mod redis_sessions {
    use super::*;
    infra::session_contract_tests!(|| async {
        scoped(RedisSessionStore::new).await as Arc<dyn SessionStore>
    });
}

mod redis_presence {
    use super::*;
    infra::presence_contract_tests!(|| async {
        scoped(RedisPresence::new).await as Arc<dyn Presence>
    });
}

mod redis_rate_limiter {
    use super::*;
    infra::ratelimit_contract_tests!(|| async {
        scoped(RedisRateLimiter::new).await as Arc<dyn RateLimiter>
    });
}

const TTL: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_lease_written_by_one_gateway_is_seen_and_ended_by_another() {
    let cleanup = Cleanup::new();
    let a = RedisPresence::new(connection().await, cleanup.prefix.clone());
    let b = RedisPresence::new(connection().await, cleanup.prefix.clone());
    let (room, user) = (Uuid::new_v4(), Uuid::new_v4());
    let on_a = Lease {
        room,
        user,
        conn: Uuid::new_v4(),
    };
    let on_b = Lease {
        conn: Uuid::new_v4(),
        ..on_a
    };

    assert!(
        a.join(on_a, TTL).await.expect("join"),
        "first lease anywhere"
    );
    assert!(b.is_present(room, user).await.expect("present"));
    assert_eq!(b.members(room).await.expect("members"), vec![user]);
    assert!(
        !b.join(on_b, TTL).await.expect("join"),
        "the user is already present through gateway a"
    );
    assert!(
        !a.leave(on_a).await.expect("leave"),
        "gateway b still holds a lease"
    );
    assert!(a.is_present(room, user).await.expect("present"));
    assert!(b.leave(on_b).await.expect("leave"), "last lease anywhere");
    assert!(!a.is_present(room, user).await.expect("present"));
}

#[tokio::test]
async fn a_crashed_gateways_leases_are_swept_once_by_concurrent_sweepers() {
    let cleanup = Cleanup::new();
    let gateway = RedisPresence::new(connection().await, cleanup.prefix.clone());
    let room = Uuid::new_v4();
    // More leases than one sweep batch (1000), with each user's second lease joined
    // after everyone's first: a batch ends between a user's two leases, and the user
    // must be reported by the batch that removes the last one, not by both.
    let users: Vec<Uuid> = (0..700).map(|_| Uuid::new_v4()).collect();
    for _round in 0..2 {
        for user in &users {
            let lease = Lease {
                room,
                user: *user,
                conn: Uuid::new_v4(),
            };
            gateway
                .join(lease, Duration::from_millis(100))
                .await
                .expect("join");
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let sweepers = [
        RedisPresence::new(connection().await, cleanup.prefix.clone()),
        RedisPresence::new(connection().await, cleanup.prefix.clone()),
        RedisPresence::new(connection().await, cleanup.prefix.clone()),
    ];
    let reports = futures_util::future::join_all(sweepers.iter().map(|s| s.sweep())).await;
    let mut reported: Vec<(Uuid, Uuid)> = reports
        .into_iter()
        .flat_map(|r| r.expect("sweep"))
        .collect();
    reported.sort();
    let mut expected: Vec<(Uuid, Uuid)> = users.iter().map(|u| (room, *u)).collect();
    expected.sort();
    assert_eq!(reported, expected, "each user reported exactly once");
    assert!(gateway.members(room).await.expect("members").is_empty());
}

/// A sorted set's members, sorted.
async fn sorted_members(key: String) -> Vec<String> {
    let mut members: Vec<String> = redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query_async(&mut connection().await)
        .await
        .expect("zrange");
    members.sort();
    members
}

/// The two sorted sets of a room: its leases (`presence:`) and their by-user index.
async fn lease_sets(prefix: &KeyPrefix, room: Uuid) -> (Vec<String>, Vec<String>) {
    (
        sorted_members(prefix.key(format_args!("presence:{room}"))).await,
        sorted_members(prefix.key(format_args!("presence_by_user:{room}"))).await,
    )
}

#[tokio::test]
async fn the_by_user_index_holds_exactly_the_rooms_leases() {
    let cleanup = Cleanup::new();
    let presence = RedisPresence::new(connection().await, cleanup.prefix.clone());
    let (room, user) = (Uuid::new_v4(), Uuid::new_v4());
    let lease = |conn| Lease { room, user, conn };
    let (kept, left, expired) = (
        lease(Uuid::new_v4()),
        lease(Uuid::new_v4()),
        lease(Uuid::new_v4()),
    );
    presence.join(kept, TTL).await.expect("join");
    presence.join(left, TTL).await.expect("join");
    presence
        .join(expired, Duration::from_millis(50))
        .await
        .expect("join");
    let (leases, index) = lease_sets(&cleanup.prefix, room).await;
    assert_eq!(leases.len(), 3);
    assert_eq!(leases, index, "every lease is indexed when it is joined");

    presence.leave(left).await.expect("leave");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        presence.sweep().await.expect("sweep").is_empty(),
        "the user still holds a lease"
    );
    presence.refresh(&[kept], TTL).await.expect("refresh");
    let (leases, index) = lease_sets(&cleanup.prefix, room).await;
    assert_eq!(leases, vec![format!("{user}:{}", kept.conn)]);
    assert_eq!(leases, index, "a leave and a sweep remove from both sets");

    presence.leave(kept).await.expect("leave");
    let (leases, index) = lease_sets(&cleanup.prefix, room).await;
    assert!(
        leases.is_empty() && index.is_empty(),
        "an empty room leaves no keys"
    );
}

#[tokio::test]
async fn leases_written_before_the_index_are_found_and_a_refresh_indexes_them() {
    let cleanup = Cleanup::new();
    let presence = RedisPresence::new(connection().await, cleanup.prefix.clone());
    let (room, user) = (Uuid::new_v4(), Uuid::new_v4());
    // A lease as a gateway from before the index wrote it: in `presence:` only.
    let old = Lease {
        room,
        user,
        conn: Uuid::new_v4(),
    };
    let mut conn = connection().await;
    // Expiring before a refresh's new expiry, so that the refresh changes it.
    let expiry_ms = Utc::now().timestamp_millis() + 20_000;
    let _: () = redis::cmd("ZADD")
        .arg(cleanup.prefix.key(format_args!("presence:{room}")))
        .arg(expiry_ms)
        .arg(format!("{user}:{}", old.conn))
        .query_async(&mut conn)
        .await
        .expect("zadd");

    assert!(presence.is_present(room, user).await.expect("present"));
    let new = Lease {
        conn: Uuid::new_v4(),
        ..old
    };
    assert!(
        !presence.join(new, TTL).await.expect("join"),
        "the unindexed lease counts: this is not the user's first"
    );
    assert_eq!(
        presence.members_upto(room, 10).await.expect("members"),
        (vec![user], false)
    );
    assert_eq!(
        presence.members_page(room, None, 10).await.expect("page"),
        (vec![user], false),
        "a room not fully indexed is paged from its leases"
    );
    assert_eq!(
        presence
            .members_page(room, Some(user), 10)
            .await
            .expect("page"),
        (Vec::new(), false)
    );
    assert!(
        !presence.leave(new).await.expect("leave"),
        "the unindexed lease is still live"
    );

    presence.refresh(&[old], TTL).await.expect("refresh");
    let (leases, index) = lease_sets(&cleanup.prefix, room).await;
    assert_eq!(leases, index, "the refresh indexed the old lease");
    assert!(
        presence.leave(old).await.expect("leave"),
        "the last lease, found through the index"
    );
}

#[tokio::test]
async fn a_room_not_fully_indexed_is_paged_in_id_order_from_its_leases() {
    let cleanup = Cleanup::new();
    let presence = RedisPresence::new(connection().await, cleanup.prefix.clone());
    let room = Uuid::new_v4();
    let mut users: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    // Leases as a gateway from before the index wrote them (`presence:` only), one
    // user with two, and one expired.
    let mut conn = connection().await;
    let live = Utc::now().timestamp_millis() + 20_000;
    for (user, expiry) in users
        .iter()
        .map(|u| (*u, live))
        .chain([(users[0], live), (Uuid::new_v4(), live - 40_000)])
    {
        let _: () = redis::cmd("ZADD")
            .arg(cleanup.prefix.key(format_args!("presence:{room}")))
            .arg(expiry)
            .arg(format!("{user}:{}", Uuid::new_v4()))
            .query_async(&mut conn)
            .await
            .expect("zadd");
    }
    users.sort();
    let first = presence.members_page(room, None, 2).await.expect("page");
    assert_eq!(first, (users[..2].to_vec(), true));
    let second = presence
        .members_page(room, Some(users[1]), 2)
        .await
        .expect("page");
    assert_eq!(second, (users[2..4].to_vec(), true));
    let last = presence
        .members_page(room, Some(users[3]), 2)
        .await
        .expect("page");
    assert_eq!(
        last,
        (users[4..].to_vec(), false),
        "not the expired lease's user"
    );
}

/// Joins `user` to `room` with a lease that runs out in 50 ms.
async fn join_briefly(presence: &RedisPresence, room: Uuid, user: Uuid) {
    let lease = Lease {
        room,
        user,
        conn: Uuid::new_v4(),
    };
    presence
        .join(lease, Duration::from_millis(50))
        .await
        .expect("join");
}

/// Sorted users, for comparing sweep reports.
fn sorted(mut users: Vec<Uuid>) -> Vec<Uuid> {
    users.sort();
    users
}

#[tokio::test]
async fn a_sweep_of_an_indexed_room_reports_whoever_has_no_lease_left() {
    let cleanup = Cleanup::new();
    let presence = RedisPresence::new(connection().await, cleanup.prefix.clone());
    let room = Uuid::new_v4();
    let (stays, goes, stale) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    for user in [stays, goes, stale] {
        join_briefly(&presence, room, user).await;
    }
    let kept = Lease {
        room,
        user: stays,
        conn: Uuid::new_v4(),
    };
    presence.join(kept, TTL).await.expect("join");
    // An index entry with no lease behind it, as a gateway from before the index
    // leaves one when it removes the lease from the room only: it is not a lease.
    let _: () = redis::cmd("ZADD")
        .arg(cleanup.prefix.key(format_args!("presence_by_user:{room}")))
        .arg(0)
        .arg(format!("{stale}:{}", Uuid::new_v4()))
        .query_async(&mut connection().await)
        .await
        .expect("zadd");
    tokio::time::sleep(Duration::from_millis(150)).await;

    let gone = presence.sweep().await.expect("sweep");
    let users: Vec<Uuid> = gone.iter().map(|(_, user)| *user).collect();
    assert!(gone.iter().all(|(r, _)| *r == room), "{gone:?}");
    assert_eq!(
        sorted(users),
        sorted(vec![goes, stale]),
        "the user with a live lease stays, the stale index entry holds nobody"
    );
    assert_eq!(presence.members(room).await.expect("members"), vec![stays]);
}

#[tokio::test]
async fn a_sweep_of_a_room_not_fully_indexed_reads_the_room() {
    let cleanup = Cleanup::new();
    let presence = RedisPresence::new(connection().await, cleanup.prefix.clone());
    let (room, old_and_new, new_only) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    // A live lease as a gateway from before the index wrote it, in `presence:` only,
    // beside an indexed one of the same user that expires: the user is still there.
    let _: () = redis::cmd("ZADD")
        .arg(cleanup.prefix.key(format_args!("presence:{room}")))
        .arg(Utc::now().timestamp_millis() + 20_000)
        .arg(format!("{old_and_new}:{}", Uuid::new_v4()))
        .query_async(&mut connection().await)
        .await
        .expect("zadd");
    join_briefly(&presence, room, old_and_new).await;
    join_briefly(&presence, room, new_only).await;
    tokio::time::sleep(Duration::from_millis(150)).await;

    assert_eq!(
        presence.sweep().await.expect("sweep"),
        vec![(room, new_only)],
        "the unindexed live lease keeps its user"
    );
    assert_eq!(
        presence.members(room).await.expect("members"),
        vec![old_and_new]
    );
}

#[tokio::test]
async fn a_refresh_racing_a_leave_does_not_bring_the_lease_back() {
    let cleanup = Cleanup::new();
    let presence = RedisPresence::new(connection().await, cleanup.prefix.clone());
    let lease = Lease {
        room: Uuid::new_v4(),
        user: Uuid::new_v4(),
        conn: Uuid::new_v4(),
    };
    presence.join(lease, TTL).await.expect("join");
    presence.leave(lease).await.expect("leave");
    presence.refresh(&[lease], TTL).await.expect("refresh");
    assert!(
        !presence
            .is_present(lease.room, lease.user)
            .await
            .expect("present")
    );
}

#[tokio::test]
async fn keys_follow_the_documented_schema() {
    // Operators inspect and revoke with redis-cli using the README's key names.
    let cleanup = Cleanup::new();
    let mut conn = connection().await;
    let p = cleanup.prefix.clone();

    let sessions = RedisSessionStore::new(conn.clone(), p.clone());
    let now = Utc::now();
    let record = SessionRecord {
        id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
        created_at: now,
        last_seen: now,
        ip: Some("10.0.0.1".into()),
        user_agent: None,
        refresh_hash: "hash".into(),
    };
    sessions
        .create(record.clone(), Duration::from_secs(600))
        .await
        .expect("create");
    let session_key = p.key(format_args!("session:{}", record.id));
    let fields: std::collections::BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg(&session_key)
        .query_async(&mut conn)
        .await
        .expect("hgetall");
    assert_eq!(
        fields.keys().map(String::as_str).collect::<Vec<_>>(),
        ["created_at", "ip", "last_seen", "refresh_hash", "user_id"]
    );
    assert_eq!(fields["user_id"], record.user_id.to_string());
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&session_key)
        .query_async(&mut conn)
        .await
        .expect("pttl");
    assert!((590_000..=600_000).contains(&ttl_ms), "{ttl_ms}");
    let sids: Vec<String> = redis::cmd("SMEMBERS")
        .arg(p.key(format_args!("user_sessions:{}", record.user_id)))
        .query_async(&mut conn)
        .await
        .expect("smembers");
    assert_eq!(sids, vec![record.id.to_string()]);

    let presence = RedisPresence::new(conn.clone(), p.clone());
    let lease = Lease {
        room: Uuid::new_v4(),
        user: Uuid::new_v4(),
        conn: Uuid::new_v4(),
    };
    presence.join(lease, TTL).await.expect("join");
    let (seconds, micros): (i64, i64) = redis::cmd("TIME")
        .query_async(&mut conn)
        .await
        .expect("time");
    let server_now_ms = seconds * 1000 + micros / 1000;
    let expiry_ms: f64 = redis::cmd("ZSCORE")
        .arg(p.key(format_args!("presence:{}", lease.room)))
        .arg(format!("{}:{}", lease.user, lease.conn))
        .query_async(&mut conn)
        .await
        .expect("zscore");
    let ttl_left = expiry_ms as i64 - server_now_ms;
    assert!((29_000..=30_000).contains(&ttl_left), "{ttl_left}");
    let rooms: Vec<String> = redis::cmd("SMEMBERS")
        .arg(p.key("presence_rooms"))
        .query_async(&mut conn)
        .await
        .expect("smembers");
    assert_eq!(rooms, vec![lease.room.to_string()]);
    let indexed: f64 = redis::cmd("ZSCORE")
        .arg(p.key(format_args!("presence_by_user:{}", lease.room)))
        .arg(format!("{}:{}", lease.user, lease.conn))
        .query_async(&mut conn)
        .await
        .expect("zscore in the by-user index");
    assert_eq!(indexed, 0.0);

    let limiter = RedisRateLimiter::new(conn.clone(), p.clone());
    let quota = Quota {
        interval: Duration::from_secs(2),
        burst: 1,
    };
    limiter.check("msg:u1", quota).await.expect("check");
    let tat_us: i64 = redis::cmd("GET")
        .arg(p.key("rl:msg:u1"))
        .query_async(&mut conn)
        .await
        .expect("get");
    // TAT = the check's server time + one interval; TIME was read just before it.
    let since_time_us = tat_us - (seconds * 1_000_000 + micros);
    assert!(
        (2_000_000..=2_500_000).contains(&since_time_us),
        "{since_time_us}"
    );
}

#[tokio::test]
async fn two_gateways_share_one_allowance() {
    let cleanup = Cleanup::new();
    let a = RedisRateLimiter::new(connection().await, cleanup.prefix.clone());
    let b = RedisRateLimiter::new(connection().await, cleanup.prefix.clone());
    let quota = Quota {
        interval: Duration::from_secs(10),
        burst: 5,
    };
    let key = format!("msg:{}", Uuid::new_v4());
    // Twenty checks at once, half through each gateway.
    let checks = (0..20).map(|i| {
        let limiter = if i % 2 == 0 { &a } else { &b };
        limiter.check(&key, quota)
    });
    let allowed = futures_util::future::join_all(checks)
        .await
        .into_iter()
        .map(|d| d.expect("check"))
        .filter(|d| *d == Decision::Allowed)
        .count();
    assert_eq!(allowed, 5, "the burst, not twice the burst");
}

#[tokio::test]
async fn a_fresh_connection_finds_the_state_and_reloads_missing_scripts() {
    let cleanup = Cleanup::new();
    let quota = Quota {
        interval: Duration::from_secs(10),
        burst: 2,
    };
    let key = format!("msg:{}", Uuid::new_v4());
    let first = RedisRateLimiter::new(connection().await, cleanup.prefix.clone());
    for _ in 0..2 {
        assert_eq!(
            first.check(&key, quota).await.expect("check"),
            Decision::Allowed
        );
    }
    drop(first);
    // A new process after a restart: new connection, new limiter, same Redis.
    let second = RedisRateLimiter::new(connection().await, cleanup.prefix.clone());
    assert!(matches!(
        second.check(&key, quota).await.expect("check"),
        Decision::Limited { .. }
    ));

    // After SCRIPT FLUSH (or a failover to a replica with an empty script cache) the
    // server answers NOSCRIPT. Flushing a shared server is not ours to do, so a
    // script it has never seen stands in: EVALSHA fails, and redis::Script must load
    // it and retry through the ConnectionManager, as our stores rely on.
    let mut conn = connection().await;
    let unseen = redis::Script::new(&format!("-- {}\nreturn 42", Uuid::new_v4()));
    let loaded: Vec<bool> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(unseen.get_hash())
        .query_async(&mut conn)
        .await
        .expect("script exists");
    assert_eq!(loaded, vec![false]);
    let answer: i64 = unseen.invoke_async(&mut conn).await.expect("invoke");
    assert_eq!(answer, 42);
}

/// A port nothing listens on.
const CLOSED: &str = "redis://127.0.0.1:1";
/// Generous bound for "fails fast": connection and response timeouts are 1-2 s.
const FAIL_FAST: Duration = Duration::from_secs(6);

#[tokio::test]
async fn connecting_to_a_closed_port_fails_quickly() {
    let result = tokio::time::timeout(FAIL_FAST, redis_conn::connect(CLOSED))
        .await
        .expect("connect gives up in bounded time");
    assert!(result.is_err());
}

#[tokio::test]
async fn stores_on_an_unreachable_redis_answer_unavailable_in_bounded_time() {
    let conn = redis_conn::connect_lazy(CLOSED).expect("a well-formed url");
    let prefix = KeyPrefix::default();
    let sessions = RedisSessionStore::new(conn.clone(), prefix.clone());
    let presence = RedisPresence::new(conn.clone(), prefix.clone());
    let limiter = RedisRateLimiter::new(conn, prefix);
    let quota = Quota {
        interval: Duration::from_secs(1),
        burst: 1,
    };

    let got = tokio::time::timeout(FAIL_FAST, sessions.get(Uuid::new_v4()))
        .await
        .expect("bounded");
    assert!(matches!(got, Err(SessionError::Unavailable(_))), "{got:?}");
    let got = tokio::time::timeout(FAIL_FAST, presence.members(Uuid::new_v4()))
        .await
        .expect("bounded");
    assert!(matches!(got, Err(PresenceError::Unavailable(_))), "{got:?}");
    let got = tokio::time::timeout(FAIL_FAST, limiter.check("msg:x", quota))
        .await
        .expect("bounded");
    assert!(
        matches!(got, Err(RateLimitError::Unavailable(_))),
        "{got:?}"
    );
}

#[tokio::test]
async fn a_redis_that_accepts_but_never_answers_does_not_hang_callers() {
    // A listener that accepts connections and never replies: a hung server, or a
    // network that drops everything after the handshake.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("redis://{}", listener.local_addr().expect("addr"));
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let conn = redis_conn::connect_lazy(&url).expect("a well-formed url");
    let sessions = RedisSessionStore::new(conn, KeyPrefix::default());
    let got = tokio::time::timeout(FAIL_FAST, sessions.get(Uuid::new_v4()))
        .await
        .expect("bounded");
    assert!(matches!(got, Err(SessionError::Unavailable(_))), "{got:?}");
    silent.abort();
}
