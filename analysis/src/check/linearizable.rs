//! The rules checked by linearizability ([`crate::lin`]) of the clients' recorded calls: S13
//! (registers), S14/S16 (versioned storage), S3 (lease answers), S6 (lock keys).

use super::*;
use crate::history::History;
use tenure_core::rule::{self, Rule};

/// The linearizability budget inside a run: search steps only, so the answer is the same on
/// every machine.
const LINEARIZABILITY_STEPS: u64 = 20_000_000;

/// S13: the KV clients' `read`, `write` and `cas` of each key are linearizable (a register per
/// key; indeterminate outcomes may take effect any time after their call or never). A key the
/// budget could not decide is reported under the rule [`S13_UNKNOWN`] (the runner lists those
/// as warnings, not violations).
pub fn linearizability(h: &History) -> Vec<Violation> {
    linearizability_in(h, &paired(h))
}

pub(super) fn linearizability_in(h: &History, paired: &Paired) -> Vec<Violation> {
    use crate::lin::models::Register;
    linearizable(
        h,
        paired,
        &Register::default(),
        |r| {
            let k = r.key.as_deref().unwrap_or("");
            !k.starts_with("/storage/") && !k.starts_with("/kv/")
        },
        |_| rule::S13,
    )
}

/// S13 on hmetcd's keys (under `/kv/`, but for the distributed lock's, which S6 holds):
/// `put` (store), `get`, `watch` (a read of the value it returned), `delete`, `get_range`
/// (one read of every key in its range), `txn` (transaction, with its then and else) and
/// `tas` are linearizable against a key-value map. A range or a transaction is kept in one
/// part with every key it touches.
pub fn kv_calls(h: &History) -> Vec<Violation> {
    kv_calls_in(h, &paired(h))
}

pub(super) fn kv_calls_in(h: &History, paired: &Paired) -> Vec<Violation> {
    use crate::lin::models::Kv;
    linearizable(
        h,
        paired,
        &Kv::default(),
        |r| {
            let k = r.key.as_deref().unwrap_or("");
            k.starts_with("/kv/") && k != "/kv/hbtd_dist_lock"
        },
        |_| rule::S13,
    )
}

/// S14 and S16 on Storage records (keys under `/storage/`): `create`, `storage_get`,
/// `storage_get_range` (one read of every record in its range), `delete`, `cas_by_version`
/// and `wait_for_version_change` are linearizable against versioned storage:
/// versions are consecutive per record incarnation, no two compare-and-sets succeed on one
/// version, a failed one changes nothing, and a wait never returns while the version is the
/// one it waited on (S16). Expiries of records are operations of the system.
pub fn storage_versions(h: &History) -> Vec<Violation> {
    storage_versions_in(h, &paired(h))
}

pub(super) fn storage_versions_in(h: &History, paired: &Paired) -> Vec<Violation> {
    use crate::lin::models::Storage;
    linearizable(
        h,
        paired,
        &Storage,
        |r| r.key.as_deref().unwrap_or("").starts_with("/storage/"),
        |op| {
            if op.starts_with("wait_for_version_change") {
                rule::S16
            } else {
                rule::S14
            }
        },
    )
}

/// S3 honest answers, on the lease and leadership keys (under `/lease/`): every recorded
/// `claim` (granted a token, or `"denied"`), token `check` (`true`/`false`) and wait for
/// vacancy is linearizable against a lease per key whose expiries are the system's
/// operations. So a denied claim saw another holder during the call, a check that passed saw
/// the holder, a grant found the lease free (or the claimant holding it under that token), and
/// a wait returned while nobody held it.
pub fn honest_answers(h: &History) -> Vec<Violation> {
    honest_answers_in(h, &paired(h))
}

pub(super) fn honest_answers_in(h: &History, paired: &Paired) -> Vec<Violation> {
    use crate::lin::models::Lease;
    linearizable(
        h,
        paired,
        &Lease,
        |r| r.key.as_deref().unwrap_or("").starts_with("/lease/"),
        |_| rule::S3,
    )
}

/// S6 only the owner (or expiry) deletes a lock key, on the lock keys (under `/locks/`, and
/// hmetcd's distributed lock `/kv/hbtd_dist_lock`): every recorded `lock`, `unlock`,
/// `dist_timed_lock` and `dist_unlock` is linearizable against a mutex whose expiries are the
/// system's operations. An unlock that succeeded while another process held the lock (the
/// key of someone else's grant deleted), or a grant while the lock was held, cannot be placed.
pub fn owner_deletes(h: &History) -> Vec<Violation> {
    owner_deletes_in(h, &paired(h))
}

pub(super) fn owner_deletes_in(h: &History, paired: &Paired) -> Vec<Violation> {
    use crate::lin::models::Mutex;
    linearizable(
        h,
        paired,
        &Mutex,
        |r| {
            let k = r.key.as_deref().unwrap_or("");
            k.starts_with("/locks/") || k == "/kv/hbtd_dist_lock"
        },
        |_| rule::S6,
    )
}

/// A history's client calls paired into operations (failed calls left out), or why they
/// cannot be: read once for the four linearizability checks.
pub(super) type Paired = Result<Vec<crate::lin::input::RawOp>, crate::lin::input::InputError>;

/// The built-in processes' calls, paired: a user process's (declared by a `Part` record) are
/// its own checks' business, never held to the built-in models.
pub(super) fn paired(h: &History) -> Paired {
    let users = user_processes(h);
    paired_where(h, |p| !users.contains(&p))
}

/// The calls of the processes `keep` accepts (by number), paired into operations.
pub fn paired_where(h: &History, keep: impl Fn(u64) -> bool) -> Paired {
    use crate::lin::input;
    let events: Vec<input::HistoryEvent> = input::from_history(h)
        .into_iter()
        .filter(|e| {
            // `7` or, after a restart, `7.1`.
            let base = e.process.split('.').next().unwrap_or("");
            base.parse().map_or(true, &keep)
        })
        .collect();
    input::pair(&events).map(|(raw, _failed)| raw)
}

/// The processes a history declares as a user's parts.
pub fn user_processes(h: &History) -> std::collections::BTreeSet<u64> {
    h.records
        .iter()
        .filter_map(|r| match &r.event {
            crate::history::Event::Part { process, .. } => Some(*process),
            _ => None,
        })
        .collect()
}

/// `model` over the paired operations `keep` accepts, as violations of `rule` (and
/// [`rule::S13_UNKNOWN`] warnings for parts the budget left undecided): the one path for the
/// built-in models and a user's.
pub fn linearizable<M: crate::lin::input::FromRaw>(
    h: &History,
    paired: &Paired,
    model: &M,
    keep: impl Fn(&crate::lin::input::RawOp) -> bool,
    rule: impl Fn(&str) -> Rule,
) -> Vec<Violation> {
    use crate::lin::{input, Budget};
    let name = rule("");
    let checked = paired.as_ref().map_err(Clone::clone).and_then(|all| {
        let raw: Vec<input::RawOp> = all.iter().filter(|r| keep(r)).cloned().collect();
        let (ops, _skipped) = input::operations(model, &raw)?;
        let budget = Budget {
            max_steps: Some(LINEARIZABILITY_STEPS),
            max_time: None,
        };
        Ok(crate::lin::check(model, &ops, budget))
    });
    let checked = match checked {
        Ok(c) => c,
        Err(e) => {
            return vec![Violation {
                rule: name,
                records: vec![e.line.saturating_sub(1)],
                message: format!(
                    "the history's operations do not read as {}: {}",
                    model.name(),
                    e.message
                ),
            }]
        }
    };
    let (mut out, undecided) = lin_findings(
        &checked,
        rule,
        |keys| keys.join(", "),
        |line| (line - 1, format!("; {}", at(&h.records[line - 1]))),
    );
    out.extend(undecided);
    out
}

/// What a linearizability check found, as violations (per part that cannot be linearized: its
/// first operation that cannot be placed, under the rule `rule` gives for that operation's
/// description) and warnings (per part the budget left undecided, [`S13_UNKNOWN`]).
/// `keys` shows a part's keys; `locate` turns the history line of an operation into the
/// index reported in `records` and a note on where it happened.
pub fn lin_findings(
    checked: &crate::lin::Checked,
    rule: impl Fn(&str) -> Rule,
    keys: impl Fn(&[String]) -> String,
    locate: impl Fn(usize) -> (usize, String),
) -> (Vec<Violation>, Vec<Violation>) {
    let violations = checked
        .failures()
        .map(|(part, f)| {
            let (record, note) = locate(f.source);
            Violation {
                rule: rule(&f.operation),
                records: vec![record],
                message: format!(
                    "on {}: {} ({} operations of that part{note})",
                    keys(&part.keys),
                    f.message,
                    part.ops
                ),
            }
        })
        .collect();
    let undecided = checked
        .parts
        .iter()
        .filter(|p| p.verdict == crate::lin::Verdict::Unknown)
        .map(|p| Violation {
            rule: rule::S13_UNKNOWN,
            records: Vec::new(),
            message: format!(
                "{} {} operations on {} were not decided within the search budget ({} steps)",
                p.ops,
                checked.model,
                keys(&p.keys),
                p.steps
            ),
        })
        .collect();
    (violations, undecided)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::*;

    #[test]
    fn only_the_owner_or_expiry_deletes_a_lock_key() {
        let lock = "/locks/0";
        let history = |extra: Vec<[Record; 2]>| {
            // 1 holds the lock from 10 until its key expires at 40.
            let mut records: Vec<Record> = op_on(lock, 10, 1, 1, "lock", json!(5)).into();
            records.push(expire_of(lock, 40, 8));
            records.extend(extra.into_iter().flatten());
            records.sort_by_key(|r| r.t_us);
            History { records }
        };
        // 1 unlocks its own grant, 2 locks after it; or 2 locks after the expiry; a
        // distributed unlock by a non-holder does nothing.
        for ok in [
            vec![
                op_on(lock, 20, 1, 2, "unlock", json!(null)),
                op_on(lock, 30, 2, 3, "lock", json!(7)),
            ],
            vec![op_on(lock, 50, 2, 3, "lock", json!(9))],
            vec![op_on(lock, 20, 2, 3, "dist_unlock", json!(null))],
        ] {
            let h = history(ok);
            assert!(rules(&h).is_empty(), "{:?}", all(&h));
        }
        // 2's unlock succeeds while 1 holds the lock; 2 is granted it while 1 holds it; a
        // distributed unlock by a non-holder deleted 1's key, and 3 got the lock.
        for bad in [
            vec![op_on(lock, 20, 2, 3, "unlock", json!(null))],
            vec![op_on(lock, 20, 2, 3, "lock", json!(7))],
            vec![
                op_on(lock, 20, 2, 3, "dist_unlock", json!(null)),
                op_on(lock, 25, 3, 4, "lock", json!(7)),
            ],
        ] {
            let h = history(bad);
            assert_eq!(rules(&h), vec!["S6 only the owner deletes"]);
        }
    }

    #[test]
    fn honest_answers_pass_and_each_lie_is_caught() {
        // 1 is granted token 5 and checks it; 2 is denied; the lease expires; 2 waits for
        // vacancy and is granted token 9; 1's check says it no longer holds it.
        let honest: Vec<Record> = [
            op_at(10, 1, 1, "claim", json!(5)),
            op_at(20, 1, 2, "check", json!(true)),
            op_at(30, 2, 3, "claim", json!("denied")),
        ]
        .into_iter()
        .flatten()
        .chain([expire_at(40, 8)])
        .chain(
            [
                op_at(50, 2, 4, "block_until_released", json!(null)),
                op_at(60, 2, 5, "claim", json!(9)),
                op_at(70, 1, 6, "check", json!(false)),
                op_at(80, 1, 7, "claim", json!("denied")),
            ]
            .into_iter()
            .flatten(),
        )
        .collect();
        let h = History {
            records: honest.clone(),
        };
        assert!(honest_answers(&h).is_empty(), "{:?}", honest_answers(&h));
        assert!(all(&h).is_empty(), "{:?}", all(&h));
        // 1 holds token 5 over [11, 40); one operation of another kind at 25 (while held) or
        // 50 (after the expiry). Each lie alone breaks S3 and nothing else.
        let with = |t: u64, process: u64, f: &str, out: serde_json::Value| {
            let mut records: Vec<Record> = op_at(10, 1, 1, "claim", json!(5)).into();
            records.push(expire_at(40, 8));
            records.extend(op_at(t, process, 2, f, out));
            records.sort_by_key(|r| r.t_us);
            History { records }
        };
        for (t, process, f, out) in [
            (25, 2, "check", json!(true)),
            (25, 2, "claim", json!(7)),
            (25, 2, "block_until_released", json!(null)),
            (25, 1, "check", json!(false)),
            (50, 2, "claim", json!("denied")),
            (50, 1, "check", json!(true)),
        ] {
            let h = with(t, process, f, out.clone());
            assert_eq!(
                rules(&h),
                vec!["S3 honest answers"],
                "{f} -> {out} by {process} at {t}"
            );
        }
        // The same operations where they are true.
        for (t, process, f, out) in [
            (25, 2, "claim", json!("denied")),
            (25, 1, "check", json!(true)),
            (50, 2, "claim", json!(7)),
            (50, 2, "block_until_released", json!(null)),
            (50, 1, "check", json!(false)),
        ] {
            assert!(rules(&with(t, process, f, out)).is_empty());
        }
    }
}
