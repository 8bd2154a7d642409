//! Faults as data: what a schedule says (`{ "at_ms": t, "fault": {...} }` in JSON or TOML),
//! generated from a seed by the swarm or written by hand, validated, described, and lifted at
//! the end of a run. Agents are named by their 1-based id, processes by their number.
//! Faults: partition into groups (agents in different groups cannot talk; agents named in no
//! group are cut off alone), heal, clog or unclog one direction of a link, message loss rate,
//! latency range, per-link delays, kill (the node's unsynced disk writes are lost), restart
//! (from its disk), pause and resume (frozen while its clock runs on), clock jumps or drift
//! changes, process faults (pause, resume, isolate, kill, restart), and faults aimed by role
//! (the leader, a holder). Carrying them out is tenure-sim's (`nemesis`).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The network's latency when no fault changes it (ms, drawn per message in this range).
pub const DEFAULT_LATENCY_MS: (u64, u64) = (1, 10);

/// A change to a node's clock, as a fault schedule names it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockFault {
    /// Moves the local reading by `by_ms` (negative: backwards) at once.
    Jump { by_ms: i64 },
    /// From now on the clock runs at `1 + rate` times true speed (0.01: 1% fast).
    Drift { rate: f64 },
}

/// One fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    Partition {
        groups: Vec<Vec<u64>>,
    },
    Heal,
    Clog {
        from: u64,
        to: u64,
    },
    Unclog {
        from: u64,
        to: u64,
    },
    Loss {
        rate: f64,
    },
    Latency {
        min_ms: u64,
        max_ms: u64,
    },
    /// Extra delay on one direction of one link between agents, drawn per message from
    /// `[min_ms, max_ms]` (messages may overtake each other); `max_ms: 0` removes it.
    Delay {
        from: u64,
        to: u64,
        min_ms: u64,
        max_ms: u64,
    },
    Kill {
        agent: u64,
    },
    Restart {
        agent: u64,
    },
    Pause {
        agent: u64,
    },
    Resume {
        agent: u64,
    },
    /// Freezes a client process (numbered from 1, as in the history) while its clock runs on:
    /// a GC or VM pause of a lock holder.
    PauseProcess {
        process: u64,
    },
    ResumeProcess {
        process: u64,
    },
    /// Cuts a client process off from every agent (both directions) until the next heal:
    /// a holder that can no longer renew.
    IsolateProcess {
        process: u64,
    },
    /// Kills a client process for good: a holder that dies.
    KillProcess {
        process: u64,
    },
    /// Changes a process's clock (a user part's own clock, kept across its restarts): a jump
    /// or a new drift rate.
    ProcessClock {
        process: u64,
        change: ClockFault,
    },
    /// Cuts two processes off from each other (both directions) until the next heal: a
    /// partition between a user's parts (a primary from its backup).
    SeparateProcesses {
        a: u64,
        b: u64,
    },
    /// Kills a client process and starts it again: a user process's body starts afresh from
    /// its factory (with its node's disk files); a built-in process, which has no factory,
    /// stays down.
    RestartProcess {
        process: u64,
    },
    Clock {
        agent: u64,
        change: ClockFault,
    },
    /// Kills whichever agent leads when the step comes (from the agents' role records: the
    /// leader of the highest term; before the first election, the first one elected). The
    /// history records the agent it hit, as a `kill`.
    KillLeader,
    /// Pauses whichever agent leads when the step comes (recorded as a `pause`).
    PauseLeader,
    /// Cuts whichever agent leads when the step comes off from every other agent: a
    /// partition with the leader alone on the minority side (recorded as a `partition`).
    IsolateLeader,
    /// Freezes a client process that believes it holds a lock, lease or leadership when the
    /// step comes (the lowest-numbered one; if none does, the first one that comes to):
    /// recorded as a `pause_process`.
    PauseHolder,
    /// Resumes every paused client process (recorded as one `resume_process` each).
    ResumeProcesses,
}

impl std::fmt::Display for Fault {
    /// A short description: `kill agent 2`, `partition [1] | [2, 3]`, `loss 5%`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = self.kind().replace('_', " ");
        match self {
            Fault::Partition { groups } => {
                let g: Vec<String> = groups.iter().map(|g| format!("{g:?}")).collect();
                write!(f, "partition {}", g.join(" | "))
            }
            Fault::Clog { from, to } | Fault::Unclog { from, to } => {
                write!(f, "{kind} {from} -> {to}")
            }
            Fault::Loss { rate } => write!(f, "loss {}%", percent(*rate)),
            Fault::Latency { min_ms, max_ms } => write!(f, "latency {min_ms}-{max_ms} ms"),
            Fault::Delay {
                from,
                to,
                min_ms,
                max_ms,
            } => {
                if *max_ms == 0 {
                    write!(f, "delay {from} -> {to} removed")
                } else {
                    write!(f, "delay {from} -> {to} {min_ms}-{max_ms} ms")
                }
            }
            Fault::Kill { agent }
            | Fault::Restart { agent }
            | Fault::Pause { agent }
            | Fault::Resume { agent } => write!(f, "{kind} agent {agent}"),
            Fault::PauseProcess { process }
            | Fault::ResumeProcess { process }
            | Fault::IsolateProcess { process }
            | Fault::KillProcess { process }
            | Fault::RestartProcess { process } => write!(f, "{kind} {process}"),
            Fault::SeparateProcesses { a, b } => write!(f, "separate processes {a} | {b}"),
            Fault::ProcessClock { process, change } => match change {
                ClockFault::Jump { by_ms } => {
                    write!(f, "clock of process {process} jumps {by_ms} ms")
                }
                ClockFault::Drift { rate } => {
                    let sign = if *rate < 0.0 { "-" } else { "+" };
                    write!(
                        f,
                        "clock of process {process} drifts {sign}{}%",
                        percent(rate.abs())
                    )
                }
            },
            Fault::Clock { agent, change } => match change {
                ClockFault::Jump { by_ms } => write!(f, "clock of agent {agent} jumps {by_ms} ms"),
                ClockFault::Drift { rate } => {
                    let sign = if *rate < 0.0 { "-" } else { "+" };
                    write!(
                        f,
                        "clock of agent {agent} drifts {sign}{}%",
                        percent(rate.abs())
                    )
                }
            },
            Fault::Heal
            | Fault::KillLeader
            | Fault::PauseLeader
            | Fault::IsolateLeader
            | Fault::PauseHolder
            | Fault::ResumeProcesses => f.write_str(&kind),
        }
    }
}

/// `rate` as a percentage with at most three decimals and no trailing zeros.
fn percent(rate: f64) -> String {
    let s = format!("{:.3}", rate * 100.0);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl Fault {
    /// The fault's kind as written in schedules and scenario files.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Partition { .. } => "partition",
            Fault::Heal => "heal",
            Fault::Clog { .. } => "clog",
            Fault::Unclog { .. } => "unclog",
            Fault::Loss { .. } => "loss",
            Fault::Latency { .. } => "latency",
            Fault::Delay { .. } => "delay",
            Fault::Kill { .. } => "kill",
            Fault::Restart { .. } => "restart",
            Fault::Pause { .. } => "pause",
            Fault::Resume { .. } => "resume",
            Fault::PauseProcess { .. } => "pause_process",
            Fault::ResumeProcess { .. } => "resume_process",
            Fault::IsolateProcess { .. } => "isolate_process",
            Fault::ProcessClock { .. } => "process_clock",
            Fault::SeparateProcesses { .. } => "separate_processes",
            Fault::KillProcess { .. } => "kill_process",
            Fault::RestartProcess { .. } => "restart_process",
            Fault::Clock { .. } => "clock",
            Fault::KillLeader => "kill_leader",
            Fault::PauseLeader => "pause_leader",
            Fault::IsolateLeader => "isolate_leader",
            Fault::PauseHolder => "pause_holder",
            Fault::ResumeProcesses => "resume_processes",
        }
    }

    /// The client process the fault is aimed at, if it names one.
    pub fn process(&self) -> Option<u64> {
        match self {
            Fault::PauseProcess { process }
            | Fault::ResumeProcess { process }
            | Fault::IsolateProcess { process }
            | Fault::KillProcess { process }
            | Fault::RestartProcess { process } => Some(*process),
            _ => None,
        }
    }

    /// Whether the fault names its target by role (resolved when it is carried out).
    pub fn aims_at_leader(&self) -> bool {
        matches!(
            self,
            Fault::KillLeader | Fault::PauseLeader | Fault::IsolateLeader
        )
    }

    /// Whether the fault is resolved to concrete faults when it is carried out.
    pub fn resolved_late(&self) -> bool {
        self.aims_at_leader() || matches!(self, Fault::PauseHolder | Fault::ResumeProcesses)
    }

    /// This fault aimed at `leader` of a cluster of `agents`; other faults are unchanged.
    pub fn aimed_at(&self, leader: u64, agents: u64) -> Fault {
        match self {
            Fault::KillLeader => Fault::Kill { agent: leader },
            Fault::PauseLeader => Fault::Pause { agent: leader },
            Fault::IsolateLeader => Fault::Partition {
                groups: vec![
                    vec![leader],
                    (1..=agents).filter(|a| *a != leader).collect(),
                ],
            },
            other => other.clone(),
        }
    }
}

/// A fault at a virtual time (ms since the run began).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub at_ms: u64,
    pub fault: Fault,
}

/// A fault schedule, in time order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub steps: Vec<Step>,
}

impl Schedule {
    /// Parses and validates a JSON schedule for a cluster of `agents`.
    pub fn from_json(text: &str, agents: u64) -> Result<Schedule, String> {
        let s: Schedule = serde_json::from_str(text).map_err(|e| format!("fault schedule: {e}"))?;
        s.validate(agents)?;
        Ok(s)
    }

    /// Checks every agent id, rate and range; steps must be in time order.
    pub fn validate(&self, agents: u64) -> Result<(), String> {
        self.validate_with(agents, u64::MAX)
    }

    /// Like [`Schedule::validate`], also checking process numbers against `processes`.
    pub fn validate_with(&self, agents: u64, processes: u64) -> Result<(), String> {
        /// Longest message delay or latency a step may set (a minute).
        const MAX_DELAY_MS: u64 = 60_000;
        /// Largest clock jump (a day).
        const MAX_JUMP_MS: u64 = 86_400_000;
        let agent_ok = |a: u64, i: usize| {
            if (1..=agents).contains(&a) {
                Ok(())
            } else {
                Err(format!(
                    "step {i}: agent {a} does not exist (agents are 1..={agents})"
                ))
            }
        };
        let mut last = 0;
        for (i, step) in self.steps.iter().enumerate() {
            if step.at_ms < last {
                return Err(format!(
                    "step {i}: at_ms {} is before the previous step's {last}",
                    step.at_ms
                ));
            }
            last = step.at_ms;
            match &step.fault {
                Fault::Partition { groups } => {
                    // (An empty group cuts nobody off; swarms draw them.)
                    if groups.len() < 2 {
                        return Err(format!(
                            "step {i}: a partition needs at least two groups of agents, found {groups:?}"
                        ));
                    }
                    let mut seen = std::collections::BTreeSet::new();
                    for a in groups.iter().flatten() {
                        agent_ok(*a, i)?;
                        if !seen.insert(*a) {
                            return Err(format!("step {i}: agent {a} is in two groups"));
                        }
                    }
                }
                Fault::Clog { from, to } | Fault::Unclog { from, to } => {
                    agent_ok(*from, i)?;
                    agent_ok(*to, i)?;
                }
                Fault::Delay {
                    from,
                    to,
                    min_ms,
                    max_ms,
                } => {
                    agent_ok(*from, i)?;
                    agent_ok(*to, i)?;
                    if *max_ms != 0 && min_ms > max_ms {
                        return Err(format!("step {i}: delay needs min_ms <= max_ms"));
                    }
                    if *max_ms > MAX_DELAY_MS || *min_ms > MAX_DELAY_MS {
                        return Err(format!(
                            "step {i}: a delay of over {MAX_DELAY_MS} ms is a partition: use one"
                        ));
                    }
                }
                Fault::Loss { rate } => {
                    if !(0.0..=1.0).contains(rate) {
                        return Err(format!("step {i}: loss rate {rate} is outside [0, 1]"));
                    }
                }
                Fault::Latency { min_ms, max_ms } => {
                    if min_ms >= max_ms {
                        return Err(format!("step {i}: latency needs min_ms < max_ms"));
                    }
                    if *max_ms > MAX_DELAY_MS {
                        return Err(format!(
                            "step {i}: a latency of over {MAX_DELAY_MS} ms is a partition: use one"
                        ));
                    }
                }
                Fault::Kill { agent }
                | Fault::Restart { agent }
                | Fault::Pause { agent }
                | Fault::Resume { agent } => agent_ok(*agent, i)?,
                Fault::PauseProcess { process }
                | Fault::ResumeProcess { process }
                | Fault::IsolateProcess { process }
                | Fault::KillProcess { process }
                | Fault::RestartProcess { process } => {
                    if !(1..=processes).contains(process) {
                        return Err(format!(
                            "step {i}: process {process} does not exist (processes are \
                             1..={processes})"
                        ));
                    }
                }
                Fault::SeparateProcesses { a, b } => {
                    for p in [a, b] {
                        if !(1..=processes).contains(p) {
                            return Err(format!(
                                "step {i}: process {p} does not exist (processes are \
                                 1..={processes})"
                            ));
                        }
                    }
                    if a == b {
                        return Err(format!(
                            "step {i}: a process cannot be separated from itself"
                        ));
                    }
                }
                Fault::Clock { change, .. } | Fault::ProcessClock { change, .. } => {
                    match &step.fault {
                        Fault::ProcessClock { process, .. }
                            if !(1..=processes).contains(process) =>
                        {
                            return Err(format!(
                                "step {i}: process {process} does not exist (processes are \
                                 1..={processes})"
                            ));
                        }
                        Fault::Clock { agent, .. } => agent_ok(*agent, i)?,
                        _ => {}
                    }
                    if let ClockFault::Jump { by_ms } = change {
                        if by_ms.unsigned_abs() > MAX_JUMP_MS {
                            return Err(format!(
                                "step {i}: a clock jump of {by_ms} ms is over the limit of {MAX_JUMP_MS} ms (a day)"
                            ));
                        }
                    }
                    if let ClockFault::Drift { rate } = change {
                        if !(rate.is_finite() && *rate > -1.0 && *rate < 1.0) {
                            return Err(format!("step {i}: drift {rate} is outside (-1, 1)"));
                        }
                    }
                }
                Fault::Heal
                | Fault::KillLeader
                | Fault::PauseLeader
                | Fault::IsolateLeader
                | Fault::PauseHolder
                | Fault::ResumeProcesses => {}
            }
        }
        Ok(())
    }

    /// The time of the last step that leaves a fault in place being lifted: after it, the
    /// network is healed, every agent runs and no clock drifts beyond what it was set to.
    pub fn last_at_ms(&self) -> u64 {
        self.steps.last().map_or(0, |s| s.at_ms)
    }
}

mod lift;
mod swarm;
pub use swarm::{aimed, swarm, swarm_with, Swarm, SwarmSpec};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_round_trip_and_validate() {
        let text = r#"{"steps": [
            {"at_ms": 100, "fault": {"kind": "partition", "groups": [[1], [2, 3]]}},
            {"at_ms": 200, "fault": {"kind": "clock", "agent": 2, "change": {"drift": {"rate": 0.005}}}},
            {"at_ms": 900, "fault": {"kind": "heal"}}
        ]}"#;
        let s = Schedule::from_json(text, 3).unwrap();
        assert_eq!(s.steps.len(), 3);
        let again = Schedule::from_json(&serde_json::to_string(&s).unwrap(), 3).unwrap();
        assert_eq!(again, s);
        for (bad, why) in [
            (
                r#"{"steps": [{"at_ms": 1, "fault": {"kind": "kill", "agent": 4}}]}"#,
                "does not exist",
            ),
            (
                r#"{"steps": [{"at_ms": 5, "fault": {"kind": "heal"}}, {"at_ms": 1, "fault": {"kind": "heal"}}]}"#,
                "before",
            ),
            (
                r#"{"steps": [{"at_ms": 1, "fault": {"kind": "loss", "rate": 2.0}}]}"#,
                "outside",
            ),
            (
                r#"{"steps": [{"at_ms": 1, "fault": {"kind": "partition", "groups": [[1], [1]]}}]}"#,
                "two groups",
            ),
            (
                r#"{"steps": [{"at_ms": 1, "fault": {"kind": "latency", "min_ms": 5, "max_ms": 5}}]}"#,
                "min_ms",
            ),
            (
                r#"{"steps": [{"at_ms": 1, "fault": {"kind": "explode"}}]}"#,
                "unknown variant",
            ),
            (r#"not json"#, "fault schedule"),
        ] {
            let e = Schedule::from_json(bad, 3).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn faults_describe_themselves_and_aim_at_the_leader() {
        let drift = |rate| Fault::Clock {
            agent: 2,
            change: ClockFault::Drift { rate },
        };
        for (fault, text) in [
            (drift(0.00115), "clock of agent 2 drifts +0.115%"),
            (drift(-0.05), "clock of agent 2 drifts -5%"),
            (Fault::Loss { rate: 0.07 }, "loss 7%"),
            (
                Fault::Partition {
                    groups: vec![vec![1], vec![2, 3]],
                },
                "partition [1] | [2, 3]",
            ),
            (Fault::KillProcess { process: 4 }, "kill process 4"),
            (Fault::IsolateLeader, "isolate leader"),
        ] {
            assert_eq!(fault.to_string(), text);
        }
        assert_eq!(
            Fault::IsolateLeader.aimed_at(2, 3),
            Fault::Partition {
                groups: vec![vec![2], vec![1, 3]]
            }
        );
        assert_eq!(Fault::KillLeader.aimed_at(3, 3), Fault::Kill { agent: 3 });
        assert_eq!(Fault::PauseLeader.aimed_at(1, 3), Fault::Pause { agent: 1 });
        assert_eq!(Fault::Heal.aimed_at(1, 3), Fault::Heal);
        let s: Schedule =
            serde_json::from_str(r#"{"steps": [{"at_ms": 5, "fault": {"kind": "kill_leader"}}]}"#)
                .unwrap();
        s.validate(3).unwrap();
        assert!(s.steps[0].fault.aims_at_leader());
    }
}
