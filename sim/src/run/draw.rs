//! Swarm testing of the world itself: with `RunConfig::draw_world`, each seed draws the
//! settings and the roles of its run (Groce et al.'s swarm testing: each run enables a random
//! subset of the features), within bounds that keep the guarantees' assumptions (the holders'
//! drift within 90% of `rho`). The draw is a function of the seed alone, made before the run
//! starts, so a replay or a shrink with the same seed draws the same world; the report keeps
//! what was drawn.

use super::RunConfig;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tenure_core::rng::SplitMix64;

/// What a seed drew.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Drawn {
    pub lock_ttl_ms: u64,
    pub lock_delay_ms: u64,
    pub client_drift: f64,
    pub op_pause_ms: u64,
    pub work_ms: u64,
    pub clients: usize,
    pub lockers: usize,
    pub leasers: usize,
    pub leaders: usize,
    pub members: usize,
    pub managers: usize,
    pub watchers: usize,
    /// Which faults: the swarm's and the aimed ones, or (about a third of seeds) only the
    /// aimed ones.
    #[serde(default)]
    pub only_aimed: bool,
    /// The drift bound the agency and the holders assume (the drifts above are within it).
    #[serde(default)]
    pub rho: f64,
    /// Adverse clocks, within the bound: every holder's clock slow by 90% of `rho` and every
    /// agent's fast by as much, from the start (the direction in which a belief outlives
    /// the agency's expiry most).
    #[serde(default)]
    pub adverse_clocks: bool,
    /// How clients find the leader: `redirect`, or `ask_all` (every agent at once, the first
    /// normal answer taken).
    #[serde(default)]
    pub routing: crate::cluster::Routing,
}

/// The bounds of a draw (documented in the README's scenario list and the scenario file).
pub const TTL_MS: [u64; 6] = [400, 800, 1_500, 2_000, 5_000, 15_000];
pub const LOCK_DELAY_MS: [u64; 4] = [0, 0, 300, 1_000];
pub const OP_PAUSE_MS: [u64; 4] = [20, 50, 100, 300];
pub const WORK_MS: [u64; 4] = [5, 20, 100, 300];
/// Most processes a drawn world has (3 KV clients, 3 lockers, 3 leasers, 2 leaders, 2
/// members, 2 lease-manager actors, a watcher): a written schedule for a drawn world may name
/// any of them (a fault on a process the seed did not draw does nothing).
pub const MAX_PROCESSES: usize = 3 + 3 + 3 + 2 + 2 + 2 + 1;

/// Drift bounds (rho): the default 1% most often, up to 5%.
pub const RHO: [f64; 4] = [0.01, 0.01, 0.02, 0.05];

/// `config` with the world `seed` draws, and what was drawn.
pub fn world(config: &RunConfig, seed: u64) -> (RunConfig, Drawn) {
    let mut r = SplitMix64::new(seed ^ 0x5752_4c44_5f44_5257);
    let mut pick = |xs: &[u64]| xs[r.below(xs.len() as u64) as usize];
    let lock_ttl_ms = pick(&TTL_MS);
    let lock_delay_ms = pick(&LOCK_DELAY_MS);
    let op_pause_ms = pick(&OP_PAUSE_MS);
    let work_ms = pick(&WORK_MS);
    let mut count = |max: u64| r.below(max + 1) as usize;
    let mut d = Drawn {
        lock_ttl_ms,
        lock_delay_ms,
        client_drift: 0.0,
        op_pause_ms,
        work_ms,
        clients: count(3),
        lockers: count(3),
        leasers: count(3),
        leaders: count(2),
        members: count(2),
        managers: 0,
        watchers: count(1),
        only_aimed: false,
        rho: 0.0,
        adverse_clocks: false,
        routing: Default::default(),
    };
    if d.leasers > 0 {
        d.managers = r.below(3) as usize;
    }
    if d.clients + d.lockers + d.leasers + d.leaders + d.members == 0 {
        d.lockers = 2;
    }
    // Within the drift assumption: up to 90% of the bound, itself drawn.
    let rho = RHO[r.below(RHO.len() as u64) as usize];
    d.rho = rho;
    d.client_drift = (r.below(10) as f64 / 10.0) * rho * 0.9;
    d.only_aimed = r.below(3) == 0;
    d.adverse_clocks = r.below(4) == 0;
    if d.adverse_clocks {
        // At the widest bound drawn, where 90% of it is most time.
        d.rho = RHO[RHO.len() - 1];
        d.client_drift = 0.9 * d.rho;
        // Long enough for drift to add up past an agency tick (50 ms), short enough for a
        // holder's grant to run out within a run.
        d.lock_ttl_ms = [1_500, 2_000, 5_000][r.below(3) as usize];
    }
    if r.below(3) == 0 {
        d.routing = crate::cluster::Routing::AskAll;
    }
    let mut c = config.clone();
    c.lock_ttl = Duration::from_millis(d.lock_ttl_ms);
    c.lock_delay = Duration::from_millis(d.lock_delay_ms);
    c.client_drift = d.client_drift;
    c.cluster.agent.rho = d.rho;
    c.client_drift_slow = d.adverse_clocks;
    c.fast_agency_clocks = d.adverse_clocks;
    c.client.routing = d.routing;
    c.op_pause = Duration::from_millis(d.op_pause_ms);
    c.work = Duration::from_millis(d.work_ms);
    c.clients = d.clients;
    c.lockers = d.lockers;
    c.leasers = d.leasers;
    c.leaders = d.leaders;
    c.members = d.members;
    c.managers = d.managers;
    c.watchers = d.watchers;
    c.draw_world = false;
    c.aimed_faults = true;
    c.only_aimed = d.only_aimed;
    (c, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_draws_one_world_within_the_bounds() {
        let base = RunConfig {
            draw_world: true,
            ..RunConfig::default()
        };
        let mut roles = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let (c, d) = world(&base, seed);
            assert_eq!(world(&base, seed).1, d, "seed {seed} draws one world");
            assert!(c.check_limits().is_ok(), "seed {seed}: {d:?}");
            assert!(d.client_drift < d.rho && RHO.contains(&d.rho));
            assert!(TTL_MS.contains(&d.lock_ttl_ms));
            assert!(c.processes() > 0 && c.processes() <= MAX_PROCESSES);
            roles.insert((d.lockers > 0, d.leasers > 0, d.members > 0));
        }
        // Every combination of these roles comes up in 200 seeds.
        assert_eq!(roles.len(), 8, "{roles:?}");
    }
}
