//! `tenure run`, `tenure replay` and `tenure report`: one seed of a scenario, its summary,
//! and what it writes (history, HTML report, ShiViz log), all checked before the run and
//! written together after it.

use crate::{print_json, usage};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tenure_scenarios::files::Outputs;
use tenure_scenarios::{library, resolve, run, Params, ScenarioError};

#[derive(clap::Args)]
pub struct RunArgs {
    /// A scenario's name (see `tenure list`) or a scenario file (TOML).
    scenario: String,
    /// The seed that fixes every choice of the run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Virtual duration of the workload, in seconds, at most 3600 (default: the scenario's).
    #[arg(long)]
    duration_s: Option<u64>,
    /// Number of clients (`lock-contention` only).
    #[arg(long)]
    clients: Option<usize>,
    /// Lock TTL in milliseconds (`lock-contention` only).
    #[arg(long)]
    ttl_ms: Option<u64>,
    /// Plants a bug in the built-in actors (repeatable; `tenure list --bugs` names them).
    #[arg(long = "bug", value_name = "NAME")]
    bugs: Vec<String>,
    #[command(flatten)]
    outputs: OutputArgs,
    /// Trace to standard error up to this level (see `tenure replay --help`).
    #[arg(long)]
    trace: Option<String>,
    /// Prints the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// A scenario's name or file.
    scenario: String,
    #[arg(long)]
    seed: u64,
    /// The digest the run printed before (64 hex digits).
    #[arg(long)]
    expect: Option<String>,
    /// Trace to standard error up to this level: error, warn, info (system events),
    /// debug (client operations, applied entries) or trace (every message).
    #[arg(long)]
    trace: Option<String>,
    /// Plants a bug in the built-in actors (repeatable; `tenure list --bugs` names them).
    #[arg(long = "bug", value_name = "NAME")]
    bugs: Vec<String>,
    #[command(flatten)]
    outputs: OutputArgs,
}

#[derive(clap::Args)]
pub struct ReportArgs {
    /// A scenario's name or file.
    scenario: String,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Virtual duration of the workload, in seconds (default: the scenario's).
    #[arg(long)]
    duration_s: Option<u64>,
    /// Plants a bug in the built-in actors (repeatable; `tenure list --bugs` names them).
    #[arg(long = "bug", value_name = "NAME")]
    bugs: Vec<String>,
    #[command(flatten)]
    outputs: OutputArgs,
}

/// What a run writes besides its summary.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct OutputArgs {
    /// Writes the history (JSON lines) to this file.
    #[arg(long)]
    history: Option<PathBuf>,
    /// Writes the run's report as one self-contained HTML page to this file.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Writes a ShiViz log of the run to this file (the run then records its messages, so
    /// its history, and its digest, include them).
    #[arg(long)]
    shiviz: Option<PathBuf>,
    /// Only this stretch of true time goes into the ShiViz log: `A..B` in ms (ShiViz draws a
    /// few thousand events well; a 10 s run has tens of thousands).
    #[arg(long, value_name = "A..B")]
    shiviz_window: Option<String>,
}

impl RunArgs {
    pub fn run(self) -> ExitCode {
        if self.scenario != "lock-contention" {
            if self.clients.is_some() || self.ttl_ms.is_some() {
                return usage(
                    "--clients and --ttl-ms apply to lock-contention only; a cluster scenario sets them in its file",
                );
            }
            return run_named(Named {
                given: &self.scenario,
                seed: self.seed,
                duration_s: self.duration_s,
                bugs: &self.bugs,
                trace: self.trace,
                expect: None,
                outputs: self.outputs,
                json: self.json,
            });
        }
        let o = &self.outputs;
        if o.html.is_some()
            || o.shiviz.is_some()
            || o.shiviz_window.is_some()
            || self.trace.is_some()
            || !self.bugs.is_empty()
        {
            return usage(
                "--html, --shiviz, --trace and --bug apply to cluster scenarios; lock-contention writes --history only",
            );
        }
        let defaults = Params::default();
        let params = Params {
            clients: self.clients.unwrap_or(defaults.clients),
            duration: self
                .duration_s
                .map_or(defaults.duration, Duration::from_secs),
            lock_ttl: self.ttl_ms.map_or(defaults.lock_ttl, Duration::from_millis),
        };
        run_mem(self.seed, params, self.outputs.history, None, self.json)
    }
}

impl ReplayArgs {
    pub fn run(self) -> ExitCode {
        if let Some(e) = &self.expect {
            if let Err(m) = check_digest(e) {
                return usage(m);
            }
        }
        if self.scenario == "lock-contention" {
            let o = &self.outputs;
            if o.html.is_some()
                || o.shiviz.is_some()
                || self.trace.is_some()
                || !self.bugs.is_empty()
            {
                return usage(
                    "--html, --shiviz, --trace and --bug apply to cluster scenarios; lock-contention writes --history only",
                );
            }
            return run_mem(
                self.seed,
                Params::default(),
                self.outputs.history,
                self.expect,
                false,
            );
        }
        run_named(Named {
            given: &self.scenario,
            seed: self.seed,
            duration_s: None,
            bugs: &self.bugs,
            trace: self.trace,
            expect: self.expect,
            outputs: self.outputs,
            json: false,
        })
    }
}

impl ReportArgs {
    pub fn run(mut self) -> ExitCode {
        if self.scenario == "lock-contention" {
            return usage("reports are of cluster scenarios; lock-contention has none");
        }
        let (s, given) = match scenario_with(&self.scenario, self.duration_s, &self.bugs) {
            Ok(s) => s,
            Err(e) => return usage(e),
        };
        if self.outputs.html.is_none() && self.outputs.shiviz.is_none() {
            self.outputs.html = Some(format!("tenure-{}-{}.html", s.name, self.seed).into());
        }
        let plan = match plan(&self.scenario, &self.outputs) {
            Ok(p) => p,
            Err(e) => return usage(e),
        };
        run_cluster(Job {
            given: &given,
            scenario: &s,
            seed: self.seed,
            expect: None,
            trace: None,
            outputs: self.outputs,
            plan,
            json: false,
        })
    }
}

/// `--expect`: the replay's digest against the one expected (exit 1 when they differ).
fn compare(expected: Option<&str>, digest: &str) -> Result<(), ExitCode> {
    let Some(expected) = expected else {
        return Ok(());
    };
    if expected != digest {
        eprintln!(
            "tenure: the replay differs: digest {digest} where {expected} was expected (another build, other parameters, or nondeterminism)"
        );
        return Err(ExitCode::FAILURE);
    }
    eprintln!("tenure: replayed exactly (digest {expected})");
    Ok(())
}

/// A digest as runs print it: SHA-256 in 64 lowercase hex digits.
fn check_digest(d: &str) -> Result<(), String> {
    if d.len() == 64 && d.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(format!(
            "--expect {d:?} is not a digest (64 lowercase hex digits, as `tenure run` prints)"
        ))
    }
}

/// Every output of a run, checked now (before the run): none may overwrite the scenario file
/// or another output, each must be writable.
fn plan(given: &str, o: &OutputArgs) -> Result<Outputs, String> {
    let mut plan = Outputs::new();
    if let Some(path) = tenure_scenarios::scenario_file(given) {
        plan.input(path, "scenario file");
    }
    for (flag, path) in [
        ("--history", &o.history),
        ("--html", &o.html),
        ("--shiviz", &o.shiviz),
    ] {
        if let Some(p) = path {
            plan.add(flag, p)?;
        }
    }
    Ok(plan)
}

/// Parses `A..B` (ms) into a range of µs.
fn parse_window(text: &str) -> Result<std::ops::Range<u64>, String> {
    let bad = || format!("bad --shiviz-window {text:?}: expected A..B in ms, with A < B");
    let (a, b) = text.split_once("..").ok_or_else(bad)?;
    let (a, b): (u64, u64) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if a >= b {
        return Err(bad());
    }
    Ok(a.saturating_mul(1000)..b.saturating_mul(1000))
}

/// Above this many events a ShiViz log is worth narrowing.
const SHIVIZ_EVENTS: usize = 5_000;

/// How many faults a run's summary lists.
const FAULTS_SHOWN: usize = 12;

fn run_mem(
    seed: u64,
    params: Params,
    history: Option<PathBuf>,
    expect: Option<String>,
    json: bool,
) -> ExitCode {
    let mut plan = Outputs::new();
    if let Some(path) = &history {
        if let Err(e) = plan.add("--history", path) {
            return usage(e);
        }
    }
    let report = match run("lock-contention", seed, params) {
        Ok(r) => r,
        Err(e @ (ScenarioError::Unknown(_) | ScenarioError::BadParam(_))) => return usage(e),
        Err(e) => {
            eprintln!("tenure: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &history {
        if let Err(e) = plan.stage(path, report.history_jsonl().as_bytes()) {
            return usage(e);
        }
    }
    if let Err(e) = plan.commit() {
        return usage(e);
    }
    if json {
        print_json(&report);
    } else {
        println!("scenario   {}", report.scenario);
        println!("seed       {}", report.seed);
        println!("operations {}", report.operations);
        println!("grants     {}", report.grants);
        println!("violations {}", report.violations.len());
        for v in &report.violations {
            println!("  {v}");
        }
        println!("digest     {}", report.digest);
    }
    if let Err(code) = compare(expect.as_deref(), &report.digest) {
        return code;
    }
    if report.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A cluster scenario named on the command line, to run or replay.
struct Named<'a> {
    given: &'a str,
    seed: u64,
    duration_s: Option<u64>,
    bugs: &'a [String],
    trace: Option<String>,
    expect: Option<String>,
    outputs: OutputArgs,
    json: bool,
}

/// `tenure run` or `tenure replay` of a cluster scenario named on the command line.
fn run_named(n: Named) -> ExitCode {
    let (s, given) = match scenario_with(n.given, n.duration_s, n.bugs) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let level = match n.trace.as_deref().map(tenure_sim::trace::parse_level) {
        Some(Err(e)) => return usage(e),
        Some(Ok(l)) => Some(l),
        None => None,
    };
    let plan = match plan(n.given, &n.outputs) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    run_cluster(Job {
        given: &given,
        scenario: &s,
        seed: n.seed,
        expect: n.expect,
        trace: level,
        outputs: n.outputs,
        plan,
        json: n.json,
    })
}

/// A scenario by name or file, its duration overridden and `bugs` planted when asked; with
/// how to name it again (`NAME --bug B ...`) in replay commands.
pub fn scenario_with(
    given: &str,
    duration_s: Option<u64>,
    bugs: &[String],
) -> Result<(library::Scenario, String), String> {
    let mut s = resolve(given)?;
    if let Some(d) = duration_s {
        if d == 0 || d > 3_600 {
            return Err(format!(
                "--duration-s must be 1 to 3600 (an hour of virtual time), not {d}"
            ));
        }
        s.settings.duration_ms = Some(d * 1000);
    }
    let mut named = given.to_string();
    for b in bugs {
        tenure_sim::Bug::parse(b)?;
        let planted = s.settings.bugs.get_or_insert_with(Vec::new);
        if !planted.contains(b) {
            planted.push(b.clone());
        }
        named.push_str(&format!(" --bug {b}"));
    }
    // The changed scenario must still fit the limits (a longer duration with long waits).
    s.run_config().map_err(|e| format!("{given}: {e}"))?;
    Ok((s, named))
}

/// One seed of a cluster scenario to run (or replay), and what to write.
struct Job<'a> {
    /// The scenario as the user named it (for replay commands).
    given: &'a str,
    scenario: &'a library::Scenario,
    seed: u64,
    expect: Option<String>,
    trace: Option<tracing::Level>,
    outputs: OutputArgs,
    /// The outputs, checked.
    plan: Outputs,
    json: bool,
}

/// Runs (or replays) one seed of a cluster scenario.
fn run_cluster(job: Job) -> ExitCode {
    let Job {
        given,
        scenario: s,
        seed,
        expect,
        trace,
        outputs,
        mut plan,
        json,
    } = job;
    let mut config = match s.run_config() {
        Ok(c) => c,
        Err(e) => return usage(format!("{given}: {e}")),
    };
    if outputs.shiviz.is_some() {
        config.record_messages = true;
    }
    let window = match (&outputs.shiviz, &outputs.shiviz_window) {
        (None, Some(_)) => return usage("--shiviz-window needs --shiviz"),
        (_, Some(w)) => match parse_window(w) {
            Ok(w) => w,
            Err(e) => return usage(e),
        },
        (_, None) => 0..u64::MAX,
    };
    let result = match trace {
        Some(level) => tracing::subscriber::with_default(
            tenure_sim::trace::subscriber(level, std::io::stderr),
            || tenure_sim::run(&config, seed),
        ),
        None => tenure_sim::run(&config, seed),
    };
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tenure: {e}");
            eprintln!("replay: tenure replay {given} --seed {seed} --trace debug");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = write_outputs(&mut plan, &outputs, s, given, seed, &report, window) {
        return usage(e);
    }
    if json {
        print_json(&serde_json::json!({
            "scenario": s.name, "seed": seed, "ok": report.ok(), "digest": report.digest,
            "counters": report.counters, "violations": report.violations,
            "warnings": report.warnings, "schedule": report.schedule, "swarm": report.swarm,
            "drawn": report.drawn, "fault_points": report.fault_points,
            "coverage": report.coverage().len(),
        }));
    } else {
        summary(s, given, seed, &report);
    }
    if let Err(code) = compare(expect.as_deref(), &report.digest) {
        return code;
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Stages every output of the run, then puts them all in place.
fn write_outputs(
    plan: &mut Outputs,
    outputs: &OutputArgs,
    s: &library::Scenario,
    given: &str,
    seed: u64,
    report: &tenure_sim::Report,
    window: std::ops::Range<u64>,
) -> Result<(), String> {
    if let Some(path) = &outputs.history {
        plan.stage(path, report.history.to_jsonl().as_bytes())?;
    }
    if let Some(path) = &outputs.html {
        let page = tenure_sim::page::Page {
            scenario: &s.name,
            about: &s.about,
            report,
            replay: format!(
                "tenure replay {given} --seed {seed} --expect {}",
                report.digest
            ),
        };
        plan.stage(path, tenure_sim::page::html(&page).as_bytes())?;
    }
    let mut shiviz_events = 0;
    if let Some(path) = &outputs.shiviz {
        let (log, events) = tenure_sim::shiviz::log_window(&report.history, window)
            .map_err(|e| format!("--shiviz-window: {e}"))?;
        plan.stage(path, log.as_bytes())?;
        shiviz_events = events;
    }
    std::mem::take(plan).commit()?;
    if let Some(path) = &outputs.html {
        eprintln!("tenure: wrote the report to {}", path.display());
    }
    if let Some(path) = &outputs.shiviz {
        eprintln!(
            "tenure: wrote the ShiViz log ({shiviz_events} events) to {} (load it at https://bestchai.bitbucket.io/shiviz/)",
            path.display()
        );
        if shiviz_events > SHIVIZ_EVENTS {
            eprintln!(
                "tenure: ShiViz draws a few thousand events well; narrow the log with --shiviz-window A..B (ms)"
            );
        }
    }
    Ok(())
}

/// The run's summary for a person.
fn summary(s: &library::Scenario, given: &str, seed: u64, report: &tenure_sim::Report) {
    let c = &report.counters;
    println!("scenario   {} (seed {seed})", s.name);
    println!(
        "virtual    {:.3} s, {} history records, {} messages",
        c.virtual_ms as f64 / 1000.0,
        c.records,
        c.messages_sent
    );
    println!(
        "operations {} ({} ok, {} failed, {} unknown)",
        c.ops_invoked, c.ops_ok, c.ops_failed, c.ops_indeterminate
    );
    println!(
        "cluster    {} leader terms, {} snapshots ({} installed), {} expiries",
        c.leader_terms, c.snapshots, c.snapshots_installed, c.expiries
    );
    let faults = match &report.swarm {
        Some(k) => {
            let on: Vec<&str> = [
                (k.partitions, "partitions"),
                (k.kills, "kills"),
                (k.pauses, "pauses"),
                (k.clocks, "clocks"),
                (k.network, "network"),
            ]
            .iter()
            .filter(|(b, _)| *b)
            .map(|(_, n)| *n)
            .collect();
            if on.is_empty() {
                "swarm of nothing but the final heal".to_string()
            } else {
                format!("swarm of {}", on.join(", "))
            }
        }
        None => "scheduled, then lifted".into(),
    };
    if let Some(d) = &report.drawn {
        println!("drew       {d}");
    }
    println!("faults     {} ({faults})", report.schedule.steps.len());
    if !report.fault_points.is_empty() {
        let fired: Vec<String> = report
            .fault_points
            .iter()
            .map(|(p, n)| format!("{p} x{n}"))
            .collect();
        println!("points     {}", fired.join(", "));
    }
    for step in report.schedule.steps.iter().take(FAULTS_SHOWN) {
        println!("  {:>8.3} s  {}", step.at_ms as f64 / 1000.0, step.fault);
    }
    if report.schedule.steps.len() > FAULTS_SHOWN {
        println!(
            "  ... and {} more (--json has them all)",
            report.schedule.steps.len() - FAULTS_SHOWN
        );
    }
    println!("violations {}", report.violations.len());
    for v in &report.violations {
        println!("  {v}");
    }
    if !report.warnings.is_empty() {
        println!("warnings   {}", report.warnings.len());
        for v in report.warnings.iter().take(5) {
            println!("  {v}");
        }
    }
    println!("coverage   {} features", report.coverage().len());
    println!("digest     {}", report.digest);
    if !report.ok() {
        println!(
            "replay     tenure replay {given} --seed {seed} --expect {} --trace debug",
            report.digest
        );
        println!("report     tenure report {given} --seed {seed}");
    }
}
