//! The search of one part, resumable: [`Search::run`] takes steps until the part is decided or
//! its slice of steps is spent, and the next call goes on where it stopped (nothing is redone).
//! [`super::check`] gives every part slices in turn, so a part that fails quickly is found
//! before a hard one has eaten the budget.
//!
//! Wing and Gong's walk over a dancing-links list of calls and returns, in time order, with
//! Lowe's memo of configurations (linearized set, model state), each kept as one 128-bit key:
//! the set's Zobrist hash XOR the state's 64-bit foldhash spread over 128 bits by an odd
//! multiplier. Keys, not states: an entry is 16 bytes instead of a state's clone (a memo of
//! millions of entries is most of a check's memory traffic), and nothing is compared but
//! integers. Two configurations share a key only when their sets differ and two random 128-bit
//! values happen to meet (2^-128 a pair), or their sets agree and their states' 64-bit hashes
//! collide (2^-64 a pair, and few states share a set); a false hit could only prune a
//! configuration never explored, that is, make a linearizable part look not linearizable.

use super::{Failure, Model, Operation, Verdict, MAX_MEMO};
use rustc_hash::FxHashSet;
use std::time::Instant;

const NIL: u32 = u32::MAX;
const HEAD: u32 = 0;

/// How many states of the deepest point a failure reports.
const STATES_SHOWN: usize = 4;

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

/// A state's part of a memo key: its 64-bit foldhash (fixed seed: the same every run),
/// spread over 128 bits by an odd multiplier (a bijection, so distinct hashes stay distinct).
fn state_key<S: std::hash::Hash>(s: &S) -> u128 {
    use std::hash::BuildHasher;
    const SEED: u64 = 0x7465_6e75_7265_2d31;
    const SPREAD: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835;
    let h = foldhash::fast::FixedState::with_seed(SEED).hash_one(s);
    (h as u128).wrapping_mul(SPREAD)
}

thread_local! {
    /// Memo tables of finished searches, emptied, for the next search on this thread: a
    /// table of a million entries is megabytes of fresh pages (huge pages, zeroed by the
    /// kernel on first touch) when allocated anew, which cost more than the search itself.
    static MEMOS: std::cell::RefCell<Vec<FxHashSet<u128>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Most memo tables kept for reuse per thread, the smallest and the largest kept (in
/// entries). A search starts with a table of its own and moves to a pooled one when it
/// grows past `POOLED_FROM`: small tables cost nothing to make, and handing them around
/// would cost more than it saves.
const POOLED: usize = 4;
const POOLED_FROM: usize = 1 << 14;
const POOLED_CAPACITY: usize = 2 << 20;

/// The largest pooled table (kept sorted by capacity), if any.
fn take_memo() -> Option<FxHashSet<u128>> {
    MEMOS.with(|m| m.borrow_mut().pop())
}

/// Keeps `memo` for reuse if it is large and among the largest few.
fn give_memo(mut memo: FxHashSet<u128>) {
    if memo.capacity() < POOLED_FROM || memo.capacity() > POOLED_CAPACITY {
        return;
    }
    memo.clear();
    MEMOS.with(|m| {
        let mut m = m.borrow_mut();
        let at = m.partition_point(|t| t.capacity() < memo.capacity());
        m.insert(at, memo);
        if m.len() > POOLED {
            m.remove(0);
        }
    });
}

/// Where a call to [`Search::run`] left the part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Decided.
    Done(Verdict, Option<Failure>),
    /// Its slice of steps is spent; call again to go on.
    Paused,
    /// The memo is full, or the deadline passed: it stays undecided.
    GaveUp,
}

impl<M: Model> Drop for Search<'_, M> {
    fn drop(&mut self) {
        give_memo(std::mem::take(&mut self.memo));
    }
}

/// The state of one part's search.
pub struct Search<'a, M: Model> {
    model: &'a M,
    ops: &'a [Operation<M::Input, M::Output>],
    members: Vec<usize>,
    next: Vec<u32>,
    prev: Vec<u32>,
    call_at: Vec<u32>,
    ret_at: Vec<u32>,
    is_ret: Vec<bool>,
    op_at: Vec<u32>,
    /// How many operations with a known return come before each entry.
    returned_before: Vec<usize>,
    memo: FxHashSet<u128>,
    stack: Vec<(u32, M::State)>,
    state: M::State,
    set: u128,
    /// Steps taken so far, over every call.
    pub steps: u64,
    /// The deepest return the search could not pass, and the states seen there.
    deepest: u32,
    deepest_states: Vec<M::State>,
    /// The entry the walk is at.
    e: u32,
}

impl<'a, M: Model> Search<'a, M> {
    pub fn new(
        model: &'a M,
        ops: &'a [Operation<M::Input, M::Output>],
        members: Vec<usize>,
    ) -> Self {
        let n = members.len();
        // Entries 1..=2n: (time, is_return, local op). Calls sort before returns at equal
        // times (so they count as concurrent: the lenient reading).
        let mut order: Vec<(u64, bool, u32)> = Vec::with_capacity(2 * n);
        for (j, &i) in members.iter().enumerate() {
            let o = &ops[i];
            order.push((o.call, false, j as u32));
            order.push((o.ret.unwrap_or(u64::MAX), true, j as u32));
        }
        order.sort_unstable();
        let len = 2 * n + 1;
        let mut s = Search {
            model,
            ops,
            next: vec![NIL; len],
            prev: vec![NIL; len],
            call_at: vec![0; n],
            ret_at: vec![0; n],
            is_ret: vec![false; len],
            op_at: vec![0; len],
            returned_before: vec![0; len],
            memo: FxHashSet::default(),
            stack: Vec::new(),
            state: model.init(),
            set: 0,
            steps: 0,
            deepest: 0,
            deepest_states: Vec::new(),
            e: NIL,
            members,
        };
        let mut returned = 0;
        for (pos, &(_, r, j)) in order.iter().enumerate() {
            let e = pos as u32 + 1;
            s.prev[e as usize] = e - 1;
            s.next[(e - 1) as usize] = e;
            s.is_ret[e as usize] = r;
            s.op_at[e as usize] = j;
            s.returned_before[e as usize] = returned;
            if r {
                s.ret_at[j as usize] = e;
                if ops[s.members[j as usize]].ret.is_some() {
                    returned += 1;
                }
            } else {
                s.call_at[j as usize] = e;
            }
        }
        s.e = s.next[HEAD as usize];
        s
    }

    /// Configurations remembered.
    pub fn memo_len(&self) -> usize {
        self.memo.len()
    }

    /// Moves the memo into a pooled table, if one is larger (see `POOLED_FROM`).
    fn grow_memo(&mut self) {
        if let Some(mut big) = take_memo() {
            if big.capacity() > self.memo.capacity() {
                big.extend(self.memo.drain());
                give_memo(std::mem::replace(&mut self.memo, big));
            } else {
                give_memo(big);
            }
        }
    }

    /// Takes operation `j` out of the list.
    fn lift(&mut self, j: usize) {
        for e in [self.call_at[j], self.ret_at[j]] {
            let (p, q) = (self.prev[e as usize], self.next[e as usize]);
            self.next[p as usize] = q;
            if q != NIL {
                self.prev[q as usize] = p;
            }
        }
    }

    /// Puts operation `j` back where it was.
    fn unlift(&mut self, j: usize) {
        for e in [self.ret_at[j], self.call_at[j]] {
            let (p, q) = (self.prev[e as usize], self.next[e as usize]);
            self.next[p as usize] = e;
            if q != NIL {
                self.prev[q as usize] = e;
            }
        }
    }

    /// Goes on until the part is decided, `until` steps have been taken in all, the memo is
    /// full or `deadline` passes.
    pub fn run(&mut self, until: u64, deadline: Option<Instant>) -> Progress {
        loop {
            if self.next[HEAD as usize] == NIL {
                return Progress::Done(Verdict::Linearizable, None);
            }
            if self.steps >= until {
                return Progress::Paused;
            }
            self.steps += 1;
            if self.memo.len() >= MAX_MEMO
                || (self.steps.is_multiple_of(4096)
                    && deadline.is_some_and(|d| Instant::now() >= d))
            {
                return Progress::GaveUp;
            }
            let e = self.e;
            let j = self.op_at[e as usize] as usize;
            let o = &self.ops[self.members[j]];
            if !self.is_ret[e as usize] {
                if let Some(s2) = self.model.step(&self.state, &o.input, o.output.as_ref()) {
                    let set2 = self.set ^ zobrist(j);
                    if self.memo.len() == POOLED_FROM {
                        self.grow_memo();
                    }
                    if self.memo.insert(set2 ^ state_key(&s2)) {
                        let old = std::mem::replace(&mut self.state, s2);
                        self.stack.push((j as u32, old));
                        self.set = set2;
                        self.lift(j);
                        self.e = self.next[HEAD as usize];
                        continue;
                    }
                }
                self.e = self.next[e as usize];
            } else {
                if e > self.deepest {
                    self.deepest = e;
                    self.deepest_states.clear();
                }
                if e == self.deepest
                    && self.deepest_states.len() < STATES_SHOWN
                    && !self.deepest_states.contains(&self.state)
                {
                    self.deepest_states.push(self.state.clone());
                }
                let Some((k, s)) = self.stack.pop() else {
                    return Progress::Done(Verdict::NotLinearizable, Some(self.failure()));
                };
                self.state = s;
                self.set ^= zobrist(k as usize);
                self.unlift(k as usize);
                self.e = self.next[self.call_at[k as usize] as usize];
            }
        }
    }

    /// Why the part is not linearizable: the deepest return the search could not pass.
    fn failure(&self) -> Failure {
        let model = self.model;
        let j = self.op_at[self.deepest as usize] as usize;
        let i = self.members[j];
        let o = &self.ops[i];
        let operation = model.describe(&o.input, o.output.as_ref());
        let states: Vec<String> = self
            .deepest_states
            .iter()
            .map(|s| model.describe_state(s))
            .collect();
        let prefix_ops = self.returned_before[self.deepest as usize];
        let message = format!(
            "{operation} by process {} (line {}) cannot be placed: the {prefix_ops} operations \
             that returned before it are linearizable, but in no order that lets it return what \
             it did; the {} could be in state {} then",
            o.process,
            o.source,
            model.name(),
            states.join(" or ")
        );
        Failure {
            op: i,
            source: o.source,
            prefix_ops,
            operation,
            states,
            message,
        }
    }
}
