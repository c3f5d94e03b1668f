//! bcrypt hashing on the blocking pool: a cost-12 hash takes ~250 ms of CPU and must
//! never stall the async workers that serve sockets.

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(#[from] bcrypt::BcryptError),
    #[error("password hashing task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

pub async fn hash_password(password: &str, cost: u32) -> Result<String, PasswordError> {
    let password = password.to_string();
    Ok(tokio::task::spawn_blocking(move || bcrypt::hash(password, cost)).await??)
}

/// `false` for a wrong password and for a malformed stored hash alike.
pub async fn verify_password(password: &str, hash: &str) -> Result<bool, PasswordError> {
    let (password, hash) = (password.to_string(), hash.to_string());
    let verdict = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash)).await?;
    Ok(verdict.unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_only_its_own_password() {
        let hash = hash_password("correct horse", 4).await.expect("hash");
        assert!(
            verify_password("correct horse", &hash)
                .await
                .expect("verify")
        );
        assert!(!verify_password("wrong horse", &hash).await.expect("verify"));
        assert!(!verify_password("x", "not-a-hash").await.expect("verify"));
    }
}
