//! The planted bugs: each is found by its scenario within a stated number of seeds, as a
//! violation of a rule it should break; the same seed without the bug holds; the failing run
//! shrinks (`tenure shrink`) to a scenario file that replays the failure byte for byte.
//!
//! `cargo test --test bugs -- --nocapture` prints, per bug, the seed that found it and the
//! shrunk size (the figures in BENCHMARKS.md).

use tenure::core::bugs::Bug;
use tenure::scenarios::library::{self, Scenario};
use tenure::scenarios::shrink;

/// Most runs a shrink may make here (the CLI's default is 200).
const SHRINK_BUDGET: usize = 40;

fn with_bug(s: &Scenario, bug: Bug) -> Scenario {
    let mut s = s.clone();
    s.settings.bugs = Some(vec![bug.name().to_string()]);
    s
}

/// Finds `bug` with its scenario in seeds `1..=within`, checks the seed holds without it,
/// shrinks the failure and replays the shrunk file.
fn found_shrunk_and_replayed(bug: Bug, within: u64) {
    let mut base = library::built_in(library::finds(bug)).expect("a bug's scenario is built in");
    // A scenario may plant the bug itself (paused-holder-unfenced): the clean run is without.
    base.settings.bugs = None;
    let buggy = with_bug(&base, bug);
    let config = buggy.run_config().unwrap();
    let mut found = None;
    for seed in 1..=within {
        let r = tenure::sim::run::run(&config, seed).expect("the run ends");
        if let Some(v) = r.violations.iter().find(|v| bug.rules().contains(&v.rule)) {
            found = Some((seed, v.rule.clone()));
            break;
        }
    }
    let Some((seed, rule)) = found else {
        panic!(
            "{bug}: {} did not break {} in seeds 1..={within}",
            base.name,
            bug.rule_names()
        );
    };
    // Without the bug, the same seed holds: the bug is what broke it.
    let clean = tenure::sim::run::run(&base.run_config().unwrap(), seed).unwrap();
    assert!(
        clean.ok(),
        "{bug}: seed {seed} of {} fails without the bug too: {:?}",
        base.name,
        clean.violations.first()
    );
    let shrunk = shrink::shrink(&buggy, seed, Some(&rule.name()), SHRINK_BUDGET, |_| {})
        .unwrap_or_else(|e| panic!("{bug}: {e}"));
    assert_eq!(shrunk.rule, rule);
    assert!(shrunk.steps_after <= shrunk.steps_before);
    assert!(shrunk.duration_ms_after <= shrunk.duration_ms_before);
    assert!(shrunk.report.violations.iter().any(|v| v.rule == rule));
    // The shrunk scenario, written and read back as a file is, replays the same run.
    let text = library::to_toml(&shrunk.scenario).unwrap();
    let again = library::parse(&text, "shrunk").unwrap_or_else(|e| panic!("{bug}: {e}\n{text}"));
    let replay = tenure::sim::run::run(&again.run_config().unwrap(), seed).unwrap();
    assert_eq!(
        replay.digest, shrunk.report.digest,
        "{bug}: replays exactly"
    );
    assert!(replay.violations.iter().any(|v| v.rule == rule));
    println!(
        "{bug}: {} seed {seed} ({rule}); shrunk {} -> {} fault steps, {} -> {} ms, {} runs",
        base.name,
        shrunk.steps_before,
        shrunk.steps_after,
        shrunk.duration_ms_before,
        shrunk.duration_ms_after,
        shrunk.runs
    );
}

macro_rules! planted {
    ($($test:ident: $bug:ident within $n:literal;)*) => {
        $(
            #[test]
            fn $test() {
                found_shrunk_and_replayed(Bug::$bug, $n);
            }
        )*

        #[test]
        fn every_planted_bug_has_a_test() {
            let tested = [$(Bug::$bug),*];
            for b in Bug::ALL {
                assert!(tested.contains(b), "{b} has no test here");
            }
        }
    };
}

planted! {
    followers_serve_reads: FollowersServeReads within 5;
    deposed_leader_serves_reads: DeposedLeaderServesReads within 5;
    no_drift_margin: NoDriftMargin within 20;
    holder_times_from_response: HolderTimesFromResponse within 20;
    no_lock_delay: NoLockDelay within 20;
    unlock_without_id_check: UnlockWithoutIdCheck within 5;
    vote_not_persisted: VoteNotPersisted within 20;
    ack_before_commit: AckBeforeCommit within 5;
    sub_second_ttl_lost: SubSecondTtlLost within 10;
    new_leader_uses_own_clock: NewLeaderUsesOwnClock within 10;
    watch_drops_events: WatchDropsEvents within 20;
    grant_without_lease_check: GrantWithoutLeaseCheck within 20;
    cas_compares_values: CasComparesValues within 10;
    ttl_reset_on_leader_change: TtlResetOnLeaderChange within 5;
    resource_skips_token_check: ResourceSkipsTokenCheck within 5;
    kv_watch_skips_outage: KvWatchSkipsOutage within 5;
    tas_read_then_write: TasReadThenWrite within 20;
    get_range_excludes_end: GetRangeExcludesEnd within 5;
}
