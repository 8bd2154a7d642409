//! `tenure explore`: coverage-guided exploration of a scenario (the library's
//! [`tenure_scenarios::explore`]), with a corpus kept on disk between sessions.

use crate::usage;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tenure_scenarios::explore::{Explorer, Input, Options, Outcome};
use tenure_scenarios::files::Outputs;
use tenure_scenarios::library;

#[derive(clap::Args)]
pub struct Args {
    /// A scenario's name or file (`swarm-world`, the generic one, draws the most).
    scenario: String,
    /// Runs at most (1 to 1,000,000).
    #[arg(long, default_value_t = 2_000)]
    budget: usize,
    /// The explorer's seed: the same seed, scenario and build explore the same inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Runs at once (threads), 1 to 256; does not change what is explored.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Plants a bug in the built-in actors (repeatable; `tenure list --bugs` names them).
    #[arg(long = "bug", value_name = "NAME")]
    bugs: Vec<String>,
    /// A directory that keeps the corpus: read at the start (each entry run again to take its
    /// coverage in), the new entries written to it at the end.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Where to write the input that broke a rule, as a scenario file (default
    /// `tenure-explore-<scenario>-found.toml`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// No guidance: every input fresh from the scenario (plain swarm, to compare with).
    #[arg(long)]
    blind: bool,
}

impl Args {
    pub fn run(self) -> ExitCode {
        if self.budget == 0 || self.budget > 1_000_000 {
            return usage("--budget must be 1 to 1000000 runs");
        }
        if self.jobs == 0 || self.jobs > crate::sweep::MAX_JOBS {
            return usage("--jobs must be 1 to 256");
        }
        let (s, given) = match crate::run::scenario_with(&self.scenario, None, &self.bugs) {
            Ok(s) => s,
            Err(e) => return usage(e),
        };
        let path = self
            .out
            .clone()
            .unwrap_or_else(|| format!("tenure-explore-{}-found.toml", s.name).into());
        let mut plan = Outputs::new();
        if let Some(input) = tenure_scenarios::scenario_file(&self.scenario) {
            plan.input(input, "scenario file");
        }
        if let Err(e) = plan.add("--out", &path) {
            return usage(e);
        }
        let loaded = match self.corpus.as_deref().map(read_corpus).transpose() {
            Ok(l) => l.unwrap_or_default(),
            Err(e) => return usage(e),
        };
        let options = Options {
            budget: self.budget,
            seed: self.seed,
            jobs: self.jobs,
            blind: self.blind,
        };
        let mut ex = match Explorer::new(s.clone(), options) {
            Ok(e) => e,
            Err(e) => return usage(format!("{given}: {e}")),
        };
        for (file, input) in loaded.iter() {
            if let Err(e) = ex.seed_corpus(input.clone()) {
                return usage(format!("corpus entry {}: {e}", file.display()));
            }
        }
        let from_disk = ex.corpus.len();
        if !loaded.is_empty() {
            println!(
                "corpus     {} entries read from {}, {} of them reach coverage of their own ({} features)",
                loaded.len(),
                self.corpus.as_deref().map_or(String::new(), |p| p.display().to_string()),
                from_disk,
                ex.coverage.len()
            );
        }
        let mut next_report = 8;
        let outcome = ex.explore(|p| {
            if p.runs >= next_report || p.runs == self.budget {
                println!(
                    "run {:>7}  coverage {:>6} features  corpus {:>5}  last new at run {}",
                    p.runs, p.coverage, p.corpus, p.last_new
                );
                while next_report <= p.runs {
                    next_report *= 2;
                }
            }
        });
        if let Some(dir) = &self.corpus {
            if let Err(e) = write_corpus(dir, &ex, from_disk) {
                return usage(e);
            }
        }
        match outcome {
            Outcome::Held => {
                let plateau = ex.runs - ex.last_new;
                println!(
                    "{given}: {} runs, no rule broke; coverage {} features, corpus {} inputs",
                    ex.runs,
                    ex.coverage.len(),
                    ex.corpus.len()
                );
                println!(
                    "plateau    the last {plateau} runs reached nothing new (the last new coverage at run {})",
                    ex.last_new
                );
                ExitCode::SUCCESS
            }
            Outcome::Found {
                input,
                run,
                report,
                error,
            } => {
                let what = match (&error, report.as_ref().and_then(|r| r.violations.first())) {
                    (Some(e), _) => format!("the run broke off: {e}"),
                    (None, Some(v)) => v.to_string(),
                    (None, None) => "no violation recorded".into(),
                };
                println!(
                    "found      at run {run} (coverage {} features, corpus {} inputs): {what}",
                    ex.coverage.len(),
                    ex.corpus.len()
                );
                println!("input      seed {}, {}", input.seed, input.origin);
                let mut found = input.scenario.clone();
                found.name = format!("{}-explored", s.name);
                found.about = format!(
                    "found by `tenure explore {given} --seed {}` at run {run}",
                    self.seed
                );
                found.description = format!(
                    "An input `tenure explore` made ({}) that breaks a rule with seed {}: {what}",
                    input.origin, input.seed
                );
                let text = match library::to_toml(&found) {
                    Ok(t) => t,
                    Err(e) => return usage(format!("cannot write the input as TOML: {e}")),
                };
                if let Err(e) = plan
                    .stage(&path, text.as_bytes())
                    .and_then(|()| plan.commit().map(drop))
                {
                    return usage(e);
                }
                println!("wrote      {}", path.display());
                let digest = report
                    .as_ref()
                    .map_or(String::new(), |r| format!(" --expect {}", r.digest));
                println!(
                    "replay     tenure replay {} --seed {}{digest}",
                    path.display(),
                    input.seed
                );
                println!(
                    "shrink     tenure shrink {} --seed {}",
                    path.display(),
                    input.seed
                );
                ExitCode::FAILURE
            }
        }
    }
}

/// The name of corpus entry `n` with `seed`.
fn entry_name(n: usize, seed: u64) -> String {
    format!("entry-{n:06}-seed-{seed}.toml")
}

/// Reads a corpus directory: its `entry-NNNNNN-seed-S.toml` files, in name order. A
/// directory that does not exist yet is an empty corpus (created when written).
fn read_corpus(dir: &Path) -> Result<Vec<(PathBuf, Input)>, String> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("--corpus {}: {e}", dir.display())),
        Ok(m) if !m.is_dir() => {
            return Err(format!(
                "--corpus {}: not a directory (a corpus is a directory of entry-*.toml files)",
                dir.display()
            ))
        }
        Ok(_) => {}
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("--corpus {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("entry-") && n.ends_with(".toml"))
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let seed = name
            .trim_end_matches(".toml")
            .rsplit_once("-seed-")
            .and_then(|(_, s)| s.parse::<u64>().ok())
            .ok_or_else(|| {
                format!(
                    "corpus entry {}: its name does not end in -seed-<number>.toml",
                    f.display()
                )
            })?;
        let text = tenure_scenarios::files::read_text(&f, "corpus entry", 1 << 20)?;
        let scenario = library::parse(&text, &f.display().to_string())?;
        out.push((
            f.clone(),
            Input {
                scenario,
                seed,
                origin: format!("corpus file {name}"),
            },
        ));
    }
    Ok(out)
}

/// Writes the entries found in this session (those after the first `from_disk`).
fn write_corpus(dir: &Path, ex: &Explorer, from_disk: usize) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("--corpus {}: {e}", dir.display()))?;
    let existing = std::fs::read_dir(dir)
        .map_err(|e| format!("--corpus {}: {e}", dir.display()))?
        .count();
    for (i, e) in ex.corpus.iter().enumerate().skip(from_disk) {
        let path = dir.join(entry_name(existing + i - from_disk + 1, e.input.seed));
        let mut s = e.input.scenario.clone();
        s.about = format!(
            "corpus entry: {} new features at run {}",
            e.new_features, e.run
        );
        s.description = format!("Made by `tenure explore` ({}).", e.input.origin);
        let text = library::to_toml(&s).map_err(|e| format!("corpus entry: {e}"))?;
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
