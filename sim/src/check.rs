//! First checks over a run's [`History`]: Raft safety (S12), durability of acknowledged
//! writes (S15) and liveness after the faults heal (L1). Each check is a pure function from a
//! history to violations; a violation names its rule, the history lines involved (0-based
//! record numbers) and a sentence a person can act on. Fuller checkers come later.

use crate::history::{Completion, Event, History, Record};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use tenure_core::raft::{Index, NodeId, Term};
use tenure_core::Key;

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The rule, as DESIGN.md names it (`S12 one leader per term`, ...).
    pub rule: String,
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
                        rule: "S12 one leader per term".into(),
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
                            rule: "S12 leader completeness".into(),
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
                        rule: "S12 state-machine safety".into(),
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
                    rule: "S12 state-machine safety".into(),
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
                            rule: "S12 term never goes back".into(),
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
                            rule: "S12 vote never changes within a term".into(),
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
                rule: "S15 durability".into(),
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
                    "health" => S17_HEALTH.to_string(),
                    "watchers" => "L5 watchers".to_string(),
                    "acquirable" => "L2 acquirable".to_string(),
                    "temp keys" => "L3 temp keys".to_string(),
                    _ => format!("L1 {name}"),
                },
                records: vec![i],
                message: format!("{detail} ({})", at(r)),
            }),
            _ => None,
        })
        .collect()
}

/// S16 for watches: each watcher, from each start revision, receives every change the agents
/// applied under the watched key after it, in revision order, with no gap and no duplicate,
/// each with the version the agents left (changes as the agents recorded them, `Change`).
pub fn watch_order(h: &History) -> Vec<Violation> {
    // The committed changes, by revision (every agent records its own applies).
    let mut truth: BTreeMap<u64, (&str, u64, usize)> = BTreeMap::new();
    for (i, r) in h.records.iter().enumerate() {
        if let Event::Change {
            key,
            revision,
            version,
            ..
        } = &r.event
        {
            truth
                .entry(*revision)
                .or_insert((key.as_str(), *version, i));
        }
    }
    // Per watcher and stream: where it started, and the last revision it received.
    let mut watches: BTreeMap<(u64, &str), (&str, u64, u64)> = BTreeMap::new();
    let mut out = Vec::new();
    let report = |out: &mut Vec<Violation>, records: Vec<usize>, message: String| {
        out.push(Violation {
            rule: "S16 watches".into(),
            records,
            message,
        })
    };
    for (i, r) in h.records.iter().enumerate() {
        match &r.event {
            Event::WatchStart {
                process,
                stream,
                key,
                from,
            } => {
                watches.insert((*process, stream), (key.as_str(), *from, *from));
            }
            Event::Watched {
                process,
                stream,
                key,
                revision,
                version,
            } => {
                let Some((watched, from, last)) = watches.get_mut(&(*process, stream.as_str()))
                else {
                    report(
                        &mut out,
                        vec![i],
                        format!("watcher {process}'s {stream} received {key}@{revision} before it started ({})", at(r)),
                    );
                    continue;
                };
                if *revision <= *last {
                    report(
                        &mut out,
                        vec![i],
                        format!(
                            "watcher {process}'s {stream} received {key}@{revision} after revision {last}: {} ({})",
                            if revision == last { "a duplicate" } else { "out of order" },
                            at(r)
                        ),
                    );
                    continue;
                }
                let watched_key = Key::parse(watched).ok();
                let missed: Vec<u64> = truth
                    .range(*last + 1..*revision)
                    .filter(|(_, (k, _, _))| {
                        let k = Key::parse(k).ok();
                        matches!((&k, &watched_key), (Some(k), Some(w)) if k.starts_with(w))
                    })
                    .map(|(rev, _)| *rev)
                    .collect();
                if let Some(first) = missed.first() {
                    let (k, _, j) = truth[first];
                    report(
                        &mut out,
                        vec![truth[first].2, i],
                        format!(
                            "watcher {process}'s {stream} (of {watched} after revision {from}) missed {} change(s), first {k}@{first} (record {j}), and received {key}@{revision} next ({})",
                            missed.len(),
                            at(r)
                        ),
                    );
                }
                match truth.get(revision) {
                    Some((k, v, j)) if (*k, *v) != (key.as_str(), *version) => report(
                        &mut out,
                        vec![*j, i],
                        format!(
                            "watcher {process}'s {stream} received {key}@{revision} at version {version}, but the agents applied {k} at version {v} there ({})",
                            at(r)
                        ),
                    ),
                    None => report(
                        &mut out,
                        vec![i],
                        format!(
                            "watcher {process}'s {stream} received {key}@{revision}, a change no agent applied ({})",
                            at(r)
                        ),
                    ),
                    _ => {}
                }
                *last = *revision;
            }
            _ => {}
        }
    }
    out
}

/// L4: blocked calls return: every operation a process invoked completed by the end of the
/// run, unless the process was killed for good (`kill_process`) while it was pending.
pub fn calls_return(h: &History) -> Vec<Violation> {
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
                fault: crate::nemesis::Fault::KillProcess { process },
            } => {
                killed.insert(*process);
            }
            _ => {}
        }
    }
    pending
        .into_iter()
        .filter(|((process, _), _)| !killed.contains(process))
        .map(|((process, _), i)| {
            let r = &h.records[i];
            let f = match &r.event {
                Event::Invoke { f, key, .. } => format!("{f} {key}"),
                _ => String::new(),
            };
            Violation {
                rule: "L4 calls return".into(),
                records: vec![i],
                message: format!(
                    "process {process}'s {f} ({}) never returned, and the process was not killed",
                    at(r)
                ),
            }
        })
        .collect()
}

/// One continuous belief of one holder in one grant, in true time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BeliefInterval {
    pub resource: String,
    pub process: u64,
    pub token: u64,
    pub from_us: u64,
    pub until_us: u64,
    /// The record that began it.
    pub record: usize,
}

/// The belief intervals of every holder: a grant or renewal at true time `t` believing until
/// `u` gives `[t, u)` (joined to the previous one if that had not ended yet); an end of
/// belief at `t` cuts the open interval there.
pub fn belief_intervals(h: &History) -> Vec<BeliefInterval> {
    let mut open: BTreeMap<(String, u64), BeliefInterval> = BTreeMap::new();
    let mut done = Vec::new();
    for (i, r) in h.records.iter().enumerate() {
        let Event::Belief {
            process,
            resource,
            token,
            until_us,
            ..
        } = &r.event
        else {
            continue;
        };
        let k = (resource.clone(), *process);
        match until_us {
            Some(u) => {
                match open.remove(&k) {
                    Some(mut b) if b.token == *token && b.until_us > r.t_us => {
                        b.until_us = b.until_us.max(*u);
                        open.insert(k, b);
                        continue;
                    }
                    Some(b) => done.push(b),
                    None => {}
                }
                open.insert(
                    k,
                    BeliefInterval {
                        resource: resource.clone(),
                        process: *process,
                        token: *token,
                        from_us: r.t_us,
                        until_us: *u,
                        record: i,
                    },
                );
            }
            None => {
                if let Some(mut b) = open.remove(&k) {
                    b.until_us = b.until_us.min(r.t_us);
                    done.push(b);
                }
            }
        }
    }
    done.extend(open.into_values());
    done.retain(|b| b.until_us > b.from_us);
    done.sort_by(|a, b| {
        (a.resource.as_str(), a.from_us, a.process).cmp(&(
            b.resource.as_str(),
            b.from_us,
            b.process,
        ))
    });
    done
}

/// S1: belief intervals of different holders of one lock, lease or service never overlap in
/// true time.
pub fn exclusivity(h: &History) -> Vec<Violation> {
    let beliefs = belief_intervals(h);
    let mut out = Vec::new();
    let mut active: Vec<&BeliefInterval> = Vec::new();
    for b in &beliefs {
        active.retain(|a| a.resource == b.resource && a.until_us > b.from_us);
        for a in &active {
            if a.process != b.process {
                out.push(Violation {
                    rule: "S1 exclusivity".into(),
                    records: vec![a.record, b.record],
                    message: format!(
                        "process {} believed it held {} (token {}) from {} us until {} us, and \
                         process {} believed it held it (token {}) from {} us: {} us of overlap",
                        a.process,
                        a.resource,
                        a.token,
                        a.from_us,
                        a.until_us,
                        b.process,
                        b.token,
                        b.from_us,
                        a.until_us.min(b.until_us) - b.from_us
                    ),
                });
            }
        }
        active.push(b);
    }
    out
}

/// How far apart agents may apply the same expiry (the first to record it may not be the
/// leader that committed it).
const APPLY_SLACK_US: u64 = 50_000;

/// S8: after the lock key `key` expired (its holder died), the next grant of `resource` (a
/// belief with a higher token than the expiry's revision) comes no earlier than `delay` later.
/// Agency time runs no faster than true time while drift stays within the bound, so a
/// lock-delay in agency time is at least as long in true time.
pub fn lock_delay(
    h: &History,
    key: &str,
    resource: &str,
    delay: std::time::Duration,
) -> Vec<Violation> {
    let mut expiries: BTreeMap<u64, (u64, usize)> = BTreeMap::new();
    let mut grants: BTreeMap<u64, (u64, usize)> = BTreeMap::new();
    for (i, r) in h.records.iter().enumerate() {
        match &r.event {
            Event::Expire {
                key: k, revision, ..
            } if k == key => {
                expiries.entry(*revision).or_insert((r.t_us, i));
            }
            Event::Belief {
                resource: res,
                token,
                until_us: Some(_),
                ..
            } if res == resource => {
                grants.entry(*token).or_insert((r.t_us, i));
            }
            _ => {}
        }
    }
    let delay_us = delay.as_micros() as u64;
    let mut out = Vec::new();
    for (rev, (t_e, i)) in &expiries {
        let Some((token, (t_g, j))) = grants.range(rev + 1..).next() else {
            continue;
        };
        if t_g + APPLY_SLACK_US < t_e + delay_us {
            out.push(Violation {
                rule: "S8 lock-delay".into(),
                records: vec![*i, *j],
                message: format!(
                    "{key} expired at revision {rev} ({}) and {resource} was granted again \
                     (token {token}) {} ms later ({}), within the lock-delay of {} ms",
                    at(&h.records[*i]),
                    t_g.saturating_sub(*t_e) / 1000,
                    at(&h.records[*j]),
                    delay.as_millis()
                ),
            });
        }
    }
    out
}

/// S9: fencing tokens strictly increase in grant order: per resource, grants (the first belief
/// in each token) in the order they were believed carry strictly increasing tokens, and no
/// token is believed by two processes.
pub fn token_order(h: &History) -> Vec<Violation> {
    let beliefs = belief_intervals(h);
    let mut out = Vec::new();
    // resource -> token -> (first interval)
    let mut grants: BTreeMap<&str, BTreeMap<u64, &BeliefInterval>> = BTreeMap::new();
    for b in &beliefs {
        let first = grants
            .entry(&b.resource)
            .or_default()
            .entry(b.token)
            .or_insert(b);
        if first.process != b.process {
            out.push(Violation {
                rule: "S9 fencing tokens".into(),
                records: vec![first.record, b.record],
                message: format!(
                    "token {} of {} was believed by process {} (from {} us) and by process {} (from {} us): one grant, two holders",
                    b.token, b.resource, first.process, first.from_us, b.process, b.from_us
                ),
            });
        }
    }
    for (resource, by_token) in grants {
        let mut order: Vec<&&BeliefInterval> = by_token.values().collect();
        order.sort_by_key(|b| (b.from_us, b.token));
        for w in order.windows(2) {
            if w[1].token <= w[0].token {
                out.push(Violation {
                    rule: "S9 fencing tokens".into(),
                    records: vec![w[0].record, w[1].record],
                    message: format!(
                        "{resource} was granted to process {} with token {} (from {} us) after process {} held token {} (from {} us): tokens must grow with every grant",
                        w[1].process, w[1].token, w[1].from_us, w[0].process, w[0].token, w[0].from_us
                    ),
                });
            }
        }
    }
    out
}

/// S5: extensions never shorten a lease: within one grant (process, resource, token), every
/// renewal's local deadline is at least the one before, until the holder lets go.
pub fn extensions(h: &History) -> Vec<Violation> {
    let mut last: BTreeMap<(u64, &str, u64), (u64, usize)> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, r) in h.records.iter().enumerate() {
        let Event::Belief {
            process,
            resource,
            token,
            until_local_us,
            ..
        } = &r.event
        else {
            continue;
        };
        let k = (*process, resource.as_str(), *token);
        match until_local_us {
            Some(u) => {
                if let Some(&(before, j)) = last.get(&k) {
                    if *u < before {
                        out.push(Violation {
                            rule: "S5 extensions".into(),
                            records: vec![j, i],
                            message: format!(
                                "process {process}'s hold of {resource} (token {token}) ran to local {before} us, and a renewal at {} cut it to local {u} us",
                                r.t_us
                            ),
                        });
                    }
                }
                last.insert(k, (*u, i));
            }
            None => {
                last.remove(&k);
            }
        }
    }
    out
}

/// S4: no early expiry: when the agency expires `key` (a lock, lease or leadership key; each
/// paired with the `resource` its holders believe in), no holder of that resource still
/// believes it holds it. The expiry is timed by its first application (at or after commit).
pub fn no_early_expiry(h: &History, keys: &[(&str, &str)]) -> Vec<Violation> {
    let beliefs = belief_intervals(h);
    let mut seen: BTreeMap<(&str, u64), ()> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, r) in h.records.iter().enumerate() {
        let Event::Expire { key, revision, .. } = &r.event else {
            continue;
        };
        if seen.insert((key.as_str(), *revision), ()).is_some() {
            continue;
        }
        for &(_, resource) in keys.iter().filter(|(k, _)| *k == key) {
            for b in beliefs
                .iter()
                .filter(|b| b.resource == resource && b.from_us < r.t_us && r.t_us < b.until_us)
            {
                out.push(Violation {
                    rule: "S4 no early expiry".into(),
                    records: vec![b.record, i],
                    message: format!(
                        "{key} expired at revision {revision} ({}) while process {} still believed it held {resource} (token {}) until {} us: {} us too early",
                        at(r),
                        b.process,
                        b.token,
                        b.until_us,
                        b.until_us - r.t_us
                    ),
                });
            }
        }
    }
    out
}

/// Slack for [`dead_members_expire_on_time`]: an agency tick (50 ms of leader time), the
/// commit of the `Tick` and its first application, with room to spare.
pub const EXPIRY_SLACK: std::time::Duration = std::time::Duration::from_millis(300);

/// L3 on time, while faults go on: a member killed for good at true time `k` has its temp key
/// (`/kv/member-<process>`, bound to its session lease of TTL `ttl`) expired by
/// `k + ttl / (1 - rho)^2 + (the time in between without a leader) + EXPIRY_SLACK`: agency time
/// runs at `1 - rho` of a leader's clock, which itself runs at least `1 - rho` of true time,
/// and stops only while there is no leader. Checked only when no fault could stall agency
/// time while a leader exists (a partition, clog, loss, slow link, paused agent or clock
/// fault skips it; L3 after the heal still applies); kills and restarts of agents, and faults
/// of clients, are fine.
pub fn dead_members_expire_on_time(
    h: &History,
    ttl: std::time::Duration,
    rho: f64,
) -> Vec<Violation> {
    use crate::nemesis::Fault;
    let stalls = |f: &Fault| match f {
        Fault::Partition { .. }
        | Fault::Clog { .. }
        | Fault::Pause { .. }
        | Fault::Clock { .. }
        | Fault::PauseLeader
        | Fault::IsolateLeader => true,
        Fault::Loss { rate } => *rate > 0.0,
        // The lift back to the default network is no fault.
        Fault::Latency { max_ms, .. } => *max_ms > 10,
        Fault::Delay { max_ms, .. } => *max_ms > 0,
        _ => false,
    };
    // Stretches of true time with no agent leading (a killed leader leads no more).
    let mut leaders = BTreeSet::new();
    let mut since = Some(0u64);
    let mut leaderless: Vec<(u64, u64)> = Vec::new();
    let mut killed = Vec::new();
    for (i, r) in h.records.iter().enumerate() {
        match &r.event {
            Event::Fault { fault } if stalls(fault) => return Vec::new(),
            Event::Fault {
                fault: Fault::KillProcess { process },
            } => killed.push((*process, r.t_us, i)),
            Event::Fault {
                fault: Fault::Kill { agent },
            } => {
                leaders.remove(agent);
            }
            Event::Role { agent, role, .. } => {
                if role == "leader" {
                    leaders.insert(*agent);
                } else {
                    leaders.remove(agent);
                }
            }
            _ => continue,
        }
        match (leaders.is_empty(), since) {
            (true, None) => since = Some(r.t_us),
            (false, Some(s)) => {
                leaderless.push((s, r.t_us));
                since = None;
            }
            _ => {}
        }
    }
    if let Some(s) = since {
        leaderless.push((s, u64::MAX));
    }
    let without_leader = |a: u64, b: u64| -> u64 {
        leaderless
            .iter()
            .map(|&(s, e)| e.min(b).saturating_sub(s.max(a)))
            .sum()
    };
    let allowance = (ttl.as_secs_f64() / ((1.0 - rho) * (1.0 - rho)) * 1e6) as u64
        + EXPIRY_SLACK.as_micros() as u64;
    let mut out = Vec::new();
    for (process, k, fi) in killed {
        let key = format!("/kv/member-{process}");
        let Some((ei, e)) = h
            .records
            .iter()
            .enumerate()
            .find_map(|(i, r)| match &r.event {
                Event::Expire { key: x, .. } if *x == key && r.t_us >= k => Some((i, r)),
                _ => None,
            })
        else {
            continue;
        };
        let gap = without_leader(k, e.t_us);
        let bound = k + allowance + gap;
        if e.t_us > bound {
            out.push(Violation {
                rule: "L3 expiry on time".into(),
                records: vec![fi, ei],
                message: format!(
                    "member process {process} died at {k} us and its temp key {key} expired only at {} us ({}): {} us after the bound of {} us (TTL {} ms through the drift bound, {} us without a leader, {} ms of slack)",
                    e.t_us,
                    at(e),
                    e.t_us - bound,
                    bound,
                    ttl.as_millis(),
                    gap,
                    EXPIRY_SLACK.as_millis()
                ),
            });
        }
    }
    out
}

/// S10: a fenced resource never accepts a lower token after a higher one.
pub fn fencing(h: &History) -> Vec<Violation> {
    let mut highest: BTreeMap<&str, (u64, usize)> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, r) in h.records.iter().enumerate() {
        if let Event::Fenced {
            resource,
            token,
            accepted: true,
            process,
            ..
        } = &r.event
        {
            match highest.get(resource.as_str()) {
                Some(&(hi, j)) if *token < hi => out.push(Violation {
                    rule: "S10 fencing".into(),
                    records: vec![j, i],
                    message: format!(
                        "{resource} accepted token {token} from process {process} ({}) after \
                         accepting token {hi} ({})",
                        at(r),
                        at(&h.records[j])
                    ),
                }),
                _ => {
                    highest.insert(resource, (*token, i));
                }
            }
        }
    }
    out
}

/// S11 (expected to break under pauses; fencing is the defence): every `fenced_write` a
/// process invokes happens inside its belief interval for the token it carries.
pub fn actions_within_belief(h: &History) -> Vec<Violation> {
    let beliefs = belief_intervals(h);
    let mut out = Vec::new();
    for (i, r) in h.records.iter().enumerate() {
        let Event::Invoke {
            process, f, value, ..
        } = &r.event
        else {
            continue;
        };
        if f != "fenced_write" {
            continue;
        }
        let Some(token) = value.get("token").and_then(Value::as_u64) else {
            continue;
        };
        let inside = beliefs.iter().any(|b| {
            b.process == *process && b.token == token && b.from_us <= r.t_us && r.t_us < b.until_us
        });
        if !inside {
            out.push(Violation {
                rule: "S11 action within belief".into(),
                records: vec![i],
                message: format!(
                    "process {process} wrote with token {token} at {} us, outside its belief \
                     in that grant (a pause between its check and its write?)",
                    r.t_us
                ),
            });
        }
    }
    out
}

/// The linearizability budget inside a run: search steps only, so the answer is the same on
/// every machine.
const LINEARIZABILITY_STEPS: u64 = 20_000_000;

/// S13: the KV clients' `read`, `write` and `cas` of each key are linearizable (a register per
/// key; indeterminate outcomes may take effect any time after their call or never). A key the
/// budget could not decide is reported under the rule [`S13_UNKNOWN`] (the runner lists those
/// as warnings, not violations).
pub fn linearizability(h: &History) -> Vec<Violation> {
    linearizability_in(h, &paired(h))
}

fn linearizability_in(h: &History, paired: &Paired) -> Vec<Violation> {
    use crate::lin::models::Register;
    linearizable(
        h,
        paired,
        &Register::default(),
        |r| !r.key.as_deref().unwrap_or("").starts_with("/storage/"),
        |_| "S13 linearizability",
    )
}

/// S14 and S16 on Storage records (keys under `/storage/`): `create`, `storage_get`,
/// `cas_by_version` and `wait_for_version_change` are linearizable against versioned storage:
/// versions are consecutive per record incarnation, no two compare-and-sets succeed on one
/// version, a failed one changes nothing, and a wait never returns while the version is the
/// one it waited on (S16). Expiries of records are operations of the system.
pub fn storage_versions(h: &History) -> Vec<Violation> {
    storage_versions_in(h, &paired(h))
}

fn storage_versions_in(h: &History, paired: &Paired) -> Vec<Violation> {
    use crate::lin::models::Storage;
    linearizable(
        h,
        paired,
        &Storage,
        |r| r.key.as_deref().unwrap_or("").starts_with("/storage/"),
        |op| {
            if op.starts_with("wait_for_version_change") {
                "S16 watches"
            } else {
                "S14 compare-and-set by version"
            }
        },
    )
}

/// S3 honest answers, on the lease and leadership keys (under `/lease/`): every recorded
/// `claim` (granted a token, or `"denied"`), token `check` (`true`/`false`) and wait for
/// vacancy is linearizable against a lease per key whose expiries are the system's
/// operations. So a denied claim saw another holder during the call, a check that passed saw
/// the holder, a grant found the lease free (or the claimant holding it under that token), and
/// a wait returned while nobody held it.
pub fn honest_answers(h: &History) -> Vec<Violation> {
    honest_answers_in(h, &paired(h))
}

fn honest_answers_in(h: &History, paired: &Paired) -> Vec<Violation> {
    use crate::lin::models::Lease;
    linearizable(
        h,
        paired,
        &Lease,
        |r| r.key.as_deref().unwrap_or("").starts_with("/lease/"),
        |_| "S3 honest answers",
    )
}

/// S6 only the owner (or expiry) deletes a lock key, on the lock keys (under `/locks/`, and
/// hmetcd's distributed lock `/kv/hbtd_dist_lock`): every recorded `lock`, `unlock`,
/// `dist_timed_lock` and `dist_unlock` is linearizable against a mutex whose expiries are the
/// system's operations. An unlock that succeeded while another process held the lock (the
/// key of someone else's grant deleted), or a grant while the lock was held, cannot be placed.
pub fn owner_deletes(h: &History) -> Vec<Violation> {
    owner_deletes_in(h, &paired(h))
}

fn owner_deletes_in(h: &History, paired: &Paired) -> Vec<Violation> {
    use crate::lin::models::Mutex;
    linearizable(
        h,
        paired,
        &Mutex,
        |r| {
            let k = r.key.as_deref().unwrap_or("");
            k.starts_with("/locks/") || k == "/kv/hbtd_dist_lock"
        },
        |_| "S6 only the owner deletes",
    )
}

/// S7: a grant never goes to a holder whose lease is already dead: every write that binds a
/// key to a lease (a lock, a temp key, a leased record) found the lease still granted when it
/// applied (the agents record it; reported once per key and revision).
pub fn grants_to_live_leases(h: &History) -> Vec<Violation> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, r) in h.records.iter().enumerate() {
        if let Event::Bound {
            key,
            revision,
            lease,
            alive: false,
            ..
        } = &r.event
        {
            if seen.insert((key.as_str(), *revision)) {
                out.push(Violation {
                    rule: "S7 grant to a dead lease".into(),
                    records: vec![i],
                    message: format!(
                        "{key} was bound to lease {lease} at revision {revision} ({}), after the lease had ended",
                        at(r)
                    ),
                });
            }
        }
    }
    out
}

/// A history's client calls paired into operations (failed calls left out), or why they
/// cannot be: read once for the four linearizability checks.
type Paired = Result<Vec<crate::lin::input::RawOp>, crate::lin::input::InputError>;

fn paired(h: &History) -> Paired {
    use crate::lin::input;
    input::pair(&input::from_history(h)).map(|(raw, _failed)| raw)
}

fn linearizable<M: crate::lin::input::FromRaw>(
    h: &History,
    paired: &Paired,
    model: &M,
    keep: impl Fn(&crate::lin::input::RawOp) -> bool,
    rule: impl Fn(&str) -> &'static str,
) -> Vec<Violation> {
    use crate::lin::{input, Budget};
    let name = rule("");
    let checked = paired.as_ref().map_err(Clone::clone).and_then(|all| {
        let raw: Vec<input::RawOp> = all.iter().filter(|r| keep(r)).cloned().collect();
        let (ops, _skipped) = input::operations(model, &raw)?;
        let budget = Budget {
            max_steps: Some(LINEARIZABILITY_STEPS),
            max_time: None,
        };
        Ok(crate::lin::check(model, &ops, budget))
    });
    let checked = match checked {
        Ok(c) => c,
        Err(e) => {
            return vec![Violation {
                rule: name.into(),
                records: vec![e.line.saturating_sub(1)],
                message: format!(
                    "the history's operations do not read as {}: {}",
                    model.name(),
                    e.message
                ),
            }]
        }
    };
    let (mut out, undecided) = lin_findings(
        &checked,
        rule,
        |keys| keys.join(", "),
        |line| (line - 1, format!("; {}", at(&h.records[line - 1]))),
    );
    out.extend(undecided);
    out
}

/// What a linearizability check found, as violations (per part that cannot be linearized: its
/// first operation that cannot be placed, under the rule `rule` gives for that operation's
/// description) and warnings (per part the budget left undecided, [`S13_UNKNOWN`]).
/// `keys` shows a part's keys; `locate` turns the history line of an operation into the
/// index reported in `records` and a note on where it happened.
pub fn lin_findings(
    checked: &crate::lin::Checked,
    rule: impl Fn(&str) -> &'static str,
    keys: impl Fn(&[String]) -> String,
    locate: impl Fn(usize) -> (usize, String),
) -> (Vec<Violation>, Vec<Violation>) {
    let violations = checked
        .failures()
        .map(|(part, f)| {
            let (record, note) = locate(f.source);
            Violation {
                rule: rule(&f.operation).into(),
                records: vec![record],
                message: format!(
                    "on {}: {} ({} operations of that part{note})",
                    keys(&part.keys),
                    f.message,
                    part.ops
                ),
            }
        })
        .collect();
    let undecided = checked
        .parts
        .iter()
        .filter(|p| p.verdict == crate::lin::Verdict::Unknown)
        .map(|p| Violation {
            rule: S13_UNKNOWN.into(),
            records: Vec::new(),
            message: format!(
                "{} {} operations on {} were not decided within the search budget ({} steps)",
                p.ops,
                checked.model,
                keys(&p.keys),
                p.steps
            ),
        })
        .collect();
    (violations, undecided)
}

/// Splits findings into violations and warnings: an undecided linearizability check
/// ([`S13_UNKNOWN`]) is a warning, everything else a violation.
pub fn split_warnings(found: Vec<Violation>) -> (Vec<Violation>, Vec<Violation>) {
    found.into_iter().partition(|v| v.rule != S13_UNKNOWN)
}

/// Whether the rule named `rule` (`S1 exclusivity`) is the one a user named as `given`: its
/// id (`S1`), or its whole name. Never a prefix: `S1` is not `S10`.
pub fn rule_matches(rule: &str, given: &str) -> bool {
    let given = given.trim();
    rule == given || rule.split_whitespace().next() == Some(given)
}

/// The rule of the health check.
pub const S17_HEALTH: &str = "S17 health";

/// The rule of a linearizability check the budget could not decide.
pub const S13_UNKNOWN: &str = "S13 linearizability unknown";

/// Every check of this module that must hold (S11, expected to break under pauses, is
/// reported on its own by [`actions_within_belief`]).
pub fn all(h: &History) -> Vec<Violation> {
    let mut v = raft_safety(h);
    v.extend(durability(h));
    v.extend(exclusivity(h));
    v.extend(fencing(h));
    v.extend(token_order(h));
    v.extend(extensions(h));
    v.extend(failed_checks(h));
    let paired = paired(h);
    v.extend(linearizability_in(h, &paired));
    v.extend(storage_versions_in(h, &paired));
    v.extend(honest_answers_in(h, &paired));
    v.extend(owner_deletes_in(h, &paired));
    v.extend(grants_to_live_leases(h));
    v.extend(watch_order(h));
    v.extend(calls_return(h));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_is_named_by_its_id_or_its_name_never_a_prefix() {
        assert!(rule_matches("S1 exclusivity", "S1"));
        assert!(rule_matches("S1 exclusivity", "S1 exclusivity"));
        assert!(!rule_matches("S10 fencing", "S1"));
        assert!(!rule_matches("S1 exclusivity", "S1 excl"));
        assert!(rule_matches("S12 one leader per term", "S12"));
        assert!(!rule_matches("S12 one leader per term", ""));
    }
    use serde_json::json;

    fn rec(t_us: u64, node: &str, event: Event) -> Record {
        Record {
            t_us,
            node: node.into(),
            event,
        }
    }

    fn leader(agent: NodeId, term: Term, last_index: Index) -> Event {
        Event::Role {
            agent,
            role: "leader".into(),
            term,
            leader: Some(agent),
            last_index,
            last_term: term,
        }
    }

    fn apply(agent: NodeId, index: Index, term: Term, hash: &str) -> Event {
        Event::Apply {
            agent,
            index,
            term,
            hash: hash.into(),
        }
    }

    fn hard(agent: NodeId, term: Term, vote: Option<NodeId>) -> Event {
        Event::HardState { agent, term, vote }
    }

    fn rules(h: &History) -> Vec<String> {
        all(h).into_iter().map(|v| v.rule).collect()
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

    fn invoke(op: u64, f: &str, key: &str, value: serde_json::Value) -> Event {
        Event::Invoke {
            process: 1,
            op,
            f: f.into(),
            key: key.into(),
            value,
            local_us: 0,
        }
    }

    fn complete(op: u64, result: Completion, value: serde_json::Value) -> Event {
        Event::Complete {
            process: 1,
            op,
            result,
            value,
            local_us: 0,
        }
    }

    /// Records of one operation of `process`: its call at `t` and its completion at `t + 1`.
    fn op_at(t: u64, process: u64, op: u64, f: &str, out: serde_json::Value) -> [Record; 2] {
        op_on("/lease/svc", t, process, op, f, out)
    }

    fn op_on(
        key: &str,
        t: u64,
        process: u64,
        op: u64,
        f: &str,
        out: serde_json::Value,
    ) -> [Record; 2] {
        let node = format!("leaser-{process}");
        [
            rec(
                t,
                &node,
                Event::Invoke {
                    process,
                    op,
                    f: f.into(),
                    key: key.into(),
                    value: json!(null),
                    local_us: 0,
                },
            ),
            rec(
                t + 1,
                &node,
                Event::Complete {
                    process,
                    op,
                    result: Completion::Ok,
                    value: out,
                    local_us: 0,
                },
            ),
        ]
    }

    fn expire_at(t: u64, revision: u64) -> Record {
        expire_of("/lease/svc", t, revision)
    }

    fn expire_of(key: &str, t: u64, revision: u64) -> Record {
        rec(
            t,
            "agent-1",
            Event::Expire {
                agent: 1,
                key: key.into(),
                revision,
            },
        )
    }

    #[test]
    fn watchers_get_every_change_in_order_once() {
        let change = |t, agent, key: &str, revision, version| {
            rec(
                t,
                &format!("agent-{agent}"),
                Event::Change {
                    agent,
                    key: key.into(),
                    revision,
                    version,
                },
            )
        };
        let got = |t, key: &str, revision, version| {
            rec(
                t,
                "watcher-1",
                Event::Watched {
                    process: 9,
                    stream: "watch".into(),
                    key: key.into(),
                    revision,
                    version,
                },
            )
        };
        let start = |t, from| {
            rec(
                t,
                "watcher-1",
                Event::WatchStart {
                    process: 9,
                    stream: "watch".into(),
                    key: "/r".into(),
                    from,
                },
            )
        };
        // Changes at 4 (before the start), 6, 7, 9; two agents record each.
        let mut truth = Vec::new();
        for agent in [1, 2] {
            truth.extend([
                change(1, agent, "/r/0", 4, 1),
                change(2, agent, "/r/1", 6, 1),
                change(3, agent, "/r/0", 7, 2),
                change(4, agent, "/r/0", 9, 0),
            ]);
        }
        let h = |seen: Vec<Record>| {
            let mut records = truth.clone();
            records.push(start(5, 5));
            records.extend(seen);
            History { records }
        };
        let good = h(vec![
            got(6, "/r/1", 6, 1),
            got(7, "/r/0", 7, 2),
            got(8, "/r/0", 9, 0),
        ]);
        assert!(rules(&good).is_empty(), "{:?}", all(&good));
        // A restart (as after `Compacted`) may skip what lies before its new start.
        let restarted = h(vec![
            got(6, "/r/1", 6, 1),
            start(7, 8),
            got(8, "/r/0", 9, 0),
        ]);
        assert!(rules(&restarted).is_empty(), "{:?}", all(&restarted));
        for (what, seen) in [
            ("a gap", vec![got(6, "/r/1", 6, 1), got(8, "/r/0", 9, 0)]),
            (
                "a duplicate",
                vec![
                    got(6, "/r/1", 6, 1),
                    got(7, "/r/0", 7, 2),
                    got(7, "/r/0", 7, 2),
                ],
            ),
            (
                "out of order",
                vec![got(6, "/r/0", 7, 2), got(7, "/r/1", 6, 1)],
            ),
            ("a wrong version", vec![got(6, "/r/1", 6, 3)]),
            (
                "a change nobody applied",
                vec![got(6, "/r/1", 6, 1), got(7, "/r/2", 8, 1)],
            ),
        ] {
            let v = watch_order(&h(seen.clone()));
            let mut found = rules(&h(seen));
            found.dedup();
            assert_eq!(found, vec!["S16 watches"], "{what}: {v:?}");
        }
        // L5: the runner's failed catch-up check.
        let h = History {
            records: vec![rec(
                9,
                "runner",
                Event::Check {
                    name: "watchers".into(),
                    ok: false,
                    detail: "watchers [9] did not receive revision 12 within 5s".into(),
                },
            )],
        };
        assert_eq!(rules(&h), vec!["L5 watchers"]);
    }

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
                fault: crate::nemesis::Fault::KillProcess { process: 1 },
            },
        ));
        assert!(rules(&History { records }).is_empty());
    }

    #[test]
    fn a_grant_to_a_dead_lease_is_caught_once() {
        let bound = |agent, alive| {
            rec(
                5,
                &format!("agent-{agent}"),
                Event::Bound {
                    agent,
                    key: "/kv/hbtd_dist_lock".into(),
                    revision: 12,
                    lease: 7,
                    alive,
                },
            )
        };
        let h = History {
            records: vec![bound(1, true), bound(2, true)],
        };
        assert!(rules(&h).is_empty());
        let h = History {
            records: vec![bound(1, false), bound(2, false), bound(3, false)],
        };
        assert_eq!(rules(&h), vec!["S7 grant to a dead lease"]);
    }

    #[test]
    fn only_the_owner_or_expiry_deletes_a_lock_key() {
        let lock = "/locks/0";
        let history = |extra: Vec<[Record; 2]>| {
            // 1 holds the lock from 10 until its key expires at 40.
            let mut records: Vec<Record> = op_on(lock, 10, 1, 1, "lock", json!(5)).into();
            records.push(expire_of(lock, 40, 8));
            records.extend(extra.into_iter().flatten());
            records.sort_by_key(|r| r.t_us);
            History { records }
        };
        // 1 unlocks its own grant, 2 locks after it; or 2 locks after the expiry; a
        // distributed unlock by a non-holder does nothing.
        for ok in [
            vec![
                op_on(lock, 20, 1, 2, "unlock", json!(null)),
                op_on(lock, 30, 2, 3, "lock", json!(7)),
            ],
            vec![op_on(lock, 50, 2, 3, "lock", json!(9))],
            vec![op_on(lock, 20, 2, 3, "dist_unlock", json!(null))],
        ] {
            let h = history(ok);
            assert!(rules(&h).is_empty(), "{:?}", all(&h));
        }
        // 2's unlock succeeds while 1 holds the lock; 2 is granted it while 1 holds it; a
        // distributed unlock by a non-holder deleted 1's key, and 3 got the lock.
        for bad in [
            vec![op_on(lock, 20, 2, 3, "unlock", json!(null))],
            vec![op_on(lock, 20, 2, 3, "lock", json!(7))],
            vec![
                op_on(lock, 20, 2, 3, "dist_unlock", json!(null)),
                op_on(lock, 25, 3, 4, "lock", json!(7)),
            ],
        ] {
            let h = history(bad);
            assert_eq!(rules(&h), vec!["S6 only the owner deletes"]);
        }
    }

    #[test]
    fn honest_answers_pass_and_each_lie_is_caught() {
        // 1 is granted token 5 and checks it; 2 is denied; the lease expires; 2 waits for
        // vacancy and is granted token 9; 1's check says it no longer holds it.
        let honest: Vec<Record> = [
            op_at(10, 1, 1, "claim", json!(5)),
            op_at(20, 1, 2, "check", json!(true)),
            op_at(30, 2, 3, "claim", json!("denied")),
        ]
        .into_iter()
        .flatten()
        .chain([expire_at(40, 8)])
        .chain(
            [
                op_at(50, 2, 4, "block_until_released", json!(null)),
                op_at(60, 2, 5, "claim", json!(9)),
                op_at(70, 1, 6, "check", json!(false)),
                op_at(80, 1, 7, "claim", json!("denied")),
            ]
            .into_iter()
            .flatten(),
        )
        .collect();
        let h = History {
            records: honest.clone(),
        };
        assert!(honest_answers(&h).is_empty(), "{:?}", honest_answers(&h));
        assert!(all(&h).is_empty(), "{:?}", all(&h));
        // 1 holds token 5 over [11, 40); one operation of another kind at 25 (while held) or
        // 50 (after the expiry). Each lie alone breaks S3 and nothing else.
        let with = |t: u64, process: u64, f: &str, out: serde_json::Value| {
            let mut records: Vec<Record> = op_at(10, 1, 1, "claim", json!(5)).into();
            records.push(expire_at(40, 8));
            records.extend(op_at(t, process, 2, f, out));
            records.sort_by_key(|r| r.t_us);
            History { records }
        };
        for (t, process, f, out) in [
            (25, 2, "check", json!(true)),
            (25, 2, "claim", json!(7)),
            (25, 2, "block_until_released", json!(null)),
            (25, 1, "check", json!(false)),
            (50, 2, "claim", json!("denied")),
            (50, 1, "check", json!(true)),
        ] {
            let h = with(t, process, f, out.clone());
            assert_eq!(
                rules(&h),
                vec!["S3 honest answers"],
                "{f} -> {out} by {process} at {t}"
            );
        }
        // The same operations where they are true.
        for (t, process, f, out) in [
            (25, 2, "claim", json!("denied")),
            (25, 1, "check", json!(true)),
            (50, 2, "claim", json!(7)),
            (50, 2, "block_until_released", json!(null)),
            (50, 1, "check", json!(false)),
        ] {
            assert!(rules(&with(t, process, f, out)).is_empty());
        }
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

    #[test]
    fn a_dead_members_key_must_expire_within_its_ttl_plus_the_leaderless_time() {
        use crate::nemesis::Fault;
        let role = |t, agent, role: &str| {
            rec(
                t,
                "agent",
                Event::Role {
                    agent,
                    role: role.into(),
                    term: 1,
                    leader: None,
                    last_index: 0,
                    last_term: 0,
                },
            )
        };
        let fault = |t, fault| rec(t, "nemesis", Event::Fault { fault });
        let expire = |t| {
            rec(
                t,
                "agent-2",
                Event::Expire {
                    agent: 2,
                    key: "/kv/member-4".into(),
                    revision: 9,
                },
            )
        };
        let ttl = std::time::Duration::from_secs(2);
        // Leader 1 from 0.1 s; member 4 dies at 1 s; leader 1 killed at 1.5 s, agent 2 leads
        // from 2 s: 0.5 s without a leader. Bound: 1 + 2.0406 + 0.5 + 0.3 s = 3.8406 s.
        let base = [
            role(100_000, 1, "leader"),
            fault(1_000_000, Fault::KillProcess { process: 4 }),
            fault(1_500_000, Fault::Kill { agent: 1 }),
            role(2_000_000, 2, "leader"),
        ];
        let with = |extra: Vec<Record>| History {
            records: base.iter().cloned().chain(extra).collect(),
        };
        let late = dead_members_expire_on_time(&with(vec![expire(3_900_000)]), ttl, 0.01);
        assert_eq!(names(late), vec!["L3 expiry on time"]);
        let on_time = dead_members_expire_on_time(&with(vec![expire(3_800_000)]), ttl, 0.01);
        assert!(on_time.is_empty(), "{on_time:?}");
        // A partition may stall agency time under a leader: not checked then.
        let partitioned = with(vec![
            fault(
                1_200_000,
                Fault::Partition {
                    groups: vec![vec![1], vec![2, 3]],
                },
            ),
            expire(9_000_000),
        ]);
        assert!(dead_members_expire_on_time(&partitioned, ttl, 0.01).is_empty());
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

    fn belief(t: u64, process: u64, token: u64, until: Option<u64>) -> Record {
        rec(
            t,
            &format!("client-{process}"),
            Event::Belief {
                process,
                resource: "lock:/l".into(),
                token,
                // The holders' clocks read true time here.
                until_local_us: until,
                until_us: until,
            },
        )
    }

    fn expire(t: u64, revision: u64) -> Record {
        rec(
            t,
            "agent-1",
            Event::Expire {
                agent: 1,
                key: "/l".into(),
                revision,
            },
        )
    }

    fn fenced(t: u64, process: u64, token: u64, accepted: bool) -> Record {
        rec(
            t,
            "resource",
            Event::Fenced {
                process,
                resource: "lock:/l".into(),
                token,
                accepted,
                highest: token,
            },
        )
    }

    fn names(v: Vec<Violation>) -> Vec<String> {
        v.into_iter().map(|v| v.rule).collect()
    }

    /// Process 1 holds token 5 over [10, 100), renews to 150, lets go at 120; the key expires
    /// at 200; process 2 gets token 9 at 260 (after a 50 us lock-delay) until 400.
    fn holders() -> Vec<Record> {
        vec![
            belief(10, 1, 5, Some(100)),
            fenced(20, 1, 5, true),
            belief(50, 1, 5, Some(150)),
            belief(120, 1, 5, None),
            expire(200, 7),
            belief(260, 2, 9, Some(400)),
            fenced(270, 2, 9, true),
            fenced(280, 1, 5, false),
        ]
    }

    #[test]
    fn a_clean_holder_history_passes_every_holder_rule() {
        let h = History { records: holders() };
        assert_eq!(rules(&h), Vec::<String>::new());
        assert!(no_early_expiry(&h, &[("/l", "lock:/l")]).is_empty());
        assert!(lock_delay(&h, "/l", "lock:/l", std::time::Duration::from_micros(50)).is_empty());
        assert!(actions_within_belief(&h).is_empty());
    }

    #[test]
    fn each_holder_rule_is_caught_alone() {
        let with = |edit: &dyn Fn(&mut Vec<Record>)| {
            let mut r = holders();
            edit(&mut r);
            History { records: r }
        };
        // S1: process 2 believes from 110, while process 1 still does (until 120).
        let h = with(&|r| r[5] = belief(110, 2, 9, Some(400)));
        assert_eq!(names(exclusivity(&h)), vec!["S1 exclusivity"]);
        assert_eq!(exclusivity(&h)[0].records, vec![0, 5]);
        // S4: the key expires at 110, inside process 1's belief.
        let h = with(&|r| r[4] = expire(110, 7));
        assert_eq!(
            names(no_early_expiry(&h, &[("/l", "lock:/l")])),
            vec!["S4 no early expiry"]
        );
        assert!(exclusivity(&h).is_empty());
        // S5: the renewal cuts the deadline from 100 to 90.
        let h = with(&|r| r[2] = belief(50, 1, 5, Some(90)));
        assert_eq!(names(extensions(&h)), vec!["S5 extensions"]);
        // S8: granted again 20 us after the expiry, within a 60 ms lock-delay (the check
        // allows 50 ms for agents applying the expiry at different times).
        let h = with(&|r| r[5] = belief(220, 2, 9, Some(400)));
        let v = lock_delay(&h, "/l", "lock:/l", std::time::Duration::from_millis(60));
        assert_eq!(names(v), vec!["S8 lock-delay"]);
        // S9: the later grant carries a lower token; and one token, two holders.
        let h = with(&|r| r[5] = belief(260, 2, 4, Some(400)));
        assert_eq!(names(token_order(&h)), vec!["S9 fencing tokens"]);
        let h = with(&|r| r[5] = belief(260, 2, 5, Some(400)));
        assert_eq!(names(token_order(&h)), vec!["S9 fencing tokens"]);
        // S10: the resource accepts the stale token 5 after 9.
        let h = with(&|r| r[7] = fenced(280, 1, 5, true));
        assert_eq!(names(fencing(&h)), vec!["S10 fencing"]);
        // S11: process 1 writes at 130, after it let go.
        let mut r = holders();
        r.push(rec(
            130,
            "client-1",
            Event::Invoke {
                process: 1,
                op: 1,
                f: "fenced_write".into(),
                key: "/l".into(),
                value: json!({"token": 5}),
                local_us: 130,
            },
        ));
        r.sort_by_key(|r| r.t_us);
        let v = actions_within_belief(&History { records: r });
        assert_eq!(names(v), vec!["S11 action within belief"]);
    }
}
