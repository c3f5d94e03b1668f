//! Sessions in the database (embedded mode): they survive a restart, like the
//! messages beside them. Expired rows are ignored by every read and deleted lazily.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::session;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
};
use uuid::Uuid;

use super::{Rotation, SessionError, SessionRecord, SessionStore};

pub struct SqlSessionStore {
    db: DatabaseConnection,
}

impl SqlSessionStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn unavailable(e: sea_orm::DbErr) -> SessionError {
    SessionError::Unavailable(e.to_string())
}

fn expiry(ttl: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
}

fn record(m: session::Model) -> SessionRecord {
    SessionRecord {
        id: m.id,
        user_id: m.user_id,
        created_at: m.created_at,
        last_seen: m.last_seen,
        ip: m.ip,
        user_agent: m.user_agent,
        refresh_hash: m.refresh_hash,
    }
}

#[async_trait::async_trait]
impl SessionStore for SqlSessionStore {
    async fn create(&self, r: SessionRecord, ttl: Duration) -> Result<(), SessionError> {
        // Creating is rare: a good moment to drop expired rows.
        session::Entity::delete_many()
            .filter(session::Column::ExpiresAt.lte(Utc::now()))
            .exec(&self.db)
            .await
            .map_err(unavailable)?;
        session::Entity::insert(session::ActiveModel {
            id: Set(r.id),
            user_id: Set(r.user_id),
            created_at: Set(r.created_at),
            last_seen: Set(r.last_seen),
            ip: Set(r.ip),
            user_agent: Set(r.user_agent),
            refresh_hash: Set(r.refresh_hash),
            expires_at: Set(expiry(ttl)),
        })
        .exec_without_returning(&self.db)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn get(&self, id: Uuid) -> Result<Option<SessionRecord>, SessionError> {
        Ok(session::Entity::find_by_id(id)
            .filter(session::Column::ExpiresAt.gt(Utc::now()))
            .one(&self.db)
            .await
            .map_err(unavailable)?
            .map(record))
    }

    async fn list_for_user(&self, user_id: Uuid) -> Result<Vec<SessionRecord>, SessionError> {
        Ok(session::Entity::find()
            .filter(session::Column::UserId.eq(user_id))
            .filter(session::Column::ExpiresAt.gt(Utc::now()))
            .order_by_asc(session::Column::CreatedAt)
            .all(&self.db)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(record)
            .collect())
    }

    async fn rotate_refresh(
        &self,
        id: Uuid,
        presented_hash: &str,
        new_hash: &str,
        ttl: Duration,
    ) -> Result<Rotation, SessionError> {
        // One conditional UPDATE: of two concurrent rotations only one matches.
        let now = Utc::now();
        let updated = session::Entity::update_many()
            .col_expr(session::Column::RefreshHash, Expr::value(new_hash))
            .col_expr(session::Column::LastSeen, Expr::value(now))
            .col_expr(session::Column::ExpiresAt, Expr::value(expiry(ttl)))
            .filter(session::Column::Id.eq(id))
            .filter(session::Column::RefreshHash.eq(presented_hash))
            .filter(session::Column::ExpiresAt.gt(now))
            .exec(&self.db)
            .await
            .map_err(unavailable)?;
        if updated.rows_affected == 1 {
            return match self.get(id).await? {
                Some(r) => Ok(Rotation::Rotated(r)),
                None => Ok(Rotation::Missing),
            };
        }
        Ok(match self.get(id).await? {
            Some(_) => Rotation::Reused,
            None => Rotation::Missing,
        })
    }

    async fn touch(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), SessionError> {
        session::Entity::update_many()
            .col_expr(session::Column::LastSeen, Expr::value(at))
            .filter(session::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn delete(&self, id: Uuid) -> Result<bool, SessionError> {
        let deleted = session::Entity::delete_by_id(id)
            .exec(&self.db)
            .await
            .map_err(unavailable)?;
        Ok(deleted.rows_affected > 0)
    }
}
