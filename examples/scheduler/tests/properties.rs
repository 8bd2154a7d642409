//! Drawn cases of the scheduler's world (faults aimed at its parts, clocks, seeds), as
//! proptest draws and shrinks them. `TENURE_CASES` sets how many.

use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use tenure::harness;
use tenure::scenarios::strategy::world_case;
use tenure_example_scheduler::{config, world, Options, ONCE};

/// A runner drawing from a fixed generator: the same cases on every run, as the seeds
/// inside them make each case's run the same.
fn runner(cases: u32) -> TestRunner {
    let config = Config {
        cases: harness::cases(cases).expect("TENURE_CASES"),
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    TestRunner::new_with_rng(config, rng)
}

fn holds(
    w: &tenure::world::World,
    case: &tenure::scenarios::strategy::WorldCase,
) -> Result<(), TestCaseError> {
    let w = case
        .world(w)
        .map_err(|e| TestCaseError::reject(format!("not a case of this world: {e}")))?;
    let r = w
        .run(case.seed)
        .map_err(|e| TestCaseError::fail(format!("the run broke: {e}")))?;
    match r.violations.first() {
        None => Ok(()),
        Some(v) => Err(TestCaseError::fail(format!("{}: {}", v.rule, v.message))),
    }
}

#[test]
fn the_scheduler_holds_on_drawn_cases() {
    let w = world(config(), &Options::default()).expect("the world builds");
    runner(24)
        .run(&world_case(&w, 8), |case| holds(&w, &case))
        .unwrap();
}

#[test]
fn drawn_cases_find_the_mistaken_scheduler_and_shrink_it() {
    let opts = Options {
        mistaken: true,
        ..Options::default()
    };
    let w = world(config(), &opts).expect("the world builds");
    let found = runner(200).run(&world_case(&w, 8), |case| holds(&w, &case));
    match found {
        Err(TestError::Fail(why, minimal)) => {
            assert!(why.message().contains(ONCE), "{why}");
            // Proptest's shrinking removes what it can one value at a time; tenure's
            // shrinker (delta debugging over the schedule, with the seed fixed) then keeps only
            // the steps the failure needs, and the result still breaks the same rule.
            let case = minimal.world(&w).expect("a case of the world");
            let shrunk =
                tenure::scenarios::shrink::shrink(&case, minimal.seed, Some(ONCE), 200, |_| {})
                    .expect("the drawn failure shrinks");
            println!(
                "drawn case: {} steps after proptest, {} after tenure's shrinker",
                minimal.steps.len(),
                shrunk.steps_after
            );
            assert!(shrunk.steps_after <= minimal.steps.len(), "{minimal:?}");
            assert!(shrunk.report.violations.iter().any(|v| v.rule.id() == ONCE));
            let again = shrunk.scenario.run(minimal.seed).expect("it replays");
            assert_eq!(again.digest, shrunk.report.digest);
        }
        other => panic!("the mistake was not found in 200 drawn cases: {other:?}"),
    }
}
