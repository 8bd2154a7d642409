//! `tenure`: list and run seeded scenarios.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use std::time::Duration;
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("reports serialize")
                );
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
