//! The simulated runs that judge a mutant of the core (`.cargo/mutants.toml` has
//! cargo-mutants run this target, and only this, for every mutant of `core/src/raft`,
//! `core/src/store.rs` and `core/src/agent.rs`): every built-in cluster scenario on a few
//! seeds and the generic `swarm-world` on more. A mutant is caught when some run breaks a
//! rule, breaks off (a panic, a hang past the time limit) or the test times out; not by any
//! unit test. `cargo test` leaves this target out (`test = false`); run it with
//! `cargo test -p tenure-scenarios --test mutation`, and the mutants with
//! `cargo mutants --shard K/N` (BENCHMARKS.md has the score).

use tenure_scenarios::library;

/// Seeds of each built-in scenario, and of `swarm-world`.
const SEEDS: u64 = 5;
const SWARM_SEEDS: u64 = 150;

/// Whether a scenario is meant to break a rule (it shows what happens past an assumption).
fn expected_to_fail(name: &str) -> bool {
    matches!(name, "drift-beyond-rho" | "paused-holder-unfenced")
}

#[test]
fn the_simulated_runs_hold() {
    let mut failures = Vec::new();
    let mut runs = 0;
    for s in library::all() {
        if expected_to_fail(&s.name) {
            continue;
        }
        let config = s.run_config().expect("a built-in scenario is valid");
        let seeds = if s.name == "swarm-world" {
            SWARM_SEEDS
        } else {
            SEEDS
        };
        for seed in 0..seeds {
            runs += 1;
            match tenure_sim::run(&config, seed) {
                Ok(r) if r.ok() => {}
                Ok(r) => failures.push(format!("{} seed {seed}: {}", s.name, r.violations[0])),
                Err(e) => failures.push(format!("{} seed {seed}: {e}", s.name)),
            }
            if failures.len() >= 3 {
                break;
            }
        }
        if failures.len() >= 3 {
            break;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
