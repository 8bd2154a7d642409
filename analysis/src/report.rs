//! What a run produced: the [`Report`] (digest, violations, warnings, the schedule carried
//! out, `sometimes` coverage, the history) and its [`Counters`].

use crate::check::Violation;
use crate::faults::{Schedule, Swarm};
use crate::history::{Completion, Event, History};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Figures of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Virtual time the run took, in ms.
    pub virtual_ms: u64,
    pub records: usize,
    pub ops_invoked: usize,
    pub ops_ok: usize,
    pub ops_failed: usize,
    pub ops_indeterminate: usize,
    pub faults: usize,
    /// Terms in which some agent became leader.
    pub leader_terms: usize,
    /// Highest log index applied anywhere.
    pub applied_index: u64,
    pub expiries: usize,
    /// Log compactions, and snapshots installed from a leader.
    pub snapshots: usize,
    pub snapshots_installed: usize,
    pub messages_sent: u64,
    pub messages_delivered: u64,
    /// Belief changes of lock holders, and writes the fenced resource accepted or rejected.
    pub beliefs: usize,
    pub fenced_accepted: usize,
    pub fenced_rejected: usize,
}

/// What a run produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub seed: u64,
    /// SHA-256 of the history's JSON lines.
    pub digest: String,
    pub counters: Counters,
    pub violations: Vec<Violation>,
    /// Findings that are expected under some faults and not failures by themselves: S11,
    /// actions outside a holder's belief (a paused holder writing late), which fencing
    /// must make harmless.
    pub warnings: Vec<Violation>,
    /// The kinds of fault the swarm chose (swarm runs only).
    pub swarm: Option<Swarm>,
    /// The schedule carried out: each step at the true time it happened, faults aimed at the
    /// leader as they were resolved, and the lifts at the end.
    pub schedule: Schedule,
    /// A user world's `sometimes` points: how many times each was reached (declared points
    /// that were not, at zero).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sometimes: BTreeMap<String, u64>,
    /// The world the seed drew, when the run draws its world (its settings and roles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drawn: Option<serde_json::Value>,
    /// The fault points inside the system the run enabled, and how often each fired.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fault_points: BTreeMap<String, u64>,
    #[serde(skip)]
    pub history: History,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// The run's coverage signal ([`crate::coverage`]).
    pub fn coverage(&self) -> crate::coverage::Coverage {
        let mut c = crate::coverage::of(&self.history, &self.fault_points);
        c.extend(
            self.sometimes
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(p, _)| format!("sometimes {p}")),
        );
        c
    }
}

/// The counters of `h`, with the network's message counts (sent, delivered).
pub fn counters(h: &History, (sent, delivered): (u64, u64)) -> Counters {
    let mut c = Counters {
        records: h.records.len(),
        virtual_ms: h.records.last().map_or(0, |r| r.t_us / 1000),
        messages_sent: sent,
        messages_delivered: delivered,
        ..Counters::default()
    };
    let mut terms = std::collections::BTreeSet::new();
    for r in &h.records {
        match &r.event {
            Event::Invoke { .. } => c.ops_invoked += 1,
            Event::Complete { result, .. } => match result {
                Completion::Ok => c.ops_ok += 1,
                Completion::Fail => c.ops_failed += 1,
                Completion::Info => c.ops_indeterminate += 1,
            },
            Event::Fault { .. } => c.faults += 1,
            Event::Role { role, term, .. } if role == "leader" => {
                terms.insert(*term);
            }
            Event::Apply { index, .. } => c.applied_index = c.applied_index.max(*index),
            Event::Expire { .. } => c.expiries += 1,
            Event::Belief { .. } => c.beliefs += 1,
            Event::Fenced { accepted, .. } => {
                if *accepted {
                    c.fenced_accepted += 1
                } else {
                    c.fenced_rejected += 1
                }
            }
            Event::Snapshot { installed, .. } => {
                c.snapshots += 1;
                c.snapshots_installed += usize::from(*installed);
            }
            _ => {}
        }
    }
    c.leader_terms = terms.len();
    c
}
