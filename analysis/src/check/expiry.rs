//! L3 on time: a dead member's temp key expires within its TTL through the drift bound, plus
//! the time without a leader, judged over the stretches in which no fault could stall agency
//! time ([`stall_intervals`]).

use super::holders::STALL_WINDOW_US;
use super::*;
use crate::history::{Event, History};
use std::collections::{BTreeMap, BTreeSet};
use tenure_core::rule;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::*;

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
}
