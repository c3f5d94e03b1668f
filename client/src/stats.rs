//! [`Stats`]: what a client went through (reconnects, resends, refusals), for
//! dashboards and for the fault tests' figures.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

/// One loss of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    /// When the socket was lost.
    pub lost_at: Instant,
    /// When a new socket had joined every room again (sends flow again, live
    /// messages arrive); `None` while still out.
    pub resumed_at: Option<Instant>,
    /// When every room's replay was complete too (a long backlog takes several
    /// `join` + `since` rounds after `resumed_at`); `None` until then.
    pub caught_up_at: Option<Instant>,
    /// The close code of the lost socket (`None`: no close frame, e.g. a killed
    /// gateway or a dropped connection).
    pub close_code: Option<u16>,
    /// Sockets opened before every room was joined again (more than 1: a new socket
    /// was lost too, e.g. it landed on a gateway that started draining).
    pub sockets: u32,
}

/// Counters of one client since it was created. A snapshot: see
/// [`crate::Client::stats`].
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// A socket is open and every room is joined on it.
    pub connected: bool,
    /// Sockets that reached `hello`.
    pub sockets: u64,
    /// Connections lost.
    pub disconnects: u64,
    /// Connections lost and then resumed (every room joined again).
    pub reconnects: u64,
    /// Close codes of lost sockets (`1006`: closed without a close frame).
    pub close_codes: BTreeMap<u16, u64>,
    /// `reconnect` notices received (drain).
    pub reconnect_notices: u64,
    /// Connection attempts that failed (refused upgrade, unreachable, ...).
    pub failed_connects: u64,
    /// Why the last connection attempt failed.
    pub last_connect_error: Option<String>,
    /// Sends the application asked for.
    pub sends: u64,
    /// Sends acknowledged.
    pub acked: u64,
    /// Sends written again with the same `client_msg_id` (after a lost socket or a
    /// transient error).
    pub resends: u64,
    /// Sends answered with `unavailable` (retried, never counted as acked).
    pub unavailable: u64,
    /// Sends or joins answered with any transient error (`unavailable`, `internal`,
    /// `rate_limited`) and retried.
    pub retries: u64,
    /// Messages handed to the application.
    pub delivered: u64,
    /// Messages dropped because the application already had them.
    pub duplicates_dropped: u64,
    /// Extra joins to finish a replay the server cut (`has_more`).
    pub catch_up_joins: u64,
    /// Access tokens renewed with the refresh token.
    pub refreshes: u64,
    /// New sign-ins with the password after the session was gone.
    pub relogins: u64,
    /// Every connection loss, oldest first.
    pub outages: Vec<Outage>,
}

/// The shared, locked [`Stats`] a client updates.
#[derive(Debug, Default)]
pub(crate) struct Counters(Mutex<Stats>);

impl Counters {
    pub(crate) fn bump(&self, f: impl FnOnce(&mut Stats)) {
        // A poisoned lock only means a panic elsewhere; the counters are still usable.
        let mut stats = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut stats);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
