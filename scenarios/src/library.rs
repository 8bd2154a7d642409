//! Cluster scenarios as data: a TOML file names a world (agents, clients, holders, members,
//! watchers), its workload settings, its clock settings and its faults (a swarm drawn from the
//! seed, a fixed schedule, or none), and says what it reproduces and which invariants it
//! watches. The built-in ones are the files in `scenarios/library/`, compiled in; a user's
//! file is read the same way (`tenure run path/to/file.toml`).

use serde::{Deserialize, Serialize};
use std::time::Duration;
use tenure_sim::nemesis::{Schedule, Step};
use tenure_sim::{Faults, RunConfig};

/// A scenario read from TOML.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Kebab-case name (`minority-partition`).
    pub name: String,
    /// One line for `tenure list`.
    pub about: String,
    /// A paragraph: what it reproduces, and what should hold.
    #[serde(default)]
    pub description: String,
    /// The invariants it watches, by rule (`S1`, `L2`, ...); every checker runs anyway.
    #[serde(default)]
    pub watches: Vec<String>,
    #[serde(default)]
    pub settings: Settings,
    #[serde(default)]
    pub faults: FaultSpec,
}

/// The knobs of a run; each left out keeps `RunConfig::default()`'s value.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub agents: Option<usize>,
    pub clients: Option<usize>,
    pub lockers: Option<usize>,
    pub leasers: Option<usize>,
    pub leaders: Option<usize>,
    pub members: Option<usize>,
    pub managers: Option<usize>,
    pub watchers: Option<usize>,
    /// Seed callers: every seed call the other roles do not make, recorded and checked.
    pub callers: Option<usize>,
    pub registers: Option<usize>,
    pub duration_ms: Option<u64>,
    pub op_pause_ms: Option<u64>,
    pub lock_ttl_ms: Option<u64>,
    pub lock_delay_ms: Option<u64>,
    pub work_ms: Option<u64>,
    /// The drift bound the agency and the holders assume.
    pub rho: Option<f64>,
    /// Each holder's clock drifts at a rate drawn from `[-client_drift, client_drift]`.
    pub client_drift: Option<f64>,
    /// Every holder's clock runs slow by exactly `client_drift` instead of a drawn rate.
    pub client_drift_slow: Option<bool>,
    /// How far apart the agents' clocks start (agent 1 at 0, the last at this, the others
    /// evenly between).
    pub clock_spread_ms: Option<u64>,
    /// Whether a swarm may jump agents' clocks.
    pub clock_jumps: Option<bool>,
    pub liveness_bound_ms: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    /// How clients find the agent to ask: `redirect` (the default: ask the believed leader,
    /// follow redirects) or `ask_all` (ask every agent at once, take the first answer).
    pub routing: Option<tenure_sim::cluster::Routing>,
    /// Raft ticks (10 ms each) between a leader's heartbeats, and the base election timeout.
    pub heartbeat_ticks: Option<u32>,
    pub election_ticks: Option<u32>,
    pub record_messages: Option<bool>,
    /// Envelopes travel in their serde encoding (JSON) instead of as values: slower, same
    /// history.
    pub encode_messages: Option<bool>,
    /// Planted bugs to switch on, by name (`tenure list --bugs`).
    pub bugs: Option<Vec<String>>,
    /// Each seed draws its world too: TTLs, lock-delay, the holders' drift (within 90% of
    /// rho), pauses and work, which roles run and how many (`tenure_sim::run::draw`); the
    /// settings it draws are replaced.
    pub draw_world: Option<bool>,
    /// With `draw_world`: the least and most lock TTL / lease / leadership duration drawn, in
    /// ms (`[400, 15000]` by default).
    pub draw_ttl_ms: Option<[u64; 2]>,
    /// With `draw_world`: the largest drift drawn for a holder's clock, as a fraction of rho
    /// (0.9 by default; at most 1).
    pub draw_drift_of_rho: Option<f64>,
    /// Fault points inside the system (`tenure list --fault-points`): `"swarm"` (the seed
    /// enables about half), `"off"`, or a list of names.
    pub fault_points: Option<FaultPointsSpec>,
}

/// `fault_points = "swarm"`, `"off"`, or `["agent.slow_fsync", ...]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FaultPointsSpec {
    Mode(String),
    Names(Vec<String>),
}

impl FaultPointsSpec {
    /// What the run enables; an error names the unknown mode or point.
    pub fn to_config(&self) -> Result<tenure_sim::run::FaultPoints, String> {
        use tenure_sim::run::FaultPoints;
        match self {
            FaultPointsSpec::Mode(m) if m == "swarm" => Ok(FaultPoints::Swarm),
            FaultPointsSpec::Mode(m) if m == "off" => Ok(FaultPoints::Off),
            FaultPointsSpec::Mode(m) => Err(format!(
                "settings.fault_points: {m:?} is not \"swarm\", \"off\" or a list of fault points"
            )),
            FaultPointsSpec::Names(names) => {
                let mut set = std::collections::BTreeSet::new();
                for n in names {
                    tenure_core::buggify::find(n)
                        .map_err(|e| format!("settings.fault_points: {e}"))?;
                    if !set.insert(n.clone()) {
                        return Err(format!("settings.fault_points: {n:?} is named twice"));
                    }
                }
                Ok(FaultPoints::Only(set))
            }
        }
    }
}

/// Where the faults come from.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// `swarm` (the seed picks kinds and times), `schedule` (the `steps` below), or `none`.
    #[serde(default = "swarm")]
    pub mode: String,
    /// With `mode = "schedule"`: `{ at_ms = 3000, fault = { kind = "kill", agent = 1 } }`,
    /// the fault kinds of `tenure_sim::nemesis::Fault` in snake case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
}

fn swarm() -> String {
    "swarm".into()
}

/// A file without a `[faults]` table gets the swarm, as one with `mode` left out does.
impl Default for FaultSpec {
    fn default() -> Self {
        FaultSpec {
            mode: swarm(),
            steps: Vec::new(),
        }
    }
}

/// The built-in scenarios, as their TOML text.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("quiet", include_str!("../library/quiet.toml")),
    ("swarm", include_str!("../library/swarm.toml")),
    ("standard", include_str!("../library/standard.toml")),
    (
        "leader-loss-while-locked",
        include_str!("../library/leader-loss-while-locked.toml"),
    ),
    (
        "minority-partition",
        include_str!("../library/minority-partition.toml"),
    ),
    (
        "majority-partition-of-the-leader",
        include_str!("../library/majority-partition-of-the-leader.toml"),
    ),
    (
        "reads-from-any-agent",
        include_str!("../library/reads-from-any-agent.toml"),
    ),
    (
        "fast-agency-clocks",
        include_str!("../library/fast-agency-clocks.toml"),
    ),
    (
        "slow-answers-paused-holders",
        include_str!("../library/slow-answers-paused-holders.toml"),
    ),
    (
        "flapping-network",
        include_str!("../library/flapping-network.toml"),
    ),
    (
        "rolling-restarts",
        include_str!("../library/rolling-restarts.toml"),
    ),
    (
        "temp-key-holder-dies",
        include_str!("../library/temp-key-holder-dies.toml"),
    ),
    (
        "leader-loss-under-frozen-holders",
        include_str!("../library/leader-loss-under-frozen-holders.toml"),
    ),
    (
        "paused-member",
        include_str!("../library/paused-member.toml"),
    ),
    (
        "member-dies-while-leaders-change",
        include_str!("../library/member-dies-while-leaders-change.toml"),
    ),
    (
        "shared-record-writers",
        include_str!("../library/shared-record-writers.toml"),
    ),
    (
        "sub-second-ttl-holder-dies",
        include_str!("../library/sub-second-ttl-holder-dies.toml"),
    ),
    (
        "lease-expiry-under-partition",
        include_str!("../library/lease-expiry-under-partition.toml"),
    ),
    (
        "paused-holder",
        include_str!("../library/paused-holder.toml"),
    ),
    (
        "paused-holder-unfenced",
        include_str!("../library/paused-holder-unfenced.toml"),
    ),
    (
        "drift-within-rho",
        include_str!("../library/drift-within-rho.toml"),
    ),
    (
        "drift-beyond-rho",
        include_str!("../library/drift-beyond-rho.toml"),
    ),
    (
        "watches-across-leader-changes",
        include_str!("../library/watches-across-leader-changes.toml"),
    ),
    (
        "leadership-hand-over",
        include_str!("../library/leadership-hand-over.toml"),
    ),
    ("swarm-world", include_str!("../library/swarm-world.toml")),
    ("seed-calls", include_str!("../library/seed-calls.toml")),
    (
        "kv-watch-outage",
        include_str!("../library/kv-watch-outage.toml"),
    ),
];

/// A built-in scenario that finds `bug` (which scenario shows a bug is the library's
/// business, not core's).
pub fn finds(bug: tenure_sim::Bug) -> &'static str {
    use tenure_sim::Bug;
    match bug {
        Bug::FollowersServeReads => "reads-from-any-agent",
        Bug::DeposedLeaderServesReads => "reads-from-any-agent",
        Bug::NoDriftMargin => "fast-agency-clocks",
        Bug::HolderTimesFromResponse => "slow-answers-paused-holders",
        Bug::NoLockDelay => "paused-holder",
        Bug::UnlockWithoutIdCheck => "paused-holder",
        Bug::VoteNotPersisted => "rolling-restarts",
        Bug::AckBeforeCommit => "majority-partition-of-the-leader",
        Bug::SubSecondTtlLost => "sub-second-ttl-holder-dies",
        Bug::NewLeaderUsesOwnClock => "leader-loss-under-frozen-holders",
        Bug::WatchDropsEvents => "watches-across-leader-changes",
        Bug::GrantWithoutLeaseCheck => "paused-member",
        Bug::CasComparesValues => "shared-record-writers",
        Bug::TtlResetOnLeaderChange => "member-dies-while-leaders-change",
        Bug::ResourceSkipsTokenCheck => "paused-holder-unfenced",
        Bug::KvWatchSkipsOutage => "kv-watch-outage",
        Bug::TasReadThenWrite | Bug::GetRangeExcludesEnd => "seed-calls",
    }
}

/// A built-in scenario by name.
pub fn built_in(name: &str) -> Option<Scenario> {
    BUILT_IN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, text)| parse(text, &format!("built-in scenario {n}")).expect("built-ins parse"))
}

/// Every built-in scenario.
pub fn all() -> Vec<Scenario> {
    BUILT_IN
        .iter()
        .map(|(n, text)| parse(text, &format!("built-in scenario {n}")).expect("built-ins parse"))
        .collect()
}

/// Reads a scenario from TOML text; `origin` names it in errors (a file's path). The error
/// names the line and column of what is wrong, and checks the settings and the schedule.
pub fn parse(text: &str, origin: &str) -> Result<Scenario, String> {
    let s: Scenario = toml::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
    check_name(&s.name).map_err(|e| format!("{origin}: {e}"))?;
    s.run_config().map_err(|e| format!("{origin}: {e}"))?;
    Ok(s)
}

/// Longest scenario name.
pub const MAX_NAME: usize = 100;

/// A scenario's name goes into default file names (`tenure-NAME-SEED.html`) and commands: it
/// must be 1 to [`MAX_NAME`] letters, digits, `-`, `_` or `.`, and not start with `.` or `-`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name {name:?}: must be 1 to {MAX_NAME} letters, digits, '-', '_' or '.', not starting with '.' or '-' (it names output files)"
        ))
    }
}

/// A scenario as TOML, its schedule written one step per line as the built-in files are.
pub fn to_toml(s: &Scenario) -> Result<String, String> {
    let mut head = s.clone();
    let steps = std::mem::take(&mut head.faults.steps);
    let mut text = toml::to_string(&head).map_err(|e| e.to_string())?;
    if !steps.is_empty() {
        text.push_str("steps = [\n");
        for st in &steps {
            let v = serde_json::to_value(st).map_err(|e| e.to_string())?;
            text.push_str(&format!("  {},\n", inline_toml(&v)));
        }
        text.push_str("]\n");
    }
    Ok(text)
}

/// A JSON value as a TOML inline value (JSON's string escapes are TOML's too).
fn inline_toml(v: &serde_json::Value) -> String {
    use serde_json::Value as J;
    match v {
        J::Object(m) => {
            let fields: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k} = {}", inline_toml(v)))
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
        J::Array(a) => {
            let items: Vec<String> = a.iter().map(inline_toml).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

impl Scenario {
    /// The run this scenario describes, checked.
    pub fn run_config(&self) -> Result<RunConfig, String> {
        let mut c = RunConfig::default();
        let s = &self.settings;
        let ms = Duration::from_millis;
        macro_rules! set {
            ($field:expr, $value:expr) => {
                if let Some(v) = $value {
                    $field = v;
                }
            };
        }
        set!(c.cluster.agents, s.agents);
        set!(c.clients, s.clients);
        set!(c.lockers, s.lockers);
        set!(c.leasers, s.leasers);
        set!(c.leaders, s.leaders);
        set!(c.members, s.members);
        set!(c.managers, s.managers);
        set!(c.watchers, s.watchers);
        set!(c.callers, s.callers);
        set!(c.registers, s.registers);
        set!(c.duration, s.duration_ms.map(ms));
        set!(c.op_pause, s.op_pause_ms.map(ms));
        set!(c.lock_ttl, s.lock_ttl_ms.map(ms));
        set!(c.lock_delay, s.lock_delay_ms.map(ms));
        set!(c.work, s.work_ms.map(ms));
        set!(c.cluster.agent.rho, s.rho);
        set!(c.client_drift, s.client_drift);
        set!(c.client_drift_slow, s.client_drift_slow);
        set!(c.clock_jumps, s.clock_jumps);
        set!(c.cluster.clock_spread, s.clock_spread_ms.map(ms));
        set!(c.liveness_bound, s.liveness_bound_ms.map(ms));
        set!(c.client.request_timeout, s.request_timeout_ms.map(ms));
        set!(c.client.routing, s.routing);
        set!(c.cluster.agent.raft.heartbeat_ticks, s.heartbeat_ticks);
        set!(c.cluster.agent.raft.election_ticks, s.election_ticks);
        set!(c.record_messages, s.record_messages);
        set!(c.encode_messages, s.encode_messages);
        set!(c.draw_world, s.draw_world);
        if let Some(spec) = &s.fault_points {
            c.fault_points = spec.to_config()?;
        }
        if let Some([lo, hi]) = s.draw_ttl_ms {
            c.draw_bounds.ttl_ms = (lo, hi);
        }
        set!(c.draw_bounds.drift_of_rho, s.draw_drift_of_rho);
        c.draw_bounds.check()?;
        let problem = |field: &str, what: &str| Err(format!("settings.{field}: {what}"));
        for name in s.bugs.iter().flatten() {
            match tenure_sim::Bug::parse(name) {
                Ok(b) => {
                    c.bugs.insert(b);
                }
                Err(e) => return problem("bugs", &e),
            }
        }
        if !(1..=9).contains(&c.cluster.agents) {
            return problem("agents", "must be 1 to 9");
        }
        if c.processes() > 2_000 {
            return problem("clients", "at most 2000 processes in all");
        }
        if c.lock_ttl < ms(100) {
            return problem("lock_ttl_ms", "must be at least 100");
        }
        if !(0.0..0.5).contains(&c.cluster.agent.rho) {
            return problem("rho", "must lie in [0, 0.5)");
        }
        if !(0.0..0.5).contains(&c.client_drift) {
            return problem("client_drift", "must lie in [0, 0.5)");
        }
        if c.registers == 0 {
            return problem("registers", "must be at least 1");
        }
        if c.client.request_timeout.is_zero() {
            return problem("request_timeout_ms", "must be more than 0");
        }
        c.check_limits()?;
        c.time_limit = c.virtual_bound();
        c.faults = match self.faults.mode.as_str() {
            "swarm" if self.faults.steps.is_empty() => Faults::Swarm,
            "none" if self.faults.steps.is_empty() => Faults::None,
            "swarm" | "none" => {
                return Err(format!(
                    "faults: steps are given but mode is {:?}; say mode = \"schedule\"",
                    self.faults.mode
                ))
            }
            "schedule" => {
                let schedule = Schedule {
                    steps: self.faults.steps.clone(),
                };
                // A drawn world's processes are known only once the seed draws them.
                let processes = if c.draw_world {
                    tenure_sim::run::draw::MAX_PROCESSES
                } else {
                    c.processes()
                };
                schedule
                    .validate_with(c.cluster.agents as u64, processes as u64)
                    .map_err(|e| format!("faults: {e}"))?;
                if let Some(last) = schedule.steps.last() {
                    if last.at_ms >= c.duration.as_millis() as u64 {
                        return Err(format!(
                            "faults: a step at {} ms lies past the duration ({} ms)",
                            last.at_ms,
                            c.duration.as_millis()
                        ));
                    }
                }
                Faults::Schedule(schedule)
            }
            other => {
                return Err(format!(
                    "faults.mode: {other:?} is not one of swarm, schedule, none"
                ))
            }
        };
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_scenario_reads_and_is_described() {
        for s in all() {
            assert!(
                !s.about.is_empty() && !s.description.is_empty(),
                "{}",
                s.name
            );
            assert!(!s.watches.is_empty(), "{}", s.name);
            assert_eq!(
                BUILT_IN.iter().filter(|(n, _)| *n == s.name).count(),
                1,
                "{} is listed under its own name",
                s.name
            );
        }
    }

    #[test]
    fn bad_files_are_named_by_line_and_field() {
        let e = parse("name = \"x\"\nabout = 3\n", "f.toml").unwrap_err();
        assert!(e.contains("f.toml") && e.contains("line 2"), "{e}");
        let e = parse("name = \"x\"\nabout = \"a\"\ncolour = 1\n", "f.toml").unwrap_err();
        assert!(e.contains("colour"), "{e}");
        let e = parse(
            "name = \"x\"\nabout = \"a\"\n[settings]\nagents = 12\n",
            "f.toml",
        )
        .unwrap_err();
        assert!(e.contains("settings.agents"), "{e}");
        let e = parse(
            "name = \"x\"\nabout = \"a\"\n[faults]\nmode = \"chaos\"\n",
            "f.toml",
        )
        .unwrap_err();
        assert!(e.contains("chaos"), "{e}");
        let e = parse(
            "name = \"x\"\nabout = \"a\"\n[faults]\nmode = \"schedule\"\nsteps = [{ at_ms = 1, fault = { kind = \"kill\", agent = 7 } }]\n",
            "f.toml",
        )
        .unwrap_err();
        assert!(e.contains("faults"), "{e}");
        let e = parse(
            "name = \"x\"\nabout = \"a\"\n[faults]\nmode = \"schedule\"\nsteps = [{ at_ms = 1, fault = { kind = \"melt\" } }]\n",
            "f.toml",
        )
        .unwrap_err();
        assert!(e.contains("melt") && e.contains("line"), "{e}");
        // The settings added for planted bugs and margins are read and checked too.
        let e = parse(
            "name = \"x\"\nabout = \"a\"\n[settings]\nrouting = \"nearest\"\n",
            "f.toml",
        )
        .unwrap_err();
        assert!(e.contains("routing") || e.contains("nearest"), "{e}");
        let e = parse(
            "name = \"x\"\nabout = \"a\"\n[settings]\nclock_spread_ms = -5\n",
            "f.toml",
        )
        .unwrap_err();
        assert!(e.contains("clock_spread_ms") || e.contains("line 4"), "{e}");
        let s = parse(
            "name = \"x\"\nabout = \"a\"\n[settings]\nrouting = \"ask_all\"\nclock_spread_ms = 900\nclient_drift = 0.2\nclient_drift_slow = true\n",
            "f.toml",
        )
        .unwrap();
        let c = s.run_config().unwrap();
        assert_eq!(c.client.routing, tenure_sim::Routing::AskAll);
        assert_eq!(c.cluster.clock_offset_ms(2), 900);
        assert!(c.client_drift_slow);
    }

    #[test]
    fn a_scenario_written_as_toml_reads_back_the_same() {
        for s in all() {
            let text = to_toml(&s).unwrap();
            let again = parse(&text, &s.name).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(
                serde_json::to_value(&again).unwrap(),
                serde_json::to_value(&s).unwrap(),
                "{}",
                s.name
            );
        }
    }
}
