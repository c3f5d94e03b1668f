//! Per-room delivery order: what the application has seen of a room, and which of the
//! messages arriving from the server it must see next.
//!
//! The server delivers each room in seq order on one socket, but a client sees several
//! sockets over its life and asks for replays (`join` + `since`) that overlap what it
//! already has. This state turns all of that into one stream per room in which every
//! seq appears once, in increasing order. It knows nothing about sockets or frames.

use std::collections::{BTreeMap, HashSet, VecDeque};

use uuid::Uuid;

use crate::wire::Message;

/// Message ids remembered per room. A send retried after the server's dedup window
/// can be stored again under a new seq with the SAME id; within this many messages
/// the second copy is dropped.
const RECENT_IDS: usize = 4096;

/// What happened to one incoming message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Handed to the application.
    Delivered,
    /// Already delivered (a replay overlapping the live feed, a resend): dropped.
    Duplicate,
    /// Held until the catch-up of the room completes.
    Held,
}

#[derive(Debug, Default)]
pub(crate) struct RoomOrder {
    /// Seq of the last message handed to the application; `None` before the first
    /// `joined` of a join without `since`.
    last: Option<u64>,
    /// A replay was cut at the server's limit (`has_more`): live messages wait here
    /// until the next `join` + `since` has filled the gap before them.
    catching_up: bool,
    held: BTreeMap<u64, Message>,
    recent: VecDeque<Uuid>,
    recent_set: HashSet<Uuid>,
}

impl RoomOrder {
    /// Starts a room at `since` (`None`: at the room's head when the join completes).
    pub(crate) fn starting_at(since: Option<u64>) -> Self {
        Self {
            last: since,
            ..Self::default()
        }
    }

    /// The `since` of the next `join`: everything after the last message delivered.
    pub(crate) fn since(&self) -> Option<u64> {
        self.last
    }

    pub(crate) fn catching_up(&self) -> bool {
        self.catching_up
    }

    /// Advances past `message`; `false` when its id was delivered before under
    /// another seq (a copy), which is then dropped.
    fn first_copy(&mut self, message: &Message) -> bool {
        self.last = Some(message.seq);
        if !self.recent_set.insert(message.id) {
            return false;
        }
        self.recent.push_back(message.id);
        if self.recent.len() > RECENT_IDS
            && let Some(old) = self.recent.pop_front()
        {
            self.recent_set.remove(&old);
        }
        true
    }

    /// A socket is gone: whatever was held will come again in the next replay.
    pub(crate) fn reset(&mut self) {
        self.held.clear();
        self.catching_up = false;
    }

    /// Applies a `joined` reply. Returns the messages to deliver, in order, and the
    /// number of duplicates dropped. With `has_more` the room stays in catch-up and the
    /// caller must join again with [`RoomOrder::since`].
    pub(crate) fn joined(
        &mut self,
        last_seq: u64,
        recovered: Vec<Message>,
        has_more: bool,
    ) -> (Vec<Message>, u64) {
        let mut out = Vec::new();
        let mut duplicates = 0;
        let Some(mut last) = self.last else {
            // A join without `since`: the application starts at the room's head.
            self.last = Some(last_seq);
            return (out, 0);
        };
        let mut recovered = recovered;
        recovered.sort_by_key(|m| m.seq);
        let held = if has_more {
            BTreeMap::new()
        } else {
            // The replay reaches the head: release what arrived live meanwhile.
            std::mem::take(&mut self.held)
        };
        self.catching_up = has_more;
        for message in recovered.into_iter().chain(held.into_values()) {
            if message.seq > last {
                last = message.seq;
                if self.first_copy(&message) {
                    out.push(message);
                    continue;
                }
            }
            duplicates += 1;
        }
        self.last = Some(last);
        (out, duplicates)
    }

    /// Applies a live `message`.
    pub(crate) fn live(&mut self, message: Message) -> (Admission, Option<Message>) {
        let seq = message.seq;
        match self.last {
            // Not joined yet on this socket (cannot happen: the server holds live
            // messages until `joined`); keep it for the join to sort out.
            None => {
                self.held.insert(seq, message);
                (Admission::Held, None)
            }
            Some(last) if seq <= last => (Admission::Duplicate, None),
            Some(_) if self.catching_up => {
                self.held.insert(seq, message);
                (Admission::Held, None)
            }
            Some(_) => {
                if self.first_copy(&message) {
                    (Admission::Delivered, Some(message))
                } else {
                    (Admission::Duplicate, None)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::User;
    use uuid::Uuid;

    fn m(seq: u64) -> Message {
        Message {
            room: "r".into(),
            id: Uuid::from_u128(u128::from(seq)),
            seq,
            user: User {
                id: Uuid::nil(),
                username: "u".into(),
            },
            body: format!("m{seq}"),
            ts: String::new(),
            client_msg_id: format!("c{seq}"),
        }
    }

    fn seqs(messages: &[Message]) -> Vec<u64> {
        messages.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn a_join_without_since_starts_at_the_head() {
        let mut room = RoomOrder::starting_at(None);
        let (out, _) = room.joined(10, Vec::new(), false);
        assert!(out.is_empty());
        assert_eq!(room.since(), Some(10));
        assert_eq!(room.live(m(9)).0, Admission::Duplicate);
        assert_eq!(room.live(m(12)).0, Admission::Delivered);
        assert_eq!(room.since(), Some(12));
    }

    #[test]
    fn a_resume_delivers_the_replay_once_and_in_order() {
        let mut room = RoomOrder::starting_at(Some(5));
        let (out, dups) = room.joined(9, vec![m(9), m(4), m(7), m(5)], false);
        assert_eq!(seqs(&out), vec![7, 9]);
        assert_eq!(dups, 2);
        assert_eq!(room.live(m(9)).0, Admission::Duplicate);
    }

    #[test]
    fn a_cut_replay_holds_the_live_feed_until_the_gap_is_filled() {
        let mut room = RoomOrder::starting_at(Some(0));
        let (out, _) = room.joined(100, vec![m(1), m(2)], true);
        assert_eq!(seqs(&out), vec![1, 2]);
        assert!(room.catching_up());
        // Live messages newer than the gap wait.
        assert_eq!(room.live(m(101)).0, Admission::Held);
        assert_eq!(room.live(m(102)).0, Admission::Held);
        assert_eq!(room.since(), Some(2));
        // The next replay overlaps the held ones; each seq comes out once.
        let (out, dups) = room.joined(101, vec![m(3), m(50), m(101)], false);
        assert_eq!(seqs(&out), vec![3, 50, 101, 102]);
        assert_eq!(dups, 1);
        assert!(!room.catching_up());
        assert_eq!(room.live(m(103)).0, Admission::Delivered);
    }

    #[test]
    fn a_second_copy_of_a_message_under_a_new_seq_is_dropped() {
        let mut room = RoomOrder::starting_at(Some(0));
        room.joined(1, vec![m(1)], false);
        let mut copy = m(5);
        copy.id = m(1).id;
        assert_eq!(room.live(copy).0, Admission::Duplicate);
        assert_eq!(room.since(), Some(5), "the copy's seq still counts as seen");
        assert_eq!(room.live(m(6)).0, Admission::Delivered);
    }

    #[test]
    fn a_reset_drops_held_messages_that_the_next_replay_brings_back() {
        let mut room = RoomOrder::starting_at(Some(0));
        room.joined(10, vec![m(1)], true);
        room.live(m(11));
        room.reset();
        let (out, _) = room.joined(11, vec![m(2), m(11)], false);
        assert_eq!(seqs(&out), vec![2, 11]);
    }
}
