//! ChatX set-up through the REST API (not measured): register and log in the bench
//! users, create the rooms. Existing users and rooms are reused.

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::error::{BenchError, Result};

/// Password of every bench user (8+ bytes, as the API requires).
const PASSWORD: &str = "bench-password-0123";

pub fn room_name(prefix: &str, index: usize) -> String {
    format!("{prefix}{index:04}")
}

/// Registers (or reuses) `users` users, logs each in once, and creates `rooms` public
/// rooms. Returns one access token per user.
pub async fn chatx(
    base: &str,
    users: usize,
    rooms: usize,
    room_prefix: &str,
) -> Result<Vec<String>> {
    let http = reqwest::Client::new();
    let base = base.trim_end_matches('/').to_string();
    let tokens: Vec<Result<String>> = futures_util::stream::iter(0..users)
        .map(|i| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let creds = json!({"username": format!("bench_u{i}"), "password": PASSWORD});
                let reg = http
                    .post(format!("{base}/api/auth/register"))
                    .json(&creds)
                    .send()
                    .await?;
                if !(reg.status().is_success() || reg.status().as_u16() == 409) {
                    return Err(BenchError::Setup(format!(
                        "register: {} {}",
                        reg.status(),
                        reg.text().await.unwrap_or_default()
                    )));
                }
                let login = http
                    .post(format!("{base}/api/auth/login"))
                    .json(&creds)
                    .send()
                    .await?;
                if !login.status().is_success() {
                    return Err(BenchError::Setup(format!(
                        "login: {} {}",
                        login.status(),
                        login.text().await.unwrap_or_default()
                    )));
                }
                let body: Value = login.json().await?;
                body["access_token"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| BenchError::Setup("login answered no access_token".into()))
            }
        })
        .buffered(4)
        .collect()
        .await;
    let tokens = tokens.into_iter().collect::<Result<Vec<_>>>()?;
    let Some(owner) = tokens.first() else {
        return Ok(tokens);
    };
    for r in 0..rooms {
        let resp = http
            .post(format!("{base}/api/rooms"))
            .bearer_auth(owner)
            .json(&json!({"name": room_name(room_prefix, r), "kind": "public"}))
            .send()
            .await?;
        if !(resp.status().is_success() || resp.status().as_u16() == 409) {
            return Err(BenchError::Setup(format!(
                "create room: {} {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            )));
        }
    }
    Ok(tokens)
}
