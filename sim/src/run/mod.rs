//! Seeded runs of the whole world: `run(config, seed) -> Report` builds a cluster and its
//! clients, carries out a fault schedule (given, or generated from the seed by the swarm)
//! while the clients run a mixed KV workload, lifts every fault, then checks liveness (a
//! healthy, writable cluster within a bound) and durability (a final read finds every
//! acknowledged write), and runs the first checkers over the history.
//!
//! The same seed, config and build give a byte-identical history, so the same digest;
//! [`self_check`] runs a seed twice and says where two runs first differ if they do.

use crate::check::{self};
use crate::cluster::Cluster;
use crate::history::{History, Recorder};
use crate::nemesis::{self, Schedule, Swarm, SwarmSpec};
use crate::{run_seed, RunFailure};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use tenure_core::agency::{Agency, AgencyApi};
use tenure_core::{Command, Op, Outcome, Txn, TxnOutcome};

mod callers;
mod config;
pub mod draw;
mod finale;
pub(crate) mod holders;
mod layout;
mod members;
mod process;
mod watchers;
mod workload;

use callers::caller;
pub use config::{FaultPoints, Faults, RunConfig};
use holders::*;
use layout::{index, Layout};
use members::*;
use process::*;
use tenure_analysis::report::counters;
pub use tenure_analysis::report::{Counters, Report};
use watchers::*;
use workload::*;

/// Runs `seed` under `config` and checks the history. `Err` only when the run itself broke
/// (a panic, or the time limit), with the history up to that point; broken invariants are the
/// report's violations.
pub fn run(config: &RunConfig, seed: u64) -> Result<Report, Box<RunError>> {
    run_with(config, seed, None)
}

/// [`run`] with a user world's parts and checks.
pub(crate) fn run_with(
    config: &RunConfig,
    seed: u64,
    parts: Option<Arc<crate::world::Parts>>,
) -> Result<Report, Box<RunError>> {
    let (config, drawn) = if config.draw_world {
        let (mut c, d) = draw::world(config, seed);
        c.time_limit = c.time_limit.max(c.virtual_bound());
        (c, Some(d))
    } else {
        (config.clone(), None)
    };
    let config = &config;
    let shared: Arc<Mutex<History>> = Arc::default();
    let (cfg, h) = (config.clone(), shared.clone());
    let r = run_seed(seed, Some(config.time_limit), move || {
        run_inside(cfg, seed, h, parts)
    })
    .map(|mut report| {
        report.drawn = drawn.map(|d| serde_json::to_value(d).expect("a draw serializes"));
        report
    });
    // Every task of a finished run is gone with it (`Cluster::release`): nothing still holds
    // its history. (A run that broke off may leave tasks behind; it ends the sweep's seed.)
    debug_assert!(
        r.is_err() || Arc::strong_count(&shared) == 1,
        "a finished run's tasks outlived it"
    );
    r.map_err(|failure| {
        let history = std::mem::take(&mut *shared.lock().unwrap_or_else(|p| p.into_inner()));
        Box::new(RunError {
            seed,
            failure,
            history,
        })
    })
}

/// A run that broke off, with its history up to the break.
#[derive(Debug)]
pub struct RunError {
    pub seed: u64,
    pub failure: RunFailure,
    pub history: History,
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let last = self.history.records.last().map_or(0, |r| r.t_us);
        write!(
            f,
            "seed {}: {} (after {} history records, at {} us)",
            self.seed,
            self.failure,
            self.history.records.len(),
            last
        )
    }
}

impl std::error::Error for RunError {}

async fn run_inside(
    mut config: RunConfig,
    seed: u64,
    shared: Arc<Mutex<History>>,
    parts: Option<Arc<crate::world::Parts>>,
) -> Report {
    let mut rec =
        Recorder::into_shared(shared, config.record_messages).with_encoding(config.encode_messages);
    let fired = rec.clone();
    let points = config.fault_points.enabled(seed);
    // Checked when the run was configured; unknown names cannot reach here.
    let _points = tenure_core::buggify::install_with(
        seed,
        &points,
        Some(Box::new(move |point, delay| {
            fired.record(
                "system",
                crate::history::Event::FaultPoint {
                    point: point.to_string(),
                    delay_ms: delay.map(|d| d.as_millis() as u64),
                },
            )
        })),
    )
    .expect("fault point names are checked before a run");
    if config.watchers > 0 {
        rec = rec.with_changes_under(key(WATCHED));
    }
    if config.callers > 0 {
        rec = rec.with_changes_under(key(callers::WATCHED_KV));
    }
    let user_parts = parts.as_ref().map_or(0, |p| p.parts.len());
    let (swarm, schedule) = faults_of(&config, seed, user_parts);
    let mut cluster_config = config.cluster.clone();
    cluster_config.agent.bugs = config.bugs;
    config.client.bugs = config.bugs;
    let cluster = Cluster::start_recorded(cluster_config, seed, rec.clone());
    if !points.is_empty() {
        // The fault points go quiet just before the faults are lifted, so that nothing they
        // set (an early timer, a stall) reaches into the healed run. (Only when some are on:
        // the task would move every other run's schedule.)
        let end = config
            .duration
            .saturating_sub(std::time::Duration::from_millis(1));
        madsim::task::spawn(async move {
            madsim::time::sleep(end).await;
            tenure_core::buggify::quiet();
        });
    }
    let ops = Arc::new(AtomicU64::new(1));
    let layout = Layout::new(&config);
    let tasks = spawn_roles(&cluster, &rec, &config, &layout, &ops);
    // A user world's parts, numbered after the built-in roles (the runner's address comes
    // between).
    let first_part = layout.first_part();
    let world = parts
        .as_ref()
        .map(|p| crate::world::start::start(&cluster, &rec, &config, p, ops.clone(), first_part));
    // A written schedule has whatever it leaves in place lifted at the end, as swarms do.
    let done = match &config.faults {
        // Faults aimed at a role are resolved as they come: what they leave in place is
        // lifted at the end as a written schedule's is.
        Faults::Swarm if config.aimed_faults => {
            nemesis::run_schedule_lifted(&cluster, &schedule, config.duration.as_millis() as u64)
                .await
        }
        Faults::Schedule(_) => {
            nemesis::run_schedule_lifted(&cluster, &schedule, config.duration.as_millis() as u64)
                .await
        }
        _ => nemesis::run_schedule(&cluster, &schedule).await,
    };
    // The faults are lifted: so are the fault points inside the system.
    tenure_core::buggify::quiet();
    let schedule = Schedule {
        steps: done
            .into_iter()
            .map(|(at_ms, fault)| nemesis::Step { at_ms, fault })
            .collect(),
    };
    for t in tasks {
        let _ = t.await;
    }
    // Watchers killed are not expected to catch up (a built-in process has no factory to
    // restart it).
    let dead: Vec<u64> = schedule
        .steps
        .iter()
        .filter_map(|s| match s.fault {
            nemesis::Fault::KillProcess { process }
            | nemesis::Fault::RestartProcess { process } => Some(process),
            _ => None,
        })
        .collect();
    let watcher_ids: Vec<u64> = layout
        .watchers
        .clone()
        .filter(|p| !dead.contains(p))
        .collect();
    let caller_ids: Vec<u64> = layout
        .callers
        .clone()
        .filter(|p| !dead.contains(p))
        .collect();
    // Every fault is lifted: liveness, then the final read for durability.
    let node = cluster.client_node("runner", layout.runner_index());
    let runner = finale::Runner {
        agents: cluster.addrs.clone(),
        rec: rec.clone(),
        ops: ops.clone(),
        config: config.clone(),
        watchers: watcher_ids,
        callers: caller_ids,
        addr: crate::world::start::client_addr(layout.runner_index()),
    };
    let _ = node.spawn(runner.check()).await;
    if let (Some(p), Some(w)) = (&parts, &world) {
        let first = first_part + p.parts.len() as u64;
        crate::world::start::eventually(&cluster, w, p, first).await;
    }
    let history = rec.snapshot();
    let counts = rec.message_counts();
    let fired = tenure_core::buggify::fired();
    let mut report = analyse(
        &config,
        parts.as_deref(),
        seed,
        history,
        counts,
        swarm,
        schedule,
    );
    report.fault_points = fired;
    cluster.release().await;
    report
}

/// The determinism self-check: runs `seed` twice and compares the histories. `Err` names the
/// first record where they differ.
pub fn self_check(config: &RunConfig, seed: u64) -> Result<Report, String> {
    compare_runs(seed, || run(config, seed))
}

/// Runs `run` twice and compares the histories: `Err` names the first record where they
/// differ.
pub(crate) fn compare_runs(
    seed: u64,
    run: impl Fn() -> Result<Report, Box<RunError>>,
) -> Result<Report, String> {
    let a = run().map_err(|e| e.to_string())?;
    let b = run().map_err(|e| e.to_string())?;
    if a.digest == b.digest {
        return Ok(a);
    }
    let (ha, hb) = (&a.history.records, &b.history.records);
    let i = ha
        .iter()
        .zip(hb.iter())
        .position(|(x, y)| x != y)
        .unwrap_or(ha.len().min(hb.len()));
    let show = |h: &[crate::history::Record]| {
        h.get(i).map_or("(end of history)".to_string(), |r| {
            serde_json::to_string(r).expect("records serialize")
        })
    };
    Err(format!(
        "seed {seed} is not deterministic: digests {} and {} first differ at record {i}:\n  {}\n  {}",
        a.digest,
        b.digest,
        show(ha),
        show(hb)
    ))
}

/// The run's faults: none, the swarm's draw for `seed` (over the built-in processes and
/// `user_parts` more), or the written schedule.
fn faults_of(config: &RunConfig, seed: u64, user_parts: usize) -> (Option<Swarm>, Schedule) {
    match &config.faults {
        Faults::None => (None, Schedule::default()),
        Faults::Swarm => {
            let l = Layout::new(config);
            let spec = SwarmSpec {
                members: l.members.clone().collect(),
                only_aimed: config.aimed_faults && config.only_aimed,
                fast_agency: config.aimed_faults && config.fast_agency_clocks,
                ttl_ms: config.lock_ttl.as_millis() as u64,
                targets: l
                    .members
                    .clone()
                    .chain(l.lockers.clone())
                    .chain(l.leasers.clone())
                    .chain(l.leaders.clone())
                    .collect(),
                agents: config.cluster.agents as u64,
                processes: (config.processes() + user_parts) as u64,
                duration: config.duration,
                clock_jumps: config.clock_jumps,
                aimed: config.aimed_faults.then_some(config.cluster.agent.rho),
            };
            let (kinds, mut s) = nemesis::swarm_with(seed, &spec);
            if let Some((min_ms, max_ms)) = config.latency_ms {
                // The drawn network's profile from the start (lifted back to the default at
                // the end, as every latency is).
                s.steps.insert(
                    0,
                    nemesis::Step {
                        at_ms: 0,
                        fault: nemesis::Fault::Latency { min_ms, max_ms },
                    },
                );
            }
            (Some(kinds), s)
        }
        Faults::Schedule(s) => (None, s.clone()),
    }
}

/// Starts every built-in role on its node: KV clients, lease managers, holders (with their
/// resources), members and watchers. Returns the tasks that end with the workload (watchers
/// run on until the run is released).
fn spawn_roles(
    cluster: &Cluster,
    rec: &Recorder,
    config: &RunConfig,
    layout: &Layout,
    ops: &Arc<AtomicU64>,
) -> Vec<madsim::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    // The built-in roles' contexts: the public API a user's process gets.
    let shared = crate::world::start::Shared {
        agents: cluster.addrs.clone(),
        rec: rec.clone(),
        cfg: config.clone(),
        dir: Arc::new(builtin_directory(config)),
        ops: ops.clone(),
    };
    for id in layout.clients.clone() {
        let name = format!("client-{id}");
        let node = cluster.client_node(&name, index(id));
        let s = shared.clone();
        tasks.push(node.spawn(async move {
            let ctx = crate::world::start::plain_context(&s, &name, id).await;
            workload(ctx, s.cfg.registers, s.cfg.op_pause).await;
        }));
    }
    start_managers(cluster, rec, config, layout.managers.clone());
    // Lock and lease holders, each kind with a resource to fence.
    for (kind, ids) in [
        (HolderKind::Lock, layout.lockers.clone()),
        (HolderKind::Lease, layout.leasers.clone()),
        (HolderKind::Leadership, layout.leaders.clone()),
    ] {
        if ids.is_empty() {
            continue;
        }
        start_resource(cluster, rec, kind, config);
        for (j, id) in ids.enumerate() {
            let name = format!("{}-{}", kind.role(), j + 1);
            let node = cluster.client_node(&name, index(id));
            cluster.register_process(id, &node);
            let s = shared.clone();
            tasks.push(node.spawn(async move {
                let ctx = crate::world::start::drifting_context(&s, &name, id).await;
                match kind {
                    HolderKind::Lock => locker(ctx, &s.cfg).await,
                    HolderKind::Lease | HolderKind::Leadership => leaser(ctx, kind, &s.cfg).await,
                }
            }));
        }
    }
    for (j, id) in layout.members.clone().enumerate() {
        let name = format!("member-{}", j + 1);
        let node = cluster.client_node(&name, index(id));
        cluster.register_process(id, &node);
        let s = shared.clone();
        tasks.push(node.spawn(async move {
            let ctx = crate::world::start::plain_context(&s, &name, id).await;
            member(ctx, &s.cfg).await;
        }));
    }
    for (j, id) in layout.callers.clone().enumerate() {
        let name = format!("caller-{}", j + 1);
        let node = cluster.client_node(&name, index(id));
        cluster.register_process(id, &node);
        let s = shared.clone();
        tasks.push(node.spawn(async move {
            let ctx = crate::world::start::plain_context(&s, &name, id).await;
            caller(ctx, &s.cfg).await;
        }));
    }
    // Watchers run on past the workload, until the runner has checked that they caught up.
    for (j, id) in layout.watchers.clone().enumerate() {
        let name = format!("watcher-{}", j + 1);
        let node = cluster.client_node(&name, index(id));
        cluster.register_process(id, &node);
        let s = shared.clone();
        node.spawn(async move {
            let ctx = crate::world::start::plain_context(&s, &name, id).await;
            watcher(ctx).await;
        });
    }
    tasks
}

/// The checks of a finished run's history (built-in, then the user's) and its report.
fn analyse(
    config: &RunConfig,
    parts: Option<&crate::world::Parts>,
    seed: u64,
    history: History,
    counts: (u64, u64),
    swarm: Option<Swarm>,
    schedule: Schedule,
) -> Report {
    // Every history a run writes is one `tenure check` accepts as well formed.
    debug_assert_eq!(
        crate::shape::check(&history),
        Ok(()),
        "a run wrote a malformed history"
    );
    let mut violations = check::all(&history);
    if config.lockers > 0 && !config.lock_delay.is_zero() {
        violations.extend(check::lock_delay(
            &history,
            LOCK_KEY,
            LOCK_RESOURCE,
            config.lock_delay,
        ));
    }
    violations.extend(check::no_early_expiry(&history, &EXPIRING_KEYS));
    if config.members > 0 {
        violations.extend(check::dead_members_expire_on_time(
            &history,
            config.lock_ttl,
            config.cluster.agent.rho,
        ));
    }
    if let Some(p) = parts {
        violations.extend(crate::world::user_checks(p, &history));
    }
    let mut warnings = check::actions_within_belief(&history);
    let (broken, noted) = check::split_warnings(violations);
    violations = broken;
    warnings.extend(noted);
    Report {
        seed,
        digest: history.digest(),
        counters: counters(&history, counts),
        violations,
        warnings,
        swarm,
        schedule,
        sometimes: parts
            .map(|p| crate::world::sometimes_reached(p, &history))
            .unwrap_or_default(),
        drawn: None,
        fault_points: Default::default(),
        history,
    }
}

/// What the built-in roles' contexts can reach: the holders' fenced resources and the
/// lease-manager actors.
fn builtin_directory(config: &RunConfig) -> crate::world::Directory {
    let mut dir = crate::world::Directory::default();
    for kind in [HolderKind::Lock, HolderKind::Lease, HolderKind::Leadership] {
        dir.resources
            .insert(kind.resource().to_string(), kind.resource_addr());
    }
    dir.managers = (0..config.managers).map(manager_addr).collect();
    dir
}
