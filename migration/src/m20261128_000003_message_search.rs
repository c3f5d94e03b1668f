//! Full-text search on PostgreSQL: a generated tsvector column with a GIN index. SQLite
//! has no such column; history search falls back to a substring match there.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(
            "ALTER TABLE messages ADD COLUMN IF NOT EXISTS body_tsv tsvector \
             GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS idx_messages_body_tsv ON messages USING GIN (body_tsv)",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS idx_messages_body_tsv")
            .await?;
        db.execute_unprepared("ALTER TABLE messages DROP COLUMN IF EXISTS body_tsv")
            .await?;
        Ok(())
    }
}
