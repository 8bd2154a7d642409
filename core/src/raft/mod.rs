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

mod election;
mod log;
mod progress;
mod read_index;

use progress::Progress;
use read_index::PendingRead;

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
    /// The highest term this node has been in ([`Raft::assert_invariants`]).
    highest_term: Term,
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
            highest_term: 0,
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
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            voted_for: self.voted_for,
            commit: self.commit,
        }
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
            MsgKind::PreVote { .. }
            | MsgKind::Vote { .. }
            | MsgKind::PreVoteResp { .. }
            | MsgKind::VoteResp { .. } => self.step_election(m),
            MsgKind::Append { .. } | MsgKind::InstallSnapshot { .. } => self.step_follower(m),
            MsgKind::AppendResp { .. } => self.step_leader(m),
        }
        self.assert_invariants();
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
        self.assert_invariants();
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

    /// What must hold after every step and every `ready` (checked always: a violation is a
    /// bug in this module, and a simulated run that hits one fails loudly): the commit index
    /// is within the log, the applied index within the commit index, the snapshot within
    /// what is committed, and the term never goes back.
    pub fn assert_invariants(&mut self) {
        assert!(
            self.commit <= self.last_index(),
            "raft {}: commit {} beyond the last index {}",
            self.id,
            self.commit,
            self.last_index()
        );
        assert!(
            self.applied <= self.commit,
            "raft {}: applied {} beyond commit {}",
            self.id,
            self.applied,
            self.commit
        );
        assert!(
            self.snap.index <= self.commit,
            "raft {}: snapshot at {} beyond commit {}",
            self.id,
            self.snap.index,
            self.commit
        );
        assert!(
            self.term >= self.highest_term,
            "raft {}: term {} went back from {}",
            self.id,
            self.term,
            self.highest_term
        );
        self.highest_term = self.term;
    }
}
