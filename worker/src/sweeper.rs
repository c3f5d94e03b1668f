//! Expired presence leases -> `leave` events. A gateway that crashed never says goodbye
//! for its sockets; their leases expire and this sweep announces the departures.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use infra::bus::{Bus, BusEvent, Topic};
use infra::db::{Db, users};
use infra::leader::Leader;
use infra::presence::Presence;
use infra::protocol::{PresenceChange, UserRef};

/// Runs one sweep every `every` until `shutdown` resolves. With a `leader`, only the
/// holder of the lease sweeps (several workers share one Redis).
pub async fn run_sweeper(
    presence: Arc<dyn Presence>,
    bus: Arc<dyn Bus>,
    db: Db,
    every: Duration,
    leader: Option<Leader>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        if let Some(leader) = &leader {
            match leader.acquire_or_renew().await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "sweeper lease unavailable");
                    continue;
                }
            }
        }
        if let Err(e) = sweep_once(presence.as_ref(), bus.as_ref(), &db).await {
            tracing::warn!(error = %e, "presence sweep failed");
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Presence(#[from] infra::presence::PresenceError),
    #[error(transparent)]
    Db(#[from] infra::db::DbError),
    #[error(transparent)]
    Bus(#[from] infra::bus::BusError),
}

/// One sweep; returns how many departures it announced.
pub async fn sweep_once(
    presence: &dyn Presence,
    bus: &dyn Bus,
    db: &Db,
) -> Result<usize, SweepError> {
    let gone = presence.sweep().await?;
    if gone.is_empty() {
        return Ok(0);
    }
    let mut ids: Vec<_> = gone.iter().map(|(_, user)| *user).collect();
    ids.sort_unstable();
    ids.dedup();
    let users = users::by_ids(db, &ids).await?;
    for (room, user_id) in &gone {
        let Some(user) = users.iter().find(|u| u.id == *user_id) else {
            continue;
        };
        let event = BusEvent::Presence {
            room: *room,
            user: UserRef {
                id: user.id,
                username: user.username.clone(),
            },
            event: PresenceChange::Leave,
        };
        bus.emit(Topic::RoomEvents(*room), event).await?;
    }
    Ok(gone.len())
}
