//! Holders' rules, from their recorded beliefs and the agents' expiries: S1 exclusivity, S4
//! no early expiry, S5 extensions, S7 grants only to live leases, S8 lock-delay, S9 fencing
//! tokens. (L3 on time, a dead member's key expiring, is in [`super::expiry`].)

use super::*;
use crate::history::{Event, History};
use std::collections::{BTreeMap, BTreeSet};
use tenure_core::rule;

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
                    rule: rule::S1,
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

/// How long after a stalled agent or a slow sync an expiry's commit latency is unknown (the
/// longest stall, with room).
pub(crate) const STALL_WINDOW_US: u64 = 2_000_000;

/// S8: after the lock key `key` expired (its holder died), the next grant of `resource` (a
/// belief with a higher token than the expiry's revision) comes no earlier than `delay` later.
/// Agency time runs no faster than true time while drift stays within the bound, so a
/// lock-delay in agency time is at least as long in true time.
///
/// The expiry is dated by its first application; the agency dates it by the leader's tick
/// that carried it, proposed before that by the tick's commit latency. [`APPLY_SLACK_US`]
/// covers an ordinary commit. Where the latency is unknown the expiry is not judged: first
/// applied within a second of an election (the new leader may have committed ticks a cut-off
/// leader proposed while it still believed it led, carrying the time it spent cut off), or
/// within [`STALL_WINDOW_US`] of a stalled agent or a slow disk sync (the `agent.stall_on_tick`
/// and `agent.slow_fsync` fault points hold commits back).
pub fn lock_delay(
    h: &History,
    key: &str,
    resource: &str,
    delay: std::time::Duration,
) -> Vec<Violation> {
    let mut expiries: BTreeMap<u64, (u64, usize)> = BTreeMap::new();
    let mut grants: BTreeMap<u64, (u64, usize)> = BTreeMap::new();
    let mut unknown: Vec<(u64, u64)> = Vec::new();
    // The network's latency (max one way, ms) from each time on: a commit takes a round trip.
    let mut latency: Vec<(u64, u64)> = vec![(0, 10)];
    for (i, r) in h.records.iter().enumerate() {
        match &r.event {
            Event::Fault {
                fault: crate::faults::Fault::Latency { max_ms, .. },
            } => latency.push((r.t_us, *max_ms)),
            Event::FaultPoint { point, .. } if tenure_core::buggify::stalls_an_agent(point) => {
                unknown.push((r.t_us, STALL_WINDOW_US))
            }
            Event::Role { role, .. } if role == "leader" => unknown.push((r.t_us, 1_000_000)),
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
        if unknown
            .iter()
            .any(|(t, window)| *t <= *t_e && t_e - t <= *window)
        {
            continue;
        }
        let one_way = latency
            .iter()
            .rev()
            .find(|(t, _)| *t <= *t_e)
            .map_or(10, |(_, ms)| *ms);
        if t_g + APPLY_SLACK_US + 2 * one_way.saturating_sub(10) * 1000 < t_e + delay_us {
            out.push(Violation {
                rule: rule::S8,
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
                rule: rule::S9,
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
                    rule: rule::S9,
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
                            rule: rule::S5,
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
                    rule: rule::S4,
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

/// S7: a grant never goes to a holder whose lease is already dead: every write that binds a
/// key to a lease (a lock, a temp key, a leased record) found the lease still granted when it
/// applied (the agents record it; reported once per key and revision). Every agent applies
/// the same write, but one that applies it within a long batch (catching up, or replaying its
/// log after a restart) sees the state after the batch, where a later expiry may already have
/// ended the lease: a write is judged dead only if no agent saw its lease alive.
pub fn grants_to_live_leases(h: &History) -> Vec<Violation> {
    let mut alive_somewhere = BTreeSet::new();
    for r in &h.records {
        if let Event::Bound {
            key,
            revision,
            alive: true,
            ..
        } = &r.event
        {
            alive_somewhere.insert((key.as_str(), *revision));
        }
    }
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
            let k = (key.as_str(), *revision);
            if !alive_somewhere.contains(&k) && seen.insert(k) {
                out.push(Violation {
                    rule: rule::S7,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::*;

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
        // One agent replaying the write in a long batch after a restart sees the later
        // expiry; the others saw the lease alive when they applied it: no grant to a dead
        // lease (seed 44 of swarm-world).
        let h = History {
            records: vec![
                bound(3, true),
                bound(2, true),
                bound(2, false),
                bound(1, false),
            ],
        };
        assert!(rules(&h).is_empty());
    }
}
