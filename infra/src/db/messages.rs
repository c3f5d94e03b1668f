//! `messages` queries: idempotent batch inserts (the worker) and history reads.

use std::collections::HashMap;
use std::sync::Arc;

use entity::message;
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, SimpleExpr};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::{DbError, users};
use crate::bus::{NewMessage, StoredMessage};
use crate::protocol::UserRef;

/// Largest page of history.
pub const MAX_PAGE: u64 = 100;

fn to_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// Inserts a batch in one statement; messages already stored (same id) are skipped,
/// so redelivery after a crash is harmless. Returns how many rows were new: when that
/// is the whole batch (the common case), the caller has nothing to look up. No
/// `RETURNING`: on SQLite each returned row is one more message from the connection's
/// worker thread, and one more wake-up of the persister, per committed batch.
pub async fn insert_batch(
    db: &DatabaseConnection,
    batch: &[Arc<StoredMessage>],
) -> Result<u64, DbError> {
    if batch.is_empty() {
        return Ok(0);
    }
    let rows = batch.iter().map(|m| message::ActiveModel {
        id: Set(m.message.id),
        room_id: Set(m.message.room_id),
        seq: Set(to_i64(m.seq)),
        user_id: Set(m.message.user.id),
        body: Set(m.message.body.clone()),
        client_msg_id: Set(m.message.client_msg_id.clone()),
        created_at: Set(m.message.ts),
        edited_at: Set(None),
        deleted_at: Set(None),
    });
    let inserted = message::Entity::insert_many(rows)
        .on_conflict_do_nothing_on([message::Column::Id])
        .exec_without_returning(db)
        .await?;
    Ok(match inserted {
        sea_orm::TryInsertResult::Inserted(rows) => rows,
        _ => 0,
    })
}

/// `(id, seq)` of the messages among `ids` that are already stored.
pub async fn existing(db: &DatabaseConnection, ids: &[Uuid]) -> Result<Vec<(Uuid, u64)>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(Uuid, i64)> = message::Entity::find()
        .select_only()
        .column(message::Column::Id)
        .column(message::Column::Seq)
        .filter(message::Column::Id.is_in(ids.iter().copied()))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, seq)| (id, u64::try_from(seq).unwrap_or(0)))
        .collect())
}

/// Highest seq stored (0 when empty): the embedded bus continues from it.
pub async fn max_seq(db: &DatabaseConnection) -> Result<u64, DbError> {
    let max: Option<Option<i64>> = message::Entity::find()
        .select_only()
        .column_as(message::Column::Seq.max(), "max")
        .into_tuple()
        .one(db)
        .await?;
    Ok(u64::try_from(max.flatten().unwrap_or(0)).unwrap_or(0))
}

/// Seq of the room's latest stored message (0 when none).
pub async fn room_head(db: &DatabaseConnection, room: Uuid) -> Result<u64, DbError> {
    let max: Option<Option<i64>> = message::Entity::find()
        .select_only()
        .column_as(message::Column::Seq.max(), "max")
        .filter(message::Column::RoomId.eq(room))
        .into_tuple()
        .one(db)
        .await?;
    Ok(u64::try_from(max.flatten().unwrap_or(0)).unwrap_or(0))
}

/// Filters of a history page. `before`/`after` are exclusive seqs.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    pub before: Option<u64>,
    pub after: Option<u64>,
    pub user: Option<Uuid>,
    /// Case-insensitive substring of the body.
    pub text: Option<String>,
    pub limit: u64,
}

/// PostgreSQL: full-text match on the generated `body_tsv` column (GIN index), words
/// in any order. SQLite: case-insensitive substring (LIKE, with `%`/`_` escaped).
fn text_filter(backend: DbBackend, text: &str) -> SimpleExpr {
    if backend == DbBackend::Postgres {
        return Expr::cust_with_values(
            "body_tsv @@ plainto_tsquery('simple', $1)",
            [text.to_string()],
        );
    }
    let escaped = text
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    Expr::expr(Func::lower(Expr::col(message::Column::Body)))
        .like(LikeExpr::new(format!("%{escaped}%")).escape('\\'))
}

/// One page, oldest first. With only `after`, the page starts right after it and
/// `has_more` says newer ones exist; otherwise it ends right before `before` (or at
/// the newest) and `has_more` says older ones exist.
pub async fn history(
    db: &DatabaseConnection,
    room: Uuid,
    query: &HistoryQuery,
) -> Result<(Vec<StoredMessage>, bool), DbError> {
    let limit = query.limit.clamp(1, MAX_PAGE);
    let mut select = message::Entity::find()
        .filter(message::Column::RoomId.eq(room))
        .filter(message::Column::DeletedAt.is_null());
    if let Some(before) = query.before {
        select = select.filter(message::Column::Seq.lt(to_i64(before)));
    }
    if let Some(after) = query.after {
        select = select.filter(message::Column::Seq.gt(to_i64(after)));
    }
    if let Some(user) = query.user {
        select = select.filter(message::Column::UserId.eq(user));
    }
    if let Some(text) = query.text.as_deref().filter(|t| !t.is_empty()) {
        select = select.filter(text_filter(db.get_database_backend(), text));
    }
    let forward = query.after.is_some() && query.before.is_none();
    select = if forward {
        select.order_by_asc(message::Column::Seq)
    } else {
        select.order_by_desc(message::Column::Seq)
    };
    let mut rows = select.limit(limit + 1).all(db).await?;
    let has_more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    if !forward {
        rows.reverse();
    }
    Ok((with_authors(db, rows).await?, has_more))
}

/// Messages of a room with `after < seq <= through`, oldest first, at most `limit`:
/// the database side of a `since` replay.
pub async fn range(
    db: &DatabaseConnection,
    room: Uuid,
    after: u64,
    through: Option<u64>,
    limit: u64,
) -> Result<Vec<StoredMessage>, DbError> {
    let mut select = message::Entity::find()
        .filter(message::Column::RoomId.eq(room))
        .filter(message::Column::Seq.gt(to_i64(after)));
    if let Some(through) = through {
        select = select.filter(message::Column::Seq.lte(to_i64(through)));
    }
    let rows = select
        .order_by_asc(message::Column::Seq)
        .limit(limit)
        .all(db)
        .await?;
    with_authors(db, rows).await
}

async fn with_authors(
    db: &DatabaseConnection,
    rows: Vec<message::Model>,
) -> Result<Vec<StoredMessage>, DbError> {
    let mut ids: Vec<Uuid> = rows.iter().map(|r| r.user_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let names: HashMap<Uuid, String> = users::by_ids(db, &ids)
        .await?
        .into_iter()
        .map(|u| (u.id, u.username))
        .collect();
    Ok(rows
        .into_iter()
        .map(|r| StoredMessage {
            seq: u64::try_from(r.seq).unwrap_or(0),
            message: NewMessage {
                id: r.id,
                room_id: r.room_id,
                user: UserRef {
                    id: r.user_id,
                    username: names
                        .get(&r.user_id)
                        .cloned()
                        .unwrap_or_else(|| "(deleted)".into()),
                },
                body: r.body,
                client_msg_id: r.client_msg_id,
                ts: r.created_at,
            },
        })
        .collect())
}
