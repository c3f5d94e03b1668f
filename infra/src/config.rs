//! Settings: built-in defaults < optional TOML file (`CHATX_CONFIG`) < environment.
//!
//! Conventional names (`DATABASE_URL`, `REDIS_URL`, `NATS_URL`, `JWT_SECRET`,
//! `BIND_ADDR`) are accepted as they are; every other setting is `CHATX_<NAME>` where
//! `<NAME>` is the upper-cased field name. Validation happens once, here: an invalid
//! setting stops start-up with one line that names it.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

/// Smallest JWT secret accepted in distributed mode (HS256 wants >= 256 bits).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// Why the settings could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration: {setting}: {reason}")]
    Invalid {
        setting: &'static str,
        reason: String,
    },
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: reason.into(),
    }
}

/// Which backends the process uses (DESIGN section 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// In-process bus and stores, SQLite, worker inside the gateway.
    Embedded,
    /// Redis + NATS JetStream + PostgreSQL, shared by many gateways and workers.
    Distributed { redis_url: String, nats_url: String },
}

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Every setting of the gateway and the worker. The README's configuration table
/// lists them all (a test keeps the two in step).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Settings {
    /// Address the gateway listens on (`BIND_ADDR`).
    pub bind_addr: String,
    /// Connections the kernel holds ready for the gateway to accept (the `listen`
    /// backlog; Linux caps it at `net.core.somaxconn`). Once it is full, new SYNs are
    /// dropped and their clients retry only after a second.
    pub listen_backlog: u32,
    /// `DATABASE_URL`; embedded default `sqlite://chatx.db?mode=rwc`.
    pub database_url: String,
    /// `REDIS_URL`; set together with `NATS_URL` for distributed mode.
    pub redis_url: Option<String>,
    /// `NATS_URL`; set together with `REDIS_URL` for distributed mode.
    pub nats_url: Option<String>,
    /// `JWT_SECRET` (HS256). Generated per process in embedded mode when unset.
    pub jwt_secret: Option<Secret>,
    /// Lifetime of access tokens.
    pub access_token_ttl_secs: u64,
    /// Lifetime of a session and its refresh token.
    pub refresh_token_ttl_secs: u64,
    /// bcrypt cost for user and room passwords (4..=31).
    pub bcrypt_cost: u32,
    /// Largest message body in bytes; larger sends get `too_large`.
    pub max_message_bytes: usize,
    /// Hard cap of one WebSocket frame; larger frames close the socket with 1009.
    pub max_frame_bytes: usize,
    /// WebSocket read buffer per connection, allocated up front; larger frames grow it.
    pub ws_read_buffer_bytes: usize,
    /// Bound of the WebSocket write buffer per connection.
    pub ws_max_write_buffer_bytes: usize,
    /// Frames queued per socket before it counts as a slow consumer (close 4008).
    pub outbound_queue_frames: usize,
    /// Time a socket has to authenticate with its first frame.
    pub auth_timeout_secs: u64,
    /// Server ping interval.
    pub ping_interval_secs: u64,
    /// A socket that sends nothing (not even a pong) for this long is closed.
    pub idle_timeout_secs: u64,
    /// Allowed `Origin`s for browser upgrades; empty means "same host only".
    pub allowed_origins: Vec<String>,
    /// Presence lease length; a crashed gateway's members expire after it.
    pub presence_ttl_secs: u64,
    /// How often a gateway refreshes its presence leases.
    pub presence_refresh_secs: u64,
    /// Grace before a dropped socket's user is announced as gone.
    pub presence_grace_ms: u64,
    /// Messages per second per user (sustained) and burst.
    pub rate_msg_per_sec: f64,
    pub rate_msg_burst: u32,
    /// Room joins per second per user and burst.
    pub rate_join_per_sec: f64,
    pub rate_join_burst: u32,
    /// Login attempts per minute per client IP and burst.
    pub rate_login_ip_per_min: f64,
    pub rate_login_ip_burst: u32,
    /// Login attempts per minute per username and burst.
    pub rate_login_user_per_min: f64,
    pub rate_login_user_burst: u32,
    /// Room password attempts (by non-members) per minute per user and room, and burst.
    pub rate_room_password_per_min: f64,
    pub rate_room_password_burst: u32,
    /// HTTP requests per second per client IP at the edge (governor), and burst.
    pub http_per_ip_per_sec: u32,
    pub http_per_ip_burst: u32,
    /// Trust `X-Forwarded-For` (set only behind a load balancer you run).
    pub trust_forwarded_for: bool,
    /// How long SIGTERM spreads `reconnect` notices before closing sockets.
    pub drain_secs: u64,
    /// How long a `send` waits for the bus to store it before answering `unavailable`.
    pub publish_timeout_ms: u64,
    /// Window in which a retried `send` is recognised as a duplicate by the bus.
    pub dedup_window_secs: u64,
    /// Messages the embedded bus keeps per room for fast `since` replay.
    pub bus_retention_per_room: usize,
    /// Prefix of every Redis key.
    pub key_prefix: String,
    /// `pretty` or `json` logs.
    pub log_format: String,
    /// Create the `lobby` room at start when it does not exist.
    pub create_lobby: bool,
    /// How long a binary retries unreachable dependencies at start before it exits.
    pub startup_timeout_secs: u64,
    /// JetStream stream holding room messages (distributed mode).
    pub nats_stream: String,
    /// Prefix of every NATS subject (to share one NATS between deployments).
    pub nats_subject_prefix: String,
    /// How long the stream keeps messages; older ones are served from the database.
    pub stream_max_age_secs: u64,
    /// How often a gateway sends its readiness canary through the bus.
    pub canary_interval_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bind_addr: "0.0.0.0:8080".into(),
            listen_backlog: 4096,
            database_url: "sqlite://chatx.db?mode=rwc".into(),
            redis_url: None,
            nats_url: None,
            jwt_secret: None,
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            bcrypt_cost: 12,
            max_message_bytes: 4096,
            max_frame_bytes: 64 * 1024,
            ws_read_buffer_bytes: 1024,
            ws_max_write_buffer_bytes: 256 * 1024,
            outbound_queue_frames: 512,
            auth_timeout_secs: 5,
            ping_interval_secs: 25,
            idle_timeout_secs: 75,
            allowed_origins: Vec::new(),
            presence_ttl_secs: 30,
            presence_refresh_secs: 10,
            presence_grace_ms: 3000,
            rate_msg_per_sec: 10.0,
            rate_msg_burst: 20,
            rate_join_per_sec: 5.0,
            rate_join_burst: 20,
            rate_login_ip_per_min: 30.0,
            rate_login_ip_burst: 10,
            rate_login_user_per_min: 10.0,
            rate_login_user_burst: 5,
            rate_room_password_per_min: 5.0,
            rate_room_password_burst: 5,
            http_per_ip_per_sec: 50,
            http_per_ip_burst: 100,
            trust_forwarded_for: false,
            drain_secs: 10,
            publish_timeout_ms: 5000,
            dedup_window_secs: 120,
            bus_retention_per_room: 1000,
            key_prefix: "chatx:".into(),
            log_format: "pretty".into(),
            create_lobby: true,
            startup_timeout_secs: 30,
            nats_stream: "CHAT".into(),
            nats_subject_prefix: String::new(),
            stream_max_age_secs: 7 * 24 * 3600,
            canary_interval_ms: 2000,
        }
    }
}

/// Conventional variable names accepted without the `CHATX_` prefix.
const CONVENTIONAL: [(&str, &str); 5] = [
    ("DATABASE_URL", "database_url"),
    ("REDIS_URL", "redis_url"),
    ("NATS_URL", "nats_url"),
    ("JWT_SECRET", "jwt_secret"),
    ("BIND_ADDR", "bind_addr"),
];

impl Settings {
    /// The environment variable of a setting: its conventional name, or `CHATX_<FIELD>`.
    pub fn env_name(field: &str) -> String {
        CONVENTIONAL.iter().find(|(_, f)| *f == field).map_or_else(
            || format!("CHATX_{}", field.to_uppercase()),
            |(var, _)| var.to_string(),
        )
    }

    /// Every setting's field name (serialized names of `Settings`).
    pub fn field_names() -> Vec<String> {
        match serde_json::to_value(Settings::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// Loads from `CHATX_CONFIG` (if set) and the process environment.
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_from(std::env::vars().collect())
    }

    /// Loads from an explicit environment map (tests use this).
    pub fn load_from(env: HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = env.get("CHATX_CONFIG") {
            builder = builder.add_source(config::File::with_name(path).required(true));
        }
        let mut prefixed: HashMap<String, String> = env
            .iter()
            .filter(|(k, v)| k.starts_with("CHATX_") && *k != "CHATX_CONFIG" && !v.is_empty())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (var, field) in CONVENTIONAL {
            if let Some(value) = env.get(var).filter(|v| !v.is_empty()) {
                prefixed.insert(format!("CHATX_{}", field.to_uppercase()), value.clone());
            }
        }
        let settings: Settings = builder
            .add_source(
                config::Environment::with_prefix("CHATX")
                    .prefix_separator("_")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("allowed_origins")
                    .source(Some(prefixed)),
            )
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Which mode the URLs select; one of `REDIS_URL`/`NATS_URL` without the other is
    /// refused.
    pub fn mode(&self) -> Result<Mode, ConfigError> {
        match (&self.redis_url, &self.nats_url) {
            (None, None) => Ok(Mode::Embedded),
            (Some(redis_url), Some(nats_url)) => Ok(Mode::Distributed {
                redis_url: redis_url.clone(),
                nats_url: nats_url.clone(),
            }),
            (Some(_), None) => Err(invalid(
                "NATS_URL",
                "REDIS_URL is set but NATS_URL is not; set both (distributed) or neither (embedded)",
            )),
            (None, Some(_)) => Err(invalid(
                "REDIS_URL",
                "NATS_URL is set but REDIS_URL is not; set both (distributed) or neither (embedded)",
            )),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let mode = self.mode()?;
        if let Some(secret) = &self.jwt_secret
            && secret.expose().len() < MIN_JWT_SECRET_BYTES
        {
            return Err(invalid(
                "JWT_SECRET",
                format!("must be at least {MIN_JWT_SECRET_BYTES} bytes"),
            ));
        }
        if matches!(mode, Mode::Distributed { .. }) && self.jwt_secret.is_none() {
            return Err(invalid(
                "JWT_SECRET",
                "required in distributed mode (every gateway must verify every token)",
            ));
        }
        if !(4..=31).contains(&self.bcrypt_cost) {
            return Err(invalid("CHATX_BCRYPT_COST", "must be between 4 and 31"));
        }
        if self.bind_addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid("BIND_ADDR", "must be host:port, e.g. 0.0.0.0:8080"));
        }
        if !(1..=65535).contains(&self.listen_backlog) {
            return Err(invalid(
                "CHATX_LISTEN_BACKLOG",
                "must be between 1 and 65535",
            ));
        }
        if self.max_message_bytes == 0 || self.max_message_bytes >= self.max_frame_bytes {
            return Err(invalid(
                "CHATX_MAX_MESSAGE_BYTES",
                "must be above 0 and below CHATX_MAX_FRAME_BYTES",
            ));
        }
        if self.outbound_queue_frames == 0 {
            return Err(invalid("CHATX_OUTBOUND_QUEUE_FRAMES", "must be above 0"));
        }
        if self.presence_refresh_secs == 0 || self.presence_refresh_secs >= self.presence_ttl_secs {
            return Err(invalid(
                "CHATX_PRESENCE_REFRESH_SECS",
                "must be above 0 and below CHATX_PRESENCE_TTL_SECS",
            ));
        }
        for (name, rate, burst) in [
            (
                "CHATX_RATE_MSG_PER_SEC",
                self.rate_msg_per_sec,
                self.rate_msg_burst,
            ),
            (
                "CHATX_RATE_JOIN_PER_SEC",
                self.rate_join_per_sec,
                self.rate_join_burst,
            ),
            (
                "CHATX_RATE_LOGIN_IP_PER_MIN",
                self.rate_login_ip_per_min,
                self.rate_login_ip_burst,
            ),
            (
                "CHATX_RATE_LOGIN_USER_PER_MIN",
                self.rate_login_user_per_min,
                self.rate_login_user_burst,
            ),
            (
                "CHATX_RATE_ROOM_PASSWORD_PER_MIN",
                self.rate_room_password_per_min,
                self.rate_room_password_burst,
            ),
        ] {
            if !(rate.is_finite() && rate > 0.0) || burst == 0 {
                return Err(invalid(
                    name,
                    "rate must be above 0 and its burst at least 1",
                ));
            }
        }
        if self.http_per_ip_per_sec == 0 || self.http_per_ip_burst == 0 {
            return Err(invalid("CHATX_HTTP_PER_IP_PER_SEC", "must be above 0"));
        }
        if !matches!(self.log_format.as_str(), "pretty" | "json") {
            return Err(invalid("CHATX_LOG_FORMAT", "must be `pretty` or `json`"));
        }
        Ok(())
    }

    pub fn access_token_ttl(&self) -> Duration {
        Duration::from_secs(self.access_token_ttl_secs)
    }
    pub fn refresh_token_ttl(&self) -> Duration {
        Duration::from_secs(self.refresh_token_ttl_secs)
    }
}

/// `scheme://user:password@host/db` -> `scheme://user:***@host/db`, for logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((auth, host)) => match auth.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://***@{host}"),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn no_environment_means_embedded_defaults() {
        let s = Settings::load_from(env(&[])).expect("defaults load");
        assert_eq!(s.mode().expect("mode"), Mode::Embedded);
        assert_eq!(s.bind_addr, "0.0.0.0:8080");
        assert_eq!(s.listen_backlog, 4096);
        assert_eq!(s.max_message_bytes, 4096);
    }

    #[test]
    fn conventional_and_prefixed_names_are_read() {
        let s = Settings::load_from(env(&[
            ("BIND_ADDR", "127.0.0.1:9000"),
            ("CHATX_BCRYPT_COST", "4"),
            (
                "CHATX_ALLOWED_ORIGINS",
                "https://a.example,https://b.example",
            ),
        ]))
        .expect("load");
        assert_eq!(s.bind_addr, "127.0.0.1:9000");
        assert_eq!(s.bcrypt_cost, 4);
        assert_eq!(
            s.allowed_origins,
            vec!["https://a.example", "https://b.example"]
        );
    }

    #[test]
    fn one_url_without_the_other_is_refused_naming_the_missing_setting() {
        let err = Settings::load_from(env(&[("REDIS_URL", "redis://127.0.0.1")]))
            .expect_err("must refuse");
        assert!(err.to_string().contains("NATS_URL"), "{err}");
    }

    #[test]
    fn distributed_mode_requires_a_long_jwt_secret() {
        let both = [("REDIS_URL", "redis://x"), ("NATS_URL", "nats://x")];
        let err = Settings::load_from(env(&both)).expect_err("secret required");
        assert!(err.to_string().contains("JWT_SECRET"), "{err}");
        let mut short = both.to_vec();
        short.push(("JWT_SECRET", "short"));
        let err = Settings::load_from(env(&short)).expect_err("too short");
        assert!(err.to_string().contains("at least 32"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_setting() {
        let err = Settings::load_from(env(&[("CHATX_BCRYPT_COST", "99")])).expect_err("cost");
        assert!(err.to_string().contains("CHATX_BCRYPT_COST"), "{err}");
        let err = Settings::load_from(env(&[("BIND_ADDR", "nope")])).expect_err("addr");
        assert!(err.to_string().contains("BIND_ADDR"), "{err}");
        for backlog in ["0", "65536"] {
            let err = Settings::load_from(env(&[("CHATX_LISTEN_BACKLOG", backlog)]))
                .expect_err("backlog");
            assert!(err.to_string().contains("CHATX_LISTEN_BACKLOG"), "{err}");
        }
        let err =
            Settings::load_from(env(&[("CHATX_MAX_MESSAGE_BYTES", "abc")])).expect_err("parse");
        assert!(err.to_string().contains("max_message_bytes"), "{err}");
    }

    #[test]
    fn debug_output_hides_the_secret_and_urls_are_redacted() {
        let s = Settings::load_from(env(&[("JWT_SECRET", "0123456789abcdef0123456789abcdef")]))
            .expect("load");
        assert!(!format!("{s:?}").contains("0123456789abcdef"));
        assert_eq!(
            redact_url("postgres://chat:pw@db:5432/chat"),
            "postgres://chat:***@db:5432/chat"
        );
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
    }
}
