//! The GCRA arithmetic shared by every implementation (the Redis Lua script mirrors it).

use std::time::Duration;

use super::Decision;

/// `burst` requests at once, refilled at one per `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub interval: Duration,
    pub burst: u32,
}

impl Quota {
    /// `rate` requests per `per`, with a burst.
    pub fn per(rate: f64, per: Duration, burst: u32) -> Self {
        let interval = Duration::from_secs_f64(per.as_secs_f64() / rate.max(f64::MIN_POSITIVE));
        Self {
            interval: interval.max(Duration::from_micros(1)),
            burst: burst.max(1),
        }
    }
}

/// One GCRA step in microseconds. `tat` is the stored theoretical arrival time (0 for a
/// fresh key). Returns the decision and, when allowed, the new `tat` to store.
pub fn gcra_step(now_us: u64, tat_us: u64, quota: Quota) -> (Decision, Option<u64>) {
    let interval = quota.interval.as_micros() as u64;
    let tolerance = interval * u64::from(quota.burst);
    let tat = tat_us.max(now_us);
    let new_tat = tat + interval;
    let ahead = new_tat - now_us;
    if ahead > tolerance {
        let retry_after = Duration::from_micros(ahead - tolerance);
        (Decision::Limited { retry_after }, None)
    } else {
        (Decision::Allowed, Some(new_tat))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_key_allows_the_burst_then_one_per_interval() {
        let quota = Quota {
            interval: Duration::from_millis(100),
            burst: 3,
        };
        let mut tat = 0;
        let now = 1_000_000;
        for _ in 0..3 {
            let (d, next) = gcra_step(now, tat, quota);
            assert_eq!(d, Decision::Allowed);
            tat = next.expect("stored");
        }
        let (d, next) = gcra_step(now, tat, quota);
        assert_eq!(
            d,
            Decision::Limited {
                retry_after: Duration::from_millis(100)
            }
        );
        assert!(next.is_none());
        let (d, _) = gcra_step(now + 100_000, tat, quota);
        assert_eq!(d, Decision::Allowed);
    }

    #[test]
    fn quota_per_converts_rates_to_intervals() {
        assert_eq!(
            Quota::per(10.0, Duration::from_secs(1), 5).interval,
            Duration::from_millis(100)
        );
        assert_eq!(
            Quota::per(30.0, Duration::from_secs(60), 1).interval,
            Duration::from_secs(2)
        );
    }
}
