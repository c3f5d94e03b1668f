//! Opaque refresh tokens `<session id>.<random secret>`. Only the SHA-256 of the
//! secret is stored, so a leaked session store does not leak usable tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub session_id: Uuid,
    secret: String,
}

impl RefreshToken {
    pub fn generate(session_id: Uuid) -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self {
            session_id,
            secret: URL_SAFE_NO_PAD.encode(bytes),
        }
    }

    /// `None` for anything that is not `<uuid>.<secret>`.
    pub fn parse(token: &str) -> Option<Self> {
        let (sid, secret) = token.split_once('.')?;
        let session_id = Uuid::parse_str(sid).ok()?;
        (secret.len() >= 32 && secret.len() <= 128).then(|| Self {
            session_id,
            secret: secret.to_string(),
        })
    }

    pub fn to_token(&self) -> String {
        format!("{}.{}", self.session_id, self.secret)
    }

    pub fn hash(&self) -> String {
        hash_refresh_secret(&self.secret)
    }
}

pub fn hash_refresh_secret(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let token = RefreshToken::generate(Uuid::new_v4());
        let parsed = RefreshToken::parse(&token.to_token()).expect("parse");
        assert_eq!(parsed, token);
        assert_eq!(parsed.hash(), token.hash());
        assert_ne!(
            RefreshToken::generate(token.session_id).hash(),
            token.hash()
        );
        assert!(RefreshToken::parse("nope").is_none());
        assert!(RefreshToken::parse("not-a-uuid.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").is_none());
        assert!(RefreshToken::parse(&format!("{}.short", Uuid::new_v4())).is_none());
    }
}
