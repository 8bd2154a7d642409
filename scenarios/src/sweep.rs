//! Many seeds of one scenario: seed ranges and shards from the command line, a parallel run
//! with progress, results as JSON that shards on separate machines write and `tenure merge`
//! joins.

use crate::library::Scenario;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// One broken rule of one seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: tenure_sim::check::Rule,
    pub message: String,
}

/// What one seed did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedResult {
    pub seed: u64,
    /// Every invariant held and the run completed.
    pub ok: bool,
    pub violations: Vec<Finding>,
    pub warnings: usize,
    /// The history's digest (absent when the run broke off).
    pub digest: Option<String>,
    pub virtual_ms: u64,
    pub ops: usize,
    /// Why the run broke off (a panic, the time limit).
    pub error: Option<String>,
    /// A user world's `sometimes` points: how often this seed reached each.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub sometimes: std::collections::BTreeMap<String, u64>,
    /// How many coverage features the seed reached ([`tenure_sim::coverage`]).
    #[serde(default)]
    pub coverage: usize,
    /// The features themselves (not written: a sweep prints their union).
    #[serde(skip)]
    pub features: tenure_sim::coverage::Coverage,
}

/// The features the seeds of `results` reached together.
pub fn coverage_union(results: &[SeedResult]) -> usize {
    let mut all = std::collections::BTreeSet::new();
    for r in results {
        all.extend(r.features.iter());
    }
    all.len()
}

/// What a sweep explored: the features its seeds reached together (when their features are
/// at hand) and a seed's average; `None` when no seed ran.
pub fn coverage_line(results: &[SeedResult]) -> Option<String> {
    if results.is_empty() {
        return None;
    }
    let mean = results.iter().map(|r| r.coverage).sum::<usize>() / results.len();
    Some(if results.iter().any(|r| !r.features.is_empty()) {
        format!(
            "coverage {} features in all, {mean} per seed on average",
            coverage_union(results)
        )
    } else {
        format!("coverage {mean} features per seed on average (result files keep no union)")
    })
}

/// A sweep's results, or a shard's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepResults {
    pub scenario: String,
    /// SHA-256 of the scenario as run (its TOML, with planted bugs and duration), so shards
    /// of one name but different files or flags do not merge.
    pub scenario_digest: String,
    /// The build that ran it ([`build_id`]): shards of different builds do not merge.
    pub build: String,
    /// The seed range swept (`A..B`).
    pub seeds: String,
    /// `K/N` when this is one shard of the range.
    pub shard: Option<String>,
    /// Whether the sweep stopped at its first failure (then some seeds were not run).
    pub stopped_early: bool,
    /// Whether each seed ran twice (`--check-determinism`).
    #[serde(default)]
    pub checked_determinism: bool,
    pub results: Vec<SeedResult>,
}

impl SweepResults {
    pub fn failures(&self) -> impl Iterator<Item = &SeedResult> {
        self.results.iter().filter(|r| !r.ok)
    }
}

/// This build: the version and a hash of the running program, so results from two builds
/// (even of one version) are told apart.
pub fn build_id() -> String {
    use sha2::{Digest, Sha256};
    let exe = std::env::current_exe()
        .and_then(std::fs::read)
        .map(|bytes| format!("{:x}", Sha256::digest(&bytes)))
        .unwrap_or_else(|_| "unknown".into());
    format!(
        "tenure {} {}",
        env!("CARGO_PKG_VERSION"),
        &exe[..exe.len().min(16)]
    )
}

/// SHA-256 of the scenario as it runs (its TOML, with bugs and duration in it).
pub fn scenario_digest(s: &Scenario) -> String {
    use sha2::{Digest, Sha256};
    let text = crate::library::to_toml(s).unwrap_or_default();
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

/// Reads `A..B` (B excluded) or a single seed `A`.
pub fn parse_seeds(text: &str) -> Result<Range<u64>, String> {
    let number = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| format!("seeds: {s:?} is not a seed number"))
    };
    let range = match text.split_once("..") {
        Some((a, b)) => number(a)?..number(b)?,
        None => {
            let a = number(text)?;
            if a == u64::MAX {
                return Err(format!(
                    "seeds: {a} cannot be swept alone (ranges end before u64::MAX); give A..B"
                ));
            }
            a..a + 1
        }
    };
    if range.is_empty() {
        return Err(format!(
            "seeds: {text:?} is empty (write A..B with A < B; B is not included)"
        ));
    }
    Ok(range)
}

/// The environment variable a Kubernetes Indexed Job sets to each pod's index (0-based).
pub const JOB_INDEX_VAR: &str = "JOB_COMPLETION_INDEX";

/// A shard `K/N` (1 <= K <= N), or `job/N`: shard `JOB_COMPLETION_INDEX + 1` of N, the index
/// a Kubernetes Indexed Job gives each of its pods.
pub fn parse_shard(text: &str) -> Result<(u64, u64), String> {
    parse_shard_with(text, std::env::var(JOB_INDEX_VAR).ok().as_deref())
}

/// [`parse_shard`] with the job index given (`None`: the variable is not set).
pub fn parse_shard_with(text: &str, job_index: Option<&str>) -> Result<(u64, u64), String> {
    let bad = || format!("shard: {text:?} is not K/N with 1 <= K <= N, or job/N");
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let n = n.trim().parse::<u64>().map_err(|_| bad())?;
    let k = if k.trim() == "job" {
        let index = job_index.ok_or_else(|| {
            format!("shard: {text:?} takes its index from {JOB_INDEX_VAR}, which is not set")
        })?;
        let i = index
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("shard: {JOB_INDEX_VAR}={index:?} is not a number"))?;
        if i >= n {
            return Err(format!(
                "shard: {JOB_INDEX_VAR}={i} is not below the {n} shards (indices are 0..{n})"
            ));
        }
        i + 1
    } else {
        k.trim().parse::<u64>().map_err(|_| bad())?
    };
    if k == 0 || n == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

/// The seeds of shard `(k, n)` of a range, never listed: every n-th seed from the k-th, so
/// shards take equal shares however the range's cost is spread. A range of 10^11 seeds costs
/// nothing until its seeds run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedSet {
    pub range: Range<u64>,
    pub shard: Option<(u64, u64)>,
}

impl SeedSet {
    fn kn(&self) -> (u64, u64) {
        self.shard.unwrap_or((1, 1))
    }

    /// How many seeds.
    pub fn len(&self) -> u64 {
        let (k, n) = self.kn();
        let total = self.range.end - self.range.start;
        if total < k {
            0
        } else {
            (total - k) / n + 1
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`-th seed.
    pub fn get(&self, i: u64) -> Option<u64> {
        let (k, n) = self.kn();
        (i < self.len()).then(|| self.range.start + (k - 1) + i * n)
    }

    pub fn contains(&self, seed: u64) -> bool {
        let (k, n) = self.kn();
        self.range.contains(&seed) && (seed - self.range.start) % n == k - 1
    }
}

/// Runs the seeds of `set` of `scenario`, `jobs` at a time; `progress(done, total, failed)`
/// after each. With `stop_on_failure`, no new seed starts after the first failure.
pub fn run_seeds(
    scenario: &Scenario,
    set: &SeedSet,
    jobs: usize,
    stop_on_failure: bool,
    progress: impl Fn(u64, u64, u64) + Sync,
) -> Result<(Vec<SeedResult>, bool), String> {
    let config = scenario.run_config()?;
    Ok(run_seeds_with(
        set,
        jobs,
        stop_on_failure,
        progress,
        |seed| one(&config, seed),
    ))
}

/// [`run_seeds`] of any runnable thing: `run` gives a seed's result (a scenario's, a user
/// world's).
pub fn run_seeds_with(
    set: &SeedSet,
    jobs: usize,
    stop_on_failure: bool,
    progress: impl Fn(u64, u64, u64) + Sync,
    run: impl Fn(u64) -> SeedResult + Sync,
) -> (Vec<SeedResult>, bool) {
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let failed = AtomicU64::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(seed) = set.get(i) else { return };
                let r = run(seed);
                if !r.ok {
                    failed.fetch_add(1, Ordering::SeqCst);
                    if stop_on_failure {
                        stop.store(true, Ordering::SeqCst);
                    }
                }
                let done = {
                    let mut all = results.lock().unwrap_or_else(|p| p.into_inner());
                    all.push(r);
                    all.len() as u64
                };
                progress(done, set.len(), failed.load(Ordering::SeqCst));
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|r| r.seed);
    let stopped = (results.len() as u64) < set.len();
    (results, stopped)
}

/// `--check-determinism`: runs the seeds of `first` again, on `jobs` threads in the opposite
/// order (so each seed meets other neighbours and threads), and marks every seed whose second
/// run differs (digest, verdict or violations) as failed, saying how.
pub fn recheck(
    scenario: &Scenario,
    first: &mut [SeedResult],
    jobs: usize,
    progress: impl Fn(u64, u64) + Sync,
) -> Result<u64, String> {
    let config = scenario.run_config()?;
    Ok(recheck_with(first, jobs, progress, |seed| {
        one(&config, seed)
    }))
}

/// [`recheck`] of any runnable thing.
pub fn recheck_with(
    first: &mut [SeedResult],
    jobs: usize,
    progress: impl Fn(u64, u64) + Sync,
    run: impl Fn(u64) -> SeedResult + Sync,
) -> u64 {
    let total = first.len() as u64;
    let done = AtomicU64::new(0);
    // Index i runs the i-th seed from the end.
    let again = tenure_sim::sweep(0..total, jobs, |i| {
        let r = run(first[(total - 1 - i) as usize].seed);
        progress(done.fetch_add(1, Ordering::SeqCst) + 1, total);
        r
    });
    let mut differing = 0;
    for (i, again) in again {
        let r = &mut first[(total - 1 - i) as usize];
        if again != *r {
            differing += 1;
            let was = r.digest.clone().unwrap_or_else(|| "none".into());
            let now = again.digest.clone().unwrap_or_else(|| "none".into());
            r.ok = false;
            r.error = Some(format!(
                "nondeterministic: two runs differ (digest {was}, then {now}; {} then {} violations)",
                r.violations.len(),
                again.violations.len()
            ));
        }
    }
    differing
}

/// One seed, summarised.
pub fn one(config: &tenure_sim::RunConfig, seed: u64) -> SeedResult {
    summarise(seed, tenure_sim::run(config, seed))
}

/// A run's result as a seed's.
pub fn summarise(
    seed: u64,
    run: Result<tenure_sim::Report, Box<tenure_sim::RunError>>,
) -> SeedResult {
    match run {
        Ok(r) => {
            let features = r.coverage();
            SeedResult {
                seed,
                ok: r.ok(),
                violations: r
                    .violations
                    .iter()
                    .map(|v| Finding {
                        rule: v.rule.clone(),
                        message: v.message.clone(),
                    })
                    .collect(),
                warnings: r.warnings.len(),
                digest: Some(r.digest.clone()),
                virtual_ms: r.counters.virtual_ms,
                ops: r.counters.ops_invoked,
                error: None,
                sometimes: r.sometimes.clone(),
                coverage: features.len(),
                features,
            }
        }
        Err(e) => SeedResult {
            seed,
            ok: false,
            violations: Vec::new(),
            warnings: 0,
            digest: None,
            virtual_ms: e.history.records.last().map_or(0, |r| r.t_us / 1000),
            ops: 0,
            error: Some(e.to_string()),
            sometimes: Default::default(),
            coverage: 0,
            features: Default::default(),
        },
    }
}

/// Checks one shard's file: its seeds and shard read, every result is one of its seeds, in
/// order, once, with a verdict that agrees with its findings, and (unless it stopped early)
/// every seed of its share is there.
fn check_part(origin: &str, p: &SweepResults) -> Result<SeedSet, String> {
    let range = parse_seeds(&p.seeds).map_err(|e| format!("{origin}: {e}"))?;
    let shard = match &p.shard {
        // A file's shard is what ran, never resolved from this process's environment.
        Some(s) => Some(parse_shard_with(s, None).map_err(|e| format!("{origin}: {e}"))?),
        None => None,
    };
    let set = SeedSet { range, shard };
    let what = match &p.shard {
        Some(s) => format!("seeds {} shard {s}", p.seeds),
        None => format!("seeds {}", p.seeds),
    };
    let mut last: Option<u64> = None;
    for r in &p.results {
        if !set.contains(r.seed) {
            return Err(format!(
                "{origin}: seed {} is not one of its {what}",
                r.seed
            ));
        }
        if last.is_some_and(|l| l >= r.seed) {
            return Err(format!(
                "{origin}: seed {} is listed twice or out of order",
                r.seed
            ));
        }
        last = Some(r.seed);
        let clean = r.violations.is_empty() && r.error.is_none();
        if r.ok != clean {
            return Err(format!(
                "{origin}: seed {} says ok: {} but lists {} violations{}",
                r.seed,
                r.ok,
                r.violations.len(),
                if r.error.is_some() {
                    " and an error"
                } else {
                    ""
                }
            ));
        }
    }
    let ran = p.results.len() as u64;
    if !p.stopped_early && ran != set.len() {
        let missing: Vec<String> = (0..set.len())
            .filter_map(|i| set.get(i))
            .filter(|s| p.results.binary_search_by_key(s, |r| r.seed).is_err())
            .take(5)
            .map(|s| s.to_string())
            .collect();
        return Err(format!(
            "{origin}: holds {ran} of the {} seeds of its {what} without having stopped early (missing: {}{})",
            set.len(),
            missing.join(", "),
            if set.len() - ran > 5 { ", ..." } else { "" }
        ));
    }
    Ok(set)
}

/// Joins shards of one sweep, after proving they fit: the same scenario (name and content),
/// build and range; shards K/N of one N, each once, all N of them (or one unsharded file);
/// each file's results exactly its share.
pub fn merge(parts: Vec<(String, SweepResults)>) -> Result<SweepResults, String> {
    let Some((first_origin, first)) = parts.first() else {
        return Err("merge: no result files given".into());
    };
    let mut stopped = false;
    let mut checked = true;
    let mut shards: std::collections::BTreeMap<u64, &str> = Default::default();
    let mut of_n: Option<u64> = None;
    for (origin, p) in &parts {
        for (field, a, b) in [
            ("scenario", &p.scenario, &first.scenario),
            ("seeds", &p.seeds, &first.seeds),
            ("build", &p.build, &first.build),
            (
                "scenario_digest",
                &p.scenario_digest,
                &first.scenario_digest,
            ),
        ] {
            if a != b {
                return Err(format!(
                    "merge: {origin} has {field} {a:?} where {first_origin} has {b:?}: shards of one sweep share scenario, seeds and build"
                ));
            }
        }
        let set = check_part(origin, p)?;
        stopped |= p.stopped_early;
        checked &= p.checked_determinism;
        let (k, n) = set.shard.unwrap_or((1, 1));
        if *of_n.get_or_insert(n) != n {
            return Err(format!(
                "merge: {origin} is shard {k}/{n} but {first_origin} is one of {} shards",
                of_n.unwrap_or(n)
            ));
        }
        if let Some(other) = shards.insert(k, origin) {
            return Err(format!(
                "merge: {origin} and {other} are both shard {k}/{n}: each seed would count twice"
            ));
        }
    }
    let n = of_n.unwrap_or(1);
    if (shards.len() as u64) < n {
        let missing: Vec<String> = (1..=n)
            .filter(|k| !shards.contains_key(k))
            .take(10)
            .map(|k| format!("{k}/{n}"))
            .collect();
        return Err(format!(
            "merge: shards missing: {}{} (given {} of {n}); the merged results would not cover seeds {}",
            missing.join(", "),
            if n - shards.len() as u64 > 10 { ", ..." } else { "" },
            shards.len(),
            first.seeds
        ));
    }
    let mut results: Vec<SeedResult> = parts
        .iter()
        .flat_map(|(_, p)| p.results.iter().cloned())
        .collect();
    results.sort_by_key(|r| r.seed);
    Ok(SweepResults {
        scenario: first.scenario.clone(),
        scenario_digest: first.scenario_digest.clone(),
        build: first.build.clone(),
        seeds: first.seeds.clone(),
        shard: None,
        stopped_early: stopped,
        checked_determinism: checked,
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_shard_takes_its_index_from_the_indexed_job() {
        assert_eq!(parse_shard_with("job/4", Some("0")), Ok((1, 4)));
        assert_eq!(parse_shard_with("job/4", Some("3")), Ok((4, 4)));
        for (text, index, says) in [
            ("job/4", None, "JOB_COMPLETION_INDEX, which is not set"),
            ("job/4", Some("4"), "not below the 4 shards"),
            ("job/4", Some("x"), "is not a number"),
            ("job/4", Some("-1"), "is not a number"),
            ("job/0", Some("0"), "not below the 0 shards"),
            ("jobs/4", Some("0"), "is not K/N"),
        ] {
            let e = parse_shard_with(text, index).unwrap_err();
            assert!(e.contains(says), "{text} {index:?}: {e}");
        }
    }

    #[test]
    fn seed_ranges_and_shards_read_or_say_why_not() {
        assert_eq!(parse_seeds("3..7").unwrap(), 3..7);
        assert_eq!(parse_seeds("5").unwrap(), 5..6);
        for bad in ["7..3", "3..3", "a..4", "1..x", "", "-1..4"] {
            assert!(parse_seeds(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_shard("2/3").unwrap(), (2, 3));
        for bad in ["0/3", "4/3", "1/0", "1", "a/b", "1/2/3"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
        // The shards cover the range once.
        let seeds = |set: &SeedSet| {
            (0..set.len())
                .map(|i| set.get(i).unwrap())
                .collect::<Vec<_>>()
        };
        let mut all: Vec<u64> = (1..=3)
            .flat_map(|k| {
                seeds(&SeedSet {
                    range: 10..20,
                    shard: Some((k, 3)),
                })
            })
            .collect();
        all.sort();
        assert_eq!(all, (10..20).collect::<Vec<_>>());
        let two = SeedSet {
            range: 10..20,
            shard: Some((2, 3)),
        };
        assert_eq!(seeds(&two), vec![11, 14, 17]);
        assert!(two.contains(14) && !two.contains(15) && !two.contains(20));
        // Huge ranges cost nothing until run.
        let huge = SeedSet {
            range: 0..u64::MAX,
            shard: Some((7, 1000)),
        };
        assert_eq!(huge.get(0), Some(6));
        assert_eq!(huge.len(), (u64::MAX - 7) / 1000 + 1);
        assert!(parse_seeds(&u64::MAX.to_string()).is_err());
    }

    fn result(seed: u64, digest: &str) -> SeedResult {
        SeedResult {
            seed,
            ok: true,
            violations: Vec::new(),
            warnings: 0,
            digest: Some(digest.into()),
            virtual_ms: 1,
            ops: 1,
            error: None,
            sometimes: Default::default(),
            coverage: 0,
            features: Default::default(),
        }
    }

    fn shard(k: u64, results: Vec<SeedResult>) -> SweepResults {
        SweepResults {
            scenario: "quiet".into(),
            scenario_digest: "d".into(),
            build: "b".into(),
            seeds: "0..4".into(),
            shard: Some(format!("{k}/2")),
            stopped_early: false,
            checked_determinism: false,
            results,
        }
    }

    fn merged(parts: &[(&str, &SweepResults)]) -> Result<SweepResults, String> {
        merge(
            parts
                .iter()
                .map(|(n, p)| (n.to_string(), (*p).clone()))
                .collect(),
        )
    }

    #[test]
    fn shards_merge_only_when_they_cover_the_range_exactly_once() {
        let a = shard(1, vec![result(0, "a"), result(2, "c")]);
        let b = shard(2, vec![result(1, "b"), result(3, "d")]);
        let m = merged(&[("a.json", &a), ("b.json", &b)]).unwrap();
        assert_eq!(
            m.results.iter().map(|r| r.seed).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        assert_eq!(m.shard, None);
        let refused = |parts: &[(&str, &SweepResults)], says: &str| {
            let e = merged(parts).unwrap_err();
            assert!(e.contains(says), "{says:?} not in {e}");
        };
        // One shard of two; the same shard twice.
        refused(&[("a.json", &a)], "shards missing: 2/2");
        refused(&[("a.json", &a), ("a2.json", &a)], "both shard 1/2");
        // A seed outside its shard, or outside the range; a seed twice; a missing seed.
        refused(
            &[
                ("a.json", &a),
                ("z.json", &shard(2, vec![result(0, "z"), result(3, "d")])),
            ],
            "seed 0 is not one",
        );
        refused(
            &[
                ("a.json", &a),
                ("z.json", &shard(2, vec![result(1, "b"), result(5, "d")])),
            ],
            "seed 5 is not one",
        );
        refused(
            &[
                ("a.json", &a),
                ("z.json", &shard(2, vec![result(1, "b"), result(1, "b")])),
            ],
            "twice",
        );
        refused(
            &[("a.json", &a), ("z.json", &shard(2, vec![result(1, "b")]))],
            "holds 1 of the 2",
        );
        // Nonsense in seeds or shard; other scenario, build or content; mixed shard counts.
        let mut bad = b.clone();
        bad.seeds = "4..0".into();
        refused(&[("a.json", &a), ("z.json", &bad)], "seeds");
        let mut bad = b.clone();
        bad.shard = Some("3/2".into());
        refused(&[("a.json", &a), ("z.json", &bad)], "shard");
        for field in ["scenario", "build", "scenario_digest"] {
            let mut other = b.clone();
            match field {
                "scenario" => other.scenario = "swarm".into(),
                "build" => other.build = "x".into(),
                _ => other.scenario_digest = "x".into(),
            }
            refused(&[("a.json", &a), ("o.json", &other)], field);
        }
        let mut whole = a.clone();
        whole.shard = None;
        whole.results = vec![
            result(0, "a"),
            result(1, "b"),
            result(2, "c"),
            result(3, "d"),
        ];
        merged(&[("w.json", &whole)]).unwrap();
        refused(&[("w.json", &whole), ("b.json", &b)], "one of 1 shards");
        // A verdict that contradicts its findings.
        let mut lying = b.clone();
        lying.results[0].error = Some("boom".into());
        refused(&[("a.json", &a), ("l.json", &lying)], "says ok: true");
        // A shard that stopped early may miss seeds; the merge says it stopped.
        let mut early = b.clone();
        early.stopped_early = true;
        early.results.pop();
        assert!(
            merged(&[("a.json", &a), ("e.json", &early)])
                .unwrap()
                .stopped_early
        );
        assert!(merge(Vec::new()).is_err());
    }

    #[test]
    fn a_second_run_that_differs_fails_its_seed_and_says_how() {
        let mut s = crate::library::built_in("quiet").unwrap();
        s.settings.duration_ms = Some(1_000);
        let set = SeedSet {
            range: 0..3,
            shard: None,
        };
        let (mut results, stopped) = run_seeds(&s, &set, 2, false, |_, _, _| {}).unwrap();
        assert!(!stopped && results.iter().all(|r| r.ok));
        // Runs are deterministic: the second pass agrees with the first.
        assert_eq!(recheck(&s, &mut results, 1, |_, _| {}).unwrap(), 0);
        // A first pass that saw something else (as a nondeterministic run would) is caught.
        results[1].digest = Some("0".repeat(64));
        assert_eq!(recheck(&s, &mut results, 2, |_, _| {}).unwrap(), 1);
        let e = results[1].error.as_deref().unwrap();
        assert!(!results[1].ok && e.contains("nondeterministic"), "{e}");
        assert!(results[0].ok && results[2].ok);
    }
}
