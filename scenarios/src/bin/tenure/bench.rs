//! `tenure bench`: whole runs measured in one process.

use crate::usage;
use std::process::ExitCode;
use tenure_scenarios::bench;

/// Most seeds `--seeds` takes (a standard seed runs in about 5 ms: this is a few minutes).
const MAX_SEEDS: u64 = 100_000;

#[derive(clap::Args)]
pub struct Args {
    /// Prints the figures as one JSON object.
    #[arg(long)]
    json: bool,
    /// A few seconds instead of about a minute: fewer seeds, up to 100 clients.
    #[arg(long)]
    quick: bool,
    /// Seeds of the standard scenario, 1 to 100000 (default 20; 10 with --quick).
    #[arg(long)]
    seeds: Option<u64>,
}

impl Args {
    pub fn run(self) -> ExitCode {
        let mut opts = if self.quick {
            bench::Options::quick()
        } else {
            bench::Options::full()
        };
        if let Some(n) = self.seeds {
            if !(1..=MAX_SEEDS).contains(&n) {
                return usage(format!("--seeds must be 1 to {MAX_SEEDS}, not {n}"));
            }
            opts.seeds = n;
        }
        match bench::run(opts, |what| eprintln!("bench: {what}")) {
            Ok(f) => {
                if self.json {
                    crate::print_json(&f);
                } else {
                    print!("{}", bench::show(&f));
                }
                ExitCode::SUCCESS
            }
            Err(e) => usage(e),
        }
    }
}
