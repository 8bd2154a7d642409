//! Seeded runs of the whole world: `run(config, seed) -> Report` builds a cluster and its
//! clients, carries out a fault schedule (given, or generated from the seed by the swarm)
//! while the clients run a mixed KV workload, lifts every fault, then checks liveness (a
//! healthy, writable cluster within a bound) and durability (a final read finds every
//! acknowledged write), and runs the first checkers over the history.
//!
//! The same seed, config and build give a byte-identical history, so the same digest;
//! [`self_check`] runs a seed twice and says where two runs first differ if they do.

use crate::actor::{self, run_actor, ActorEnv, Socket};
use crate::check::{self, Violation};
use crate::clock::{NodeClock, SkewedClock};
use crate::cluster::{ClientConfig, Cluster, ClusterConfig, NetClient};
use crate::history::{Completion, Event, History, Recorder};
use crate::manager::{LeaseManagerActor, ManagerClient};
use crate::nemesis::{self, Schedule, Swarm, SwarmSpec};
use crate::resource::{FencedResource, ResourceMsg};
use crate::{run_seed, MadsimClock, RunFailure};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenure_core::agency::{Agency, AgencyApi, AgencyError, Lock};
use tenure_core::kv::{Kvi, Kvs};
use tenure_core::leadership::{LeadershipError, Manager as LeadershipManager, ManagerConfig};
use tenure_core::lease::{Checker, Claimer, LeaseClient, LeaseError, LeaseManager, Token};
use tenure_core::storage::{Record, Storage, StorageApi, StorageError};
use tenure_core::{ClientError, Clock, Key};
use tenure_core::{Command, Op, Outcome, StoreClient, Txn, TxnOutcome};

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
            lock_ttl: Duration::from_secs(2),
            lock_delay: Duration::ZERO,
            client_drift: 0.0,
            client_drift_slow: false,
            work: Duration::from_millis(20),
            clock_jumps: true,
            bugs: crate::bugs::Bugs::new(),
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
    /// Belief changes of lock holders, and writes the fenced resource accepted or rejected.
    pub beliefs: usize,
    pub fenced_accepted: usize,
    pub fenced_rejected: usize,
}

/// What a run produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub seed: u64,
    /// SHA-256 of the history's JSON lines.
    pub digest: String,
    pub counters: Counters,
    pub violations: Vec<Violation>,
    /// Findings that are expected under some faults and not failures by themselves: S11,
    /// actions outside a holder's belief (a paused holder writing late), which fencing
    /// must make harmless.
    pub warnings: Vec<Violation>,
    /// The kinds of fault the swarm chose (swarm runs only).
    pub swarm: Option<Swarm>,
    /// The schedule carried out: each step at the true time it happened, faults aimed at the
    /// leader as they were resolved, and the lifts at the end.
    pub schedule: Schedule,
    /// A user world's `sometimes` points: how many times each was reached (declared points
    /// that were not, at zero).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sometimes: BTreeMap<String, u64>,
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
            Event::Belief { .. } => c.beliefs += 1,
            Event::Fenced { accepted, .. } => {
                if *accepted {
                    c.fenced_accepted += 1
                } else {
                    c.fenced_rejected += 1
                }
            }
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
    clock: Arc<dyn Clock>,
    ops: Arc<AtomicU64>,
    agency: AgencyApi,
}

/// How an error ends a recorded operation.
trait Classify: std::fmt::Display {
    /// The operation surely had no effect (`fail`); otherwise it is unknown (`info`).
    fn definite(&self) -> bool;
    /// A read found nothing: a successful read of "no value".
    fn absent(&self) -> bool;
}

impl Classify for AgencyError {
    fn definite(&self) -> bool {
        matches!(
            self,
            AgencyError::ConditionFailed { .. }
                | AgencyError::AlreadyLocked
                | AgencyError::NotLocked
                | AgencyError::Client(ClientError::Unavailable(_))
        )
    }
    fn absent(&self) -> bool {
        matches!(self, AgencyError::KeyNotFound { .. })
    }
}

impl Classify for StorageError {
    fn definite(&self) -> bool {
        matches!(
            self,
            StorageError::AlreadyExists(_)
                | StorageError::NotFound
                | StorageError::WrongVersion { .. }
                | StorageError::Client(ClientError::Unavailable(_))
        )
    }
    fn absent(&self) -> bool {
        matches!(self, StorageError::NotFound)
    }
}

impl Process {
    async fn op<F, E>(&self, f: &str, key: &Key, value: Value, call: F) -> (Completion, Value)
    where
        F: std::future::Future<Output = Result<Value, E>>,
        E: Classify,
    {
        self.op_on(f, &key.to_string(), value, call).await
    }

    /// [`Process::op`] on something other than an agency key (a fenced resource).
    async fn op_on<F, E>(&self, f: &str, key: &str, value: Value, call: F) -> (Completion, Value)
    where
        F: std::future::Future<Output = Result<Value, E>>,
        E: Classify,
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
            Err(e) if e.absent() && (f.starts_with("read") || f == "storage_get") => {
                (Completion::Ok, Value::Null)
            }
            Err(e) if e.definite() => (Completion::Fail, json!(e.to_string())),
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

/// The lock the lockers contend for, and the resource it guards.
const LOCK_KEY: &str = "/locks/0";
const LOCK_RESOURCE: &str = "lock:/locks/0";
/// The Juju lease the leasers contend for, and the resource it guards.
const LEASE_NAME: &str = "svc";
const LEASE_RESOURCE: &str = "lease:svc";

/// The service whose leadership the leaders contend for, and the resource it guards.
const SERVICE: &str = "app";
const LEADERSHIP_RESOURCE: &str = "leadership:app";

/// How many times the runner probes health on the stable cluster (S17).
const HEALTH_PROBES: usize = 5;

/// The agency key behind each resource holders believe in (for S4).
const EXPIRING_KEYS: [(&str, &str); 3] = [
    (LOCK_KEY, LOCK_RESOURCE),
    ("/lease/svc", LEASE_RESOURCE),
    ("/lease/app", LEADERSHIP_RESOURCE),
];

/// What a holder process contends for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HolderKind {
    Lock,
    Lease,
    Leadership,
}

impl HolderKind {
    fn role(self) -> &'static str {
        match self {
            HolderKind::Lock => "locker",
            HolderKind::Lease => "leaser",
            HolderKind::Leadership => "leader",
        }
    }

    fn resource(self) -> &'static str {
        match self {
            HolderKind::Lock => LOCK_RESOURCE,
            HolderKind::Lease => LEASE_RESOURCE,
            HolderKind::Leadership => LEADERSHIP_RESOURCE,
        }
    }
}

/// Starts the fenced resource guarded by `kind` on its own node; returns its address.
fn start_resource(
    cluster: &Cluster,
    rec: &Recorder,
    kind: HolderKind,
    config: &RunConfig,
) -> SocketAddr {
    let host = match kind {
        HolderKind::Lock => 1,
        HolderKind::Lease => 2,
        HolderKind::Leadership => 3,
    };
    let addr = SocketAddr::from(([10, 0, 9, host], 5000));
    let env = ActorEnv {
        name: format!("resource-{}", kind.role()),
        addr,
        clock: SkewedClock::with_origin(
            rec.origin(),
            Arc::new(Mutex::new(
                NodeClock::new(0, 0.0).expect("zero drift is valid"),
            )),
        ),
        disk: None,
        fsync: Duration::ZERO,
        rec: rec.clone(),
    };
    let name = format!("resource-{}", kind.role());
    let mut resource = FencedResource::new(kind.resource(), &name, rec.clone());
    if config
        .bugs
        .contains(crate::bugs::Bug::ResourceSkipsTokenCheck)
    {
        resource = resource.without_token_check();
    }
    cluster
        .node(&name, addr.ip())
        .spawn(run_actor(resource, env));
    addr
}

/// A locker: takes the lock, holds it for a while, and while it believes it holds it (with
/// at least `work` of belief left) writes to the resource with its fencing token; then
/// unlocks. Every belief change is recorded with the true time it ends at.
async fn locker(p: Process, clock: SkewedClock, resource: SocketAddr, cfg: &RunConfig) {
    let sock = Socket::bind_any().expect("a locker binds");
    let (rec, node, process) = (p.rec.clone(), p.node.clone(), p.id);
    let belief_clock = clock.clone();
    let lock = Lock::new(
        Arc::new(p.agency.clone()),
        clock.shared(),
        key(LOCK_KEY),
        &format!("locker-{process}"),
        cfg.lock_ttl,
    )
    .and_then(|l| l.with_drift_bound(cfg.cluster.agent.rho))
    .and_then(|l| l.with_lock_delay(cfg.lock_delay))
    .and_then(|l| l.with_bugs(cfg.bugs))
    .and_then(|l| {
        l.with_observer(move |b| {
            rec.record(
                &node,
                Event::Belief {
                    process,
                    resource: LOCK_RESOURCE.into(),
                    token: b.token,
                    until_local_us: b.until.map(|u| u.as_micros() as u64),
                    until_us: b.until.map(|u| belief_clock.true_at(u).as_micros() as u64),
                },
            )
        })
    })
    .expect("the lock's settings are valid");
    let lock_key = key(LOCK_KEY);
    let mut writes = 0u64;
    while p.rec.true_now() < cfg.duration {
        let (res, _) = p
            .op("lock", &lock_key, Value::Null, async {
                lock.lock().await.map(|t| json!(t))
            })
            .await;
        if res != Completion::Ok {
            let ms = 50 + madsim::rand::random::<u64>() % 200;
            clock.sleep(Duration::from_millis(ms)).await;
            continue;
        }
        let hold = cfg
            .lock_ttl
            .mul_f64(0.5 + 2.0 * madsim::rand::random::<f64>());
        let until = clock.now() + hold;
        while clock.now() < until {
            let left = lock
                .belief_deadline()
                .filter(|_| lock.is_locked())
                .map(|d| d.saturating_sub(clock.now()));
            let (Some(left), Some(token)) = (left, lock.fencing_token()) else {
                break;
            };
            if left <= cfg.work + Duration::from_millis(5) {
                clock.sleep(Duration::from_millis(10)).await;
                continue;
            }
            // The work between the check and the write: a pause here makes it late.
            clock.sleep(cfg.work).await;
            writes += 1;
            fenced_write(&p, &sock, (resource, LOCK_RESOURCE), token, writes).await;
            clock.sleep(between_writes()).await;
        }
        // Let go when done, as a deferred unlock does, whether or not the belief lasted: the
        // library answers "not locked" without asking the agency if it no longer holds it.
        p.op("unlock", &lock_key, Value::Null, async {
            lock.unlock().await.map(|_| Value::Null)
        })
        .await;
        clock.sleep(Duration::from_millis(50)).await;
    }
}

/// A client process on true time with its agency client (call on the process's node).
async fn plain_process(
    agents: Vec<SocketAddr>,
    cfg: &RunConfig,
    rec: Recorder,
    ops: Arc<AtomicU64>,
    id: u64,
    name: String,
) -> (Process, Arc<NetClient>) {
    let c = NetClient::connect_recorded(agents, cfg.client, Some((rec.clone(), name.clone())))
        .await
        .expect("a process binds");
    let c = Arc::new(c);
    let p = Process {
        id,
        node: name,
        rec,
        clock: MadsimClock::new().shared(),
        ops,
        agency: AgencyApi::new(c.clone()),
    };
    (p, c)
}

/// A process's own clock, drifting at a rate drawn from `[-client_drift, client_drift]`, and
/// an agency client on it (call on the process's node).
async fn drifting_client(
    agents: Vec<SocketAddr>,
    cfg: &RunConfig,
    rec: &Recorder,
    name: &str,
) -> (SkewedClock, NetClient) {
    // Drawn either way (the draw is made even when unused, so the rest of the run's draws
    // stay where they were).
    let drawn = (madsim::rand::random::<f64>() * 2.0 - 1.0) * cfg.client_drift;
    let drift = if cfg.client_drift_slow {
        -cfg.client_drift
    } else {
        drawn
    };
    let node_clock = NodeClock::new(0, drift).expect("client drift lies in (-1, 1)");
    let clock = SkewedClock::with_origin(rec.origin(), Arc::new(Mutex::new(node_clock)));
    let c = NetClient::connect_with(
        agents,
        cfg.client,
        Some((rec.clone(), name.to_string())),
        clock.shared(),
    )
    .await
    .expect("a process binds");
    (clock, c)
}

/// Starts the lease-manager actors, each on its own node with its own drifting clock and
/// agency client; returns their addresses.
fn start_managers(cluster: &Cluster, rec: &Recorder, config: &RunConfig) -> Vec<SocketAddr> {
    let first = config.processes() - config.watchers - config.managers;
    (0..config.managers)
        .map(|k| {
            let addr = SocketAddr::from(([10, 0, 8, k as u8 + 1], 6000));
            let name = format!("manager-{}", k + 1);
            let (agents, rec, cfg, n) = (
                cluster.addrs.clone(),
                rec.clone(),
                config.clone(),
                name.clone(),
            );
            let node = cluster.node(&name, addr.ip());
            cluster.register_process((first + k) as u64 + 1, &node);
            node.spawn(async move {
                let (clock, c) = drifting_client(agents, &cfg, &rec, &n).await;
                let client = LeaseClient::new(Arc::new(c))
                    .with_drift_bound(cfg.cluster.agent.rho)
                    .expect("rho lies in [0, 1)");
                let actor = LeaseManagerActor::new(
                    LeaseManager::new(Arc::new(client)),
                    Duration::from_secs(1),
                );
                let env = ActorEnv {
                    name: n,
                    addr,
                    clock,
                    disk: None,
                    fsync: Duration::ZERO,
                    rec,
                };
                run_actor(actor, env).await;
            });
            addr
        })
        .collect()
}

/// Records a holder's belief change: it holds `token` until local time `until` (mapped to
/// true time through its clock), or stopped believing (`None`).
fn record_belief(
    p: &Process,
    clock: &SkewedClock,
    resource: &str,
    token: u64,
    until: Option<Duration>,
) {
    p.rec.record(
        &p.node,
        Event::Belief {
            process: p.id,
            resource: resource.into(),
            token,
            until_local_us: until.map(|u| u.as_micros() as u64),
            until_us: until.map(|u| clock.true_at(u).as_micros() as u64),
        },
    );
}

/// A holder's pause after a fenced write, drawn from 50 - 150 ms: with a fixed pause every
/// holder wrote in the same rhythm, and a fault at a fixed instant (a scheduled pause) hit
/// the same phase of it on every seed.
fn between_writes() -> Duration {
    Duration::from_millis(50 + madsim::rand::random::<u64>() % 101)
}

/// Writes to `resource` (called `name` in beliefs) with `token`, recorded as a `fenced_write`
/// operation on that name.
async fn fenced_write(
    p: &Process,
    sock: &Socket,
    (resource, name): (SocketAddr, &str),
    token: u64,
    id: u64,
) {
    let w = ResourceMsg::Write {
        process: p.id,
        token,
        id,
        value: None,
    };
    p.op_on("fenced_write", name, json!({ "token": token }), async {
        actor::send(sock, &p.rec, &p.node, resource, w);
        Ok::<_, AgencyError>(Value::Null)
    })
    .await;
}

/// How a leaser claims: a Juju lease through a `LeaseManager`, or a service's leadership
/// through the leadership `Manager` (which also checks its leadership and guards a
/// transaction with the token before each write).
enum Claimant {
    Lease(LeaseManager),
    Leader(LeadershipManager),
    /// Through the lease-manager actors, by messages.
    Remote(ManagerClient),
}

impl Claimant {
    async fn claim(&self, who: &str, d: Duration) -> Result<u64, LeaseError> {
        match self {
            Claimant::Lease(m) => m.claim(LEASE_NAME, who, d).await,
            Claimant::Remote(m) => m.claim(LEASE_NAME, who, d).await,
            Claimant::Leader(m) => m
                .claim_leadership(SERVICE, who, d)
                .await
                .map_err(|e| match e {
                    LeadershipError::ClaimDenied => LeaseError::ClaimDenied,
                    e => LeaseError::Invalid(e.to_string()),
                }),
        }
    }

    /// A claim recorded as the operation `claim` on `key`: the token, or `"denied"` (an
    /// answer, checked by S3), or unknown.
    async fn recorded_claim(&self, p: &Process, key: &Key, who: &str, d: Duration) -> Value {
        let (res, v) = p
            .op("claim", key, Value::Null, async {
                match self.claim(who, d).await {
                    Ok(t) => Ok(json!(t)),
                    Err(LeaseError::ClaimDenied) => Ok(json!("denied")),
                    Err(e) => Err(AgencyError::Invalid(e.to_string())),
                }
            })
            .await;
        match res {
            Completion::Ok => v,
            _ => Value::Null,
        }
    }

    /// A token check recorded as the operation `check` on `key`: `true` if `who` holds the
    /// lease now, `false` if not (checked by S3), or unknown. A leader's check yields the token
    /// whose preconditions guard its transaction.
    async fn recorded_check(&self, p: &Process, key: &Key, who: &str) -> Option<Token> {
        let mut token = None;
        p.op("check", key, Value::Null, async {
            let held = match self {
                Claimant::Leader(m) => match m.check_leadership(SERVICE, who).await {
                    Ok(t) => {
                        token = Some(t);
                        Ok(())
                    }
                    Err(LeadershipError::NotLeader { .. }) => Err(LeaseError::NotHeld),
                    Err(e) => Err(LeaseError::Invalid(e.to_string())),
                },
                Claimant::Lease(m) => m.token(LEASE_NAME, who).check().await,
                Claimant::Remote(m) => m.check(LEASE_NAME, who).await,
            };
            match held {
                Ok(()) => Ok(json!(true)),
                Err(LeaseError::NotHeld) => Ok(json!(false)),
                Err(e) => Err(AgencyError::Invalid(e.to_string())),
            }
        })
        .await;
        token
    }
}

/// A leaser: claims the Juju lease `svc` (or the leadership of `app`) on its own clock,
/// re-claims (extends) every half duration while it wants it, and while it believes it holds
/// it (until the start of its last successful claim plus `duration * (1 - rho)`, with at
/// least `work` left) writes to the resource with its fencing token. A leader also checks
/// its leadership and commits a transaction guarded by the leadership token first.
async fn leaser(
    p: Process,
    kind: HolderKind,
    store: Arc<NetClient>,
    clock: SkewedClock,
    resource: SocketAddr,
    managers: &[SocketAddr],
    cfg: &RunConfig,
) {
    let sock = Socket::bind_any().expect("a leaser binds");
    let rho = cfg.cluster.agent.rho;
    let client = LeaseClient::new(store.clone())
        .with_drift_bound(rho)
        .expect("rho lies in [0, 1)");
    let (manager, name) = match kind {
        HolderKind::Leadership => {
            let config = ManagerConfig {
                client: Some(Arc::new(client)),
                clock: Some(clock.shared()),
            };
            let m = LeadershipManager::new(config).expect("the config is complete");
            (Claimant::Leader(m), SERVICE)
        }
        _ if !managers.is_empty() => {
            let m = ManagerClient::connect(
                managers.to_vec(),
                clock.shared(),
                Duration::from_secs(2),
                p.rec.clone(),
                &p.node,
            )
            .await
            .expect("a leaser binds");
            (Claimant::Remote(m), LEASE_NAME)
        }
        _ => (
            Claimant::Lease(LeaseManager::new(Arc::new(client))),
            LEASE_NAME,
        ),
    };
    let resource_name = kind.resource();
    let me = format!("{}-{}", kind.role(), p.id);
    let d = cfg.lock_ttl;
    let lease_key = key(&format!("/lease/{name}"));
    let mut writes = 0u64;
    // When a belief counts from: the start of the call, or (planted) its answer.
    let from_response = cfg.bugs.contains(crate::bugs::Bug::HolderTimesFromResponse);
    let belief_start = |start| if from_response { clock.now() } else { start };
    while p.rec.true_now() < cfg.duration {
        let start = clock.now();
        let v = manager.recorded_claim(&p, &lease_key, &me, d).await;
        let start = belief_start(start);
        let token = match v.as_u64() {
            Some(t) => t,
            None if v == "denied" && matches!(manager, Claimant::Leader(_)) => {
                // Denied: a unit waits for the leadership to be released (bounded, so the
                // run ends), then claims again.
                if let Claimant::Leader(m) = &manager {
                    let wait = 2 * d;
                    p.op("block_until_released", &lease_key, Value::Null, async {
                        match tenure_core::clock::timeout(
                            &*p.clock,
                            wait,
                            m.block_until_leadership_released(SERVICE),
                        )
                        .await
                        {
                            Some(Ok(())) => Ok(Value::Null),
                            Some(Err(e)) => Err(AgencyError::Invalid(e.to_string())),
                            None => Err(AgencyError::Client(ClientError::Unavailable(format!(
                                "still held after {wait:?}"
                            )))),
                        }
                    })
                    .await;
                }
                continue;
            }
            _ => {
                let ms = 50 + madsim::rand::random::<u64>() % 200;
                clock.sleep(Duration::from_millis(ms)).await;
                continue;
            }
        };
        let mut deadline = start + d.mul_f64(1.0 - rho);
        record_belief(&p, &clock, resource_name, token, Some(deadline));
        let hold_until = clock.now() + d.mul_f64(0.5 + 2.0 * madsim::rand::random::<f64>());
        let mut next_claim = start + d / 2;
        loop {
            let now = clock.now();
            if now >= deadline {
                record_belief(&p, &clock, resource_name, token, None);
                break;
            }
            if now >= next_claim && now < hold_until {
                let start = clock.now();
                let v = manager.recorded_claim(&p, &lease_key, &me, d).await;
                let start = belief_start(start);
                match v.as_u64() {
                    Some(t) if t == token => {
                        deadline = deadline.max(start + d.mul_f64(1.0 - rho));
                        record_belief(&p, &clock, resource_name, token, Some(deadline));
                    }
                    // Denied or granted anew: our grant is gone.
                    Some(_) => {
                        record_belief(&p, &clock, resource_name, token, None);
                        break;
                    }
                    None if v == "denied" => {
                        record_belief(&p, &clock, resource_name, token, None);
                        break;
                    }
                    // Unknown: keep believing until the deadline.
                    None => {}
                }
                next_claim = start + d / 2;
                continue;
            }
            if now >= hold_until {
                // Let it lapse (a Juju lease is not released, it expires).
                record_belief(&p, &clock, resource_name, token, None);
                clock.sleep(deadline.saturating_sub(now)).await;
                break;
            }
            if deadline.saturating_sub(now) <= cfg.work + Duration::from_millis(5) {
                clock.sleep(Duration::from_millis(10)).await;
                continue;
            }
            clock.sleep(cfg.work).await;
            // A token check before acting, as Juju's workers do (S3 checks its answer).
            let checked = manager.recorded_check(&p, &lease_key, &me).await;
            if let Some(t) = checked {
                // The leadership token guards a transaction in the agency itself.
                let state = key("/app/state");
                p.op("guarded_write", &state, json!(token), async {
                    let txn = Txn::new()
                        .when_all(t.preconditions())
                        .then(Op::set(state.clone(), json!(token)));
                    match store.submit(Command::Txn(txn)).await? {
                        Outcome::Txn(TxnOutcome::Committed { .. }) => Ok(json!(token)),
                        _ => Err(AgencyError::NotLocked),
                    }
                })
                .await;
            }
            writes += 1;
            fenced_write(&p, &sock, (resource, resource_name), token, writes).await;
            clock.sleep(between_writes()).await;
        }
        clock.sleep(Duration::from_millis(50)).await;
    }
}

/// A member: an hmetcd handle whose session keeps the temp key `member-<process>` alive, and
/// a Storage record of the same name bound to a kept-alive Lessor lease, until the run ends
/// (or the process dies, when both must go within the TTL).
async fn member(p: Process, store: Arc<NetClient>, cfg: &RunConfig) {
    let option = format!("session_ttl_ms={}", cfg.lock_ttl.as_millis());
    let kv = Kvs::open(store.clone(), &[&option]).expect("the session option is valid");
    let storage = StorageApi::new(store).with_bugs(cfg.bugs);
    let name = format!("member-{}", p.id);
    let path = key(&format!("/kv/{name}"));
    loop {
        let (res, _) = p
            .op("temp_key", &path, Value::Null, async {
                kv.temp_key(&name)
                    .await
                    .map(|_| Value::Null)
                    .map_err(|e| AgencyError::Invalid(e.to_string()))
            })
            .await;
        if res == Completion::Ok || p.rec.true_now() >= cfg.duration {
            break;
        }
        madsim::time::sleep(Duration::from_millis(200)).await;
    }
    let record_key = key(&format!("/storage/{name}"));
    let mut lease = None;
    while p.rec.true_now() < cfg.duration {
        let (res, _) = p
            .op("leased_record", &record_key, Value::Null, async {
                let fail = |e: StorageError| AgencyError::Invalid(e.to_string());
                let l = storage
                    .lessor()
                    .new_lease(cfg.lock_ttl, true)
                    .await
                    .map_err(fail)?;
                let mut r = Record::new(&name, json!(p.id));
                r.lease = l.id();
                storage.create(r).await.map_err(fail)?;
                lease = Some(l);
                Ok::<_, AgencyError>(Value::Null)
            })
            .await;
        if res == Completion::Ok {
            break;
        }
        madsim::time::sleep(Duration::from_millis(200)).await;
    }
    // While the session and lease are kept alive: take the hmetcd distributed lock now and
    // then (a timed lock: try, wait at most 1 s), bump a shared Storage record by version,
    // and wait for someone else's change to it.
    let dist = key(&format!("/kv/{}", tenure_core::kv::DIST_LOCK_KEY));
    let shared = key("/storage/shared");
    while p.rec.true_now() < cfg.duration {
        let (res, _) = p
            .op("dist_timed_lock", &dist, Value::Null, async {
                kv.dist_timed_lock(Duration::from_secs(1))
                    .await
                    .map(|_| Value::Null)
                    .map_err(|e| AgencyError::Invalid(e.to_string()))
            })
            .await;
        if res == Completion::Ok {
            madsim::time::sleep(Duration::from_millis(100)).await;
            p.op("dist_unlock", &dist, Value::Null, async {
                kv.dist_unlock()
                    .await
                    .map(|_| Value::Null)
                    .map_err(|e| AgencyError::Invalid(e.to_string()))
            })
            .await;
        }
        // Read the shared record, then set it by the version read (or create it); each step
        // is an operation of its own, so the storage model checks them (S14).
        let (res, got) = p
            .op("storage_get", &shared, Value::Null, async {
                storage
                    .get("shared")
                    .await
                    .map(|r| json!({"value": r.value, "version": r.version}))
            })
            .await;
        if res != Completion::Ok {
            madsim::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        // Each member writes its own id, so values repeat (A, B, A, ...): only the version
        // tells one write from another, as compare-and-set by version must. Some work
        // between the read and the write back (up to 1 s) lets other members' writes come
        // in between, which the compare-and-set must then refuse.
        let mine = json!(p.id);
        let think = madsim::rand::random::<u64>() % 1000;
        madsim::time::sleep(Duration::from_millis(think)).await;
        let (res, v) = match got.get("version").and_then(Value::as_u64) {
            Some(seen) => {
                let input = json!({"version": seen, "value": mine});
                let (res, v) = p
                    .op("cas_by_version", &shared, input, async {
                        let mut r = Record::new("shared", mine.clone());
                        r.version = seen;
                        storage
                            .cas_by_version(r)
                            .await
                            .map(|v| json!({ "version": v }))
                    })
                    .await;
                (
                    res,
                    if res == Completion::Ok {
                        v
                    } else {
                        json!({ "version": seen })
                    },
                )
            }
            None => {
                p.op("create", &shared, json!({ "value": mine }), async {
                    storage
                        .create(Record::new("shared", mine.clone()))
                        .await
                        .map(|v| json!({ "version": v }))
                })
                .await
            }
        };
        if let (Completion::Ok | Completion::Fail, Some(v)) =
            (res, v.get("version").and_then(Value::as_u64))
        {
            // Wait (at most 1 s) for someone else's change.
            p.op("wait_for_version_change", &shared, json!(v), async {
                let wait = storage.wait_for_version_change("shared", v);
                match tenure_core::clock::timeout(&*p.clock, Duration::from_secs(1), wait).await {
                    Some(Ok(Some(r))) => Ok(json!({ "version": r.version })),
                    Some(Ok(None)) => Ok(json!({ "deleted": true })),
                    Some(Err(e)) => Err(e),
                    None => Ok(json!({ "timed_out": true })),
                }
            })
            .await;
        }
        madsim::time::sleep(Duration::from_millis(200)).await;
    }
    drop((kv, lease));
}

fn key(path: &str) -> Key {
    Key::parse(path).expect("workload keys are valid")
}

/// L2, run by the runner after the heal, once every holder has stopped or died: the lock, the
/// lease and the leadership the run contended for are each acquirable within
/// [`RunConfig::release_bound`] (the runner takes and gives back each, as process 0). Timed from when
/// the runner starts, since a holder may keep a grant past the end of the faults.
async fn acquirable(p: &Process, store: &Arc<NetClient>, cfg: &RunConfig) {
    let rho = cfg.cluster.agent.rho;
    let bound = cfg.release_bound();
    let started = p.clock.now();
    let mut found = Vec::new();
    if cfg.lockers > 0 {
        let lock = Lock::new(
            Arc::new(p.agency.clone()),
            p.clock.clone(),
            key(LOCK_KEY),
            "runner",
            cfg.lock_ttl,
        )
        .and_then(|l| l.with_drift_bound(rho))
        .and_then(|l| l.with_lock_delay(cfg.lock_delay))
        .expect("the lock's settings are valid");
        let k = key(LOCK_KEY);
        let got = loop {
            let (res, _) = p
                .op("lock", &k, Value::Null, async {
                    lock.lock().await.map(|t| json!(t))
                })
                .await;
            if res == Completion::Ok {
                p.op("unlock", &k, Value::Null, async {
                    lock.unlock().await.map(|_| Value::Null)
                })
                .await;
                break true;
            }
            if p.clock.now() - started >= bound {
                break false;
            }
            p.clock.sleep(Duration::from_millis(100)).await;
        };
        found.push((LOCK_KEY.to_string(), got));
    }
    let manager = LeaseManager::new(Arc::new(
        LeaseClient::new(store.clone())
            .with_drift_bound(rho)
            .expect("rho lies in [0, 1)"),
    ));
    for (wanted, name) in [(cfg.leasers, LEASE_NAME), (cfg.leaders, SERVICE)] {
        if wanted == 0 {
            continue;
        }
        let k = key(&format!("/lease/{name}"));
        let got = loop {
            let (res, v) = p
                .op("claim", &k, Value::Null, async {
                    match manager.claim(name, "runner", cfg.lock_ttl).await {
                        Ok(t) => Ok(json!(t)),
                        Err(LeaseError::ClaimDenied) => Ok(json!("denied")),
                        Err(e) => Err(AgencyError::Invalid(e.to_string())),
                    }
                })
                .await;
            if res == Completion::Ok && v.is_u64() {
                break true;
            }
            if p.clock.now() - started >= bound {
                break false;
            }
            p.clock.sleep(Duration::from_millis(100)).await;
        };
        found.push((k.to_string(), got));
    }
    if found.is_empty() {
        return;
    }
    let stuck: Vec<&str> = found
        .iter()
        .filter(|(_, got)| !got)
        .map(|(k, _)| k.as_str())
        .collect();
    p.rec.record(
        "runner",
        Event::Check {
            name: "acquirable".into(),
            ok: stuck.is_empty(),
            detail: if stuck.is_empty() {
                format!(
                    "{} acquired {} ms after the holders stopped (bound {} ms)",
                    found
                        .iter()
                        .map(|(k, _)| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    (p.clock.now() - started).as_millis(),
                    bound.as_millis()
                )
            } else {
                format!(
                    "{} not acquirable within {bound:?} after the holders stopped",
                    stuck.join(", ")
                )
            },
        },
    );
}

/// L3, run by the runner after the heal: every member has stopped keeping its session and
/// its lease alive (or died), so its temp key and its leased Storage record disappear within
/// [`RunConfig::release_bound`].
async fn temp_keys_gone(p: &Process, store: &Arc<NetClient>, cfg: &RunConfig) {
    if cfg.members == 0 {
        return;
    }
    let first = cfg.processes() - cfg.watchers - cfg.managers - cfg.members;
    let keys: Vec<Key> = (first..first + cfg.members)
        .flat_map(|i| {
            let name = format!("member-{}", i + 1);
            [
                key(&format!("/kv/{name}")),
                key(&format!("/storage/{name}")),
            ]
        })
        .collect();
    let bound = cfg.release_bound();
    let started = p.clock.now();
    let left = loop {
        let mut left = Vec::new();
        for k in &keys {
            match store.read(k).await {
                Ok(r) if r.value.is_none() => {}
                _ => left.push(k.to_string()),
            }
        }
        if left.is_empty() || p.clock.now() - started >= bound {
            break left;
        }
        p.clock.sleep(Duration::from_millis(200)).await;
    };
    p.rec.record(
        "runner",
        Event::Check {
            name: "temp keys".into(),
            ok: left.is_empty(),
            detail: if left.is_empty() {
                format!(
                    "{} temp keys and leased records gone {} ms after the members stopped (bound {} ms)",
                    keys.len(),
                    (p.clock.now() - started).as_millis(),
                    bound.as_millis()
                )
            } else {
                format!(
                    "{} still there {bound:?} after the members stopped",
                    left.join(", ")
                )
            },
        },
    );
}

/// The register prefix the watchers watch.
const WATCHED: &str = "/r";

/// Per watcher process and stream (`watch`, `callback`), the last revision it received.
type Watched = Arc<Mutex<BTreeMap<(u64, &'static str), u64>>>;

/// Records a change a watcher received on `stream`.
fn record_watched(p: &Process, stream: &'static str, e: &tenure_core::command::Event) {
    p.rec.record(
        &p.node,
        Event::Watched {
            process: p.id,
            stream: stream.into(),
            key: e.key.to_string(),
            revision: e.revision,
            version: e.version,
        },
    );
}

/// Records that a watcher (re)started `stream` after revision `from`.
fn record_watch_start(p: &Process, stream: &'static str, from: u64) {
    p.rec.record(
        &p.node,
        Event::WatchStart {
            process: p.id,
            stream: stream.into(),
            key: WATCHED.into(),
            from,
        },
    );
}

/// A watcher follows `/r` and every key under it on two streams, recording every change it
/// receives (S16): a watch (it reads the revision, then asks for the events after it; when
/// the agency no longer keeps the events it needs, `Compacted`, it starts again from a fresh
/// read, recorded as a new start), and a change callback (an observer registration, from the
/// revision it applied at, whose notifications it pulls). Runs until the run ends.
async fn watcher(p: Process, store: Arc<NetClient>, seen: Watched) {
    let p = Arc::new(p);
    let (cp, cstore, cseen) = (p.clone(), store.clone(), seen.clone());
    madsim::task::spawn(async move { callbacks(&cp, &cstore, &cseen).await });
    let prefix = key(WATCHED);
    let mut after = None;
    loop {
        let from = match after {
            Some(a) => a,
            None => match store.read(&prefix).await {
                Ok(r) => {
                    record_watch_start(&p, "watch", r.revision);
                    r.revision
                }
                Err(_) => {
                    madsim::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        match store.wait_events(&prefix, from).await {
            Ok(events) => {
                let mut last = from;
                for e in &events {
                    record_watched(&p, "watch", e);
                    last = last.max(e.revision);
                }
                seen.lock().unwrap().insert((p.id, "watch"), last);
                after = Some(last);
            }
            Err(ClientError::Compacted { .. }) => after = None,
            Err(_) => {
                after = Some(from);
                madsim::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The callback stream of a watcher: registers `http://watcher-<process>/cb` as an observer
/// of `/r` (until that commits), then records each notification pulled for it.
async fn callbacks(p: &Process, store: &Arc<NetClient>, seen: &Watched) {
    let url = format!("http://watcher-{}/cb", p.id);
    let observe = Command::Observe {
        key: key(WATCHED),
        url: url.clone(),
    };
    let from = loop {
        match store.submit(observe.clone()).await {
            Ok(Outcome::Observed { revision, .. }) => break revision,
            _ => madsim::time::sleep(Duration::from_millis(100)).await,
        }
    };
    record_watch_start(p, "callback", from);
    seen.lock().unwrap().insert((p.id, "callback"), from);
    let mut inbox = store.callback_inbox_after(&url, from);
    while let Some(e) = futures::StreamExt::next(&mut inbox).await {
        record_watched(p, "callback", &e);
        seen.lock().unwrap().insert((p.id, "callback"), e.revision);
    }
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
    run_with(config, seed, None)
}

/// [`run`] with a user world's parts and checks.
pub(crate) fn run_with(
    config: &RunConfig,
    seed: u64,
    parts: Option<Arc<crate::world::Parts>>,
) -> Result<Report, Box<RunError>> {
    let shared: Arc<Mutex<History>> = Arc::default();
    let (cfg, h) = (config.clone(), shared.clone());
    let r = run_seed(seed, Some(config.time_limit), move || {
        run_inside(cfg, seed, h, parts)
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
    if config.watchers > 0 {
        rec = rec.with_changes_under(key(WATCHED));
    }
    let agents = config.cluster.agents as u64;
    let (swarm, schedule) = match &config.faults {
        Faults::None => (None, Schedule::default()),
        Faults::Swarm => {
            let spec = SwarmSpec {
                agents,
                processes: (config.processes() + parts.as_ref().map_or(0, |p| p.parts.len()))
                    as u64,
                duration: config.duration,
                clock_jumps: config.clock_jumps,
            };
            let (kinds, s) = nemesis::swarm_with(seed, &spec);
            (Some(kinds), s)
        }
        Faults::Schedule(s) => (None, s.clone()),
    };
    let mut cluster_config = config.cluster.clone();
    cluster_config.agent.bugs = config.bugs;
    config.client.bugs = config.bugs;
    let cluster = Cluster::start_recorded(cluster_config, seed, rec.clone());
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
            let (p, _) = plain_process(addrs, &cfg, rec, ops, i as u64 + 1, name).await;
            workload(p, cfg.registers, cfg.op_pause, cfg.duration).await;
        }));
    }
    let managers = start_managers(&cluster, &rec, &config);
    // Lock and lease holders, numbered after the KV clients, each with a resource to fence.
    for (kind, count, first) in [
        (HolderKind::Lock, config.lockers, config.clients),
        (
            HolderKind::Lease,
            config.leasers,
            config.clients + config.lockers,
        ),
        (
            HolderKind::Leadership,
            config.leaders,
            config.clients + config.lockers + config.leasers,
        ),
    ] {
        if count == 0 {
            continue;
        }
        let resource = start_resource(&cluster, &rec, kind, &config);
        for j in 0..count {
            let i = first + j;
            let name = format!("{}-{}", kind.role(), j + 1);
            let node = cluster.client_node(&name, i);
            cluster.register_process(i as u64 + 1, &node);
            let (addrs, rec, ops, cfg, managers) = (
                cluster.addrs.clone(),
                rec.clone(),
                ops.clone(),
                config.clone(),
                managers.clone(),
            );
            tasks.push(node.spawn(async move {
                let (clock, c) = drifting_client(addrs, &cfg, &rec, &name).await;
                let c = Arc::new(c);
                let p = Process {
                    id: i as u64 + 1,
                    node: name,
                    rec,
                    clock: clock.shared(),
                    ops,
                    agency: AgencyApi::new(c.clone()),
                };
                match kind {
                    HolderKind::Lock => locker(p, clock, resource, &cfg).await,
                    HolderKind::Lease | HolderKind::Leadership => {
                        leaser(p, kind, c, clock, resource, &managers, &cfg).await
                    }
                }
            }));
        }
    }
    let first_member = config.processes() - config.watchers - config.managers - config.members;
    for j in 0..config.members {
        let i = first_member + j;
        let name = format!("member-{}", j + 1);
        let node = cluster.client_node(&name, i);
        cluster.register_process(i as u64 + 1, &node);
        let (addrs, rec, ops, cfg) = (
            cluster.addrs.clone(),
            rec.clone(),
            ops.clone(),
            config.clone(),
        );
        tasks.push(node.spawn(async move {
            let (p, c) = plain_process(addrs, &cfg, rec, ops, i as u64 + 1, name).await;
            member(p, c, &cfg).await;
        }));
    }
    // Watchers run on past the workload, until the runner has checked that they caught up.
    let watched: Watched = Arc::default();
    for j in 0..config.watchers {
        let i = config.processes() - config.watchers + j;
        let name = format!("watcher-{}", j + 1);
        let node = cluster.client_node(&name, i);
        cluster.register_process(i as u64 + 1, &node);
        let (addrs, rec, ops, cfg, w) = (
            cluster.addrs.clone(),
            rec.clone(),
            ops.clone(),
            config.clone(),
            watched.clone(),
        );
        node.spawn(async move {
            let (p, c) = plain_process(addrs, &cfg, rec, ops, i as u64 + 1, name).await;
            watcher(p, c, w).await;
        });
    }
    // A user world's parts, numbered after the built-in roles (the runner's address comes
    // between).
    let first_part = config.processes() as u64 + 1;
    let world = parts
        .as_ref()
        .map(|p| crate::world::start::start(&cluster, &rec, &config, p, ops.clone(), first_part));
    // A written schedule has whatever it leaves in place lifted at the end, as swarms do.
    let done = match &config.faults {
        Faults::Schedule(_) => {
            nemesis::run_schedule_lifted(&cluster, &schedule, config.duration.as_millis() as u64)
                .await
        }
        _ => nemesis::run_schedule(&cluster, &schedule).await,
    };
    let schedule = Schedule {
        steps: done
            .into_iter()
            .map(|(at_ms, fault)| nemesis::Step { at_ms, fault })
            .collect(),
    };
    for t in tasks {
        let _ = t.await;
    }
    // Watchers killed for good are not expected to catch up.
    let dead: Vec<u64> = schedule
        .steps
        .iter()
        .filter_map(|s| match s.fault {
            nemesis::Fault::KillProcess { process } => Some(process),
            _ => None,
        })
        .collect();
    let watcher_ids: Vec<u64> = (config.processes() - config.watchers..config.processes())
        .map(|i| i as u64 + 1)
        .filter(|p| !dead.contains(p))
        .collect();
    // Every fault is lifted: liveness, then the final read for durability.
    let node = cluster.client_node("runner", config.processes());
    let (addrs, r2, ops2, cfg) = (
        cluster.addrs.clone(),
        rec.clone(),
        ops.clone(),
        config.clone(),
    );
    let w = watched.clone();
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
            // S17: on the now stable cluster, exactly one agent answers as leader and every
            // other redirects to it, probe after probe, and the leader stays the same.
            let mut seen = Vec::new();
            let mut problem = None;
            for _ in 0..HEALTH_PROBES {
                match c.health(false).await {
                    Ok(leader) => {
                        if seen.last().is_some_and(|l| *l != leader) {
                            problem = Some(format!(
                                "the leader changed on a stable cluster: {seen:?} then {leader:?}"
                            ));
                        }
                        seen.push(leader);
                    }
                    Err(e) => problem = Some(e.to_string()),
                }
                if problem.is_some() {
                    break;
                }
                madsim::time::sleep(Duration::from_millis(200)).await;
            }
            r2.record(
                "runner",
                Event::Check {
                    name: "health".into(),
                    ok: problem.is_none(),
                    detail: problem.unwrap_or_else(|| {
                        format!(
                            "{HEALTH_PROBES} probes: one leader, every other agent redirects to it"
                        )
                    }),
                },
            );
            let p = Process {
                id: 0,
                node: "runner".into(),
                rec: r2.clone(),
                clock: clock.shared(),
                ops: ops2,
                agency: AgencyApi::new(c.clone()),
            };
            acquirable(&p, &c, &cfg).await;
            temp_keys_gone(&p, &c, &cfg).await;
            if !watcher_ids.is_empty() {
                // L5: a last change reaches every live watcher within the bound.
                let fin = key(&format!("{WATCHED}/final"));
                let mut revision = None;
                p.op("write", &fin, json!(0), async {
                    let txn = Txn::new().then(Op::set(fin.clone(), json!(0)));
                    match c.submit(Command::Txn(txn)).await? {
                        Outcome::Txn(TxnOutcome::Committed { revision: r, .. }) => {
                            revision = Some(r);
                            Ok(json!(0))
                        }
                        other => Err(AgencyError::Invalid(format!("{other:?}"))),
                    }
                })
                .await;
                let started = clock.now();
                let behind = loop {
                    let seen = w.lock().unwrap().clone();
                    let behind: Vec<(u64, &str)> = watcher_ids
                        .iter()
                        .flat_map(|id| [(*id, "watch"), (*id, "callback")])
                        .filter(|w| revision.is_none_or(|r| seen.get(w).is_none_or(|s| *s < r)))
                        .collect();
                    if behind.is_empty() || clock.now() - started >= cfg.liveness_bound {
                        break behind;
                    }
                    madsim::time::sleep(Duration::from_millis(50)).await;
                };
                r2.record(
                    "runner",
                    Event::Check {
                        name: "watchers".into(),
                        ok: behind.is_empty(),
                        detail: match revision {
                            None => format!("the final write to {fin} did not commit"),
                            Some(r) if behind.is_empty() => format!(
                                "the watches and callbacks of {} live watchers received revision {r} within {} ms",
                                watcher_ids.len(),
                                (clock.now() - started).as_millis()
                            ),
                            Some(r) => format!(
                                "(watcher, stream) {behind:?} did not receive revision {r} within {:?}",
                                cfg.liveness_bound
                            ),
                        },
                    },
                );
            }
            let w = key("/w");
            p.op("read_all", &w, Value::Null, p.agency.read_key(&w))
                .await;
        }
    });
    let _ = checked.await;
    if let (Some(p), Some(w)) = (&parts, &world) {
        let first = first_part + p.parts.len() as u64;
        crate::world::start::eventually(&cluster, w, p, first).await;
    }
    let history = rec.snapshot();
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
    if let Some(p) = &parts {
        violations.extend(crate::world::user_checks(p, &history));
    }
    let mut warnings = check::actions_within_belief(&history);
    let (broken, noted) = check::split_warnings(violations);
    violations = broken;
    warnings.extend(noted);
    let report = Report {
        seed,
        digest: history.digest(),
        counters: counters(&history, rec.message_counts()),
        violations,
        warnings,
        swarm,
        schedule,
        sometimes: parts
            .as_ref()
            .map(|p| crate::world::sometimes_reached(p, &history))
            .unwrap_or_default(),
        history,
    };
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
