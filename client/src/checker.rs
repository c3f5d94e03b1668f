//! The delivery checker: an [`Observer`] that records every ack and every message each
//! socket received, then reports what the delivery contract forbids:
//!
//! - **lost**: an acked message of a room that a client was a member of (seq above its
//!   first join's point) that none of the client's sockets received, or that the
//!   client never handed to its application;
//! - **duplicates**: the same seq received twice on one socket (catch-up replays the
//!   client asked for excluded, see [`Via::CatchUp`]), or delivered twice to one
//!   application;
//! - **out of order**: a seq below an earlier one on one socket and room, or in one
//!   application's stream of a room;
//! - **ack conflicts**: one message id acked with two seqs, or two ids with one seq;
//! - **database vs acks**: acked messages missing from the database, rows nobody got
//!   an ack for.
//!
//! It assumes members stay in their rooms until the report (no `leave`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Mutex;

use uuid::Uuid;

use crate::observer::{Observer, SocketId, Via};
use crate::{Ack, Message};

/// At most this many examples of each kind of failure are kept in a [`Report`].
const EXAMPLES: usize = 20;

#[derive(Default)]
struct SocketLog {
    client: String,
    /// Per room, seqs in arrival order; `false` marks catch-up replays, which are
    /// excluded from the duplicate and order checks.
    rooms: HashMap<String, Vec<(u64, bool)>>,
}

#[derive(Default)]
struct State {
    sockets: HashMap<SocketId, SocketLog>,
    /// Every ack, retries included: (client, room, id, seq).
    acks: Vec<(String, String, Uuid, u64)>,
    /// (client, room) -> seq after which the client must receive everything.
    members: BTreeMap<(String, String), u64>,
    /// (client, room) -> seqs handed to the application, in order.
    app: HashMap<(String, String), Vec<u64>>,
    /// Send errors by code.
    refused: BTreeMap<String, u64>,
}

/// Records deliveries; share it (`Arc`) as the [`crate::ClientConfig::observer`] of
/// every client under test, then call [`Checker::report`].
#[derive(Default)]
pub struct Checker {
    state: Mutex<State>,
}

/// One message of a room that a client should have had.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Miss {
    pub client: String,
    pub room: String,
    pub seq: u64,
}

/// A seq seen twice, or below an earlier one, on one socket (or in one application
/// stream, then `socket` is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    pub client: String,
    pub socket: Option<SocketId>,
    pub room: String,
    pub seq: u64,
    /// The highest seq seen before it.
    pub after: u64,
}

/// A message row of the database: its seq and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DbMessage {
    pub seq: u64,
    pub id: Uuid,
}

/// The database compared with the acks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbCheck {
    pub rows: usize,
    /// Acked, but no row with that seq and id.
    pub missing: Vec<u64>,
    /// Rows nobody was acked for.
    pub unacked: Vec<u64>,
}

/// What the checker found. [`Report::failures`] lists the broken rules.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Distinct messages acked.
    pub acked: usize,
    /// Acks including retries of the same message.
    pub ack_answers: usize,
    pub ack_conflicts: Vec<String>,
    pub sockets: usize,
    /// Messages received over all sockets (replays included).
    pub received: u64,
    /// Messages handed to applications.
    pub delivered: u64,
    /// Sum over members of the acked messages they must receive.
    pub expected: u64,
    /// Distinct seqs received that nobody was acked for (sends still pending or
    /// abandoned; not a failure by itself).
    pub unacked_received: usize,
    pub lost: usize,
    pub lost_examples: Vec<Miss>,
    pub app_lost: usize,
    pub app_lost_examples: Vec<Miss>,
    pub duplicates: usize,
    pub duplicate_examples: Vec<Anomaly>,
    pub app_duplicates: usize,
    pub out_of_order: usize,
    pub out_of_order_examples: Vec<Anomaly>,
    pub app_out_of_order: usize,
    /// Send errors answered, by code (`unavailable`, ...).
    pub refused: BTreeMap<String, u64>,
    pub db: Option<DbCheck>,
}

impl Report {
    /// The broken rules, one line each; empty when the contract held.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.lost > 0 {
            out.push(format!(
                "{} acked messages never reached a member's socket, e.g. {:?}",
                self.lost,
                self.lost_examples.first()
            ));
        }
        if self.app_lost > 0 {
            out.push(format!(
                "{} acked messages never reached a member's application, e.g. {:?}",
                self.app_lost,
                self.app_lost_examples.first()
            ));
        }
        if self.duplicates > 0 || self.app_duplicates > 0 {
            out.push(format!(
                "{} duplicates on sockets, {} in applications, e.g. {:?}",
                self.duplicates,
                self.app_duplicates,
                self.duplicate_examples.first()
            ));
        }
        if self.out_of_order > 0 || self.app_out_of_order > 0 {
            out.push(format!(
                "{} out of order on sockets, {} in applications, e.g. {:?}",
                self.out_of_order,
                self.app_out_of_order,
                self.out_of_order_examples.first()
            ));
        }
        if !self.ack_conflicts.is_empty() {
            out.push(format!("ack conflicts: {:?}", self.ack_conflicts));
        }
        if let Some(db) = &self.db {
            if !db.missing.is_empty() {
                out.push(format!(
                    "{} acked messages missing from the database, e.g. seq {:?}",
                    db.missing.len(),
                    &db.missing[..db.missing.len().min(5)]
                ));
            }
            if !db.unacked.is_empty() {
                out.push(format!(
                    "{} database rows without an ack, e.g. seq {:?}",
                    db.unacked.len(),
                    &db.unacked[..db.unacked.len().min(5)]
                ));
            }
        }
        out
    }

    pub fn passed(&self) -> bool {
        self.failures().is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "acked {} (answers {}), sockets {}, received {}, delivered {} of {} expected",
            self.acked,
            self.ack_answers,
            self.sockets,
            self.received,
            self.delivered,
            self.expected
        )?;
        writeln!(
            f,
            "lost {} (application {}), duplicates {} (application {}), out of order {} (application {}), ack conflicts {}",
            self.lost,
            self.app_lost,
            self.duplicates,
            self.app_duplicates,
            self.out_of_order,
            self.app_out_of_order,
            self.ack_conflicts.len()
        )?;
        if let Some(db) = &self.db {
            writeln!(
                f,
                "database rows {} vs acked {}: missing {}, unacked {}",
                db.rows,
                self.acked,
                db.missing.len(),
                db.unacked.len()
            )?;
        }
        write!(
            f,
            "send errors answered: {:?}; received without ack: {}",
            self.refused, self.unacked_received
        )
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Observer for Checker {
    fn socket_opened(&self, client: &str, socket: SocketId) {
        lock(&self.state).sockets.insert(
            socket,
            SocketLog {
                client: client.to_string(),
                rooms: HashMap::new(),
            },
        );
    }

    fn member_since(&self, client: &str, room: &str, seq: u64) {
        lock(&self.state)
            .members
            .entry((client.to_string(), room.to_string()))
            .or_insert(seq);
    }

    fn received(&self, client: &str, socket: SocketId, message: &Message, via: Via) {
        let mut state = lock(&self.state);
        let log = state.sockets.entry(socket).or_insert_with(|| SocketLog {
            client: client.to_string(),
            rooms: HashMap::new(),
        });
        log.rooms
            .entry(message.room.clone())
            .or_default()
            .push((message.seq, via != Via::CatchUp));
    }

    fn acked(&self, client: &str, _socket: SocketId, ack: &Ack) {
        lock(&self.state)
            .acks
            .push((client.to_string(), ack.room.clone(), ack.id, ack.seq));
    }

    fn send_refused(&self, _client: &str, _room: &str, _client_msg_id: &str, code: &str) {
        *lock(&self.state)
            .refused
            .entry(code.to_string())
            .or_default() += 1;
    }

    fn delivered(&self, client: &str, message: &Message) {
        lock(&self.state)
            .app
            .entry((client.to_string(), message.room.clone()))
            .or_default()
            .push(message.seq);
    }
}

/// `(seq, highest seq before it)` pairs.
type Breaks = Vec<(u64, u64)>;

/// Duplicates and order breaks in one stream of seqs.
fn anomalies(seqs: impl Iterator<Item = u64>) -> (Breaks, Breaks) {
    let mut seen = HashSet::new();
    let mut max = 0;
    let mut duplicates = Vec::new();
    let mut disorder = Vec::new();
    for seq in seqs {
        if !seen.insert(seq) {
            duplicates.push((seq, max));
        } else if seq < max {
            disorder.push((seq, max));
        }
        max = max.max(seq);
    }
    (duplicates, disorder)
}

impl Checker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Distinct acked messages so far.
    pub fn acked_count(&self) -> usize {
        let state = lock(&self.state);
        state
            .acks
            .iter()
            .map(|(_, _, id, _)| *id)
            .collect::<HashSet<_>>()
            .len()
    }

    /// Acked messages that some member has not had handed to its application yet:
    /// 0 once every delivery has arrived (poll it before [`Checker::report`]).
    pub fn outstanding(&self) -> usize {
        let state = lock(&self.state);
        let by_room = acked_by_room(&state);
        let mut missing = 0;
        for ((client, room), since) in &state.members {
            let Some(acked) = by_room.get(room) else {
                continue;
            };
            let got: HashSet<u64> = state
                .app
                .get(&(client.clone(), room.clone()))
                .map(|v| v.iter().copied().collect())
                .unwrap_or_default();
            missing += acked
                .range(since + 1..)
                .filter(|seq| !got.contains(seq))
                .count();
        }
        missing
    }

    /// Checks everything recorded so far. `db`: the database's message rows (of the
    /// rooms under test), or `None` to skip that comparison.
    pub fn report(&self, db: Option<&[DbMessage]>) -> Report {
        let state = lock(&self.state);
        let mut report = Report {
            ack_answers: state.acks.len(),
            sockets: state.sockets.len(),
            refused: state.refused.clone(),
            ..Report::default()
        };

        // Acks: one seq per id, one id per seq.
        let mut seq_of: HashMap<Uuid, u64> = HashMap::new();
        let mut id_of: HashMap<u64, Uuid> = HashMap::new();
        for (client, room, id, seq) in &state.acks {
            if let Some(previous) = seq_of.insert(*id, *seq)
                && previous != *seq
            {
                report.ack_conflicts.push(format!(
                    "{client} in {room}: message {id} acked as seq {previous} and {seq}"
                ));
            }
            if let Some(previous) = id_of.insert(*seq, *id)
                && previous != *id
            {
                report.ack_conflicts.push(format!(
                    "{client} in {room}: seq {seq} acked for {previous} and {id}"
                ));
            }
        }
        report.acked = seq_of.len();
        let by_room = acked_by_room(&state);

        // Sockets: duplicates and order, and what each client received at all.
        let mut received: HashMap<(&str, &str), HashSet<u64>> = HashMap::new();
        let mut all_received: HashSet<u64> = HashSet::new();
        for (socket, log) in &state.sockets {
            for (room, seqs) in &log.rooms {
                report.received += seqs.len() as u64;
                let set = received
                    .entry((log.client.as_str(), room.as_str()))
                    .or_default();
                set.extend(seqs.iter().map(|(seq, _)| *seq));
                all_received.extend(seqs.iter().map(|(seq, _)| *seq));
                let (duplicates, disorder) =
                    anomalies(seqs.iter().filter(|(_, counted)| *counted).map(|(s, _)| *s));
                let anomaly = |(seq, after): (u64, u64)| Anomaly {
                    client: log.client.clone(),
                    socket: Some(*socket),
                    room: room.clone(),
                    seq,
                    after,
                };
                report.duplicates += duplicates.len();
                report.out_of_order += disorder.len();
                let room_dups = duplicates.into_iter().map(anomaly);
                report.duplicate_examples.extend(room_dups.take(EXAMPLES));
                let room_disorder = disorder.into_iter().map(anomaly);
                report
                    .out_of_order_examples
                    .extend(room_disorder.take(EXAMPLES));
            }
        }
        report.duplicate_examples.truncate(EXAMPLES);
        report.out_of_order_examples.truncate(EXAMPLES);
        report.unacked_received = all_received
            .iter()
            .filter(|s| !id_of.contains_key(s))
            .count();

        // Applications: once and in order.
        for ((client, room), seqs) in &state.app {
            report.delivered += seqs.len() as u64;
            let (duplicates, disorder) = anomalies(seqs.iter().copied());
            report.app_duplicates += duplicates.len();
            report.app_out_of_order += disorder.len();
            for (seq, after) in disorder.into_iter().take(EXAMPLES) {
                report.out_of_order_examples.push(Anomaly {
                    client: client.clone(),
                    socket: None,
                    room: room.clone(),
                    seq,
                    after,
                });
            }
        }

        // Members: every acked message after their join point.
        for ((client, room), since) in &state.members {
            let Some(acked) = by_room.get(room) else {
                continue;
            };
            let owed: Vec<u64> = acked.range(since + 1..).copied().collect();
            report.expected += owed.len() as u64;
            let got = received.get(&(client.as_str(), room.as_str()));
            let app: HashSet<u64> = state
                .app
                .get(&(client.clone(), room.clone()))
                .map(|v| v.iter().copied().collect())
                .unwrap_or_default();
            for seq in owed {
                let miss = || Miss {
                    client: client.clone(),
                    room: room.clone(),
                    seq,
                };
                if !got.is_some_and(|g| g.contains(&seq)) {
                    report.lost += 1;
                    if report.lost_examples.len() < EXAMPLES {
                        report.lost_examples.push(miss());
                    }
                }
                if !app.contains(&seq) {
                    report.app_lost += 1;
                    if report.app_lost_examples.len() < EXAMPLES {
                        report.app_lost_examples.push(miss());
                    }
                }
            }
        }

        if let Some(rows) = db {
            let stored: HashMap<u64, Uuid> = rows.iter().map(|r| (r.seq, r.id)).collect();
            let mut check = DbCheck {
                rows: rows.len(),
                ..DbCheck::default()
            };
            let mut missing: Vec<u64> = seq_of
                .iter()
                .filter(|(id, seq)| stored.get(seq) != Some(id))
                .map(|(_, seq)| *seq)
                .collect();
            missing.sort_unstable();
            check.missing = missing;
            let mut unacked: Vec<u64> = rows
                .iter()
                .filter(|r| seq_of.get(&r.id) != Some(&r.seq))
                .map(|r| r.seq)
                .collect();
            unacked.sort_unstable();
            check.unacked = unacked;
            report.db = Some(check);
        }
        report
    }
}

/// Acked seqs per room.
fn acked_by_room(state: &State) -> HashMap<String, BTreeSet<u64>> {
    let mut by_room: HashMap<String, BTreeSet<u64>> = HashMap::new();
    for (_, room, _, seq) in &state.acks {
        by_room.entry(room.clone()).or_default().insert(*seq);
    }
    by_room
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::User;

    fn message(room: &str, seq: u64) -> Message {
        Message {
            room: room.into(),
            id: Uuid::from_u128(u128::from(seq)),
            seq,
            user: User {
                id: Uuid::nil(),
                username: "u".into(),
            },
            body: String::new(),
            ts: String::new(),
            client_msg_id: format!("c{seq}"),
        }
    }

    fn ack(room: &str, seq: u64) -> Ack {
        Ack {
            room: room.into(),
            client_msg_id: format!("c{seq}"),
            id: Uuid::from_u128(u128::from(seq)),
            seq,
            ts: String::new(),
        }
    }

    #[test]
    fn a_clean_run_passes() {
        let checker = Checker::new();
        let s = SocketId(9001);
        checker.socket_opened("ann", s);
        checker.member_since("ann", "r", 0);
        for seq in [1, 2, 3] {
            checker.acked("bob", SocketId(9002), &ack("r", seq));
            checker.received("ann", s, &message("r", seq), Via::Live);
            checker.delivered("ann", &message("r", seq));
        }
        let rows: Vec<DbMessage> = [1, 2, 3]
            .into_iter()
            .map(|seq| DbMessage {
                seq,
                id: Uuid::from_u128(seq.into()),
            })
            .collect();
        let report = checker.report(Some(&rows));
        assert!(report.passed(), "{report}\n{:?}", report.failures());
        assert_eq!((report.acked, report.expected, report.delivered), (3, 3, 3));
        assert_eq!(checker.outstanding(), 0);
    }

    #[test]
    fn losses_duplicates_disorder_and_database_gaps_are_reported() {
        let checker = Checker::new();
        let (a, b) = (SocketId(9101), SocketId(9102));
        checker.socket_opened("ann", a);
        checker.socket_opened("ann", b);
        checker.member_since("ann", "r", 1);
        for seq in 1..=5 {
            checker.acked("bob", SocketId(9103), &ack("r", seq));
        }
        // seq 1 is before the join point: not owed. 2 arrives twice on socket a, 4
        // before 3 on socket b, 5 never.
        for seq in [2, 2] {
            checker.received("ann", a, &message("r", seq), Via::Live);
        }
        for seq in [4, 3] {
            checker.received("ann", b, &message("r", seq), Via::Recovered);
        }
        // A catch-up replay overlapping the live feed is not a duplicate.
        checker.received("ann", b, &message("r", 4), Via::CatchUp);
        for seq in [2, 4, 3] {
            checker.delivered("ann", &message("r", seq));
        }
        let rows = [DbMessage {
            seq: 9,
            id: Uuid::from_u128(9),
        }];
        let report = checker.report(Some(&rows));
        assert_eq!(report.expected, 4);
        assert_eq!(report.lost, 1);
        assert_eq!(report.lost_examples[0].seq, 5);
        assert_eq!(report.app_lost, 1);
        assert_eq!(report.duplicates, 1);
        assert_eq!(report.out_of_order, 1);
        assert_eq!(report.app_out_of_order, 1);
        let db = report.db.clone().expect("db");
        assert_eq!(db.missing, vec![1, 2, 3, 4, 5]);
        assert_eq!(db.unacked, vec![9]);
        assert_eq!(report.failures().len(), 6, "{:?}", report.failures());
        assert_eq!(checker.outstanding(), 1);
    }

    #[test]
    fn one_message_acked_with_two_seqs_is_a_conflict() {
        let checker = Checker::new();
        checker.acked("ann", SocketId(9201), &ack("r", 1));
        let mut again = ack("r", 2);
        again.id = Uuid::from_u128(1);
        checker.acked("ann", SocketId(9202), &again);
        let report = checker.report(None);
        assert_eq!(report.acked, 1);
        assert_eq!(report.ack_conflicts.len(), 1, "{:?}", report.ack_conflicts);
    }
}
