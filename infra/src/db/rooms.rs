//! `rooms` queries.

use chrono::Utc;
use entity::{room, room_member};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, TransactionTrait,
};
use uuid::Uuid;

use super::DbError;
use crate::validate::RoomName;

pub use entity::room::Model as Room;

pub const LOBBY: &str = "lobby";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomKind {
    Public,
    Private,
}

impl RoomKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomKind::Public => "public",
            RoomKind::Private => "private",
        }
    }
}

/// Creates a room and makes its owner a member, in one transaction.
pub async fn create(
    db: &DatabaseConnection,
    name: &RoomName,
    kind: RoomKind,
    password_hash: Option<String>,
    owner: Option<Uuid>,
) -> Result<Room, DbError> {
    let txn = db.begin().await?;
    let now = Utc::now();
    let room = room::Entity::insert(room::ActiveModel {
        id: Set(Uuid::new_v4()),
        name: Set(name.as_str().to_string()),
        kind: Set(kind.as_str().to_string()),
        password_hash: Set(password_hash),
        owner_id: Set(owner),
        created_at: Set(now),
    })
    .exec_with_returning(&txn)
    .await?;
    if let Some(owner) = owner {
        room_member::Entity::insert(room_member::ActiveModel {
            room_id: Set(room.id),
            user_id: Set(owner),
            role: Set("owner".into()),
            joined_at: Set(now),
            last_read_seq: Set(0),
        })
        .exec_without_returning(&txn)
        .await?;
    }
    txn.commit().await?;
    Ok(room)
}

/// Creates the public `lobby` if it does not exist (the seed's global chat).
pub async fn ensure_lobby(db: &DatabaseConnection) -> Result<(), DbError> {
    if by_name(db, LOBBY).await?.is_some() {
        return Ok(());
    }
    let name =
        RoomName::parse(LOBBY).map_err(|e| DbError::Db(sea_orm::DbErr::Custom(e.to_string())))?;
    match create(db, &name, RoomKind::Public, None, None).await {
        Ok(_) | Err(DbError::Conflict) => Ok(()),
        Err(e) => Err(e),
    }
}

pub async fn by_name(db: &DatabaseConnection, name: &str) -> Result<Option<Room>, DbError> {
    Ok(room::Entity::find()
        .filter(room::Column::Name.eq(name))
        .one(db)
        .await?)
}

/// Public rooms plus every room the user is a member of, by name.
pub async fn list_visible(db: &DatabaseConnection, user: Uuid) -> Result<Vec<Room>, DbError> {
    let mine = Query::select()
        .column(room_member::Column::RoomId)
        .from(room_member::Entity)
        .and_where(Expr::col(room_member::Column::UserId).eq(user))
        .to_owned();
    Ok(room::Entity::find()
        .filter(
            Condition::any()
                .add(room::Column::Kind.eq(RoomKind::Public.as_str()))
                .add(room::Column::Id.in_subquery(mine)),
        )
        .order_by_asc(room::Column::Name)
        .all(db)
        .await?)
}

/// Deletes the room and (by cascade) its memberships. Messages stay for audit until
/// retention removes them.
pub async fn delete(db: &DatabaseConnection, id: Uuid) -> Result<bool, DbError> {
    let txn = db.begin().await?;
    room_member::Entity::delete_many()
        .filter(room_member::Column::RoomId.eq(id))
        .exec(&txn)
        .await?;
    let deleted = room::Entity::delete_by_id(id)
        .exec(&txn)
        .await?
        .rows_affected
        > 0;
    txn.commit().await?;
    Ok(deleted)
}
