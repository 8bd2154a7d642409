//! `tenure shrink`: a failing run made small. The run's faults, as it carried them out (swarm
//! draws and faults aimed at the leader or a holder resolved to concrete agents and processes,
//! with their true times), become a written schedule; delta debugging then removes faults
//! while the same rule still breaks, rounds the times that are left, and cuts the duration.
//! The result is a scenario file that replays the failure with the same seed.
//!
//! The seed stays fixed: the workload and the network's draws come from it, and the schedule
//! is what varies, so deleting a fault changes nothing else by itself (later draws may shift,
//! which is why every candidate is run and checked, never assumed).

use crate::library::{FaultPointsSpec, FaultSpec, Scenario};
use std::collections::{BTreeMap, BTreeSet};
use tenure_sim::nemesis::{Schedule, Step};
use tenure_sim::run::{Faults, Report};
use tenure_sim::world::World;

/// What can be shrunk: a scenario, or a user's world. Its faults vary; the rest stays.
pub trait Shrinkable: Clone {
    /// Its name in messages.
    fn label(&self) -> String;
    fn duration_ms(&self) -> u64;
    /// Its faults, if they are a written schedule.
    fn written_steps(&self) -> Option<Vec<Step>>;
    /// The same with `steps` as its written schedule and `duration_ms` as its duration, or
    /// why that is not a valid candidate.
    fn with_schedule(&self, steps: &[Step], duration_ms: u64) -> Result<Self, String>;
    /// The same with exactly the fault points `points` enabled.
    fn with_points(&self, points: &BTreeSet<String>) -> Result<Self, String>;
    /// Runs `seed`.
    fn run(&self, seed: u64) -> Result<Report, String>;
}

impl Shrinkable for Scenario {
    fn label(&self) -> String {
        self.name.clone()
    }
    fn duration_ms(&self) -> u64 {
        self.run_config()
            .map_or(0, |c| c.duration.as_millis() as u64)
    }
    fn written_steps(&self) -> Option<Vec<Step>> {
        (self.faults.mode == "schedule").then(|| self.faults.steps.clone())
    }
    fn with_schedule(&self, steps: &[Step], duration_ms: u64) -> Result<Scenario, String> {
        let mut s = self.clone();
        s.settings.duration_ms = Some(duration_ms);
        s.faults = FaultSpec {
            mode: "schedule".into(),
            steps: steps.to_vec(),
        };
        s.run_config()?;
        Ok(s)
    }
    fn with_points(&self, points: &BTreeSet<String>) -> Result<Scenario, String> {
        let mut s = self.clone();
        s.settings.fault_points = Some(FaultPointsSpec::Names(points.iter().cloned().collect()));
        s.run_config()?;
        Ok(s)
    }
    fn run(&self, seed: u64) -> Result<Report, String> {
        tenure_sim::run::run(&self.run_config()?, seed).map_err(|e| e.to_string())
    }
}

impl Shrinkable for World {
    fn label(&self) -> String {
        "the world".into()
    }
    fn duration_ms(&self) -> u64 {
        self.config().duration.as_millis() as u64
    }
    fn written_steps(&self) -> Option<Vec<Step>> {
        match &self.config().faults {
            Faults::Schedule(s) => Some(s.steps.clone()),
            _ => None,
        }
    }
    fn with_schedule(&self, steps: &[Step], duration_ms: u64) -> Result<World, String> {
        let mut c = self.config().clone();
        c.duration = std::time::Duration::from_millis(duration_ms);
        c.faults = Faults::Schedule(Schedule {
            steps: steps.to_vec(),
        });
        self.with_config(c).map_err(|e| e.to_string())
    }
    fn with_points(&self, points: &BTreeSet<String>) -> Result<World, String> {
        let mut c = self.config().clone();
        c.fault_points = tenure_sim::run::FaultPoints::Only(points.clone());
        self.with_config(c).map_err(|e| e.to_string())
    }
    fn run(&self, seed: u64) -> Result<Report, String> {
        World::run(self, seed).map_err(|e| e.to_string())
    }
}

/// What shrinking found.
#[derive(Clone, Debug)]
pub struct Shrunk<S = Scenario> {
    /// The minimal case: the original's settings, the shrunk schedule and duration.
    pub scenario: S,
    /// The rule that breaks, first in the original run and in every kept candidate.
    pub rule: tenure_sim::check::Rule,
    /// Faults in the original run's schedule (lifts included), and in the shrunk one.
    pub steps_before: usize,
    pub steps_after: usize,
    pub duration_ms_before: u64,
    pub duration_ms_after: u64,
    /// The fault points inside the system the run enabled, and those the shrunk case keeps.
    pub points_before: BTreeSet<String>,
    pub points_after: BTreeSet<String>,
    /// Runs made, the first included.
    pub runs: usize,
    /// Whether the run budget ran out before shrinking was done (the result still fails).
    pub budget_spent: bool,
    /// The shrunk scenario's run with the seed.
    pub report: Report,
}

/// Shrinks seed `seed` of `scenario`, making at most `budget` runs; `progress` hears about
/// each step kept. The rule kept breaking is the run's first violation, or with `rule` the
/// first that it names by id or whole name (`S10`, `S1 exclusivity`). Fails if the seed does not break
/// it, or if its faults, replayed as a schedule, no longer do.
pub fn shrink<S: Shrinkable>(
    scenario: &S,
    seed: u64,
    rule: Option<&str>,
    budget: usize,
    mut progress: impl FnMut(&str),
) -> Result<Shrunk<S>, String> {
    let first = scenario.run(seed)?;
    let wanted = |v: &&tenure_sim::check::Violation| rule.is_none_or(|r| v.rule.matches(r));
    let Some(v) = first.violations.iter().find(wanted) else {
        let broken: Vec<String> = first.violations.iter().map(|v| v.rule.name()).collect();
        return Err(match rule {
            None => format!(
                "seed {seed} of {} breaks no rule (every invariant held): there is no failure to shrink",
                scenario.label()
            ),
            Some(r) => format!(
                "seed {seed} of {} breaks no rule named {r:?}{}: there is no such failure to shrink",
                scenario.label(),
                if broken.is_empty() {
                    String::new()
                } else {
                    format!(" (it breaks {})", broken.join(", "))
                }
            ),
        });
    };
    let rule = v.rule.clone();
    let duration_ms = scenario.duration_ms();
    // The fault points the run enabled, named (a seed's swarm of points becomes a list, which
    // enables the same points and so decides the same).
    let points_before: BTreeSet<String> = first.fault_points.keys().cloned().collect();
    let named;
    let scenario = if first.fault_points.is_empty() {
        scenario
    } else {
        named = scenario.with_points(&points_before)?;
        &named
    };
    progress(&format!(
        "seed {seed} breaks {rule}; its run carried out {} fault steps in {duration_ms} ms",
        first.schedule.steps.len()
    ));
    let mut s = Search {
        scenario: scenario.clone(),
        seed,
        rule: rule.clone(),
        budget,
        runs: 1,
        tried: BTreeMap::new(),
        last_failing: None,
        prefix: String::new(),
    };
    // Where to start: a written schedule as written (faults aimed at a role stay aimed, so
    // they follow the run as it changes), else the faults as the run carried them out.
    // Either must break the rule again when run as a schedule.
    let mut starts = Vec::new();
    if let Some(steps) = scenario.written_steps() {
        starts.push(steps);
    }
    // The lifts at the end of the run are left out: a written schedule has whatever it
    // leaves in place lifted there anyway (and a step may not lie at the duration).
    starts.push(
        first
            .schedule
            .steps
            .iter()
            .filter(|st| st.at_ms < duration_ms)
            .cloned()
            .collect(),
    );
    let Some(steps) = starts.into_iter().find(|st| s.fails(st, duration_ms)) else {
        return Err(format!(
            "seed {seed} of {}: its faults replayed as a written schedule no longer break {rule} \
             (the schedule did not carry over); nothing to shrink from",
            scenario.label()
        ));
    };
    // 1. Which faults: delta debugging (ddmin), the empty schedule first.
    let mut kept = if s.fails(&[], duration_ms) {
        Vec::new()
    } else {
        ddmin(steps.clone(), &mut |c: &[Step]| s.fails(c, duration_ms))
    };
    progress(&format!(
        "{} of {} fault steps kept",
        kept.len(),
        steps.len()
    ));
    // 1b. Which fault points inside the system: ddmin over their names, the faults kept.
    let mut points_after = points_before.clone();
    if !points_before.is_empty() {
        let all: Vec<String> = points_before.iter().cloned().collect();
        let keep = ddmin(all, &mut |names: &[String]| {
            let set: BTreeSet<String> = names.iter().cloned().collect();
            s.fails_with_points(&set, &kept, duration_ms)
        });
        points_after = keep.into_iter().collect();
        if s.fails_with_points(&points_after, &kept, duration_ms) {
            s.set_points(&points_after);
        }
        progress(&format!(
            "{} of {} fault points kept",
            points_after.len(),
            points_before.len()
        ));
    }
    // 2. Their times: rounded down to a whole second, half second or tenth, where that keeps
    // the order and the failure.
    for i in 0..kept.len() {
        let floor = if i == 0 { 0 } else { kept[i - 1].at_ms };
        for grid in [1000, 500, 100] {
            let t = kept[i].at_ms / grid * grid;
            if t == kept[i].at_ms || t < floor {
                continue;
            }
            let mut c = kept.clone();
            c[i].at_ms = t;
            if s.fails(&c, duration_ms) {
                kept = c;
                break;
            }
        }
    }
    // 3. The duration: the shortest whole second after the last fault that still fails
    // (bisection; the failure need not be monotonic in the duration, so the result is a
    // duration that fails, not necessarily the least).
    let last = kept.last().map_or(0, |st| st.at_ms);
    let mut lo = (last / 1000 + 1) * 1000; // candidates are whole seconds past the last step
    let mut best = duration_ms;
    let mut hi = duration_ms;
    while lo < hi && !s.spent() {
        let mid = (lo + hi) / 2 / 1000 * 1000;
        let mid = mid.max(lo);
        if mid >= hi {
            break;
        }
        if s.fails(&kept, mid) {
            best = mid;
            hi = mid;
        } else {
            lo = mid + 1000;
        }
    }
    if best < duration_ms {
        progress(&format!("duration cut from {duration_ms} ms to {best} ms"));
    }
    let shrunk = s.scenario.with_schedule(&kept, best)?;
    // The kept candidate's run, again (the cache keeps only verdicts).
    let report = match s.last_failing.take() {
        Some((k, d, r)) if k == key_of(&kept, best) && d == best => r,
        _ => shrunk.run(seed)?,
    };
    Ok(Shrunk {
        scenario: shrunk,
        rule,
        steps_before: steps.len(),
        steps_after: kept.len(),
        duration_ms_before: duration_ms,
        duration_ms_after: best,
        points_before,
        points_after,
        runs: s.runs,
        budget_spent: s.spent(),
        report,
    })
}

struct Search<S> {
    /// The case whose schedule varies (its fault points as the search last narrowed them).
    scenario: S,
    seed: u64,
    rule: tenure_sim::check::Rule,
    budget: usize,
    runs: usize,
    /// Verdicts by candidate (its steps and duration as JSON).
    tried: BTreeMap<String, bool>,
    /// The last candidate that failed, with its run.
    last_failing: Option<(String, u64, Report)>,
    /// What sets the candidates of a fault-point search apart in `tried`.
    prefix: String,
}

fn key_of(steps: &[Step], duration_ms: u64) -> String {
    format!(
        "{duration_ms} {}",
        serde_json::to_string(steps).expect("steps serialize")
    )
}

impl<S: Shrinkable> Search<S> {
    fn spent(&self) -> bool {
        self.runs >= self.budget
    }

    /// Whether the case with only `points` enabled, and `steps`, still breaks the rule.
    fn fails_with_points(
        &mut self,
        points: &BTreeSet<String>,
        steps: &[Step],
        duration_ms: u64,
    ) -> bool {
        let Ok(candidate) = self.scenario.with_points(points) else {
            return false;
        };
        let before = std::mem::replace(&mut self.scenario, candidate);
        let points_key = format!("{points:?} ");
        self.prefix = points_key;
        let verdict = self.fails(steps, duration_ms);
        self.prefix.clear();
        self.scenario = before;
        verdict
    }

    /// From now on the case enables exactly `points`.
    fn set_points(&mut self, points: &BTreeSet<String>) {
        if let Ok(c) = self.scenario.with_points(points) {
            self.scenario = c;
            self.tried.clear();
        }
    }

    /// Whether this candidate still breaks the rule (false once the budget is spent, so the
    /// search keeps what it has).
    fn fails(&mut self, steps: &[Step], duration_ms: u64) -> bool {
        let key = format!("{}{}", self.prefix, key_of(steps, duration_ms));
        if let Some(v) = self.tried.get(&key) {
            return *v;
        }
        if self.spent() {
            return false;
        }
        self.runs += 1;
        let verdict = match self.scenario.with_schedule(steps, duration_ms) {
            // A candidate the scenario rules refuse (a step past the duration) cannot fail.
            Err(_) => false,
            Ok(candidate) => match candidate.run(self.seed) {
                Ok(r) if r.violations.iter().any(|v| v.rule == self.rule) => {
                    self.last_failing = Some((key.clone(), duration_ms, r));
                    true
                }
                // Another failure (or none) is not this one.
                _ => false,
            },
        };
        self.tried.insert(key, verdict);
        verdict
    }
}

/// Zeller's ddmin: a 1-minimal subsequence of `items` (removing any one element makes `test`
/// false) for which `test` holds, given that it holds for `items`.
pub fn ddmin<T: Clone>(items: Vec<T>, test: &mut impl FnMut(&[T]) -> bool) -> Vec<T> {
    let mut c = items;
    let mut n = 2usize;
    while c.len() >= 2 {
        let chunk = c.len().div_ceil(n);
        let ranges: Vec<(usize, usize)> = (0..c.len())
            .step_by(chunk)
            .map(|a| (a, (a + chunk).min(c.len())))
            .collect();
        let mut reduced = false;
        for &(a, b) in &ranges {
            let subset = c[a..b].to_vec();
            if test(&subset) {
                c = subset;
                n = 2;
                reduced = true;
                break;
            }
        }
        if !reduced {
            for &(a, b) in &ranges {
                let complement: Vec<T> = c[..a].iter().chain(&c[b..]).cloned().collect();
                if test(&complement) {
                    c = complement;
                    n = (n - 1).max(2);
                    reduced = true;
                    break;
                }
            }
        }
        if !reduced {
            if n >= c.len() {
                break;
            }
            n = (n * 2).min(c.len());
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddmin_finds_the_failure_inducing_pair() {
        // Fails when both 3 and 7 are present.
        let mut calls = 0;
        let got = ddmin((0..16).collect(), &mut |c: &[u32]| {
            calls += 1;
            c.contains(&3) && c.contains(&7)
        });
        assert_eq!(got, vec![3, 7]);
        assert!(calls < 60, "{calls} tests");
        // One element that matters.
        let got = ddmin((0..10).collect(), &mut |c: &[u32]| c.contains(&9));
        assert_eq!(got, vec![9]);
        // Everything matters: nothing can go.
        let got = ddmin(vec![1, 2, 3], &mut |c: &[u32]| c.len() == 3);
        assert_eq!(got, vec![1, 2, 3]);
    }
}
