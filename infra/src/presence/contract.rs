//! The contract every [`Presence`] passes:
//! `infra::presence_contract_tests!(|| async { Arc::new(P::new()) as Arc<dyn Presence> });`

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::{Lease, Presence};

#[macro_export]
macro_rules! presence_contract_tests {
    ($make:expr) => {
        $crate::presence_contract_tests!(@cases $make;
            join_and_leave_report_the_first_and_last_connection,
            members_lists_each_present_user_once,
            expired_leases_are_swept_and_refreshed_ones_are_not,
            a_refresh_does_not_bring_back_a_lease_that_was_left,
            members_upto_stops_at_its_limit_and_says_when_there_are_more,
            members_page_walks_every_present_user_once_in_id_order
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let presence: std::sync::Arc<dyn $crate::presence::Presence> = ($make)().await;
                $crate::presence::contract::$case(presence).await;
            }
        )*
    };
}

const TTL: Duration = Duration::from_secs(30);

fn lease(room: Uuid, user: Uuid) -> Lease {
    Lease {
        room,
        user,
        conn: Uuid::new_v4(),
    }
}

pub async fn join_and_leave_report_the_first_and_last_connection(presence: Arc<dyn Presence>) {
    let (room, user) = (Uuid::new_v4(), Uuid::new_v4());
    let (a, b) = (lease(room, user), lease(room, user));
    assert!(
        presence.join(a, TTL).await.expect("join"),
        "first connection"
    );
    assert!(
        !presence.join(b, TTL).await.expect("join"),
        "second connection"
    );
    assert!(
        !presence.leave(a).await.expect("leave"),
        "one connection remains"
    );
    assert!(presence.is_present(room, user).await.expect("present"));
    assert!(presence.leave(b).await.expect("leave"), "last connection");
    assert!(!presence.is_present(room, user).await.expect("present"));
    assert!(
        presence.leave(b).await.expect("leave twice"),
        "leaving again is harmless"
    );
}

pub async fn members_lists_each_present_user_once(presence: Arc<dyn Presence>) {
    let (room, other_room) = (Uuid::new_v4(), Uuid::new_v4());
    let (u1, u2) = (Uuid::new_v4(), Uuid::new_v4());
    presence.join(lease(room, u1), TTL).await.expect("join");
    presence.join(lease(room, u1), TTL).await.expect("join");
    presence.join(lease(room, u2), TTL).await.expect("join");
    presence
        .join(lease(other_room, Uuid::new_v4()), TTL)
        .await
        .expect("join");
    let mut members = presence.members(room).await.expect("members");
    members.sort();
    let mut expected = vec![u1, u2];
    expected.sort();
    assert_eq!(members, expected);
    assert!(
        presence
            .members(Uuid::new_v4())
            .await
            .expect("members")
            .is_empty()
    );
}

pub async fn expired_leases_are_swept_and_refreshed_ones_are_not(presence: Arc<dyn Presence>) {
    let room = Uuid::new_v4();
    let (stale, kept) = (lease(room, Uuid::new_v4()), lease(room, Uuid::new_v4()));
    let short = Duration::from_millis(300);
    presence.join(stale, short).await.expect("join");
    presence.join(kept, short).await.expect("join");
    presence.refresh(&[kept], TTL).await.expect("refresh");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        !presence
            .is_present(room, stale.user)
            .await
            .expect("present"),
        "expired"
    );
    let gone = presence.sweep().await.expect("sweep");
    assert!(gone.contains(&(room, stale.user)), "{gone:?}");
    assert!(!gone.iter().any(|(_, u)| *u == kept.user));
    assert_eq!(
        presence.members(room).await.expect("members"),
        vec![kept.user]
    );
    assert!(
        !presence
            .sweep()
            .await
            .expect("sweep")
            .contains(&(room, stale.user)),
        "reported once"
    );
}

pub async fn a_refresh_does_not_bring_back_a_lease_that_was_left(presence: Arc<dyn Presence>) {
    let room = Uuid::new_v4();
    let gone = lease(room, Uuid::new_v4());
    presence.join(gone, TTL).await.expect("join");
    presence.leave(gone).await.expect("leave");
    presence.refresh(&[gone], TTL).await.expect("refresh");
    assert!(!presence.is_present(room, gone.user).await.expect("present"));
    assert!(presence.members(room).await.expect("members").is_empty());
}

pub async fn members_upto_stops_at_its_limit_and_says_when_there_are_more(
    presence: Arc<dyn Presence>,
) {
    let room = Uuid::new_v4();
    let users: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    for user in &users {
        // Two connections each: the limit counts users, not leases.
        presence.join(lease(room, *user), TTL).await.expect("join");
        presence.join(lease(room, *user), TTL).await.expect("join");
    }
    let gone = lease(room, Uuid::new_v4());
    presence.join(gone, TTL).await.expect("join");
    presence.leave(gone).await.expect("leave");

    let mut expected = users.clone();
    expected.sort();
    // 10 leases: a limit of 5 reads the Redis index, one of 100 the room's range.
    for limit in [5, 100] {
        let (mut all, more) = presence.members_upto(room, limit).await.expect("members");
        assert!(!more, "five users fit a limit of {limit}");
        all.sort();
        assert_eq!(
            all, expected,
            "each present user once, not the one who left"
        );
    }

    let (some, more) = presence.members_upto(room, 3).await.expect("members");
    assert!(more, "two more users than the limit");
    assert_eq!(some.len(), 3);
    let mut distinct = some.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "no user twice");
    assert!(some.iter().all(|u| users.contains(u)));

    let (none, more) = presence
        .members_upto(Uuid::new_v4(), 3)
        .await
        .expect("members of an empty room");
    assert!(none.is_empty() && !more);
}

pub async fn members_page_walks_every_present_user_once_in_id_order(presence: Arc<dyn Presence>) {
    let room = Uuid::new_v4();
    let mut present: Vec<Uuid> = (0..7).map(|_| Uuid::new_v4()).collect();
    for user in &present {
        // Two connections each: a page counts users, not leases.
        presence.join(lease(room, *user), TTL).await.expect("join");
        presence.join(lease(room, *user), TTL).await.expect("join");
    }
    let left = lease(room, Uuid::new_v4());
    presence.join(left, TTL).await.expect("join");
    presence.leave(left).await.expect("leave");
    let expired = lease(room, Uuid::new_v4());
    presence
        .join(expired, Duration::from_millis(50))
        .await
        .expect("join");
    tokio::time::sleep(Duration::from_millis(150)).await;
    present.sort();

    let (mut walked, mut after, mut pages) = (Vec::<Uuid>::new(), None, 0);
    loop {
        let (page, more) = presence.members_page(room, after, 3).await.expect("page");
        pages += 1;
        assert!(page.len() <= 3, "{page:?}");
        assert!(page.is_sorted(), "a page is in id order: {page:?}");
        walked.extend(&page);
        if !more {
            break;
        }
        after = page.last().copied();
        assert!(pages < 10, "the walk ends");
    }
    assert_eq!(
        walked, present,
        "every present user once, in id order; not the one who left or expired"
    );
    assert_eq!(pages, 3, "7 users in pages of 3");

    assert_eq!(
        presence.members_page(room, None, 100).await.expect("page"),
        (present.clone(), false)
    );
    // A page starts right after its cursor's user; after the last user there is none.
    let (page, _) = presence
        .members_page(room, Some(present[0]), 2)
        .await
        .expect("page");
    assert_eq!(page, present[1..3]);
    assert_eq!(
        presence
            .members_page(room, present.last().copied(), 3)
            .await
            .expect("page"),
        (Vec::new(), false)
    );
    assert_eq!(
        presence
            .members_page(Uuid::new_v4(), None, 3)
            .await
            .expect("page of an empty room"),
        (Vec::new(), false)
    );
}
