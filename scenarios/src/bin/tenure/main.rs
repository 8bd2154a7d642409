//! `tenure`: list, run, replay and sweep seeded scenarios; merge sweep shards; shrink failing
//! seeds; measure margins; check histories. One file per command (cargo's layout); the output
//! helpers are here.
//!
//! Exit codes, for every command: 0 it held (or the command did its work), 1 a violation (or
//! a replay that differs), 2 bad input (the message names the problem; no file is touched),
//! 3 undecided (`check` within its budget). 141 when standard output's reader went away.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc: a run allocates and frees a small object for nearly every message, and
/// mimalloc's per-thread free lists make that about a quarter cheaper than glibc's malloc
/// (BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    () => { $crate::out(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::out(format_args!($($arg)*), true) };
}

macro_rules! print {
    ($($arg:tt)*) => { $crate::out(format_args!($($arg)*), false) };
}

mod bench;
mod check;
mod explore;
mod list;
mod load;
mod margin;
mod real;
mod run;
mod shrink;
mod sweep;

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
    List(list::Args),
    /// Runs one scenario with one seed, checks its history against every invariant and prints
    /// a summary. Exit 0: every invariant held; 1: a violation; 2: bad input.
    Run(run::RunArgs),
    /// Runs a seed again, exactly: prints the history's digest and, with `--expect`,
    /// compares it (exit 1 when it differs); `--trace` prints every event as it happens, in
    /// virtual time, with node names.
    Replay(run::ReplayArgs),
    /// Runs one seed of a scenario and writes what happened as one self-contained HTML page
    /// (a timeline per node of roles, beliefs against true time, grants, tokens, expiries and
    /// faults; the violations linked to their records; every key's operations) and, with
    /// `--shiviz`, a ShiViz log with a vector clock on every message. Prints the summary as
    /// `run` does. Exit 0: every invariant held; 1: a violation; 2: bad input.
    Report(run::ReportArgs),
    /// Runs many seeds of a scenario in parallel, prints every failing seed with a command
    /// that replays it, and writes the results as JSON (shards merge with `tenure merge`).
    /// Exit 0: every seed held; 1: some seed failed (or, with --check-determinism, ran
    /// differently twice); 2: bad input.
    Sweep(sweep::SweepArgs),
    /// Explores a scenario guided by coverage: keeps a corpus of inputs (a seed, the world it
    /// drew, its faults as carried out, its fault points) that reached coverage no input
    /// before had, mutates them as a fuzzer mutates its inputs, reports the coverage's growth
    /// and plateau, and stops at the first broken rule with the input written as a scenario
    /// file and the commands that replay and shrink it. Deterministic for a given `--seed`.
    /// Exit 0: the budget was spent and every rule held; 1: a rule broke; 2: bad input.
    Explore(explore::Args),
    /// Makes a failing seed small: its faults, as the run carried them out, become a written
    /// schedule; faults are removed while the same rule still breaks (delta debugging), the
    /// times left are rounded and the duration cut. Writes the minimal schedule as a scenario
    /// file and prints the command that replays it. Exit 0: shrunk (the file fails as the
    /// seed did); 2: bad input, or a seed that does not fail.
    Shrink(shrink::Args),
    /// Finds how much of one adversity a scenario takes: bisects the holders' true clock
    /// drift (`drift`), the length of the schedule's pauses (`pause`, ms) or a fixed delay on
    /// every message (`delay`, ms) to the smallest value at which some seed breaks a rule,
    /// with a failing seed on one side and the seeds all holding on the other, beside the
    /// bound the lease settings promise. Exit 0: searched; 2: bad input.
    Margin(margin::Args),
    /// Measures whole runs in one process: the raw madsim ping-pong (the simulator's own
    /// message rate), the `standard` scenario against it (virtual seconds per wall second,
    /// messages per second, their ratio), seeds per second on one and two threads, peak
    /// memory, and how a run's cost grows with agents, clients and virtual duration. Build
    /// with `--release`: a debug build's figures mean nothing. Exit 0: measured (targets met
    /// or not; see `targets`); 2: bad input.
    Bench(bench::Args),
    /// Merges the JSON results of sweep shards into one (printed, or written with `--out`),
    /// after proving that they cover the seed range exactly once, from one scenario and one
    /// build. Exit 0: every seed held; 1: some seed failed; 2: the shards do not fit together.
    Merge(sweep::MergeArgs),
    /// Checks a history file: a tenure history against every invariant, or any history
    /// (tenure, Jepsen EDN, Jepsen operations as JSON lines, jepsen.util log lines) for
    /// linearizability against a model. Exit 0: it held; 1: a violation; 2: bad input
    /// (including a file with nothing to check); 3: undecided within the budget.
    Check(check::Args),
    /// Runs one agent of a real cluster: over TCP to its peers and clients, its state in a
    /// data directory (fsync before anything is acknowledged). Stops cleanly on SIGTERM or
    /// Ctrl-C. Exit 0: stopped; 2: bad options, a data directory of another cluster, a
    /// corrupt log, a port in use.
    Agent(real::AgentArgs),
    /// Starts a local cluster of real agents in this process, on 127.0.0.1, and prints the
    /// `tenure://` address to open it with; runs until SIGTERM or Ctrl-C (or `--for-s`).
    Up(real::UpArgs),
    /// Asks every agent of a cluster, alone, whether it leads, and judges it as
    /// `AreAgentsHealthy` does. Exit 0: healthy; 1: not; 2: a malformed address.
    Status(real::StatusArgs),
    /// Makes a local CA and certificates for a cluster's agents and a client (rcgen), for
    /// mutual TLS: `tenure agent --tls DIR`, `tenure://...?tls=DIR`. Exit 0: written; 2: a
    /// file already there (nothing is overwritten) or a directory that cannot be made.
    Certs(real::CertsArgs),
    /// Measures a real cluster: KV writes, linearizable reads and lock acquire+release
    /// cycles by concurrent clients (16 by default), each for a while, with throughput and
    /// p50/p99 latency; without an address, on a 3-agent cluster it starts on 127.0.0.1
    /// (fsync on, mutual TLS). A benchmark: build with `--release`. Exit 0: measured.
    Load(load::Args),
}

/// Exit status 2 with a message.
fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("tenure: {message}");
    ExitCode::from(2)
}

fn print_json<T: serde::Serialize>(report: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(report).expect("reports serialize")
    );
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::List(a) => a.run(),
        Command::Run(a) => a.run(),
        Command::Replay(a) => a.run(),
        Command::Report(a) => a.run(),
        Command::Sweep(a) => a.run(),
        Command::Explore(a) => a.run(),
        Command::Shrink(a) => a.run(),
        Command::Margin(a) => a.run(),
        Command::Bench(a) => a.run(),
        Command::Merge(a) => a.run(),
        Command::Check(a) => a.run(),
        Command::Agent(a) => a.run(),
        Command::Up(a) => a.run(),
        Command::Status(a) => a.run(),
        Command::Certs(a) => a.run(),
        Command::Load(a) => a.run(),
    }
}
