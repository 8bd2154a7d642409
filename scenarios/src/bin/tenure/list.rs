//! `tenure list`: the scenarios, the planted bugs, or the fault points inside the system.

use crate::print_json;
use std::process::ExitCode;
use tenure_scenarios::{library, SCENARIOS};

#[derive(clap::Args)]
pub struct Args {
    /// Prints them as JSON, with their descriptions and the invariants they watch.
    #[arg(long)]
    json: bool,
    /// Lists the planted bugs instead (`--bug NAME` switches one on), with the invariant
    /// each breaks and a scenario that finds it.
    #[arg(long, conflicts_with = "fault_points")]
    bugs: bool,
    /// Lists the fault points inside the system instead (a scenario's
    /// `settings.fault_points` names them), with how often each fires and what it injects.
    #[arg(long)]
    fault_points: bool,
}

impl Args {
    pub fn run(self) -> ExitCode {
        if self.bugs {
            list_bugs(self.json)
        } else if self.fault_points {
            list_points(self.json)
        } else {
            list(self.json)
        }
    }
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

fn list_bugs(json: bool) -> ExitCode {
    use tenure_sim::Bug;
    if json {
        let all: Vec<serde_json::Value> = Bug::ALL
            .iter()
            .map(|b| {
                serde_json::json!({
                    "name": b.name(), "invariant": b.rule_names(), "invariants": b.rules(),
                    "scenario": tenure_scenarios::library::finds(*b),
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
                b.rule_names(),
                tenure_scenarios::library::finds(*b)
            );
            println!("{:<30} {}", "", b.about());
        }
    }
    ExitCode::SUCCESS
}

fn list_points(json: bool) -> ExitCode {
    use tenure_core::buggify::POINTS;
    if json {
        let all: Vec<serde_json::Value> = POINTS
            .iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.name, "about": p.about,
                    "fires_per_million_hits": p.per_million,
                    "min_ms": p.min_ms, "max_ms": p.max_ms,
                })
            })
            .collect();
        print_json(&all);
    } else {
        for p in POINTS {
            println!(
                "{:<26} {:>6.2}% of hits  {}",
                p.name,
                p.per_million as f64 / 10_000.0,
                p.about
            );
        }
    }
    ExitCode::SUCCESS
}
