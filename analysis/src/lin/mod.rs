//! Linearizability checking (S13): is there an order of the operations, each placed between
//! its call and its return, in which a sequential model gives every result that was observed?
//!
//! The search is Wing and Gong's, with Lowe's memoization (as in Knossos' "linear" and
//! Porcupine): walk the calls and returns in time order; at a call, try to linearize that
//! operation now (the model must accept its observed output); at a return whose operation is not
//! yet linearized, backtrack. A configuration (the set of linearized operations, the model's
//! state) is explored once: the memo holds a 128-bit Zobrist hash of the set with the state.
//!
//! - **P-compositionality**: operations are split by the keys they touch (a union-find over
//!   keys, ranges and "everything"), and each part is checked alone: a history is linearizable
//!   exactly when every part is.
//! - **Indeterminate operations** (`info`, or no completion at all) may take effect at any time
//!   after their call, or never: their return is at infinity and their output unknown, so they
//!   can always be placed last, where they change nothing anyone saw.
//! - **Failed operations** surely had no effect and are left out.
//! - **Budget**: a limit on search steps (deterministic) and on wall time; a part that runs out
//!   is `unknown`, never a guess.
//! - **Longest linearizable prefix**: when a part is not linearizable, the report names the
//!   first operation whose return the search could never get past, how many operations returned
//!   before it (that prefix is linearizable) and the states the model could be in there.
//!
//! A memo hit is decided on a 128-bit key of the configuration (the linearized set's Zobrist
//! hash with the state's hash, `search.rs`), not the configuration itself: a collision could
//! only prune a configuration that was never explored; with a billion configurations its
//! probability is below 10^-9.

pub mod edn;
pub mod generate;
pub mod input;
mod kv;
pub mod models;
pub mod multi;
mod search;
mod storage;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A sequential specification.
pub trait Model {
    type State: Clone + Eq + Hash + Debug;
    type Input: Clone + Debug;
    type Output: Clone + Debug;

    /// The model's name on the command line (`register`, `kv`, ...).
    fn name(&self) -> &'static str;
    /// The state before any operation.
    fn init(&self) -> Self::State;
    /// The state after `input` applied to `state`, if the model can give `output` (`None`:
    /// the output is unknown; the model must then accept, taking effect if it can).
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;
    /// What the operation touches, for splitting a history into independent parts.
    fn footprint(&self, input: &Self::Input) -> Footprint;
    /// The one key the operation touches, when its footprint is exactly that key: the same
    /// answer as `footprint`, without allocating (a million-operation history is split on
    /// this).
    fn key<'a>(&self, _input: &'a Self::Input) -> Option<&'a str> {
        None
    }
    /// The operation, for a person: `read -> 3`, `cas(1, 2)`.
    fn describe(&self, input: &Self::Input, output: Option<&Self::Output>) -> String;
    /// A state, for a person.
    fn describe_state(&self, state: &Self::State) -> String;
    /// Operations the search may leave out without changing the verdict (an unknown write of
    /// a value nobody observed, for a register); `true` for each such operation. Leaving them
    /// out is what keeps many unknown outcomes from making the search exponential.
    fn redundant(&self, ops: &[Operation<Self::Input, Self::Output>]) -> Vec<bool> {
        vec![false; ops.len()]
    }
}

/// The keys an operation touches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Footprint {
    Keys(Vec<String>),
    /// Every key in `[from, to)` (a range read).
    Range {
        from: String,
        to: String,
    },
    /// Everything: the operation joins every part.
    All,
}

/// One operation of a history, in the model's terms.
#[derive(Clone, Debug, PartialEq)]
pub struct Operation<I, O> {
    /// Who called it (for reports).
    pub process: String,
    /// When it was called and when it returned, on any clock where `call < ret` and a return
    /// before a call means "happened before" (history positions will do). `None`: it never
    /// returned (indeterminate).
    pub call: u64,
    pub ret: Option<u64>,
    pub input: I,
    /// What it returned; `None` if that is unknown.
    pub output: Option<O>,
    /// Where it came from (a line or record number), for reports.
    pub source: usize,
}

/// Most configurations (set of linearized operations, model state) a check remembers, over
/// all the parts it is searching: past it the undecided parts answer `unknown`, whatever the
/// step budget, so memory stays bounded: 16-byte keys, the most a table of 2^24 slots holds
/// (14.7 million), about 450 MiB at the peak of its last growth.
pub const MAX_MEMO: usize = (1 << 24) / 8 * 7;

/// How much searching a check may do before it answers `unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Search steps over the whole check (deterministic).
    pub max_steps: Option<u64>,
    /// Wall time over the whole check (not deterministic: never used inside a run).
    pub max_time: Option<Duration>,
}

impl Default for Budget {
    /// 50 million steps, no time limit.
    fn default() -> Budget {
        Budget {
            max_steps: Some(50_000_000),
            max_time: None,
        }
    }
}

/// The answer for a history or one of its parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Linearizable,
    NotLinearizable,
    /// The budget ran out first.
    Unknown,
}

/// Why a part is not linearizable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Index (into the operations given) of the first operation that cannot be placed: the
    /// search never got past its return.
    pub op: usize,
    /// Its source (line or record).
    pub source: usize,
    /// The operations (of this part) that returned before it: a linearizable prefix, the
    /// longest the search found.
    pub prefix_ops: usize,
    /// The operation, for a person.
    pub operation: String,
    /// States the model could be in at that point (at most a few).
    pub states: Vec<String>,
    /// One sentence a person can act on.
    pub message: String,
}

/// The result for one independent part of a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// The keys of the part (the first few).
    pub keys: Vec<String>,
    pub ops: usize,
    pub verdict: Verdict,
    pub steps: u64,
    pub failure: Option<Failure>,
}

/// The result for a whole history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checked {
    pub model: String,
    pub verdict: Verdict,
    /// Operations checked (failed operations are left out).
    pub ops: usize,
    pub steps: u64,
    pub parts: Vec<Part>,
}

impl Checked {
    /// The failures, part by part.
    pub fn failures(&self) -> impl Iterator<Item = (&Part, &Failure)> {
        self.parts
            .iter()
            .filter_map(|p| p.failure.as_ref().map(|f| (p, f)))
    }
}

/// Where a part's search is.
enum Slot<'a, M: Model> {
    Waiting(Vec<usize>),
    Searching(Box<search::Search<'a, M>>),
    Done,
}

/// The steps each undecided part gets in the first round of [`check`]; every round doubles it.
const FIRST_SLICE: u64 = 1_000;

/// Checks `ops` against `model`, part by part. The parts are searched in rounds, each
/// undecided part taking a slice of steps in turn (the slice doubling every round), and the
/// search stops at the end of the round in which a part is found not linearizable: a history
/// is linearizable only when every part is, so one failing part decides it, and a part that
/// fails after a thousand steps is not kept waiting behind one that would take a billion
/// (porcupine races its parts on threads for the same reason; rounds keep this deterministic).
/// Parts left undecided then are `unknown` in the result; the history's verdict is `not
/// linearizable`.
pub fn check<M: Model>(
    model: &M,
    ops: &[Operation<M::Input, M::Output>],
    budget: Budget,
) -> Checked {
    let started = Instant::now();
    let max_steps = budget.max_steps.unwrap_or(u64::MAX);
    let deadline = budget.max_time.map(|d| started + d);
    let redundant = model.redundant(ops);
    let mut parts = Vec::new();
    let mut searches = Vec::new();
    for mut members in partition(model, ops) {
        members.retain(|&i| !redundant[i]);
        parts.push(Part {
            keys: part_keys(model, ops, &members),
            ops: members.len(),
            verdict: Verdict::Unknown,
            steps: 0,
            failure: None,
        });
        searches.push(Slot::Waiting(members));
    }
    let mut spent: u64 = 0;
    let mut slice = FIRST_SLICE;
    // What the live searches remember, in all: bounded by MAX_MEMO like one search's.
    let mut memo_total = 0;
    'rounds: loop {
        let mut paused = false;
        let mut failed = false;
        for (part, slot) in parts.iter_mut().zip(searches.iter_mut()) {
            // A part's search starts at its first turn: one decided in its first slice (most
            // are) comes and goes before the next starts, and their tables are reused.
            if let Slot::Waiting(members) = slot {
                *slot = Slot::Searching(Box::new(search::Search::new(
                    model,
                    ops,
                    std::mem::take(members),
                )));
            }
            let Slot::Searching(search) = slot else {
                continue;
            };
            let left = max_steps.saturating_sub(spent);
            if left == 0 || deadline.is_some_and(|d| Instant::now() >= d) {
                break 'rounds;
            }
            if memo_total >= MAX_MEMO {
                break 'rounds;
            }
            let (before, memo_before) = (search.steps, search.memo_len());
            let progress = search.run(before.saturating_add(slice.min(left)), deadline);
            spent += search.steps - before;
            memo_total = memo_total + search.memo_len() - memo_before;
            part.steps = search.steps;
            match progress {
                search::Progress::Paused => {
                    paused = true;
                    continue;
                }
                search::Progress::Done(verdict, failure) => {
                    failed |= verdict == Verdict::NotLinearizable;
                    part.verdict = verdict;
                    part.failure = failure;
                }
                search::Progress::GaveUp => {}
            }
            // Decided or given up: its memory goes now.
            memo_total -= search.memo_len();
            *slot = Slot::Done;
        }
        if failed || !paused {
            break;
        }
        slice = slice.saturating_mul(2);
    }
    let verdict = if parts.iter().any(|p| p.verdict == Verdict::NotLinearizable) {
        Verdict::NotLinearizable
    } else if parts.iter().any(|p| p.verdict == Verdict::Unknown) {
        Verdict::Unknown
    } else {
        Verdict::Linearizable
    };
    Checked {
        model: model.name().to_string(),
        verdict,
        ops: ops.len(),
        steps: spent,
        parts,
    }
}

fn part_keys<M: Model>(
    model: &M,
    ops: &[Operation<M::Input, M::Output>],
    members: &[usize],
) -> Vec<String> {
    let mut keys = std::collections::BTreeSet::new();
    for &i in members {
        if let Some(k) = model.key(&ops[i].input) {
            if !keys.contains(k) {
                keys.insert(k.to_string());
            }
            continue;
        }
        match model.footprint(&ops[i].input) {
            Footprint::Keys(ks) => keys.extend(ks),
            Footprint::Range { from, to } => {
                keys.insert(format!("[{}, {})", from.escape_debug(), to.escape_debug()));
            }
            Footprint::All => {
                keys.insert("*".to_string());
            }
        }
        if keys.len() > 8 {
            break;
        }
    }
    keys.into_iter().take(8).collect()
}

/// Splits operations into independent parts: two operations are in one part when they touch a
/// common key (transitively). Parts come in order of their first operation.
///
/// The union-find links toward the smaller index, so each part's root is its first operation
/// and the parts do not depend on the order of the unions (nor on the hash map's order).
fn partition<M: Model>(model: &M, ops: &[Operation<M::Input, M::Output>]) -> Vec<Vec<usize>> {
    // Keys of footprints that are not a single key, kept for the map to borrow.
    let mut owned: Vec<(String, usize)> = Vec::new();
    let mut uf = UnionFind::new(ops.len());
    let mut all: Option<usize> = None;
    let mut ranges: Vec<(usize, String, String)> = Vec::new();
    let mut single: Vec<(&str, usize)> = Vec::with_capacity(ops.len());
    for (i, o) in ops.iter().enumerate() {
        if let Some(k) = model.key(&o.input) {
            single.push((k, i));
            continue;
        }
        match model.footprint(&o.input) {
            Footprint::Keys(ks) => owned.extend(ks.into_iter().map(|k| (k, i))),
            Footprint::Range { from, to } => ranges.push((i, from, to)),
            Footprint::All => {
                let o = *all.get_or_insert(i);
                uf.union(o, i);
            }
        }
    }
    let mut owner: FxHashMap<&str, usize> = FxHashMap::default();
    for (k, i) in single
        .into_iter()
        .chain(owned.iter().map(|(k, i)| (k.as_str(), *i)))
    {
        let o = *owner.entry(k).or_insert(i);
        uf.union(o, i);
    }
    if !ranges.is_empty() {
        let sorted: BTreeMap<&str, usize> = owner.iter().map(|(k, o)| (*k, *o)).collect();
        for (i, from, to) in &ranges {
            if from < to {
                for (_, &o) in sorted.range::<str, _>((
                    std::ops::Bound::Included(from.as_str()),
                    std::ops::Bound::Excluded(to.as_str()),
                )) {
                    uf.union(o, *i);
                }
            }
        }
    }
    if let Some(a) = all {
        for i in 0..ops.len() {
            uf.union(a, i);
        }
    }
    let mut slot = vec![usize::MAX; ops.len()];
    let mut parts: Vec<Vec<usize>> = Vec::new();
    for i in 0..ops.len() {
        let r = uf.find(i);
        if slot[r] == usize::MAX {
            slot[r] = parts.len();
            parts.push(Vec::new());
        }
        parts[slot[r]].push(i);
    }
    parts
}

struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> UnionFind {
        UnionFind {
            parent: (0..n).collect(),
        }
    }
    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }
    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            // The smaller index wins, so the result does not depend on the order of unions.
            let (lo, hi) = if a < b { (a, b) } else { (b, a) };
            self.parent[hi] = lo;
        }
    }
}
