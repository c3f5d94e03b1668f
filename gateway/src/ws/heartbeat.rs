//! Pings and the idle timeout of every socket, from one task per gateway.
//!
//! A socket has no timer of its own. Its reader records when it last read a frame (any
//! frame, pongs included), and once a second this task closes the sockets that have
//! been silent for the idle timeout (4000) and pings one slice of the others: the
//! sockets are spread over `ping_interval_secs` slices by id, so every socket is pinged
//! once per interval and the pings do not all go out in the same second.

use std::sync::Arc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use infra::protocol::close_code;

use super::hub::Hub;
use super::outbound::{ConnHandle, Outbound};

/// Milliseconds on the gateway's monotonic clock, for the sockets' last reads.
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// What one second's round does to one socket.
#[derive(Debug, PartialEq)]
enum Due {
    Close,
    Ping,
    Nothing,
}

/// The socket's slice (`0..slices`), from its id.
fn slice_of(conn: &ConnHandle, slices: u64) -> u64 {
    (conn.id.as_u128() % u128::from(slices)) as u64
}

fn due(silent_ms: u64, idle_ms: u64, in_this_slice: bool) -> Due {
    if silent_ms >= idle_ms {
        Due::Close
    } else if in_this_slice {
        Due::Ping
    } else {
        Due::Nothing
    }
}

/// Runs until aborted (at shutdown).
pub async fn run(hub: Arc<Hub>, ping_every: Duration, idle_after: Duration) {
    let slices = ping_every.as_secs().max(1);
    let idle_ms = idle_after.as_millis() as u64;
    let mut second = tokio::time::interval(Duration::from_secs(1));
    second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut round: u64 = 0;
    loop {
        second.tick().await;
        round += 1;
        let slice = round % slices;
        let now = now_ms();
        hub.for_each_connection(|conn| {
            let silent = now.saturating_sub(conn.last_read_ms());
            match due(silent, idle_ms, slice_of(conn, slices) == slice) {
                Due::Close => {
                    conn.close(close_code::IDLE, "idle timeout");
                }
                Due::Ping => {
                    conn.send(Outbound::Ping);
                }
                Due::Nothing => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_closes_before_anything_else() {
        assert_eq!(due(75_000, 75_000, true), Due::Close);
        assert_eq!(due(80_000, 75_000, false), Due::Close);
        assert_eq!(due(74_999, 75_000, true), Due::Ping);
        assert_eq!(due(0, 75_000, false), Due::Nothing);
    }

    #[test]
    fn every_socket_is_in_exactly_one_slice_and_the_slices_are_even() {
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let mut per_slice = [0usize; 25];
        for _ in 0..25_000 {
            let (conn, _ends) = ConnHandle::new(
                uuid::Uuid::new_v4(),
                "u".into(),
                uuid::Uuid::new_v4(),
                4,
                metrics.clone(),
            );
            per_slice[slice_of(&conn, 25) as usize] += 1;
        }
        // 1,000 expected per slice; a uniform spread stays well within this.
        assert!(
            per_slice.iter().all(|n| (800..1200).contains(n)),
            "{per_slice:?}"
        );
        let (conn, _ends) = ConnHandle::new(
            uuid::Uuid::new_v4(),
            "u".into(),
            uuid::Uuid::new_v4(),
            4,
            metrics,
        );
        assert_eq!(slice_of(&conn, 1), 0);
    }

    #[test]
    fn the_clock_is_monotonic() {
        let a = now_ms();
        std::thread::sleep(Duration::from_millis(5));
        assert!(now_ms() >= a + 5);
    }
}
