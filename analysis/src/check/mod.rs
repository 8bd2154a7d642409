//! The checkers: pure functions from a run's [`History`] to [`Violation`]s, one family per
//! file. Each violation names its typed [`Rule`], the history records involved (0-based) and
//! a sentence a person can act on. [`TABLE`] lists every check that needs only the history,
//! with the rules it holds the history to; [`all`] runs them in that order.
//!
//! - [`raft`]: S12 Raft safety, S15 durability, L6 followers catch up;
//! - [`holders`]: S1 exclusivity, S4, S5, S7, S8, S9 (beliefs and expiries);
//! - [`expiry`]: L3 on time (a dead member's key, around stalls);
//! - [`fencing`]: S10 fencing, S11 actions within belief (a warning);
//! - [`linearizable`]: S13, S14, S16 (storage), S3, S6 through [`crate::lin`];
//! - [`watch`]: S16 watches and callbacks;
//! - [`liveness`]: the runner's recorded checks (L1, L2, L3, L5, S17, users' `eventually`)
//!   and L4 calls return.

use crate::history::{History, Record};
use serde::{Deserialize, Serialize};
pub use tenure_core::rule::{self, Rule, RuleKind, S13_UNKNOWN, S17 as S17_HEALTH};

pub mod expiry;
pub mod fencing;
pub mod holders;
pub mod linearizable;
pub mod liveness;
pub mod raft;
#[cfg(test)]
pub(crate) mod testing;
pub mod watch;

pub use expiry::{dead_members_expire_on_time, stall_intervals, EXPIRY_SLACK};
pub use fencing::{actions_within_belief, fencing};
pub use holders::{
    belief_intervals, exclusivity, extensions, grants_to_live_leases, lock_delay, no_early_expiry,
    token_order, BeliefInterval,
};
pub use linearizable::{
    honest_answers, lin_findings, linearizability, owner_deletes, storage_versions,
};
pub use liveness::{calls_return, failed_checks};
pub use raft::{durability, followers_catch_up, invocations, raft_safety, CATCH_UP};
pub use watch::watch_order;

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The rule (DESIGN.md's `S12 one leader per term`, or a user's); serialized as its name.
    pub rule: Rule,
    /// The history records involved (0-based positions).
    pub records: Vec<usize>,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} (records {:?})",
            self.rule, self.message, self.records
        )
    }
}

fn at(r: &Record) -> String {
    format!("{} at {} us", r.node, r.t_us)
}

/// Splits findings into violations and warnings by their rule's kind: an undecided
/// linearizability check ([`S13_UNKNOWN`]), S11 and a user's warning rules are warnings.
pub fn split_warnings(found: Vec<Violation>) -> (Vec<Violation>, Vec<Violation>) {
    found
        .into_iter()
        .partition(|v| v.rule.kind() != RuleKind::Warning)
}

/// A history being checked, with what several checks read from it (its calls paired into
/// operations) worked out once.
pub struct Checking<'h> {
    pub history: &'h History,
    paired: std::cell::OnceCell<linearizable::Paired>,
}

impl<'h> Checking<'h> {
    pub fn new(history: &'h History) -> Checking<'h> {
        Checking {
            history,
            paired: std::cell::OnceCell::new(),
        }
    }

    fn paired(&self) -> &linearizable::Paired {
        self.paired
            .get_or_init(|| linearizable::paired(self.history))
    }
}

/// One check of [`TABLE`]: the rules it can report, and the check.
pub struct Check {
    pub name: &'static str,
    pub rules: &'static [Rule],
    pub run: fn(&Checking) -> Vec<Violation>,
}

use tenure_core::rule as r;

/// Every check that needs only the history, in the order [`all`] runs them. (S11, expected
/// to break under pauses, is [`actions_within_belief`]'s, run on its own; S4, S8 and L3 on
/// time need a run's settings.)
pub const TABLE: &[Check] = &[
    Check {
        name: "raft_safety",
        rules: &[
            r::S12_ONE_LEADER,
            r::S12_STATE_MACHINE,
            r::S12_COMPLETENESS,
            r::S12_TERM,
            r::S12_VOTE,
        ],
        run: |c| raft_safety(c.history),
    },
    Check {
        name: "durability",
        rules: &[r::S15],
        run: |c| durability(c.history),
    },
    Check {
        name: "followers_catch_up",
        rules: &[r::L6],
        run: |c| followers_catch_up(c.history),
    },
    Check {
        name: "exclusivity",
        rules: &[r::S1],
        run: |c| exclusivity(c.history),
    },
    Check {
        name: "fencing",
        rules: &[r::S10],
        run: |c| fencing(c.history),
    },
    Check {
        name: "token_order",
        rules: &[r::S9],
        run: |c| token_order(c.history),
    },
    Check {
        name: "extensions",
        rules: &[r::S5],
        run: |c| extensions(c.history),
    },
    Check {
        name: "failed_checks",
        rules: &[r::L1, r::L2, r::L3_TEMP_KEYS, r::L5, r::S17],
        run: |c| failed_checks(c.history),
    },
    Check {
        name: "linearizability",
        rules: &[r::S13, r::S13_UNKNOWN],
        run: |c| linearizable::linearizability_in(c.history, c.paired()),
    },
    Check {
        name: "kv_calls",
        rules: &[r::S13, r::S13_UNKNOWN],
        run: |c| linearizable::kv_calls_in(c.history, c.paired()),
    },
    Check {
        name: "storage_versions",
        rules: &[r::S14, r::S16, r::S13_UNKNOWN],
        run: |c| linearizable::storage_versions_in(c.history, c.paired()),
    },
    Check {
        name: "honest_answers",
        rules: &[r::S3, r::S13_UNKNOWN],
        run: |c| linearizable::honest_answers_in(c.history, c.paired()),
    },
    Check {
        name: "owner_deletes",
        rules: &[r::S6, r::S13_UNKNOWN],
        run: |c| linearizable::owner_deletes_in(c.history, c.paired()),
    },
    Check {
        name: "grants_to_live_leases",
        rules: &[r::S7],
        run: |c| grants_to_live_leases(c.history),
    },
    Check {
        name: "watch_order",
        rules: &[r::S16],
        run: |c| watch_order(c.history),
    },
    Check {
        name: "calls_return",
        rules: &[r::L4],
        run: |c| calls_return(c.history),
    },
];

/// Every check of [`TABLE`] on `h`, in order.
pub fn all(h: &History) -> Vec<Violation> {
    let c = Checking::new(h);
    TABLE.iter().flat_map(|check| (check.run)(&c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_a_check_reports_is_in_the_table() {
        // The rules the table names are built-in ones, and every built-in rule a history-only
        // check can report is named by some entry.
        let named: Vec<&Rule> = TABLE.iter().flat_map(|c| c.rules).collect();
        for rule in named.iter() {
            assert!(rule::BUILTIN.contains(rule), "{rule}");
        }
        let names: Vec<&str> = TABLE.iter().map(|c| c.name).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "a check named twice");
    }
}
