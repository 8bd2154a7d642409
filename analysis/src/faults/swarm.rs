//! Swarm testing: the seed picks which kinds of fault are on, then a schedule of them.

use super::*;

/// Which kinds of fault a swarm schedule uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Swarm {
    pub partitions: bool,
    pub kills: bool,
    pub pauses: bool,
    pub clocks: bool,
    /// Clogged and slowed links, message loss, latency.
    pub network: bool,
}

/// What a swarm schedule may use.
#[derive(Clone, Debug, PartialEq)]
pub struct SwarmSpec {
    pub agents: u64,
    /// Client processes that pauses may hit too (0: agents only).
    pub processes: u64,
    pub duration: Duration,
    /// Clock jumps break the drift assumption; without them clock faults are drift within
    /// the default bound only.
    pub clock_jumps: bool,
    /// Faults aimed at the moments that matter ([`aimed`]) as well, with the cluster's drift
    /// bound `rho` (none: only the swarm's own).
    pub aimed: Option<f64>,
    /// Processes whose death matters (members keeping temp keys, holders of locks, leases
    /// and leadership): an aimed kill picks one of them when there are any.
    pub targets: Vec<u64>,
    /// Members among the targets: an aimed kill picks one of them half the time.
    pub members: Vec<u64>,
    /// Only the aimed faults: the swarm's own kinds are all off (swarm testing: leaving
    /// features out lets the others show).
    pub only_aimed: bool,
    /// With `aimed`: every agent's clock runs fast by 90% of `rho` from the start, and
    /// holders are frozen while they hold, one after another, each for longer than
    /// `ttl_ms` (so its grant runs out under it).
    pub fast_agency: bool,
    /// The holders' TTL (lock TTL, lease and leadership duration), in ms.
    pub ttl_ms: u64,
}

/// Swarm testing: the seed picks which kinds of fault are on, then a schedule of them over
/// `duration`, every fault lifted again by the end (a final heal, restarts and resumes).
pub fn swarm(seed: u64, agents: u64, duration: Duration) -> (Swarm, Schedule) {
    swarm_with(
        seed,
        &SwarmSpec {
            agents,
            processes: 0,
            duration,
            clock_jumps: true,
            aimed: None,
            targets: Vec::new(),
            members: Vec::new(),
            only_aimed: false,
            fast_agency: false,
            ttl_ms: 0,
        },
    )
}

/// Faults aimed by role at the moments that matter, drawn from `seed` on their own stream
/// (the swarm's schedule for the seed stays as it was). Each of these is on by its own coin
/// (at least one is):
/// - a holder frozen right after it comes to hold (`pause_holder`), resumed 0.5-4 s later;
/// - leader churn: the leader cut off, healed 0.3-1.5 s later, two to four times in a row,
///   so leadership changes hands while leases and sessions run;
/// - a client process killed for good (a member's session most often, else a holder's
///   lock, lease or leadership), then every agent crashed and restarted in turn (on in two
///   seeds of three that have members, one in three otherwise);
/// - the leader killed (it may have replicated to a minority only);
/// - the agency's clocks fast: every agent drifting at 50-90% of `rho` from the start, the
///   direction in which the agency's time runs ahead of a slow holder's.
///
/// With `spec.fast_agency`, also every agent fast by 90% of `rho` and holders frozen in turn
/// while they hold. Every time lies before the end of `spec.duration`; what they leave in
/// place is lifted by the run ([`Schedule::lifted`] on the faults as carried out).
pub fn aimed(seed: u64, spec: &SwarmSpec, rho: f64) -> Vec<Step> {
    let mut r = tenure_core::rng::SplitMix64::new(seed ^ 0x41_494d_4544);
    let end = spec.duration.as_millis() as u64;
    let mut steps = Vec::new();
    if end < 2_000 {
        return steps;
    }
    let churn = |r: &mut tenure_core::rng::SplitMix64, mut t: u64, steps: &mut Vec<Step>| {
        for _ in 0..2 + r.below(3) {
            let back = t + 300 + r.below(1_200);
            if back >= end {
                break;
            }
            steps.push(Step {
                at_ms: t,
                fault: Fault::IsolateLeader,
            });
            steps.push(Step {
                at_ms: back,
                fault: Fault::Heal,
            });
            t = back + 200 + r.below(800);
        }
    };
    let at = |r: &mut tenure_core::rng::SplitMix64| 500 + r.below(end - 1_500);
    // Each moment on or off by its own coin (swarm testing again), at least one on.
    let mut on = [false; 5];
    while !on.iter().any(|o| *o) {
        on = [
            r.below(3) == 0,
            r.below(3) == 0,
            // Most often where a member keeps a session: its death is the moment for it.
            spec.processes > 0 && r.below(3) < if spec.members.is_empty() { 1 } else { 2 },
            r.below(3) == 0,
            r.below(5) == 0,
        ];
    }
    if on[0] {
        let t = at(&mut r);
        steps.push(Step {
            at_ms: t,
            fault: Fault::PauseHolder,
        });
        steps.push(Step {
            at_ms: (t + 500 + r.below(3_500)).min(end - 1),
            fault: Fault::ResumeProcesses,
        });
    }
    if on[1] {
        let t = at(&mut r);
        churn(&mut r, t, &mut steps);
    }
    if on[2] {
        let t = at(&mut r);
        let process = if !spec.members.is_empty() && r.below(4) != 0 {
            spec.members[r.below(spec.members.len() as u64) as usize]
        } else if spec.targets.is_empty() {
            r.below(spec.processes) + 1
        } else {
            spec.targets[r.below(spec.targets.len() as u64) as usize]
        };
        steps.push(Step {
            at_ms: t,
            fault: Fault::KillProcess { process },
        });
        // A rolling restart of every agent (each crashed and restarted at once), in an
        // order drawn: the leader is among them, so leadership changes hands while the
        // dead process's session runs out. Crashes stall no agency time, so its temp key
        // must still go on time (L3).
        let mut order: Vec<u64> = (1..=spec.agents).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, r.below(i as u64 + 1) as usize);
        }
        let mut t = t + 200 + r.below(800);
        for agent in order {
            if t >= end {
                break;
            }
            steps.push(Step {
                at_ms: t,
                fault: Fault::Restart { agent },
            });
            t += 300 + r.below(1_200);
        }
    }
    if on[3] {
        let t = at(&mut r);
        steps.push(Step {
            at_ms: t,
            fault: Fault::KillLeader,
        });
    }
    if on[4] {
        let rate = rho * (0.5 + r.below(5) as f64 / 10.0);
        for agent in 1..=spec.agents {
            steps.push(Step {
                at_ms: 0,
                fault: Fault::Clock {
                    agent,
                    change: ClockFault::Drift { rate },
                },
            });
        }
    }
    if spec.fast_agency {
        // And holders frozen while they hold, in turn, so that grants run out under them.
        let mut t = 300 + r.below(1_000);
        while t + 1_500 < end {
            let back = (t + spec.ttl_ms + 200 + r.below(1_500)).min(end - 1);
            steps.push(Step {
                at_ms: t,
                fault: Fault::PauseHolder,
            });
            steps.push(Step {
                at_ms: back,
                fault: Fault::ResumeProcesses,
            });
            t = back + 200 + r.below(1_000);
        }
        for agent in 1..=spec.agents {
            steps.push(Step {
                at_ms: 0,
                fault: Fault::Clock {
                    agent,
                    change: ClockFault::Drift { rate: 0.9 * rho },
                },
            });
        }
    }
    steps.sort_by_key(|s| s.at_ms);
    steps
}

/// [`swarm`] within `spec`.
pub fn swarm_with(seed: u64, spec: &SwarmSpec) -> (Swarm, Schedule) {
    let (agents, duration) = (spec.agents, spec.duration);
    // The swarm's own source, so a schedule depends on its seed alone.
    let mut r = tenure_core::rng::SplitMix64::new(seed ^ 0x005E_ED0F_FA17);
    let mut kinds = Swarm {
        partitions: r.below(2) == 0,
        kills: r.below(2) == 0,
        pauses: r.below(3) == 0,
        clocks: r.below(3) == 0,
        network: r.below(2) == 0,
    };
    if spec.only_aimed {
        kinds = Swarm {
            partitions: false,
            kills: false,
            pauses: false,
            clocks: false,
            network: false,
        };
    }
    let end = duration.as_millis() as u64;
    let mut steps = Vec::new();
    let mut t = 0;
    let mut down: Vec<u64> = Vec::new();
    let mut paused: Vec<u64> = Vec::new();
    let mut paused_processes: Vec<u64> = Vec::new();
    loop {
        t += 200 + r.below(2_000);
        if t >= end {
            break;
        }
        let agent = r.below(agents) + 1;
        let fault = match r.below(5) {
            0 if kinds.partitions => {
                if r.below(3) == 0 {
                    Fault::Heal
                } else {
                    let mut a = Vec::new();
                    let mut b = Vec::new();
                    for id in 1..=agents {
                        if r.below(2) == 0 {
                            a.push(id)
                        } else {
                            b.push(id)
                        }
                    }
                    Fault::Partition { groups: vec![a, b] }
                }
            }
            1 if kinds.kills => {
                if let Some(i) = down.iter().position(|d| *d == agent) {
                    down.remove(i);
                    Fault::Restart { agent }
                } else {
                    down.push(agent);
                    Fault::Kill { agent }
                }
            }
            2 if kinds.pauses && spec.processes > 0 && r.below(2) == 0 => {
                let process = r.below(spec.processes) + 1;
                if let Some(i) = paused_processes.iter().position(|d| *d == process) {
                    paused_processes.remove(i);
                    Fault::ResumeProcess { process }
                } else {
                    paused_processes.push(process);
                    Fault::PauseProcess { process }
                }
            }
            2 if kinds.pauses => {
                if let Some(i) = paused.iter().position(|d| *d == agent) {
                    paused.remove(i);
                    Fault::Resume { agent }
                } else {
                    paused.push(agent);
                    Fault::Pause { agent }
                }
            }
            3 if kinds.clocks => {
                if spec.clock_jumps && r.below(2) == 0 {
                    let by_ms = r.below(2_000) as i64 - 1_000;
                    Fault::Clock {
                        agent,
                        change: ClockFault::Jump { by_ms },
                    }
                } else {
                    // Within the default drift bound, so the guarantees must still hold.
                    let rate = (r.below(1_800) as f64 - 900.0) / 100_000.0;
                    Fault::Clock {
                        agent,
                        change: ClockFault::Drift { rate },
                    }
                }
            }
            4 if kinds.network && spec.processes > 0 && r.below(4) == 0 => Fault::IsolateProcess {
                process: r.below(spec.processes) + 1,
            },
            4 if kinds.network && agents > 1 => {
                let other = (agent + r.below(agents - 1)) % agents + 1;
                match r.below(4) {
                    0 => Fault::Clog {
                        from: agent,
                        to: other,
                    },
                    1 => {
                        let min_ms = r.below(100);
                        Fault::Delay {
                            from: agent,
                            to: other,
                            min_ms,
                            max_ms: min_ms + 1 + r.below(400),
                        }
                    }
                    2 => Fault::Loss {
                        rate: r.below(16) as f64 / 100.0,
                    },
                    _ => {
                        let min_ms = 1 + r.below(20);
                        Fault::Latency {
                            min_ms,
                            max_ms: min_ms + 1 + r.below(80),
                        }
                    }
                }
            }
            _ => continue,
        };
        steps.push(Step { at_ms: t, fault });
    }
    let mut lift = vec![Fault::Heal];
    if kinds.network {
        lift.push(Fault::Loss { rate: 0.0 });
        lift.push(Fault::Latency {
            min_ms: DEFAULT_LATENCY_MS.0,
            max_ms: DEFAULT_LATENCY_MS.1,
        });
    }
    lift.extend(down.into_iter().map(|agent| Fault::Restart { agent }));
    lift.extend(paused.into_iter().map(|agent| Fault::Resume { agent }));
    lift.extend(
        paused_processes
            .into_iter()
            .map(|process| Fault::ResumeProcess { process }),
    );
    for fault in lift {
        steps.push(Step { at_ms: end, fault });
    }
    if let Some(rho) = spec.aimed {
        // Before the lifts at the end, in time order (a stable sort keeps the swarm's own
        // order among equal times).
        steps.extend(aimed(seed, spec, rho));
        steps.sort_by_key(|s| s.at_ms);
    }
    (kinds, Schedule { steps })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swarm_is_a_function_of_the_seed_and_lifts_every_fault() {
        let d = Duration::from_secs(30);
        assert_eq!(swarm(7, 3, d), swarm(7, 3, d));
        let differ = (0..20)
            .filter(|s| swarm(*s, 3, d).1 != swarm(s + 100, 3, d).1)
            .count();
        assert!(differ > 15);
        for seed in 0..100 {
            let (_, s) = swarm(seed, 3, d);
            s.validate(3).unwrap();
            let mut down = std::collections::BTreeSet::new();
            let mut paused = std::collections::BTreeSet::new();
            for step in &s.steps {
                match step.fault {
                    Fault::Kill { agent } => assert!(down.insert(agent)),
                    Fault::Restart { agent } => {
                        down.remove(&agent);
                    }
                    Fault::Pause { agent } => assert!(paused.insert(agent)),
                    Fault::Resume { agent } => assert!(paused.remove(&agent)),
                    _ => {}
                }
            }
            assert!(down.is_empty() && paused.is_empty(), "seed {seed}");
            assert_eq!(
                s.steps
                    .iter()
                    .rev()
                    .find(|s| matches!(s.fault, Fault::Heal | Fault::Partition { .. }))
                    .map(|s| &s.fault),
                Some(&Fault::Heal)
            );
        }
    }
}
