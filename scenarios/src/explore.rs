//! `tenure explore`: exploration steered by coverage, as a fuzzer steers by new edges.
//!
//! Each run reports an abstract coverage signal ([`tenure_sim::coverage`]: role and belief
//! transitions under the faults just before them, how operations ended, counts in buckets,
//! the fault points that fired, the `sometimes` points reached). The explorer keeps a corpus
//! of inputs that reached coverage nobody reached before it; an input is a scenario made
//! concrete (the world its seed drew written out as settings, its faults as the schedule the
//! run carried out, the fault points it enabled named) and a seed. Half the runs take a
//! corpus input, drawn with weight the rarity of the features it reached, and mutate it (a
//! fault moved, dropped, copied or taken from another input, a drawn setting or a fault point
//! changed, the seed changed under the same faults); the rest start fresh from the scenario
//! as written. It stops on the first broken rule, with the input
//! written as a scenario file that replays it.
//!
//! Inputs are made in batches of [`BATCH`] from one seeded generator and judged in the order
//! made, whatever the number of threads running them, so an exploration is a function of its
//! `--seed`, its scenario and the build.

use crate::library::{FaultPointsSpec, FaultSpec, Scenario};
use std::collections::BTreeSet;
use tenure_core::rng::SplitMix64;
use tenure_sim::coverage::Coverage;
use tenure_sim::nemesis::Step;
use tenure_sim::run::draw::{self, Drawn};
use tenure_sim::run::Report;

/// Inputs made and run together (fixed, so that `--jobs` does not change what is explored).
pub const BATCH: usize = 8;

/// Seeds of fresh inputs are drawn below this (short replay lines).
const SEED_SPACE: u64 = 1_000_000_000;

/// One input: a scenario and the seed to run it with.
#[derive(Clone, Debug)]
pub struct Input {
    pub scenario: Scenario,
    pub seed: u64,
    /// How it was made (`fresh`, or the mutations applied to corpus entry `n`).
    pub origin: String,
}

/// An input that reached new coverage, made concrete.
#[derive(Clone, Debug)]
pub struct Entry {
    pub input: Input,
    /// Features it reached that no input before it had.
    pub new_features: usize,
    /// The run (1-based) that found it.
    pub run: usize,
    /// What its run reached.
    pub features: Coverage,
}

/// How to explore.
#[derive(Clone, Debug)]
pub struct Options {
    /// Runs at most.
    pub budget: usize,
    /// The explorer's own seed (which inputs it makes).
    pub seed: u64,
    /// Threads running a batch.
    pub jobs: usize,
    /// Without guidance: every input fresh (plain swarm, for comparison).
    pub blind: bool,
}

/// Where an exploration stands, after each batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    pub runs: usize,
    pub corpus: usize,
    pub coverage: usize,
    /// The last run that reached new coverage.
    pub last_new: usize,
}

/// How an exploration ended.
pub enum Outcome {
    /// Run `run` broke a rule (or broke off: `report` is `None`, `error` says why).
    Found {
        input: Box<Input>,
        run: usize,
        report: Option<Box<Report>>,
        error: Option<String>,
    },
    /// The budget was spent without a broken rule.
    Held,
}

/// An exploration: its corpus, coverage and generator.
pub struct Explorer {
    base: Scenario,
    options: Options,
    rng: SplitMix64,
    pub corpus: Vec<Entry>,
    pub coverage: Coverage,
    /// How many runs reached each feature (what makes a feature rare).
    hits: std::collections::BTreeMap<String, u64>,
    /// Coverage after each run (its growth).
    pub growth: Vec<usize>,
    pub runs: usize,
    pub last_new: usize,
}

impl Explorer {
    /// An exploration of `base` (its settings checked first).
    pub fn new(base: Scenario, options: Options) -> Result<Explorer, String> {
        if options.budget == 0 {
            return Err("--budget must be at least 1 run".into());
        }
        base.run_config()?;
        Ok(Explorer {
            rng: SplitMix64::new(options.seed ^ 0x4558_504c_4f52_4521),
            base,
            options,
            corpus: Vec::new(),
            coverage: Coverage::new(),
            hits: Default::default(),
            growth: Vec::new(),
            runs: 0,
            last_new: 0,
        })
    }

    /// Adds `input` to the corpus if its run reaches new coverage (used to resume from a
    /// corpus on disk); returns the features it added. Does not count as a run.
    pub fn seed_corpus(&mut self, input: Input) -> Result<usize, String> {
        let report = run(&input)?;
        Ok(self.judge(input, &report, 0))
    }

    /// Takes `report`'s coverage in; keeps `input` (made concrete) if it reached anything new.
    fn judge(&mut self, input: Input, report: &Report, run: usize) -> usize {
        let c = report.coverage();
        for f in &c {
            *self.hits.entry(f.clone()).or_insert(0) += 1;
        }
        let new: Vec<String> = c.difference(&self.coverage).cloned().collect();
        if new.is_empty() {
            return 0;
        }
        self.coverage.extend(new.iter().cloned());
        if run > 0 {
            self.last_new = run;
        }
        self.corpus.push(Entry {
            input: concrete(&input, report),
            new_features: new.len(),
            run,
            features: c,
        });
        new.len()
    }

    /// A corpus entry to mutate, drawn with weight the rarity of what it reached (the sum
    /// over its features of one over the runs that reached each, AFL's and libFuzzer's
    /// "energy"): entries that reached what few runs reach are mutated most.
    fn pick(&mut self) -> usize {
        let weights: Vec<f64> = self
            .corpus
            .iter()
            .map(|e| {
                e.features
                    .iter()
                    .map(|f| 1.0 / self.hits.get(f).copied().unwrap_or(1).max(1) as f64)
                    .sum()
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let mut x = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        self.corpus.len() - 1
    }

    /// Explores until a rule breaks or the budget is spent; `progress` hears after each
    /// batch.
    pub fn explore(&mut self, mut progress: impl FnMut(&Progress)) -> Outcome {
        while self.runs < self.options.budget {
            let n = BATCH.min(self.options.budget - self.runs);
            let inputs: Vec<Input> = (0..n).map(|_| self.make()).collect();
            let reports = run_all(&inputs, self.options.jobs);
            for (input, result) in inputs.into_iter().zip(reports) {
                self.runs += 1;
                match result {
                    Ok(report) if report.ok() => {
                        self.judge(input, &report, self.runs);
                    }
                    Ok(report) => {
                        return Outcome::Found {
                            input: Box::new(input),
                            run: self.runs,
                            report: Some(Box::new(report)),
                            error: None,
                        }
                    }
                    Err(e) => {
                        return Outcome::Found {
                            input: Box::new(input),
                            run: self.runs,
                            report: None,
                            error: Some(e),
                        }
                    }
                }
                self.growth.push(self.coverage.len());
            }
            progress(&Progress {
                runs: self.runs,
                corpus: self.corpus.len(),
                coverage: self.coverage.len(),
                last_new: self.last_new,
            });
        }
        Outcome::Held
    }

    /// The next input: fresh, or a mutant of a corpus entry.
    fn make(&mut self) -> Input {
        // Half the runs start fresh: the scenario's own draw explores widely, and a corpus
        // only deepens what it already found.
        let fresh = self.options.blind || self.corpus.is_empty() || self.rng.below(2) == 0;
        if !fresh {
            for _ in 0..8 {
                let i = self.pick();
                if let Some(m) = self.mutant(i) {
                    return m;
                }
            }
        }
        Input {
            scenario: self.base.clone(),
            seed: self.rng.below(SEED_SPACE),
            origin: "fresh".into(),
        }
    }

    /// One to three mutations of corpus entry `i`; `None` when none gave a valid scenario.
    fn mutant(&mut self, i: usize) -> Option<Input> {
        let mut input = self.corpus[i].input.clone();
        let rounds = 1 + self.rng.below(3);
        let mut done = Vec::new();
        for _ in 0..rounds {
            let before = input.clone();
            let what = self.mutate(&mut input);
            if input.scenario.run_config().is_ok() {
                done.push(what);
            } else {
                input = before;
            }
        }
        if done.is_empty() {
            return None;
        }
        input.origin = format!("entry {} + {}", i + 1, done.join(", "));
        Some(input)
    }

    /// Applies one mutation to `input`; names it.
    fn mutate(&mut self, input: &mut Input) -> &'static str {
        let duration = input
            .scenario
            .run_config()
            .map_or(10_000, |c| c.duration.as_millis() as u64);
        let steps = &mut input.scenario.faults.steps;
        let r = &mut self.rng;
        match r.below(9) {
            0 => {
                input.seed = r.below(SEED_SPACE);
                "reseed"
            }
            1 | 2 if !steps.is_empty() => {
                let i = r.below(steps.len() as u64) as usize;
                let shift = 100 + r.below(2_000);
                let t = steps[i].at_ms;
                steps[i].at_ms = if r.below(2) == 0 {
                    t.saturating_sub(shift)
                } else {
                    (t + shift).min(duration - 1)
                };
                sort(steps);
                "fault moved"
            }
            3 if !steps.is_empty() => {
                let i = r.below(steps.len() as u64) as usize;
                steps.remove(i);
                "fault dropped"
            }
            4 if !steps.is_empty() => {
                let i = r.below(steps.len() as u64) as usize;
                let mut s = steps[i].clone();
                s.at_ms = r.below(duration);
                steps.push(s);
                sort(steps);
                "fault copied"
            }
            5 => {
                let donor = r.below(self.corpus.len() as u64) as usize;
                let theirs = &self.corpus[donor].input.scenario.faults.steps;
                if theirs.is_empty() {
                    input.seed = r.below(SEED_SPACE);
                    return "reseed";
                }
                let s = theirs[r.below(theirs.len() as u64) as usize].clone();
                steps.push(s);
                sort(steps);
                "fault spliced"
            }
            6 if self.base.settings.draw_world == Some(true) => {
                mutate_setting(&mut input.scenario, r);
                "setting redrawn"
            }
            7 if input.scenario.settings.fault_points.is_some() => {
                toggle_point(&mut input.scenario, r);
                "fault point toggled"
            }
            _ => {
                input.seed = r.below(SEED_SPACE);
                "reseed"
            }
        }
    }
}

fn sort(steps: &mut [Step]) {
    steps.sort_by_key(|s| s.at_ms);
}

/// `input` made concrete by its run: the drawn world as settings, the faults as carried out
/// (the lifts at the end left out: a written schedule has them lifted anyway), the fault
/// points it enabled by name.
pub fn concrete(input: &Input, report: &Report) -> Input {
    let mut s = input.scenario.clone();
    let duration = s
        .run_config()
        .map_or(u64::MAX, |c| c.duration.as_millis() as u64);
    if let Some(d) = report
        .drawn
        .as_ref()
        .and_then(|v| serde_json::from_value::<Drawn>(v.clone()).ok())
    {
        let t = &mut s.settings;
        t.draw_world = None;
        t.lock_ttl_ms = Some(d.lock_ttl_ms);
        t.lock_delay_ms = Some(d.lock_delay_ms);
        t.client_drift = Some(d.client_drift);
        t.op_pause_ms = Some(d.op_pause_ms);
        t.work_ms = Some(d.work_ms);
        t.clients = Some(d.clients);
        t.lockers = Some(d.lockers);
        t.leasers = Some(d.leasers);
        t.leaders = Some(d.leaders);
        t.members = Some(d.members);
        t.managers = Some(d.managers);
        t.watchers = Some(d.watchers);
        t.rho = Some(d.rho);
        t.client_drift_slow = Some(d.adverse_clocks);
        t.routing = Some(d.routing);
    }
    s.faults = FaultSpec {
        mode: "schedule".into(),
        steps: report
            .schedule
            .steps
            .iter()
            .filter(|st| st.at_ms < duration)
            .cloned()
            .collect(),
    };
    if s.settings.fault_points.is_some() {
        s.settings.fault_points = Some(FaultPointsSpec::Names(
            report.fault_points.keys().cloned().collect(),
        ));
    }
    Input {
        scenario: s,
        seed: input.seed,
        origin: input.origin.clone(),
    }
}

/// Draws one setting of `s` again, within the bounds a drawn world keeps. (Never `rho`: the
/// input's faults may drift clocks by as much as its bound allows.)
fn mutate_setting(s: &mut Scenario, r: &mut SplitMix64) {
    let t = &mut s.settings;
    let mut pick = |xs: &[u64]| xs[r.below(xs.len() as u64) as usize];
    match pick(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]) {
        0 => t.lock_ttl_ms = Some(pick(&draw::TTL_MS)),
        1 => t.lock_delay_ms = Some(pick(&draw::LOCK_DELAY_MS)),
        2 => t.op_pause_ms = Some(pick(&draw::OP_PAUSE_MS)),
        3 => t.work_ms = Some(pick(&draw::WORK_MS)),
        4 => {
            let rho = t
                .rho
                .unwrap_or(tenure_sim::ClusterConfig::default().agent.rho);
            t.client_drift = Some(pick(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]) as f64 / 10.0 * rho * 0.9);
        }
        5 => t.clients = Some(pick(&[0, 1, 2, 3]) as usize),
        6 => t.lockers = Some(pick(&[0, 1, 2, 3]) as usize),
        7 => t.leasers = Some(pick(&[0, 1, 2, 3]) as usize),
        8 => t.leaders = Some(pick(&[0, 1, 2]) as usize),
        _ => t.members = Some(pick(&[0, 1, 2]) as usize),
    }
}

/// Turns one fault point on or off.
fn toggle_point(s: &mut Scenario, r: &mut SplitMix64) {
    let mut on: BTreeSet<String> = match &s.settings.fault_points {
        Some(FaultPointsSpec::Names(n)) => n.iter().cloned().collect(),
        _ => BTreeSet::new(),
    };
    let all = tenure_core::buggify::POINTS;
    let p = all[r.below(all.len() as u64) as usize].name.to_string();
    if !on.remove(&p) {
        on.insert(p);
    }
    s.settings.fault_points = Some(FaultPointsSpec::Names(on.into_iter().collect()));
}

/// Runs one input.
pub fn run(input: &Input) -> Result<Report, String> {
    let config = input.scenario.run_config()?;
    tenure_sim::run::run(&config, input.seed).map_err(|e| e.to_string())
}

/// Runs `inputs` on up to `jobs` threads; the results in the inputs' order.
fn run_all(inputs: &[Input], jobs: usize) -> Vec<Result<Report, String>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<Report, String>>>> =
        inputs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, inputs.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(input) = inputs.get(i) else { return };
                *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(run(input));
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or_else(|| Err("the run did not take place".into()))
        })
        .collect()
}
