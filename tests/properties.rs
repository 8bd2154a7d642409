//! Properties of the whole system, each over any fault schedule within the clock assumption
//! (proptest draws the world, the holders' drift within rho, the schedule and the seed:
//! `tenure_scenarios::strategy`). A failing case is shrunk by proptest (faults deleted one by
//! one, the rest unchanged), saved in `tests/properties.proptest-regressions` (replayed
//! first on the next run), and written as a scenario file with the `tenure replay` command
//! that runs it again.
//!
//! Each property runs `TENURE_PROPTEST_CASES` cases (default 16): a few hundred seeds across
//! the suite; larger sweeps belong to `tenure sweep`.

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError};
use tenure::scenarios::library::{self, Scenario};
use tenure::scenarios::strategy;

fn config() -> Config {
    let cases = std::env::var("TENURE_PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(16);
    Config {
        cases,
        // Each case is a whole simulated run: shrinking takes few, costly steps.
        max_shrink_iters: 64,
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        ..Config::default()
    }
}

/// Runs the case; fails naming the broken rules (those `rule` accepts), the schedule, and a
/// scenario file with the command that replays it.
fn holds(scenario: &Scenario, seed: u64, rule: impl Fn(&str) -> bool) -> Result<(), TestCaseError> {
    let config = scenario
        .run_config()
        .map_err(|e| TestCaseError::fail(format!("a drawn case is invalid: {e}")))?;
    let report = tenure::sim::run::run(&config, seed)
        .map_err(|e| TestCaseError::fail(format!("seed {seed}: the run failed: {e}")))?;
    let broken: Vec<String> = report
        .violations
        .iter()
        .filter(|v| rule(&v.rule.name()))
        .map(|v| format!("{}: {}", v.rule, v.message))
        .collect();
    if broken.is_empty() {
        return Ok(());
    }
    let text = library::to_toml(scenario).expect("a scenario writes");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("tenure-proptest");
    std::fs::create_dir_all(&dir).expect("the target directory is writable");
    let path = dir.join(format!("case-{}.toml", &report.digest[..12]));
    std::fs::write(&path, &text).expect("the case writes");
    let schedule: Vec<String> = scenario
        .faults
        .steps
        .iter()
        .map(|s| format!("  {:>6} ms  {}", s.at_ms, s.fault))
        .collect();
    Err(TestCaseError::fail(format!(
        "seed {seed} breaks {}\nschedule:\n{}\nreplay: tenure replay {} --seed {seed} --expect {}",
        broken.join("\n  "),
        schedule.join("\n"),
        path.display(),
        report.digest
    )))
}

proptest! {
    #![proptest_config(config())]

    /// S1, S3, S4, S5 on the Juju lease and the leadership: never two holders at once, every
    /// answer explained, no early expiry, no shortened extension.
    #[test]
    fn lease_exclusivity((scenario, seed) in strategy::case(6)) {
        holds(&scenario, seed, |r| {
            matches!(r, "S1 exclusivity" | "S3 honest answers" | "S4 no early expiry" | "S5 extensions")
        })?;
    }

    /// S1, S6, S8 on the agency lock: mutual exclusion, only the owner deletes, lock-delay.
    #[test]
    fn lock_mutual_exclusion((scenario, seed) in strategy::case(6)) {
        holds(&scenario, seed, |r| {
            matches!(r, "S1 exclusivity" | "S6 only the owner deletes" | "S8 lock-delay")
        })?;
    }

    /// S12: one Raft leader per term (and the rest of Raft's safety), S17 health.
    #[test]
    fn leadership_uniqueness((scenario, seed) in strategy::case(6)) {
        holds(&scenario, seed, |r| r.starts_with("S12") || r == "S17 health")?;
    }

    /// S9, S10: tokens increase in grant order; no resource accepts a lower one after a higher.
    #[test]
    fn fencing_monotonicity((scenario, seed) in strategy::case(6)) {
        holds(&scenario, seed, |r| matches!(r, "S9 fencing tokens" | "S10 fencing"))?;
    }

    /// S13 (registers), S14 and S16 (Storage versions, watches).
    #[test]
    fn kv_linearizability((scenario, seed) in strategy::case(6)) {
        holds(&scenario, seed, |r| {
            r == "S13 linearizability" || r.starts_with("S14") || r == "S16 watches"
        })?;
    }

    /// S15: no acknowledged write is lost; S7: nothing bound to an ended lease.
    #[test]
    fn durability((scenario, seed) in strategy::case(6)) {
        holds(&scenario, seed, |r| matches!(r, "S15 durability" | "S7 grant to a dead lease"))?;
    }

    /// L1 to L5 after the heal: a leader, the lock, lease and leadership acquirable, dead
    /// members' keys gone, blocked calls returned, every watcher caught up.
    #[test]
    fn liveness_after_heal((scenario, seed) in strategy::case(6)) {
        holds(&scenario, seed, |r| r.starts_with('L'))?;
    }
}

/// The strategies stay inside the clock assumption and draw valid scenarios; deleting a step
/// leaves a valid scenario (what proptest's shrinking does).
#[test]
fn drawn_cases_are_valid_within_the_bound_and_stay_valid_when_shrunk() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..200 {
        let mut tree = strategy::case(8).new_tree(&mut runner).unwrap();
        let (s, _) = tree.current();
        let c = s.run_config().expect("valid");
        assert!(c.client_drift <= 0.009 && c.client_drift < c.cluster.agent.rho);
        for st in &s.faults.steps {
            if let tenure::sim::nemesis::Fault::Clock { change, .. } = &st.fault {
                match change {
                    tenure::sim::ClockFault::Drift { rate } => assert!(rate.abs() <= 0.009),
                    other => panic!("a clock fault outside the assumption: {other:?}"),
                }
            }
        }
        for _ in 0..4 {
            if !tree.simplify() {
                break;
            }
            tree.current()
                .0
                .run_config()
                .expect("a shrunk case is valid");
        }
    }
}

/// The machinery finds a planted bug: with `ack-before-commit` planted in every case,
/// durability fails, proptest shrinks the case (fewer faults), and the failure names a
/// scenario file whose replay command reproduces the run exactly.
#[test]
fn a_planted_bug_fails_the_property_shrinks_and_prints_a_replay() {
    use proptest::test_runner::{TestError, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: 32,
            max_shrink_iters: 32,
            failure_persistence: None,
            ..Config::default()
        },
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let planted = strategy::case(6).prop_map(|(mut s, seed)| {
        s.settings.bugs = Some(vec!["ack-before-commit".into()]);
        (s, seed)
    });
    let result = runner.run(&planted, |(s, seed)| {
        holds(&s, seed, |r| r == "S15 durability")
    });
    let Err(TestError::Fail(why, (minimal, seed))) = result else {
        panic!("the planted bug was not found: {result:?}");
    };
    let why = why.to_string();
    assert!(why.contains("S15 durability"), "{why}");
    let replay = why
        .lines()
        .find_map(|l| l.strip_prefix("replay: tenure replay "))
        .expect("a replay command");
    let mut words = replay.split_whitespace();
    let path = words.next().unwrap();
    let digest = replay.rsplit(' ').next().unwrap();
    // The file is the minimal case, and replays to the digest printed.
    let again = library::parse(&std::fs::read_to_string(path).unwrap(), path).unwrap();
    assert_eq!(
        again.faults.steps.len(),
        minimal.faults.steps.len(),
        "the file holds the shrunk case"
    );
    let r = tenure::sim::run::run(&again.run_config().unwrap(), seed).unwrap();
    assert_eq!(r.digest, digest);
    assert!(r.violations.iter().any(|v| v.rule == "S15 durability"));
}
