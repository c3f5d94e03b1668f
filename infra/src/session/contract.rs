//! The contract every [`SessionStore`] passes:
//! `infra::session_contract_tests!(|| async { Arc::new(Store::new()) as Arc<dyn SessionStore> });`

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use super::{Rotation, SessionRecord, SessionStore};

#[macro_export]
macro_rules! session_contract_tests {
    ($make:expr) => {
        $crate::session_contract_tests!(@cases $make;
            a_created_session_can_be_read_and_listed,
            rotation_accepts_only_the_current_hash_once,
            deleted_and_expired_sessions_are_gone,
            touch_updates_last_seen,
            a_read_racing_a_delete_never_revives_the_session
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            // Two workers: a read and a write of the same session really run at once.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store: std::sync::Arc<dyn $crate::session::SessionStore> = ($make)().await;
                $crate::session::contract::$case(store).await;
            }
        )*
    };
}

const TTL: Duration = Duration::from_secs(60);

fn record(user_id: Uuid, hash: &str) -> SessionRecord {
    let now = Utc::now();
    SessionRecord {
        id: Uuid::new_v4(),
        user_id,
        created_at: now,
        last_seen: now,
        ip: Some("127.0.0.1".into()),
        user_agent: Some("contract".into()),
        refresh_hash: hash.into(),
    }
}

pub async fn a_created_session_can_be_read_and_listed(store: Arc<dyn SessionStore>) {
    let user = Uuid::new_v4();
    let (a, b) = (record(user, "h1"), record(user, "h2"));
    store.create(a.clone(), TTL).await.expect("create");
    store.create(b.clone(), TTL).await.expect("create");
    store
        .create(record(Uuid::new_v4(), "h3"), TTL)
        .await
        .expect("create");
    let got = store.get(a.id).await.expect("get").expect("present");
    assert_eq!(got.user_id, user);
    assert_eq!(got.refresh_hash, "h1");
    assert_eq!(got.ip.as_deref(), Some("127.0.0.1"));
    let mut listed: Vec<_> = store
        .list_for_user(user)
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.id)
        .collect();
    listed.sort();
    let mut expected = vec![a.id, b.id];
    expected.sort();
    assert_eq!(listed, expected);
    assert!(store.get(Uuid::new_v4()).await.expect("get").is_none());
}

pub async fn rotation_accepts_only_the_current_hash_once(store: Arc<dyn SessionStore>) {
    let s = record(Uuid::new_v4(), "old");
    store.create(s.clone(), TTL).await.expect("create");
    // Read first: a store that caches reads must not serve the old hash afterwards.
    assert!(store.get(s.id).await.expect("get").is_some());
    // Two concurrent rotations of the same token: exactly one wins.
    let (r1, r2) = tokio::join!(
        store.rotate_refresh(s.id, "old", "new1", TTL),
        store.rotate_refresh(s.id, "old", "new2", TTL)
    );
    let outcomes = [r1.expect("rotate"), r2.expect("rotate")];
    let winners = outcomes
        .iter()
        .filter(|o| matches!(o, Rotation::Rotated(_)))
        .count();
    assert_eq!(winners, 1, "{outcomes:?}");
    assert!(outcomes.contains(&Rotation::Reused));
    let current = store.get(s.id).await.expect("get").expect("present");
    assert!(
        ["new1", "new2"].contains(&current.refresh_hash.as_str()),
        "{current:?}"
    );
    assert_eq!(
        store
            .rotate_refresh(s.id, "old", "x", TTL)
            .await
            .expect("rotate"),
        Rotation::Reused
    );
    assert_eq!(
        store
            .rotate_refresh(Uuid::new_v4(), "old", "x", TTL)
            .await
            .expect("rotate"),
        Rotation::Missing
    );
}

pub async fn deleted_and_expired_sessions_are_gone(store: Arc<dyn SessionStore>) {
    let user = Uuid::new_v4();
    let s = record(user, "h");
    store.create(s.clone(), TTL).await.expect("create");
    assert!(store.get(s.id).await.expect("get").is_some(), "read before");
    assert!(store.delete(s.id).await.expect("delete"));
    assert!(!store.delete(s.id).await.expect("delete twice"));
    assert!(store.get(s.id).await.expect("get").is_none());
    assert!(store.list_for_user(user).await.expect("list").is_empty());
    let short = record(user, "h");
    store
        .create(short.clone(), Duration::from_millis(1100))
        .await
        .expect("create");
    assert!(
        store.get(short.id).await.expect("get").is_some(),
        "read before"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        store.get(short.id).await.expect("get").is_none(),
        "expired after its TTL"
    );
    assert!(store.list_for_user(user).await.expect("list").is_empty());
}

pub async fn touch_updates_last_seen(store: Arc<dyn SessionStore>) {
    let s = record(Uuid::new_v4(), "h");
    store.create(s.clone(), TTL).await.expect("create");
    assert!(store.get(s.id).await.expect("get").is_some(), "read before");
    let later = s.last_seen + chrono::Duration::seconds(30);
    store.touch(s.id, later).await.expect("touch");
    let got = store.get(s.id).await.expect("get").expect("present");
    assert_eq!(got.last_seen.timestamp_millis(), later.timestamp_millis());
    store
        .touch(Uuid::new_v4(), later)
        .await
        .expect("touching a missing session is fine");
}

/// For stores that cache reads: a read racing with a revocation must never leave the
/// revoked session behind.
pub async fn a_read_racing_a_delete_never_revives_the_session(store: Arc<dyn SessionStore>) {
    for _ in 0..200 {
        let s = record(Uuid::new_v4(), "h");
        store.create(s.clone(), TTL).await.expect("create");
        let reader = {
            let store = store.clone();
            tokio::spawn(async move { store.get(s.id).await })
        };
        assert!(store.delete(s.id).await.expect("delete"));
        reader.await.expect("join").expect("get");
        assert!(
            store.get(s.id).await.expect("get").is_none(),
            "a deleted session was served"
        );
    }
}
