//! proptest strategies for whole runs: worlds (who runs), clocks (within the drift bound) and
//! fault schedules, as [`Scenario`] data. The schedule is drawn by proptest, not by the
//! simulator's generator, so when proptest deletes a fault to shrink a failing case, the rest
//! of the case stays as it was; the seed (also drawn, shrinking toward 0) fixes everything
//! else in the run.
//!
//! ```
//! use proptest::prelude::*;
//! use proptest::strategy::ValueTree;
//! use tenure_scenarios::strategy;
//! let mut runner = proptest::test_runner::TestRunner::deterministic();
//! let (scenario, seed) = strategy::case(6).new_tree(&mut runner).unwrap().current();
//! let config = scenario.run_config().expect("every drawn case is a valid scenario");
//! assert!(config.client_drift < config.cluster.agent.rho);
//! # let _ = seed;
//! ```

use crate::library::{FaultSpec, Scenario, Settings};
use proptest::prelude::*;
use tenure_sim::clock::ClockFault;
use tenure_sim::nemesis::{Fault, Step};

/// Virtual duration of a drawn run.
pub const DURATION_MS: u64 = 6_000;

/// Who runs: 3 or 5 agents; 1 to 3 KV clients over 1 to 3 registers; two lockers, two
/// leasers and two leadership units (so every guarantee has contenders); 0 or 1 member and
/// watcher. Holders' clocks drift within the bound (up to 0.9% against rho = 1%).
pub fn world() -> impl Strategy<Value = Settings> {
    (
        prop_oneof![Just(3usize), Just(5usize)],
        1usize..=3,
        1usize..=3,
        0usize..=1,
        0usize..=1,
        20u64..=200,
        0.0f64..=0.009,
    )
        .prop_map(
            |(agents, clients, registers, members, watchers, op_pause_ms, client_drift)| Settings {
                agents: Some(agents),
                clients: Some(clients),
                registers: Some(registers),
                lockers: Some(2),
                leasers: Some(2),
                leaders: Some(2),
                members: Some(members),
                watchers: Some(watchers),
                op_pause_ms: Some(op_pause_ms),
                client_drift: Some(client_drift),
                duration_ms: Some(DURATION_MS),
                ..Settings::default()
            },
        )
}

/// The processes a world has (clients, lockers, leasers, leaders, members, managers,
/// watchers), as the history numbers them.
pub fn processes(s: &Settings) -> u64 {
    [
        s.clients, s.lockers, s.leasers, s.leaders, s.members, s.managers, s.watchers, s.callers,
    ]
    .iter()
    .map(|n| n.unwrap_or(0) as u64)
    .sum()
}

/// One fault among `agents` agents and `processes` client processes, within the clock
/// assumption: clocks drift by at most 0.9% and never jump.
pub fn fault(agents: u64, processes: u64) -> impl Strategy<Value = Fault> {
    let agent = 1..=agents;
    let process = 1..=processes.max(1);
    prop_oneof![
        proptest::collection::vec(any::<bool>(), agents as usize).prop_map(|side| {
            let (a, b): (Vec<u64>, Vec<u64>) =
                (1..=side.len() as u64).partition(|i| side[*i as usize - 1]);
            if a.is_empty() || b.is_empty() {
                Fault::Heal
            } else {
                Fault::Partition { groups: vec![a, b] }
            }
        }),
        Just(Fault::Heal),
        (agent.clone(), agent.clone()).prop_map(|(from, to)| Fault::Clog { from, to }),
        (agent.clone(), agent.clone()).prop_map(|(from, to)| Fault::Unclog { from, to }),
        (0.0f64..0.3).prop_map(|rate| Fault::Loss { rate }),
        (1u64..40, 1u64..80).prop_map(|(min_ms, extra)| Fault::Latency {
            min_ms,
            max_ms: min_ms + extra
        }),
        (agent.clone(), agent.clone(), 0u64..100, 0u64..300).prop_map(
            |(from, to, min_ms, extra)| Fault::Delay {
                from,
                to,
                min_ms,
                max_ms: min_ms + extra
            }
        ),
        agent.clone().prop_map(|agent| Fault::Kill { agent }),
        agent.clone().prop_map(|agent| Fault::Restart { agent }),
        agent.clone().prop_map(|agent| Fault::Pause { agent }),
        agent.clone().prop_map(|agent| Fault::Resume { agent }),
        (agent, -0.009f64..=0.009).prop_map(|(agent, rate)| Fault::Clock {
            agent,
            change: ClockFault::Drift { rate }
        }),
        process
            .clone()
            .prop_map(|process| Fault::PauseProcess { process }),
        process
            .clone()
            .prop_map(|process| Fault::ResumeProcess { process }),
        process
            .clone()
            .prop_map(|process| Fault::IsolateProcess { process }),
        process.prop_map(|process| Fault::KillProcess { process }),
        Just(Fault::KillLeader),
        Just(Fault::PauseLeader),
        Just(Fault::IsolateLeader),
        Just(Fault::PauseHolder),
        Just(Fault::ResumeProcesses),
    ]
}

/// Up to `max_steps` faults at times within `duration_ms`, in time order. (Whatever a
/// schedule leaves in place is lifted at the end of the run.)
pub fn schedule(
    agents: u64,
    processes: u64,
    duration_ms: u64,
    max_steps: usize,
) -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec((0..duration_ms, fault(agents, processes)), 0..=max_steps).prop_map(
        |mut steps| {
            steps.sort_by_key(|(at, _)| *at);
            steps
                .into_iter()
                .map(|(at_ms, fault)| Step { at_ms, fault })
                .collect()
        },
    )
}

/// A whole case: a world with a schedule of up to `max_steps` faults, as a scenario, and a
/// seed.
pub fn case(max_steps: usize) -> impl Strategy<Value = (Scenario, u64)> {
    world()
        .prop_flat_map(move |settings| {
            let agents = settings.agents.unwrap_or(3) as u64;
            let steps = schedule(agents, processes(&settings), DURATION_MS, max_steps);
            (Just(settings), steps, 0u64..1_000_000)
        })
        .prop_map(|(settings, steps, seed)| {
            let scenario = Scenario {
                name: "proptest-case".into(),
                about: format!("a proptest case: {} fault steps", steps.len()),
                description: "Drawn by tenure_scenarios::strategy::case.".into(),
                watches: Vec::new(),
                settings,
                faults: FaultSpec {
                    mode: "schedule".into(),
                    steps,
                },
            };
            (scenario, seed)
        })
}

/// A drawn case of a user's world: a seed, a schedule of faults over its agents and every
/// process (the built-in roles' and the parts', restarts included), and its processes' clock
/// drift within the cluster's bound. Proptest shrinks it like any value: fewer steps, earlier
/// times, smaller numbers.
#[derive(Clone, Debug)]
pub struct WorldCase {
    pub seed: u64,
    pub steps: Vec<Step>,
    pub client_drift: f64,
}

impl WorldCase {
    /// `world` with this case's faults and drift.
    pub fn world(
        &self,
        world: &tenure_sim::world::World,
    ) -> Result<tenure_sim::world::World, String> {
        let mut config = world.config().clone();
        config.faults = tenure_sim::Faults::Schedule(tenure_sim::nemesis::Schedule {
            steps: self.steps.clone(),
        });
        config.client_drift = self.client_drift;
        world.with_config(config).map_err(|e| e.to_string())
    }
}

/// Cases of `world`: up to `max_steps` faults within its duration, aimed at its agents and
/// processes (parts by number: [`tenure_sim::world::World::process_id`]: restarts, two parts
/// separated, a part's clock drifting), its processes' clocks drifting within 90% of the
/// cluster's `rho`, and a seed.
pub fn world_case(
    world: &tenure_sim::world::World,
    max_steps: usize,
) -> impl Strategy<Value = WorldCase> {
    let c = world.config();
    let agents = c.cluster.agents as u64;
    let processes = world.processes();
    let duration_ms = (c.duration.as_millis() as u64).max(1);
    let rho = c.cluster.agent.rho * 0.9;
    let process = 1..=processes.max(1);
    let step = (
        0..duration_ms,
        prop_oneof![
            18 => fault(agents, processes),
            2 => process.clone().prop_map(|process| Fault::RestartProcess { process }),
            1 => (process.clone(), process.clone())
                .prop_filter("two processes", |(a, b)| a != b)
                .prop_map(|(a, b)| Fault::SeparateProcesses { a, b }),
            1 => (process, -rho..=rho).prop_map(|(process, rate)| Fault::ProcessClock {
                process,
                change: ClockFault::Drift { rate },
            }),
        ],
    );
    (
        proptest::collection::vec(step, 0..=max_steps),
        0u64..1_000_000,
        0.0..=rho,
    )
        .prop_map(|(mut steps, seed, client_drift)| {
            steps.sort_by_key(|(at, _)| *at);
            WorldCase {
                seed,
                steps: steps
                    .into_iter()
                    .map(|(at_ms, fault)| Step { at_ms, fault })
                    .collect(),
                client_drift,
            }
        })
}
