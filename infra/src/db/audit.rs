//! `audit_log`: security events, also emitted on the `audit` tracing target.

use chrono::Utc;
use entity::audit_log;
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait};
use uuid::Uuid;

use super::DbError;

pub async fn record(
    db: &DatabaseConnection,
    event: &str,
    actor: Option<Uuid>,
    ip: Option<&str>,
    detail: serde_json::Value,
) -> Result<(), DbError> {
    tracing::info!(target: "audit", event, actor = ?actor, ip, %detail);
    audit_log::Entity::insert(audit_log::ActiveModel {
        id: Set(Uuid::new_v4()),
        at: Set(Utc::now()),
        actor: Set(actor),
        ip: Set(ip.map(str::to_string)),
        event: Set(event.to_string()),
        detail: Set(detail),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}
