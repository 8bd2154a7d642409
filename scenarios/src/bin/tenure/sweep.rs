//! `tenure sweep` and `tenure merge`: many seeds, their results as JSON, and shards joined
//! only when they provably cover the range once.

use crate::{print_json, usage};
use std::path::PathBuf;
use std::process::ExitCode;
use tenure_scenarios::files::{self, Outputs};
use tenure_scenarios::{library, sweep};

/// Most threads `--jobs` takes, here and in `margin`.
pub const MAX_JOBS: usize = 256;

#[derive(clap::Args)]
pub struct SweepArgs {
    /// A scenario's name or file.
    scenario: String,
    /// The seeds: `A..B` (B not included) or one seed.
    #[arg(long, default_value = "0..100")]
    seeds: String,
    /// Seeds run at once (each on its own thread), 1 to 256.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Runs only shard K of N of the seeds (every N-th seed from the K-th); `job/N` takes K
    /// from a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX` + 1).
    #[arg(long)]
    shard: Option<String>,
    /// Stops starting seeds after the first failure.
    #[arg(long)]
    stop_on_failure: bool,
    /// Runs every seed twice, the second time in the opposite order on another number of
    /// threads, and fails each seed whose two runs differ in any way (digest, verdict).
    #[arg(long)]
    check_determinism: bool,
    /// Plants a bug in the built-in actors (repeatable; `tenure list --bugs` names them).
    #[arg(long = "bug", value_name = "NAME")]
    bugs: Vec<String>,
    /// Writes the results as JSON to this file (checked before the sweep starts).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Prints the results as JSON on standard output instead of the summary.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct MergeArgs {
    /// Result files written by `tenure sweep --out`.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Writes the merged results to this file (else they are printed as JSON).
    #[arg(long)]
    out: Option<PathBuf>,
}

impl SweepArgs {
    pub fn run(self) -> ExitCode {
        let (s, given) = match crate::run::scenario_with(&self.scenario, None, &self.bugs) {
            Ok(s) => s,
            Err(e) => return usage(e),
        };
        let range = match sweep::parse_seeds(&self.seeds) {
            Ok(r) => r,
            Err(e) => return usage(e),
        };
        let shard = match self.shard.as_deref().map(sweep::parse_shard) {
            Some(Err(e)) => return usage(e),
            Some(Ok(kn)) => Some(kn),
            None => None,
        };
        if self.jobs == 0 || self.jobs > MAX_JOBS {
            return usage(format!("--jobs must be 1 to {MAX_JOBS}"));
        }
        let set = sweep::SeedSet { range, shard };
        if set.is_empty() {
            return usage(format!(
                "shard {} of seeds {} holds no seed",
                self.shard.as_deref().unwrap_or(""),
                self.seeds
            ));
        }
        let mut plan = Outputs::new();
        if let Some(path) = tenure_scenarios::scenario_file(&self.scenario) {
            plan.input(path, "scenario file");
        }
        if let Some(path) = &self.out {
            if let Err(e) = plan.add("--out", path) {
                return usage(e);
            }
        }
        self.sweep(&given, &s, set, plan)
    }

    fn sweep(
        &self,
        given: &str,
        s: &library::Scenario,
        set: sweep::SeedSet,
        mut plan: Outputs,
    ) -> ExitCode {
        use std::io::IsTerminal;
        let tty = std::io::stderr().is_terminal();
        let bar = |what: &str, done: u64, total: u64, failed: u64| {
            if tty {
                let width = 30;
                let filled = (done.saturating_mul(width) / total.max(1)).min(width) as usize;
                eprint!(
                    "\r{what} [{}{}] {done}/{total} seeds, {failed} failed",
                    "#".repeat(filled),
                    " ".repeat(width as usize - filled)
                );
            }
        };
        let ran = sweep::run_seeds(s, &set, self.jobs, self.stop_on_failure, |d, t, f| {
            bar("run", d, t, f)
        });
        if tty {
            eprintln!();
        }
        let (mut results, stopped) = match ran {
            Ok(r) => r,
            Err(e) => return usage(format!("{given}: {e}")),
        };
        if self.check_determinism {
            // Another thread count than the first pass's, so a thread-dependent run shows.
            let jobs = if self.jobs == 1 { 2 } else { 1 };
            let again = sweep::recheck(s, &mut results, jobs, |d, t| bar("again", d, t, 0));
            if tty {
                eprintln!();
            }
            match again {
                Ok(0) => {}
                Ok(n) => eprintln!("tenure: {n} seeds ran differently twice: nondeterminism"),
                Err(e) => return usage(format!("{given}: {e}")),
            }
        }
        let all = sweep::SweepResults {
            scenario: given.to_string(),
            scenario_digest: sweep::scenario_digest(s),
            build: sweep::build_id(),
            seeds: format!("{}..{}", set.range.start, set.range.end),
            shard: set.shard.map(|(k, n)| format!("{k}/{n}")),
            stopped_early: stopped,
            checked_determinism: self.check_determinism,
            results,
        };
        // The results are shown even when they cannot be written: found failures are never
        // dropped.
        if self.json {
            print_json(&all);
        } else {
            print_summary(given, &all);
        }
        if let Some(path) = &self.out {
            let text = serde_json::to_string_pretty(&all).expect("results serialize") + "\n";
            if let Err(e) = plan
                .stage(path, text.as_bytes())
                .and_then(|()| plan.commit().map(drop))
            {
                return usage(e);
            }
        }
        if all.failures().next().is_some() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}

pub fn print_summary(given: &str, all: &sweep::SweepResults) {
    let failed: Vec<_> = all.failures().collect();
    let ops: usize = all.results.iter().map(|r| r.ops).sum();
    println!(
        "{} seeds {}{}: {} ran{}, {} failed, {} operations{}",
        all.scenario,
        all.seeds,
        all.shard
            .as_deref()
            .map(|s| format!(" (shard {s})"))
            .unwrap_or_default(),
        all.results.len(),
        if all.checked_determinism {
            " twice each"
        } else {
            ""
        },
        failed.len(),
        ops,
        if all.stopped_early {
            ", stopped at the first failure"
        } else {
            ""
        }
    );
    if let Some(line) = sweep::coverage_line(&all.results) {
        println!("{line}");
    }
    for r in failed {
        let what = match (&r.error, r.violations.first()) {
            (Some(e), _) => e.clone(),
            (None, Some(v)) => format!(
                "{} ({} violations): {}",
                v.rule,
                r.violations.len(),
                v.message
            ),
            (None, None) => "failed".into(),
        };
        println!("seed {}: {what}", r.seed);
        println!(
            "  tenure replay {given} --seed {}{} --trace debug",
            r.seed,
            r.digest
                .as_deref()
                .map(|d| format!(" --expect {d}"))
                .unwrap_or_default()
        );
    }
}

impl MergeArgs {
    pub fn run(self) -> ExitCode {
        let mut plan = Outputs::new();
        for f in &self.files {
            plan.input(f, "result file");
        }
        if let Some(path) = &self.out {
            if let Err(e) = plan.add("--out", path) {
                return usage(e);
            }
        }
        let mut parts = Vec::new();
        for f in &self.files {
            let name = f.display().to_string();
            let text = match files::read_text(f, "result file", files::RESULTS_LIMIT) {
                Ok(t) => t,
                Err(e) => return usage(e),
            };
            match serde_json::from_str::<sweep::SweepResults>(&text) {
                Ok(p) => parts.push((name, p)),
                Err(e) => {
                    return usage(format!(
                        "{name}: not the results of `tenure sweep --out` of this version (line {}: {e})",
                        e.line()
                    ))
                }
            }
        }
        let all = match sweep::merge(parts) {
            Ok(m) => m,
            Err(e) => return usage(e),
        };
        match &self.out {
            Some(path) => {
                let text = serde_json::to_string_pretty(&all).expect("results serialize") + "\n";
                if let Err(e) = plan
                    .stage(path, text.as_bytes())
                    .and_then(|()| plan.commit().map(drop))
                {
                    return usage(e);
                }
                print_summary(&all.scenario, &all);
            }
            None => print_json(&all),
        }
        if all.failures().next().is_some() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}
