//! Liveness: the runner's end-of-run checks as recorded (L1 liveness, L2 acquirable, L3 temp
//! keys, L5 watchers, S17 health, and users' `eventually` checks) and L4 (every call of a
//! living process returns).

use super::*;
use crate::history::{Event, History};
use std::collections::{BTreeMap, BTreeSet};
use tenure_core::rule::{self, Rule, RuleKind};

/// L1 (and the runner's other end-of-run checks): every `Check` record that failed.
pub fn failed_checks(h: &History) -> Vec<Violation> {
    h.records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match &r.event {
            Event::Check {
                name,
                ok: false,
                detail,
            } => Some(Violation {
                rule: match name.as_str() {
                    "health" => rule::S17,
                    "watchers" => rule::L5,
                    "acquirable" => rule::L2,
                    "temp keys" => rule::L3_TEMP_KEYS,
                    "liveness" => rule::L1,
                    // A user's `eventually` check records its rule's name.
                    other => Rule::from_name(other, RuleKind::Liveness),
                },
                records: vec![i],
                message: format!("{detail} ({})", at(r)),
            }),
            _ => None,
        })
        .collect()
}

/// How recent a user process's call may be and still be pending when a run ends: user
/// processes run until the run stops them, so a call they made in its last moments cannot
/// be judged.
pub const USER_CALL_GRACE_US: u64 = 5_000_000;

/// L4: blocked calls return: every operation a process invoked completed by the end of the
/// run, unless the process was killed (`kill_process`, `restart_process`) while it was
/// pending, or it is a user process's call made in the run's last
/// [`USER_CALL_GRACE_US`].
pub fn calls_return(h: &History) -> Vec<Violation> {
    let users = super::linearizable::user_processes(h);
    let end = h.records.last().map_or(0, |r| r.t_us);
    let mut pending: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    let mut killed = BTreeSet::new();
    for (i, r) in h.records.iter().enumerate() {
        match &r.event {
            Event::Invoke { process, op, .. } => {
                pending.insert((*process, *op), i);
            }
            Event::Complete { process, op, .. } => {
                pending.remove(&(*process, *op));
            }
            Event::Fault {
                fault:
                    crate::faults::Fault::KillProcess { process }
                    | crate::faults::Fault::RestartProcess { process },
            } => {
                killed.insert(*process);
            }
            _ => {}
        }
    }
    pending
        .into_iter()
        .filter(|((process, _), _)| !killed.contains(process))
        .filter(|((process, _), i)| {
            !users.contains(process) || h.records[*i].t_us + USER_CALL_GRACE_US < end
        })
        .map(|((process, _), i)| {
            let r = &h.records[i];
            let f = match &r.event {
                Event::Invoke { f, key, .. } => format!("{f} {key}"),
                _ => String::new(),
            };
            Violation {
                rule: rule::L4,
                records: vec![i],
                message: format!(
                    "process {process}'s {f} ({}) never returned, and the process was not killed",
                    at(r)
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::*;
    use crate::history::Completion;

    #[test]
    fn every_call_of_a_living_process_returns() {
        let mut records = vec![
            rec(1, "client-1", invoke(1, "read", "/r/0", json!(null))),
            rec(2, "client-1", complete(1, Completion::Ok, json!(null))),
            rec(
                3,
                "client-1",
                invoke(2, "block_until_released", "/lease/app", json!(null)),
            ),
        ];
        let h = History {
            records: records.clone(),
        };
        assert_eq!(rules(&h), vec!["L4 calls return"]);
        // Unless the process was killed.
        records.push(rec(
            4,
            "nemesis",
            Event::Fault {
                fault: crate::faults::Fault::KillProcess { process: 1 },
            },
        ));
        assert!(rules(&History { records }).is_empty());
    }

    #[test]
    fn a_failed_liveness_check_is_a_violation() {
        let h = History {
            records: vec![rec(
                9,
                "runner",
                Event::Check {
                    name: "liveness".into(),
                    ok: false,
                    detail: "no leader".into(),
                },
            )],
        };
        assert_eq!(rules(&h), vec!["L1 liveness"]);
        let h = History {
            records: vec![rec(
                9,
                "runner",
                Event::Check {
                    name: "health".into(),
                    ok: false,
                    detail: "agent 3 redirects to None, not to the leader 1".into(),
                },
            )],
        };
        assert_eq!(rules(&h), vec!["S17 health"]);
        let (violations, warnings) = split_warnings(all(&h));
        assert_eq!(violations.len(), 1);
        assert!(warnings.is_empty());
    }
}
