//! `sessions`: login sessions of embedded mode (distributed mode keeps them in Redis).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: ChronoDateTimeUtc,
    pub last_seen: ChronoDateTimeUtc,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// SHA-256 of the current refresh token's secret.
    pub refresh_hash: String,
    pub expires_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
