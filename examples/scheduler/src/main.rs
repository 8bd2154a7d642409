//! `scheduler-worlds`: tenure's command line on the scheduler's worlds, through one call.
//!
//! ```text
//! cargo run -p tenure-example-scheduler -- list
//! cargo run -p tenure-example-scheduler -- sweep scheduler-mistaken --seeds 1..21 --jobs 2
//! cargo run -p tenure-example-scheduler -- shrink scheduler-mistaken --seed 12 --out shrunk.json
//! ```

use std::process::ExitCode;
use tenure::cli::{self, Registry};
use tenure_example_scheduler::{config, world, Options};

fn main() -> ExitCode {
    cli::main(
        Registry::new()
            .world(
                "scheduler",
                "the singleton job scheduler under swarm faults",
                || world(config(), &Options::default()),
            )
            .world(
                "scheduler-mistaken",
                "the scheduler that advances its slot without the token's preconditions",
                || {
                    let opts = Options {
                        mistaken: true,
                        ..Options::default()
                    };
                    world(config(), &opts)
                },
            ),
    )
}
