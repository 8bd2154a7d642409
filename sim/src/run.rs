//! Seeded runs of the whole world: `run(config, seed) -> Report` builds a cluster and its
//! clients, carries out a fault schedule (given, or generated from the seed by the swarm)
//! while the clients run a mixed KV workload, lifts every fault, then checks liveness (a
//! healthy, writable cluster within a bound) and durability (a final read finds every
//! acknowledged write), and runs the first checkers over the history.
//!
//! The same seed, config and build give a byte-identical history, so the same digest;
//! [`self_check`] runs a seed twice and says where two runs first differ if they do.

use crate::check::{self, Violation};
use crate::cluster::{ClientConfig, Cluster, ClusterConfig, NetClient};
use crate::history::{Completion, Event, History, Recorder};
use crate::nemesis::{self, Schedule, Swarm};
use crate::{run_seed, MadsimClock, RunFailure};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenure_core::agency::{Agency, AgencyApi, AgencyError};
use tenure_core::{ClientError, Clock, Key};

/// Where a run's faults come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Faults {
    None,
    /// Generated from the seed: the seed picks the kinds of fault and their times.
    Swarm,
    Schedule(Schedule),
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
    /// Virtual time after which a run is stopped as hung.
    pub time_limit: Duration,
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
            time_limit: Duration::from_secs(3_600),
        }
    }
}

/// Figures of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Virtual time the run took, in ms.
    pub virtual_ms: u64,
    pub records: usize,
    pub ops_invoked: usize,
    pub ops_ok: usize,
    pub ops_failed: usize,
    pub ops_indeterminate: usize,
    pub faults: usize,
    /// Terms in which some agent became leader.
    pub leader_terms: usize,
    /// Highest log index applied anywhere.
    pub applied_index: u64,
    pub expiries: usize,
    /// Log compactions, and snapshots installed from a leader.
    pub snapshots: usize,
    pub snapshots_installed: usize,
    pub messages_sent: u64,
    pub messages_delivered: u64,
}

/// What a run produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub seed: u64,
    /// SHA-256 of the history's JSON lines.
    pub digest: String,
    pub counters: Counters,
    pub violations: Vec<Violation>,
    /// The kinds of fault the swarm chose (swarm runs only).
    pub swarm: Option<Swarm>,
    /// The schedule carried out.
    pub schedule: Schedule,
    #[serde(skip)]
    pub history: History,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

fn counters(h: &History, (sent, delivered): (u64, u64)) -> Counters {
    let mut c = Counters {
        records: h.records.len(),
        virtual_ms: h.records.last().map_or(0, |r| r.t_us / 1000),
        messages_sent: sent,
        messages_delivered: delivered,
        ..Counters::default()
    };
    let mut terms = std::collections::BTreeSet::new();
    for r in &h.records {
        match &r.event {
            Event::Invoke { .. } => c.ops_invoked += 1,
            Event::Complete { result, .. } => match result {
                Completion::Ok => c.ops_ok += 1,
                Completion::Fail => c.ops_failed += 1,
                Completion::Info => c.ops_indeterminate += 1,
            },
            Event::Fault { .. } => c.faults += 1,
            Event::Role { role, term, .. } if role == "leader" => {
                terms.insert(*term);
            }
            Event::Apply { index, .. } => c.applied_index = c.applied_index.max(*index),
            Event::Expire { .. } => c.expiries += 1,
            Event::Snapshot { installed, .. } => {
                c.snapshots += 1;
                c.snapshots_installed += usize::from(*installed);
            }
            _ => {}
        }
    }
    c.leader_terms = terms.len();
    c
}

/// A client process that records every operation it invokes and how it completed.
struct Process {
    id: u64,
    node: String,
    rec: Recorder,
    clock: MadsimClock,
    ops: Arc<AtomicU64>,
    agency: AgencyApi,
}

impl Process {
    async fn op<F>(&self, f: &str, key: &Key, value: Value, call: F) -> (Completion, Value)
    where
        F: std::future::Future<Output = Result<Value, AgencyError>>,
    {
        let op = self.ops.fetch_add(1, Ordering::Relaxed);
        self.rec.record(
            &self.node,
            Event::Invoke {
                process: self.id,
                op,
                f: f.to_string(),
                key: key.to_string(),
                value,
                local_us: self.clock.now().as_micros() as u64,
            },
        );
        let (result, value) = match call.await {
            Ok(v) => (Completion::Ok, v),
            // A read of a missing key reads "nothing".
            Err(AgencyError::KeyNotFound { .. }) if f.starts_with("read") => {
                (Completion::Ok, Value::Null)
            }
            Err(e @ AgencyError::ConditionFailed { .. })
            | Err(e @ AgencyError::Client(ClientError::Unavailable(_))) => {
                (Completion::Fail, json!(e.to_string()))
            }
            Err(e) => (Completion::Info, json!(e.to_string())),
        };
        self.rec.record(
            &self.node,
            Event::Complete {
                process: self.id,
                op,
                result,
                value: value.clone(),
                local_us: self.clock.now().as_micros() as u64,
            },
        );
        (result, value)
    }
}

fn key(path: &str) -> Key {
    Key::parse(path).expect("workload keys are valid")
}

/// One client's mixed workload until `until` (true time): unique durability writes under
/// `/w/<process>/`, and reads, writes and compare-and-sets of the registers `/r/<k>`.
async fn workload(p: Process, registers: usize, pause: Duration, until: Duration) {
    let mut n = 0u64;
    let mut seen: BTreeMap<usize, Value> = BTreeMap::new();
    while p.rec.true_now() < until {
        let r = (madsim::rand::random::<u64>() % registers.max(1) as u64) as usize;
        let reg = key(&format!("/r/{r}"));
        let unique = json!(p.id * 1_000_000 + n);
        match madsim::rand::random::<u64>() % 10 {
            0..=2 => {
                let k = key(&format!("/w/{}/{n}", p.id));
                let v = json!(n);
                p.op("write", &k, v.clone(), async {
                    p.agency
                        .write_key(&k, v.clone(), None, None)
                        .await
                        .map(|_| v)
                })
                .await;
            }
            3..=5 => {
                let (res, v) = p
                    .op("read", &reg, Value::Null, p.agency.read_key(&reg))
                    .await;
                if res == Completion::Ok {
                    seen.insert(r, v);
                }
            }
            6..=7 => {
                p.op("write", &reg, unique.clone(), async {
                    p.agency
                        .write_key(&reg, unique.clone(), None, None)
                        .await
                        .map(|_| unique.clone())
                })
                .await;
            }
            _ => match seen.get(&r).cloned() {
                Some(old) if !old.is_null() => {
                    let arg = json!([old.clone(), unique.clone()]);
                    p.op("cas", &reg, arg, async {
                        p.agency
                            .write_key_if_equal_to(&reg, unique.clone(), old.clone(), None)
                            .await
                            .map(|_| unique.clone())
                    })
                    .await;
                }
                _ => {
                    let (res, v) = p
                        .op("read", &reg, Value::Null, p.agency.read_key(&reg))
                        .await;
                    if res == Completion::Ok {
                        seen.insert(r, v);
                    }
                }
            },
        }
        n += 1;
        madsim::time::sleep(pause).await;
    }
}

/// Runs `seed` under `config` and checks the history. `Err` only when the run itself broke
/// (a panic, or the time limit), with the history up to that point; broken invariants are the
/// report's violations.
pub fn run(config: &RunConfig, seed: u64) -> Result<Report, Box<RunError>> {
    let shared: Arc<Mutex<History>> = Arc::default();
    let (cfg, h) = (config.clone(), shared.clone());
    run_seed(seed, Some(config.time_limit), move || {
        run_inside(cfg, seed, h)
    })
    .map_err(|failure| {
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

async fn run_inside(config: RunConfig, seed: u64, shared: Arc<Mutex<History>>) -> Report {
    let rec = Recorder::into_shared(shared, config.record_messages);
    let agents = config.cluster.agents as u64;
    let (swarm, schedule) = match &config.faults {
        Faults::None => (None, Schedule::default()),
        Faults::Swarm => {
            let (kinds, s) = nemesis::swarm(seed, agents, config.duration);
            (Some(kinds), s)
        }
        Faults::Schedule(s) => (None, s.clone()),
    };
    let cluster = Cluster::start_recorded(config.cluster.clone(), seed, rec.clone());
    let ops = Arc::new(AtomicU64::new(1));
    let mut tasks = Vec::new();
    for i in 0..config.clients {
        let name = format!("client-{}", i + 1);
        let node = cluster.client_node(&name, i);
        let (addrs, rec, ops, cfg) = (
            cluster.addrs.clone(),
            rec.clone(),
            ops.clone(),
            config.clone(),
        );
        tasks.push(node.spawn(async move {
            let c =
                NetClient::connect_recorded(addrs, cfg.client, Some((rec.clone(), name.clone())))
                    .await
                    .expect("a client binds");
            let p = Process {
                id: i as u64 + 1,
                node: name,
                rec,
                clock: MadsimClock::new(),
                ops,
                agency: AgencyApi::new(Arc::new(c)),
            };
            workload(p, cfg.registers, cfg.op_pause, cfg.duration).await;
        }));
    }
    nemesis::run_schedule(&cluster, &schedule).await;
    for t in tasks {
        let _ = t.await;
    }
    // Every fault is lifted: liveness, then the final read for durability.
    let node = cluster.client_node("runner", config.clients);
    let (addrs, r2, ops2, cfg) = (
        cluster.addrs.clone(),
        rec.clone(),
        ops.clone(),
        config.clone(),
    );
    let checked = node.spawn(async move {
        let c = Arc::new(
            NetClient::connect_recorded(addrs, cfg.client, Some((r2.clone(), "runner".into())))
                .await
                .expect("the runner binds"),
        );
        let clock = MadsimClock::new();
        let healed = clock.now();
        let agency = AgencyApi::new(c.clone());
        let live = loop {
            let health = c.are_agents_healthy(false).await;
            let write = agency
                .write_key(&key("/liveness"), json!(1), None, None)
                .await;
            let waited = clock.now() - healed;
            if health.is_ok() && write.is_ok() {
                break Ok(waited);
            }
            if waited >= cfg.liveness_bound {
                break Err(format!(
                    "no healthy, writable cluster within {:?} of the heal (health: {:?}, \
                     write: {:?})",
                    cfg.liveness_bound,
                    health.err().map(|e| e.to_string()),
                    write.err().map(|e| e.to_string())
                ));
            }
            madsim::time::sleep(Duration::from_millis(100)).await;
        };
        r2.record(
            "runner",
            Event::Check {
                name: "liveness".into(),
                ok: live.is_ok(),
                detail: match &live {
                    Ok(d) => format!("healthy and writable {} ms after the heal", d.as_millis()),
                    Err(e) => e.clone(),
                },
            },
        );
        if live.is_ok() {
            let p = Process {
                id: 0,
                node: "runner".into(),
                rec: r2.clone(),
                clock,
                ops: ops2,
                agency: AgencyApi::new(c.clone()),
            };
            let w = key("/w");
            p.op("read_all", &w, Value::Null, p.agency.read_key(&w))
                .await;
        }
    });
    let _ = checked.await;
    let history = rec.snapshot();
    let violations = check::all(&history);
    Report {
        seed,
        digest: history.digest(),
        counters: counters(&history, rec.message_counts()),
        violations,
        swarm,
        schedule,
        history,
    }
}

/// The determinism self-check: runs `seed` twice and compares the histories. `Err` names the
/// first record where they differ.
pub fn self_check(config: &RunConfig, seed: u64) -> Result<Report, String> {
    let a = run(config, seed).map_err(|e| e.to_string())?;
    let b = run(config, seed).map_err(|e| e.to_string())?;
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
