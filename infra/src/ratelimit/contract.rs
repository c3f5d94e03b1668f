//! The contract every [`RateLimiter`] passes:
//! `infra::ratelimit_contract_tests!(|| async { Arc::new(L::new()) as Arc<dyn RateLimiter> });`

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::{Decision, Quota, RateLimiter};

#[macro_export]
macro_rules! ratelimit_contract_tests {
    ($make:expr) => {
        $crate::ratelimit_contract_tests!(@cases $make;
            a_fresh_key_allows_exactly_the_burst,
            retry_after_is_honest,
            keys_are_independent
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let limiter: std::sync::Arc<dyn $crate::ratelimit::RateLimiter> = ($make)().await;
                $crate::ratelimit::contract::$case(limiter).await;
            }
        )*
    };
}

fn key() -> String {
    format!("contract:{}", Uuid::new_v4())
}

const QUOTA: Quota = Quota {
    interval: Duration::from_millis(400),
    burst: 3,
};

pub async fn a_fresh_key_allows_exactly_the_burst(limiter: Arc<dyn RateLimiter>) {
    let key = key();
    for i in 0..3 {
        assert_eq!(
            limiter.check(&key, QUOTA).await.expect("check"),
            Decision::Allowed,
            "request {i}"
        );
    }
    match limiter.check(&key, QUOTA).await.expect("check") {
        Decision::Limited { retry_after } => {
            assert!(
                retry_after > Duration::ZERO && retry_after <= QUOTA.interval,
                "{retry_after:?}"
            )
        }
        Decision::Allowed => panic!("the request after the burst must be limited"),
    }
}

pub async fn retry_after_is_honest(limiter: Arc<dyn RateLimiter>) {
    let key = key();
    for _ in 0..3 {
        limiter.check(&key, QUOTA).await.expect("check");
    }
    let Decision::Limited { retry_after } = limiter.check(&key, QUOTA).await.expect("check") else {
        panic!("limited after the burst");
    };
    // Refused requests consume nothing: asking again right away changes nothing.
    assert!(matches!(
        limiter.check(&key, QUOTA).await.expect("check"),
        Decision::Limited { .. }
    ));
    tokio::time::sleep(retry_after + Duration::from_millis(50)).await;
    assert_eq!(
        limiter.check(&key, QUOTA).await.expect("check"),
        Decision::Allowed
    );
    assert!(matches!(
        limiter.check(&key, QUOTA).await.expect("check"),
        Decision::Limited { .. }
    ));
}

pub async fn keys_are_independent(limiter: Arc<dyn RateLimiter>) {
    let (a, b) = (key(), key());
    for _ in 0..3 {
        limiter.check(&a, QUOTA).await.expect("check");
    }
    assert!(matches!(
        limiter.check(&a, QUOTA).await.expect("check"),
        Decision::Limited { .. }
    ));
    assert_eq!(
        limiter.check(&b, QUOTA).await.expect("check"),
        Decision::Allowed
    );
}
