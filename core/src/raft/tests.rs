//! Several `Raft` nodes driven by hand: a tiny network that delivers, drops (partitions) and
//! persists exactly as a driver must.

use super::*;
use crate::command::{Command, Op, Txn};
use crate::key::Key;
use serde_json::json;

struct Disk {
    hs: HardState,
    snap: Option<Snapshot>,
    /// Entries after the snapshot.
    log: Vec<Entry>,
}

struct Cluster {
    nodes: BTreeMap<NodeId, Raft>,
    disks: BTreeMap<NodeId, Disk>,
    /// Applied entries per node, in order.
    applied: BTreeMap<NodeId, Vec<Entry>>,
    reads: BTreeMap<NodeId, Vec<ReadState>>,
    in_flight: Vec<Message>,
    /// Nodes that can talk to each other: same group number.
    group: BTreeMap<NodeId, u32>,
    down: BTreeSet<NodeId>,
    seed: u64,
    leaders_by_term: BTreeMap<Term, NodeId>,
}

fn cmd(i: i64) -> Command {
    Command::Txn(Txn::new().then(Op::set(Key::parse("/x").unwrap(), json!(i))))
}

impl Cluster {
    fn new(n: u64, seed: u64) -> Cluster {
        let ids: Vec<NodeId> = (1..=n).collect();
        let mut c = Cluster {
            nodes: BTreeMap::new(),
            disks: BTreeMap::new(),
            applied: BTreeMap::new(),
            reads: BTreeMap::new(),
            in_flight: Vec::new(),
            group: ids.iter().map(|&i| (i, 0)).collect(),
            down: BTreeSet::new(),
            seed,
            leaders_by_term: BTreeMap::new(),
        };
        for &i in &ids {
            c.nodes
                .insert(i, Raft::new(i, &ids, Config::default(), seed));
            c.disks.insert(
                i,
                Disk {
                    hs: HardState::default(),
                    snap: None,
                    log: Vec::new(),
                },
            );
            c.applied.insert(i, Vec::new());
        }
        c
    }

    fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    fn process_ready(&mut self, id: NodeId) {
        let ready = self.nodes.get_mut(&id).unwrap().ready();
        let disk = self.disks.get_mut(&id).unwrap();
        if let Some(hs) = ready.hard_state {
            assert!(hs.term >= disk.hs.term, "term never goes back");
            disk.hs = hs;
        }
        let applied = self.applied.get_mut(&id).unwrap();
        if let Some(snap) = ready.snapshot {
            if ready.snapshot_installed {
                // The test state machine is the list of applied entries.
                *applied = serde_json::from_slice(&snap.data).unwrap();
                assert_eq!(applied.len() as u64, snap.index);
            }
            disk.snap = Some(snap);
        }
        if let Some(from) = ready.persist_from {
            let base = disk.snap.as_ref().map_or(0, |s| s.index);
            disk.log.retain(|e| e.index > base && e.index < from);
            disk.log.extend(ready.entries);
        }
        self.in_flight.extend(ready.messages);
        for e in ready.committed {
            assert_eq!(
                e.index,
                applied.len() as u64 + 1,
                "applied in order, no gap"
            );
            applied.push(e);
        }
        self.reads.entry(id).or_default().extend(ready.reads);
        let r = &self.nodes[&id];
        if r.role() == Role::Leader {
            let prev = self.leaders_by_term.insert(r.term(), id);
            assert!(
                prev.is_none() || prev == Some(id),
                "two leaders in term {}",
                r.term()
            );
        }
    }

    /// Compacts node `id`'s log up to what it applied; the snapshot is its applied entries.
    fn compact(&mut self, id: NodeId) {
        let applied = &self.applied[&id];
        let data = serde_json::to_vec(applied).unwrap();
        let index = applied.len() as Index;
        self.nodes.get_mut(&id).unwrap().compact(index, data);
        self.process_ready(id);
    }

    fn connected(&self, a: NodeId, b: NodeId) -> bool {
        !self.down.contains(&a) && !self.down.contains(&b) && self.group[&a] == self.group[&b]
    }

    /// Delivers messages until none is left.
    fn deliver(&mut self) {
        for id in self.ids() {
            if !self.down.contains(&id) {
                self.process_ready(id);
            }
        }
        let mut rounds = 0;
        while !self.in_flight.is_empty() {
            rounds += 1;
            assert!(rounds < 10_000, "messages never settle");
            let msgs = std::mem::take(&mut self.in_flight);
            for m in msgs {
                if self.connected(m.from, m.to) {
                    let to = m.to;
                    self.nodes.get_mut(&to).unwrap().step(m);
                    self.process_ready(to);
                }
            }
        }
    }

    fn tick_all(&mut self, n: usize) {
        for _ in 0..n {
            for id in self.ids() {
                if !self.down.contains(&id) {
                    self.nodes.get_mut(&id).unwrap().tick();
                }
            }
            self.deliver();
        }
    }

    fn leader(&self) -> Option<NodeId> {
        let leaders: Vec<NodeId> = self
            .nodes
            .values()
            .filter(|r| r.role() == Role::Leader && !self.down.contains(&r.id()))
            .map(|r| r.id())
            .collect();
        let max_term = leaders.iter().map(|l| self.nodes[l].term()).max()?;
        leaders
            .into_iter()
            .find(|l| self.nodes[l].term() == max_term)
    }

    fn elect(&mut self) -> NodeId {
        for _ in 0..200 {
            self.tick_all(1);
            if let Some(l) = self.leader() {
                return l;
            }
        }
        panic!("no leader elected");
    }

    fn crash_and_restart(&mut self, id: NodeId) {
        let d = &self.disks[&id];
        let ids = self.ids();
        let r = Raft::restore(
            id,
            &ids,
            Config::default(),
            self.seed + 1,
            d.hs,
            d.snap.clone(),
            d.log.clone(),
        );
        let applied = d
            .snap
            .as_ref()
            .map_or(Vec::new(), |s| serde_json::from_slice(&s.data).unwrap());
        self.nodes.insert(id, r);
        self.applied.insert(id, applied);
        self.in_flight.retain(|m| m.to != id && m.from != id);
    }

    /// Log matching and state-machine safety across every pair of nodes.
    fn check_safety(&self) {
        let ids = self.ids();
        for &a in &ids {
            for &b in &ids {
                let (ra, rb) = (&self.nodes[&a], &self.nodes[&b]);
                // Log matching over the indices both still hold: same index and term implies
                // the same entries before it.
                let from = ra.snapshot_index().max(rb.snapshot_index()) + 1;
                let to = ra.last_index().min(rb.last_index());
                let at =
                    |r: &Raft, i: Index| r.log()[(i - r.snapshot_index() - 1) as usize].clone();
                if let Some(i) = (from..=to)
                    .rev()
                    .find(|&i| at(ra, i).term == at(rb, i).term)
                {
                    for j in from..=i {
                        assert_eq!(at(ra, j), at(rb, j), "log matching between {a} and {b}");
                    }
                }
                let (pa, pb) = (&self.applied[&a], &self.applied[&b]);
                let n = pa.len().min(pb.len());
                assert_eq!(
                    pa[..n],
                    pb[..n],
                    "same index applies the same entry on {a} and {b}"
                );
            }
        }
    }
}

#[test]
fn a_single_node_elects_itself_and_commits() {
    let mut c = Cluster::new(1, 1);
    let l = c.elect();
    assert_eq!(l, 1);
    let idx = c.nodes.get_mut(&1).unwrap().propose(cmd(1)).unwrap();
    c.deliver();
    assert_eq!(c.nodes[&1].commit_index(), idx);
    assert_eq!(c.applied[&1].len(), 2, "no-op and the command");
}

#[test]
fn three_nodes_elect_one_leader_and_replicate() {
    for seed in 0..20 {
        let mut c = Cluster::new(3, seed);
        let l = c.elect();
        for i in 0..10 {
            c.nodes.get_mut(&l).unwrap().propose(cmd(i)).unwrap();
        }
        c.deliver();
        c.tick_all(3);
        for id in c.ids() {
            assert_eq!(c.applied[&id].len(), 11, "seed {seed} node {id}");
        }
        c.check_safety();
        // Followers redirect proposals to the leader.
        let f = c.ids().into_iter().find(|&i| i != l).unwrap();
        assert_eq!(
            c.nodes.get_mut(&f).unwrap().propose(cmd(0)),
            Err(NotLeader::Redirect(l))
        );
    }
}

#[test]
fn a_partitioned_leader_steps_down_and_the_majority_moves_on() {
    let mut c = Cluster::new(5, 3);
    let old = c.elect();
    let old_term = c.nodes[&old].term();
    c.group.insert(old, 1);
    // The old leader can still append but never commit.
    let idx = c.nodes.get_mut(&old).unwrap().propose(cmd(99)).unwrap();
    c.tick_all(40);
    assert_ne!(
        c.nodes[&old].role(),
        Role::Leader,
        "check-quorum deposed it"
    );
    assert!(c.nodes[&old].commit_index() < idx);
    let new = c.leader().expect("majority elected a leader");
    assert_ne!(new, old);
    assert!(c.nodes[&new].term() > old_term);
    c.nodes.get_mut(&new).unwrap().propose(cmd(1)).unwrap();
    c.deliver();
    // Heal: the old leader's uncommitted entry is replaced; every log converges.
    c.group.insert(old, 0);
    c.tick_all(30);
    let reference = c.nodes[&new].log().to_vec();
    for id in c.ids() {
        assert_eq!(c.nodes[&id].log(), &reference[..], "node {id} repaired");
    }
    assert!(!reference
        .iter()
        .any(|e| *e.payload == Payload::Command(cmd(99))));
    c.check_safety();
}

#[test]
fn pre_vote_keeps_a_rejoining_node_from_disrupting_the_leader() {
    let mut c = Cluster::new(3, 5);
    let l = c.elect();
    let term = c.nodes[&l].term();
    let f = c.ids().into_iter().find(|&i| i != l).unwrap();
    c.group.insert(f, 7);
    c.tick_all(100);
    assert_eq!(
        c.nodes[&f].term(),
        term,
        "pre-vote: no term inflation while cut off"
    );
    c.group.insert(f, 0);
    c.tick_all(20);
    assert_eq!(c.leader(), Some(l));
    assert_eq!(c.nodes[&l].term(), term);
}

#[test]
fn log_repair_after_divergence() {
    let mut c = Cluster::new(3, 11);
    let l = c.elect();
    for i in 0..5 {
        c.nodes.get_mut(&l).unwrap().propose(cmd(i)).unwrap();
    }
    c.deliver();
    // Cut the leader off; it appends entries nobody else gets.
    c.group.insert(l, 2);
    for i in 100..120 {
        c.nodes.get_mut(&l).unwrap().propose(cmd(i)).unwrap();
    }
    c.deliver();
    c.tick_all(40);
    let new = c.leader().unwrap();
    for i in 200..210 {
        c.nodes.get_mut(&new).unwrap().propose(cmd(i)).unwrap();
    }
    c.deliver();
    c.group.insert(l, 0);
    c.tick_all(40);
    let reference = c.nodes[&new].log().to_vec();
    assert_eq!(c.nodes[&l].log(), &reference[..]);
    c.check_safety();
}

#[test]
fn a_restarted_node_recovers_term_vote_and_log() {
    let mut c = Cluster::new(3, 21);
    let l = c.elect();
    for i in 0..4 {
        c.nodes.get_mut(&l).unwrap().propose(cmd(i)).unwrap();
    }
    c.deliver();
    c.tick_all(3);
    let f = c.ids().into_iter().find(|&i| i != l).unwrap();
    let (term, vote, log) = (
        c.nodes[&f].term(),
        c.nodes[&f].voted_for(),
        c.nodes[&f].log().to_vec(),
    );
    c.crash_and_restart(f);
    assert_eq!(c.nodes[&f].term(), term);
    assert_eq!(c.nodes[&f].voted_for(), vote);
    assert_eq!(c.nodes[&f].log(), &log[..]);
    c.tick_all(5);
    assert_eq!(
        c.applied[&f].len(),
        5,
        "re-applies the committed log after the restart"
    );
    // Restart the leader too: the others elect a new one and nothing committed is lost.
    c.crash_and_restart(l);
    c.down.insert(l);
    let new = c.elect();
    assert_ne!(new, l);
    c.down.remove(&l);
    c.tick_all(20);
    for id in c.ids() {
        assert!(c.nodes[&id].log().len() >= 5);
    }
    c.check_safety();
}

#[test]
fn a_node_votes_once_per_term() {
    let ids = [1, 2, 3];
    let mut r = Raft::new(1, &ids, Config::default(), 0);
    let vote = |from, term| Message {
        from,
        to: 1,
        term,
        kind: MsgKind::Vote {
            last_index: 0,
            last_term: 0,
        },
    };
    r.step(vote(2, 5));
    r.step(vote(3, 5));
    let granted: Vec<bool> = r
        .ready()
        .messages
        .iter()
        .map(|m| matches!(m.kind, MsgKind::VoteResp { granted: true }))
        .collect();
    assert_eq!(granted, vec![true, false]);
    assert_eq!(r.hard_state().voted_for, Some(2));
}

#[test]
fn read_index_waits_for_a_quorum_and_refuses_on_followers() {
    let mut c = Cluster::new(3, 8);
    let l = c.elect();
    c.tick_all(2);
    c.nodes.get_mut(&l).unwrap().read_index(1).unwrap();
    c.deliver();
    let reads = &c.reads[&l];
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0].ctx, 1);
    assert_eq!(reads[0].index, c.nodes[&l].commit_index());
    // A leader cut off from the majority cannot confirm a read.
    for id in c.ids() {
        if id != l {
            c.group.insert(id, 9);
        }
    }
    c.nodes.get_mut(&l).unwrap().read_index(2).unwrap();
    c.deliver();
    assert_eq!(c.reads[&l].len(), 1, "read 2 not confirmed");
    let f = c.ids().into_iter().find(|&i| i != l).unwrap();
    assert!(c.nodes.get_mut(&f).unwrap().read_index(3).is_err());
}

#[test]
fn random_partitions_and_restarts_keep_raft_safe() {
    for seed in 0..30u64 {
        let mut c = Cluster::new(5, seed);
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for step in 0..300 {
            match rnd(10) {
                0 => {
                    let id = rnd(5) + 1;
                    c.group.insert(id, rnd(2) as u32);
                }
                1 => {
                    let id = rnd(5) + 1;
                    c.crash_and_restart(id);
                }
                2 | 3 => {
                    if let Some(l) = c.leader() {
                        let _ = c.nodes.get_mut(&l).unwrap().propose(cmd(step));
                    }
                }
                _ => {}
            }
            c.tick_all(1);
        }
        for id in c.ids() {
            c.group.insert(id, 0);
        }
        let l = c.elect();
        c.nodes.get_mut(&l).unwrap().propose(cmd(-1)).unwrap();
        c.tick_all(30);
        c.check_safety();
        let last = c.nodes[&l].commit_index();
        for id in c.ids() {
            assert_eq!(
                c.nodes[&id].commit_index(),
                last,
                "seed {seed}: node {id} caught up"
            );
        }
    }
}

/// Found by the swarm sweep (tests/nemesis.rs, seed 3): a delayed append that covers only a
/// prefix of the follower's log must not move its commit index back.
#[test]
fn a_stale_append_never_moves_commit_back() {
    let ids = [1, 2, 3];
    let log: Vec<Entry> = (1..=5)
        .map(|i| Entry {
            term: 1,
            index: i,
            payload: Payload::Noop.into(),
        })
        .collect();
    let hs = HardState {
        term: 1,
        voted_for: Some(2),
        commit: 4,
    };
    let mut r = Raft::restore(1, &ids, Config::default(), 0, hs, None, log);
    assert_eq!(r.ready().committed.len(), 4);
    r.step(Message {
        from: 2,
        to: 1,
        term: 1,
        kind: MsgKind::Append {
            prev_index: 1,
            prev_term: 1,
            entries: vec![],
            commit: 5,
            read_ctx: None,
        },
    });
    assert_eq!(r.commit_index(), 4);
    assert!(r.ready().committed.is_empty());
}

#[test]
fn a_lagging_follower_catches_up_from_a_snapshot_and_restarts_from_it() {
    for seed in 0..10 {
        let mut c = Cluster::new(3, seed);
        let l = c.elect();
        let f = c.ids().into_iter().find(|&i| i != l).unwrap();
        // The follower is cut off while the leader commits and compacts.
        c.group.insert(f, 1);
        for i in 0..30 {
            c.nodes.get_mut(&l).unwrap().propose(cmd(i)).unwrap();
            c.deliver();
        }
        c.compact(l);
        let snap_index = c.nodes[&l].snapshot_index();
        assert!(snap_index >= 31, "compacted up to {snap_index}");
        assert!(c.nodes[&l].log().is_empty());
        assert_eq!(c.disks[&l].snap.as_ref().unwrap().index, snap_index);
        // Two more entries after the snapshot, then the follower returns.
        for i in 30..32 {
            c.nodes.get_mut(&l).unwrap().propose(cmd(i)).unwrap();
            c.deliver();
        }
        c.group.insert(f, 0);
        c.tick_all(10);
        assert_eq!(
            c.nodes[&f].snapshot_index(),
            snap_index,
            "seed {seed}: installed"
        );
        assert_eq!(
            c.applied[&f].len(),
            c.applied[&l].len(),
            "seed {seed}: caught up"
        );
        c.check_safety();
        // It restarts from its snapshot and the entries after it, and keeps replicating.
        c.crash_and_restart(f);
        c.tick_all(5);
        assert_eq!(c.applied[&f].len(), c.applied[&l].len());
        // The leader itself restarts from its snapshot too.
        c.crash_and_restart(l);
        let l2 = c.elect();
        c.nodes.get_mut(&l2).unwrap().propose(cmd(99)).unwrap();
        c.deliver();
        c.tick_all(5);
        c.check_safety();
        let n = c.applied[&l2].len();
        assert!(
            c.ids().iter().all(|i| c.applied[i].len() == n),
            "seed {seed}"
        );
    }
}

#[test]
fn compaction_leaves_commit_and_matching_intact_under_partitions() {
    // Random partitions and compactions on every node: safety holds and all converge.
    for seed in 0..20 {
        let mut c = Cluster::new(5, seed);
        let mut rng = crate::rng::SplitMix64::new(seed);
        for round in 0..60 {
            if let Some(l) = c.leader() {
                let _ = c.nodes.get_mut(&l).unwrap().propose(cmd(round));
            }
            for id in c.ids() {
                c.group.insert(id, if rng.below(4) == 0 { 1 } else { 0 });
            }
            c.tick_all(3);
            let id = rng.below(5) + 1;
            c.compact(id);
            c.check_safety();
        }
        for id in c.ids() {
            c.group.insert(id, 0);
        }
        c.tick_all(50);
        c.check_safety();
        let l = c.leader().unwrap();
        let n = c.applied[&l].len();
        assert!(
            c.ids().iter().all(|i| c.applied[i].len() == n),
            "seed {seed}: all converge"
        );
    }
}
