//! `tenure check`: verdicts on history files, several in one process.

use crate::print_json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tenure_scenarios::check::{self, FormatName, ModelName};
use tenure_scenarios::files;

#[derive(clap::Args)]
pub struct Args {
    /// History files; a directory stands for the `history.edn` in it (a Jepsen store
    /// directory). Each gets its own verdict; the exit code is the worst (2, then 1, then 3).
    #[arg(required = true)]
    history: Vec<PathBuf>,
    /// Check linearizability against this model (default for non-tenure files: register).
    #[arg(long, value_enum)]
    model: Option<ModelName>,
    /// The file's format.
    #[arg(long, value_enum, default_value = "auto")]
    format: FormatName,
    /// Most search steps before answering "unknown" (default 50 million; the search's
    /// memory is bounded whatever this says).
    #[arg(long)]
    steps: Option<u64>,
    /// Most wall-clock seconds per file before answering "unknown" (at most a week).
    #[arg(long)]
    time_limit: Option<f64>,
    /// What a register or key never written reads as, for the register, kv and multi-register models: an
    /// EDN value (`0`, '"x"', `nil`, the default: no value); `--initial ''` is the empty
    /// string, the convention of porcupine's key-value histories.
    #[arg(long, value_name = "VALUE")]
    initial: Option<String>,
    /// Files checked at once, each on its own thread (default: one per core, at most 256);
    /// the reports come in the files' order whatever finishes first.
    #[arg(long)]
    jobs: Option<usize>,
    /// Prints the report as JSON (an array of reports for several files).
    #[arg(long)]
    json: bool,
}

/// A directory given as a history: Jepsen's store directory keeps it as `history.edn`.
fn history_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        let inside = path.join("history.edn");
        if inside.is_file() {
            return inside;
        }
    }
    path.to_path_buf()
}

impl Args {
    pub fn run(self) -> ExitCode {
        let budget = match check::budget(self.steps, self.time_limit) {
            Ok(b) => b,
            Err(e) => return crate::usage(e),
        };
        let opts = check::CheckOptions {
            model: self.model,
            format: self.format,
            budget,
            initial: self.initial.clone(),
        };
        if let Some(t) = &self.initial {
            if let Err(e) = check::initial_value(t) {
                return crate::usage(e);
            }
        }
        let jobs = match self.jobs {
            Some(j) if !(1..=crate::sweep::MAX_JOBS).contains(&j) => {
                return crate::usage(format!("--jobs must be 1 to {}", crate::sweep::MAX_JOBS))
            }
            Some(j) => j,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
        .min(self.history.len());
        // Each file's outcome, in the files' order.
        let done = tenure_sim::sweep(0..self.history.len() as u64, jobs, |i| {
            let path = history_file(&self.history[i as usize]);
            let outcome = files::read_text(&path, "history", files::HISTORY_LIMIT)
                .and_then(|text| check::check_text(&text, &opts));
            (path.display().to_string(), outcome)
        });
        let mut worst = 0u8;
        let mut reports = Vec::new();
        for (_, (shown, outcome)) in done {
            let code = match outcome {
                Ok(report) => {
                    let code = report.exit_code();
                    if self.json {
                        reports.push(serde_json::json!({"file": shown, "report": report}));
                    } else {
                        print!("{}", check::render(&shown, &report));
                    }
                    code
                }
                Err(e) => {
                    eprintln!("tenure: {shown}: {e}");
                    if self.json {
                        reports.push(serde_json::json!({"file": shown, "error": e}));
                    }
                    2
                }
            };
            worst = worse(worst, code);
        }
        if self.json {
            match reports.len() {
                1 => {
                    let r = reports.pop().expect("one report");
                    print_json(r.get("report").unwrap_or(&r));
                }
                _ => print_json(&reports),
            }
        }
        ExitCode::from(worst)
    }
}

/// The worse of two exit codes: bad input, then a violation, then undecided, then held.
fn worse(a: u8, b: u8) -> u8 {
    let rank = |c: u8| match c {
        2 => 3,
        1 => 2,
        3 => 1,
        _ => 0,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}
