//! Many seeds of one scenario: seed ranges and shards from the command line, a parallel run
//! with progress, results as JSON that shards on separate machines write and `tenure merge`
//! joins.

use crate::library::Scenario;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// One broken rule of one seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: String,
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
}

/// A sweep's results, or a shard's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepResults {
    pub scenario: String,
    /// The seed range swept (`A..B`).
    pub seeds: String,
    /// `K/N` when this is one shard of the range.
    pub shard: Option<String>,
    /// Whether the sweep stopped at its first failure (then some seeds were not run).
    pub stopped_early: bool,
    pub results: Vec<SeedResult>,
}

impl SweepResults {
    pub fn failures(&self) -> impl Iterator<Item = &SeedResult> {
        self.results.iter().filter(|r| !r.ok)
    }
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
            a..a.saturating_add(1)
        }
    };
    if range.is_empty() {
        return Err(format!(
            "seeds: {text:?} is empty (write A..B with A < B; B is not included)"
        ));
    }
    Ok(range)
}

/// Reads `K/N`: shard K (1-based) of N.
pub fn parse_shard(text: &str) -> Result<(u64, u64), String> {
    let bad = || format!("shard: {text:?} is not K/N with 1 <= K <= N");
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let (k, n) = (
        k.trim().parse::<u64>().map_err(|_| bad())?,
        n.trim().parse::<u64>().map_err(|_| bad())?,
    );
    if k == 0 || n == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

/// The seeds of shard `(k, n)` of `range`: every n-th seed from the k-th, so shards take
/// equal shares however the range's cost is spread.
pub fn shard_seeds(range: Range<u64>, shard: Option<(u64, u64)>) -> Vec<u64> {
    match shard {
        None => range.collect(),
        Some((k, n)) => range
            .enumerate()
            .filter(|(i, _)| *i as u64 % n == k - 1)
            .map(|(_, s)| s)
            .collect(),
    }
}

/// Runs `seeds` of `scenario`, `jobs` at a time; `progress(done, total, failed)` after each.
/// With `stop_on_failure`, no new seed starts after the first failure.
pub fn run_seeds(
    scenario: &Scenario,
    seeds: &[u64],
    jobs: usize,
    stop_on_failure: bool,
    progress: impl Fn(usize, usize, usize) + Sync,
) -> Result<(Vec<SeedResult>, bool), String> {
    let config = scenario.run_config()?;
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let failed = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(&seed) = seeds.get(i) else { return };
                let r = one(&config, seed);
                if !r.ok {
                    failed.fetch_add(1, Ordering::SeqCst);
                    if stop_on_failure {
                        stop.store(true, Ordering::SeqCst);
                    }
                }
                let done = {
                    let mut all = results.lock().unwrap();
                    all.push(r);
                    all.len()
                };
                progress(done, seeds.len(), failed.load(Ordering::SeqCst));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|r| r.seed);
    let stopped = results.len() < seeds.len();
    Ok((results, stopped))
}

/// One seed, summarised.
pub fn one(config: &tenure_sim::RunConfig, seed: u64) -> SeedResult {
    match tenure_sim::run(config, seed) {
        Ok(r) => SeedResult {
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
        },
        Err(e) => SeedResult {
            seed,
            ok: false,
            violations: Vec::new(),
            warnings: 0,
            digest: None,
            virtual_ms: e.history.records.last().map_or(0, |r| r.t_us / 1000),
            ops: 0,
            error: Some(e.to_string()),
        },
    }
}

/// Joins shards of one sweep: same scenario and range, no seed twice with different results.
pub fn merge(parts: Vec<(String, SweepResults)>) -> Result<SweepResults, String> {
    let Some((_, first)) = parts.first() else {
        return Err("merge: no result files given".into());
    };
    let (scenario, seeds) = (first.scenario.clone(), first.seeds.clone());
    let mut all: std::collections::BTreeMap<u64, (SeedResult, String)> = Default::default();
    let mut stopped = false;
    for (origin, p) in &parts {
        if p.scenario != scenario || p.seeds != seeds {
            return Err(format!(
                "merge: {origin} holds {} seeds {}, not {scenario} seeds {seeds}",
                p.scenario, p.seeds
            ));
        }
        stopped |= p.stopped_early;
        for r in &p.results {
            if let Some((prev, from)) = all.get(&r.seed) {
                if prev != r {
                    return Err(format!(
                        "merge: seed {} differs between {from} and {origin} (digests {:?} and {:?}): were they built from the same commit?",
                        r.seed, prev.digest, r.digest
                    ));
                }
            }
            all.insert(r.seed, (r.clone(), origin.clone()));
        }
    }
    Ok(SweepResults {
        scenario,
        seeds,
        shard: None,
        stopped_early: stopped,
        results: all.into_values().map(|(r, _)| r).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut all: Vec<u64> = (1..=3)
            .flat_map(|k| shard_seeds(10..20, Some((k, 3))))
            .collect();
        all.sort();
        assert_eq!(all, (10..20).collect::<Vec<_>>());
        assert_eq!(shard_seeds(10..20, Some((2, 3))), vec![11, 14, 17]);
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
        }
    }

    fn shard(k: u64, results: Vec<SeedResult>) -> SweepResults {
        SweepResults {
            scenario: "quiet".into(),
            seeds: "0..4".into(),
            shard: Some(format!("{k}/2")),
            stopped_early: false,
            results,
        }
    }

    #[test]
    fn shards_merge_in_seed_order_and_conflicts_are_refused() {
        let a = shard(1, vec![result(0, "a"), result(2, "c")]);
        let b = shard(2, vec![result(1, "b"), result(3, "d")]);
        let m = merge(vec![("a.json".into(), a.clone()), ("b.json".into(), b)]).unwrap();
        assert_eq!(
            m.results.iter().map(|r| r.seed).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        assert_eq!(m.shard, None);
        let clash = shard(2, vec![result(0, "z")]);
        let e = merge(vec![("a.json".into(), a.clone()), ("z.json".into(), clash)]).unwrap_err();
        assert!(e.contains("seed 0") && e.contains("z.json"), "{e}");
        let mut other = a.clone();
        other.scenario = "swarm".into();
        assert!(merge(vec![("a".into(), a), ("o".into(), other)]).is_err());
        assert!(merge(Vec::new()).is_err());
    }
}
