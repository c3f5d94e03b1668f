//! Sessions in the database (embedded mode): they survive a restart, like the
//! messages beside them. Expired rows are ignored by every read and deleted lazily.
//!
//! Every socket and REST call looks its session up, so `get` is served from a bounded
//! in-process cache of rows read from the database. Embedded mode is one process and
//! this store is the only writer of the table, so the cache is exact: each write drops
//! the row's entry after its statement ran, and bumps a generation that stops a read
//! which raced with the write from caching the row it read before the write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::session;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
};
use uuid::Uuid;

use super::{Rotation, SessionError, SessionRecord, SessionStore};

/// Sessions kept in the cache at most (a few hundred bytes each).
const CACHE_CAPACITY: usize = 16_384;

struct Cached {
    record: SessionRecord,
    expires_at: DateTime<Utc>,
}

pub struct SqlSessionStore {
    db: DatabaseConnection,
    cache: Mutex<HashMap<Uuid, Cached>>,
    /// Bumped by every write, after its statement ran.
    generation: AtomicU64,
}

impl SqlSessionStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            cache: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    fn cache(&self) -> MutexGuard<'_, HashMap<Uuid, Cached>> {
        // Plain data: a panic elsewhere mid-update leaves nothing half-done here.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// After a write to `id`'s row: its entry and any read in flight are stale.
    fn forget(&self, id: Uuid) {
        let mut cache = self.cache();
        self.generation.fetch_add(1, Ordering::SeqCst);
        cache.remove(&id);
    }

    fn cached(&self, id: Uuid, now: DateTime<Utc>) -> Option<SessionRecord> {
        self.cache()
            .get(&id)
            .filter(|c| c.expires_at > now)
            .map(|c| c.record.clone())
    }

    /// Caches a row read while the generation was `read_at`, unless a write came since.
    fn fill(&self, m: &session::Model, read_at: u64) {
        let mut cache = self.cache();
        if self.generation.load(Ordering::SeqCst) != read_at {
            return;
        }
        if cache.len() >= CACHE_CAPACITY {
            let now = Utc::now();
            cache.retain(|_, c| c.expires_at > now);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(
            m.id,
            Cached {
                record: record(m.clone()),
                expires_at: m.expires_at,
            },
        );
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
        let now = Utc::now();
        if let Some(hit) = self.cached(id, now) {
            return Ok(Some(hit));
        }
        let read_at = self.generation.load(Ordering::SeqCst);
        let row = session::Entity::find_by_id(id)
            .filter(session::Column::ExpiresAt.gt(now))
            .one(&self.db)
            .await
            .map_err(unavailable)?;
        Ok(row.map(|m| {
            self.fill(&m, read_at);
            record(m)
        }))
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
            .await;
        // Also when the statement failed: it may have run before the error came back.
        self.forget(id);
        if updated.map_err(unavailable)?.rows_affected == 1 {
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
        let updated = session::Entity::update_many()
            .col_expr(session::Column::LastSeen, Expr::value(at))
            .filter(session::Column::Id.eq(id))
            .exec(&self.db)
            .await;
        self.forget(id);
        updated.map_err(unavailable)?;
        Ok(())
    }

    async fn delete(&self, id: Uuid) -> Result<bool, SessionError> {
        let deleted = session::Entity::delete_by_id(id)
            .exec(&self.db)
            .await
            .map_err(unavailable);
        self.forget(id);
        Ok(deleted?.rows_affected > 0)
    }
}
