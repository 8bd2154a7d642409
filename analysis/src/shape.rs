//! Is a history well formed? What every history tenure writes satisfies, checked before any
//! invariant is: a malformed file (edited, truncated in the middle, concatenated, written by
//! something else) is bad input, exit 2, not a list of rule violations that never happened.
//!
//! - true times never go back from one record to the next;
//! - every node is named;
//! - an operation id is invoked once, by one process, and that process has no other
//!   operation pending (a client runs one call at a time);
//! - a completion ends an operation its process invoked earlier and has not completed yet
//!   (a process killed or restarted leaves its call pending for good).

use crate::history::{Event, History};
use std::collections::BTreeMap;

/// The first way `h` is not a history tenure could have written, naming its line (1-based).
pub fn check(h: &History) -> Result<(), String> {
    // Pending operations: op id -> (process, line); a process's pending op.
    let mut pending: BTreeMap<u64, (u64, usize)> = BTreeMap::new();
    let mut by_process: BTreeMap<u64, u64> = BTreeMap::new();
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    let mut last_t = 0;
    for (i, r) in h.records.iter().enumerate() {
        let line = i + 1;
        if r.t_us < last_t {
            return Err(format!(
                "line {line}: time {} us comes after {last_t} us: records are in the order of true time",
                r.t_us
            ));
        }
        last_t = r.t_us;
        if r.node.trim().is_empty() {
            return Err(format!("line {line}: the record names no node"));
        }
        match &r.event {
            Event::Invoke { process, op, .. } => {
                if let Some(first) = seen.insert(*op, line) {
                    return Err(format!(
                        "line {line}: operation {op} is invoked again (first on line {first}): operation ids are unique"
                    ));
                }
                if let Some(other) = by_process.insert(*process, *op) {
                    let at = pending.get(&other).map_or(0, |p| p.1);
                    return Err(format!(
                        "line {line}: process {process} invokes operation {op} while its operation {other} (line {at}) is pending: a process makes one call at a time"
                    ));
                }
                pending.insert(*op, (*process, line));
            }
            Event::Complete { process, op, .. } => match pending.remove(op) {
                Some((p, _)) if p == *process => {
                    if by_process.get(process) == Some(op) {
                        by_process.remove(process);
                    }
                }
                Some((p, at)) => {
                    return Err(format!(
                        "line {line}: process {process} completes operation {op}, which process {p} invoked (line {at})"
                    ))
                }
                None if seen.contains_key(op) => {
                    return Err(format!(
                        "line {line}: operation {op} completes a second time (invoked on line {})",
                        seen[op]
                    ))
                }
                None => {
                    return Err(format!(
                        "line {line}: operation {op} completes but was never invoked"
                    ))
                }
            },
            // A killed (or restarted) process's next incarnation calls afresh; the call it
            // left pending may still complete (a kill aimed at a process with no node of its
            // own does nothing) or never.
            Event::Fault {
                fault:
                    crate::faults::Fault::KillProcess { process }
                    | crate::faults::Fault::RestartProcess { process },
            } => {
                by_process.remove(process);
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Completion, Record};
    use serde_json::Value;

    fn invoke(t_us: u64, process: u64, op: u64) -> Record {
        Record {
            t_us,
            node: format!("client-{process}"),
            event: Event::Invoke {
                process,
                op,
                f: "read".into(),
                key: "/r/0".into(),
                value: Value::Null,
                local_us: t_us,
            },
        }
    }

    fn complete(t_us: u64, process: u64, op: u64) -> Record {
        Record {
            t_us,
            node: format!("client-{process}"),
            event: Event::Complete {
                process,
                op,
                result: Completion::Ok,
                value: Value::Null,
                local_us: t_us,
            },
        }
    }

    fn says(records: Vec<Record>, what: &str) {
        let e = check(&History { records }).unwrap_err();
        assert!(e.contains(what), "{what:?} not in {e}");
    }

    fn kill(t_us: u64, process: u64) -> Record {
        Record {
            t_us,
            node: "nemesis".into(),
            event: Event::Fault {
                fault: crate::faults::Fault::KillProcess { process },
            },
        }
    }

    #[test]
    fn a_killed_process_calls_afresh_and_its_old_call_may_still_end() {
        // Restarted: a new call while the old one is pending for good.
        check(&History {
            records: vec![
                invoke(1, 1, 1),
                kill(2, 1),
                invoke(3, 1, 2),
                complete(4, 1, 2),
            ],
        })
        .unwrap();
        // A kill that hit no node: the call it interrupted completes after all.
        check(&History {
            records: vec![
                invoke(1, 1, 1),
                kill(2, 1),
                complete(3, 1, 1),
                invoke(4, 1, 2),
            ],
        })
        .unwrap();
        // Both: the old call ends while the new incarnation's is pending.
        check(&History {
            records: vec![
                invoke(1, 1, 1),
                kill(2, 1),
                invoke(3, 1, 2),
                complete(4, 1, 1),
                complete(5, 1, 2),
                invoke(6, 1, 3),
            ],
        })
        .unwrap();
    }

    #[test]
    fn malformed_histories_are_named_by_line() {
        check(&History {
            records: vec![
                invoke(1, 1, 1),
                invoke(2, 2, 2),
                complete(3, 1, 1),
                invoke(4, 1, 3),
            ],
        })
        .unwrap();
        says(vec![complete(1, 1, 1)], "never invoked");
        says(vec![invoke(1, 1, 1), invoke(2, 2, 1)], "invoked again");
        says(vec![invoke(1, 1, 1), invoke(2, 1, 2)], "one call at a time");
        says(
            vec![invoke(1, 1, 1), complete(2, 2, 1)],
            "which process 1 invoked",
        );
        says(
            vec![invoke(1, 1, 1), complete(2, 1, 1), complete(3, 1, 1)],
            "second time",
        );
        says(
            vec![invoke(5, 1, 1), complete(2, 1, 1)],
            "line 2: time 2 us",
        );
        let mut nameless = invoke(1, 1, 1);
        nameless.node = " ".into();
        says(vec![nameless], "names no node");
    }
}
