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
//! A memo hit is decided on the hash of the linearized set, not the set itself: a collision
//! could only prune a configuration that was never explored; with 128 bits and a billion
//! configurations its probability is below 10^-20.

pub mod edn;
pub mod generate;
pub mod input;
pub mod models;

use rustc_hash::{FxHashMap, FxHashSet};
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

/// Most configurations (set of linearized operations, model state) one search remembers: a
/// search that would remember more answers `unknown`, whatever its step budget, so memory
/// stays bounded (some hundreds of MiB for small states).
pub const MAX_MEMO: usize = 4_000_000;

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

/// Checks `ops` against `model`, part by part.
pub fn check<M: Model>(
    model: &M,
    ops: &[Operation<M::Input, M::Output>],
    budget: Budget,
) -> Checked {
    let started = Instant::now();
    let mut steps_left = budget.max_steps.unwrap_or(u64::MAX);
    let deadline = budget.max_time.map(|d| started + d);
    let mut parts = Vec::new();
    let mut total_steps = 0;
    let redundant = model.redundant(ops);
    for mut members in partition(model, ops) {
        members.retain(|&i| !redundant[i]);
        let keys = part_keys(model, ops, &members);
        let (verdict, steps, failure) =
            if steps_left == 0 || deadline.is_some_and(|d| Instant::now() >= d) {
                (Verdict::Unknown, 0, None)
            } else {
                search(model, ops, &members, steps_left, deadline)
            };
        steps_left = steps_left.saturating_sub(steps);
        total_steps += steps;
        parts.push(Part {
            keys,
            ops: members.len(),
            verdict,
            steps,
            failure,
        });
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
        steps: total_steps,
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
                keys.insert(format!("[{from}, {to})"));
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

const NIL: u32 = u32::MAX;
const HEAD: u32 = 0;

/// A 128-bit Zobrist value for operation `i` (SplitMix64, fixed seed: the same every run).
fn zobrist(i: usize) -> u128 {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let i = i as u64;
    ((mix(2 * i) as u128) << 64) | mix(2 * i + 1) as u128
}

/// How many states of the deepest point a failure reports.
const STATES_SHOWN: usize = 4;

/// Searches one part. Returns the verdict, the steps taken and, if not linearizable, why.
fn search<M: Model>(
    model: &M,
    ops: &[Operation<M::Input, M::Output>],
    members: &[usize],
    max_steps: u64,
    deadline: Option<Instant>,
) -> (Verdict, u64, Option<Failure>) {
    let n = members.len();
    // Entries 1..=2n: (time, is_return, local op). Calls sort before returns at equal times
    // (so they count as concurrent: the lenient reading).
    let mut order: Vec<(u64, bool, u32)> = Vec::with_capacity(2 * n);
    for (j, &i) in members.iter().enumerate() {
        let o = &ops[i];
        order.push((o.call, false, j as u32));
        order.push((o.ret.unwrap_or(u64::MAX), true, j as u32));
    }
    order.sort_unstable();
    let len = 2 * n + 1;
    let mut next = vec![NIL; len];
    let mut prev = vec![NIL; len];
    let mut call_at = vec![0u32; n];
    let mut ret_at = vec![0u32; n];
    let mut is_ret = vec![false; len];
    let mut op_at = vec![0u32; len];
    // How many operations with a known return come before each entry.
    let mut returned_before = vec![0usize; len];
    let mut returned = 0;
    for (pos, &(_, r, j)) in order.iter().enumerate() {
        let e = pos as u32 + 1;
        prev[e as usize] = e - 1;
        next[(e - 1) as usize] = e;
        is_ret[e as usize] = r;
        op_at[e as usize] = j;
        returned_before[e as usize] = returned;
        if r {
            ret_at[j as usize] = e;
            if ops[members[j as usize]].ret.is_some() {
                returned += 1;
            }
        } else {
            call_at[j as usize] = e;
        }
    }
    let lift = |next: &mut Vec<u32>, prev: &mut Vec<u32>, j: usize| {
        for e in [call_at[j], ret_at[j]] {
            let (p, q) = (prev[e as usize], next[e as usize]);
            next[p as usize] = q;
            if q != NIL {
                prev[q as usize] = p;
            }
        }
    };
    let unlift = |next: &mut Vec<u32>, prev: &mut Vec<u32>, j: usize| {
        for e in [ret_at[j], call_at[j]] {
            let (p, q) = (prev[e as usize], next[e as usize]);
            next[p as usize] = e;
            if q != NIL {
                prev[q as usize] = e;
            }
        }
    };

    let mut memo: FxHashSet<(u128, M::State)> = FxHashSet::default();
    let mut stack: Vec<(u32, M::State)> = Vec::new();
    let mut state = model.init();
    let mut set: u128 = 0;
    let mut steps: u64 = 0;
    // The deepest return the search could not pass, and the states seen there.
    let mut deepest: u32 = 0;
    let mut deepest_states: Vec<M::State> = Vec::new();
    let mut e = next[HEAD as usize];
    loop {
        if next[HEAD as usize] == NIL {
            return (Verdict::Linearizable, steps, None);
        }
        steps += 1;
        if steps >= max_steps
            || memo.len() >= MAX_MEMO
            || (steps.is_multiple_of(4096) && deadline.is_some_and(|d| Instant::now() >= d))
        {
            return (Verdict::Unknown, steps, None);
        }
        let j = op_at[e as usize] as usize;
        let o = &ops[members[j]];
        if !is_ret[e as usize] {
            if let Some(s2) = model.step(&state, &o.input, o.output.as_ref()) {
                let set2 = set ^ zobrist(j);
                if memo.insert((set2, s2.clone())) {
                    stack.push((j as u32, std::mem::replace(&mut state, s2)));
                    set = set2;
                    lift(&mut next, &mut prev, j);
                    e = next[HEAD as usize];
                    continue;
                }
            }
            e = next[e as usize];
        } else {
            if e > deepest {
                deepest = e;
                deepest_states.clear();
            }
            if e == deepest
                && deepest_states.len() < STATES_SHOWN
                && !deepest_states.contains(&state)
            {
                deepest_states.push(state.clone());
            }
            let Some((k, s)) = stack.pop() else {
                break;
            };
            state = s;
            set ^= zobrist(k as usize);
            unlift(&mut next, &mut prev, k as usize);
            e = next[call_at[k as usize] as usize];
        }
    }
    let j = op_at[deepest as usize] as usize;
    let i = members[j];
    let o = &ops[i];
    let operation = model.describe(&o.input, o.output.as_ref());
    let states: Vec<String> = deepest_states
        .iter()
        .map(|s| model.describe_state(s))
        .collect();
    let prefix_ops = returned_before[deepest as usize];
    let message = format!(
        "{operation} by process {} (line {}) cannot be placed: the {prefix_ops} operations \
         that returned before it are linearizable, but in no order that lets it return what it \
         did; the {} could be in state {} then",
        o.process,
        o.source,
        model.name(),
        states.join(" or ")
    );
    (
        Verdict::NotLinearizable,
        steps,
        Some(Failure {
            op: i,
            source: o.source,
            prefix_ops,
            operation,
            states,
            message,
        }),
    )
}
