//! The primary/backup pair under swarm faults: exclusivity (S1) and the backup's monotone
//! tokens hold, and the sweep prints which `sometimes` points the faults reached.

use tenure::harness;
use tenure_example_primary_backup::{config, world};

#[test]
fn the_pair_holds_under_faults_and_its_coverage_is_printed() {
    let w = world(config()).expect("the world builds");
    let summary = harness::assert_world("the_pair_holds_under_faults", &w, 40);
    assert!(summary.coverage["became primary"] == summary.seeds);
    assert!(summary.coverage["backup applied"] > 0);
}

#[test]
fn a_seed_of_the_pair_is_deterministic() {
    let w = world(config()).expect("the world builds");
    w.self_check(11)
        .expect("the same seed gives the same history");
}
