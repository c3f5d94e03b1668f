//! The figures a fault scenario prints, and its pass criteria: 0 acked messages lost,
//! 0 duplicates per socket, seq order per room kept, every client reconnected (every
//! room joined again) within [`RECONNECT_LIMIT`] of the fault ending and caught up in
//! the end, database rows == acked messages.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

use chatx_client::Stats;
use chatx_client::checker::Report;

use crate::load::LoadTotals;

/// Every client must be back (all rooms re-joined) this long after the fault ended.
pub const RECONNECT_LIMIT: Duration = Duration::from_secs(10);
/// The load a scenario must sustain.
pub const MIN_SENDS_PER_SECOND: f64 = 50.0;
pub const MIN_CLIENTS: usize = 300;

/// How the clients came back after a fault.
#[derive(Debug, Clone, Default)]
pub struct Reconnects {
    /// Clients that lost their socket after the fault started.
    pub clients: usize,
    /// Their outages.
    pub outages: usize,
    /// Outages not over yet.
    pub still_out: usize,
    /// Longest time from the fault's end (or the socket loss, if later) to resumed
    /// (every room joined again on a new socket).
    pub after_fault: Duration,
    /// The same up to caught up (every replay complete).
    pub caught_up_after_fault: Duration,
    /// Outages resumed but with a replay still incomplete.
    pub not_caught_up: usize,
    /// Longest outage (socket lost to resumed).
    pub longest: Duration,
    pub mean: Duration,
}

impl Reconnects {
    pub fn measure(stats: &[Stats], fault_start: Instant, fault_end: Instant) -> Self {
        let mut out = Reconnects::default();
        let mut total = Duration::ZERO;
        for client in stats {
            let outages: Vec<_> = client
                .outages
                .iter()
                .filter(|o| o.lost_at >= fault_start)
                .collect();
            if outages.is_empty() {
                continue;
            }
            out.clients += 1;
            for outage in outages {
                out.outages += 1;
                match outage.resumed_at {
                    Some(resumed) => {
                        let from = outage.lost_at.max(fault_end);
                        out.after_fault =
                            out.after_fault.max(resumed.saturating_duration_since(from));
                        match outage.caught_up_at {
                            Some(done) => {
                                out.caught_up_after_fault = out
                                    .caught_up_after_fault
                                    .max(done.saturating_duration_since(from));
                            }
                            None => out.not_caught_up += 1,
                        }
                        let length = resumed.saturating_duration_since(outage.lost_at);
                        out.longest = out.longest.max(length);
                        total += length;
                    }
                    None => out.still_out += 1,
                }
            }
        }
        let done = out.outages - out.still_out;
        if done > 0 {
            out.mean = total / u32::try_from(done).unwrap_or(u32::MAX);
        }
        out
    }
}

/// Client counters summed over a crowd.
#[derive(Debug, Clone, Default)]
pub struct ClientTotals {
    pub sockets: u64,
    pub reconnects: u64,
    pub resends: u64,
    pub unavailable: u64,
    pub retries: u64,
    pub reconnect_notices: u64,
    pub failed_connects: u64,
    pub catch_up_joins: u64,
    pub refreshes: u64,
    pub relogins: u64,
    pub duplicates_dropped: u64,
    pub close_codes: BTreeMap<u16, u64>,
}

impl ClientTotals {
    pub fn sum(stats: &[Stats]) -> Self {
        let mut out = ClientTotals::default();
        for s in stats {
            out.sockets += s.sockets;
            out.reconnects += s.reconnects;
            out.resends += s.resends;
            out.unavailable += s.unavailable;
            out.retries += s.retries;
            out.reconnect_notices += s.reconnect_notices;
            out.failed_connects += s.failed_connects;
            out.catch_up_joins += s.catch_up_joins;
            out.refreshes += s.refreshes;
            out.relogins += s.relogins;
            out.duplicates_dropped += s.duplicates_dropped;
            for (code, n) in &s.close_codes {
                *out.close_codes.entry(*code).or_default() += n;
            }
        }
        out
    }
}

/// Everything one scenario measured.
pub struct Outcome {
    pub scenario: String,
    pub clients: usize,
    pub load: LoadTotals,
    pub report: Report,
    pub reconnects: Reconnects,
    pub totals: ClientTotals,
    /// Scenario-specific lines (fault timings, RSS, ...).
    pub notes: Vec<String>,
}

impl Outcome {
    /// The printed figures.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let r = &self.report;
        let _ = writeln!(s, "==== scenario: {} ====", self.scenario);
        let _ = writeln!(
            s,
            "clients {} | sends offered {} in {:.1} s = {:.1}/s | acked {} | failed {} | ack latency mean {:?} max {:?}",
            self.clients,
            self.load.offered,
            self.load.offered_for.as_secs_f64(),
            self.load.rate(),
            self.load.acked,
            self.load.failed,
            self.load.mean_ack_latency,
            self.load.max_ack_latency
        );
        let _ = writeln!(
            s,
            "acked (distinct, all clients) {} | delivered to applications {} of {} owed | received on sockets {}",
            r.acked, r.delivered, r.expected, r.received
        );
        let _ = writeln!(
            s,
            "LOST {} (application {}) | DUPLICATES per socket {} (application {}) | OUT OF ORDER {} (application {}) | ack conflicts {}",
            r.lost,
            r.app_lost,
            r.duplicates,
            r.app_duplicates,
            r.out_of_order,
            r.app_out_of_order,
            r.ack_conflicts.len()
        );
        match &r.db {
            Some(db) => {
                let _ = writeln!(
                    s,
                    "DB rows {} vs acked {} | acked missing from DB {} | rows without ack {}",
                    db.rows,
                    r.acked,
                    db.missing.len(),
                    db.unacked.len()
                );
            }
            None => {
                let _ = writeln!(s, "DB rows: not compared");
            }
        }
        let c = &self.reconnects;
        let _ = writeln!(
            s,
            "reconnects: {} clients lost their socket ({} outages, {} still out) | resumed at most {:.2} s after the fault ended, caught up at most {:.2} s after | outage mean {:.2} s, longest {:.2} s",
            c.clients,
            c.outages,
            c.still_out,
            c.after_fault.as_secs_f64(),
            c.caught_up_after_fault.as_secs_f64(),
            c.mean.as_secs_f64(),
            c.longest.as_secs_f64()
        );
        let t = &self.totals;
        let _ = writeln!(
            s,
            "client counters: resends {} | unavailable answers {} | retries {} | reconnect notices {} | failed connects {} | catch-up joins {} | refreshes {} | re-logins {} | duplicates dropped {} | close codes {:?}",
            t.resends,
            t.unavailable,
            t.retries,
            t.reconnect_notices,
            t.failed_connects,
            t.catch_up_joins,
            t.refreshes,
            t.relogins,
            t.duplicates_dropped,
            t.close_codes
        );
        let _ = writeln!(s, "send errors answered by the server: {:?}", r.refused);
        for note in &self.notes {
            let _ = writeln!(s, "{note}");
        }
        s
    }

    /// The pass criteria that failed; empty when the scenario passed.
    pub fn failures(&self) -> Vec<String> {
        let mut out = self.report.failures();
        if self.report.db.is_none() {
            out.push("the database was not compared with the acks".into());
        }
        if self.load.failed > 0 {
            out.push(format!(
                "{} sends failed or stayed unacked: {:?}",
                self.load.failed, self.load.failures
            ));
        }
        if self.clients < MIN_CLIENTS {
            out.push(format!("only {} clients (< {MIN_CLIENTS})", self.clients));
        }
        if self.load.rate() < MIN_SENDS_PER_SECOND {
            out.push(format!(
                "only {:.1} sends/s offered (< {MIN_SENDS_PER_SECOND})",
                self.load.rate()
            ));
        }
        if self.reconnects.still_out > 0 {
            out.push(format!(
                "{} clients never resumed",
                self.reconnects.still_out
            ));
        }
        if self.reconnects.not_caught_up > 0 {
            out.push(format!(
                "{} resumed clients never completed their replay",
                self.reconnects.not_caught_up
            ));
        }
        if self.reconnects.after_fault > RECONNECT_LIMIT {
            out.push(format!(
                "a client resumed {:?} after the fault ended (> {RECONNECT_LIMIT:?})",
                self.reconnects.after_fault
            ));
        }
        out
    }
}
