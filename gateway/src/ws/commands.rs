//! The frames of DESIGN section 7, one method each. Every error becomes an `error`
//! frame carrying the request's `ref`; the socket stays open.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use infra::bus::{BusEvent, NewMessage, Topic};
use infra::db::members;
use infra::db::messages::{HistoryQuery, MAX_PAGE};
use infra::ids::message_id;
use infra::presence::Lease;
use infra::protocol::{ClientFrame, PresenceChange, RoomRef, ServerFrame, UserRef, timestamp};
use infra::validate::{ClientMsgId, MessageBody};
use uuid::Uuid;

use super::frame;
use super::outbound::{ConnHandle, JoinedReply, Outbound};
use crate::chat::{access, history, limits, presence};
use crate::error::ApiError;
use crate::state::AppState;

/// Typing notices closer together than this are not forwarded.
const TYPING_EVERY: Duration = Duration::from_secs(1);
/// The fewest bytes one user takes in a `joined` presence list, its comma included
/// (usernames have at least 3 characters).
const MIN_USER_JSON: usize =
    r#"{"id":"00000000-0000-0000-0000-000000000000","username":"abc"},"#.len();

pub struct Commands {
    state: AppState,
    conn: ConnHandle,
    /// Rooms this socket joined, by name: the per-socket membership cache.
    joined: HashMap<String, RoomRef>,
    last_typing: HashMap<Uuid, Instant>,
}

impl Commands {
    pub fn new(state: AppState, conn: ConnHandle) -> Self {
        Self {
            state,
            conn,
            joined: HashMap::new(),
            last_typing: HashMap::new(),
        }
    }

    fn user(&self) -> UserRef {
        UserRef {
            id: self.conn.user_id,
            username: self.conn.username().to_string(),
        }
    }

    fn reply(&self, frame: ServerFrame) {
        self.conn.send(Outbound::text(frame.to_text()));
    }

    /// Handles one text frame.
    pub async fn handle(&mut self, text: &str) {
        let (frame, reference) = match ClientFrame::parse(text) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.fail(ApiError::BadRequest(e.message), e.reference);
                return;
            }
        };
        let result = match frame {
            ClientFrame::Auth { .. } => Err(ApiError::BadRequest("already authenticated".into())),
            ClientFrame::Join {
                room,
                password,
                since,
            } => {
                self.join(&room, password.as_deref(), since, reference.clone())
                    .await
            }
            ClientFrame::Leave { room } => self.leave(&room, reference.clone()).await,
            ClientFrame::Send {
                room,
                body,
                client_msg_id,
            } => {
                self.send(&room, &body, &client_msg_id, reference.clone())
                    .await
            }
            ClientFrame::History {
                room,
                before,
                limit,
            } => self.history(&room, before, limit, reference.clone()).await,
            ClientFrame::Typing { room } => self.typing(&room).await,
            ClientFrame::Read { room, seq } => self.read(&room, seq).await,
            ClientFrame::Ping {} => {
                self.reply(ServerFrame::Pong {
                    reference: reference.clone(),
                });
                Ok(())
            }
        };
        if let Err(e) = result {
            self.fail(e, reference);
        }
    }

    fn fail(&self, e: ApiError, reference: Option<String>) {
        self.state.metrics.error(e.code());
        self.reply(e.to_frame(reference));
    }

    /// The joined room by name; a room deleted meanwhile is forgotten here.
    fn joined_room(&mut self, name: &str) -> Result<RoomRef, ApiError> {
        match self.joined.get(name) {
            Some(room) if self.conn.in_room(room.id) => Ok(room.clone()),
            Some(_) => {
                self.joined.remove(name);
                Err(ApiError::NotFound(format!(
                    "room `{name}` no longer exists"
                )))
            }
            None => Err(ApiError::Forbidden(format!("join `{name}` first"))),
        }
    }

    async fn join(
        &mut self,
        name: &str,
        password: Option<&str>,
        since: Option<u64>,
        reference: Option<String>,
    ) -> Result<(), ApiError> {
        let user = self.conn.user_id;
        let already = self
            .joined
            .get(name)
            .filter(|r| self.conn.in_room(r.id))
            .cloned();
        let room = match already {
            Some(room) => room,
            None => {
                limits::check(&self.state, &format!("join:{user}"), self.state.quotas.join).await?;
                access::room_ref(&access::admit(&self.state, name, user, password).await?)
            }
        };
        let fresh = !self.conn.in_room(room.id);
        self.conn.send(Outbound::Hold(room.id));
        let result = self.enter(&room, fresh, since, reference).await;
        if result.is_err() {
            self.conn.send(Outbound::Unhold(room.id));
            if fresh {
                self.state.hub.leave(room.id, &self.conn).await;
            }
        }
        result
    }

    /// Subscribes, reads the replay AFTER the subscription is live, and queues
    /// `joined`: live messages that race the replay are filtered by the writer.
    async fn enter(
        &mut self,
        room: &RoomRef,
        fresh: bool,
        since: Option<u64>,
        reference: Option<String>,
    ) -> Result<(), ApiError> {
        let state = self.state.clone();
        if fresh {
            state.hub.join(room, &self.conn).await?;
        }
        let lease = Lease {
            room: room.id,
            user: self.conn.user_id,
            conn: self.conn.id,
        };
        let ttl = Duration::from_secs(state.settings.presence_ttl_secs);
        let first = state.presence.join(lease, ttl).await?;
        let head = history::head(&state, room.id).await?;
        // One frame carries presence and the replay: presence takes at most a quarter of
        // the frame's budget, the replay what is left.
        let budget = history::frame_budget(&state);
        // No more users than could fit are read, so a big room's join costs no more.
        let most = (budget / 4 / MIN_USER_JSON).max(1);
        let (mut presence, unread) = presence::some_room_users(&state, room.id, most).await?;
        let (shown, presence_bytes) = history::fitting(&presence, budget / 4);
        let presence_has_more = (unread || shown < presence.len()).then_some(true);
        presence.truncate(shown);
        let (recovered, has_more) = match since {
            Some(since) => {
                let budget = budget.saturating_sub(presence_bytes);
                let (messages, more) =
                    history::replay(&state, room.id, &room.name, since, budget).await?;
                (Some(messages), more.then_some(true))
            }
            None => (None, None),
        };
        let upto = recovered
            .as_ref()
            .and_then(|m| m.last().map(|m| m.seq))
            .unwrap_or(0)
            .max(if has_more.is_some() { 0 } else { head });
        let joined = ServerFrame::Joined {
            reference,
            room: room.clone(),
            last_seq: head,
            presence,
            presence_has_more,
            recovered,
            has_more,
        };
        self.conn.send(Outbound::Joined(Box::new(JoinedReply {
            room: room.id,
            upto,
            frame: frame::text(&joined.to_text()),
        })));
        self.joined.insert(room.name.clone(), room.clone());
        if first && fresh {
            let event = BusEvent::Presence {
                room: room.id,
                user: self.user(),
                event: PresenceChange::Join,
            };
            state.bus.emit(Topic::RoomEvents(room.id), event).await?;
        }
        Ok(())
    }

    async fn leave(&mut self, name: &str, reference: Option<String>) -> Result<(), ApiError> {
        let room = self.joined_room(name)?;
        self.joined.remove(name);
        self.state.hub.leave(room.id, &self.conn).await;
        self.conn.send(Outbound::Forget(room.id));
        let lease = Lease {
            room: room.id,
            user: self.conn.user_id,
            conn: self.conn.id,
        };
        if self.state.presence.leave(lease).await? {
            let event = BusEvent::Presence {
                room: room.id,
                user: self.user(),
                event: PresenceChange::Leave,
            };
            self.state
                .bus
                .emit(Topic::RoomEvents(room.id), event)
                .await?;
        }
        self.reply(ServerFrame::Left {
            reference,
            room: name.to_string(),
        });
        Ok(())
    }

    async fn send(
        &mut self,
        name: &str,
        body: &str,
        client_msg_id: &str,
        reference: Option<String>,
    ) -> Result<(), ApiError> {
        let room = self.joined_room(name)?;
        let body = MessageBody::parse(body, self.state.settings.max_message_bytes)?;
        let client_msg_id = ClientMsgId::parse(client_msg_id)?;
        let user = self.conn.user_id;
        limits::check(
            &self.state,
            &format!("msg:{user}"),
            self.state.quotas.message,
        )
        .await?;
        let message = NewMessage {
            id: message_id(user, client_msg_id.as_str()),
            room_id: room.id,
            user: self.user(),
            body: body.into_string(),
            client_msg_id: client_msg_id.as_str().to_string(),
            ts: chrono::Utc::now(),
        };
        let (id, ts) = (message.id, message.ts);
        let timeout = Duration::from_millis(self.state.settings.publish_timeout_ms);
        let ack =
            match tokio::time::timeout(timeout, self.state.bus.publish(message)).await {
                Ok(ack) => ack?,
                Err(_) => return Err(ApiError::Unavailable(
                    "the message could not be stored in time; retry with the same client_msg_id"
                        .into(),
                )),
            };
        if !ack.duplicate {
            self.state
                .metrics
                .messages_received
                .fetch_add(1, Ordering::Relaxed);
        }
        self.reply(ServerFrame::Ack {
            reference,
            client_msg_id: client_msg_id.as_str().to_string(),
            id,
            seq: ack.seq,
            ts: timestamp(ts),
        });
        Ok(())
    }

    async fn history(
        &mut self,
        name: &str,
        before: Option<u64>,
        limit: Option<u64>,
        reference: Option<String>,
    ) -> Result<(), ApiError> {
        let room = access::readable(&self.state, name, self.conn.user_id).await?;
        let query = HistoryQuery {
            before,
            limit: limit.unwrap_or(50).clamp(1, MAX_PAGE),
            ..HistoryQuery::default()
        };
        let (mut messages, mut has_more) =
            history::page(&self.state, room.id, &room.name, &query).await?;
        if history::fit_newest(&mut messages, history::frame_budget(&self.state)) {
            has_more = true;
        }
        self.reply(ServerFrame::History {
            reference,
            room: room.name,
            messages,
            has_more,
        });
        Ok(())
    }

    async fn typing(&mut self, name: &str) -> Result<(), ApiError> {
        let room = self.joined_room(name)?;
        let now = Instant::now();
        if self
            .last_typing
            .get(&room.id)
            .is_some_and(|at| now.duration_since(*at) < TYPING_EVERY)
        {
            return Ok(());
        }
        self.last_typing.insert(room.id, now);
        let event = BusEvent::Typing {
            room: room.id,
            user: self.user(),
        };
        self.state
            .bus
            .emit(Topic::RoomEvents(room.id), event)
            .await?;
        Ok(())
    }

    async fn read(&mut self, name: &str, seq: u64) -> Result<(), ApiError> {
        let room = self.joined_room(name)?;
        members::mark_read(&self.state.db, room.id, self.conn.user_id, seq).await?;
        let event = BusEvent::Receipt {
            room: room.id,
            user: self.user(),
            seq,
        };
        self.state
            .bus
            .emit(Topic::RoomEvents(room.id), event)
            .await?;
        Ok(())
    }

    /// The socket is gone: leave every room's fan-out now, but keep its presence
    /// lease through the grace window. A user who comes back meanwhile (another
    /// socket, another gateway) holds a lease again, so neither a `leave` nor a
    /// second `join` is announced: no flap.
    pub async fn disconnect(&mut self) {
        let grace = Duration::from_millis(self.state.settings.presence_grace_ms);
        let user = self.user();
        for (_, room) in self.joined.drain() {
            self.state.hub.leave(room.id, &self.conn).await;
            let lease = Lease {
                room: room.id,
                user: user.id,
                conn: self.conn.id,
            };
            let state = self.state.clone();
            let user = user.clone();
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                match state.presence.leave(lease).await {
                    Ok(true) => {
                        let event = BusEvent::Presence {
                            room: room.id,
                            user,
                            event: PresenceChange::Leave,
                        };
                        if let Err(e) = state.bus.emit(Topic::RoomEvents(room.id), event).await {
                            tracing::warn!(error = %e, "announcing a departure failed");
                        }
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "presence leave failed; the lease will expire")
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_presence_entry_is_what_serde_writes_for_a_three_letter_name() {
        let user = UserRef {
            id: Uuid::nil(),
            username: "abc".into(),
        };
        let json = serde_json::to_string(&user).expect("json");
        assert_eq!(MIN_USER_JSON, json.len() + 1);
    }
}
