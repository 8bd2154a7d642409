//! `cargo test` for a user's world: [`check`] runs many seeds of a [`World`], and on a failure
//! shrinks it and says how to replay it; [`assert_world`] does the same inside a `#[test]`.
//!
//! The environment steers it, so a test needs no change to run longer or to replay:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `TENURE_SEED=N` | run seed N only (a replay) | |
//! | `TENURE_SEEDS=A..B` or `=N` | the seeds (`N`: `1..N+1`) | the test's count |
//! | `TENURE_SHARD=K/N` or `job/N` | run shard K of N of them (`job`: Kubernetes' `JOB_COMPLETION_INDEX` + 1) | all |
//! | `TENURE_JOBS=N` | seeds at a time (threads) | the machine's cores, at most 4 |
//! | `TENURE_SCHEDULE=FILE` | replace the world's faults by this schedule (JSON, as a failure writes it) | |
//! | `TENURE_SHRINK_RUNS=N` | runs the shrinker may make (0: do not shrink) | 200 |
//! | `TENURE_CASES=N` | proptest cases, for tests that draw cases ([`cases`]) | the test's count |
//! | `TENURE_OUT=DIR` | where a failure's shrunk schedule is written | the system's temp dir |

use crate::shrink::{shrink, Shrunk};
use crate::sweep::{parse_seeds, parse_shard, SeedSet};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use tenure_sim::nemesis::Schedule;
use tenure_sim::run::{Faults, Report};
use tenure_sim::world::World;

/// How a run of many seeds is steered (read from the environment by [`Settings::from_env`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub seeds: SeedSet,
    pub jobs: usize,
    pub schedule: Option<PathBuf>,
    pub shrink_runs: usize,
    pub out: PathBuf,
}

/// What a passing run of many seeds found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub seeds: u64,
    /// Per `sometimes` point: how many seeds reached it.
    pub coverage: BTreeMap<String, u64>,
    /// Warnings (S11, undecided checks) over all seeds.
    pub warnings: usize,
}

impl Summary {
    /// The points no seed reached: the faults explored nothing there.
    pub fn never_reached(&self) -> Vec<&str> {
        self.coverage
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(p, _)| p.as_str())
            .collect()
    }

    /// One line per point: `  12/50 seeds  became leader`.
    pub fn coverage_table(&self) -> String {
        let mut out = String::new();
        for (point, n) in &self.coverage {
            let flag = if *n == 0 { "  <- never reached" } else { "" };
            let _ = writeln!(out, "  {n:>6}/{} seeds  {point}{flag}", self.seeds);
        }
        out
    }
}

/// A seed that broke a rule (or whose run broke), shrunk when it could be.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    /// The failing run's report (`None` if the run itself broke: a panic, the time limit).
    pub report: Option<Report>,
    pub shrunk: Option<Shrunk<World>>,
    /// Where the shrunk schedule was written.
    pub schedule_file: Option<PathBuf>,
    /// Everything a person needs: what broke, the shrunk faults, the replay command.
    pub message: String,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn number(name: &str, text: &str, max: u64) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!("{name}={text:?}: must be a number from 0 to {max}")),
    }
}

impl Settings {
    /// The settings from the environment, `default_seeds` seeds (`1..=default_seeds`) unless
    /// it says otherwise. A variable that does not parse is an error naming it.
    pub fn from_env(default_seeds: u64) -> Result<Settings, String> {
        let range = match (env("TENURE_SEED"), env("TENURE_SEEDS")) {
            (Some(_), Some(_)) => {
                return Err("TENURE_SEED and TENURE_SEEDS are both set: give one".into())
            }
            (Some(s), None) => {
                let seed = number("TENURE_SEED", &s, u64::MAX - 1)?;
                seed..seed + 1
            }
            (None, Some(s)) if !s.contains("..") => {
                let n = number("TENURE_SEEDS", &s, 1_000_000_000)?;
                if n == 0 {
                    return Err("TENURE_SEEDS=0: no seed to run".into());
                }
                1..n + 1
            }
            (None, Some(s)) => parse_seeds(&s).map_err(|e| format!("TENURE_SEEDS: {e}"))?,
            (None, None) => 1..default_seeds.max(1) + 1,
        };
        let shard = match env("TENURE_SHARD") {
            Some(s) => Some(parse_shard(&s).map_err(|e| format!("TENURE_SHARD: {e}"))?),
            None => None,
        };
        let jobs = match env("TENURE_JOBS") {
            Some(j) => match number("TENURE_JOBS", &j, 256)? {
                0 => return Err("TENURE_JOBS=0: at least one".into()),
                n => n as usize,
            },
            None => std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
        };
        let shrink_runs = match env("TENURE_SHRINK_RUNS") {
            Some(n) => number("TENURE_SHRINK_RUNS", &n, 100_000)? as usize,
            None => 200,
        };
        Ok(Settings {
            seeds: SeedSet { range, shard },
            jobs,
            schedule: env("TENURE_SCHEDULE").map(PathBuf::from),
            shrink_runs,
            out: env("TENURE_OUT")
                .map(PathBuf::from)
                .unwrap_or_else(|| std::env::temp_dir().join("tenure")),
        })
    }
}

/// Proptest cases: `TENURE_CASES`, else `default`.
pub fn cases(default: u32) -> Result<u32, String> {
    match env("TENURE_CASES") {
        Some(c) => match number("TENURE_CASES", &c, 1_000_000)? {
            0 => Err("TENURE_CASES=0: at least one".into()),
            n => Ok(n as u32),
        },
        None => Ok(default),
    }
}

/// A failure's faults as [`check`] writes them: the run's duration and its written schedule.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleFile {
    pub duration_ms: u64,
    pub steps: Vec<tenure_sim::nemesis::Step>,
}

/// `world` with its duration and faults replaced by those in `file`: a [`ScheduleFile`] in
/// JSON (as [`check`] writes a failure's) or TOML (`duration_ms = 6000` and
/// `[[steps]]` tables), where a process fault may name a part by name
/// (`process = "scheduler-3"`) as well as by number.
pub fn with_schedule_file(world: &World, file: &std::path::Path) -> Result<World, String> {
    let text = crate::files::read_text(file, "schedule", crate::files::SCENARIO_LIMIT)?;
    let toml = file.extension().is_some_and(|e| e == "toml");
    let f = read_schedule(world, &text, toml).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut config = world.config().clone();
    config.duration = std::time::Duration::from_millis(f.duration_ms);
    config.faults = Faults::Schedule(Schedule { steps: f.steps });
    world
        .with_config(config)
        .map_err(|e| format!("{}: {e}", file.display()))
}

/// A schedule file's text (TOML if `toml`, else JSON), its parts' names resolved in `world`.
pub fn read_schedule(world: &World, text: &str, toml: bool) -> Result<ScheduleFile, String> {
    let mut v: serde_json::Value = if toml {
        let t: toml::Value = toml::from_str(text).map_err(|e| format!("not TOML: {e}"))?;
        serde_json::to_value(t).map_err(|e| e.to_string())?
    } else {
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?
    };
    if let Some(steps) = v.get_mut("steps").and_then(|s| s.as_array_mut()) {
        for (i, step) in steps.iter_mut().enumerate() {
            let Some(process) = step.pointer_mut("/fault/process") else {
                continue;
            };
            if let Some(name) = process.as_str() {
                let id = world.process_id(name).ok_or_else(|| {
                    format!(
                        "step {i}: no part is named {name:?} (parts: {})",
                        world.part_names().join(", ")
                    )
                })?;
                *process = serde_json::json!(id);
            }
        }
    }
    serde_json::from_value(v).map_err(|e| format!("not a schedule file: {e}"))
}

/// `f` as JSON with the processes that are parts named by name.
pub fn schedule_text(world: &World, f: &ScheduleFile) -> String {
    let mut v = serde_json::to_value(f).expect("schedules serialize");
    if let Some(steps) = v.get_mut("steps").and_then(|s| s.as_array_mut()) {
        for step in steps {
            if let Some(process) = step.pointer_mut("/fault/process") {
                if let Some(name) = process.as_u64().and_then(|p| world.part_of(p)) {
                    *process = serde_json::json!(name);
                }
            }
        }
    }
    serde_json::to_string_pretty(&v).expect("values serialize")
}

/// Runs the seeds `settings` names of `world` (the test `test`): a [`Summary`] if every seed
/// holds, else the first failing seed, shrunk, with its replay command.
pub fn check(test: &str, world: &World, settings: &Settings) -> Result<Summary, Box<Failure>> {
    let world = match &settings.schedule {
        Some(file) => with_schedule_file(world, file).map_err(|e| failure_of(0, None, e))?,
        None => world.clone(),
    };
    let set = &settings.seeds;
    // Each seed keeps only what the summary needs; a failing one keeps its report.
    enum Seen {
        Held(BTreeMap<String, u64>, usize),
        Broke(Box<Report>),
        RunBroke(String),
    }
    let results = tenure_sim::sweep(0..set.len(), settings.jobs, |i| {
        let seed = set.get(i).expect("i < len");
        match world.run(seed) {
            Ok(r) if r.ok() => Seen::Held(r.sometimes, r.warnings.len()),
            Ok(r) => Seen::Broke(Box::new(r)),
            Err(e) => Seen::RunBroke(e.to_string()),
        }
    });
    let mut summary = Summary {
        seeds: set.len(),
        coverage: world
            .sometimes_points()
            .iter()
            .map(|p| (p.clone(), 0))
            .collect(),
        warnings: 0,
    };
    for (i, seen) in results {
        let seed = set.get(i).expect("i < len");
        match seen {
            Seen::Held(sometimes, warnings) => {
                summary.warnings += warnings;
                for (point, n) in sometimes {
                    *summary.coverage.entry(point).or_default() += u64::from(n > 0);
                }
            }
            Seen::Broke(report) => {
                return Err(Box::new(failed(test, &world, seed, *report, settings)))
            }
            Seen::RunBroke(e) => return Err(failure_of(seed, None, e)),
        }
    }
    Ok(summary)
}

fn failure_of(seed: u64, report: Option<Report>, message: String) -> Box<Failure> {
    Box::new(Failure {
        seed,
        report,
        shrunk: None,
        schedule_file: None,
        message,
    })
}

/// The failure of `seed`: shrunk (if allowed), its schedule written, the replay command.
fn failed(test: &str, world: &World, seed: u64, report: Report, settings: &Settings) -> Failure {
    let mut msg = format!("seed {seed} of {test} breaks a rule:\n");
    for v in &report.violations {
        let _ = writeln!(msg, "  {}: {}", v.rule, v.message);
    }
    let rule = report.violations[0].rule.name();
    let shrunk = if settings.shrink_runs > 0 {
        match shrink(world, seed, Some(&rule), settings.shrink_runs, |_| {}) {
            Ok(s) => Some(s),
            Err(e) => {
                let _ = writeln!(msg, "(not shrunk: {e})");
                None
            }
        }
    } else {
        None
    };
    let schedule = match &shrunk {
        Some(s) => match &s.scenario.config().faults {
            Faults::Schedule(sch) => sch.clone(),
            _ => report.schedule.clone(),
        },
        None => Schedule {
            steps: report
                .schedule
                .steps
                .iter()
                .filter(|s| s.at_ms < world.config().duration.as_millis() as u64)
                .cloned()
                .collect(),
        },
    };
    if let Some(s) = &shrunk {
        let _ = writeln!(
            msg,
            "shrunk from {} fault steps to {} in {} runs ({} ms):",
            s.steps_before, s.steps_after, s.runs, s.duration_ms_after
        );
    } else {
        let _ = writeln!(msg, "its faults:");
    }
    for st in &schedule.steps {
        let part = st
            .fault
            .process()
            .and_then(|p| world.part_of(p))
            .map_or(String::new(), |n| format!(" ({n})"));
        let _ = writeln!(msg, "  at {:>6} ms  {}{part}", st.at_ms, st.fault);
    }
    let duration_ms = shrunk
        .as_ref()
        .map_or(world.config().duration.as_millis() as u64, |s| {
            s.duration_ms_after
        });
    let text = schedule_text(
        world,
        &ScheduleFile {
            duration_ms,
            steps: schedule.steps.clone(),
        },
    );
    let file = write_schedule(settings, test, seed, &text);
    let replay = match &file {
        Ok(path) => format!(
            "TENURE_SEED={seed} TENURE_SCHEDULE={} cargo test {test}",
            path.display()
        ),
        Err(e) => {
            let _ = writeln!(msg, "(the schedule could not be written: {e})");
            format!("TENURE_SEED={seed} cargo test {test}")
        }
    };
    let _ = writeln!(msg, "replay: {replay}");
    Failure {
        seed,
        report: Some(report),
        shrunk,
        schedule_file: file.ok(),
        message: msg,
    }
}

fn write_schedule(
    settings: &Settings,
    test: &str,
    seed: u64,
    text: &str,
) -> Result<PathBuf, String> {
    let safe: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    std::fs::create_dir_all(&settings.out)
        .map_err(|e| format!("{}: {e}", settings.out.display()))?;
    let path = settings.out.join(format!("{safe}-seed-{seed}.json"));
    let mut plan = crate::files::Outputs::new();
    plan.add("schedule", &path)?;
    plan.stage(&path, text.as_bytes())?;
    plan.commit()?;
    Ok(path)
}

/// [`check`] with the settings from the environment (`default_seeds` unless it says
/// otherwise), for a `#[test]`: panics with the failure's message (what broke, the shrunk
/// faults, the replay command), or with the environment's mistake. Prints the coverage of
/// the `sometimes` points.
pub fn assert_world(test: &str, world: &World, default_seeds: u64) -> Summary {
    let settings = match Settings::from_env(default_seeds) {
        Ok(s) => s,
        Err(e) => panic!("{test}: {e}"),
    };
    match check(test, world, &settings) {
        Ok(summary) => {
            if !summary.coverage.is_empty() {
                println!(
                    "{test}: {} seeds hold; sometimes points:\n{}",
                    summary.seeds,
                    summary.coverage_table()
                );
            }
            summary
        }
        Err(f) => panic!("{}", f.message),
    }
}
