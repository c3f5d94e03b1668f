//! The same migrations and queries against PostgreSQL (the embedded tests cover
//! SQLite): each test creates its own database and drops it at the end.

use std::sync::Arc;

use chrono::Utc;
use infra::bus::{NewMessage, StoredMessage};
use infra::db::messages::{self, HistoryQuery};
use infra::db::{rooms, users};
use infra::protocol::UserRef;
use infra::validate::{RoomName, Username};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use uuid::Uuid;

fn server_url() -> String {
    std::env::var("CHATX_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

struct TestDb {
    db: DatabaseConnection,
    name: String,
}

async fn fresh_database() -> TestDb {
    let test = empty_database().await;
    infra::db::migrate(&test.db)
        .await
        .expect("migrations apply on PostgreSQL");
    test
}

/// A new database without any table.
async fn empty_database() -> TestDb {
    let name = format!("chatx_test_{}", Uuid::new_v4().simple());
    let admin = Database::connect(format!("{}/postgres", server_url()))
        .await
        .expect("postgres reachable");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    admin.close().await.expect("close");
    let db = infra::db::connect(&format!("{}/{name}", server_url()))
        .await
        .expect("connect");
    TestDb { db, name }
}

impl TestDb {
    async fn drop_database(self) {
        self.db.close().await.expect("close");
        let admin = Database::connect(format!("{}/postgres", server_url()))
            .await
            .expect("postgres");
        admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .expect("drop database");
    }
}

fn stored(seq: u64, room: Uuid, user: &UserRef, body: &str) -> Arc<StoredMessage> {
    Arc::new(StoredMessage {
        seq,
        message: NewMessage {
            id: Uuid::new_v4(),
            room_id: room,
            user: user.clone(),
            body: body.into(),
            client_msg_id: format!("c{seq}"),
            ts: Utc::now(),
        },
    })
}

#[tokio::test]
async fn messages_insert_idempotently_and_search_uses_full_text() {
    let t = fresh_database().await;
    let user = users::create(
        &t.db,
        &Username::parse("alice").expect("name"),
        "hash".into(),
    )
    .await
    .expect("user");
    let author = UserRef {
        id: user.id,
        username: user.username.clone(),
    };
    let room = rooms::create(
        &t.db,
        &RoomName::parse("room-1").expect("name"),
        rooms::RoomKind::Public,
        None,
        Some(user.id),
    )
    .await
    .expect("room");
    let batch: Vec<_> = [
        (1, "Apples are red"),
        (3, "bananas are yellow"),
        (7, "APPLE pie"),
    ]
    .into_iter()
    .map(|(seq, body)| stored(seq, room.id, &author, body))
    .collect();
    assert_eq!(
        messages::insert_batch(&t.db, &batch).await.expect("insert"),
        3
    );
    assert_eq!(
        messages::insert_batch(&t.db, &batch)
            .await
            .expect("redelivery"),
        0,
        "redelivery inserts nothing"
    );
    let mixed: Vec<_> = batch
        .iter()
        .cloned()
        .chain([stored(8, room.id, &author, "a new one")])
        .collect();
    assert_eq!(
        messages::insert_batch(&t.db, &mixed)
            .await
            .expect("mixed batch"),
        1,
        "only the new row is counted"
    );
    assert_eq!(messages::max_seq(&t.db).await.expect("max"), 8);
    assert_eq!(messages::room_head(&t.db, room.id).await.expect("head"), 8);
    let ids: Vec<Uuid> = batch
        .iter()
        .map(|m| m.message.id)
        .chain([Uuid::new_v4()])
        .collect();
    assert_eq!(
        messages::existing(&t.db, &ids)
            .await
            .expect("existing")
            .len(),
        3
    );

    let search = |text: &str| HistoryQuery {
        text: Some(text.into()),
        limit: 50,
        ..HistoryQuery::default()
    };
    let bodies = |page: (Vec<StoredMessage>, bool)| {
        page.0
            .into_iter()
            .map(|m| m.message.body)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        bodies(
            messages::history(&t.db, room.id, &search("yellow bananas"))
                .await
                .expect("q")
        ),
        ["bananas are yellow"]
    );
    assert_eq!(
        bodies(
            messages::history(&t.db, room.id, &search("apple"))
                .await
                .expect("q")
        ),
        ["APPLE pie"],
        "whole words, any case"
    );
    assert!(
        bodies(
            messages::history(&t.db, room.id, &search("%"))
                .await
                .expect("q")
        )
        .is_empty()
    );
    let range = messages::range(&t.db, room.id, 1, Some(7), 10)
        .await
        .expect("range");
    assert_eq!(range.iter().map(|m| m.seq).collect::<Vec<_>>(), [3, 7]);
    assert_eq!(range[0].message.user.username, "alice");
    t.drop_database().await;
}

#[tokio::test]
async fn duplicate_names_are_conflicts_on_postgres_too() {
    let t = fresh_database().await;
    let name = Username::parse("bob").expect("name");
    users::create(&t.db, &name, "h".into())
        .await
        .expect("first");
    assert!(matches!(
        users::create(&t.db, &name, "h".into()).await,
        Err(infra::db::DbError::Conflict)
    ));
    rooms::ensure_lobby(&t.db).await.expect("lobby");
    rooms::ensure_lobby(&t.db)
        .await
        .expect("lobby twice is fine");
    t.drop_database().await;
}

#[tokio::test]
async fn distributed_mode_refuses_a_database_that_was_not_migrated() {
    let test = empty_database().await;
    assert!(
        infra::db::pending_migrations(&test.db)
            .await
            .expect("pending")
            > 0
    );
    let tag = Uuid::new_v4().simple();
    let nats_url =
        std::env::var("CHATX_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let settings = infra::config::Settings {
        database_url: format!("{}/{}", server_url(), test.name),
        redis_url: Some(
            std::env::var("CHATX_TEST_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        ),
        nats_url: Some(nats_url.clone()),
        nats_stream: format!("T_{tag}"),
        nats_subject_prefix: format!("t{tag}."),
        key_prefix: format!("t{tag}:"),
        startup_timeout_secs: 1,
        create_lobby: false,
        ..infra::config::Settings::default()
    };
    let result = infra::backends::connect(&settings).await;
    // The stream was created on the way; it is this test's alone.
    if let Ok(client) = async_nats::connect(&nats_url).await {
        let _ = async_nats::jetstream::new(client)
            .delete_stream(&settings.nats_stream)
            .await;
    }
    let error = result.err().expect("refused").to_string();
    assert!(
        error.contains("DATABASE_URL") && error.contains("run `migration up` first"),
        "{error}"
    );
    infra::db::migrate(&test.db).await.expect("migrate");
    assert_eq!(
        infra::db::pending_migrations(&test.db)
            .await
            .expect("pending"),
        0
    );
    test.drop_database().await;
}
