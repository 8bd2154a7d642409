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

/// Envelopes move between nodes as values; a run that sends each through its serde encoding
/// instead (as a real network would) must give the same history, byte for byte: nothing an
/// actor sends depends on sharing memory or on state the encoding drops. Every built-in
/// scenario (each kind of message: agents', clients', lease managers', fenced resources'),
/// those starting with `s` with every envelope recorded too.
#[test]
fn moved_and_encoded_envelopes_give_the_same_history() {
    use tenure::scenarios::library;
    let mut compared = 0;
    for (name, _) in library::BUILT_IN {
        let mut s = library::built_in(name).unwrap();
        s.settings.record_messages = Some(name.starts_with('s'));
        let moved = s.run_config().unwrap();
        s.settings.encode_messages = Some(true);
        let encoded = s.run_config().unwrap();
        assert!(encoded.encode_messages && !moved.encode_messages);
        let seed = 2;
        let a = tenure::sim::run::run(&moved, seed).unwrap();
        let b = tenure::sim::run::run(&encoded, seed).unwrap();
        assert_eq!(
            a.digest, b.digest,
            "{name}: the encoding changed the history"
        );
        assert!(a.counters.messages_delivered > 0, "{name}");
        compared += 1;
    }
    assert!(compared >= 20);
}
