//! `tenure margin`: how much of one adversity a scenario takes before its rules break. One
//! parameter (the holders' true clock drift, the length of the scenario's pauses, or a fixed
//! delay on every message) is bisected between a value at which every seed of a range holds
//! and one at which some seed breaks a rule, and the result is set beside the bound the lease
//! settings promise.

use crate::library::Scenario;
use serde::Serialize;
use std::ops::Range;
use tenure_sim::nemesis::{Fault, Step};
use tenure_sim::RunConfig;

/// The adversity bisected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Param {
    /// The holders' clock drift: every holder's clock runs slow by `x`.
    Drift,
    /// How long each pause of the scenario's schedule lasts (ms): its resume is moved to
    /// `x` after it.
    Pause,
    /// A fixed delay on every message (ms), from the start.
    Delay,
}

impl Param {
    pub fn parse(text: &str) -> Result<Param, String> {
        match text {
            "drift" => Ok(Param::Drift),
            "pause" => Ok(Param::Pause),
            "delay" => Ok(Param::Delay),
            other => Err(format!(
                "unknown parameter {other:?}: expected drift, pause or delay"
            )),
        }
    }

    /// The range searched when none is given, and the resolution the bisection stops at.
    pub fn defaults(self, config: &RunConfig) -> (f64, f64, f64) {
        let d = config.lock_ttl.as_millis() as f64;
        match self {
            Param::Drift => (0.0, 0.45, 0.0005),
            Param::Pause => (0.0, 3.0 * d, 10.0),
            // Beyond about a fifth of the election timeout (100 ms by default) no leader
            // lasts, and nothing is granted that could break.
            Param::Delay => (0.0, 50.0, 2.0),
        }
    }
}

/// One side of the margin: the value, and what the seeds did there.
#[derive(Clone, Debug, Serialize)]
pub struct Side {
    pub value: f64,
    /// The first seed that broke a rule there, with the rule and its message.
    pub failing_seed: Option<(u64, String, String)>,
    /// A seed that held there (every seed, on the holding side).
    pub passing_seed: Option<u64>,
}

/// What the bisection found.
#[derive(Clone, Debug, Serialize)]
pub struct Margin {
    pub scenario: String,
    pub param: Param,
    pub seeds: Range<u64>,
    /// The largest value tried at which every seed held.
    pub holds: Option<Side>,
    /// The smallest value tried at which some seed broke a rule.
    pub breaks: Option<Side>,
    /// The bound the settings promise, and how it is derived.
    pub bound: f64,
    pub bound_why: String,
    /// Values tried, and runs made.
    pub probes: usize,
    pub runs: usize,
}

/// The scenario with the parameter set to `x`.
pub fn with_param(s: &Scenario, param: Param, x: f64) -> Result<Scenario, String> {
    let mut s = s.clone();
    match param {
        Param::Drift => {
            s.settings.client_drift = Some(x);
            s.settings.client_drift_slow = Some(true);
        }
        Param::Delay => {
            let ms = x.round() as u64;
            if s.faults.mode != "schedule" {
                s.faults.mode = "schedule".into();
                s.faults.steps.clear();
            }
            // This delay replaces the schedule's own latency.
            s.faults
                .steps
                .retain(|st| !matches!(st.fault, Fault::Latency { .. }));
            s.faults.steps.insert(
                0,
                Step {
                    at_ms: 0,
                    // Latency draws from [min, max): a range of one ms is a fixed delay.
                    fault: Fault::Latency {
                        min_ms: ms,
                        max_ms: ms + 1,
                    },
                },
            );
        }
        Param::Pause => {
            if s.faults.mode != "schedule" {
                return Err(format!(
                    "{}: --param pause needs a written schedule with pauses (its faults are {})",
                    s.name, s.faults.mode
                ));
            }
            let duration = s.run_config()?.duration.as_millis() as u64;
            let len = x.round() as u64;
            let steps = &mut s.faults.steps;
            let mut paused_any = false;
            for i in 0..steps.len() {
                let at = steps[i].at_ms;
                let resumes = |f: &Fault| -> bool {
                    match (&steps[i].fault, f) {
                        (Fault::Pause { agent: a }, Fault::Resume { agent: b }) => a == b,
                        (
                            Fault::PauseProcess { process: a },
                            Fault::ResumeProcess { process: b },
                        ) => a == b,
                        (
                            Fault::PauseProcess { .. } | Fault::PauseHolder | Fault::PauseLeader,
                            Fault::ResumeProcesses,
                        ) => true,
                        (Fault::PauseLeader, Fault::Resume { .. }) => true,
                        _ => false,
                    }
                };
                if let Some(j) = (i + 1..steps.len()).find(|&j| resumes(&steps[j].fault)) {
                    steps[j].at_ms = at.saturating_add(len).min(duration.saturating_sub(1));
                    paused_any = true;
                }
            }
            if !paused_any {
                return Err(format!(
                    "{}: --param pause needs a pause followed by its resume in the schedule",
                    s.name
                ));
            }
            steps.sort_by_key(|st| st.at_ms);
        }
    }
    s.run_config()?;
    Ok(s)
}

/// The largest value `param` can take in a run of `config`: a drift below 0.5, a pause no
/// longer than the run, a delay no longer than a latency step may set (a minute).
pub fn max_value(param: Param, config: &RunConfig) -> f64 {
    match param {
        Param::Drift => 0.5,
        Param::Pause => config.duration.as_millis() as f64,
        Param::Delay => 60_000.0,
    }
}

/// The bound the lease settings promise for `param`.
pub fn analytic_bound(param: Param, config: &RunConfig) -> (f64, String) {
    let rho = config.cluster.agent.rho;
    let d = config.lock_ttl.as_secs_f64() * 1000.0;
    match param {
        Param::Drift => (
            rho,
            format!(
                "holders shorten beliefs by (1 - rho) and the agency scales its time by (1 - rho), \
                 so any drift up to rho = {rho} is safe whatever the agents' clocks do; with \
                 exact agent clocks a slow holder outruns the expiry only past \
                 1 - (1 - rho)^2 = {:.4}",
                1.0 - (1.0 - rho) * (1.0 - rho)
            ),
        ),
        Param::Pause => (
            d / (1.0 - rho),
            format!(
                "a pause longer than the TTL read through the drift bound, d / (1 - rho) = \
                 {:.0} ms, outlives any grant, so a holder's late write meets a newer token: \
                 fencing (S10) must refuse it; shorter pauses outlive the belief when they start \
                 late in it",
                d / (1.0 - rho)
            ),
        ),
        Param::Delay => (
            d / (1.0 - rho) - d * (1.0 - rho),
            format!(
                "beliefs count from the start of a call, so no delay shortens the agency's \
                 expiry behind them; the margin between the belief, d (1 - rho), and the \
                 expiry, d / (1 - rho), is {:.0} ms: what a holder timing from the answer \
                 would lose to a slow answer",
                d / (1.0 - rho) - d * (1.0 - rho)
            ),
        ),
    }
}

/// The first seed that breaks a rule (the one `rule` names, by id or whole name, if given) at `x`.
fn probe(
    s: &Scenario,
    param: Param,
    x: f64,
    seeds: &Range<u64>,
    jobs: usize,
    rule: Option<&str>,
) -> Result<Side, String> {
    let config = with_param(s, param, x)?.run_config()?;
    let results = tenure_sim::sweep(seeds.clone(), jobs, |seed| {
        tenure_sim::run::run(&config, seed).map(|r| {
            r.violations
                .into_iter()
                .find(|v| rule.is_none_or(|p| v.rule.matches(p)))
                .map(|v| (v.rule, v.message))
        })
    });
    let mut side = Side {
        value: x,
        failing_seed: None,
        passing_seed: None,
    };
    for (seed, r) in results {
        match r {
            Ok(Some((rule, message))) => {
                if side.failing_seed.is_none() {
                    side.failing_seed = Some((seed, rule.name(), message));
                }
            }
            Ok(None) => {
                if side.passing_seed.is_none() {
                    side.passing_seed = Some(seed);
                }
            }
            Err(e) => return Err(format!("seed {seed} at {x}: {e}")),
        }
    }
    Ok(side)
}

/// How to search.
#[derive(Clone, Debug)]
pub struct Plan<'a> {
    pub param: Param,
    /// `[lo, hi]`.
    pub range: (f64, f64),
    /// Stop when the two sides are this close.
    pub resolution: f64,
    /// The seeds run at each value.
    pub seeds: Range<u64>,
    /// Seeds run at once.
    pub jobs: usize,
    /// Only violations of the rule this names (its id or whole name) count.
    pub rule: Option<&'a str>,
}

/// Most bisection steps of one search, whatever the resolution asked.
pub const MAX_STEPS: usize = 60;

/// Most seeds run at each value.
pub const MAX_SEEDS: u64 = 10_000;

/// Bisects the plan's parameter over its range to its resolution (at most [`MAX_STEPS`]
/// halvings), each value run on its seeds (at most [`MAX_SEEDS`]).
pub fn search(
    s: &Scenario,
    plan: &Plan,
    mut progress: impl FnMut(&Side),
) -> Result<Margin, String> {
    let Plan {
        param,
        range,
        resolution,
        ref seeds,
        jobs,
        rule,
    } = *plan;
    let seeds = seeds.clone();
    if seeds.end - seeds.start > MAX_SEEDS {
        return Err(format!(
            "--seeds: {} seeds at each value is over the limit of {MAX_SEEDS}",
            seeds.end - seeds.start
        ));
    }
    let config = s.run_config()?;
    let (bound, bound_why) = analytic_bound(param, &config);
    let per = (seeds.end - seeds.start) as usize;
    let mut probes = 0;
    let mut look = |x: f64| -> Result<Side, String> {
        probes += 1;
        let side = probe(s, param, x, &seeds, jobs, rule)?;
        progress(&side);
        Ok(side)
    };
    let (lo, hi) = range;
    let top = look(hi)?;
    let mut result = Margin {
        scenario: s.name.clone(),
        param,
        seeds: seeds.clone(),
        holds: None,
        breaks: None,
        bound,
        bound_why,
        probes: 0,
        runs: 0,
    };
    if top.failing_seed.is_none() {
        result.holds = Some(top);
    } else {
        let bottom = look(lo)?;
        if bottom.failing_seed.is_some() {
            result.breaks = Some(bottom);
        } else {
            let (mut good, mut bad) = (bottom, top);
            // Each step halves the gap; floats run out of midpoints after at most ~1,100
            // halvings, and MAX_STEPS ends the search long before (2^-60 of the range).
            let mut steps = 0;
            while bad.value - good.value > resolution && steps < MAX_STEPS {
                let mid = (good.value + bad.value) / 2.0;
                if mid <= good.value || mid >= bad.value {
                    break;
                }
                steps += 1;
                let side = look(mid)?;
                if side.failing_seed.is_some() {
                    bad = side;
                } else {
                    good = side;
                }
            }
            result.holds = Some(good);
            result.breaks = Some(bad);
        }
    }
    result.probes = probes;
    result.runs = probes * per;
    Ok(result)
}

/// `x` as the parameter prints it.
pub fn show(param: Param, x: f64) -> String {
    match param {
        Param::Drift => format!("{:.4} ({:.2}%)", x, x * 100.0),
        Param::Pause | Param::Delay => format!("{:.0} ms", x),
    }
}

/// What the parameter is, in words.
pub fn describe(param: Param) -> &'static str {
    match param {
        Param::Drift => "every holder's clock runs slow by this much",
        Param::Pause => "the length of each pause in the schedule",
        Param::Delay => "a fixed delay on every message",
    }
}
