//! The simulator's parts: `cargo bench -p tenure-sim --bench parts`.
//!
//! - an agent's envelope (a Raft append carrying 4 entries, and a client request) through
//!   its serde encoding and back, as `encode_messages` runs send it (runs move the value);
//! - S1 exclusivity over a history of 1,000,000 belief records (1,000 holders of 100
//!   resources, renewing, ending and handing over).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;
use tenure_core::agent::Request;
use tenure_core::command::{Command, Op, Txn};
use tenure_core::raft::{Entry, Message, MsgKind, Payload};
use tenure_core::{Key, Value};
use tenure_sim::check;
use tenure_sim::cluster::Envelope;
use tenure_sim::history::{Event, History, Record};

fn envelopes() -> Vec<Envelope> {
    let entry = |i: u64| Entry {
        term: 3,
        index: 100 + i,
        payload: Payload::Command(Command::Txn(Txn::new().then(Op::set(
            Key::parse(&format!("/r/{i}")).unwrap(),
            Value::from(i * 1_000),
        ))))
        .into(),
    };
    vec![
        Envelope::Raft(Message {
            from: 1,
            to: 2,
            term: 3,
            kind: MsgKind::Append {
                prev_index: 99,
                prev_term: 3,
                entries: (0..4).map(entry).collect(),
                commit: 98,
                read_ctx: None,
            },
        }),
        Envelope::Request {
            id: 7,
            request: Request::Read(Key::parse("/r/1").unwrap()),
        },
    ]
}

fn envelope(c: &mut Criterion) {
    let mut g = c.benchmark_group("envelope");
    for (name, e) in ["raft append of 4 entries", "client read request"]
        .into_iter()
        .zip(envelopes())
    {
        let bytes = serde_json::to_vec(&e).unwrap();
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(format!("encode {name}"), |b| {
            b.iter(|| serde_json::to_vec(std::hint::black_box(&e)).unwrap())
        });
        g.bench_function(format!("decode {name}"), |b| {
            b.iter(|| serde_json::from_slice::<Envelope>(std::hint::black_box(&bytes)).unwrap())
        });
    }
    g.finish();
}

/// `n` belief records: holders take turns on each resource, each renewing a few times before
/// its belief ends and the next takes over with a higher token; never two at once.
fn beliefs(n: usize) -> History {
    let resources = 100u64;
    let mut records = Vec::with_capacity(n);
    let mut t = vec![0u64; resources as usize];
    let mut token = vec![0u64; resources as usize];
    let mut i = 0u64;
    while records.len() < n {
        let r = (i % resources) as usize;
        let process = (i * 7919) % 1_000;
        token[r] += 1;
        // A renewal believing until `until`, or (`None`) the end of the belief.
        let belief = |at: u64, until: Option<u64>| Record {
            t_us: at,
            node: format!("client-{process}"),
            event: Event::Belief {
                process,
                resource: format!("lock-{r}"),
                token: token[r],
                until_local_us: until,
                until_us: until,
            },
        };
        for renewal in 0..4 {
            let at = t[r] + renewal * 1_000;
            records.push(belief(at, Some(at + 2_000)));
        }
        let end = t[r] + 3_500;
        records.push(belief(end, None));
        t[r] = end + 10;
        i += 1;
    }
    records.truncate(n);
    records.sort_by_key(|r| r.t_us);
    History { records }
}

fn exclusivity(c: &mut Criterion) {
    let h = beliefs(1_000_000);
    let mut g = c.benchmark_group("checkers");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(h.records.len() as u64));
    g.bench_function("S1 exclusivity, 1M beliefs", |b| {
        b.iter(|| {
            let v = check::exclusivity(&h);
            assert!(v.is_empty(), "{:?}", v.first());
        })
    });
    g.finish();
}

criterion_group!(benches, envelope, exclusivity);
criterion_main!(benches);
