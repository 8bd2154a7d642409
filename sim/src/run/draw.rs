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
    /// The network's latency profile, in ms (min, max): a LAN (the default 1-10, or 1-3), a
    /// slow network (5-30), a WAN (20-80), or a jittery one (1-200).
    #[serde(default = "default_latency")]
    pub latency_ms: (u64, u64),
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
/// Most processes a drawn world has (3 KV clients, 3 lockers, 3 leasers, 2 leaders, 3
/// members, 2 lease-manager actors, a watcher): a written schedule for a drawn world may name
/// any of them (a fault on a process the seed did not draw does nothing).
pub const MAX_PROCESSES: usize = 3 + 3 + 3 + 2 + 3 + 2 + 1;

/// Latency profiles, in ms: the default most often.
pub const LATENCY_MS: [(u64, u64); 6] = [(1, 10), (1, 10), (1, 3), (5, 30), (20, 80), (1, 200)];

fn default_latency() -> (u64, u64) {
    LATENCY_MS[0]
}

/// Drift bounds (rho): the default 1% most often, up to 5%.
pub const RHO: [f64; 4] = [0.01, 0.01, 0.02, 0.05];

/// Bounds a scenario may narrow: the TTLs drawn (the list above within them, or any value
/// between them when none of the list lies within) and the largest drift of a holder's clock,
/// as a fraction of rho (at most 1: beyond rho the guarantees do not hold).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    pub ttl_ms: (u64, u64),
    pub drift_of_rho: f64,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            ttl_ms: (TTL_MS[0], TTL_MS[TTL_MS.len() - 1]),
            drift_of_rho: 0.9,
        }
    }
}

impl Bounds {
    /// An error names the bound that cannot hold.
    pub fn check(&self) -> Result<(), String> {
        let (lo, hi) = self.ttl_ms;
        if lo > hi {
            return Err(format!(
                "settings.draw_ttl_ms: [{lo}, {hi}] is empty (the least is above the most)"
            ));
        }
        if lo < 100 || hi > 3_600_000 {
            return Err(format!(
                "settings.draw_ttl_ms: [{lo}, {hi}] must lie within 100 ms and an hour"
            ));
        }
        if !(0.0..=1.0).contains(&self.drift_of_rho) {
            return Err(format!(
                "settings.draw_drift_of_rho: {} must lie in [0, 1] (a drift beyond rho breaks \
                 the assumption every guarantee rests on; give client_drift for that)",
                self.drift_of_rho
            ));
        }
        Ok(())
    }

    /// A TTL within the bounds: `wanted` if it lies within, else drawn between them.
    fn ttl(&self, wanted: &[u64], r: &mut SplitMix64) -> u64 {
        let (lo, hi) = self.ttl_ms;
        let within: Vec<u64> = wanted
            .iter()
            .copied()
            .filter(|t| (lo..=hi).contains(t))
            .collect();
        if within.is_empty() {
            lo + r.below(hi - lo + 1)
        } else {
            within[r.below(within.len() as u64) as usize]
        }
    }
}

/// `config` with the world `seed` draws, and what was drawn.
pub fn world(config: &RunConfig, seed: u64) -> (RunConfig, Drawn) {
    let bounds = config.draw_bounds;
    let mut r = SplitMix64::new(seed ^ 0x5752_4c44_5f44_5257);
    let lock_ttl_ms = bounds.ttl(&TTL_MS, &mut r);
    let mut pick = |xs: &[u64]| xs[r.below(xs.len() as u64) as usize];
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
        members: count(3),
        managers: 0,
        watchers: count(1),
        only_aimed: false,
        rho: 0.0,
        adverse_clocks: false,
        latency_ms: LATENCY_MS[0],
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
    d.client_drift = (r.below(10) as f64 / 10.0) * rho * bounds.drift_of_rho;
    d.only_aimed = r.below(3) == 0;
    d.adverse_clocks = r.below(3) == 0;
    if d.adverse_clocks {
        // At the widest bound drawn, where 90% of it is most time.
        d.rho = RHO[RHO.len() - 1];
        d.client_drift = bounds.drift_of_rho * d.rho;
        // Long enough for drift to add up past an agency tick (50 ms), short enough for a
        // holder's grant to run out within a run.
        d.lock_ttl_ms = bounds.ttl(&[1_500, 2_000, 5_000], &mut r);
    }
    if r.below(2) == 0 {
        d.routing = crate::cluster::Routing::AskAll;
    }
    d.latency_ms = LATENCY_MS[r.below(LATENCY_MS.len() as u64) as usize];
    if d.adverse_clocks {
        // Seeds that push the clocks leave the network alone, so what they show is the
        // clocks' doing (a slow network would hide a drift of tens of ms under its latency).
        d.latency_ms = LATENCY_MS[0];
    }
    let mut c = config.clone();
    c.lock_ttl = Duration::from_millis(d.lock_ttl_ms);
    c.lock_delay = Duration::from_millis(d.lock_delay_ms);
    c.client_drift = d.client_drift;
    c.cluster.agent.rho = d.rho;
    c.client_drift_slow = d.adverse_clocks;
    c.fast_agency_clocks = d.adverse_clocks;
    c.client.routing = d.routing;
    c.latency_ms = (d.latency_ms != LATENCY_MS[0]).then_some(d.latency_ms);
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
            assert!(d.client_drift <= 0.9 * d.rho + 1e-12);
            assert!(c.processes() > 0 && c.processes() <= MAX_PROCESSES);
            roles.insert((d.lockers > 0, d.leasers > 0, d.members > 0));
        }
        // Every combination of these roles comes up in 200 seeds.
        assert_eq!(roles.len(), 8, "{roles:?}");
    }

    #[test]
    fn narrowed_bounds_hold_and_impossible_ones_are_named() {
        let mut base = RunConfig {
            draw_world: true,
            ..RunConfig::default()
        };
        base.draw_bounds = Bounds {
            ttl_ms: (600, 700),
            drift_of_rho: 0.5,
        };
        for seed in 0..100 {
            let (_, d) = world(&base, seed);
            assert!((600..=700).contains(&d.lock_ttl_ms), "{d:?}");
            assert!(d.client_drift <= 0.5 * d.rho + 1e-12, "{d:?}");
        }
        let bad = |ttl_ms, drift_of_rho| {
            Bounds {
                ttl_ms,
                drift_of_rho,
            }
            .check()
            .unwrap_err()
        };
        assert!(bad((900, 800), 0.5).contains("draw_ttl_ms"));
        assert!(bad((10, 800), 0.5).contains("draw_ttl_ms"));
        assert!(bad((400, 800), 1.5).contains("draw_drift_of_rho"));
        assert!(bad((400, 800), -0.1).contains("draw_drift_of_rho"));
        assert!(Bounds::default().check().is_ok());
    }
}
