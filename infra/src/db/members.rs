//! `room_members` queries: remembered membership (private rooms ask for the password
//! only once) and read positions.

use chrono::Utc;
use entity::room_member;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::DbError;

pub async fn is_member(db: &DatabaseConnection, room: Uuid, user: Uuid) -> Result<bool, DbError> {
    Ok(room_member::Entity::find_by_id((room, user))
        .one(db)
        .await?
        .is_some())
}

/// Adds a member; adding an existing member changes nothing.
pub async fn add(db: &DatabaseConnection, room: Uuid, user: Uuid) -> Result<(), DbError> {
    room_member::Entity::insert(room_member::ActiveModel {
        room_id: Set(room),
        user_id: Set(user),
        role: Set("member".into()),
        joined_at: Set(Utc::now()),
        last_read_seq: Set(0),
    })
    .on_conflict_do_nothing_on([room_member::Column::RoomId, room_member::Column::UserId])
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Moves the user's read position forward (never back).
pub async fn mark_read(
    db: &DatabaseConnection,
    room: Uuid,
    user: Uuid,
    seq: u64,
) -> Result<(), DbError> {
    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
    room_member::Entity::update_many()
        .col_expr(
            room_member::Column::LastReadSeq,
            sea_orm::sea_query::Expr::value(seq),
        )
        .filter(room_member::Column::RoomId.eq(room))
        .filter(room_member::Column::UserId.eq(user))
        .filter(room_member::Column::LastReadSeq.lt(seq))
        .exec(db)
        .await?;
    Ok(())
}
