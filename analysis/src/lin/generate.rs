//! Large linearizable register histories made from a seed, for benchmarks and property tests:
//! processes call one operation after another, each on a random key; every operation takes
//! effect at a random instant inside its call, and its result is what a register at that
//! instant gives. Some operations end unknown (they took effect or not, at random); a failed
//! compare-and-set is left out, as a checker would.

use super::models::{val, RegisterOp, RegisterOut};
use super::Operation;
use serde_json::json;
use std::collections::BTreeMap;
use tenure_core::rng::SplitMix64;

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Operations called (failed compare-and-sets are left out of the result).
    pub ops: usize,
    pub keys: usize,
    /// Processes calling at once.
    pub processes: usize,
    /// Of every 1,000 operations, how many end unknown.
    pub unknown_per_mille: u64,
    pub seed: u64,
}

/// A linearizable history of registers, as the checker takes it.
pub fn registers(spec: Spec) -> Vec<Operation<RegisterOp, RegisterOut>> {
    let mut rng = SplitMix64::new(spec.seed);
    let processes = spec.processes.max(1);
    let keys = spec.keys.max(1);
    // Each process's clock, and the name it calls under (a new one after an unknown outcome,
    // as Jepsen does).
    let mut clock = vec![0u64; processes];
    let mut name: Vec<u64> = (0..processes as u64).collect();
    // (instant of effect, op index) of every operation, and the operations.
    struct Planned {
        process: u64,
        key: String,
        call: u64,
        ret: u64,
        at: u64,
        kind: u64,
        unknown: bool,
        took_effect: bool,
    }
    let mut planned = Vec::with_capacity(spec.ops);
    for i in 0..spec.ops {
        // The process with the earliest clock calls next, so calls interleave.
        let p = (0..processes).min_by_key(|&p| (clock[p], p)).unwrap_or(0);
        let call = clock[p] + rng.below(10);
        let ret = call + 1 + rng.below(30);
        let at = call + rng.below(ret - call);
        let unknown = rng.below(1000) < spec.unknown_per_mille;
        planned.push(Planned {
            process: name[p],
            key: format!("k{}", rng.below(keys as u64)),
            call: call * 2,
            ret: ret * 2 + 1,
            at: at * 2 + 1,
            kind: rng.below(10),
            unknown,
            took_effect: !unknown || rng.below(2) == 0,
        });
        clock[p] = ret + 1;
        if unknown {
            name[p] += processes as u64;
        }
        let _ = i;
    }
    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.sort_by_key(|&i| (planned[i].at, i));
    let mut state: BTreeMap<&str, u64> = BTreeMap::new();
    let mut out: Vec<Option<Operation<RegisterOp, RegisterOut>>> =
        (0..planned.len()).map(|_| None).collect();
    for (n, &i) in order.iter().enumerate() {
        let p = &planned[i];
        let key = p.key.clone();
        let current = state.get(p.key.as_str()).copied();
        let fresh = n as u64 + 1;
        let (input, output) = match p.kind {
            0..=3 => (
                RegisterOp::Read { key },
                RegisterOut::Read(current.map(|v| val(&json!(v)))),
            ),
            4..=6 => {
                if p.took_effect {
                    state.insert(&p.key, fresh);
                }
                (
                    RegisterOp::Write {
                        key,
                        value: val(&json!(fresh)),
                    },
                    RegisterOut::Done,
                )
            }
            _ => {
                // Mostly the current value, so most succeed; a failed one is left out.
                let old = match current {
                    Some(v) if rng.below(4) != 0 => v,
                    _ => fresh + 1_000_000_000,
                };
                if Some(old) != current {
                    if p.unknown {
                        // An unknown cas that could not succeed.
                    } else {
                        continue;
                    }
                } else if p.took_effect {
                    state.insert(&p.key, fresh);
                }
                (
                    RegisterOp::Cas {
                        key,
                        old: val(&json!(old)),
                        new: val(&json!(fresh)),
                    },
                    RegisterOut::Done,
                )
            }
        };
        out[i] = Some(Operation {
            process: p.process.to_string(),
            call: p.call,
            ret: (!p.unknown).then_some(p.ret),
            input,
            output: (!p.unknown).then_some(output),
            source: i + 1,
        });
    }
    out.into_iter().flatten().collect()
}
