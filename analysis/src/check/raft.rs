//! Raft's rules, from the agents' own records: S12 (one leader per term, state-machine
//! safety, leader completeness, term and vote never going back) and S15 (every acknowledged
//! write in the final read).

use super::*;
use crate::history::{Completion, Event, History};
use serde_json::Value;
use std::collections::BTreeMap;
use tenure_core::raft::{Index, NodeId, Term};
use tenure_core::rule;
use tenure_core::Key;

/// S12: at most one leader per term; the same index applies the same entry on every agent
/// (state-machine safety, which log matching implies for committed entries); a new leader's
/// log reaches every index applied anywhere before its election (leader completeness, by
/// length); and term and vote never go back, neither while running nor across a crash.
pub fn raft_safety(h: &History) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut leaders: BTreeMap<Term, (NodeId, usize)> = BTreeMap::new();
    let mut applied: BTreeMap<Index, (Term, &str, usize)> = BTreeMap::new();
    let mut states: BTreeMap<Index, (&str, usize)> = BTreeMap::new();
    let mut max_applied: Option<(Index, usize)> = None;
    // Per agent: the last term and vote it synced, and where.
    let mut hard: BTreeMap<NodeId, (Term, Option<NodeId>, usize)> = BTreeMap::new();
    let recs = &h.records;
    for (i, r) in recs.iter().enumerate() {
        match &r.event {
            Event::Role {
                agent,
                role,
                term,
                last_index,
                ..
            } if role == "leader" => {
                match leaders.get(term) {
                    Some(&(other, j)) if other != *agent => out.push(Violation {
                        rule: rule::S12_ONE_LEADER,
                        records: vec![j, i],
                        message: format!(
                            "agents {other} ({}) and {agent} ({}) both lead term {term}",
                            at(&recs[j]),
                            at(r)
                        ),
                    }),
                    Some(_) => {}
                    None => {
                        leaders.insert(*term, (*agent, i));
                    }
                }
                if let Some((idx, j)) = max_applied {
                    if *last_index < idx {
                        out.push(Violation {
                            rule: rule::S12_COMPLETENESS,
                            records: vec![j, i],
                            message: format!(
                                "agent {agent} became leader of term {term} ({}) with a log of \
                                 {last_index} entries, but index {idx} had already been applied \
                                 ({})",
                                at(r),
                                at(&recs[j])
                            ),
                        });
                    }
                }
            }
            Event::Apply {
                agent,
                index,
                term,
                hash,
            } => {
                match applied.get(index) {
                    Some(&(t, hh, j)) if t != *term || hh != hash => out.push(Violation {
                        rule: rule::S12_STATE_MACHINE,
                        records: vec![j, i],
                        message: format!(
                            "index {index} applied as entry {hh} of term {t} ({}) but agent \
                             {agent} applied entry {hash} of term {term} there ({})",
                            at(&recs[j]),
                            at(r)
                        ),
                    }),
                    Some(_) => {}
                    None => {
                        applied.insert(*index, (*term, hash, i));
                    }
                }
                if max_applied.is_none_or(|(m, _)| *index > m) {
                    max_applied = Some((*index, i));
                }
            }
            Event::Snapshot {
                agent, index, hash, ..
            } => match states.get(index) {
                Some(&(hh, j)) if hh != hash => out.push(Violation {
                    rule: rule::S12_STATE_MACHINE,
                    records: vec![j, i],
                    message: format!(
                        "the store after index {index} was {hh} ({}) but agent {agent}'s is \
                         {hash} ({}): the replicas diverged",
                        at(&recs[j]),
                        at(r)
                    ),
                }),
                Some(_) => {}
                None => {
                    states.insert(*index, (hash, i));
                }
            },
            Event::HardState { agent, term, vote }
            | Event::Restored {
                agent, term, vote, ..
            } => {
                let restored = matches!(r.event, Event::Restored { .. });
                if let Some(&(t, v, j)) = hard.get(agent) {
                    let across = if restored { " across a restart" } else { "" };
                    if *term < t {
                        out.push(Violation {
                            rule: rule::S12_TERM,
                            records: vec![j, i],
                            message: format!(
                                "agent {agent} had synced term {t} ({}) and then has term \
                                 {term}{across} ({})",
                                at(&recs[j]),
                                at(r)
                            ),
                        });
                    } else if *term == t && v.is_some() && *vote != v {
                        out.push(Violation {
                            rule: rule::S12_VOTE,
                            records: vec![j, i],
                            message: format!(
                                "agent {agent} had voted for {v:?} in term {t} ({}) and then \
                                 has vote {vote:?}{across} ({})",
                                at(&recs[j]),
                                at(r)
                            ),
                        });
                    }
                }
                hard.insert(*agent, (*term, *vote, i));
            }
            _ => {}
        }
    }
    out
}

/// Every invoked operation by op id: its record, `f`, key and argument.
pub fn invocations(h: &History) -> BTreeMap<u64, (usize, &str, &str, &Value)> {
    let mut m = BTreeMap::new();
    for (i, r) in h.records.iter().enumerate() {
        if let Event::Invoke {
            op, f, key, value, ..
        } = &r.event
        {
            m.insert(*op, (i, f.as_str(), key.as_str(), value));
        }
    }
    m
}

/// How long after the runner's liveness write every live agent must have applied what was
/// committed by then (heartbeats come every few ticks; a restarted agent may need a
/// snapshot).
pub const CATCH_UP: std::time::Duration = std::time::Duration::from_millis(1_000);

/// L6: followers catch up. Once the healed cluster took the runner's liveness write (its
/// `liveness` check, at true time `t`), every agent alive at the end of the history has
/// applied (or installed a snapshot reaching) the highest index any agent had applied by
/// `t`, provided the history goes on for [`CATCH_UP`] after `t`. A follower that never
/// advances its commit index keeps every safety rule (it serves nothing itself) and breaks
/// this one; found by mutation testing (BENCHMARKS.md).
pub fn followers_catch_up(h: &History) -> Vec<Violation> {
    use crate::faults::Fault;
    let Some((li, live)) = h.records.iter().enumerate().find(
        |(_, r)| matches!(&r.event, Event::Check { name, ok: true, .. } if name == "liveness"),
    ) else {
        return Vec::new();
    };
    let t = live.t_us;
    let end = h.records.last().map_or(0, |r| r.t_us);
    if end < t + CATCH_UP.as_micros() as u64 {
        return Vec::new();
    }
    let mut applied: BTreeMap<NodeId, (Index, usize)> = BTreeMap::new();
    let mut by_then: Index = 0;
    let mut dead: BTreeMap<u64, bool> = BTreeMap::new();
    for (i, r) in h.records.iter().enumerate() {
        let (agent, index) = match &r.event {
            Event::Apply { agent, index, .. } | Event::Snapshot { agent, index, .. } => {
                (*agent, *index)
            }
            Event::Restored { agent, .. } => {
                dead.insert(*agent, false);
                continue;
            }
            // An agent that never applies anything is known by its role.
            Event::Role { agent, .. } => {
                applied.entry(*agent).or_insert((0, i));
                continue;
            }
            Event::Fault {
                fault: Fault::Kill { agent },
            } => {
                dead.insert(*agent, true);
                continue;
            }
            _ => continue,
        };
        let a = applied.entry(agent).or_insert((0, i));
        if index >= a.0 {
            *a = (index, i);
        }
        if r.t_us <= t {
            by_then = by_then.max(index);
        }
    }
    applied
        .iter()
        .filter(|(agent, _)| !dead.get(agent).copied().unwrap_or(false))
        .filter(|(_, (index, _))| *index < by_then)
        .map(|(agent, (index, at))| Violation {
            rule: rule::L6,
            records: vec![li, *at],
            message: format!(
                "agent {agent} applied only up to index {index} by the end ({} us), though \
                 index {by_then} was applied by the liveness write at {t} us, {} ms before",
                end,
                (end - t) / 1000
            ),
        })
        .collect()
}

/// S15: every acknowledged `write` under the key of the history's last successful
/// `read_all` is present in that read with the value written (the workload writes each
/// durability key once). Without such a read, nothing is checked.
pub fn durability(h: &History) -> Vec<Violation> {
    let inv = invocations(h);
    let Some((read_at, prefix, tree)) =
        h.records
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, r)| match &r.event {
                Event::Complete {
                    op,
                    result: Completion::Ok,
                    value,
                    ..
                } => match inv.get(op) {
                    Some(&(_, "read_all", key, _)) => Some((i, key, value)),
                    _ => None,
                },
                _ => None,
            })
    else {
        return Vec::new();
    };
    let Ok(prefix) = Key::parse(prefix) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, r) in h.records.iter().enumerate().take(read_at) {
        let Event::Complete {
            op,
            result: Completion::Ok,
            ..
        } = &r.event
        else {
            continue;
        };
        let Some(&(_, "write", key, value)) = inv.get(op) else {
            continue;
        };
        let Ok(k) = Key::parse(key) else { continue };
        let Some(rest) = k.segments().strip_prefix(prefix.segments()) else {
            continue;
        };
        let found = rest.iter().try_fold(tree, |v, seg| v.get(seg));
        if found != Some(value) {
            out.push(Violation {
                rule: rule::S15,
                records: vec![i, read_at],
                message: format!(
                    "write {key} = {value} was acknowledged ({}) but the final read finds {} \
                     ({})",
                    at(r),
                    found.map_or("nothing".to_string(), |v| v.to_string()),
                    at(&h.records[read_at])
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::*;

    #[test]
    fn followers_must_catch_up_after_the_liveness_write() {
        let live = |t| {
            rec(
                t,
                "runner",
                Event::Check {
                    name: "liveness".into(),
                    ok: true,
                    detail: String::new(),
                },
            )
        };
        let base = [
            rec(1, "agent-1", leader(1, 1, 0)),
            rec(2, "agent-2", leader(2, 2, 0)),
            rec(10, "agent-1", apply(1, 5, 1, "a")),
            live(20),
        ];
        let with = |extra: Vec<Record>| History {
            records: base.iter().cloned().chain(extra).collect(),
        };
        let end = |t| {
            rec(
                t,
                "runner",
                Event::Check {
                    name: "final read".into(),
                    ok: true,
                    detail: String::new(),
                },
            )
        };
        // Agent 2 never applied index 5, and the run went on for 1.5 s.
        let v = followers_catch_up(&with(vec![end(1_500_020)]));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].rule, rule::L6);
        // It caught up; or it was killed and stayed down; or the run ended too soon to tell.
        assert!(followers_catch_up(&with(vec![
            rec(300, "agent-2", apply(2, 5, 1, "a")),
            end(1_500_020)
        ]))
        .is_empty());
        let killed = rec(
            30,
            "nemesis",
            Event::Fault {
                fault: crate::faults::Fault::Kill { agent: 2 },
            },
        );
        assert!(followers_catch_up(&with(vec![killed, end(1_500_020)])).is_empty());
        assert!(followers_catch_up(&with(vec![end(500_000)])).is_empty());
    }

    #[test]
    fn a_clean_raft_history_has_no_violation() {
        let h = History {
            records: vec![
                rec(1, "agent-1", hard(1, 1, Some(1))),
                rec(2, "agent-1", leader(1, 1, 0)),
                rec(3, "agent-1", apply(1, 1, 1, "a")),
                rec(3, "agent-2", apply(2, 1, 1, "a")),
                rec(4, "agent-2", hard(2, 2, Some(2))),
                rec(5, "agent-2", leader(2, 2, 1)),
                rec(
                    6,
                    "agent-1",
                    Event::Restored {
                        agent: 1,
                        term: 1,
                        vote: Some(1),
                        log_len: 1,
                    },
                ),
                rec(7, "agent-1", hard(1, 2, None)),
                rec(8, "agent-1", hard(1, 2, Some(2))),
            ],
        };
        assert_eq!(rules(&h), Vec::<String>::new());
    }

    #[test]
    fn each_raft_rule_is_caught_with_its_records() {
        let two_leaders = History {
            records: vec![
                rec(1, "agent-1", leader(1, 3, 0)),
                rec(2, "agent-2", leader(2, 3, 0)),
            ],
        };
        let v = raft_safety(&two_leaders);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].rule, "S12 one leader per term");
        assert_eq!(v[0].records, vec![0, 1]);
        assert!(
            v[0].message.contains("agents 1 (agent-1 at 1 us) and 2"),
            "{}",
            v[0].message
        );

        let diverged = History {
            records: vec![
                rec(1, "agent-1", apply(1, 4, 2, "x")),
                rec(2, "agent-3", apply(3, 4, 2, "y")),
            ],
        };
        assert_eq!(rules(&diverged), vec!["S12 state-machine safety"]);

        let short_leader = History {
            records: vec![
                rec(1, "agent-1", apply(1, 9, 1, "x")),
                rec(2, "agent-2", leader(2, 2, 5)),
            ],
        };
        assert_eq!(rules(&short_leader), vec!["S12 leader completeness"]);

        let term_back = History {
            records: vec![
                rec(1, "agent-1", hard(1, 4, None)),
                rec(
                    2,
                    "agent-1",
                    Event::Restored {
                        agent: 1,
                        term: 3,
                        vote: None,
                        log_len: 0,
                    },
                ),
            ],
        };
        let v = raft_safety(&term_back);
        assert_eq!(v[0].rule, "S12 term never goes back");
        assert!(v[0].message.contains("across a restart"));

        let double_vote = History {
            records: vec![
                rec(1, "agent-1", hard(1, 4, Some(2))),
                rec(2, "agent-1", hard(1, 4, Some(3))),
            ],
        };
        assert_eq!(
            rules(&double_vote),
            vec!["S12 vote never changes within a term"]
        );
    }

    #[test]
    fn durability_needs_every_acknowledged_write_in_the_final_read() {
        let mut records = vec![
            rec(1, "client-1", invoke(1, "write", "/w/1/0", json!(0))),
            rec(2, "client-1", complete(1, Completion::Ok, json!(0))),
            rec(3, "client-1", invoke(2, "write", "/w/1/1", json!(1))),
            rec(
                4,
                "client-1",
                complete(2, Completion::Info, json!("timeout")),
            ),
            rec(5, "client-1", invoke(3, "write", "/w/1/2", json!(2))),
            rec(6, "client-1", complete(3, Completion::Ok, json!(2))),
            rec(7, "runner", invoke(4, "read_all", "/w", json!(null))),
        ];
        // The unknown write may be missing; the acknowledged ones may not.
        let mut good = records.clone();
        good.push(rec(
            8,
            "runner",
            complete(4, Completion::Ok, json!({"1": {"0": 0, "2": 2}})),
        ));
        assert!(durability(&History { records: good }).is_empty());
        records.push(rec(
            8,
            "runner",
            complete(4, Completion::Ok, json!({"1": {"0": 0}})),
        ));
        let v = durability(&History { records });
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].records, vec![5, 7]);
        assert!(v[0].message.contains("/w/1/2 = 2"), "{}", v[0].message);
    }
}
