//! `audit_log`: security-relevant events (logins, failed room passwords, deletions,
//! revocations, rate limiting).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub at: ChronoDateTimeUtc,
    /// The user the event is about, when known.
    pub actor: Option<Uuid>,
    pub ip: Option<String>,
    pub event: String,
    pub detail: Json,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
