//! `tenure shrink`: a failing seed made small, written as a scenario file.

use crate::usage;
use std::path::PathBuf;
use std::process::ExitCode;
use tenure_scenarios::files::Outputs;
use tenure_scenarios::library;

#[derive(clap::Args)]
pub struct Args {
    /// A scenario's name or file.
    scenario: String,
    /// The failing seed.
    #[arg(long)]
    seed: u64,
    /// Plants a bug in the built-in actors (repeatable; `tenure list --bugs` names them).
    #[arg(long = "bug", value_name = "NAME")]
    bugs: Vec<String>,
    /// Virtual duration of the workload, in seconds (default: the scenario's).
    #[arg(long)]
    duration_s: Option<u64>,
    /// The rule to keep breaking: its id (`S10`; `S1` is S1 only) or its whole name (`S1 exclusivity`);
    /// default: the run's first violation.
    #[arg(long)]
    rule: Option<String>,
    /// Most runs to make, 2 to 100000 (the result so far is kept when they run out).
    #[arg(long, default_value_t = 200)]
    budget: usize,
    /// Where to write the shrunk scenario (default: tenure-NAME-SEED-shrunk.toml).
    #[arg(long)]
    out: Option<PathBuf>,
}

impl Args {
    pub fn run(self) -> ExitCode {
        shrink(
            &self.scenario,
            self.seed,
            &self.bugs,
            self.duration_s,
            self.rule.as_deref(),
            self.budget,
            self.out,
        )
    }
}

fn shrink(
    given: &str,
    seed: u64,
    bugs: &[String],
    duration_s: Option<u64>,
    rule: Option<&str>,
    budget: usize,
    out: Option<std::path::PathBuf>,
) -> ExitCode {
    if given == "lock-contention" {
        return usage("shrink works on cluster scenarios; lock-contention has no faults");
    }
    if rule.is_some_and(|r| r.trim().is_empty()) {
        return usage("--rule needs the start of a rule's name (`S10`), not an empty text");
    }
    if !(2..=100_000).contains(&budget) {
        return usage("--budget must be 2 to 100000 runs");
    }
    let (s, _) = match crate::run::scenario_with(given, duration_s, bugs) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    // The output is checked before the runs: not the scenario file, writable.
    let path = out.unwrap_or_else(|| format!("tenure-{}-{seed}-shrunk.toml", s.name).into());
    let mut plan = Outputs::new();
    if let Some(input) = tenure_scenarios::scenario_file(given) {
        plan.input(input, "scenario file");
    }
    if let Err(e) = plan.add("--out", &path) {
        return usage(e);
    }
    let progress = |m: &str| eprintln!("shrink: {m}");
    let found = match tenure_scenarios::shrink::shrink(&s, seed, rule, budget, progress) {
        Ok(f) => f,
        Err(e) => return usage(e),
    };
    let mut shrunk = found.scenario.clone();
    shrunk.name = format!("{}-seed-{seed}-shrunk", s.name);
    shrunk.about = format!(
        "{} seed {seed} shrunk: {} with {} of {} fault steps in {} ms",
        s.name, found.rule, found.steps_after, found.steps_before, found.duration_ms_after
    );
    let first = found
        .report
        .violations
        .iter()
        .find(|v| v.rule == found.rule)
        .map_or(String::new(), |v| v.message.clone());
    shrunk.description = format!(
        "Written by `tenure shrink {given} --seed {seed}{}` from a run that broke {}. \
         Replay it with the same seed. The first violation of the shrunk run: {first}",
        bugs.iter()
            .map(|b| format!(" --bug {b}"))
            .collect::<String>(),
        found.rule
    );
    shrunk.watches = vec![found.rule.id().to_string()];
    let text = match library::to_toml(&shrunk) {
        Ok(t) => t,
        Err(e) => return usage(format!("cannot write the shrunk scenario as TOML: {e}")),
    };
    if let Err(e) = library::parse(&text, "the shrunk scenario") {
        return usage(format!("the shrunk scenario does not read back: {e}"));
    }
    if let Err(e) = plan
        .stage(&path, text.as_bytes())
        .and_then(|()| plan.commit().map(drop))
    {
        return usage(e);
    }
    println!("scenario   {given} (seed {seed})");
    println!("breaks     {}", found.rule);
    println!(
        "faults     {} steps -> {} (the end-of-run lifts come back when it runs)",
        found.steps_before, found.steps_after
    );
    for st in &shrunk.faults.steps {
        println!("  {:>9.3} s  {}", st.at_ms as f64 / 1000.0, st.fault);
    }
    if !found.points_before.is_empty() {
        let kept: Vec<&str> = found.points_after.iter().map(String::as_str).collect();
        println!(
            "points     {} fault points -> {} ({})",
            found.points_before.len(),
            found.points_after.len(),
            if kept.is_empty() {
                "none".to_string()
            } else {
                kept.join(", ")
            }
        );
    }
    println!(
        "duration   {} ms -> {} ms",
        found.duration_ms_before, found.duration_ms_after
    );
    println!(
        "runs       {}{}",
        found.runs,
        if found.budget_spent {
            " (budget spent: the result fails but may shrink further)"
        } else {
            ""
        }
    );
    println!("  {first}");
    println!("wrote      {}", path.display());
    println!(
        "replay     tenure replay {} --seed {seed} --expect {}",
        path.display(),
        found.report.digest
    );
    ExitCode::SUCCESS
}
