//! The linearizability checker on real and generated histories:
//! `cargo bench -p tenure-sim --bench linearizability`.
//!
//! - the 102 Jepsen etcd histories of porcupine's test data, all of them per iteration;
//! - generated register histories (8 processes, 1% unknown outcomes) of 10k, 100k and 1M
//!   operations, each on one key and on 1,000 keys.

use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Duration;
use tenure_sim::lin::generate::{registers, Spec};
use tenure_sim::lin::input::{self, operations, pair, Format};
use tenure_sim::lin::models::Register;
use tenure_sim::lin::{check, Budget, Verdict};

fn etcd(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/porcupine-jepsen-etcd");
    let mut histories = Vec::new();
    for i in 0..102 {
        let text = std::fs::read_to_string(dir.join(format!("etcd_{i:03}.log"))).unwrap();
        let events = input::read(&text, Format::JepsenLog).unwrap();
        let (raw, _) = pair(&events).unwrap();
        histories.push(operations(&Register::default(), &raw).unwrap().0);
    }
    c.bench_function("etcd 102 histories", |b| {
        b.iter(|| {
            for h in &histories {
                let v = check(&Register::default(), h, Budget::default()).verdict;
                assert_ne!(v, Verdict::Unknown);
            }
        })
    });
}

fn generated(c: &mut Criterion) {
    let mut g = c.benchmark_group("generated registers");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for (ops, keys) in [
        (10_000, 1),
        (10_000, 1_000),
        (100_000, 1),
        (100_000, 1_000),
        (1_000_000, 1),
        (1_000_000, 1_000),
    ] {
        let h = registers(Spec {
            ops,
            keys,
            processes: 8,
            unknown_per_mille: 10,
            seed: 1,
        });
        g.bench_function(format!("{ops} ops over {keys} keys"), |b| {
            b.iter(|| {
                assert_eq!(
                    check(&Register::default(), &h, Budget::default()).verdict,
                    Verdict::Linearizable
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, etcd, generated);
criterion_main!(benches);
