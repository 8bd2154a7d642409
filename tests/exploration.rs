//! The mechanisms of exploration, one test each: a drawn world replays exactly; a fault point
//! fires, is recorded and counted, and shrinks away when the failure does not need it; the
//! corpus grows on new coverage and not otherwise; an exploration is a function of its seed
//! (not of its threads) and stops at the first broken rule with an input that replays.

use std::collections::BTreeSet;
use tenure::core::buggify;
use tenure::scenarios::explore::{self, Explorer, Input, Options, Outcome};
use tenure::scenarios::library::{self, FaultPointsSpec, Scenario};
use tenure::scenarios::shrink;
use tenure::sim::history::Event;

fn built_in(name: &str) -> Scenario {
    library::built_in(name).expect("a built-in scenario")
}

#[test]
fn a_drawn_world_replays_exactly_and_is_kept_in_the_report() {
    let s = built_in("swarm-world");
    let config = s.run_config().unwrap();
    let a = tenure::sim::run(&config, 17).unwrap();
    let b = tenure::sim::run(&config, 17).unwrap();
    assert_eq!(a.digest, b.digest);
    assert_eq!(a.drawn, b.drawn);
    assert_eq!(a.fault_points, b.fault_points);
    let drawn = a.drawn.expect("a drawn world is reported");
    for field in [
        "lock_ttl_ms",
        "rho",
        "routing",
        "adverse_clocks",
        "only_aimed",
    ] {
        assert!(drawn.get(field).is_some(), "{field} missing from {drawn}");
    }
    // Another seed draws another world.
    let c = tenure::sim::run(&config, 18).unwrap();
    assert_ne!(c.drawn, Some(drawn));
}

#[test]
fn a_fault_point_fires_is_recorded_and_shrinks_away() {
    // paused-holder-unfenced breaks S10 by its schedule alone; with every fault point on,
    // shrinking must keep the failure and drop the points it does not need.
    let mut s = built_in("paused-holder-unfenced");
    let every: Vec<String> = buggify::POINTS.iter().map(|p| p.name.to_string()).collect();
    s.settings.fault_points = Some(FaultPointsSpec::Names(every.clone()));
    let config = s.run_config().unwrap();
    let r = tenure::sim::run(&config, 1).unwrap();
    assert!(
        r.violations.iter().any(|v| v.rule.id() == "S10"),
        "seed 1 breaks S10"
    );
    assert_eq!(
        r.fault_points.keys().cloned().collect::<Vec<_>>(),
        {
            let mut e = every.clone();
            e.sort();
            e
        },
        "every enabled point is counted"
    );
    let fired: u64 = r.fault_points.values().sum();
    let recorded = r
        .history
        .records
        .iter()
        .filter(|x| matches!(x.event, Event::FaultPoint { .. }))
        .count() as u64;
    assert!(fired > 0, "some point fired: {:?}", r.fault_points);
    assert_eq!(fired, recorded, "each firing is a history record");
    let found = shrink::shrink(&s, 1, Some("S10"), 120, |_| {}).unwrap();
    assert_eq!(found.points_before.len(), every.len());
    assert!(
        found.points_after.len() < found.points_before.len(),
        "shrinking keeps {:?}",
        found.points_after
    );
    // The shrunk case names its points and still fails.
    match &found.scenario.settings.fault_points {
        Some(FaultPointsSpec::Names(n)) => {
            assert_eq!(
                n.iter().cloned().collect::<BTreeSet<_>>(),
                found.points_after
            )
        }
        other => panic!("the shrunk case names its points, not {other:?}"),
    }
    let again = tenure::sim::run(&found.scenario.run_config().unwrap(), 1).unwrap();
    assert!(again.violations.iter().any(|v| v.rule.id() == "S10"));
}

#[test]
fn fault_points_are_off_unless_a_run_enables_them() {
    let config = built_in("swarm").run_config().unwrap();
    let r = tenure::sim::run(&config, 3).unwrap();
    assert!(r.fault_points.is_empty());
    assert!(!r
        .history
        .records
        .iter()
        .any(|x| matches!(x.event, Event::FaultPoint { .. })));
    // Outside a run, a point never fires.
    assert!((0..10_000).all(|_| !buggify::fires(buggify::DROP_REPLY)));
}

fn small(name: &str) -> Scenario {
    let mut s = built_in(name);
    s.settings.duration_ms = Some(4_000);
    s
}

#[test]
fn the_corpus_grows_on_new_coverage_and_not_otherwise() {
    let options = Options {
        budget: 1,
        seed: 0,
        jobs: 1,
        blind: false,
    };
    let mut ex = Explorer::new(small("swarm"), options).unwrap();
    let input = |seed| Input {
        scenario: small("swarm"),
        seed,
        origin: "test".into(),
    };
    let first = ex.seed_corpus(input(1)).unwrap();
    assert!(first > 0 && ex.corpus.len() == 1);
    // The same input again reaches nothing new: the corpus stays as it was.
    assert_eq!(ex.seed_corpus(input(1)).unwrap(), 0);
    assert_eq!(ex.corpus.len(), 1);
    assert_eq!(ex.coverage.len(), first);
    // Another seed of the swarm reaches something new (other faults): kept, made concrete.
    let mut grew = false;
    for seed in 2..8 {
        if ex.seed_corpus(input(seed)).unwrap() > 0 {
            grew = true;
            break;
        }
    }
    assert!(grew, "some other seed reached new coverage");
    let kept = &ex.corpus[1].input.scenario;
    assert_eq!(
        kept.faults.mode, "schedule",
        "a corpus entry's faults are written out"
    );
}

fn explore(seed: u64, jobs: usize, budget: usize) -> Explorer {
    let options = Options {
        budget,
        seed,
        jobs,
        blind: false,
    };
    let mut ex = Explorer::new(small("swarm-world"), options).unwrap();
    assert!(matches!(ex.explore(|_| {}), Outcome::Held));
    ex
}

#[test]
fn an_exploration_is_a_function_of_its_seed_not_its_threads() {
    let a = explore(5, 1, 24);
    let b = explore(5, 2, 24);
    let summary = |e: &Explorer| {
        e.corpus
            .iter()
            .map(|c| (c.input.seed, c.input.origin.clone(), c.new_features))
            .collect::<Vec<_>>()
    };
    assert_eq!(summary(&a), summary(&b));
    assert_eq!(a.coverage, b.coverage);
    assert_eq!(a.growth, b.growth);
    // Past the first batch, entries are mutants of the corpus.
    assert!(a
        .corpus
        .iter()
        .any(|c| c.input.origin.starts_with("entry ")));
    let c = explore(6, 2, 24);
    assert_ne!(summary(&a), summary(&c));
}

#[test]
fn exploration_stops_at_the_first_broken_rule_with_an_input_that_replays() {
    let mut s = small("swarm-world");
    s.settings.bugs = Some(vec!["ack-before-commit".into()]);
    let options = Options {
        budget: 64,
        seed: 1,
        jobs: 2,
        blind: false,
    };
    let mut ex = Explorer::new(s, options).unwrap();
    let Outcome::Found {
        input, run, report, ..
    } = ex.explore(|_| {})
    else {
        panic!("ack-before-commit is found within 64 runs");
    };
    assert_eq!(ex.runs, run, "nothing ran after the finding");
    let report = report.expect("the run finished");
    let again = explore::run(&input).unwrap();
    assert_eq!(
        again.digest, report.digest,
        "the input replays byte for byte"
    );
    assert!(!again.ok());
}

#[test]
fn bad_exploration_settings_are_refused() {
    let options = Options {
        budget: 0,
        seed: 0,
        jobs: 1,
        blind: false,
    };
    let e = Explorer::new(small("swarm"), options).err().unwrap();
    assert!(e.contains("budget"), "{e}");
    let mut s = small("swarm");
    s.settings.fault_points = Some(FaultPointsSpec::Names(vec!["agent.nope".into()]));
    let e = s.run_config().unwrap_err();
    assert!(
        e.contains("agent.nope") && e.contains("settings.fault_points"),
        "{e}"
    );
    s.settings.fault_points = Some(FaultPointsSpec::Mode("sometimes".into()));
    let e = s.run_config().unwrap_err();
    assert!(e.contains("sometimes"), "{e}");
    s.settings.fault_points = Some(FaultPointsSpec::Names(vec![
        buggify::DROP_REPLY.into(),
        buggify::DROP_REPLY.into(),
    ]));
    assert!(s.run_config().unwrap_err().contains("twice"));
}
