//! Authentication primitives: JWT access tokens, bcrypt password hashing and opaque
//! rotating refresh tokens. No storage here: sessions live behind `SessionStore`.

mod jwt;
mod password;
mod refresh;

pub use jwt::{AccessClaims, JwtKeys, TokenError};
pub use password::{PasswordError, hash_password, verify_password};
pub use refresh::{RefreshToken, hash_refresh_secret};
