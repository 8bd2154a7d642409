//! Seeded runs: zero violations over many seeds, and the same seed gives the same history.

use std::time::Duration;
use tenure::scenarios::{run, Params};

fn params() -> Params {
    Params {
        clients: 4,
        duration: Duration::from_secs(30),
        ..Params::default()
    }
}

#[test]
fn lock_contention_holds_over_many_seeds() {
    for seed in 0..50 {
        let r = run("lock-contention", seed, params()).unwrap();
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        assert!(r.grants > 0, "seed {seed}: the workload made progress");
    }
}

#[test]
fn determinism_self_check() {
    for seed in [0, 1, 99, u64::MAX] {
        let a = run("lock-contention", seed, params()).unwrap();
        let b = run("lock-contention", seed, params()).unwrap();
        assert_eq!(a.history_jsonl(), b.history_jsonl(), "seed {seed}");
        assert_eq!(a.digest, b.digest);
    }
    let a = run("lock-contention", 1, params()).unwrap();
    let b = run("lock-contention", 2, params()).unwrap();
    assert_ne!(a.digest, b.digest);
}
