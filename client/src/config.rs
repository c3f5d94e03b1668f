//! [`ClientConfig`]: where to connect, as whom, and the timing of retries.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::observer::Observer;

/// Settings of one [`crate::Client`]. [`ClientConfig::new`] fills in defaults that suit
/// a gateway behind a load balancer; every field is public to tune.
#[derive(Clone)]
pub struct ClientConfig {
    /// `http://host:port` of the load balancer (or one gateway). The socket goes to
    /// `ws://host:port/ws`, REST calls to `http://host:port/api/...`.
    pub base_url: String,
    pub username: String,
    pub password: String,
    /// Register the user first (an existing user is fine). For tests and load tools.
    pub register: bool,
    /// Reconnect backoff (full jitter). The first reconnect after a drain notice
    /// (`reconnect`, close 1012) or a slow-consumer close (4008) waits at most `base`.
    pub reconnect: Backoff,
    /// Backoff of a send or join the server answered with a transient error
    /// (`unavailable`, `internal`; `rate_limited` waits `retry_after_ms` instead).
    pub retry: Backoff,
    /// One connection attempt (sign-in, upgrade, `hello`) gives up after this long.
    pub connect_timeout: Duration,
    /// [`crate::Client::connect`] gives up after this long; later the client keeps
    /// reconnecting for as long as it lives.
    pub initial_connect_timeout: Duration,
    /// The client sends a `ping` this often so that idle sockets stay open.
    pub ping_interval: Duration,
    /// A socket that delivered nothing (no frame, no ping) for this long is dropped
    /// and replaced. The server pings every 25 s by default.
    pub liveness_timeout: Duration,
    /// Sends in flight on one socket; more wait in the client. The server handles a
    /// socket's frames one after another, so a long queue only delays everything else.
    pub max_in_flight: usize,
    /// `SO_RCVBUF` of the socket (`None`: the OS default). Small values make a paused
    /// reader back-pressure the server quickly (slow-consumer tests).
    pub recv_buffer_bytes: Option<u32>,
    /// Queue events for [`crate::Client::next_event`]. Turn off when nobody reads them
    /// (load tools that only use an [`Observer`]); they would pile up in memory.
    pub emit_events: bool,
    /// Told about every socket, ack and delivery (the [`crate::checker::Checker`]).
    pub observer: Option<Arc<dyn Observer>>,
}

impl ClientConfig {
    pub fn new(
        base_url: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            username: username.into(),
            password: password.into(),
            register: false,
            reconnect: Backoff::new(Duration::from_millis(250), Duration::from_secs(5)),
            retry: Backoff::new(Duration::from_millis(200), Duration::from_secs(3)),
            connect_timeout: Duration::from_secs(10),
            initial_connect_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(15),
            liveness_timeout: Duration::from_secs(60),
            max_in_flight: 32,
            recv_buffer_bytes: None,
            emit_events: true,
            observer: None,
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("username", &self.username)
            .field("password", &"***")
            .field("register", &self.register)
            .field("reconnect", &self.reconnect)
            .field("retry", &self.retry)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("observer", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}
