//! `spawn_app()`: the real gateway in-process on a free port with a fresh SQLite file.

use gateway::Gateway;
use infra::config::{Secret, Settings};
use tempfile::TempDir;

#[path = "../support/client.rs"]
mod client;
pub use client::*;

pub struct TestApp {
    pub api: Api,
    pub addr: std::net::SocketAddr,
    pub db_url: String,
    gateway: Option<Gateway>,
    pub dir: TempDir,
}

/// Settings for tests: fast bcrypt, loopback, limits raised so they only bite in the
/// tests that lower them again.
pub fn test_settings(dir: &TempDir) -> Settings {
    Settings {
        bind_addr: "127.0.0.1:0".into(),
        database_url: format!("sqlite://{}/chatx.db?mode=rwc", dir.path().display()),
        jwt_secret: Some(Secret::new("test-secret-test-secret-test-secret!")),
        bcrypt_cost: 4,
        rate_msg_per_sec: 1000.0,
        rate_msg_burst: 1000,
        rate_join_per_sec: 1000.0,
        rate_join_burst: 1000,
        rate_login_ip_per_min: 10_000.0,
        rate_login_ip_burst: 1000,
        rate_login_user_per_min: 10_000.0,
        rate_login_user_burst: 1000,
        http_per_ip_per_sec: 10_000,
        http_per_ip_burst: 10_000,
        presence_grace_ms: 200,
        drain_secs: 1,
        ..Settings::default()
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings(&dir);
    tweak(&mut settings);
    start_in(dir, settings).await
}

pub async fn start_in(dir: TempDir, settings: Settings) -> TestApp {
    let db_url = settings.database_url.clone();
    let gateway = gateway::start(settings).await.expect("gateway starts");
    let addr = gateway.addr;
    TestApp {
        api: Api::new(addr),
        addr,
        db_url,
        gateway: Some(gateway),
        dir,
    }
}

impl TestApp {
    /// Drains and stops the gateway, keeping the database directory.
    pub async fn stop(&mut self) {
        if let Some(gateway) = self.gateway.take() {
            gateway.shutdown().await;
        }
    }

    pub fn state(&self) -> &gateway::state::AppState {
        &self.gateway.as_ref().expect("running").state
    }
}

impl std::ops::Deref for TestApp {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}
