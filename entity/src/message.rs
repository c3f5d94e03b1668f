//! `messages`: every acknowledged chat message, keyed by its deterministic id.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    /// UUIDv5 of `(user_id, client_msg_id)`: a retried send maps to the same row.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub room_id: Uuid,
    /// Bus sequence (JetStream stream sequence, or the embedded log's counter).
    pub seq: i64,
    pub user_id: Uuid,
    pub body: String,
    pub client_msg_id: String,
    pub created_at: ChronoDateTimeUtc,
    pub edited_at: Option<ChronoDateTimeUtc>,
    pub deleted_at: Option<ChronoDateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
