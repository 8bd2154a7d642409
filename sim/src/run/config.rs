//! What a run depends on besides its seed: [`RunConfig`] and where its faults come from
//! ([`Faults`]).

use crate::cluster::{ClientConfig, ClusterConfig};
use crate::nemesis::Schedule;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Where a run's faults come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Faults {
    None,
    /// Generated from the seed: the seed picks the kinds of fault and their times.
    Swarm,
    /// These faults, then (at the end of the duration) whatever they left in place lifted
    /// ([`Schedule::lifted`]).
    Schedule(Schedule),
}

/// Which fault points inside the system ([`tenure_core::buggify`]) a run enables.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultPoints {
    /// None: the system runs as it would outside simulation.
    #[default]
    Off,
    /// The seed enables about half of them (swarm testing).
    Swarm,
    /// These, by name.
    Only(std::collections::BTreeSet<String>),
}

impl FaultPoints {
    /// The points enabled for `seed`.
    pub fn enabled(&self, seed: u64) -> std::collections::BTreeSet<String> {
        match self {
            FaultPoints::Off => Default::default(),
            FaultPoints::Swarm => tenure_core::buggify::drawn(seed),
            FaultPoints::Only(names) => names.clone(),
        }
    }
}

/// Everything a run depends on besides its seed.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub cluster: ClusterConfig,
    /// Client processes, each on its own node, running the workload one operation at a time.
    pub clients: usize,
    pub client: ClientConfig,
    /// How long the workload (and the fault schedule) runs; every fault is lifted by then.
    pub duration: Duration,
    pub faults: Faults,
    /// Registers the workload reads, writes and compares-and-sets (`/r/0`..).
    pub registers: usize,
    /// A client's pause between operations.
    pub op_pause: Duration,
    /// After the faults are lifted: a healthy, writable cluster within this bound.
    pub liveness_bound: Duration,
    /// Record every envelope in the history (large; for replays).
    pub record_messages: bool,
    /// Send every envelope through its serde encoding (JSON) instead of moving the value:
    /// slower, and the same history byte for byte (the tests hold the two to it); for
    /// checking that what actors send survives a real network's encoding.
    pub encode_messages: bool,
    /// Virtual time after which a run is stopped as hung.
    pub time_limit: Duration,
    /// Processes contending for one agency `Lock` (`/locks/0`), writing to a fenced resource
    /// while they believe they hold it (0: none). They are numbered after the KV clients.
    pub lockers: usize,
    /// Processes contending for one Juju lease (`svc`) through a `LeaseManager`, writing to a
    /// fenced resource while they believe they hold it (0: none); numbered after the lockers.
    pub leasers: usize,
    /// Units contending for the leadership of service `app` through leadership `Manager`s
    /// (0: none); numbered after the leasers.
    pub leaders: usize,
    /// Processes that keep an hmetcd temp key (`/kv/member-<process>`) alive through their
    /// session lease (TTL `lock_ttl`) for the whole run, unless they die (0: none); numbered
    /// after the leaders.
    pub members: usize,
    /// Lease-manager actors (0: none). With some, leasers claim through them by messages
    /// instead of running their own manager; numbered after the members (so process faults
    /// can kill them).
    pub managers: usize,
    /// Watchers of the registers (`/r` and every key under it) from a start revision, each
    /// on its own node (0: none); numbered after the managers. Each change they receive is
    /// checked against the agents' record of changes (S16), and after the heal every live
    /// watcher must receive the runner's final change within the liveness bound (L5).
    pub watchers: usize,
    /// Seed callers (0: none), numbered after the watchers: every seed call the other roles
    /// do not make (hmetcd's store, get, get_range, delete, transaction, tas, watches, the
    /// untimed lock and close; the agency API's change callbacks; Juju's lease client; the
    /// Storage lessor, ranges and deletes), each recorded for a check
    /// ([`super::callers`]).
    pub callers: usize,
    /// The lock TTL, the lease duration, the leadership duration and the session TTL.
    pub lock_ttl: Duration,
    /// The lockers' lock-delay: after a holder dies, the lock is not granted again for this
    /// long (agency time); checked as S8.
    pub lock_delay: Duration,
    /// Each locker's clock drifts at a rate drawn from `[-client_drift, client_drift]`; the
    /// guarantees hold while this stays within the cluster's `rho`.
    pub client_drift: f64,
    /// Every holder's clock runs slow by exactly `client_drift` instead (the direction in
    /// which a belief outlives the agency's expiry): for measuring margins.
    pub client_drift_slow: bool,
    /// Between a locker's check that it holds the lock and its write leaving: a pause here
    /// makes the write late.
    pub work: Duration,
    /// Whether the swarm may jump clocks (which breaks the drift assumption).
    pub clock_jumps: bool,
    /// The bugs planted in the built-in actors (none by default).
    pub bugs: crate::bugs::Bugs,
    /// Each seed draws the world too ([`super::draw`]): TTLs, lock-delay, the holders' drift
    /// within the bound, pauses and work, which roles run and how many. The settings above
    /// that it draws are replaced; the report keeps the draw.
    pub draw_world: bool,
    /// What a drawn world may draw (narrower than the defaults if a scenario says so).
    pub draw_bounds: super::draw::Bounds,
    /// The fault points inside the system the run enables (off by default); the report
    /// counts how often each fired.
    pub fault_points: FaultPoints,
    /// The swarm adds faults aimed by role at the moments that matter
    /// ([`crate::nemesis::aimed`]); a drawn world sets it.
    pub aimed_faults: bool,
    /// With `aimed_faults`: the swarm's own faults are left out (a drawn world sets it for
    /// about a third of seeds).
    pub only_aimed: bool,
    /// With `aimed_faults`: every agent's clock drifts fast by 90% of `rho` from the start
    /// (a drawn world with adverse clocks sets it).
    pub fast_agency_clocks: bool,
    /// The network's latency from the start of a swarm run, in ms (none: the default 1-10);
    /// a drawn world sets it.
    pub latency_ms: Option<(u64, u64)>,
}

impl RunConfig {
    /// Every client process: KV clients, then lockers, leasers and leaders.
    pub fn processes(&self) -> usize {
        // Saturating: the counts come from users' files, and a sum that wrapped would pass
        // the limit on processes.
        [
            self.lockers,
            self.leasers,
            self.leaders,
            self.members,
            self.managers,
            self.watchers,
            self.callers,
        ]
        .iter()
        .fold(self.clients, |a, b| a.saturating_add(*b))
    }
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            cluster: ClusterConfig::default(),
            clients: 3,
            client: ClientConfig::default(),
            duration: Duration::from_secs(10),
            faults: Faults::Swarm,
            registers: 3,
            op_pause: Duration::from_millis(100),
            liveness_bound: Duration::from_secs(5),
            record_messages: false,
            encode_messages: false,
            time_limit: Duration::from_secs(3_600),
            lockers: 0,
            leasers: 0,
            leaders: 0,
            members: 0,
            managers: 0,
            watchers: 1,
            callers: 0,
            lock_ttl: Duration::from_secs(2),
            lock_delay: Duration::ZERO,
            client_drift: 0.0,
            client_drift_slow: false,
            work: Duration::from_millis(20),
            clock_jumps: true,
            bugs: crate::bugs::Bugs::new(),
            draw_world: false,
            draw_bounds: Default::default(),
            fault_points: FaultPoints::Off,
            aimed_faults: false,
            only_aimed: false,
            fast_agency_clocks: false,
            latency_ms: None,
        }
    }
}
