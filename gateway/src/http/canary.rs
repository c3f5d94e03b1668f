//! Readiness that proves delivery (DESIGN section 10): the gateway sends itself a
//! canary through the bus every interval and is ready only while its canaries come
//! back. A gateway whose broker connection looks fine but delivers nothing ("green
//! but deaf") goes unready and the load balancer stops sending it clients.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use infra::bus::{BusEvent, Topic};
use uuid::Uuid;

use crate::state::AppState;

/// Unready after this many intervals without a canary.
const MISSED_INTERVALS: u32 = 3;

pub struct Canary {
    pub gateway_id: Uuid,
    interval: Duration,
    origin: Instant,
    /// Milliseconds since `origin` of the last canary received; 0 = none yet.
    last_seen_ms: AtomicU64,
}

impl Canary {
    pub fn new(gateway_id: Uuid, interval: Duration) -> Self {
        Self {
            gateway_id,
            interval,
            origin: Instant::now(),
            last_seen_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64 + 1
    }

    pub fn healthy(&self) -> bool {
        let last = self.last_seen_ms.load(Ordering::Relaxed);
        last != 0 && self.now_ms() - last <= (self.interval * MISSED_INTERVALS).as_millis() as u64
    }
}

/// Subscribes to its own topic and emits one canary per interval, forever.
pub async fn run(state: AppState) {
    let canary = state.canary.clone();
    let topic = Topic::Gateway(canary.gateway_id);
    let mut tick = tokio::time::interval(canary.interval);
    loop {
        let mut feed = match state.bus.subscribe(topic).await {
            Ok(feed) => feed,
            Err(e) => {
                tracing::warn!(error = %e, "canary subscription failed; retrying");
                tick.tick().await;
                continue;
            }
        };
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let event = BusEvent::Canary { sent_ms: canary.now_ms() };
                    if let Err(e) = state.bus.emit(topic, event).await {
                        tracing::warn!(error = %e, "canary not sent");
                    }
                }
                event = feed.next() => match event {
                    Some(BusEvent::Canary { .. }) => canary.last_seen_ms.store(canary.now_ms(), Ordering::Relaxed),
                    Some(_) => {}
                    None => break,
                },
            }
        }
    }
}
