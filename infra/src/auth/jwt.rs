//! HS256 access tokens that carry the user and the session they belong to.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("invalid or expired token")]
    Invalid,
    #[error("token could not be signed: {0}")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// Claims of an access token: `sub` is the user id, `sid` the session id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub sub: Uuid,
    pub sid: Uuid,
    pub name: String,
    pub iat: u64,
    pub exp: u64,
}

/// Signing and verification keys derived once from the secret.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl JwtKeys {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issue(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        username: &str,
    ) -> Result<String, TokenError> {
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let claims = AccessClaims {
            sub: user_id,
            sid: session_id,
            name: username.to_string(),
            iat: now,
            exp: now + self.ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(TokenError::Sign)
    }

    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|_| TokenError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_a_foreign_or_tampered_one_does_not() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60));
        let (user, sid) = (Uuid::new_v4(), Uuid::new_v4());
        let token = keys.issue(user, sid, "alice").expect("sign");
        let claims = keys.verify(&token).expect("verify");
        assert_eq!(
            (claims.sub, claims.sid, claims.name.as_str()),
            (user, sid, "alice")
        );

        let other = JwtKeys::new(b"another-secret-another-secret-xx", Duration::from_secs(60));
        assert!(other.verify(&token).is_err());
        let mut tampered = token.clone();
        tampered.push('x');
        assert!(keys.verify(&tampered).is_err());
        assert!(keys.verify("not a jwt").is_err());
    }

    #[test]
    fn an_expired_token_is_refused() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(0));
        let claims = AccessClaims {
            sub: Uuid::new_v4(),
            sid: Uuid::new_v4(),
            name: "a".into(),
            iat: 1,
            exp: 2,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding)
            .expect("sign");
        assert!(keys.verify(&token).is_err());
    }
}
