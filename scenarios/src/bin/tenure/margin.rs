//! `tenure margin`: how much of one adversity a scenario takes, bisected.

use crate::usage;
use std::process::ExitCode;
use tenure_scenarios::sweep;

#[derive(clap::Args)]
pub struct Args {
    /// A scenario's name or file.
    scenario: String,
    /// drift, pause or delay.
    #[arg(long)]
    param: String,
    /// The seeds run at each value: `A..B` (B not included), at most 10000.
    #[arg(long, default_value = "1..9")]
    seeds: String,
    /// Seeds run at once, 1 to 256.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// The range searched, `LO..HI` (default: drift 0..0.45; pause 0..3 TTLs, ms;
    /// delay 0..50 ms, past which no leader lasts with the default election timeout).
    #[arg(long, value_name = "LO..HI")]
    range: Option<String>,
    /// Stop when the two sides are this close (default: drift 0.0005, pause 10, delay 2);
    /// the search stops after 60 halvings whatever this says.
    #[arg(long)]
    resolution: Option<f64>,
    /// Only violations of this rule count: its id (`S1`, exactly: not S10) or its whole name.
    #[arg(long)]
    rule: Option<String>,
    /// Plants a bug in the built-in actors (repeatable; `tenure list --bugs` names them).
    #[arg(long = "bug", value_name = "NAME")]
    bugs: Vec<String>,
    /// Prints the result as JSON.
    #[arg(long)]
    json: bool,
}

impl Args {
    pub fn run(self) -> ExitCode {
        margin(MarginHow {
            given: &self.scenario,
            param: &self.param,
            seeds: &self.seeds,
            jobs: self.jobs,
            range: self.range.as_deref(),
            resolution: self.resolution,
            rule: self.rule.as_deref(),
            bugs: &self.bugs,
            json: self.json,
        })
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
    if how.rule.is_some_and(|r| r.trim().is_empty()) {
        return usage("--rule needs the start of a rule's name (`S1`), not an empty text");
    }
    let param = match Param::parse(how.param) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let (s, given) = match crate::run::scenario_with(how.given, None, how.bugs) {
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
    if how.jobs == 0 || how.jobs > crate::sweep::MAX_JOBS {
        return usage(format!("--jobs must be 1 to {}", crate::sweep::MAX_JOBS));
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
    let top = margin::max_value(param, &config);
    if hi > top {
        return usage(format!(
            "--range: {} reaches past {top} ms, the most a {} can be in this scenario (a pause no longer than the run, a delay at most a minute)",
            how.range.unwrap_or(""),
            how.param
        ));
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
