//! An agency agent, sans-I/O: Raft + the store + the agency-time ticker + client requests.
//!
//! The simulator's `Agent` actor (and one day a real server) drives an [`AgentCore`]: it feeds
//! it the local clock on every tick, peer messages and client requests, then takes an
//! [`AgentOutput`] and carries it out in order: persist, send, answer, notify.
//!
//! Agency time: while leader, the agent proposes `Tick` entries that advance agency time by
//! its own elapsed local time times `(1 - rho)`, rounded down; time before it became leader
//! is never counted, so a leader change neither resets nor shortens any TTL. Expiry happens
//! when a `Tick` is applied, at the same log index on every agent.

use crate::bugs::{Bug, Bugs};
use crate::client::LeaseInfo;
use crate::command::{Command, Event, LeaseId, Outcome, Revision};
use crate::key::Key;
use crate::raft::{
    Config, Entry, HardState, Index, Message, NodeId, Payload, Raft, Role, Snapshot, Term,
};
use crate::store::{Node, ReadResult, Store};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

mod time;

/// The local time between Raft ticks unless [`AgentCore::with_tick_period`] says otherwise.
pub const DEFAULT_TICK: Duration = Duration::from_millis(10);

/// Agent settings shared by the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentConfig {
    /// The drift bound: agency time advances by local time times `1 - rho`.
    pub rho: f64,
    /// How much local time the leader lets pass between `Tick` proposals.
    pub agency_tick: Duration,
    pub raft: Config,
    /// Compact the log into a snapshot of the store at every index that is a multiple of
    /// this, doubled while it is below an eighth of the store's size (keys, leases, retained
    /// events: what a snapshot writes), so that a large store is not written out every few
    /// entries (a 1,000-client run spent 60% of its time writing snapshots). The interval is
    /// a function of the replicated state, so every agent snapshots at the same indices and
    /// their snapshots can be compared.
    pub snapshot_every: u64,
    /// Planted bugs (none by default): the agent and its Raft read the ones that live here.
    #[serde(default)]
    pub bugs: Bugs,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            rho: crate::clock::DEFAULT_DRIFT_BOUND,
            agency_tick: Duration::from_millis(50),
            raft: Config::default(),
            snapshot_every: 128,
            bugs: Bugs::new(),
        }
    }
}

/// A client's request to an agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Request {
    Submit(Command),
    Read(Key),
    Range(Key, Key),
    Lease(LeaseId),
    /// The changes of keys related to `key` after a revision (possibly none yet).
    Events(Key, Revision),
    /// "Are you the leader?": the leader answers `Leader`, others `NotLeader`.
    Health,
    /// The change notifications for the callback address `url` after a revision (possibly
    /// none yet): callbacks delivered by pull, answered with `Events`.
    Callbacks(String, Revision),
    /// "How are you?": every agent answers for itself, leader or not (`Status`).
    Status,
}

/// An agent's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Response {
    Applied(Outcome),
    Read(ReadResult),
    Range(Vec<(Key, Node)>),
    Lease(Option<LeaseInfo>),
    /// Related changes in order; `Err(r)`: events up to revision `r` were compacted.
    Events(Result<Vec<Event>, Revision>),
    /// "Not leader, try X" (or no leader known): the request was not carried out.
    NotLeader {
        leader: Option<NodeId>,
    },
    /// The proposal was overwritten by another leader's entry: it never committed.
    NotCommitted,
    /// The answer of the leader to `Health`.
    Leader {
        term: Term,
    },
    /// An agent's own view, answering `Status`.
    Status(AgentStatus),
}

/// What an agent says of itself (`Request::Status`), for operators: how far its log goes,
/// what it committed and applied, whom it follows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub id: NodeId,
    pub role: String,
    pub term: Term,
    pub leader: Option<NodeId>,
    pub last_index: Index,
    pub commit: Index,
    pub applied: Index,
}

/// What the driver must do after an event, in field order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentOutput {
    pub hard_state: Option<HardState>,
    /// Truncate the persisted log here, then append `entries`.
    pub persist_from: Option<Index>,
    pub entries: Vec<Entry>,
    pub messages: Vec<Message>,
    pub responses: Vec<(u64, Response)>,
    /// Every change applied, in order (all agents report them; checkers compare).
    pub events: Vec<Event>,
    /// Change callbacks to push: only the leader reports them. (The store also keeps them in
    /// a bounded outbox per address, served by `Request::Callbacks`.)
    pub notifications: Vec<(String, Event)>,
    /// The committed entries applied by this output, in index order (for the history).
    pub applied: Vec<Entry>,
    /// Persist this snapshot, then rewrite the log with `entries` (which then follow it).
    pub snapshot: Option<Snapshot>,
    /// The snapshot (index, term) loaded from the leader by this output, if any.
    pub installed: Option<(Index, Term)>,
}

/// One agent's logic.
pub struct AgentCore {
    raft: Raft,
    store: Store,
    config: AgentConfig,
    applied: Index,
    /// Local time up to which agency time has been proposed, while leader.
    ticked_until: Option<Duration>,
    /// Proposals awaiting their entry: index -> (request, term proposed in).
    proposals: BTreeMap<Index, (u64, Term)>,
    /// Read-index contexts -> request.
    reads: BTreeMap<u64, (u64, Request)>,
    /// Reads confirmed by a quorum, waiting for their index to be applied.
    ready_reads: VecDeque<(Index, u64, Request)>,
    next_read_ctx: u64,
    responses: Vec<(u64, Response)>,
    /// Led, and has not heard of another leader since (for a planted bug).
    deposed: bool,
    /// Local time between Raft ticks, and when the next one is due.
    tick_period: Duration,
    next_tick: Duration,
}

impl AgentCore {
    pub fn new(id: NodeId, peers: &[NodeId], config: AgentConfig, seed: u64) -> AgentCore {
        AgentCore::restore(
            id,
            peers,
            config,
            seed,
            HardState::default(),
            None,
            Vec::new(),
        )
        .expect("an empty agent restores")
    }

    /// An agent restarting from its persisted hard state, snapshot and log; the store is
    /// loaded from the snapshot and rebuilt by applying the committed entries after it again.
    /// Fails if the snapshot does not decode.
    pub fn restore(
        id: NodeId,
        peers: &[NodeId],
        config: AgentConfig,
        seed: u64,
        hs: HardState,
        snapshot: Option<Snapshot>,
        log: Vec<Entry>,
    ) -> Result<AgentCore, String> {
        let store = match &snapshot {
            Some(s) => Store::restore(&s.data)
                .map_err(|e| format!("snapshot at index {} does not decode: {e}", s.index))?,
            None => Store::new(),
        }
        .with_bugs(config.bugs);
        let applied = snapshot.as_ref().map_or(0, |s| s.index);
        Ok(AgentCore {
            raft: Raft::restore(id, peers, config.raft, seed, hs, snapshot, log),
            store,
            config,
            applied,
            ticked_until: None,
            proposals: BTreeMap::new(),
            reads: BTreeMap::new(),
            ready_reads: VecDeque::new(),
            next_read_ctx: 1,
            responses: Vec::new(),
            deposed: false,
            tick_period: DEFAULT_TICK,
            next_tick: Duration::ZERO,
        })
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn is_leader(&self) -> bool {
        self.raft.role() == Role::Leader
    }

    pub fn step(&mut self, m: Message) {
        self.raft.step(m);
    }

    /// Accepts a client request `id` at local time `now`; the answer comes out in a later (or
    /// this) output.
    pub fn request(&mut self, id: u64, req: Request, now: Duration) {
        if req == Request::Status {
            let r = &self.raft;
            let status = AgentStatus {
                id: r.id(),
                role: format!("{:?}", r.role()).to_lowercase(),
                term: r.term(),
                leader: r.leader(),
                last_index: r.last_index(),
                commit: r.commit_index(),
                applied: self.applied,
            };
            self.responses.push((id, Response::Status(status)));
            return;
        }
        let is_read = !matches!(req, Request::Submit(_) | Request::Health);
        let bugs = self.config.bugs;
        let leads = self.is_leader();
        if is_read
            && (bugs.contains(Bug::FollowersServeReads) && !leads
                || bugs.contains(Bug::DeposedLeaderServesReads) && (leads || self.deposed))
        {
            // Planted: answered from this agent's own state, unconfirmed.
            let resp = self.answer_read(&req);
            self.responses.push((id, resp));
            return;
        }
        if !self.is_leader() {
            let leader = self.raft.leader().filter(|l| *l != self.raft.id());
            self.responses.push((id, Response::NotLeader { leader }));
            return;
        }
        match req {
            Request::Health => {
                let term = self.raft.term();
                self.responses.push((id, Response::Leader { term }));
            }
            Request::Submit(mut cmd) => {
                if bugs.contains(Bug::SubSecondTtlLost) {
                    lose_sub_second_ttls(&mut cmd);
                }
                self.advance_agency_time(now, true);
                // Planted: the outcome as if the command applied now, answered before the
                // entry commits (or even reaches a quorum).
                let early = bugs
                    .contains(Bug::AckBeforeCommit)
                    .then(|| self.store.clone().apply(&cmd).outcome);
                match self.raft.propose(cmd) {
                    Ok(_) if early.is_some() => {
                        let outcome = early.expect("checked");
                        self.responses.push((id, Response::Applied(outcome)));
                    }
                    Ok(index) => {
                        self.proposals.insert(index, (id, self.raft.term()));
                    }
                    Err(_) => self
                        .responses
                        .push((id, Response::NotLeader { leader: None })),
                }
            }
            read => {
                let ctx = self.next_read_ctx;
                self.next_read_ctx += 1;
                match self.raft.read_index(ctx) {
                    Ok(()) => {
                        self.reads.insert(ctx, (id, read));
                    }
                    Err(_) => self
                        .responses
                        .push((id, Response::NotLeader { leader: None })),
                }
            }
        }
    }

    fn answer_read(&self, req: &Request) -> Response {
        match req {
            Request::Read(k) => Response::Read(self.store.read(k)),
            Request::Range(a, b) => Response::Range(self.store.range(a, b)),
            Request::Lease(id) => {
                let now = self.store.now_ms();
                Response::Lease(self.store.lease(*id).map(|l| LeaseInfo {
                    id: *id,
                    ttl_ms: l.ttl_ms,
                    remaining_ms: l.deadline_ms.saturating_sub(now),
                    granted_revision: l.granted_revision,
                }))
            }
            Request::Events(key, after) => Response::Events(
                self.store
                    .events_after(*after)
                    .map(|evs| evs.into_iter().filter(|e| e.key.is_related(key)).collect())
                    .map_err(|c| c.compacted),
            ),
            Request::Callbacks(url, after) => {
                Response::Events(self.store.notifications_after(url, *after))
            }
            Request::Submit(_) | Request::Health | Request::Status => {
                unreachable!("not a read")
            }
        }
    }

    /// Entries between two snapshots at the store's current size (see
    /// [`AgentConfig::snapshot_every`]).
    fn snapshot_interval(&self) -> u64 {
        let every = self.config.snapshot_every.max(1);
        let wanted = self.store.size() as u64 / 8;
        let mut interval = every;
        while interval < wanted {
            interval = interval.saturating_mul(2);
        }
        interval
    }

    /// Everything to carry out now.
    pub fn output(&mut self) -> AgentOutput {
        let ready = self.raft.ready();
        let leader = self.is_leader();
        self.deposed = leader || self.deposed && self.raft.leader().is_none();
        let mut hard_state = ready.hard_state;
        if self.config.bugs.contains(Bug::VoteNotPersisted) {
            // Planted: the term is persisted, the vote is not.
            if let Some(hs) = &mut hard_state {
                hs.voted_for = None;
            }
        }
        let mut out = AgentOutput {
            hard_state,
            persist_from: ready.persist_from,
            entries: ready.entries,
            messages: ready.messages,
            ..AgentOutput::default()
        };
        if let Some(snap) = &ready.snapshot {
            if ready.snapshot_installed {
                // The leader's state as of the snapshot replaces ours. It was encoded by an
                // agent of the same build, so it decodes.
                self.store = Store::restore(&snap.data)
                    .expect("a leader's snapshot decodes")
                    .with_bugs(self.config.bugs);
                self.applied = snap.index;
                // Proposals the snapshot covers have unknown outcomes: their clients time out
                // and report them as indeterminate.
                self.proposals.retain(|index, _| *index > snap.index);
                out.installed = Some((snap.index, snap.term));
            }
        }
        out.snapshot = ready.snapshot;
        let mut compact_at = None;
        for e in ready.committed {
            debug_assert_eq!(e.index, self.applied + 1, "entries apply in order");
            self.applied = e.index;
            let outcome = match &*e.payload {
                Payload::Noop => {
                    // A new leader's first entry.
                    if self.config.bugs.contains(Bug::TtlResetOnLeaderChange) {
                        self.store.reset_lease_deadlines();
                    }
                    None
                }
                Payload::Command(cmd) => {
                    let applied = self.store.apply(cmd);
                    if leader {
                        for ev in &applied.events {
                            for url in self.store.observers_of(&ev.key) {
                                out.notifications.push((url, ev.clone()));
                            }
                        }
                    }
                    out.events.extend(applied.events);
                    Some(applied.outcome)
                }
            };
            if let Some((id, term)) = self.proposals.remove(&e.index) {
                let resp = match outcome {
                    Some(o) if e.term == term => Response::Applied(o),
                    _ => Response::NotCommitted,
                };
                self.responses.push((id, resp));
            }
            if e.index % self.snapshot_interval() == 0 {
                compact_at = Some((e.index, self.store.snapshot()));
            }
            out.applied.push(e);
        }
        if let Some((index, data)) = compact_at {
            // Persisted with the next output.
            self.raft.compact(index, data);
        }
        for rs in ready.reads {
            if let Some((id, req)) = self.reads.remove(&rs.ctx) {
                self.ready_reads.push_back((rs.index, id, req));
            }
        }
        while let Some((index, _, _)) = self.ready_reads.front() {
            if *index > self.applied {
                break;
            }
            let (_, id, req) = self.ready_reads.pop_front().unwrap();
            let resp = self.answer_read(&req);
            self.responses.push((id, resp));
        }
        if !leader {
            // Reads that were waiting on leadership will never be confirmed by this agent.
            let leader_hint = self.raft.leader();
            for (_, (id, _)) in std::mem::take(&mut self.reads) {
                self.responses.push((
                    id,
                    Response::NotLeader {
                        leader: leader_hint,
                    },
                ));
            }
        }
        out.responses = std::mem::take(&mut self.responses);
        out
    }
}

/// Planted ([`Bug::SubSecondTtlLost`]): a TTL under one second, read as whole seconds, is 0,
/// taken for "no TTL": keys keep none, leases last practically for ever.
fn lose_sub_second_ttls(cmd: &mut Command) {
    const SECOND_MS: u64 = 1_000;
    const FOREVER_MS: u64 = u64::MAX / 4;
    match cmd {
        Command::LeaseGrant { ttl_ms } if *ttl_ms < SECOND_MS => *ttl_ms = FOREVER_MS,
        Command::Txn(txn) => {
            for op in txn.ops.iter_mut().chain(txn.else_ops.iter_mut()) {
                if let crate::command::Op::Set { ttl_ms, .. } = op {
                    if ttl_ms.is_some_and(|t| t < SECOND_MS) {
                        *ttl_ms = None;
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{LeaseBinding, Op, Txn, TxnOutcome};
    use serde_json::json;

    struct World {
        agents: BTreeMap<NodeId, AgentCore>,
        now: Duration,
        wire: Vec<Message>,
        answers: BTreeMap<u64, Response>,
        cut: Option<NodeId>,
        /// Count the ticks that would only count instead of ticking (as the simulator's agent
        /// does when it sleeps until the next tick that acts).
        skip_idle: bool,
    }

    impl World {
        fn new() -> World {
            World::with_config(AgentConfig::default())
        }

        fn with_config(config: AgentConfig) -> World {
            let ids = [1, 2, 3];
            World {
                agents: ids
                    .iter()
                    .map(|&i| (i, AgentCore::new(i, &ids, config, 42)))
                    .collect(),
                now: Duration::ZERO,
                wire: Vec::new(),
                answers: BTreeMap::new(),
                cut: None,
                skip_idle: false,
            }
        }

        fn flush(&mut self) {
            loop {
                for a in self.agents.values_mut() {
                    let out = a.output();
                    self.wire.extend(out.messages);
                    self.answers.extend(out.responses);
                }
                if self.wire.is_empty() {
                    return;
                }
                for m in std::mem::take(&mut self.wire) {
                    if self.cut != Some(m.from) && self.cut != Some(m.to) {
                        self.agents.get_mut(&m.to).unwrap().step(m);
                    }
                }
            }
        }

        /// Advances local (here: true) time by `ms`, ticking every 10 ms.
        fn run(&mut self, ms: u64) {
            for _ in 0..ms / 10 {
                self.now += Duration::from_millis(10);
                let (now, skip) = (self.now, self.skip_idle);
                for a in self.agents.values_mut() {
                    if skip && a.ticks_until_due(now, Duration::from_millis(10)) > 1 {
                        a.skip_ticks(1);
                    } else {
                        a.tick(now);
                    }
                }
                self.flush();
            }
        }

        fn leader(&self) -> Option<NodeId> {
            self.agents
                .iter()
                .find(|(id, a)| a.is_leader() && self.cut != Some(**id))
                .map(|(id, _)| *id)
        }

        /// The value at `key`, read linearizably through agent `at` as request `id`.
        fn read(&mut self, at: NodeId, id: u64, key: &str) -> Option<serde_json::Value> {
            match self.ask(at, id, Request::Read(Key::parse(key).unwrap())) {
                Some(Response::Read(r)) => r.value,
                other => panic!("{other:?}"),
            }
        }

        fn ask(&mut self, to: NodeId, id: u64, req: Request) -> Option<Response> {
            let now = self.now;
            self.agents.get_mut(&to).unwrap().request(id, req, now);
            self.flush();
            self.run(20);
            self.answers.remove(&id)
        }
    }

    fn set_ttl(key: &str, ttl_ms: u64) -> Request {
        Request::Submit(Command::Txn(Txn::new().then(Op::Set {
            key: Key::parse(key).unwrap(),
            value: json!(1),
            ttl_ms: Some(ttl_ms),
            lease: LeaseBinding::None,
        })))
    }

    #[test]
    fn snapshots_come_at_the_same_indices_and_further_apart_as_the_store_grows() {
        let config = AgentConfig {
            snapshot_every: 4,
            ..AgentConfig::default()
        };
        let mut w = World::with_config(config);
        w.run(500);
        let l = w.leader().unwrap();
        let mut seen = Vec::new();
        for i in 0..120u64 {
            let key = format!("/k{i}");
            match w.ask(l, 100 + i, set_ttl(&key, 600_000)) {
                Some(Response::Applied(_)) => {}
                other => panic!("{other:?}"),
            }
            let snaps: Vec<Index> = w
                .agents
                .values()
                .map(|a| a.raft().snapshot_index())
                .collect();
            // Every agent compacted at the same index.
            assert!(snaps.iter().all(|s| *s == snaps[0]), "{snaps:?}");
            if seen.last() != Some(&snaps[0]) {
                seen.push(snaps[0]);
            }
        }
        // At first every 4 entries; with 120 keys and their events in the store (about 240
        // items, an eighth of them 30) every 32.
        assert_eq!(seen[1] - seen[0], 4, "{seen:?}");
        let last: Vec<Index> = seen.windows(2).map(|p| p[1] - p[0]).collect();
        assert_eq!(*last.last().unwrap(), 32, "{seen:?}");
        assert!(last.windows(2).all(|p| p[0] <= p[1]), "{seen:?}");
        assert!(seen.iter().all(|s| s % 4 == 0));
    }

    #[test]
    fn requests_redirect_commit_and_read_linearizably() {
        let mut w = World::new();
        w.run(500);
        let l = w.leader().expect("a leader");
        let f = [1, 2, 3].into_iter().find(|&i| i != l).unwrap();
        assert_eq!(
            w.ask(f, 1, Request::Read(Key::root())),
            Some(Response::NotLeader { leader: Some(l) })
        );
        match w.ask(l, 2, set_ttl("/k", 60_000)) {
            Some(Response::Applied(Outcome::Txn(TxnOutcome::Committed { .. }))) => {}
            other => panic!("{other:?}"),
        }
        match w.ask(l, 3, Request::Read(Key::parse("/k").unwrap())) {
            Some(Response::Read(r)) => assert_eq!(r.value, Some(json!(1))),
            other => panic!("{other:?}"),
        }
        // Every agent applied the same changes.
        let revs: Vec<u64> = w.agents.values().map(|a| a.store().revision()).collect();
        assert!(revs.iter().all(|r| *r == revs[0]));
    }

    #[test]
    fn agency_time_advances_by_leader_time_scaled_and_survives_leader_change() {
        let mut w = World::new();
        w.run(500);
        let l = w.leader().unwrap();
        // Something waits on agency time, so the leader proposes it as it passes.
        assert!(w.ask(l, 9, set_ttl("/long", 60_000)).is_some());
        let before = w.agents[&l].store().now_ms();
        w.run(10_000);
        let after = w.agents[&l].store().now_ms();
        let advanced = after - before;
        // 10 s of leader time at rho = 0.01: at most 9.9 s, and not much less.
        assert!(
            (9_700..=9_900).contains(&advanced),
            "advanced {advanced} ms"
        );
        assert!(w.ask(l, 1, set_ttl("/ttl", 3_000)).is_some());
        // Depose the leader: agency time goes on from where it was; the TTL still expires
        // at agency time deadline, not earlier.
        let t0 = w.agents[&l].store().now_ms();
        w.cut = Some(l);
        w.run(2_000);
        let nl = w.leader().expect("new leader");
        assert_ne!(nl, l);
        let t1 = w.agents[&nl].store().now_ms();
        assert!(t1 >= t0, "agency time never goes back: {t0} -> {t1}");
        assert!(t1 < t0 + 2_000, "the leaderless gap is not counted");
        assert!(w.read(nl, 2, "/ttl").is_some());
        w.run(4_000);
        assert!(w.read(nl, 3, "/ttl").is_none(), "expired on agency time");
    }

    #[test]
    fn an_idle_leader_proposes_no_time_yet_loses_none() {
        let mut w = World::new();
        w.run(500);
        let l = w.leader().unwrap();
        let (index, t0) = {
            let a = &w.agents[&l];
            (a.raft().last_index(), a.store().now_ms())
        };
        w.run(5_000);
        assert_eq!(
            w.agents[&l].raft().last_index(),
            index,
            "no Tick while nothing waits"
        );
        assert_eq!(w.agents[&l].store().now_ms(), t0);
        // The first write after the quiet spell carries its time: a TTL set now runs from now.
        assert!(w.ask(l, 1, set_ttl("/ttl", 1_000)).is_some());
        let t1 = w.agents[&l].store().now_ms();
        // All the leader's time so far (it led for a while before the quiet 5 s), at 0.99.
        assert!(
            (t0 + 4_950..=t0 + 5_445).contains(&t1),
            "at least 5 s of leader time at rho = 0.01: {t0} -> {t1}"
        );
        // Now something waits, time is proposed again, and the TTL expires on schedule.
        w.run(900);
        assert!(w.read(l, 2, "/ttl").is_some());
        w.run(300);
        assert!(w.read(l, 3, "/ttl").is_none(), "expired on agency time");
        // Nothing waits any more: the leader goes quiet again.
        let index = w.agents[&l].raft().last_index();
        w.run(2_000);
        assert_eq!(w.agents[&l].raft().last_index(), index);
    }

    #[test]
    fn skipping_the_ticks_that_only_count_changes_nothing() {
        let run = |skip_idle: bool| {
            let mut w = World::new();
            w.skip_idle = skip_idle;
            w.run(3_000);
            let l = w.leader().unwrap();
            assert!(w.ask(l, 1, set_ttl("/ttl", 2_500)).is_some());
            w.run(1_000);
            // The leader is cut off: it steps down by check-quorum, the others elect.
            w.cut = Some(l);
            w.run(3_000);
            w.cut = None;
            w.run(3_000);
            w.agents
                .values()
                .map(|a| {
                    let r = a.raft();
                    let st = a.store();
                    (
                        r.role(),
                        r.term(),
                        r.last_index(),
                        st.now_ms(),
                        st.revision(),
                    )
                })
                .collect::<Vec<_>>()
        };
        let (ticked, skipped) = (run(false), run(true));
        assert_eq!(ticked, skipped);
        assert!(
            ticked.iter().any(|a| a.1 > 1),
            "a second election: {ticked:?}"
        );
        assert!(
            ticked.iter().all(|a| a.4 > 1),
            "the TTL expired: {ticked:?}"
        );
    }

    #[test]
    fn a_ttl_runs_from_the_write_never_from_a_stale_tick() {
        // Agency ticks every 500 ms: a write between two of them would otherwise start its
        // TTL up to 500 ms in the past.
        let config = AgentConfig {
            agency_tick: Duration::from_millis(500),
            ..AgentConfig::default()
        };
        for lag in [0, 100, 200, 300, 400] {
            let mut w = World::with_config(config);
            w.run(1_000);
            let l = w.leader().unwrap();
            // Some time since the leader's last agency tick.
            w.run(lag);
            let t0 = w.now;
            // 990 ms of agency time take 1000 ms of leader time: a whole number of agency
            // ticks, so a stale start would show.
            assert!(w.ask(l, 1, set_ttl("/t", 990)).is_some());
            // 990 ms after the request reached the leader (minus one step), it is still there.
            let elapsed = (w.now - t0).as_millis() as u64;
            w.run(980 - elapsed);
            match w.ask(l, 2, Request::Read(Key::parse("/t").unwrap())) {
                Some(Response::Read(r)) => assert!(r.value.is_some(), "lag {lag}: expired early"),
                other => panic!("{other:?}"),
            }
            // Expiry comes with the next agency tick.
            w.run(600);
            match w.ask(l, 3, Request::Read(Key::parse("/t").unwrap())) {
                Some(Response::Read(r)) => assert!(r.value.is_none(), "lag {lag}: never expired"),
                other => panic!("{other:?}"),
            }
        }
    }
}
