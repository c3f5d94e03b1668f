//! The gateway's fan-out: one bus subscription per room that has a local member
//! (interest-based routing), one per session with a live socket (revocation), and
//! the list of live sockets (drain, presence refresh).
//!
//! Room messages are serialized ONCE per gateway and the same bytes are queued to
//! every member socket; the fan-out never awaits while holding the member lock. Room
//! tasks run on the fan-out thread (`fanout`), not on the gateway's runtime.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

use futures_util::StreamExt;
use infra::bus::{Bus, BusError, BusEvent, Topic};
use infra::presence::Lease;
use infra::protocol::{RoomRef, ServerFrame, close_code};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::frame;
use super::outbound::{ConnHandle, Outbound, RoomFrame};
use crate::chat::history::view;
use crate::metrics::Metrics;

type Members = Arc<RwLock<HashMap<Uuid, ConnHandle>>>;

struct RoomEntry {
    members: Members,
    task: JoinHandle<()>,
}

struct SessionEntry {
    conns: Arc<Mutex<HashMap<Uuid, ConnHandle>>>,
    task: JoinHandle<()>,
}

pub struct Hub {
    bus: Arc<dyn Bus>,
    metrics: Arc<Metrics>,
    /// The fan-out thread's runtime, where room tasks run.
    fanout: Handle,
    rooms: tokio::sync::Mutex<HashMap<Uuid, RoomEntry>>,
    sessions: tokio::sync::Mutex<HashMap<Uuid, SessionEntry>>,
    conns: Mutex<HashMap<Uuid, ConnHandle>>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

fn guard<T>(lock: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hub {
    /// `fanout`: the runtime room tasks are spawned on (see `fanout`).
    pub fn new(bus: Arc<dyn Bus>, metrics: Arc<Metrics>, fanout: Handle) -> Arc<Self> {
        Arc::new(Self {
            bus,
            metrics,
            fanout,
            rooms: tokio::sync::Mutex::new(HashMap::new()),
            sessions: tokio::sync::Mutex::new(HashMap::new()),
            conns: Mutex::new(HashMap::new()),
        })
    }

    /// Registers a live socket and makes sure its session's revocation reaches it.
    pub async fn register(&self, conn: &ConnHandle) -> Result<(), BusError> {
        let mut sessions = self.sessions.lock().await;
        if let Some(entry) = sessions.get(&conn.session_id) {
            guard(&entry.conns).insert(conn.id, conn.clone());
        } else {
            let mut feed = self.bus.subscribe(Topic::Session(conn.session_id)).await?;
            let conns = Arc::new(Mutex::new(HashMap::from([(conn.id, conn.clone())])));
            let targets = conns.clone();
            let task = tokio::spawn(async move {
                while let Some(event) = feed.next().await {
                    if let BusEvent::SessionRevoked { .. } = event {
                        for conn in guard(&targets).values() {
                            conn.close(close_code::SESSION_REVOKED, "session revoked");
                        }
                    }
                }
            });
            sessions.insert(conn.session_id, SessionEntry { conns, task });
        }
        drop(sessions);
        guard(&self.conns).insert(conn.id, conn.clone());
        Ok(())
    }

    pub async fn unregister(&self, conn: &ConnHandle) {
        guard(&self.conns).remove(&conn.id);
        let mut sessions = self.sessions.lock().await;
        if let Some(entry) = sessions.get(&conn.session_id) {
            let empty = {
                let mut conns = guard(&entry.conns);
                conns.remove(&conn.id);
                conns.is_empty()
            };
            if empty && let Some(entry) = sessions.remove(&conn.session_id) {
                entry.task.abort();
            }
        }
    }

    /// Adds the socket to the room's fan-out; the room's bus subscription is live
    /// when this returns.
    pub async fn join(self: &Arc<Self>, room: &RoomRef, conn: &ConnHandle) -> Result<(), BusError> {
        let mut rooms = self.rooms.lock().await;
        if let Some(entry) = rooms.get(&room.id) {
            write(&entry.members).insert(conn.id, conn.clone());
        } else {
            let members: Members = Arc::new(RwLock::new(HashMap::from([(conn.id, conn.clone())])));
            let task = self.spawn_room(room.clone(), members.clone()).await?;
            rooms.insert(room.id, RoomEntry { members, task });
        }
        conn.set_room(room.id, true);
        Ok(())
    }

    pub async fn leave(&self, room: Uuid, conn: &ConnHandle) {
        conn.set_room(room, false);
        let mut rooms = self.rooms.lock().await;
        if let Some(entry) = rooms.get(&room) {
            let empty = {
                let mut members = write(&entry.members);
                members.remove(&conn.id);
                members.is_empty()
            };
            if empty && let Some(entry) = rooms.remove(&room) {
                entry.task.abort();
            }
        }
    }

    async fn remove_room(&self, room: Uuid) {
        if let Some(entry) = self.rooms.lock().await.remove(&room) {
            for conn in read(&entry.members).values() {
                conn.set_room(room, false);
            }
        }
    }

    /// Every live socket (drain).
    pub fn connections(&self) -> Vec<ConnHandle> {
        guard(&self.conns).values().cloned().collect()
    }

    /// Calls `f` on every live socket, under the table's lock (`f` must not block).
    pub fn for_each_connection(&self, mut f: impl FnMut(&ConnHandle)) {
        for conn in guard(&self.conns).values() {
            f(conn);
        }
    }

    /// Every presence lease this gateway holds (one refresh round trip for all).
    pub fn leases(&self) -> Vec<Lease> {
        guard(&self.conns)
            .values()
            .flat_map(|conn| {
                conn.joined_rooms().into_iter().map(|room| Lease {
                    room,
                    user: conn.user_id,
                    conn: conn.id,
                })
            })
            .collect()
    }

    async fn spawn_room(
        self: &Arc<Self>,
        room: RoomRef,
        members: Members,
    ) -> Result<JoinHandle<()>, BusError> {
        let mut feed = self.bus.subscribe_room(room.id).await?;
        let mut events = self.bus.subscribe(Topic::RoomEvents(room.id)).await?;
        let mut control = self.bus.subscribe(Topic::RoomControl(room.id)).await?;
        let hub = self.clone();
        Ok(self.fanout.spawn(async move {
            loop {
                tokio::select! {
                    message = feed.next() => match message {
                        Some(Ok(message)) => {
                            let frame = Arc::new(RoomFrame {
                                room: room.id,
                                seq: message.seq,
                                frame: frame::text(&ServerFrame::Message(view(&room.name, &message)).to_text()),
                            });
                            let mut delivered = 0;
                            for conn in read(&members).values() {
                                if conn.send(Outbound::Message(frame.clone())) {
                                    delivered += 1;
                                }
                            }
                            hub.metrics.messages_delivered.fetch_add(delivered, Ordering::Relaxed);
                        }
                        Some(Err(e)) => {
                            tracing::warn!(room = %room.id, error = %e, "room feed failed; members resume with since");
                            for conn in read(&members).values() {
                                conn.close(close_code::SLOW_CONSUMER, "room feed lagged: resume with since");
                            }
                            hub.remove_room(room.id).await;
                            return;
                        }
                        None => {
                            hub.remove_room(room.id).await;
                            return;
                        }
                    },
                    Some(event) = events.next() => fan_out_event(&room, &members, event),
                    Some(event) = control.next() => {
                        if let BusEvent::RoomDeleted { .. } = event {
                            let text = shared(ServerFrame::RoomDeleted { room: room.name.clone() });
                            for conn in read(&members).values() {
                                conn.send(Outbound::Shared(text.clone()));
                            }
                            hub.remove_room(room.id).await;
                            return;
                        }
                    }
                }
            }
        }))
    }
}

fn fan_out_event(room: &RoomRef, members: &Members, event: BusEvent) {
    let (frame, about, droppable) = match event {
        BusEvent::Presence { user, event, .. } => {
            let about = user.id;
            (
                ServerFrame::Presence {
                    room: room.name.clone(),
                    user,
                    event,
                },
                Some(about),
                false,
            )
        }
        BusEvent::Typing { user, .. } => {
            let about = user.id;
            (
                ServerFrame::Typing {
                    room: room.name.clone(),
                    user,
                },
                Some(about),
                true,
            )
        }
        BusEvent::Receipt { user, seq, .. } => (
            ServerFrame::Receipt {
                room: room.name.clone(),
                user,
                seq,
            },
            None,
            false,
        ),
        _ => return,
    };
    let text = shared(frame);
    for conn in read(members).values() {
        // A user is not told about their own presence or typing.
        if Some(conn.user_id) == about {
            continue;
        }
        if droppable {
            conn.send_droppable(Outbound::Shared(text.clone()));
        } else {
            conn.send(Outbound::Shared(text.clone()));
        }
    }
}

/// A frame encoded once, to be written by many sockets.
fn shared(server_frame: ServerFrame) -> Arc<[u8]> {
    Arc::from(frame::text(&server_frame.to_text()))
}
