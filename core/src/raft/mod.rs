//! Raft, sans-I/O: events in (`tick`, `step`, `propose`, `read_index`), a [`Ready`] out.
//!
//! The caller owns all I/O. After any event it takes `ready()` and, in this order: persists
//! the hard state and the log suffix it names (truncating at `persist_from` first), then sends
//! the messages, then applies the committed entries and answers the reads. Entries and votes
//! reach the network only after they are durable, so a crash cannot make a node forget a
//! vote it gave or an entry it acknowledged.
//!
//! Leader election uses randomized timeouts drawn from the seed passed in, pre-vote (a node
//! first asks whether it could win, without raising terms, so a partitioned node that comes
//! back does not depose a working leader) and check-quorum (a leader that has not heard from
//! a majority within an election timeout steps down). Replication backs off on conflict using
//! the follower's hint. An entry commits once a majority stores it and it is of the leader's
//! current term (the leader appends a no-op when elected to commit its predecessors').
//! Linearizable reads use read-index: the leader notes its commit index, confirms it is still
//! leader with a heartbeat round acknowledged by a majority, and the read is served once that
//! index is applied.
//!
//! Log compaction: the caller hands in a snapshot of its state machine at an applied index
//! ([`Raft::compact`]); the log before it is dropped. A follower that needs entries the
//! leader no longer has receives the snapshot instead (`InstallSnapshot`), and `ready()`
//! hands it to the caller to persist and, when it came from the leader, to load.

use crate::command::Command;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[cfg(test)]
mod tests;

pub type NodeId = u64;
pub type Term = u64;
pub type Index = u64;

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Payload {
    /// Appended by a new leader to commit the entries of earlier terms.
    Noop,
    Command(Command),
}

/// The state machine as of `index` (whose entry had `term`), in the caller's encoding.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub index: Index,
    pub term: Term,
    pub data: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub term: Term,
    pub index: Index,
    /// Shared: an entry is cloned into every append, the disk and the apply queue, and its
    /// command is never changed once proposed.
    pub payload: std::sync::Arc<Payload>,
}

/// What must survive a crash besides the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: Term,
    pub voted_for: Option<NodeId>,
    pub commit: Index,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MsgKind {
    PreVote {
        last_index: Index,
        last_term: Term,
    },
    PreVoteResp {
        granted: bool,
    },
    Vote {
        last_index: Index,
        last_term: Term,
    },
    VoteResp {
        granted: bool,
    },
    /// Replication and heartbeats; `read_ctx` tags a heartbeat round for read-index.
    Append {
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: Index,
        read_ctx: Option<u64>,
    },
    /// The leader's snapshot, for a follower that needs compacted entries. Answered with an
    /// `AppendResp` whose `match_index` is the snapshot's index.
    InstallSnapshot {
        snapshot: Snapshot,
    },
    /// `hint` is, on rejection, where the leader should retry from.
    AppendResp {
        success: bool,
        match_index: Index,
        hint: Index,
        read_ctx: Option<u64>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    pub term: Term,
    pub kind: MsgKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// Timing and features.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Base election timeout; each timeout is drawn from `[election_ticks, 2*election_ticks)`.
    pub election_ticks: u32,
    pub heartbeat_ticks: u32,
    pub pre_vote: bool,
    pub check_quorum: bool,
    /// Most entries in one append message.
    pub max_append_entries: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            election_ticks: 10,
            heartbeat_ticks: 2,
            pre_vote: true,
            check_quorum: true,
            max_append_entries: 64,
        }
    }
}

/// A read that may be served once `index` is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadState {
    pub ctx: u64,
    pub index: Index,
}

/// What the caller must do, in order: persist, send, apply.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ready {
    /// Persist if `Some`.
    pub hard_state: Option<HardState>,
    /// Truncate the persisted log from this index, then append `entries` (if `Some`).
    pub persist_from: Option<Index>,
    pub entries: Vec<Entry>,
    pub messages: Vec<Message>,
    pub committed: Vec<Entry>,
    pub reads: Vec<ReadState>,
    /// Persist this snapshot (and then the whole log, which `persist_from` and `entries` then
    /// name). With `snapshot_installed`, it came from the leader: load it into the state
    /// machine before applying `committed`, which follow it.
    pub snapshot: Option<Snapshot>,
    pub snapshot_installed: bool,
}

impl Ready {
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none()
            && self.hard_state.is_none()
            && self.persist_from.is_none()
            && self.messages.is_empty()
            && self.committed.is_empty()
            && self.reads.is_empty()
    }
}

/// Why a proposal or read was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotLeader {
    #[error("not the leader; the leader is {0}")]
    Redirect(NodeId),
    #[error("no leader known")]
    NoLeader,
}

#[derive(Clone, Copy, Debug, Default)]
struct Progress {
    matched: Index,
    next: Index,
    active: bool,
}

struct PendingRead {
    ctx: u64,
    index: Index,
    acks: BTreeSet<NodeId>,
}

/// One Raft node's state machine.
pub struct Raft {
    id: NodeId,
    peers: Vec<NodeId>,
    config: Config,
    rng: crate::rng::SplitMix64,
    term: Term,
    voted_for: Option<NodeId>,
    /// Entries after the snapshot: `log[0]` has index `snap.index + 1`.
    log: Vec<Entry>,
    /// The latest snapshot (index 0: none); the log before it is gone.
    snap: Snapshot,
    /// The snapshot must be persisted (and, if installed from the leader, loaded).
    snap_unstable: Option<bool>,
    commit: Index,
    applied: Index,
    role: Role,
    leader: Option<NodeId>,
    election_elapsed: u32,
    election_timeout: u32,
    /// The election timer was set to go off early (a fault point): the next word from a
    /// leader sets it back to a normal timeout.
    early_timer: bool,
    heartbeat_elapsed: u32,
    votes: BTreeMap<NodeId, bool>,
    progress: BTreeMap<NodeId, Progress>,
    msgs: Vec<Message>,
    persisted_hs: HardState,
    unstable_from: Option<Index>,
    reads: Vec<PendingRead>,
    ready_reads: Vec<ReadState>,
    pending_reads_without_leader_commit: Vec<u64>,
    /// A leader owes its followers an append (new entries, or a heartbeat is due): sent by
    /// the next `ready()`, once for everything proposed since the last.
    bcast: bool,
    /// A read-index round is owed, for the reads up to this context: one round confirms
    /// every read registered before it is sent.
    read_round: Option<u64>,
}

impl Raft {
    /// A fresh node. `peers` lists every voter, this node included; `seed` fixes its timeouts.
    pub fn new(id: NodeId, peers: &[NodeId], config: Config, seed: u64) -> Raft {
        Raft::restore(
            id,
            peers,
            config,
            seed,
            HardState::default(),
            None,
            Vec::new(),
        )
    }

    /// A node restarting from what it persisted: its hard state, its last snapshot (if any;
    /// the caller loads it into its state machine) and the log entries after it. Persisted
    /// entries at or before the snapshot are skipped.
    pub fn restore(
        id: NodeId,
        peers: &[NodeId],
        config: Config,
        seed: u64,
        hs: HardState,
        snapshot: Option<Snapshot>,
        mut log: Vec<Entry>,
    ) -> Raft {
        let mut peers = peers.to_vec();
        peers.sort_unstable();
        peers.dedup();
        assert!(peers.contains(&id), "peers must include the node itself");
        let snap = snapshot.unwrap_or_default();
        log.retain(|e| e.index > snap.index);
        for (i, e) in log.iter().enumerate() {
            assert_eq!(
                e.index,
                snap.index + i as u64 + 1,
                "persisted log must be contiguous after the snapshot"
            );
        }
        let last = snap.index + log.len() as Index;
        let applied = snap.index;
        let mut r = Raft {
            id,
            peers,
            config,
            rng: crate::rng::SplitMix64::new(seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            term: hs.term,
            voted_for: hs.voted_for,
            log,
            snap,
            snap_unstable: None,
            commit: hs.commit.min(last).max(applied),
            applied,
            role: Role::Follower,
            leader: None,
            election_elapsed: 0,
            election_timeout: 0,
            early_timer: false,
            heartbeat_elapsed: 0,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            msgs: Vec::new(),
            persisted_hs: hs,
            unstable_from: None,
            reads: Vec::new(),
            ready_reads: Vec::new(),
            pending_reads_without_leader_commit: Vec::new(),
            bcast: false,
            read_round: None,
        };
        r.reset_election_timeout();
        r
    }

    // ---- observers (for checkers and drivers) ---------------------------------------------

    pub fn id(&self) -> NodeId {
        self.id
    }
    pub fn term(&self) -> Term {
        self.term
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    pub fn commit_index(&self) -> Index {
        self.commit
    }
    pub fn voted_for(&self) -> Option<NodeId> {
        self.voted_for
    }
    /// The entries after the snapshot.
    pub fn log(&self) -> &[Entry] {
        &self.log
    }
    /// The index of the last entry the snapshot replaced (0: no snapshot).
    pub fn snapshot_index(&self) -> Index {
        self.snap.index
    }
    pub fn snapshot(&self) -> &Snapshot {
        &self.snap
    }
    pub fn last_index(&self) -> Index {
        self.snap.index + self.log.len() as Index
    }
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            voted_for: self.voted_for,
            commit: self.commit,
        }
    }

    /// The term of the last log entry (0 for an empty log).
    pub fn last_term(&self) -> Term {
        self.log.last().map_or(self.snap.term, |e| e.term)
    }

    /// The term of the entry at `index`; `None` if it is not in the log (beyond its end, or
    /// compacted into the snapshot, except the snapshot's own index).
    fn term_at(&self, index: Index) -> Option<Term> {
        if index == 0 {
            Some(0)
        } else if index == self.snap.index {
            Some(self.snap.term)
        } else if index < self.snap.index {
            None
        } else {
            self.log.get(self.pos(index)).map(|e| e.term)
        }
    }

    /// Where the entry at `index` (after the snapshot) sits in `log`.
    fn pos(&self, index: Index) -> usize {
        (index - self.snap.index - 1) as usize
    }

    /// Replaces the log up to `index` (applied by the caller) by a snapshot of the state
    /// machine there. Does nothing for an index not after the current snapshot or not yet
    /// applied.
    pub fn compact(&mut self, index: Index, data: Vec<u8>) {
        if index <= self.snap.index || index > self.applied {
            return;
        }
        let term = self.term_at(index).expect("an applied entry is in the log");
        let cut = self.pos(index) + 1;
        self.log.drain(..cut);
        self.snap = Snapshot { index, term, data };
        self.snap_unstable = Some(self.snap_unstable.unwrap_or(false));
        self.mark_unstable(index + 1);
    }

    fn quorum(&self) -> usize {
        self.peers.len() / 2 + 1
    }

    /// A leader was heard from: the election timer starts again (an early one, set by a
    /// fault point, goes back to a normal timeout).
    fn heard_from_leader(&mut self) {
        if self.early_timer {
            self.reset_election_timeout();
        }
        self.election_elapsed = 0;
    }

    fn reset_election_timeout(&mut self) {
        let base = self.config.election_ticks.max(1);
        self.election_timeout = base + self.rng.below(base as u64) as u32;
        self.early_timer = false;
        if crate::buggify::fires(crate::buggify::EARLY_ELECTION) {
            // A timer that goes off early, once: a third of the base timeout (never below a
            // tick), until a leader is heard from.
            self.election_timeout = (base / 3).max(1);
            self.early_timer = true;
        }
        self.election_elapsed = 0;
    }

    fn send(&mut self, to: NodeId, kind: MsgKind) {
        self.msgs.push(Message {
            from: self.id,
            to,
            term: self.term,
            kind,
        });
    }

    fn others(&self) -> Vec<NodeId> {
        self.peers
            .iter()
            .copied()
            .filter(|p| *p != self.id)
            .collect()
    }

    fn mark_unstable(&mut self, from: Index) {
        self.unstable_from = Some(self.unstable_from.map_or(from, |u| u.min(from)));
    }

    // ---- role changes -----------------------------------------------------------------

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if term > self.term {
            self.term = term;
            self.voted_for = None;
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        self.reads.clear();
        self.reset_election_timeout();
    }

    fn campaign(&mut self, pre: bool) {
        self.votes.clear();
        self.leader = None;
        self.reset_election_timeout();
        let (last_index, last_term) = (self.last_index(), self.last_term());
        if pre {
            self.role = Role::PreCandidate;
        } else {
            self.role = Role::Candidate;
            self.term += 1;
            self.voted_for = Some(self.id);
        }
        self.votes.insert(self.id, true);
        if self.votes.len() >= self.quorum() {
            return self.on_won(pre);
        }
        for p in self.others() {
            let kind = if pre {
                MsgKind::PreVote {
                    last_index,
                    last_term,
                }
            } else {
                MsgKind::Vote {
                    last_index,
                    last_term,
                }
            };
            // A pre-vote asks as if for the next term, without taking it.
            let term = if pre { self.term + 1 } else { self.term };
            self.msgs.push(Message {
                from: self.id,
                to: p,
                term,
                kind,
            });
        }
    }

    fn on_won(&mut self, pre: bool) {
        if pre {
            self.campaign(false);
        } else {
            self.become_leader();
        }
    }

    fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = Some(self.id);
        self.heartbeat_elapsed = 0;
        self.election_elapsed = 0;
        let next = self.last_index() + 1;
        self.progress = self
            .peers
            .iter()
            .map(|&p| {
                (
                    p,
                    Progress {
                        matched: 0,
                        next,
                        active: true,
                    },
                )
            })
            .collect();
        self.append(Payload::Noop);
        self.broadcast_append(None);
    }

    fn append(&mut self, payload: Payload) -> Index {
        let index = self.last_index() + 1;
        self.log.push(Entry {
            term: self.term,
            index,
            payload: std::sync::Arc::new(payload),
        });
        self.mark_unstable(index);
        let id = self.id;
        if let Some(p) = self.progress.get_mut(&id) {
            p.matched = index;
            p.next = index + 1;
        }
        self.maybe_commit();
        index
    }

    // ---- events -------------------------------------------------------------------------

    /// One unit of logical time (the driver calls it at a fixed local-clock period).
    pub fn tick(&mut self) {
        self.election_elapsed += 1;
        match self.role {
            Role::Leader => {
                self.heartbeat_elapsed += 1;
                if self.heartbeat_elapsed >= self.config.heartbeat_ticks {
                    self.heartbeat_elapsed = 0;
                    self.bcast = true;
                }
                if self.election_elapsed >= self.config.election_ticks {
                    self.election_elapsed = 0;
                    if self.config.check_quorum {
                        let active = self
                            .progress
                            .iter()
                            .filter(|(id, p)| **id == self.id || p.active)
                            .count();
                        if active < self.quorum() {
                            let term = self.term;
                            self.become_follower(term, None);
                            return;
                        }
                        for (id, p) in self.progress.iter_mut() {
                            if *id != self.id {
                                p.active = false;
                            }
                        }
                    }
                }
            }
            _ => {
                if self.election_elapsed >= self.election_timeout {
                    self.campaign(self.config.pre_vote);
                }
            }
        }
    }

    /// How many ticks from now the first one that acts comes (a heartbeat or quorum check
    /// while leading, an election otherwise): the ones before it only count. At least 1.
    /// A driver may count those at once with [`Raft::skip_ticks`] instead of waking for each.
    pub fn ticks_until_due(&self) -> u32 {
        let left = |elapsed: u32, limit: u32| limit.saturating_sub(elapsed).max(1);
        match self.role {
            Role::Leader => left(self.heartbeat_elapsed, self.config.heartbeat_ticks)
                .min(left(self.election_elapsed, self.config.election_ticks)),
            _ => left(self.election_elapsed, self.election_timeout),
        }
    }

    /// `n` ticks that do nothing but count: the same as `n` calls of [`Raft::tick`] when
    /// `n` is less than [`Raft::ticks_until_due`].
    pub fn skip_ticks(&mut self, n: u32) {
        debug_assert!(n < self.ticks_until_due(), "{n} ticks would act");
        self.election_elapsed += n;
        if self.role == Role::Leader {
            self.heartbeat_elapsed += n;
        }
    }

    /// Proposes a command; returns the index it will have if it commits.
    pub fn propose(&mut self, command: Command) -> Result<Index, NotLeader> {
        if self.role != Role::Leader {
            return Err(self.not_leader());
        }
        let index = self.append(Payload::Command(command));
        self.bcast = true;
        Ok(index)
    }

    fn not_leader(&self) -> NotLeader {
        match self.leader {
            Some(l) if l != self.id => NotLeader::Redirect(l),
            _ => NotLeader::NoLeader,
        }
    }

    /// Asks for a linearizable read tagged `ctx`; a `ReadState` with the same `ctx` comes
    /// out of `ready()` once the read may be served (after its index is applied).
    pub fn read_index(&mut self, ctx: u64) -> Result<(), NotLeader> {
        if self.role != Role::Leader {
            return Err(self.not_leader());
        }
        // A leader knows the commit index only once an entry of its own term has committed.
        if self.term_at(self.commit) != Some(self.term) {
            self.pending_reads_without_leader_commit.push(ctx);
            return Ok(());
        }
        self.start_read(ctx);
        Ok(())
    }

    fn start_read(&mut self, ctx: u64) {
        let mut acks = BTreeSet::new();
        acks.insert(self.id);
        self.reads.push(PendingRead {
            ctx,
            index: self.commit,
            acks,
        });
        self.maybe_release_reads();
        if !self.reads.is_empty() {
            self.read_round = Some(self.read_round.map_or(ctx, |c| c.max(ctx)));
        }
    }

    fn maybe_release_reads(&mut self) {
        let q = self.quorum();
        let (done, pending): (Vec<_>, Vec<_>) =
            self.reads.drain(..).partition(|r| r.acks.len() >= q);
        self.reads = pending;
        self.ready_reads.extend(done.into_iter().map(|r| ReadState {
            ctx: r.ctx,
            index: r.index,
        }));
    }

    fn broadcast_append(&mut self, read_ctx: Option<u64>) {
        for p in self.others() {
            self.send_append(p, read_ctx);
        }
    }

    fn send_append(&mut self, to: NodeId, read_ctx: Option<u64>) {
        let next = self.progress[&to].next.max(1);
        let prev_index = next - 1;
        if prev_index < self.snap.index {
            // The entries it needs are compacted: send the snapshot, and go on after it.
            let snapshot = self.snap.clone();
            self.progress.get_mut(&to).expect("peer").next = snapshot.index + 1;
            self.send(to, MsgKind::InstallSnapshot { snapshot });
            return;
        }
        let prev_term = self.term_at(prev_index).unwrap_or(0);
        let end = self
            .last_index()
            .min(prev_index + self.config.max_append_entries as Index);
        let entries = self.log[self.pos(prev_index + 1)..self.pos(end + 1)].to_vec();
        let commit = self.commit;
        self.send(
            to,
            MsgKind::Append {
                prev_index,
                prev_term,
                entries,
                commit,
                read_ctx,
            },
        );
    }

    fn maybe_commit(&mut self) {
        let mut matched: Vec<Index> = self.progress.values().map(|p| p.matched).collect();
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = matched[self.quorum() - 1];
        // Only entries of the current term commit by counting replicas (Raft §5.4.2).
        if candidate > self.commit && self.term_at(candidate) == Some(self.term) {
            self.commit = candidate;
            let waiting = std::mem::take(&mut self.pending_reads_without_leader_commit);
            for ctx in waiting {
                self.start_read(ctx);
            }
        }
    }

    /// Handles a message from a peer.
    pub fn step(&mut self, m: Message) {
        if m.to != self.id || !self.peers.contains(&m.from) {
            return;
        }
        let is_pre_vote = matches!(m.kind, MsgKind::PreVote { .. });
        let is_pre_vote_resp = matches!(m.kind, MsgKind::PreVoteResp { .. });
        if m.term > self.term && !is_pre_vote && !(is_pre_vote_resp) {
            // A vote request while we hear from a live leader is ignored (check-quorum's
            // lease): it comes from a node that was cut off.
            if matches!(m.kind, MsgKind::Vote { .. })
                && self.config.check_quorum
                && self.leader.is_some()
                && self.election_elapsed < self.config.election_ticks
            {
                return;
            }
            let leader = matches!(m.kind, MsgKind::Append { .. }).then_some(m.from);
            self.become_follower(m.term, leader);
        }
        if m.term < self.term && !is_pre_vote && !is_pre_vote_resp {
            // Stale: tell a stale leader about the newer term so it steps down.
            if matches!(m.kind, MsgKind::Append { .. }) {
                self.send(
                    m.from,
                    MsgKind::AppendResp {
                        success: false,
                        match_index: 0,
                        hint: 0,
                        read_ctx: None,
                    },
                );
            }
            return;
        }
        match m.kind {
            MsgKind::PreVote {
                last_index,
                last_term,
            } => {
                let fresh_leader =
                    self.leader.is_some() && self.election_elapsed < self.config.election_ticks;
                let granted =
                    m.term > self.term && !fresh_leader && self.log_ok(last_index, last_term);
                self.msgs.push(Message {
                    from: self.id,
                    to: m.from,
                    term: if granted { m.term } else { self.term },
                    kind: MsgKind::PreVoteResp { granted },
                });
            }
            MsgKind::Vote {
                last_index,
                last_term,
            } => {
                let can_vote = self.voted_for.is_none() || self.voted_for == Some(m.from);
                let granted = can_vote && self.log_ok(last_index, last_term);
                if granted {
                    self.voted_for = Some(m.from);
                    self.reset_election_timeout();
                }
                self.send(m.from, MsgKind::VoteResp { granted });
            }
            MsgKind::PreVoteResp { granted } => {
                if self.role == Role::PreCandidate {
                    if !granted && m.term > self.term {
                        self.become_follower(m.term, None);
                        return;
                    }
                    self.tally(m.from, granted, true);
                }
            }
            MsgKind::VoteResp { granted } => {
                if self.role == Role::Candidate {
                    self.tally(m.from, granted, false);
                }
            }
            MsgKind::Append {
                prev_index,
                prev_term,
                entries,
                commit,
                read_ctx,
            } => {
                if self.role != Role::Follower {
                    self.become_follower(m.term, Some(m.from));
                }
                self.leader = Some(m.from);
                self.heard_from_leader();
                self.handle_append(m.from, prev_index, prev_term, entries, commit, read_ctx);
            }
            MsgKind::InstallSnapshot { snapshot } => {
                if self.role != Role::Follower {
                    self.become_follower(m.term, Some(m.from));
                }
                self.leader = Some(m.from);
                self.heard_from_leader();
                self.install_snapshot(m.from, snapshot);
            }
            MsgKind::AppendResp {
                success,
                match_index,
                hint,
                read_ctx,
            } => {
                if self.role != Role::Leader {
                    return;
                }
                if let Some(p) = self.progress.get_mut(&m.from) {
                    p.active = true;
                }
                if let Some(ctx) = read_ctx {
                    for r in self.reads.iter_mut().filter(|r| r.ctx <= ctx) {
                        r.acks.insert(m.from);
                    }
                    self.maybe_release_reads();
                }
                let last = self.last_index();
                let p = self.progress.get_mut(&m.from).expect("peer");
                if success {
                    if match_index > p.matched {
                        p.matched = match_index;
                    }
                    p.next = p.next.max(match_index + 1);
                    self.maybe_commit();
                    if self.progress[&m.from].next <= last {
                        self.send_append(m.from, None);
                    }
                } else {
                    // Back off to the follower's hint (never below 1, never up).
                    let new_next = hint.max(1).min(p.next.saturating_sub(1).max(1));
                    if new_next < p.next {
                        p.next = new_next;
                        self.send_append(m.from, None);
                    }
                }
            }
        }
    }

    fn log_ok(&self, last_index: Index, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    fn tally(&mut self, from: NodeId, granted: bool, pre: bool) {
        self.votes.insert(from, granted);
        let yes = self.votes.values().filter(|v| **v).count();
        let no = self.votes.len() - yes;
        if yes >= self.quorum() {
            self.on_won(pre);
        } else if no >= self.quorum() {
            let term = self.term;
            self.become_follower(term, None);
        }
    }

    fn install_snapshot(&mut self, from: NodeId, snapshot: Snapshot) {
        let index = snapshot.index;
        if index > self.commit {
            if self.term_at(index) == Some(snapshot.term) && index < self.last_index() {
                // Log matching: our entries up to `index` are the snapshot's; keep the rest.
                let cut = self.pos(index) + 1;
                self.log.drain(..cut);
            } else {
                self.log.clear();
            }
            self.snap = snapshot;
            self.snap_unstable = Some(true);
            self.commit = index;
            self.applied = index;
            self.mark_unstable(index + 1);
        }
        // Either way our log matches the leader's up to our commit index (now at least the
        // snapshot's).
        let match_index = self.commit;
        self.send(
            from,
            MsgKind::AppendResp {
                success: true,
                match_index,
                hint: 0,
                read_ctx: None,
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_append(
        &mut self,
        from: NodeId,
        mut prev_index: Index,
        mut prev_term: Term,
        mut entries: Vec<Entry>,
        commit: Index,
        read_ctx: Option<u64>,
    ) {
        if prev_index < self.snap.index {
            // Entries up to our snapshot are committed, so they match the leader's: skip them.
            entries.retain(|e| e.index > self.snap.index);
            prev_index = self.snap.index;
            prev_term = self.snap.term;
        }
        let hint = match self.term_at(prev_index) {
            // We lack `prev_index`: retry from just after our last entry.
            None => Some(self.last_index() + 1),
            // Conflict: skip back over the whole conflicting term at once.
            Some(t) if t != prev_term => {
                let mut hint = prev_index;
                while hint > 1 && self.term_at(hint - 1) == Some(t) {
                    hint -= 1;
                }
                Some(hint.min(self.commit + 1).max(1))
            }
            Some(_) => None,
        };
        if let Some(hint) = hint {
            self.send(
                from,
                MsgKind::AppendResp {
                    success: false,
                    match_index: 0,
                    hint,
                    read_ctx,
                },
            );
            return;
        }
        let mut last_new = prev_index;
        for e in entries {
            last_new = e.index;
            match self.term_at(e.index) {
                Some(t) if t == e.term => continue,
                Some(_) => {
                    assert!(
                        e.index > self.commit,
                        "a committed entry can never conflict"
                    );
                    let at = self.pos(e.index);
                    self.log.truncate(at);
                    self.mark_unstable(e.index);
                    self.log.push(e);
                }
                None => {
                    self.mark_unstable(e.index);
                    self.log.push(e);
                }
            }
        }
        if commit > self.commit {
            // `last_new` may lie below our commit index (a stale append): never move back.
            self.commit = self.commit.max(commit.min(last_new));
        }
        self.send(
            from,
            MsgKind::AppendResp {
                success: true,
                match_index: last_new,
                hint: 0,
                read_ctx,
            },
        );
    }

    /// Collects what the caller must persist, send and apply, and marks it handed over.
    ///
    /// A leader's appends go out here, one to each follower for everything proposed (and
    /// every read registered) since the last call: a burst of proposals handled together
    /// costs one message per follower, not one per proposal.
    pub fn ready(&mut self) -> Ready {
        if self.role == Role::Leader {
            if self.bcast || self.read_round.is_some() {
                let round = self.read_round.take();
                self.broadcast_append(round);
            }
        } else {
            self.read_round = None;
        }
        self.bcast = false;
        let hs = self.hard_state();
        let hard_state = (hs != self.persisted_hs).then(|| {
            self.persisted_hs = hs;
            hs
        });
        let (snapshot, snapshot_installed) = match self.snap_unstable.take() {
            // With a snapshot, the whole remaining log is persisted again after it.
            Some(installed) => {
                self.unstable_from = Some(self.snap.index + 1);
                (Some(self.snap.clone()), installed)
            }
            None => (None, false),
        };
        let persist_from = self.unstable_from.take();
        let entries = match persist_from {
            Some(from) => {
                let from = from.max(self.snap.index + 1);
                self.log[self.pos(from).min(self.log.len())..].to_vec()
            }
            None => Vec::new(),
        };
        let committed = self.log[self.pos(self.applied + 1)..self.pos(self.commit + 1)].to_vec();
        self.applied = self.commit;
        Ready {
            hard_state,
            persist_from,
            entries,
            messages: std::mem::take(&mut self.msgs),
            committed,
            reads: std::mem::take(&mut self.ready_reads),
            snapshot,
            snapshot_installed,
        }
    }
}
