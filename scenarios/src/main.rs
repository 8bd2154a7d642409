//! `tenure`: list, run, replay and sweep seeded scenarios; merge sweep shards; check
//! histories.

use clap::{Parser, Subcommand};

/// mimalloc: a run allocates and frees a small object for nearly every message, and
/// mimalloc's per-thread free lists make that about a quarter cheaper than glibc's malloc
/// (BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;
use std::time::Duration;

/// Writes to standard output; when the reader has gone (`tenure sweep ... | head`) the process
/// ends quietly with 141, the status of a process killed by SIGPIPE, as a C tool's would,
/// instead of panicking.
fn out(args: std::fmt::Arguments, newline: bool) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let r = o
        .write_fmt(args)
        .and_then(|()| if newline { o.write_all(b"\n") } else { Ok(()) });
    if let Err(e) = r {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("tenure: cannot write to standard output: {e}");
        std::process::exit(2);
    }
}

macro_rules! println {
    () => { out(format_args!(""), true) };
    ($($arg:tt)*) => { out(format_args!($($arg)*), true) };
}

macro_rules! print {
    ($($arg:tt)*) => { out(format_args!($($arg)*), false) };
}
use tenure_scenarios::check::{FormatName, ModelName};
use tenure_scenarios::{library, resolve, run, sweep, Params, ScenarioError, SCENARIOS};

/// Deterministic simulation of distributed coordination: run a scenario from a seed; the same
/// seed gives the same history, byte for byte.
#[derive(Parser)]
#[command(name = "tenure", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lists the scenarios: the cluster scenarios (built in, or any TOML file of the same
    /// shape) and the in-process `lock-contention`.
    List {
        /// Prints them as JSON, with their descriptions and the invariants they watch.
        #[arg(long)]
        json: bool,
        /// Lists the planted bugs instead (`--bug NAME` switches one on), with the invariant
        /// each breaks and a scenario that finds it.
        #[arg(long)]
        bugs: bool,
    },
    /// Runs one scenario with one seed, checks its history against every invariant and prints
    /// a summary. Exit 0: every invariant held; 1: a violation; 2: bad input.
    Run {
        /// A scenario's name (see `tenure list`) or a scenario file (TOML).
        scenario: String,
        /// The seed that fixes every choice of the run.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Virtual duration of the workload, in seconds (default: the scenario's).
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
        outputs: Outputs,
        /// Trace to standard error up to this level (see `tenure replay --help`).
        #[arg(long)]
        trace: Option<String>,
        /// Prints the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Runs a seed again, exactly: prints the history's digest and, with `--expect`,
    /// compares it (exit 1 when it differs); `--trace` prints every event as it happens, in
    /// virtual time, with node names.
    Replay {
        /// A scenario's name or file.
        scenario: String,
        #[arg(long)]
        seed: u64,
        /// The digest the run printed before.
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
        outputs: Outputs,
    },
    /// Runs one seed of a scenario and writes what happened as one self-contained HTML page
    /// (a timeline per node of roles, beliefs against true time, grants, tokens, expiries and
    /// faults; the violations linked to their records; every key's operations) and, with
    /// `--shiviz`, a ShiViz log with a vector clock on every message. Prints the summary as
    /// `run` does. Exit 0: every invariant held; 1: a violation; 2: bad input.
    Report {
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
        outputs: Outputs,
    },
    /// Runs many seeds of a scenario in parallel, prints every failing seed with a command
    /// that replays it, and writes the results as JSON (shards merge with `tenure merge`).
    /// Exit 0: every seed held; 1: some seed failed; 2: bad input.
    Sweep {
        /// A scenario's name or file.
        scenario: String,
        /// The seeds: `A..B` (B not included) or one seed.
        #[arg(long, default_value = "0..100")]
        seeds: String,
        /// Seeds run at once (each on its own thread).
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// Runs only shard K of N of the seeds (every N-th seed from the K-th).
        #[arg(long)]
        shard: Option<String>,
        /// Stops starting seeds after the first failure.
        #[arg(long)]
        stop_on_failure: bool,
        /// Plants a bug in the built-in actors (repeatable; `tenure list --bugs` names them).
        #[arg(long = "bug", value_name = "NAME")]
        bugs: Vec<String>,

        /// Writes the results as JSON to this file.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Prints the results as JSON on standard output instead of the summary.
        #[arg(long)]
        json: bool,
    },
    /// Makes a failing seed small: its faults, as the run carried them out, become a written
    /// schedule; faults are removed while the same rule still breaks (delta debugging), the
    /// times left are rounded and the duration cut. Writes the minimal schedule as a scenario
    /// file and prints the command that replays it. Exit 0: shrunk (the file fails as the
    /// seed did); 2: bad input, or a seed that does not fail.
    Shrink {
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
        /// The rule to keep breaking, by the start of its name (`S10`, `S1 exclusivity`);
        /// default: the run's first violation.
        #[arg(long)]
        rule: Option<String>,
        /// Most runs to make (the result so far is kept when they run out).
        #[arg(long, default_value_t = 200)]
        budget: usize,
        /// Where to write the shrunk scenario (default: tenure-NAME-SEED-shrunk.toml).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Finds how much of one adversity a scenario takes: bisects the holders' true clock
    /// drift (`drift`), the length of the schedule's pauses (`pause`, ms) or a fixed delay on
    /// every message (`delay`, ms) to the smallest value at which some seed breaks a rule,
    /// with a failing seed on one side and the seeds all holding on the other, beside the
    /// bound the lease settings promise. Exit 0: searched; 2: bad input.
    Margin {
        /// A scenario's name or file.
        scenario: String,
        /// drift, pause or delay.
        #[arg(long)]
        param: String,
        /// The seeds run at each value: `A..B` (B not included).
        #[arg(long, default_value = "1..9")]
        seeds: String,
        /// Seeds run at once.
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// The range searched, `LO..HI` (default: drift 0..0.45; pause 0..3 TTLs, ms;
        /// delay 0..50 ms, past which no leader lasts with the default election timeout).
        #[arg(long, value_name = "LO..HI")]
        range: Option<String>,
        /// Stop when the two sides are this close (default: drift 0.0005, pause 10, delay 2).
        #[arg(long)]
        resolution: Option<f64>,
        /// Only violations of rules whose name starts with this count (`S1`, `S10`).
        #[arg(long)]
        rule: Option<String>,
        /// Plants a bug in the built-in actors (repeatable; `tenure list --bugs` names them).
        #[arg(long = "bug", value_name = "NAME")]
        bugs: Vec<String>,
        /// Prints the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measures whole runs in one process: the raw madsim ping-pong (the simulator's own
    /// message rate), the `standard` scenario against it (virtual seconds per wall second,
    /// messages per second, their ratio), seeds per second on one and two threads, peak
    /// memory, and how a run's cost grows with agents, clients and virtual duration. Build
    /// with `--release`: a debug build's figures mean nothing. Exit 0: measured (targets met
    /// or not; see `targets`); 2: bad input.
    Bench {
        /// Prints the figures as one JSON object.
        #[arg(long)]
        json: bool,
        /// A few seconds instead of about a minute: fewer seeds, up to 100 clients.
        #[arg(long)]
        quick: bool,
        /// Seeds of the standard scenario (default 20; 4 with --quick).
        #[arg(long)]
        seeds: Option<u64>,
    },
    /// Merges the JSON results of sweep shards into one (printed, or written with `--out`).
    Merge {
        /// Result files written by `tenure sweep --out`.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Checks a history file: a tenure history against every invariant, or any history
    /// (tenure, Jepsen EDN, Jepsen operations as JSON lines, jepsen.util log lines) for
    /// linearizability against a model. Exit 0: it held; 1: a violation; 2: bad input;
    /// 3: undecided within the budget.
    Check {
        /// The history file.
        history: std::path::PathBuf,
        /// Check linearizability against this model (default for non-tenure files: register).
        #[arg(long, value_enum)]
        model: Option<ModelName>,
        /// The file's format.
        #[arg(long, value_enum, default_value = "auto")]
        format: FormatName,
        /// Most search steps before answering "unknown".
        #[arg(long)]
        steps: Option<u64>,
        /// Most wall-clock seconds before answering "unknown".
        #[arg(long)]
        time_limit: Option<f64>,
        /// Prints the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What a run writes besides its summary.
#[derive(clap::Args, Clone, Debug, Default)]
struct Outputs {
    /// Writes the history (JSON lines) to this file.
    #[arg(long)]
    history: Option<std::path::PathBuf>,
    /// Writes the run's report as one self-contained HTML page to this file.
    #[arg(long)]
    html: Option<std::path::PathBuf>,
    /// Writes a ShiViz log of the run to this file (the run then records its messages, so
    /// its history, and its digest, include them).
    #[arg(long)]
    shiviz: Option<std::path::PathBuf>,
    /// Only this stretch of true time goes into the ShiViz log: `A..B` in ms (ShiViz draws a
    /// few thousand events well; a 10 s run has tens of thousands).
    #[arg(long, value_name = "A..B")]
    shiviz_window: Option<String>,
}

/// Parses `A..B` (ms) into a range of µs.
fn parse_window(text: &str) -> Result<std::ops::Range<u64>, String> {
    let bad = || format!("bad window {text:?}: expected A..B in ms, with A < B");
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

/// Exit status 2 with a message.
fn bench(json: bool, quick: bool, seeds: Option<u64>) -> ExitCode {
    use tenure_scenarios::bench;
    let mut opts = if quick {
        bench::Options::quick()
    } else {
        bench::Options::full()
    };
    if let Some(n) = seeds {
        if n == 0 {
            return usage("--seeds: must be at least 1");
        }
        opts.seeds = n;
    }
    match bench::run(opts, |what| eprintln!("bench: {what}")) {
        Ok(f) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&f).expect("figures serialize")
                );
            } else {
                print!("{}", bench::show(&f));
            }
            ExitCode::SUCCESS
        }
        Err(e) => usage(e),
    }
}

fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("tenure: {message}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            history,
            model,
            format,
            steps,
            time_limit,
            json,
        } => check(&history, model, format, steps, time_limit, json),
        Command::List { json, bugs: true } => list_bugs(json),
        Command::List { json, bugs: false } => list(json),
        Command::Run {
            scenario,
            seed,
            duration_s,
            clients,
            ttl_ms,
            bugs,
            outputs,
            trace,
            json,
        } => {
            if scenario != "lock-contention" {
                if clients.is_some() || ttl_ms.is_some() {
                    return usage(
                        "--clients and --ttl-ms apply to lock-contention only; a cluster scenario sets them in its file",
                    );
                }
                return run_named(
                    &scenario, seed, duration_s, &bugs, trace, None, outputs, json,
                );
            }
            if outputs.html.is_some()
                || outputs.shiviz.is_some()
                || trace.is_some()
                || !bugs.is_empty()
            {
                return usage(
                    "--html, --shiviz, --trace and --bug apply to cluster scenarios; lock-contention writes --history only",
                );
            }
            let history = outputs.history;
            let defaults = Params::default();
            let params = Params {
                clients: clients.unwrap_or(defaults.clients),
                duration: duration_s.map_or(defaults.duration, Duration::from_secs),
                lock_ttl: ttl_ms.map_or(defaults.lock_ttl, Duration::from_millis),
            };
            run_mem(&scenario, seed, params, history, json)
        }
        Command::Replay {
            scenario,
            seed,
            expect,
            trace,
            bugs,
            outputs,
        } => run_named(&scenario, seed, None, &bugs, trace, expect, outputs, false),
        Command::Report {
            scenario,
            seed,
            duration_s,
            bugs,
            mut outputs,
        } => {
            if scenario == "lock-contention" {
                return usage("reports are of cluster scenarios; lock-contention has none");
            }
            let (s, scenario) = match scenario_with(&scenario, duration_s, &bugs) {
                Ok(s) => s,
                Err(e) => return usage(e),
            };
            if outputs.html.is_none() && outputs.shiviz.is_none() {
                outputs.html = Some(format!("tenure-{}-{seed}.html", s.name).into());
            }
            run_cluster(Job {
                given: &scenario,
                scenario: &s,
                seed,
                expect: None,
                trace: None,
                outputs,
                json: false,
            })
        }
        Command::Sweep {
            scenario,
            seeds,
            jobs,
            shard,
            stop_on_failure,
            bugs,
            out,
            json,
        } => {
            let (s, scenario) = match scenario_with(&scenario, None, &bugs) {
                Ok(s) => s,
                Err(e) => return usage(e),
            };
            let how = SweepHow {
                seeds: &seeds,
                jobs,
                shard,
                stop_on_failure,
                out,
                json,
            };
            sweep(&scenario, &s, how)
        }
        Command::Merge { files, out } => merge(files, out),
        Command::Margin {
            scenario,
            param,
            seeds,
            jobs,
            range,
            resolution,
            rule,
            bugs,
            json,
        } => margin(MarginHow {
            given: &scenario,
            param: &param,
            seeds: &seeds,
            jobs,
            range: range.as_deref(),
            resolution,
            rule: rule.as_deref(),
            bugs: &bugs,
            json,
        }),
        Command::Bench { json, quick, seeds } => bench(json, quick, seeds),
        Command::Shrink {
            scenario,
            seed,
            bugs,
            duration_s,
            rule,
            budget,
            out,
        } => shrink(
            &scenario,
            seed,
            &bugs,
            duration_s,
            rule.as_deref(),
            budget,
            out,
        ),
    }
}

struct MarginHow<'a> {
    given: &'a str,
    param: &'a str,
    seeds: &'a str,
    jobs: usize,
    range: Option<&'a str>,
    resolution: Option<f64>,
    rule: Option<&'a str>,
    bugs: &'a [String],
    json: bool,
}

fn margin(how: MarginHow) -> ExitCode {
    use tenure_scenarios::margin::{self, Param};
    if how.given == "lock-contention" {
        return usage("margin works on cluster scenarios");
    }
    let param = match Param::parse(how.param) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let (s, given) = match scenario_with(how.given, None, how.bugs) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let config = match s.run_config() {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    let seeds = match sweep::parse_seeds(how.seeds) {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    if how.jobs == 0 {
        return usage("--jobs must be at least 1");
    }
    let (mut lo, mut hi, mut resolution) = param.defaults(&config);
    if let Some(r) = how.range {
        let bad = || format!("bad --range {r:?}: expected LO..HI with 0 <= LO < HI");
        let Some((a, b)) = r.split_once("..") else {
            return usage(bad());
        };
        match (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
            (Ok(a), Ok(b)) if a.is_finite() && b.is_finite() && 0.0 <= a && a < b => {
                (lo, hi) = (a, b);
            }
            _ => return usage(bad()),
        }
    }
    if param == Param::Drift && hi >= 0.5 {
        return usage("--range: a drift must stay below 0.5");
    }
    if let Some(r) = how.resolution {
        if !(r.is_finite() && r > 0.0) {
            return usage("--resolution must be more than 0");
        }
        resolution = r;
    }
    // The scenario must take the parameter at all (a pause needs pauses to stretch).
    if let Err(e) = margin::with_param(&s, param, hi) {
        return usage(e);
    }
    let progress = |side: &margin::Side| {
        let what = match &side.failing_seed {
            Some((seed, rule, _)) => format!("seed {seed} breaks {rule}"),
            None => "every seed holds".to_string(),
        };
        eprintln!("margin: at {}: {what}", margin::show(param, side.value));
    };
    let plan = margin::Plan {
        param,
        range: (lo, hi),
        resolution,
        seeds: seeds.clone(),
        jobs: how.jobs,
        rule: how.rule,
    };
    let found = match margin::search(&s, &plan, progress) {
        Ok(m) => m,
        Err(e) => return usage(e),
    };
    if how.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&found).expect("a margin serializes")
        );
        return ExitCode::SUCCESS;
    }
    println!("scenario   {given} (seeds {}..{})", seeds.start, seeds.end);
    println!("param      {}: {}", how.param, margin::describe(param));
    match (&found.holds, &found.breaks) {
        (Some(h), Some(b)) => {
            let (seed, rule, message) = b.failing_seed.clone().expect("a breaking side");
            println!(
                "breaks at  {}: seed {seed} breaks {rule}",
                margin::show(param, b.value)
            );
            println!("  {message}");
            println!(
                "holds at   {}: every seed holds (seed {} among them)",
                margin::show(param, h.value),
                h.passing_seed.unwrap_or(seeds.start)
            );
        }
        (Some(h), None) => println!(
            "holds      up to {} (the top of the range): no seed broke a rule",
            margin::show(param, h.value)
        ),
        (None, Some(b)) => {
            let (seed, rule, _) = b.failing_seed.clone().expect("a breaking side");
            println!(
                "breaks     already at {} (the bottom of the range): seed {seed} breaks {rule}",
                margin::show(param, b.value)
            );
        }
        (None, None) => unreachable!("the search ends on one side or both"),
    }
    println!(
        "bound      {}: {}",
        margin::show(param, found.bound),
        found.bound_why
    );
    println!("runs       {} ({} values)", found.runs, found.probes);
    ExitCode::SUCCESS
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
    if budget < 2 {
        return usage("--budget must allow at least 2 runs");
    }
    let (s, _) = match scenario_with(given, duration_s, bugs) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
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
    let rule_id = found
        .rule
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string();
    shrunk.watches = vec![rule_id];
    let text = match library::to_toml(&shrunk) {
        Ok(t) => t,
        Err(e) => return usage(format!("cannot write the shrunk scenario as TOML: {e}")),
    };
    if let Err(e) = library::parse(&text, "the shrunk scenario") {
        return usage(format!("the shrunk scenario does not read back: {e}"));
    }
    let path = out.unwrap_or_else(|| format!("tenure-{}-{seed}-shrunk.toml", s.name).into());
    if let Err(e) = std::fs::write(&path, &text) {
        return usage(format!("cannot write {}: {e}", path.display()));
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

fn list(json: bool) -> ExitCode {
    let scenarios = library::all();
    if json {
        let mut all: Vec<serde_json::Value> = scenarios
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name, "about": s.about, "description": s.description,
                    "watches": s.watches, "kind": "cluster",
                })
            })
            .collect();
        for (name, about) in SCENARIOS {
            all.push(serde_json::json!({"name": name, "about": about, "kind": "mem"}));
        }
        print_json(&all);
    } else {
        for s in &scenarios {
            println!("{:<30} {}", s.name, s.about);
        }
        for (name, about) in SCENARIOS {
            println!("{name:<30} {about}");
        }
    }
    ExitCode::SUCCESS
}

fn run_mem(
    scenario: &str,
    seed: u64,
    params: Params,
    history: Option<std::path::PathBuf>,
    json: bool,
) -> ExitCode {
    let report = match run(scenario, seed, params) {
        Ok(r) => r,
        Err(e @ (ScenarioError::Unknown(_) | ScenarioError::BadParam(_))) => return usage(e),
        Err(e) => {
            eprintln!("tenure: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = history {
        if let Err(e) = std::fs::write(&path, report.history_jsonl()) {
            return usage(format!(
                "cannot write the history to {}: {e}",
                path.display()
            ));
        }
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
    if report.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `tenure run` or `tenure replay` of a cluster scenario named on the command line.
#[allow(clippy::too_many_arguments)]
fn run_named(
    given: &str,
    seed: u64,
    duration_s: Option<u64>,
    bugs: &[String],
    trace: Option<String>,
    expect: Option<String>,
    outputs: Outputs,
    json: bool,
) -> ExitCode {
    let (s, given) = match scenario_with(given, duration_s, bugs) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let level = match trace_level(trace.as_deref()) {
        Ok(l) => l,
        Err(e) => return usage(e),
    };
    run_cluster(Job {
        given: &given,
        scenario: &s,
        seed,
        expect,
        trace: level,
        outputs,
        json,
    })
}

/// A scenario by name or file, its duration overridden and `bugs` planted when asked; with
/// how to name it again (`NAME --bug B ...`) in replay commands.
fn scenario_with(
    given: &str,
    duration_s: Option<u64>,
    bugs: &[String],
) -> Result<(library::Scenario, String), String> {
    let mut s = resolve(given)?;
    if let Some(d) = duration_s {
        s.settings.duration_ms = Some(d.saturating_mul(1000));
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
    Ok((s, named))
}

fn list_bugs(json: bool) -> ExitCode {
    use tenure_sim::Bug;
    if json {
        let all: Vec<serde_json::Value> = Bug::ALL
            .iter()
            .map(|b| {
                serde_json::json!({
                    "name": b.name(), "invariant": b.invariant(), "invariants": b.invariants(),
                    "scenario": b.scenario(),
                    "about": b.about(),
                })
            })
            .collect();
        print_json(&all);
    } else {
        for b in Bug::ALL {
            println!(
                "{:<30} breaks {:<14} found by {}",
                b.name(),
                b.invariant(),
                b.scenario()
            );
            println!("{:<30} {}", "", b.about());
        }
    }
    ExitCode::SUCCESS
}

fn trace_level(given: Option<&str>) -> Result<Option<tracing::Level>, String> {
    given.map(tenure_sim::trace::parse_level).transpose()
}

/// One seed of a cluster scenario to run (or replay), and what to write.
struct Job<'a> {
    /// The scenario as the user named it (for replay commands).
    given: &'a str,
    scenario: &'a library::Scenario,
    seed: u64,
    expect: Option<String>,
    trace: Option<tracing::Level>,
    outputs: Outputs,
    json: bool,
}

/// Writes `text` to `path`, or says why not.
fn write_out(path: &std::path::Path, what: &str, text: &str) -> Result<(), ExitCode> {
    std::fs::write(path, text).map_err(|e| {
        usage(format!(
            "cannot write the {what} to {}: {e}",
            path.display()
        ))
    })
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
    // Refuse an output we could not write before spending the run.
    for path in [&outputs.history, &outputs.html, &outputs.shiviz]
        .into_iter()
        .flatten()
    {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return usage(format!(
                    "cannot write {}: {} is not a directory",
                    path.display(),
                    dir.display()
                ));
            }
        }
    }
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
    if let Some(path) = &outputs.history {
        if let Err(code) = write_out(path, "history", &report.history.to_jsonl()) {
            return code;
        }
    }
    if let Some(path) = &outputs.html {
        let page = tenure_sim::page::Page {
            scenario: &s.name,
            about: &s.about,
            report: &report,
            replay: format!(
                "tenure replay {given} --seed {seed} --expect {}",
                report.digest
            ),
        };
        if let Err(code) = write_out(path, "report", &tenure_sim::page::html(&page)) {
            return code;
        }
        eprintln!("tenure: wrote the report to {}", path.display());
    }
    if let Some(path) = &outputs.shiviz {
        let (log, events) = match tenure_sim::shiviz::log_window(&report.history, window) {
            Ok(l) => l,
            Err(e) => return usage(format!("--shiviz-window: {e}")),
        };
        if let Err(code) = write_out(path, "ShiViz log", &log) {
            return code;
        }
        eprintln!(
            "tenure: wrote the ShiViz log ({events} events) to {} (load it at https://bestchai.bitbucket.io/shiviz/)",
            path.display()
        );
        if events > SHIVIZ_EVENTS {
            eprintln!(
                "tenure: ShiViz draws a few thousand events well; narrow the log with --shiviz-window A..B (ms)"
            );
        }
    }
    if json {
        print_json(&serde_json::json!({
            "scenario": s.name, "seed": seed, "ok": report.ok(), "digest": report.digest,
            "counters": report.counters, "violations": report.violations,
            "warnings": report.warnings, "schedule": report.schedule, "swarm": report.swarm,
        }));
    } else {
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
        println!(
            "faults     {} ({})",
            report.schedule.steps.len(),
            match &report.swarm {
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
                    format!(
                        "swarm of {}",
                        if on.is_empty() {
                            "nothing but the final heal".to_string()
                        } else {
                            on.join(", ")
                        }
                    )
                }
                None => "scheduled, then lifted".into(),
            }
        );
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
        println!("digest     {}", report.digest);
        if !report.ok() {
            println!(
                "replay     tenure replay {given} --seed {seed} --expect {} --trace debug",
                report.digest
            );
            println!("report     tenure report {given} --seed {seed}");
        }
    }
    if let Some(expected) = expect {
        if expected != report.digest {
            eprintln!(
                "tenure: the replay differs: digest {} where {expected} was expected (another build, or nondeterminism)",
                report.digest
            );
            return ExitCode::FAILURE;
        }
        eprintln!("tenure: replayed exactly (digest {expected})");
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// How to sweep: the options of `tenure sweep`.
struct SweepHow<'a> {
    seeds: &'a str,
    jobs: usize,
    shard: Option<String>,
    stop_on_failure: bool,
    out: Option<std::path::PathBuf>,
    json: bool,
}

/// Sweeps `s`, named `given` (with its `--bug` flags) in results and replay commands.
fn sweep(given: &str, s: &library::Scenario, how: SweepHow) -> ExitCode {
    use std::io::IsTerminal;
    let SweepHow {
        seeds,
        jobs,
        shard,
        stop_on_failure,
        out,
        json,
    } = how;
    let range = match sweep::parse_seeds(seeds) {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    let shard_kn = match shard.as_deref().map(sweep::parse_shard) {
        Some(Err(e)) => return usage(e),
        Some(Ok(kn)) => Some(kn),
        None => None,
    };
    if jobs == 0 || jobs > 256 {
        return usage("--jobs must be 1 to 256");
    }
    let list = sweep::shard_seeds(range.clone(), shard_kn);
    let tty = std::io::stderr().is_terminal();
    let ran = sweep::run_seeds(s, &list, jobs, stop_on_failure, |done, total, failed| {
        if tty {
            let width = 30;
            let filled = done * width / total.max(1);
            eprint!(
                "\r[{}{}] {done}/{total} seeds, {failed} failed",
                "#".repeat(filled),
                " ".repeat(width - filled)
            );
        }
    });
    if tty {
        eprintln!();
    }
    let (results, stopped) = match ran {
        Ok(r) => r,
        Err(e) => return usage(format!("{given}: {e}")),
    };
    let all = sweep::SweepResults {
        scenario: given.to_string(),
        seeds: format!("{}..{}", range.start, range.end),
        shard,
        stopped_early: stopped,
        results,
    };
    if let Some(path) = &out {
        let text = serde_json::to_string_pretty(&all).expect("results serialize");
        if let Err(e) = std::fs::write(path, text + "\n") {
            return usage(format!("cannot write {}: {e}", path.display()));
        }
    }
    if json {
        print_json(&all);
    } else {
        print_summary(given, &all);
    }
    if all.failures().next().is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn print_summary(given: &str, all: &sweep::SweepResults) {
    let failed: Vec<_> = all.failures().collect();
    let ops: usize = all.results.iter().map(|r| r.ops).sum();
    println!(
        "{} seeds {}{}: {} ran, {} failed, {} operations{}",
        all.scenario,
        all.seeds,
        all.shard
            .as_deref()
            .map(|s| format!(" (shard {s})"))
            .unwrap_or_default(),
        all.results.len(),
        failed.len(),
        ops,
        if all.stopped_early {
            ", stopped at the first failure"
        } else {
            ""
        }
    );
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

fn merge(files: Vec<std::path::PathBuf>, out: Option<std::path::PathBuf>) -> ExitCode {
    let mut parts = Vec::new();
    for f in &files {
        let name = f.display().to_string();
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => return usage(format!("cannot read {name}: {e}")),
        };
        match serde_json::from_str::<sweep::SweepResults>(&text) {
            Ok(p) => parts.push((name, p)),
            Err(e) => {
                return usage(format!(
                    "{name}: not the results of `tenure sweep --out` (line {}: {e})",
                    e.line()
                ))
            }
        }
    }
    let all = match sweep::merge(parts) {
        Ok(m) => m,
        Err(e) => return usage(e),
    };
    match out {
        Some(path) => {
            let text = serde_json::to_string_pretty(&all).expect("results serialize");
            if let Err(e) = std::fs::write(&path, text + "\n") {
                return usage(format!("cannot write {}: {e}", path.display()));
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

fn check(
    path: &std::path::Path,
    model: Option<ModelName>,
    format: FormatName,
    steps: Option<u64>,
    time_limit: Option<f64>,
    json: bool,
) -> ExitCode {
    let budget = match tenure_scenarios::check::budget(steps, time_limit) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("tenure: {e}");
            return ExitCode::from(2);
        }
    };
    let text = match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                eprintln!(
                    "tenure: {}: not UTF-8 text (byte {})",
                    path.display(),
                    e.utf8_error().valid_up_to()
                );
                return ExitCode::from(2);
            }
        },
        Err(e) => {
            eprintln!("tenure: cannot read {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let report = match tenure_scenarios::check::check_text(&text, model, format, budget) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tenure: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    if json {
        print_json(&report);
    } else {
        print!(
            "{}",
            tenure_scenarios::check::render(&path.display().to_string(), &report)
        );
    }
    ExitCode::from(report.exit_code())
}

fn print_json<T: serde::Serialize>(report: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(report).expect("reports serialize")
    );
}
