//! The sans-I/O core's hot paths: `cargo bench -p tenure-core --bench parts`.
//!
//! - `Store::apply` on a mixed stream of commands over 1,000 keys: puts, compare-and-sets by
//!   version, deletes, agency ticks, lease grants and keep-alives;
//! - Raft: one proposal replicated and committed on a 3-node and a 5-node group (the leader's
//!   `propose` and `ready`, every follower's `step` and `ready`, the answers' `step`), the
//!   same with batches of 16 proposals per round, and a heartbeat round.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::collections::BTreeMap;
use tenure_core::command::{Command, Op, Precondition, Txn};
use tenure_core::raft::{Config, Message, NodeId, Raft, Role};
use tenure_core::{Key, Store, Value};

fn commands(n: usize, keys: usize) -> Vec<Command> {
    let key = |i: usize| Key::parse(&format!("/bench/k{}", i % keys)).unwrap();
    (0..n)
        .map(|i| match i % 10 {
            0..=3 => Command::Txn(Txn::new().then(Op::set(key(i * 7), Value::from(i as u64)))),
            4 | 5 => Command::Txn(
                Txn::new()
                    .when(Precondition::VersionEquals(key(i * 13), (i % 5) as u64))
                    .then(Op::set(key(i * 13), Value::from("cas"))),
            ),
            6 => Command::Txn(Txn::new().then(Op::Delete { key: key(i * 3) })),
            7 => Command::Tick { advance_ms: 50 },
            8 => Command::LeaseGrant { ttl_ms: 5_000 },
            _ => Command::LeaseKeepAlive {
                id: (i / 10) as i64 + 1,
            },
        })
        .collect()
}

fn store_apply(c: &mut Criterion) {
    let cmds = commands(10_000, 1_000);
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(cmds.len() as u64));
    g.bench_function("apply 10k mixed commands over 1000 keys", |b| {
        b.iter_batched(
            Store::new,
            |mut s| {
                for cmd in &cmds {
                    std::hint::black_box(s.apply(cmd));
                }
                s
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// An in-memory Raft group with a leader, delivering messages in order.
struct Group {
    nodes: BTreeMap<NodeId, Raft>,
    leader: NodeId,
}

impl Group {
    fn new(n: u64) -> Group {
        let ids: Vec<NodeId> = (1..=n).collect();
        let mut nodes: BTreeMap<NodeId, Raft> = ids
            .iter()
            .map(|&id| (id, Raft::new(id, &ids, Config::default(), 7)))
            .collect();
        for _ in 0..1_000 {
            let ids: Vec<NodeId> = nodes.keys().copied().collect();
            for id in &ids {
                nodes.get_mut(id).unwrap().tick();
            }
            Group::settle(&mut nodes);
            if let Some(l) = nodes.values().find(|r| r.role() == Role::Leader) {
                let leader = l.id();
                return Group { nodes, leader };
            }
        }
        panic!("no leader");
    }

    /// Hands every node's output to its addressees until nothing is left; returns how many
    /// messages went.
    fn settle(nodes: &mut BTreeMap<NodeId, Raft>) -> usize {
        let mut queue: Vec<Message> = Vec::new();
        let mut sent = 0;
        loop {
            for r in nodes.values_mut() {
                queue.extend(r.ready().messages);
            }
            if queue.is_empty() {
                return sent;
            }
            sent += queue.len();
            for m in std::mem::take(&mut queue) {
                let to = m.to;
                nodes.get_mut(&to).unwrap().step(m);
            }
        }
    }

    fn propose(&mut self, batch: usize, cmd: &Command) -> usize {
        let leader = self.nodes.get_mut(&self.leader).unwrap();
        for _ in 0..batch {
            leader.propose(cmd.clone()).unwrap();
        }
        let sent = Group::settle(&mut self.nodes);
        // Compacted as the agents do, so the log stays short however long the bench runs.
        for r in self.nodes.values_mut() {
            if r.commit_index() >= r.snapshot_index() + 1_024 {
                r.compact(r.commit_index(), Vec::new());
                r.ready();
            }
        }
        sent
    }
}

fn raft(c: &mut Criterion) {
    let cmd = commands(1, 1).remove(0);
    let mut g = c.benchmark_group("raft");
    for n in [3u64, 5] {
        for batch in [1usize, 16] {
            let mut group = Group::new(n);
            g.throughput(Throughput::Elements(batch as u64));
            g.bench_function(
                format!("{n} nodes: propose {batch}, replicate, commit"),
                |b| b.iter(|| std::hint::black_box(group.propose(batch, &cmd))),
            );
        }
        let mut group = Group::new(n);
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("{n} nodes: heartbeat round"), |b| {
            b.iter(|| {
                let cfg = Config::default();
                let leader = group.nodes.get_mut(&group.leader).unwrap();
                for _ in 0..cfg.heartbeat_ticks {
                    leader.tick();
                }
                std::hint::black_box(Group::settle(&mut group.nodes))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, store_apply, raft);
criterion_main!(benches);
