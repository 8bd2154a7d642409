//! An abstract coverage signal of one run, read from its history: what `tenure explore`
//! steers by and what `sweep` reports as explored.
//!
//! Code coverage says little about a distributed system: the same lines run in a healthy
//! cluster and in one where a deposed leader still answers. What matters is which *states*
//! the run reached and *under which faults* (Mallory's observation, CCS'23; moonpool's and
//! Antithesis's `sometimes` points). So a feature is a short string naming an abstract event
//! and the fault just before it:
//!
//! - an agent's role transition (`role follower>candidate`), a leader elected with a log that
//!   ends in an older term, a restart from a non-empty disk, a snapshot taken or installed;
//! - a holder's belief transition per kind of resource (`belief lock: none>held`,
//!   `held>held` for a renewal, `held>none`), an expiry per kind of key, a grant bound to a
//!   lease, a fenced write accepted or refused;
//! - how each kind of operation ended (`op lock info`), a watch resumed from a revision, a
//!   user's `sometimes` point, a fault after another kind of fault;
//! - AFL-style buckets of counts (leader terms, expiries, refused fenced writes, indeterminate
//!   operations, snapshots installed, fault points fired): reaching 4-7 leader terms for the
//!   first time is new coverage even though each term looks alike.
//!
//! The context is the kind of the last fault or fault point within [`CONTEXT_US`] before the
//! event (not the set of them: their combinations are so many that nearly every run would
//! look new, and a signal that never levels off steers nothing). Features are kept in a
//! `BTreeSet`, so the signal and everything steered by it are deterministic.

use crate::history::{Completion, Event, History};
use std::collections::{BTreeMap, BTreeSet};

/// The features one run reached.
pub type Coverage = BTreeSet<String>;

/// How far back a fault counts as the context of an event (true time).
pub const CONTEXT_US: u64 = 2_000_000;

/// The coverage of `h`, with the run's fault points (name -> times fired), if any.
pub fn of(h: &History, fired: &BTreeMap<String, u64>) -> Coverage {
    let mut out = Coverage::new();
    let mut recent: Vec<(u64, &'static str)> = Vec::new();
    let mut roles: BTreeMap<u64, String> = BTreeMap::new();
    let mut beliefs: BTreeMap<(u64, String), bool> = BTreeMap::new();
    let mut ops: BTreeMap<u64, String> = BTreeMap::new();
    let mut terms = BTreeSet::new();
    let (mut expiries, mut refused, mut info, mut installed) = (0u64, 0u64, 0u64, 0u64);
    let mut last_fault: Option<&'static str> = None;
    for r in &h.records {
        recent.retain(|(t, _)| r.t_us.saturating_sub(*t) <= CONTEXT_US);
        // The context: the last fault (or fault point) within the window. The whole set of
        // them would make nearly every run new (their combinations are many), and a signal
        // that never plateaus steers nothing.
        let context = || match recent.last() {
            Some((_, k)) => format!(" | {k}"),
            None => String::new(),
        };
        let mut add = |feature: String| {
            out.insert(format!("{feature}{}", context()));
        };
        match &r.event {
            Event::Role {
                agent,
                role,
                term,
                last_term,
                ..
            } => {
                let before = roles.insert(*agent, role.clone()).unwrap_or_default();
                if before != *role {
                    add(format!("role {before}>{role}"));
                }
                if role == "leader" {
                    terms.insert(*term);
                    if *last_term + 1 < *term {
                        add("leader elected with a log from an older term".into());
                    }
                }
            }
            Event::Restored { log_len, vote, .. } => add(format!(
                "restored log={} vote={}",
                *log_len > 0,
                vote.is_some()
            )),
            Event::Snapshot { installed: i, .. } => {
                installed += u64::from(*i);
                add(format!("snapshot installed={i}"));
            }
            Event::Expire { key, .. } => {
                expiries += 1;
                add(format!("expire {}", key_kind(key)));
            }
            Event::Bound { key, alive, .. } => {
                add(format!("bound {} alive={alive}", key_kind(key)))
            }
            Event::Belief {
                process,
                resource,
                until_us,
                ..
            } => {
                let kind = resource.split(':').next().unwrap_or("").to_string();
                let held = until_us.is_some();
                let before = beliefs.insert((*process, resource.clone()), held);
                let name = |h: Option<bool>| match h {
                    Some(true) => "held",
                    _ => "none",
                };
                add(format!(
                    "belief {kind}: {}>{}",
                    name(before),
                    name(Some(held))
                ));
            }
            Event::Fenced { accepted, .. } => {
                refused += u64::from(!accepted);
                add(format!("fenced accepted={accepted}"));
            }
            Event::Invoke { op, f, .. } => {
                ops.insert(*op, f.clone());
            }
            Event::Complete { op, result, .. } => {
                let f = ops.remove(op).unwrap_or_default();
                info += u64::from(*result == Completion::Info);
                let result = match result {
                    Completion::Ok => "ok",
                    Completion::Fail => "fail",
                    Completion::Info => "info",
                };
                add(format!("op {f} {result}"));
            }
            Event::WatchStart { stream, from, .. } => {
                add(format!("watch {stream} from-revision={}", *from > 0))
            }
            Event::Sometimes { point, .. } => add(format!("sometimes {point}")),
            Event::Check { name, ok, .. } => add(format!("check {name} ok={ok}")),
            Event::FaultPoint { point, .. } => {
                let name = tenure_core::buggify::find(point).map_or("point", |p| p.name);
                add(format!("fault point {name}"));
                recent.push((r.t_us, name));
            }
            Event::Fault { fault } => {
                let kind = fault.kind();
                add(format!(
                    "fault {kind} after {}",
                    last_fault.unwrap_or("none")
                ));
                last_fault = Some(kind);
                recent.push((r.t_us, kind));
            }
            _ => {}
        }
    }
    let counts = [
        ("leader terms", terms.len() as u64),
        ("expiries", expiries),
        ("refused fenced writes", refused),
        ("indeterminate operations", info),
        ("snapshots installed", installed),
    ];
    for (what, n) in counts {
        out.insert(format!("count {what} {}", bucket(n)));
    }
    for (point, n) in fired {
        out.insert(format!("fault point {point} fired {}", bucket(*n)));
    }
    out
}

/// The kind of a key: its first path segment (`/locks/0` -> `locks`).
fn key_kind(key: &str) -> &str {
    key.trim_start_matches('/').split('/').next().unwrap_or("")
}

/// AFL's hit-count buckets: 0, 1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+.
pub fn bucket(n: u64) -> &'static str {
    match n {
        0 => "0",
        1 => "1",
        2 => "2",
        3 => "3",
        4..=7 => "4-7",
        8..=15 => "8-15",
        16..=31 => "16-31",
        32..=127 => "32-127",
        _ => "128+",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Fault;
    use crate::history::Record;

    fn rec(t_us: u64, event: Event) -> Record {
        Record {
            t_us,
            node: "n".into(),
            event,
        }
    }

    fn role(t_us: u64, agent: u64, role: &str) -> Record {
        rec(
            t_us,
            Event::Role {
                agent,
                role: role.into(),
                term: 1,
                leader: None,
                last_index: 0,
                last_term: 0,
            },
        )
    }

    #[test]
    fn a_transition_is_named_with_the_faults_just_before_it() {
        let h = History {
            records: vec![
                role(0, 1, "follower"),
                rec(1_000, Event::Fault { fault: Fault::Heal }),
                role(2_000, 1, "candidate"),
                role(5_000_000, 1, "leader"),
            ],
        };
        let c = of(&h, &BTreeMap::new());
        assert!(c.contains("role >follower"), "{c:?}");
        assert!(c.contains("role follower>candidate | heal"), "{c:?}");
        // Three seconds later the heal is no longer its context.
        assert!(c.contains("role candidate>leader"), "{c:?}");
        assert!(c.contains("count leader terms 1"), "{c:?}");
        assert!(c.contains("fault heal after none"), "{c:?}");
    }

    #[test]
    fn counts_fall_into_buckets_and_fault_points_count() {
        assert_eq!(bucket(5), "4-7");
        assert_eq!(bucket(200), "128+");
        let fired = BTreeMap::from([("agent.slow_fsync".to_string(), 9)]);
        let c = of(&History::default(), &fired);
        assert!(
            c.contains("fault point agent.slow_fsync fired 8-15"),
            "{c:?}"
        );
        assert!(c.contains("count expiries 0"));
    }

    #[test]
    fn the_same_history_gives_the_same_coverage() {
        let h = History {
            records: vec![role(0, 1, "follower"), role(10, 2, "leader")],
        };
        assert_eq!(of(&h, &BTreeMap::new()), of(&h.clone(), &BTreeMap::new()));
    }
}
