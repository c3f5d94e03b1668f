//! `users` queries.

use chrono::Utc;
use entity::user;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::DbError;
use crate::validate::Username;

pub use entity::user::Model as User;

pub async fn create(
    db: &DatabaseConnection,
    username: &Username,
    password_hash: String,
) -> Result<User, DbError> {
    let model = user::ActiveModel {
        id: Set(Uuid::new_v4()),
        username: Set(username.as_str().to_string()),
        password_hash: Set(password_hash),
        created_at: Set(Utc::now()),
    };
    Ok(user::Entity::insert(model).exec_with_returning(db).await?)
}

pub async fn by_username(db: &DatabaseConnection, username: &str) -> Result<Option<User>, DbError> {
    Ok(user::Entity::find()
        .filter(user::Column::Username.eq(username))
        .one(db)
        .await?)
}

pub async fn by_id(db: &DatabaseConnection, id: Uuid) -> Result<Option<User>, DbError> {
    Ok(user::Entity::find_by_id(id).one(db).await?)
}

pub async fn by_ids(db: &DatabaseConnection, ids: &[Uuid]) -> Result<Vec<User>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(user::Entity::find()
        .filter(user::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?)
}
