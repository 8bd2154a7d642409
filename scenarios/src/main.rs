//! `tenure`: list and run seeded scenarios.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use std::time::Duration;
use tenure_scenarios::check::{FormatName, ModelName};
use tenure_scenarios::{run, Params, ScenarioError, SCENARIOS};

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
    /// Lists the built-in scenarios.
    List,
    /// Runs one scenario with one seed, checks its history and prints a report.
    Run {
        /// The scenario's name (see `tenure list`).
        scenario: String,
        /// The seed that fixes every choice of the run.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Number of clients.
        #[arg(long, default_value_t = Params::default().clients)]
        clients: usize,
        /// Virtual duration of the workload, in seconds.
        #[arg(long, default_value_t = 60)]
        duration_s: u64,
        /// Lock TTL, in milliseconds.
        #[arg(long, default_value_t = 2000)]
        ttl_ms: u64,
        /// Writes the history (JSON lines) to this file.
        #[arg(long)]
        history: Option<std::path::PathBuf>,
        /// Prints the report as JSON.
        #[arg(long)]
        json: bool,
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
        Command::List => {
            for (name, about) in SCENARIOS {
                println!("{name:<18} {about}");
            }
            ExitCode::SUCCESS
        }
        Command::Run {
            scenario,
            seed,
            clients,
            duration_s,
            ttl_ms,
            history,
            json,
        } => {
            let params = Params {
                clients,
                duration: Duration::from_secs(duration_s),
                lock_ttl: Duration::from_millis(ttl_ms),
            };
            let report = match run(&scenario, seed, params) {
                Ok(r) => r,
                Err(e @ (ScenarioError::Unknown(_) | ScenarioError::BadParam(_))) => {
                    eprintln!("tenure: {e}");
                    return ExitCode::from(2);
                }
                Err(e) => {
                    eprintln!("tenure: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if let Some(path) = history {
                if let Err(e) = std::fs::write(&path, report.history_jsonl()) {
                    eprintln!(
                        "tenure: cannot write the history to {}: {e}",
                        path.display()
                    );
                    return ExitCode::from(2);
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
