//! The simulated agency cluster: agent actors on madsim nodes, talking over madsim's network
//! with serde envelopes, persisting through their [`SimDisk`]; and [`NetClient`], the
//! networked [`StoreClient`] the API families run over.
//!
//! An agent is an [`Actor`]: on a message or its tick it feeds its [`AgentCore`], then carries
//! out the output in order: write to disk (the runtime syncs before anything leaves), send,
//! answer, record. Its disk lives outside the node, so a killed and restarted node recovers
//! from what it synced.

use crate::actor::{self, receive, send, Actor, ActorEnv, Ctx, Socket, Wire};
use crate::clock::{NodeClock, SkewedClock};
use crate::disk::SimDisk;
use crate::history::{bytes_fnv, bytes_hash, entry_hash, hash_hex, Event as HistEvent, Recorder};
use crate::MadsimClock;
use async_trait::async_trait;
use futures::channel::oneshot;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenure_core::agent::{AgentConfig, AgentCore, Request, Response};
use tenure_core::buggify;
use tenure_core::bugs::{Bug, Bugs};
use tenure_core::client::HealthError;
use tenure_core::client::{ClientError, LeaseInfo, StoreClient};
use tenure_core::clock::Clock;
use tenure_core::command::Cause;
use tenure_core::raft::{Entry, HardState, Index, Message, MsgKind, NodeId, Role, Snapshot, Term};
use tenure_core::store::{Node, ReadResult};
use tenure_core::{Command, Event, Key, LeaseId, Outcome, Revision};

const LOG_FILE: &str = "raft.log";
const HARD_STATE_FILE: &str = "raft.hs";
const SNAPSHOT_FILE: &str = "raft.snap";

/// What travels between nodes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Envelope {
    Raft(Message),
    Request { id: u64, request: Request },
    Response { id: u64, response: Response },
}

/// Cluster settings.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub agents: usize,
    pub agent: AgentConfig,
    /// Local time between Raft ticks.
    pub tick: Duration,
    /// How long a sync to disk takes (true time). A node killed meanwhile loses the unsynced
    /// tail, or keeps a prefix of it, or tears its last record; nothing it persists is sent on
    /// before the sync ends.
    pub fsync: Duration,
    /// How far apart the agents' clocks start: agent 1 reads 0 at true time 0, the last agent
    /// reads this, the others evenly between (no clock is synchronized with another; only
    /// rates are bounded).
    pub clock_spread: Duration,
}

impl ClusterConfig {
    /// Where agent index `i` (0-based) starts its clock, in ms.
    pub fn clock_offset_ms(&self, i: usize) -> i64 {
        let spread = self.clock_spread.as_millis() as i64;
        let last = self.agents.saturating_sub(1).max(1) as i64;
        spread * i as i64 / last
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            agents: 3,
            agent: AgentConfig::default(),
            tick: Duration::from_millis(10),
            fsync: Duration::from_millis(1),
            clock_spread: Duration::ZERO,
        }
    }
}

/// A running cluster (inside a madsim run).
pub struct Cluster {
    pub addrs: Vec<SocketAddr>,
    pub nodes: Vec<madsim::runtime::NodeHandle>,
    pub disks: Vec<Arc<Mutex<SimDisk>>>,
    /// Each agent's clock over true time (the nemesis changes them).
    pub clocks: Vec<Arc<Mutex<NodeClock>>>,
    /// True time zero of the run.
    pub origin: madsim::time::Instant,
    /// The run's history, which the agents write to.
    pub recorder: Recorder,
    /// Client processes' nodes, by process number (for process faults).
    processes: Arc<Mutex<BTreeMap<u64, madsim::task::NodeId>>>,
    /// Client processes the nemesis has paused and not resumed.
    paused: Arc<Mutex<std::collections::BTreeSet<u64>>>,
    /// Every other node made for the run ([`Cluster::node`]), for [`Cluster::release`].
    others: Arc<Mutex<Vec<madsim::task::NodeId>>>,
    /// The disks of user processes that keep one, by process: a kill or restart of the
    /// process crashes it.
    process_disks: Arc<Mutex<BTreeMap<u64, Arc<Mutex<SimDisk>>>>>,
    /// The clocks of user processes, by process (clock faults aimed at a process change them).
    process_clocks: Arc<Mutex<BTreeMap<u64, Arc<Mutex<NodeClock>>>>>,
    /// Pairs of processes cut off from each other until the next heal.
    separated: Arc<Mutex<Vec<(u64, u64)>>>,
}

fn agent_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, (i + 1) as u8], 4000))
}

impl Cluster {
    /// Starts `config.agents` agents, named `agent-1`..; agent ids are 1-based. They record
    /// into a fresh history (without messages).
    pub fn start(config: ClusterConfig, seed: u64) -> Cluster {
        Cluster::start_recorded(config, seed, Recorder::new(false))
    }

    /// Like [`Cluster::start`], recording into `recorder`.
    pub fn start_recorded(config: ClusterConfig, seed: u64, recorder: Recorder) -> Cluster {
        let handle = madsim::runtime::Handle::current();
        let addrs: Vec<SocketAddr> = (0..config.agents).map(agent_addr).collect();
        let origin = recorder.origin();
        let net = crate::net::Net::current();
        let log_records = LogRecords::default();
        let mut nodes = Vec::new();
        let mut disks = Vec::new();
        let mut clocks = Vec::new();
        for i in 0..config.agents {
            let disk = Arc::new(Mutex::new(SimDisk::new()));
            let clock = Arc::new(Mutex::new(
                NodeClock::new(config.clock_offset_ms(i), 0.0).expect("zero drift is valid"),
            ));
            let (addrs2, disk2, cfg, rec, records) = (
                addrs.clone(),
                disk.clone(),
                config.clone(),
                recorder.clone(),
                log_records.clone(),
            );
            let clock2 = SkewedClock::with_origin(origin, clock.clone());
            let node = handle
                .create_node()
                .name(format!("agent-{}", i + 1))
                .ip(addrs[i].ip())
                .init(move || {
                    let id = i as NodeId + 1;
                    let env = ActorEnv {
                        name: format!("agent-{id}"),
                        addr: addrs2[i],
                        clock: clock2.clone(),
                        disk: Some(disk2.clone()),
                        fsync: cfg.fsync,
                        rec: rec.clone(),
                        agent: true,
                    };
                    let agent =
                        Agent::restart(id, addrs2.clone(), &cfg, seed, disk2.clone(), rec.clone())
                            .with_log_records(records.clone());
                    actor::run_actor(agent, env)
                })
                .build();
            net.set_ip(node.id(), addrs[i].ip());
            nodes.push(node);
            disks.push(disk);
            clocks.push(clock);
        }
        Cluster {
            addrs,
            nodes,
            disks,
            clocks,
            origin,
            recorder,
            processes: Arc::default(),
            paused: Arc::default(),
            others: Arc::default(),
            process_disks: Arc::default(),
            process_clocks: Arc::default(),
            separated: Arc::default(),
        }
    }

    /// Names `node` as the node of client process `process` (numbered from 1), so process
    /// faults can reach it.
    pub fn register_process(&self, process: u64, node: &madsim::runtime::NodeHandle) {
        self.processes.lock().unwrap().insert(process, node.id());
    }

    /// Gives process `process` the disk `disk`, kept across its restarts and crashed by them.
    pub fn register_disk(&self, process: u64, disk: Arc<Mutex<SimDisk>>) {
        self.process_disks.lock().unwrap().insert(process, disk);
    }

    /// Gives process `process` the clock `clock`: clock faults aimed at the process change it.
    pub fn register_clock(&self, process: u64, clock: Arc<Mutex<NodeClock>>) {
        self.process_clocks.lock().unwrap().insert(process, clock);
    }

    /// Process `process`'s clock, if registered.
    pub fn process_clock(&self, process: u64) -> Option<Arc<Mutex<NodeClock>>> {
        self.process_clocks.lock().unwrap().get(&process).cloned()
    }

    /// Notes that processes `a` and `b` are cut off from each other; the next heal takes the
    /// note (and reconnects them).
    pub fn note_separated(&self, a: u64, b: u64) {
        self.separated.lock().unwrap().push((a, b));
    }

    /// The pairs cut off since the last heal, forgotten.
    pub fn take_separated(&self) -> Vec<(u64, u64)> {
        std::mem::take(&mut *self.separated.lock().unwrap())
    }

    /// Process `process`'s disk, if it has one.
    pub fn process_disk(&self, process: u64) -> Option<Arc<Mutex<SimDisk>>> {
        self.process_disks.lock().unwrap().get(&process).cloned()
    }

    /// The nodes of every registered client process.
    pub fn process_nodes(&self) -> Vec<madsim::task::NodeId> {
        self.processes.lock().unwrap().values().copied().collect()
    }

    /// Notes that client process `process` was paused (`true`) or resumed.
    pub fn note_paused(&self, process: u64, paused: bool) {
        let mut p = self.paused.lock().unwrap();
        if paused {
            p.insert(process);
        } else {
            p.remove(&process);
        }
    }

    /// The client processes paused now, in order.
    pub fn paused_processes(&self) -> Vec<u64> {
        self.paused.lock().unwrap().iter().copied().collect()
    }

    /// The node of client process `process`, if registered.
    pub fn process_node(&self, process: u64) -> Option<madsim::task::NodeId> {
        self.processes.lock().unwrap().get(&process).copied()
    }

    /// A new node for a client process, named `name`, with the `index`-th client address
    /// (`10.0.1.1`, `10.0.1.2`, ...; clients need an address to talk to agents).
    pub fn client_node(&self, name: &str, index: usize) -> madsim::runtime::NodeHandle {
        let ip = std::net::IpAddr::from([10, 0, 1 + (index / 250) as u8, (index % 250 + 1) as u8]);
        self.node(name, ip)
    }

    /// A client node like [`Cluster::client_node`] whose task is `init`'s future, made again
    /// when the node restarts (a user part: a restart starts it fresh).
    pub fn client_node_init<F, Fut>(
        &self,
        name: &str,
        index: usize,
        init: F,
    ) -> madsim::runtime::NodeHandle
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future + 'static,
    {
        let ip = std::net::IpAddr::from([10, 0, 1 + (index / 250) as u8, (index % 250 + 1) as u8]);
        let node = madsim::runtime::Handle::current()
            .create_node()
            .name(name)
            .ip(ip)
            .init(init)
            .build();
        crate::net::Net::current().set_ip(node.id(), ip);
        self.others.lock().unwrap().push(node.id());
        node
    }

    /// A new node named `name` at `ip` (a client, a resource, a manager), released with the
    /// cluster by [`Cluster::release`].
    pub fn node(&self, name: &str, ip: std::net::IpAddr) -> madsim::runtime::NodeHandle {
        let node = madsim::runtime::Handle::current()
            .create_node()
            .name(name)
            .ip(ip)
            .build();
        crate::net::Net::current().set_ip(node.id(), ip);
        self.others.lock().unwrap().push(node.id());
        node
    }

    /// Kills every node of the run and lets madsim drop their tasks, once the run is over.
    /// madsim does not drop the tasks still pending when its runtime ends, and those hold the
    /// network and the timers that hold them (madsim issue 242): without this, every seed
    /// leaked its whole world, about a megabyte, and a long sweep grew without bound.
    pub async fn release(&self) {
        let handle = madsim::runtime::Handle::current();
        for node in &self.nodes {
            handle.kill(node.id());
        }
        for id in self.others.lock().unwrap().drain(..) {
            handle.kill(id);
        }
        // The killed tasks are dropped when the executor next picks them up.
        madsim::time::sleep(Duration::from_millis(1)).await;
    }

    /// True (virtual) time since the cluster started.
    pub fn true_now(&self) -> Duration {
        madsim::time::Instant::now() - self.origin
    }
}

/// The log records of a run's entries, each encoded once for all the agents that write it
/// (the leader's entry reaches every follower as the same shared value): the encoding was
/// done once per agent, five times per entry in a 5-agent run. Keyed by index and term, and
/// used only for the very entry it was made from (the same shared payload), so a different
/// entry at the same place is encoded afresh. Keeps the latest [`LogRecords::KEEP`].
#[derive(Clone, Default)]
pub struct LogRecords(Arc<Mutex<BTreeMap<(Index, Term), CachedRecord>>>);

type CachedRecord = (Arc<tenure_core::raft::Payload>, Arc<[u8]>, u64);

impl LogRecords {
    const KEEP: usize = 1024;

    /// `e`'s log record and its FNV-1a.
    fn get(&self, e: &Entry) -> (Arc<[u8]>, u64) {
        let mut m = self.0.lock().unwrap();
        if let Some((payload, bytes, hash)) = m.get(&(e.index, e.term)) {
            if Arc::ptr_eq(payload, &e.payload) {
                return (bytes.clone(), *hash);
            }
        }
        let bytes: Arc<[u8]> = serde_json::to_vec(e).expect("entries serialize").into();
        let hash = bytes_fnv(&bytes);
        m.insert((e.index, e.term), (e.payload.clone(), bytes.clone(), hash));
        if m.len() > Self::KEEP {
            m.pop_first();
        }
        (bytes, hash)
    }
}

/// What an agent reads back from its disk on (re)start.
struct Recovered {
    hs: HardState,
    snapshot: Option<Snapshot>,
    /// Log entries after the snapshot, with where each one's record is.
    entries: Vec<Entry>,
    records: Vec<Written>,
}

/// Where an entry's log record starts in its file, and the FNV-1a of the record: the entry's
/// hash in the history's apply records ([`entry_hash`]), computed once, when written.
#[derive(Clone, Copy)]
struct Written {
    offset: u64,
    hash: u64,
}

use tenure_core::records::{decode_snapshot, encode_snapshot};

fn restore(disk: &Mutex<SimDisk>) -> Recovered {
    let mut d = disk.lock().unwrap();
    let hs = serde_json::from_slice(d.read(HARD_STATE_FILE)).unwrap_or_default();
    // Written whole and synced before the log is rewritten, so never torn.
    let snapshot = decode_snapshot(d.read(SNAPSHOT_FILE));
    let base = snapshot.as_ref().map_or(0, |s| s.index);
    let recs = d.read_records(LOG_FILE);
    if let Some(at) = recs.torn_at {
        // A torn last record was never acknowledged (it was not synced): drop it.
        d.truncate(LOG_FILE, at);
        d.sync(LOG_FILE);
    }
    let mut entries = Vec::new();
    let mut records = Vec::new();
    for (offset, payload) in recs.records {
        let e: Entry = serde_json::from_slice(&payload).expect("log records decode");
        if e.index > base {
            records.push(Written {
                offset,
                hash: bytes_fnv(&payload),
            });
            entries.push(e);
        }
    }
    Recovered {
        hs,
        snapshot,
        entries,
        records,
    }
}

/// What an agent last put in the history, to record only changes.
#[derive(Default, PartialEq)]
struct Seen {
    role: Option<(&'static str, Term, Option<NodeId>)>,
    hard: Option<(Term, Option<NodeId>)>,
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Follower => "follower",
        Role::PreCandidate => "pre_candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

impl Wire for Envelope {
    /// One line for the history: the kind, and for Raft messages the term and entry count.
    fn summary(&self) -> String {
        match self {
            Envelope::Raft(m) => {
                let kind = match &m.kind {
                    MsgKind::PreVote { .. } => "pre_vote".to_string(),
                    MsgKind::PreVoteResp { granted } => format!("pre_vote_resp granted={granted}"),
                    MsgKind::Vote { .. } => "vote".to_string(),
                    MsgKind::VoteResp { granted } => format!("vote_resp granted={granted}"),
                    MsgKind::Append {
                        prev_index,
                        entries,
                        commit,
                        ..
                    } => format!(
                        "append prev={prev_index} entries={} commit={commit}",
                        entries.len()
                    ),
                    MsgKind::AppendResp {
                        success,
                        match_index,
                        ..
                    } => format!("append_resp success={success} match={match_index}"),
                    MsgKind::InstallSnapshot { snapshot } => format!(
                        "install_snapshot index={} bytes={}",
                        snapshot.index,
                        snapshot.data.len()
                    ),
                };
                format!("raft term={} {kind}", m.term)
            }
            Envelope::Request { id, request } => {
                let what = match request {
                    Request::Submit(_) => "submit",
                    Request::Read(_) => "read",
                    Request::Range(..) => "range",
                    Request::Lease(_) => "lease",
                    Request::Events(..) => "events",
                    Request::Health => "health",
                    Request::Callbacks(..) => "callbacks",
                    Request::Status => "status",
                };
                format!("request {id} {what}")
            }
            Envelope::Response { id, response } => {
                let what = match response {
                    Response::Applied(_) => "applied".to_string(),
                    Response::Read(_) => "read".to_string(),
                    Response::Range(_) => "range".to_string(),
                    Response::Lease(_) => "lease".to_string(),
                    Response::Events(_) => "events".to_string(),
                    Response::NotLeader { leader } => format!("not_leader try={leader:?}"),
                    Response::NotCommitted => "not_committed".to_string(),
                    Response::Leader { term } => format!("leader term={term}"),
                    Response::Status(s) => format!("status term={}", s.term),
                };
                format!("response {id} {what}")
            }
        }
    }
}

/// The agent actor: an [`AgentCore`] driven by messages and ticks, persisting through its
/// [`SimDisk`] and recording what it does in the run's history.
pub struct Agent {
    id: NodeId,
    me: String,
    core: AgentCore,
    addrs: Vec<SocketAddr>,
    disk: Arc<Mutex<SimDisk>>,
    /// Each log record after the snapshot on disk (entry `base + 1` first).
    records: Vec<Written>,
    /// The index the snapshot on disk ends at: the log file starts after it.
    base: Index,
    /// Requests in flight: our id -> (client address, client's id).
    clients: BTreeMap<u64, (SocketAddr, u64)>,
    next_req: u64,
    rec: Recorder,
    seen: Seen,
    /// A new term or vote written in this event, recorded once synced.
    unsynced_hard: Option<(Term, Option<NodeId>)>,
    /// Log records shared with the run's other agents.
    log_records: LogRecords,
}

impl Agent {
    /// Agent `id` (1-based) starting, or restarting from what its disk kept.
    pub fn restart(
        id: NodeId,
        addrs: Vec<SocketAddr>,
        cfg: &ClusterConfig,
        seed: u64,
        disk: Arc<Mutex<SimDisk>>,
        rec: Recorder,
    ) -> Agent {
        let me = format!("agent-{id}");
        let peers: Vec<NodeId> = (1..=addrs.len() as NodeId).collect();
        let Recovered {
            hs,
            snapshot,
            entries: log,
            records,
        } = restore(&disk);
        let base = snapshot.as_ref().map_or(0, |s| s.index);
        rec.record(
            &me,
            HistEvent::Restored {
                agent: id,
                term: hs.term,
                vote: hs.voted_for,
                log_len: base + log.len() as Index,
            },
        );
        let seen = Seen {
            role: None,
            hard: Some((hs.term, hs.voted_for)),
        };
        let core = AgentCore::restore(id, &peers, cfg.agent, seed, hs, snapshot, log)
            .expect("an agent's own snapshot decodes")
            .with_tick_period(cfg.tick);
        Agent {
            id,
            me,
            core,
            addrs,
            disk,
            records,
            base,
            clients: BTreeMap::new(),
            next_req: 0,
            rec,
            seen,
            unsynced_hard: None,
            log_records: LogRecords::default(),
        }
    }

    /// Shares log records with the other agents holding `records` (see [`LogRecords`]).
    pub fn with_log_records(mut self, records: LogRecords) -> Agent {
        self.log_records = records;
        self
    }

    /// Carries out the core's output: disk writes now (synced by the runtime before the
    /// messages leave), messages and answers into `ctx`, records into the history.
    /// The hash of `e`'s log record: the one computed when it was written, if this agent
    /// still holds it, else computed now (the same bytes).
    fn record_hash(&self, e: &Entry) -> u64 {
        let written = e
            .index
            .checked_sub(self.base + 1)
            .and_then(|i| self.records.get(i as usize));
        match written {
            Some(w) => {
                debug_assert_eq!(
                    w.hash,
                    entry_hash(e),
                    "entry {} has another record",
                    e.index
                );
                w.hash
            }
            None => entry_hash(e),
        }
    }

    fn flush(&mut self, ctx: &mut Ctx<Envelope>) {
        let out = self.core.output();
        let id = self.id;
        // Recorded as the agent holds it once synced, which is what it acts on (a planted bug
        // may persist less: the restart then shows the difference).
        let hard = out.hard_state.map(|_| {
            let hs = self.core.raft().hard_state();
            (hs.term, hs.voted_for)
        });
        if out.snapshot.is_some()
            || out.persist_from.is_some()
            || hard.is_some_and(|h| Some(h) != self.seen.hard)
        {
            ctx.need_durable();
        }
        {
            let mut d = self.disk.lock().unwrap();
            if let Some(snap) = &out.snapshot {
                // The snapshot first, whole; then the log is rewritten after it.
                d.write_all(SNAPSHOT_FILE, &encode_snapshot(snap));
                d.sync(SNAPSHOT_FILE);
                if let Some(slow) = buggify::delay(buggify::SLOW_SNAPSHOT) {
                    // The agent is stuck writing it (a leader mid-compaction, a follower
                    // mid-install): a kill meanwhile tears what follows it.
                    ctx.slow_sync(slow);
                }
                d.truncate(LOG_FILE, 0);
                self.records.clear();
                self.base = snap.index;
                self.rec.record(
                    &self.me,
                    HistEvent::Snapshot {
                        agent: id,
                        index: snap.index,
                        term: snap.term,
                        installed: out.installed.is_some(),
                        hash: bytes_hash(&snap.data),
                    },
                );
            }
            if let Some(from) = out.persist_from {
                let keep = (from - self.base) as usize - 1;
                if keep < self.records.len() {
                    d.truncate(LOG_FILE, self.records[keep].offset);
                    self.records.truncate(keep);
                }
                for e in &out.entries {
                    let (record, hash) = self.log_records.get(e);
                    self.records.push(Written {
                        offset: d.append_record(LOG_FILE, &record),
                        hash,
                    });
                }
            }
            if let Some(hs) = out.hard_state {
                d.write_all(
                    HARD_STATE_FILE,
                    &serde_json::to_vec(&hs).expect("hard state serializes"),
                );
            }
        }
        if hard.is_some() && hard != self.seen.hard {
            self.unsynced_hard = hard;
        }
        let raft = self.core.raft();
        let role = Some((role_name(raft.role()), raft.term(), raft.leader()));
        if self.seen.role != role {
            self.seen.role = role;
            self.rec.record(
                &self.me,
                HistEvent::Role {
                    agent: id,
                    role: role_name(raft.role()).to_string(),
                    term: raft.term(),
                    leader: raft.leader(),
                    last_index: raft.last_index(),
                    last_term: raft.last_term(),
                },
            );
        }
        for e in &out.applied {
            self.rec.record(
                &self.me,
                HistEvent::Apply {
                    agent: id,
                    index: e.index,
                    term: e.term,
                    hash: hash_hex(self.record_hash(e)),
                },
            );
        }
        for (i, ev) in out.events.iter().enumerate() {
            if let (Cause::Write, Some(lease)) = (ev.cause, ev.lease) {
                // Alive when written: still granted now, or ended by a later change of this
                // batch (which then removed the key).
                let alive = self.core.store().lease(lease).is_some()
                    || out.events[i..].iter().any(|e| {
                        matches!(e.cause, Cause::LeaseExpired(l) | Cause::LeaseRevoked(l) if l == lease)
                    });
                self.rec.record(
                    &self.me,
                    HistEvent::Bound {
                        agent: id,
                        key: ev.key.to_string(),
                        revision: ev.revision,
                        lease,
                        alive,
                    },
                );
            }
            if self.rec.records_changes_of(&ev.key) {
                self.rec.record(
                    &self.me,
                    HistEvent::Change {
                        agent: id,
                        key: ev.key.to_string(),
                        revision: ev.revision,
                        version: ev.version,
                    },
                );
            }
            if matches!(ev.cause, Cause::TtlExpired | Cause::LeaseExpired(_)) {
                self.rec.record(
                    &self.me,
                    HistEvent::Expire {
                        agent: id,
                        key: ev.key.to_string(),
                        revision: ev.revision,
                    },
                );
            }
        }
        for m in out.messages {
            ctx.send(self.addrs[m.to as usize - 1], Envelope::Raft(m));
        }
        for (rid, response) in out.responses {
            if let Some((addr, cid)) = self.clients.remove(&rid) {
                if !buggify::fires(buggify::DROP_REPLY) {
                    ctx.send(addr, Envelope::Response { id: cid, response });
                }
            }
        }
    }
}

impl Actor for Agent {
    type Msg = Envelope;

    fn start(&mut self, ctx: &mut Ctx<Envelope>) {
        // Ticks follow the agent's own (possibly drifting, jumping) clock.
        self.core.start(ctx.now());
        ctx.set_timer(self.core.next_tick());
    }

    fn message(&mut self, from: SocketAddr, msg: Envelope, ctx: &mut Ctx<Envelope>) {
        self.core.handle_timeout(ctx.now());
        match msg {
            Envelope::Raft(m) => self.core.step(m),
            Envelope::Request { id, request } => {
                self.next_req += 1;
                self.clients.insert(self.next_req, (from, id));
                self.core.request(self.next_req, request, ctx.now());
            }
            Envelope::Response { .. } => {}
        }
    }

    fn timer(&mut self, ctx: &mut Ctx<Envelope>) {
        self.core.handle_timeout(ctx.now());
    }

    fn batch_end(&mut self, ctx: &mut Ctx<Envelope>) {
        self.flush(ctx);
        // Wake for the next tick that acts; the ones before it are counted on the way.
        ctx.set_timer(self.core.poll_timeout());
    }

    fn synced(&mut self) {
        if let Some((term, vote)) = self.unsynced_hard.take() {
            self.seen.hard = Some((term, vote));
            self.rec.record(
                &self.me,
                HistEvent::HardState {
                    agent: self.id,
                    term,
                    vote,
                },
            );
        }
    }
}

/// How a client finds the agent that can serve it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Routing {
    /// Ask the agent believed to lead; follow "not leader, try X" redirects.
    #[default]
    Redirect,
    /// Ask every agent at once and take the first normal answer (only a leader gives one).
    AskAll,
}

/// Client-side settings.
#[derive(Clone, Copy, Debug)]
pub struct ClientConfig {
    pub routing: Routing,
    /// How long to wait for one agent's answer.
    pub request_timeout: Duration,
    /// How many agents to try before giving up.
    pub max_attempts: usize,
    /// Pause before retrying when no leader is known.
    pub retry_pause: Duration,
    /// Poll period of `wait_events`.
    pub watch_poll: Duration,
    /// Planted bugs of the client library (none by default).
    pub bugs: Bugs,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            routing: Routing::Redirect,
            request_timeout: Duration::from_millis(500),
            max_attempts: 40,
            retry_pause: Duration::from_millis(50),
            watch_poll: Duration::from_millis(10),
            bugs: Bugs::new(),
        }
    }
}

/// A `StoreClient` over the network: follows "not leader, try X" redirects, retries with a
/// bound, and reports a write whose outcome it cannot know as indeterminate, never failed.
#[derive(Clone)]
pub struct NetClient {
    inner: Arc<NetInner>,
    /// This handle's routing: the configured one, or ask-all for [`StoreClient::broadcast`].
    routing: Routing,
}

struct NetInner {
    sock: Socket,
    /// The history to count (and maybe record) envelopes in, and this client's node name (a
    /// history of its own when the caller gave none).
    rec: (Recorder, String),
    agents: Vec<SocketAddr>,
    clock: Arc<dyn Clock>,
    config: ClientConfig,
    state: Mutex<NetState>,
}

#[derive(Default)]
struct NetState {
    next_id: u64,
    leader_hint: usize,
    waiting: BTreeMap<u64, oneshot::Sender<Response>>,
}

impl NetClient {
    /// Binds a client on the current node (which must have an IP address).
    pub async fn connect(
        agents: Vec<SocketAddr>,
        config: ClientConfig,
    ) -> std::io::Result<NetClient> {
        NetClient::connect_recorded(agents, config, None).await
    }

    /// Like [`NetClient::connect`]; envelopes are counted in (and, if it records messages,
    /// written to) `rec`'s history under the node name given with it.
    pub async fn connect_recorded(
        agents: Vec<SocketAddr>,
        config: ClientConfig,
        rec: Option<(Recorder, String)>,
    ) -> std::io::Result<NetClient> {
        NetClient::connect_with(agents, config, rec, MadsimClock::new().shared()).await
    }

    /// Like [`NetClient::connect_recorded`], on the process's own `clock` (timeouts, retries,
    /// and every API family built on this client read it).
    pub async fn connect_with(
        agents: Vec<SocketAddr>,
        config: ClientConfig,
        rec: Option<(Recorder, String)>,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<NetClient> {
        let sock = Socket::bind_any()?;
        let inner = Arc::new(NetInner {
            sock: sock.clone(),
            rec: rec.unwrap_or_else(|| (Recorder::new(false), String::new())),
            agents,
            clock: clock.clone(),
            config,
            state: Mutex::new(NetState::default()),
        });
        // The dispatcher routes answers to the calls waiting for them.
        let weak = Arc::downgrade(&inner);
        clock.spawn(Box::pin(async move {
            while let Some(d) = sock.recv().await {
                let Some(inner) = weak.upgrade() else { return };
                let (rec, me) = &inner.rec;
                let decoded = receive(rec, me, d);
                if let Some(Envelope::Response { id, response }) = decoded {
                    if let Some(tx) = inner.state.lock().unwrap().waiting.remove(&id) {
                        let _ = tx.send(response);
                    }
                }
            }
        }));
        Ok(NetClient {
            inner,
            routing: config.routing,
        })
    }

    /// Registers a call and sends `request` to agent index `to` (0-based); the receiver
    /// gets the answer.
    async fn send_request(
        &self,
        to: usize,
        request: Request,
    ) -> (u64, oneshot::Receiver<Response>) {
        let i = &self.inner;
        let (id, rx) = {
            let mut st = i.state.lock().unwrap();
            st.next_id += 1;
            let id = st.next_id;
            let (tx, rx) = oneshot::channel();
            st.waiting.insert(id, tx);
            (id, rx)
        };
        let e = Envelope::Request { id, request };
        send(&i.sock, &i.rec.0, &i.rec.1, i.agents[to], e);
        (id, rx)
    }

    /// Sends `request` to agent index `to` (0-based) and waits up to the request timeout.
    async fn send_and_wait(&self, to: usize, request: Request) -> Option<Response> {
        let i = &self.inner;
        let (id, rx) = self.send_request(to, request).await;
        let wait = if buggify::fires(buggify::EARLY_TIMEOUT) {
            i.config.request_timeout / 10
        } else {
            i.config.request_timeout
        };
        let answer = tenure_core::clock::timeout(&*i.clock, wait, rx).await;
        i.state.lock().unwrap().waiting.remove(&id);
        let answer = answer.and_then(Result::ok);
        if let (Some(_), Some(late)) = (&answer, buggify::delay(buggify::LATE_RESPONSE)) {
            i.clock.sleep(late).await;
        }
        answer
    }

    /// Sends `request` to every agent at once; returns the first normal answer (not a
    /// redirect), or what went wrong: `Ok(None)` when every agent answered with a redirect,
    /// `Err(())` when some agent did not answer within the request timeout.
    async fn ask_all(&self, request: &Request) -> Result<Option<Response>, ()> {
        use futures::StreamExt;
        let i = &self.inner;
        let mut ids = Vec::new();
        let mut pending = futures::stream::FuturesUnordered::new();
        for to in 0..i.agents.len() {
            let (id, rx) = self.send_request(to, request.clone()).await;
            ids.push(id);
            pending.push(rx);
        }
        let deadline = i.clock.now() + i.config.request_timeout;
        let mut result = Ok(None);
        loop {
            let left = deadline.saturating_sub(i.clock.now());
            match tenure_core::clock::timeout(&*i.clock, left, pending.next()).await {
                Some(Some(Ok(Response::NotLeader { .. } | Response::NotCommitted))) => {}
                Some(Some(Ok(r))) => {
                    result = Ok(Some(r));
                    break;
                }
                Some(Some(Err(_))) => {}
                Some(None) => break,
                None => {
                    result = Err(());
                    break;
                }
            }
        }
        let mut st = i.state.lock().unwrap();
        for id in ids {
            st.waiting.remove(&id);
        }
        result
    }

    async fn call(&self, request: Request) -> Result<Response, ClientError> {
        let i = &self.inner;
        let is_write = matches!(request, Request::Submit(_));
        if self.routing == Routing::AskAll {
            for _ in 0..i.config.max_attempts {
                match self.ask_all(&request).await {
                    Ok(Some(r)) => return Ok(r),
                    // Every agent redirected or was overwritten: nothing was carried out.
                    Ok(None) => i.clock.sleep(i.config.retry_pause).await,
                    Err(()) if is_write => {
                        return Err(ClientError::Indeterminate(format!(
                            "not every agent answered within {:?}",
                            i.config.request_timeout
                        )))
                    }
                    Err(()) => {}
                }
            }
            return Err(ClientError::Unavailable(format!(
                "no leader answered after {} rounds",
                i.config.max_attempts
            )));
        }
        for _ in 0..i.config.max_attempts {
            let to = i.state.lock().unwrap().leader_hint;
            match self.send_and_wait(to, request.clone()).await {
                Some(Response::NotLeader { leader: Some(l) }) => {
                    i.state.lock().unwrap().leader_hint = (l as usize - 1) % i.agents.len();
                }
                Some(Response::NotLeader { leader: None }) | Some(Response::NotCommitted) => {
                    // Surely not carried out: try the next agent after a pause.
                    i.state.lock().unwrap().leader_hint = (to + 1) % i.agents.len();
                    i.clock.sleep(i.config.retry_pause).await;
                }
                Some(r) => return Ok(r),
                None => {
                    // Whether or not the call was carried out, the next one tries the next
                    // agent: this one may be down or cut off for long.
                    i.state.lock().unwrap().leader_hint = (to + 1) % i.agents.len();
                    if is_write {
                        return Err(ClientError::Indeterminate(format!(
                            "no answer from agent {} within {:?}",
                            to + 1,
                            i.config.request_timeout
                        )));
                    }
                }
            }
        }
        Err(ClientError::Unavailable(format!(
            "no leader answered after {} attempts",
            i.config.max_attempts
        )))
    }
}

impl NetClient {
    /// Receives the change notifications the agency sends to the callback address `url` (an
    /// observer registration made with `register_change_callback`), in order. Delivery is by
    /// pull: a task asks the leader for new notifications every `watch_poll`, so neither a
    /// leader change nor a restart loses any (the replicated store keeps the latest 10,000
    /// per address, in its snapshots too). If the ones it needs next were dropped, the stream
    /// ends, so a gap is never silent. The task ends when the receiver is dropped.
    pub fn callback_inbox(&self, url: &str) -> futures::channel::mpsc::UnboundedReceiver<Event> {
        self.callback_inbox_after(url, 0)
    }

    /// Like [`NetClient::callback_inbox`], for the notifications after revision `after` (a
    /// registration repeated after an unknown outcome answers with a later revision than the
    /// first one took effect at, and the notifications in between are not this stream's).
    pub fn callback_inbox_after(
        &self,
        url: &str,
        after: Revision,
    ) -> futures::channel::mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let (me, url) = (self.clone(), url.to_string());
        self.inner.clock.spawn(Box::pin(async move {
            let mut after = after;
            loop {
                match me.call(Request::Callbacks(url.clone(), after)).await {
                    Ok(Response::Events(Ok(events))) => {
                        for e in events {
                            after = e.revision;
                            if tx.unbounded_send(e).is_err() {
                                return;
                            }
                        }
                    }
                    Ok(Response::Events(Err(_dropped))) => return,
                    _ => {}
                }
                if tx.is_closed() {
                    return;
                }
                me.inner.clock.sleep(me.inner.config.watch_poll).await;
            }
        }));
        rx
    }
}

impl NetClient {
    /// Asks agent `agent` (1-based) directly whether it is the leader, without redirects.
    pub async fn ask_agent(&self, agent: NodeId, request: Request) -> Option<Response> {
        self.send_and_wait(agent as usize - 1, request).await
    }

    /// The agency's `AreAgentsHealthy`: exactly one agent answers as leader and every other
    /// redirects to it. With `allow_no_leader`, a cluster where nobody is leader (and nobody
    /// claims to know one) is healthy too.
    pub async fn are_agents_healthy(&self, allow_no_leader: bool) -> Result<(), HealthError> {
        self.health(allow_no_leader).await.map(|_| ())
    }

    /// As [`NetClient::are_agents_healthy`], and the leader every agent agrees on (`None`
    /// only when nobody leads and that is allowed).
    pub async fn health(&self, allow_no_leader: bool) -> Result<Option<NodeId>, HealthError> {
        let mut answers = Vec::new();
        for agent in 1..=self.inner.agents.len() as NodeId {
            answers.push((agent, self.ask_agent(agent, Request::Health).await));
        }
        tenure_core::client::judge_health(answers, allow_no_leader)
    }
}

fn unexpected(r: Response) -> ClientError {
    ClientError::Unavailable(format!("unexpected answer {r:?}"))
}

#[async_trait]
impl StoreClient for NetClient {
    fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    async fn health(&self, allow_no_leader: bool) -> Result<Option<NodeId>, HealthError> {
        NetClient::health(self, allow_no_leader).await
    }

    fn broadcast(&self) -> Option<Arc<dyn StoreClient>> {
        Some(Arc::new(NetClient {
            inner: self.inner.clone(),
            routing: Routing::AskAll,
        }))
    }

    async fn submit(&self, cmd: Command) -> Result<Outcome, ClientError> {
        match self.call(Request::Submit(cmd)).await? {
            Response::Applied(o) => Ok(o),
            r => Err(unexpected(r)),
        }
    }

    async fn read(&self, key: &Key) -> Result<ReadResult, ClientError> {
        match self.call(Request::Read(key.clone())).await? {
            Response::Read(r) => Ok(r),
            r => Err(unexpected(r)),
        }
    }

    async fn range(&self, start: &Key, end: &Key) -> Result<Vec<(Key, Node)>, ClientError> {
        match self
            .call(Request::Range(start.clone(), end.clone()))
            .await?
        {
            Response::Range(r) => Ok(r),
            r => Err(unexpected(r)),
        }
    }

    async fn wait_events(&self, key: &Key, after: Revision) -> Result<Vec<Event>, ClientError> {
        let drops = self.inner.config.bugs.contains(Bug::WatchDropsEvents);
        let mut after = after;
        loop {
            let agent = self.inner.state.lock().unwrap().leader_hint;
            let answer = self.call(Request::Events(key.clone(), after)).await?;
            if drops && self.inner.state.lock().unwrap().leader_hint != agent {
                // Planted: on reconnecting to another agent, the watch resumes from that
                // agent's current revision, dropping what changed in between.
                if let Response::Read(r) = self.call(Request::Read(key.clone())).await? {
                    after = after.max(r.revision);
                    continue;
                }
            }
            match answer {
                Response::Events(Ok(events)) if !events.is_empty() => return Ok(events),
                Response::Events(Ok(_)) => {
                    self.inner.clock.sleep(self.inner.config.watch_poll).await
                }
                Response::Events(Err(compacted)) => {
                    return Err(ClientError::Compacted { compacted })
                }
                r => return Err(unexpected(r)),
            }
        }
    }

    async fn lease(&self, id: LeaseId) -> Result<Option<LeaseInfo>, ClientError> {
        match self.call(Request::Lease(id)).await? {
            Response::Lease(l) => Ok(l),
            r => Err(unexpected(r)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_files_round_trip_and_an_empty_file_holds_none() {
        let s = Snapshot {
            index: 1 << 40,
            term: 7,
            data: br#"{"nodes":{}}"#.to_vec(),
        };
        let bytes = encode_snapshot(&s);
        assert_eq!(bytes.len(), 16 + s.data.len());
        assert_eq!(decode_snapshot(&bytes), Some(s));
        assert_eq!(decode_snapshot(&[]), None);
        assert_eq!(decode_snapshot(&bytes[..15]), None);
    }
}
