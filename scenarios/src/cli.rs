//! tenure's command line for a user's worlds: a binary of the user's gets `list`, `run`,
//! `replay`, `sweep` (with `--jobs`, `--shard`, `--check-determinism`), `merge` and `shrink`
//! on its own worlds through one call:
//!
//! ```no_run
//! # fn my_world() -> Result<tenure_sim::world::World, tenure_sim::world::WorldError> { unimplemented!() }
//! use tenure_scenarios::cli::{self, Registry};
//! fn main() -> std::process::ExitCode {
//!     cli::main(Registry::new().world("mine", "my service under faults", my_world))
//! }
//! ```
//!
//! Exit codes as `tenure`'s: 0 it held (or the command did its work), 1 a rule broke (or a
//! replay differs), 2 bad input (the message names it; no file is touched).

use crate::files::{self, Outputs};
use crate::harness::{with_schedule_file, ScheduleFile};
use crate::sweep::{self, SeedSet, SweepResults};
use clap::{Args, Parser, Subcommand};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use tenure_sim::run::{Faults, Report};
use tenure_sim::world::{World, WorldError};

type Make = Box<dyn Fn() -> Result<World, WorldError> + Send + Sync>;

/// The worlds a binary offers, by name.
#[derive(Default)]
pub struct Registry {
    worlds: Vec<(String, String, Make)>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Offers the world `make` builds as `name` (`about`: one line for `list`).
    pub fn world<F>(mut self, name: &str, about: &str, make: F) -> Registry
    where
        F: Fn() -> Result<World, WorldError> + Send + Sync + 'static,
    {
        self.worlds
            .push((name.to_string(), about.to_string(), Box::new(make)));
        self
    }

    fn get(&self, name: &str) -> Result<World, String> {
        let names: Vec<&str> = self.worlds.iter().map(|w| w.0.as_str()).collect();
        let Some((_, _, make)) = self.worlds.iter().find(|w| w.0 == name) else {
            return Err(format!(
                "no world named {name:?} (worlds: {})",
                names.join(", ")
            ));
        };
        make().map_err(|e| format!("world {name}: {e}"))
    }
}

#[derive(Parser)]
#[command(about = "tenure's tools on this program's worlds")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The worlds, their parts and sometimes points.
    List,
    /// Runs one seed of a world.
    Run(RunArgs),
    /// Runs one seed and checks it gives the digest given (exit 1 if not).
    Replay(RunArgs),
    /// Runs many seeds; prints failures and the coverage of the sometimes points.
    Sweep(SweepArgs),
    /// Joins the results of a sweep's shards.
    Merge(MergeArgs),
    /// Shrinks a failing seed's faults to a small schedule that still fails.
    Shrink(ShrinkArgs),
}

#[derive(Args)]
struct RunArgs {
    world: String,
    #[arg(long)]
    seed: u64,
    /// Replace the world's faults by this schedule file (as `shrink` writes it).
    #[arg(long)]
    schedule: Option<PathBuf>,
    /// The digest the run must give.
    #[arg(long)]
    expect: Option<String>,
    /// Write the history (JSON lines).
    #[arg(long)]
    history: Option<PathBuf>,
    /// Write the HTML report.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Write the ShiViz log.
    #[arg(long)]
    shiviz: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SweepArgs {
    world: String,
    /// Seeds `A..B` (B excluded).
    #[arg(long, default_value = "1..101")]
    seeds: String,
    /// Seeds at a time (threads), 1 to 256.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Shard K of N of the seeds, or `job/N` (K from `JOB_COMPLETION_INDEX` + 1).
    #[arg(long)]
    shard: Option<String>,
    /// Write the results (JSON) for `merge`.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run every seed twice and fail those whose runs differ.
    #[arg(long)]
    check_determinism: bool,
    /// Stop starting seeds after the first failure.
    #[arg(long)]
    stop_on_failure: bool,
}

#[derive(Args)]
struct MergeArgs {
    files: Vec<PathBuf>,
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct ShrinkArgs {
    world: String,
    #[arg(long)]
    seed: u64,
    /// The rule to keep breaking (its id or whole name); the first broken one if not given.
    #[arg(long)]
    rule: Option<String>,
    /// Runs the shrinker may make.
    #[arg(long, default_value_t = 300)]
    budget: usize,
    /// Write the shrunk schedule here (for `run --schedule`).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// A plan of outputs with `--out` checked (not an input, writable), or the exit for it.
fn planned(out: Option<&PathBuf>) -> Result<Outputs, ExitCode> {
    let mut plan = Outputs::new();
    if let Some(p) = out {
        plan.add("--out", p).map_err(usage)?;
    }
    Ok(plan)
}

/// Writes `text` to `path` as `plan` prepared it.
fn write_out(mut plan: Outputs, path: &std::path::Path, text: &str) -> Result<(), String> {
    plan.stage(path, text.as_bytes())?;
    plan.commit().map(drop)
}

fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("{}: {message}", program());
    ExitCode::from(2)
}

fn program() -> String {
    std::env::args()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "tenure".into())
}

/// Parses the process's arguments and runs the command on `registry`'s worlds.
pub fn main(registry: Registry) -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let r = &registry;
    match cli.command {
        Command::List => list(r),
        Command::Run(a) => run(r, a, false),
        Command::Replay(a) => run(r, a, true),
        Command::Sweep(a) => sweep(r, a),
        Command::Merge(a) => merge(a),
        Command::Shrink(a) => shrink(r, a),
    }
}

fn list(r: &Registry) -> ExitCode {
    for (name, about, make) in &r.worlds {
        println!("{name:<24} {about}");
        match make() {
            Ok(w) => {
                println!("{:<24} parts: {}", "", w.part_names().join(", "));
                if !w.sometimes_points().is_empty() {
                    println!("{:<24} sometimes: {}", "", w.sometimes_points().join("; "));
                }
            }
            Err(e) => println!("{:<24} does not build: {e}", ""),
        }
    }
    ExitCode::SUCCESS
}

fn world_for(r: &Registry, name: &str, schedule: Option<&PathBuf>) -> Result<World, String> {
    let w = r.get(name)?;
    match schedule {
        Some(f) => with_schedule_file(&w, f),
        None => Ok(w),
    }
}

fn run(r: &Registry, a: RunArgs, replay: bool) -> ExitCode {
    if replay && a.expect.is_none() {
        return usage("replay needs --expect DIGEST (the digest the run gave)");
    }
    if let Some(d) = &a.expect {
        if d.len() != 64 || !d.chars().all(|c| c.is_ascii_hexdigit()) {
            return usage(format!("--expect {d:?} is not a digest (64 hex digits)"));
        }
    }
    let w = match world_for(r, &a.world, a.schedule.as_ref()) {
        Ok(w) => w,
        Err(e) => return usage(e),
    };
    let mut plan = Outputs::new();
    if let Some(f) = &a.schedule {
        plan.input(f, "--schedule");
    }
    for (what, path) in [
        ("--history", &a.history),
        ("--html", &a.html),
        ("--shiviz", &a.shiviz),
    ] {
        if let Some(p) = path {
            if let Err(e) = plan.add(what, p) {
                return usage(e);
            }
        }
    }
    let report = match w.run(a.seed) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}: {e}", program());
            return ExitCode::from(1);
        }
    };
    if let Err(e) = write_run(&mut plan, &a, &report) {
        return usage(e);
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("reports serialize")
        );
    } else {
        let schedule = a
            .schedule
            .as_ref()
            .map_or(String::new(), |f| format!(" --schedule {}", f.display()));
        print_report(&format!("{}{schedule}", a.world), &w, &report);
    }
    let differs = a.expect.as_ref().is_some_and(|d| *d != report.digest);
    if differs {
        eprintln!(
            "{}: the digest differs: expected {}, got {}",
            program(),
            a.expect.as_deref().unwrap_or(""),
            report.digest
        );
    }
    if report.ok() && !differs {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn write_run(plan: &mut Outputs, a: &RunArgs, report: &Report) -> Result<(), String> {
    if let Some(p) = &a.history {
        plan.stage(p, report.history.to_jsonl().as_bytes())?;
    }
    if let Some(p) = &a.html {
        let page = tenure_sim::page::Page {
            scenario: &a.world,
            about: "a user world",
            report,
            replay: format!(
                "{} replay {} --seed {} --expect {}",
                program(),
                a.world,
                report.seed,
                report.digest
            ),
        };
        plan.stage(p, tenure_sim::page::html(&page).as_bytes())?;
    }
    if let Some(p) = &a.shiviz {
        plan.stage(p, tenure_sim::shiviz::log(&report.history)?.as_bytes())?;
    }
    std::mem::take(plan).commit()?;
    Ok(())
}

fn print_report(name: &str, w: &World, r: &Report) {
    println!("world      {}", name.split(' ').next().unwrap_or(name));
    println!("seed       {}", r.seed);
    println!("digest     {}", r.digest);
    println!(
        "ran        {} ms virtual, {} records, {} operations, {} faults",
        r.counters.virtual_ms, r.counters.records, r.counters.ops_invoked, r.counters.faults
    );
    for st in &r.schedule.steps {
        let part = st
            .fault
            .process()
            .and_then(|p| w.part_of(p))
            .map_or(String::new(), |n| format!(" ({n})"));
        println!("  at {:>6} ms  {}{part}", st.at_ms, st.fault);
    }
    for (p, n) in &r.sometimes {
        println!("sometimes  {n:>4}x {p}");
    }
    for v in &r.warnings {
        println!("warning    {}: {}", v.rule, v.message);
    }
    if r.ok() {
        println!("verdict    every rule held");
    } else {
        for v in &r.violations {
            println!("VIOLATION  {}: {}", v.rule, v.message);
        }
        println!(
            "replay     {} replay {name} --seed {} --expect {}",
            program(),
            r.seed,
            r.digest
        );
    }
}

fn sweep(r: &Registry, a: SweepArgs) -> ExitCode {
    let range = match sweep::parse_seeds(&a.seeds) {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    let shard = match a.shard.as_deref().map(sweep::parse_shard) {
        Some(Err(e)) => return usage(e),
        Some(Ok(kn)) => Some(kn),
        None => None,
    };
    if a.jobs == 0 || a.jobs > 256 {
        return usage("--jobs must be 1 to 256");
    }
    let set = SeedSet { range, shard };
    if set.is_empty() {
        return usage(format!("the shard of seeds {} holds no seed", a.seeds));
    }
    let w = match r.get(&a.world) {
        Ok(w) => w,
        Err(e) => return usage(e),
    };
    let plan = match planned(a.out.as_ref()) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let tty = std::io::stderr().is_terminal();
    let (mut results, stopped) = sweep::run_seeds_with(
        &set,
        a.jobs,
        a.stop_on_failure,
        |done, total, failed| {
            if tty {
                eprint!("\r{done}/{total} seeds, {failed} failing ");
            }
        },
        |seed| sweep::summarise(seed, w.run(seed)),
    );
    if tty {
        eprintln!();
    }
    if a.check_determinism {
        sweep::recheck_with(
            &mut results,
            a.jobs,
            |_, _| {},
            |seed| sweep::summarise(seed, w.run(seed)),
        );
    }
    let all = SweepResults {
        scenario: a.world.clone(),
        scenario_digest: world_digest(&w),
        build: sweep::build_id(),
        seeds: format!("{}..{}", set.range.start, set.range.end),
        shard: set.shard.map(|(k, n)| format!("{k}/{n}")),
        stopped_early: stopped,
        checked_determinism: a.check_determinism,
        results,
    };
    print_sweep(&a.world, &w, &all);
    if let Some(p) = &a.out {
        let text = serde_json::to_string_pretty(&all).expect("results serialize");
        if let Err(e) = write_out(plan, p, &text) {
            return usage(e);
        }
    }
    if all.failures().next().is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// What identifies a world's runs: its settings and parts (two shards of different worlds of
/// one name do not merge).
fn world_digest(w: &World) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(format!("{w:?}").as_bytes()))
}

fn print_sweep(name: &str, w: &World, all: &SweepResults) {
    let ran = all.results.len();
    let failed: Vec<_> = all.failures().collect();
    for f in &failed {
        match &f.error {
            Some(e) => println!("seed {}: {e}", f.seed),
            None => {
                for v in &f.violations {
                    println!("seed {}: {}: {}", f.seed, v.rule, v.message);
                }
            }
        }
    }
    println!(
        "{name}: {ran} seeds run, {} failing{}",
        failed.len(),
        if all.stopped_early {
            " (stopped at the first failure)"
        } else {
            ""
        }
    );
    if let Some(line) = sweep::coverage_line(&all.results) {
        println!("{line}");
    }
    let mut coverage: BTreeMap<&str, u64> = w
        .sometimes_points()
        .iter()
        .map(|p| (p.as_str(), 0))
        .collect();
    for r in &all.results {
        for (p, n) in &r.sometimes {
            *coverage.entry(p.as_str()).or_default() += u64::from(*n > 0);
        }
    }
    if !coverage.is_empty() {
        println!("sometimes points (seeds that reached each):");
        for (p, n) in coverage {
            let flag = if n == 0 { "  <- never reached" } else { "" };
            println!("  {n:>6}/{ran}  {p}{flag}");
        }
    }
}

fn merge(a: MergeArgs) -> ExitCode {
    let mut plan = Outputs::new();
    let mut parts = Vec::new();
    for f in &a.files {
        plan.input(f, "a result file");
        let text = match files::read_text(f, "results", files::RESULTS_LIMIT) {
            Ok(t) => t,
            Err(e) => return usage(e),
        };
        match serde_json::from_str::<SweepResults>(&text) {
            Ok(r) => parts.push((f.display().to_string(), r)),
            Err(e) => return usage(format!("{}: not sweep results: {e}", f.display())),
        }
    }
    if let Some(p) = &a.out {
        if let Err(e) = plan.add("--out", p) {
            return usage(e);
        }
    }
    let all = match sweep::merge(parts) {
        Ok(m) => m,
        Err(e) => return usage(e),
    };
    let failing = all.failures().count();
    println!(
        "{}: {} seeds merged, {failing} failing",
        all.scenario,
        all.results.len()
    );
    if let Some(p) = &a.out {
        let text = serde_json::to_string_pretty(&all).expect("results serialize");
        if let Err(e) = write_out(plan, p, &text) {
            return usage(e);
        }
    }
    if failing > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn shrink(r: &Registry, a: ShrinkArgs) -> ExitCode {
    if a.rule.as_deref().is_some_and(|r| r.trim().is_empty()) {
        return usage("--rule is empty: give a rule's id (JOB1) or whole name");
    }
    if a.budget == 0 || a.budget > 100_000 {
        return usage("--budget must be 1 to 100000");
    }
    let w = match r.get(&a.world) {
        Ok(w) => w,
        Err(e) => return usage(e),
    };
    let plan = match planned(a.out.as_ref()) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let found = match crate::shrink::shrink(&w, a.seed, a.rule.as_deref(), a.budget, |m| {
        eprintln!("{}: {m}", program())
    }) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let steps = match &found.scenario.config().faults {
        Faults::Schedule(s) => s.steps.clone(),
        _ => Vec::new(),
    };
    println!(
        "seed {} breaks {}: {} fault steps shrunk to {} in {} runs, {} ms",
        a.seed,
        found.rule,
        found.steps_before,
        found.steps_after,
        found.runs,
        found.duration_ms_after
    );
    for st in &steps {
        let part = st
            .fault
            .process()
            .and_then(|p| w.part_of(p))
            .map_or(String::new(), |n| format!(" ({n})"));
        println!("  at {:>6} ms  {}{part}", st.at_ms, st.fault);
    }
    if let Some(p) = &a.out {
        let file = ScheduleFile {
            duration_ms: found.duration_ms_after,
            steps,
        };
        let text = crate::harness::schedule_text(&w, &file);
        if let Err(e) = write_out(plan, p, &text) {
            return usage(e);
        }
        println!(
            "replay     {} replay {} --seed {} --schedule {} --expect {}",
            program(),
            a.world,
            a.seed,
            p.display(),
            found.report.digest
        );
    }
    ExitCode::SUCCESS
}
