//! Holders' rules, from their recorded beliefs and the agents' expiries: S1 exclusivity, S4
//! no early expiry, S5 extensions, S7 grants only to live leases, S8 lock-delay, S9 fencing
//! tokens, L3 a dead member's key expiring on time.

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
const STALL_WINDOW_US: u64 = 2_000_000;

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

/// Slack for [`dead_members_expire_on_time`]: an agency tick (50 ms of leader time), the
/// commit of the `Tick` and its first application, with room to spare.
pub const EXPIRY_SLACK: std::time::Duration = std::time::Duration::from_millis(300);

/// Stretches of true time in which some fault could stall agency time while a leader
/// exists: a cut (partition, clog, leader isolated) until the next heal; a paused agent until
/// it resumes; loss or a slow link until set back; a clock jump or a drift
/// beyond `rho` from then on. (A stalled agent or a slow sync, fault points, loses no agency
/// time, which the leader counts from its clock: it only holds a commit back by as long as
/// it lasts; [`dead_members_expire_on_time`] allows for that.)
pub fn stall_intervals(h: &History, rho: f64) -> Vec<(u64, u64)> {
    use crate::faults::Fault;
    let mut out = Vec::new();
    let mut cut: Option<u64> = None;
    let mut loss: Option<u64> = None;
    let mut paused: BTreeMap<u64, u64> = BTreeMap::new();
    let mut delays: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    let end = |since: &mut Option<u64>, t: u64, out: &mut Vec<(u64, u64)>| {
        if let Some(a) = since.take() {
            out.push((a, t));
        }
    };
    for r in &h.records {
        let t = r.t_us;
        let Event::Fault { fault } = &r.event else {
            continue;
        };
        match fault {
            Fault::Partition { .. } | Fault::Clog { .. } | Fault::IsolateLeader => {
                cut.get_or_insert(t);
            }
            Fault::Heal => end(&mut cut, t, &mut out),
            Fault::Pause { agent } => {
                paused.entry(*agent).or_insert(t);
            }
            Fault::Resume { agent } => {
                if let Some(a) = paused.remove(agent) {
                    out.push((a, t));
                }
            }
            Fault::PauseLeader => out.push((t, u64::MAX)),
            Fault::Loss { rate } if *rate > 0.0 => {
                loss.get_or_insert(t);
            }
            Fault::Loss { .. } => end(&mut loss, t, &mut out),
            // A slow network delays commits by its round trip: allowed for, not skipped.
            Fault::Latency { .. } => {}
            Fault::Delay {
                from, to, max_ms, ..
            } if *max_ms > 0 => {
                delays.entry((*from, *to)).or_insert(t);
            }
            Fault::Delay { from, to, .. } => {
                if let Some(a) = delays.remove(&(*from, *to)) {
                    out.push((a, t));
                }
            }
            // Drift within the bound is what the allowance is made for.
            Fault::Clock {
                change: crate::faults::ClockFault::Drift { rate },
                ..
            } if rate.abs() <= rho => {}
            Fault::Clock { .. } => out.push((t, u64::MAX)),
            _ => {}
        }
    }
    let open = [cut, loss]
        .into_iter()
        .flatten()
        .chain(paused.into_values())
        .chain(delays.into_values());
    out.extend(open.map(|a| (a, u64::MAX)));
    out
}

/// Agency time a leader change may lose besides the time without a leader (a tick of 50 ms
/// of leader time and its commit, with room).
const LEADER_CHANGE_LOSS_US: u64 = 100_000;

/// L3 on time, while faults go on: a member killed for good at true time `k` has its temp key
/// (`/kv/member-<process>`, bound to its session lease of TTL `ttl`) expired by
/// `k + ttl / (1 - rho)^2 + (the time in between without a leader) + EXPIRY_SLACK` (and a
/// tick's worth per leader change): agency time runs at `1 - rho` of a leader's clock, which
/// itself runs at least `1 - rho` of true time, and stops only while there is no leader.
/// Judged for each dead member whose wait overlaps no stretch in which a fault could stall
/// agency time while a leader exists ([`stall_intervals`]: a partition, clog, loss, slow link,
/// paused agent, clock jump; L3 after the heal still applies); kills and restarts of agents,
/// and faults of clients, are fine. A stalled agent or slow sync (fault points) in the wait
/// adds its length to the bound, a slow network (latency above 10 ms) a round trip of it.
pub fn dead_members_expire_on_time(
    h: &History,
    ttl: std::time::Duration,
    rho: f64,
) -> Vec<Violation> {
    use crate::faults::Fault;
    let stalled = stall_intervals(h, rho);
    // Stretches of true time with no agent leading (a killed leader leads no more).
    let mut leaders = BTreeSet::new();
    let mut since = Some(0u64);
    let mut leaderless: Vec<(u64, u64)> = Vec::new();
    let mut killed = Vec::new();
    for (i, r) in h.records.iter().enumerate() {
        match &r.event {
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
        // A key already expired before the death (its session lost) has nothing to wait on:
        // a later record of it is an agent replaying its log at a restart.
        let gone_before = h
            .records
            .iter()
            .any(|r| r.t_us < k && matches!(&r.event, Event::Expire { key: x, .. } if *x == key));
        if gone_before {
            continue;
        }
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
        if stalled.iter().any(|&(a, b)| a <= e.t_us && k <= b) {
            continue;
        }
        // Each new leader loses the agency time since the last tick its predecessor
        // committed and counts from its own first tick: a tick's worth, with its commit.
        let changes = h
            .records
            .iter()
            .filter(|r| r.t_us >= k && r.t_us <= e.t_us)
            .filter(|r| matches!(&r.event, Event::Role { role, .. } if role == "leader"))
            .count() as u64;
        // A stall or a slow sync (fault points) holds a commit back by at most its length
        // (the longest of its kind when the record does not say).
        let held_back: u64 = h
            .records
            .iter()
            .filter(|r| r.t_us + STALL_WINDOW_US >= k && r.t_us <= e.t_us)
            .filter_map(|r| match &r.event {
                Event::FaultPoint { point, delay_ms }
                    if tenure_core::buggify::stalls_an_agent(point) =>
                {
                    let longest = tenure_core::buggify::find(point).map_or(0, |p| p.max_ms);
                    let ms = delay_ms.unwrap_or(longest);
                    // Counted from when it fired: only what reaches into the wait.
                    Some(
                        (r.t_us + ms * 1000)
                            .saturating_sub(r.t_us.max(k))
                            .min(ms * 1000),
                    )
                }
                _ => None,
            })
            .sum();
        // A slow network (latency above the default 10 ms) delays each commit by a round
        // trip of its worst.
        let slow_net: u64 = h
            .records
            .iter()
            .filter(|r| r.t_us <= e.t_us)
            .filter_map(|r| match &r.event {
                Event::Fault {
                    fault: Fault::Latency { max_ms, .. },
                } => Some(*max_ms),
                _ => None,
            })
            .max()
            .map_or(0, |ms| 2 * ms.saturating_sub(10) * 1000);
        let gap =
            without_leader(k, e.t_us) + changes * LEADER_CHANGE_LOSS_US + held_back + slow_net;
        let bound = k + allowance + gap;
        if e.t_us > bound {
            out.push(Violation {
                rule: rule::L3_ON_TIME,
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
    fn a_dead_members_key_must_expire_within_its_ttl_plus_the_leaderless_time() {
        use crate::faults::Fault;
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
        // from 2 s: 0.5 s without a leader and one change of leader (0.1 s). Bound:
        // 1 + 2.0406 + 0.5 + 0.1 + 0.3 s = 3.9406 s.
        let base = [
            role(100_000, 1, "leader"),
            fault(1_000_000, Fault::KillProcess { process: 4 }),
            fault(1_500_000, Fault::Kill { agent: 1 }),
            role(2_000_000, 2, "leader"),
        ];
        let with = |extra: Vec<Record>| History {
            records: base.iter().cloned().chain(extra).collect(),
        };
        let late = dead_members_expire_on_time(&with(vec![expire(4_000_000)]), ttl, 0.01);
        assert_eq!(names(late), vec!["L3 expiry on time"]);
        let on_time = dead_members_expire_on_time(&with(vec![expire(3_900_000)]), ttl, 0.01);
        assert!(on_time.is_empty(), "{on_time:?}");
        // A partition healed before the death stalls nothing the member waits on.
        let earlier = with(vec![
            fault(
                200_000,
                Fault::Partition {
                    groups: vec![vec![1], vec![2, 3]],
                },
            ),
            fault(900_000, Fault::Heal),
            expire(4_000_000),
        ]);
        assert_eq!(
            names(dead_members_expire_on_time(&earlier, ttl, 0.01)),
            vec!["L3 expiry on time"]
        );
        // A stalled agent (a fault point) during the wait adds its longest stall, 1.5 s.
        let stalled = |t| {
            with(vec![
                rec(
                    2_500_000,
                    "system",
                    Event::FaultPoint {
                        point: tenure_core::buggify::STALL_ON_TICK.into(),
                        delay_ms: None,
                    },
                ),
                expire(t),
            ])
        };
        assert!(dead_members_expire_on_time(&stalled(5_400_000), ttl, 0.01).is_empty());
        assert_eq!(
            names(dead_members_expire_on_time(&stalled(5_500_000), ttl, 0.01)),
            vec!["L3 expiry on time"]
        );
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
