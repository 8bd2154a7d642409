//! The linearizability checker against histories with known verdicts: the 102 Jepsen etcd
//! histories of porcupine's test data (tests/data/porcupine-jepsen-etcd, MIT licence), and
//! hand-made histories for every model, each one that passes and one that breaks.

use serde_json::{json, Value};
use std::path::Path;
use tenure::sim::lin::input::{self, operations, pair, Format, FromRaw};
use tenure::sim::lin::models::{Agency, Kv, Lease, Mutex, Register, Storage};
use tenure::sim::lin::{check, Budget, Checked, Verdict};

fn check_text<M: FromRaw>(model: &M, text: &str, format: Format) -> Checked {
    let events = input::read(text, format).expect("the history reads");
    let (raw, _failed) = pair(&events).expect("calls pair with completions");
    let (ops, _skipped) = operations(model, &raw).expect("operations read");
    check(model, &ops, Budget::default())
}

#[test]
fn agrees_with_every_jepsen_etcd_verdict() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/porcupine-jepsen-etcd");
    let verdicts = std::fs::read_to_string(dir.join("verdicts.tsv")).unwrap();
    let mut checked = 0;
    let mut disagree = Vec::new();
    let (mut linearizable, mut not) = (0, 0);
    for line in verdicts.lines().skip(1) {
        let (file, expected) = line.split_once('\t').expect("file<TAB>verdict");
        let expected = match expected.trim() {
            "true" => Verdict::Linearizable,
            "false" => Verdict::NotLinearizable,
            other => panic!("verdict {other:?}"),
        };
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        assert_eq!(input::detect(&text), Format::JepsenLog);
        let got = check_text(&Register::default(), &text, Format::JepsenLog);
        if got.verdict != expected {
            disagree.push(format!(
                "{file}: expected {expected:?}, got {:?}",
                got.verdict
            ));
        }
        if got.verdict == Verdict::NotLinearizable {
            not += 1;
            let (_, f) = got.failures().next().expect("a failure is explained");
            assert!(f.prefix_ops > 0 && !f.states.is_empty(), "{file}: {f:?}");
        } else {
            linearizable += 1;
        }
        checked += 1;
    }
    assert_eq!(checked, 102);
    assert!(disagree.is_empty(), "{disagree:#?}");
    assert_eq!((linearizable, not), (23, 79));
}

/// A history as Jepsen operations in JSON lines: (process, type, f, key, value).
fn jsonl(ops: &[(u64, &str, &str, &str, Value)]) -> String {
    ops.iter()
        .map(|(p, t, f, k, v)| {
            json!({"process": p, "type": t, "f": f, "key": k, "value": v}).to_string() + "\n"
        })
        .collect()
}

fn verdict<M: FromRaw>(model: &M, ops: &[(u64, &str, &str, &str, Value)]) -> Checked {
    check_text(model, &jsonl(ops), Format::Jsonl)
}

const N: Value = Value::Null;

#[test]
fn register_reads_what_was_written() {
    // Sequential: write 1, write 2, read 2.
    let ok = [
        (0, "invoke", "write", "x", json!(1)),
        (0, "ok", "write", "x", json!(1)),
        (1, "invoke", "write", "x", json!(2)),
        (1, "ok", "write", "x", json!(2)),
        (0, "invoke", "read", "x", N),
        (0, "ok", "read", "x", json!(2)),
    ];
    assert_eq!(
        verdict(&Register::default(), &ok).verdict,
        Verdict::Linearizable
    );
    // A read concurrent with a write may see either value.
    let concurrent = [
        (0, "invoke", "write", "x", json!(1)),
        (1, "invoke", "read", "x", N),
        (1, "ok", "read", "x", N),
        (0, "ok", "write", "x", json!(1)),
    ];
    assert_eq!(
        verdict(&Register::default(), &concurrent).verdict,
        Verdict::Linearizable
    );
    // A stale read after the write returned breaks it; the failure names the read.
    let stale = [
        (0, "invoke", "write", "x", json!(1)),
        (0, "ok", "write", "x", json!(1)),
        (1, "invoke", "read", "x", N),
        (1, "ok", "read", "x", N),
    ];
    let c = verdict(&Register::default(), &stale);
    assert_eq!(c.verdict, Verdict::NotLinearizable);
    let (part, f) = c.failures().next().unwrap();
    assert_eq!(part.keys, vec!["x".to_string()]);
    assert_eq!(f.operation, "read x -> nil");
    assert_eq!(f.prefix_ops, 1);
    assert_eq!(f.source, 3, "the read's call is on line 3");
    assert_eq!(f.states, vec!["1".to_string()]);
    assert!(f.message.contains("cannot be placed"), "{}", f.message);
}

#[test]
fn register_cas_unknown_and_failed_operations() {
    // cas succeeds only on the expected value.
    let ok = [
        (0, "invoke", "write", "x", json!(1)),
        (0, "ok", "write", "x", json!(1)),
        (0, "invoke", "cas", "x", json!([1, 2])),
        (0, "ok", "cas", "x", json!([1, 2])),
        (1, "invoke", "read", "x", N),
        (1, "ok", "read", "x", json!(2)),
    ];
    assert_eq!(
        verdict(&Register::default(), &ok).verdict,
        Verdict::Linearizable
    );
    let mut bad = ok.clone();
    bad[2].4 = json!([5, 2]);
    bad[3].4 = json!([5, 2]);
    assert_eq!(
        verdict(&Register::default(), &bad).verdict,
        Verdict::NotLinearizable
    );
    // An unknown write may take effect late...
    let late = [
        (0, "invoke", "write", "x", json!(1)),
        (0, "ok", "write", "x", json!(1)),
        (1, "invoke", "write", "x", json!(2)),
        (1, "info", "write", "x", N),
        (2, "invoke", "read", "x", N),
        (2, "ok", "read", "x", json!(1)),
        (2, "invoke", "read", "x", N),
        (2, "ok", "read", "x", json!(2)),
    ];
    assert_eq!(
        verdict(&Register::default(), &late).verdict,
        Verdict::Linearizable
    );
    // ...or never, but once seen it stays.
    let mut back = late.to_vec();
    back.push((2, "invoke", "read", "x", N));
    back.push((2, "ok", "read", "x", json!(1)));
    assert_eq!(
        verdict(&Register::default(), &back).verdict,
        Verdict::NotLinearizable
    );
    // A call with no completion at all is unknown too.
    let pending = [
        (1, "invoke", "write", "x", json!(7)),
        (2, "invoke", "read", "x", N),
        (2, "ok", "read", "x", json!(7)),
    ];
    assert_eq!(
        verdict(&Register::default(), &pending).verdict,
        Verdict::Linearizable
    );
    // A failed write surely did nothing: reading its value breaks the history.
    let failed = [
        (1, "invoke", "write", "x", json!(7)),
        (1, "fail", "write", "x", N),
        (2, "invoke", "read", "x", N),
        (2, "ok", "read", "x", json!(7)),
    ];
    assert_eq!(
        verdict(&Register::default(), &failed).verdict,
        Verdict::NotLinearizable
    );
}

#[test]
fn keys_are_checked_apart_and_the_budget_answers_unknown() {
    let ops = [
        (0, "invoke", "write", "x", json!(1)),
        (1, "invoke", "write", "y", json!(2)),
        (0, "ok", "write", "x", json!(1)),
        (1, "ok", "write", "y", json!(2)),
        (0, "invoke", "read", "y", N),
        (0, "ok", "read", "y", json!(2)),
        (1, "invoke", "read", "x", N),
        (1, "ok", "read", "x", json!(1)),
    ];
    let c = verdict(&Register::default(), &ops);
    assert_eq!(c.verdict, Verdict::Linearizable);
    assert_eq!(c.parts.len(), 2);
    assert_eq!(c.parts[0].keys, vec!["x".to_string()]);
    let events = input::read(&jsonl(&ops), Format::Jsonl).unwrap();
    let (raw, _) = pair(&events).unwrap();
    let (ops, _) = operations(&Register::default(), &raw).unwrap();
    let tight = Budget {
        max_steps: Some(2),
        max_time: None,
    };
    assert_eq!(
        check(&Register::default(), &ops, tight).verdict,
        Verdict::Unknown
    );
}

#[test]
fn kv_map_with_append_delete_ranges_and_expiry() {
    let ok = [
        (0, "invoke", "put", "a", json!("x")),
        (0, "ok", "put", "a", N),
        (0, "invoke", "append", "a", json!("y")),
        (0, "ok", "append", "a", N),
        (1, "invoke", "get", "a", N),
        (1, "ok", "get", "a", json!("xy")),
        (1, "invoke", "put", "b", json!(2)),
        (1, "ok", "put", "b", N),
        (1, "invoke", "get_range", "", json!(["a", "c"])),
        (1, "ok", "get_range", "", json!({"a": "xy", "b": 2})),
        (9, "invoke", "expire", "b", N),
        (9, "ok", "expire", "b", N),
        (0, "invoke", "cas", "a", json!(["xy", "z"])),
        (0, "ok", "cas", "a", N),
        (
            1,
            "invoke",
            "get_range",
            "",
            json!({"from": "a", "to": "c"}),
        ),
        (1, "ok", "get_range", "", json!([["a", "z"]])),
        (0, "invoke", "delete", "a", N),
        (0, "ok", "delete", "a", N),
        (1, "invoke", "get", "a", N),
        (1, "ok", "get", "a", N),
    ];
    let c = verdict(&Kv::default(), &ok);
    assert_eq!(c.verdict, Verdict::Linearizable, "{c:?}");
    assert_eq!(c.parts.len(), 1, "the range reads join a and b");
    // Appends in the wrong order.
    let mut bad = ok.clone();
    bad[5].4 = json!("yx");
    assert_eq!(
        verdict(&Kv::default(), &bad).verdict,
        Verdict::NotLinearizable
    );
    // A range that misses b, read after b was written and before it expired.
    let mut bad = ok.clone();
    bad[9].4 = json!({"a": "xy"});
    assert_eq!(
        verdict(&Kv::default(), &bad).verdict,
        Verdict::NotLinearizable
    );
    // A read of a deleted key.
    let mut bad = ok.clone();
    bad[19].4 = json!("z");
    assert_eq!(
        verdict(&Kv::default(), &bad).verdict,
        Verdict::NotLinearizable
    );
}

#[test]
fn kv_transactions_and_tas_touch_their_keys_at_one_instant() {
    let t = |cmp: &str, v: &str, then: Value, otherwise: Value| json!({"op": cmp, "value": v, "then": then, "else": otherwise});
    let ok = [
        (0, "invoke", "put", "a", json!("m")),
        (0, "ok", "put", "a", N),
        // "m" < "n": then-branch writes b.
        (
            0,
            "invoke",
            "txn",
            "a",
            t("<", "n", json!(["b", "1"]), json!(["c", "1"])),
        ),
        (0, "ok", "txn", "a", json!(true)),
        // "m" > "n" fails: else-branch writes c.
        (
            1,
            "invoke",
            "txn",
            "a",
            t(">", "n", json!(["b", "2"]), json!(["c", "2"])),
        ),
        (1, "ok", "txn", "a", json!(false)),
        // A missing key fails every comparison, != too.
        (1, "invoke", "txn", "z", t("!=", "x", json!(["y", "3"]), N)),
        (1, "ok", "txn", "z", json!(false)),
        (0, "invoke", "tas", "a", json!({"test": "m", "set": "p"})),
        (0, "ok", "tas", "a", json!(true)),
        (0, "invoke", "tas", "a", json!({"test": "m", "set": "q"})),
        (0, "ok", "tas", "a", json!(false)),
        (2, "invoke", "get_range", "", json!(["a", "d"])),
        (
            2,
            "ok",
            "get_range",
            "",
            json!({"a": "p", "b": "1", "c": "2"}),
        ),
    ];
    let c = verdict(&Kv::default(), &ok);
    assert_eq!(c.verdict, Verdict::Linearizable, "{c:?}");
    assert_eq!(
        c.parts.len(),
        2,
        "a, b, c in one part with the range; z and y in another"
    );
    for (line, forged) in [
        (3, json!(false)),                           // the comparison held
        (11, json!(true)),                           // a tas of a stale value succeeded
        (13, json!({"a": "p", "b": "1", "c": "1"})), // the else-branch never wrote
    ] {
        let mut bad = ok.clone();
        bad[line].4 = forged.clone();
        assert_eq!(
            verdict(&Kv::default(), &bad).verdict,
            Verdict::NotLinearizable,
            "line {line} forged as {forged}"
        );
    }
    // An unknown outcome may or may not have taken effect.
    let mut unknown = ok.clone();
    unknown[9].1 = "info";
    unknown[9].4 = N;
    assert_eq!(
        verdict(&Kv::default(), &unknown).verdict,
        Verdict::Linearizable
    );
    // A transaction that does not read as one is named.
    for input in [
        json!({"op": "~", "value": "x"}),
        json!({"op": "=", "value": "x", "then": 3}),
    ] {
        let bad = [
            (0, "invoke", "txn", "a", input.clone()),
            (0, "ok", "txn", "a", json!(true)),
        ];
        let events = input::read(&jsonl(&bad), Format::Jsonl).unwrap();
        let (raw, _) = pair(&events).unwrap();
        let e = operations(&Kv::default(), &raw).unwrap_err();
        assert!(e.message.contains("txn"), "{input}: {}", e.message);
    }
}

#[test]
fn mutex_holders_exclude_each_other() {
    let ok = [
        (0, "invoke", "acquire", "m", N),
        (0, "ok", "acquire", "m", N),
        (0, "invoke", "release", "m", N),
        (0, "ok", "release", "m", N),
        (1, "invoke", "acquire", "m", N),
        (1, "ok", "acquire", "m", N),
        (9, "invoke", "expire", "m", N),
        (9, "ok", "expire", "m", N),
        (2, "invoke", "acquire", "m", N),
        (2, "ok", "acquire", "m", N),
    ];
    assert_eq!(verdict(&Mutex, &ok).verdict, Verdict::Linearizable);
    // Without the expiry, process 2 acquired a lock process 1 held.
    let mut bad = ok.to_vec();
    bad.drain(6..8);
    let c = verdict(&Mutex, &bad);
    assert_eq!(c.verdict, Verdict::NotLinearizable);
    assert_eq!(c.failures().next().unwrap().1.operation, "acquire m by 2");
    // Releasing a lock one does not hold.
    let stolen = [
        (0, "invoke", "acquire", "m", N),
        (0, "ok", "acquire", "m", N),
        (1, "invoke", "release", "m", N),
        (1, "ok", "release", "m", N),
    ];
    assert_eq!(verdict(&Mutex, &stolen).verdict, Verdict::NotLinearizable);
    // A release-if-held by a non-holder does nothing; one that did remove the lock shows when
    // someone else acquires it.
    let harmless = [
        (0, "invoke", "acquire", "m", N),
        (0, "ok", "acquire", "m", N),
        (1, "invoke", "release_if_held", "m", N),
        (1, "ok", "release_if_held", "m", N),
    ];
    assert_eq!(verdict(&Mutex, &harmless).verdict, Verdict::Linearizable);
    let mut stolen = harmless.to_vec();
    stolen.extend([
        (2, "invoke", "acquire", "m", N),
        (2, "ok", "acquire", "m", N),
    ]);
    assert_eq!(verdict(&Mutex, &stolen).verdict, Verdict::NotLinearizable);
}

#[test]
fn a_cut_off_locker_retrying_does_not_blow_up_the_search() {
    // Process 9 retries its acquire 40 times without an answer (each ends :info, as Jepsen
    // writes a call that timed out) while 0 and 1 take turns; each unknown acquire could have
    // taken effect at any later point.
    let mut ops = Vec::new();
    for i in 0..40u64 {
        ops.push((9, "invoke", "acquire", "m", N));
        ops.push((9, "info", "acquire", "m", N));
        let p = i % 2;
        ops.push((p, "invoke", "acquire", "m", N));
        ops.push((p, "ok", "acquire", "m", N));
        ops.push((p, "invoke", "release", "m", N));
        ops.push((p, "ok", "release", "m", N));
    }
    let run = |ops: &[(u64, &str, &str, &str, Value)]| {
        let events = input::read(&jsonl(ops), Format::Jsonl).unwrap();
        let (raw, _) = pair(&events).unwrap();
        let (ops, _) = operations(&Mutex, &raw).unwrap();
        let budget = Budget {
            max_steps: Some(10_000),
            max_time: None,
        };
        check(&Mutex, &ops, budget)
    };
    let c = run(&ops);
    assert_eq!(c.verdict, Verdict::Linearizable, "{} steps", c.steps);
    // Then 0 and 1 both acquire it: refuting that takes every placement of the unknown
    // acquires, unless they are seen to be irrelevant.
    ops.extend([
        (0, "invoke", "acquire", "m", N),
        (0, "ok", "acquire", "m", N),
        (1, "invoke", "acquire", "m", N),
        (1, "ok", "acquire", "m", N),
    ]);
    let c = run(&ops);
    assert_eq!(c.verdict, Verdict::NotLinearizable, "{} steps", c.steps);
}

#[test]
fn cut_off_leasers_retrying_do_not_blow_up_the_search() {
    // Processes 7, 8 and 9 retry their claims 30 times each without an answer (cut off from
    // the agency), then another process is granted the lease and waits it out.
    let mut ops = Vec::new();
    for _ in 0..30 {
        for p in 7..10 {
            ops.push((p, "invoke", "claim", "svc", N));
            ops.push((p, "info", "claim", "svc", N));
        }
    }
    ops.extend([
        (0, "invoke", "claim", "svc", N),
        (0, "ok", "claim", "svc", json!(40)),
        (9, "invoke", "expire", "svc", N),
        (9, "ok", "expire", "svc", N),
    ]);
    let run = |ops: &[(u64, &str, &str, &str, Value)]| {
        let events = input::read(&jsonl(ops), Format::Jsonl).unwrap();
        let (raw, _) = pair(&events).unwrap();
        let (ops, _) = operations(&Lease, &raw).unwrap();
        let budget = Budget {
            max_steps: Some(10_000),
            max_time: None,
        };
        check(&Lease, &ops, budget)
    };
    let c = run(&ops);
    assert_eq!(c.verdict, Verdict::Linearizable, "{} steps", c.steps);
    // A second grant with no expiry in between: refuting it takes every placement of the
    // unknown claims, unless they are seen to be irrelevant.
    let mut bad = ops.clone();
    bad.truncate(bad.len() - 2);
    bad.extend([
        (1, "invoke", "claim", "svc", N),
        (1, "ok", "claim", "svc", json!(41)),
    ]);
    let c = run(&bad);
    assert_eq!(c.verdict, Verdict::NotLinearizable, "{} steps", c.steps);
    // An unknown claim that a later denial needs is not dropped: 9 may hold the lease.
    let denied = [
        (9, "invoke", "claim", "svc", N),
        (1, "invoke", "claim", "svc", N),
        (1, "ok", "claim", "svc", json!("denied")),
    ];
    assert_eq!(run(&denied).verdict, Verdict::Linearizable);
    // Nor one that its own later passed check needs.
    let checked = [
        (9, "invoke", "claim", "svc", N),
        (9, "info", "claim", "svc", N),
        (9, "invoke", "check", "svc", N),
        (9, "ok", "check", "svc", json!(true)),
    ];
    assert_eq!(run(&checked).verdict, Verdict::Linearizable);
}

#[test]
fn lease_answers_are_honest() {
    let ok = [
        (0, "invoke", "claim", "svc", N),
        (0, "ok", "claim", "svc", json!(5)),
        (1, "invoke", "claim", "svc", N),
        (1, "ok", "claim", "svc", json!("denied")),
        (0, "invoke", "check", "svc", N),
        (0, "ok", "check", "svc", json!(true)),
        (9, "invoke", "expire", "svc", N),
        (9, "ok", "expire", "svc", N),
        (1, "invoke", "wait_until_expired", "svc", N),
        (1, "ok", "wait_until_expired", "svc", N),
        (1, "invoke", "claim", "svc", N),
        (1, "ok", "claim", "svc", json!(8)),
        (0, "invoke", "check", "svc", N),
        (0, "ok", "check", "svc", json!(false)),
    ];
    assert_eq!(verdict(&Lease, &ok).verdict, Verdict::Linearizable);
    // Without the expiry: 1's wait returned, and it was granted, while 0 held the lease.
    let mut bad = ok.to_vec();
    bad.drain(6..8);
    let c = verdict(&Lease, &bad);
    assert_eq!(c.verdict, Verdict::NotLinearizable);
    assert_eq!(
        c.failures().next().unwrap().1.operation,
        "wait until svc is vacant -> vacant"
    );
    // A denial before anyone held it.
    let mut bad = ok.to_vec();
    bad.drain(0..2);
    assert_eq!(verdict(&Lease, &bad).verdict, Verdict::NotLinearizable);
    // The holder's check fails while it holds the lease.
    let mut bad = ok.to_vec();
    bad[5].4 = json!(false);
    assert_eq!(verdict(&Lease, &bad).verdict, Verdict::NotLinearizable);
    // An extension that answers with another grant's token.
    let mut bad = ok.to_vec();
    bad.extend([
        (1, "invoke", "claim", "svc", N),
        (1, "ok", "claim", "svc", json!(5)),
    ]);
    assert_eq!(verdict(&Lease, &bad).verdict, Verdict::NotLinearizable);
}

#[test]
fn agency_transactions_check_their_preconditions() {
    let claim = json!({"if": [["/lock", "empty"]], "then": [["set", "/lock", "a"]]});
    let bump = json!({"if": [["/lock", "version", 1]], "then": [["set", "/lock", "b"], ["increment", "/n", 1]], "else": [["push", "/log", "late"]]});
    let ok = [
        (0, "invoke", "txn", "", claim.clone()),
        (0, "ok", "txn", "", json!({"succeeded": true})),
        (1, "invoke", "txn", "", claim.clone()),
        (1, "ok", "txn", "", json!({"succeeded": false})),
        (1, "invoke", "txn", "", bump.clone()),
        (1, "ok", "txn", "", json!(true)),
        (0, "invoke", "txn", "", bump.clone()),
        (0, "ok", "txn", "", json!(false)),
        (2, "invoke", "read", "/n", N),
        (2, "ok", "read", "/n", json!(1)),
        (2, "invoke", "read", "/log", N),
        (2, "ok", "read", "/log", json!(["late"])),
        (2, "invoke", "read", "/lock", N),
        (2, "ok", "read", "/lock", json!("b")),
    ];
    let c = verdict(&Agency, &ok);
    assert_eq!(c.verdict, Verdict::Linearizable, "{c:?}");
    // Two claims of an empty lock both succeeding, one after the other.
    let mut bad = ok.clone();
    bad[3].4 = json!({"succeeded": true});
    assert_eq!(verdict(&Agency, &bad).verdict, Verdict::NotLinearizable);
    // The else branch's write is missing.
    let mut bad = ok.clone();
    bad[11].4 = json!([]);
    assert_eq!(verdict(&Agency, &bad).verdict, Verdict::NotLinearizable);
}

#[test]
fn storage_versions_advance_one_cas_at_a_time() {
    let ok = [
        (0, "invoke", "create", "r", json!({"value": "a"})),
        (0, "ok", "create", "r", json!({"version": 1})),
        (
            1,
            "invoke",
            "cas_by_version",
            "r",
            json!({"version": 1, "value": "b"}),
        ),
        (1, "ok", "cas_by_version", "r", json!({"version": 2})),
        (2, "invoke", "read", "r", N),
        (2, "ok", "read", "r", json!({"value": "b", "version": 2})),
        (9, "invoke", "expire", "r", N),
        (9, "ok", "expire", "r", N),
        (0, "invoke", "create", "r", json!({"value": "c"})),
        (0, "ok", "create", "r", json!(1)),
    ];
    assert_eq!(verdict(&Storage, &ok).verdict, Verdict::Linearizable);
    // A second successful cas on version 1.
    let mut bad = ok[..4].to_vec();
    bad.push((
        2,
        "invoke",
        "cas_by_version",
        "r",
        json!({"version": 1, "value": "x"}),
    ));
    bad.push((2, "ok", "cas_by_version", "r", N));
    assert_eq!(verdict(&Storage, &bad).verdict, Verdict::NotLinearizable);
    // A create over a live record.
    let mut bad = ok[..6].to_vec();
    bad.push((0, "invoke", "create", "r", json!({"value": "c"})));
    bad.push((0, "ok", "create", "r", N));
    assert_eq!(verdict(&Storage, &bad).verdict, Verdict::NotLinearizable);
}

#[test]
fn storage_ranges_read_every_record_at_one_instant() {
    let range = json!({"from": "a", "to": "c"});
    let rec = |k: &str, v: &str, n: u64| json!({"key": k, "value": v, "version": n});
    let ok = [
        (0, "invoke", "create", "a", json!({"value": "x"})),
        (0, "ok", "create", "a", json!(1)),
        (1, "invoke", "create", "b", json!({"value": "y"})),
        (1, "ok", "create", "b", json!(1)),
        (
            0,
            "invoke",
            "cas_by_version",
            "a",
            json!({"version": 1, "value": "z"}),
        ),
        (0, "ok", "cas_by_version", "a", json!(2)),
        (2, "invoke", "storage_get_range", "a", range.clone()),
        (
            2,
            "ok",
            "storage_get_range",
            "a",
            json!([rec("a", "z", 2), rec("b", "y", 1)]),
        ),
        (9, "invoke", "expire", "b", N),
        (9, "ok", "expire", "b", N),
        (2, "invoke", "storage_get_range", "a", range.clone()),
        (2, "ok", "storage_get_range", "a", json!([rec("a", "z", 2)])),
        (3, "invoke", "storage_get", "c", N),
        (3, "ok", "storage_get", "c", N),
    ];
    let c = verdict(&Storage, &ok);
    assert_eq!(c.verdict, Verdict::Linearizable, "{c:?}");
    assert_eq!(
        c.parts.len(),
        2,
        "the ranges join a and b; c (outside) alone"
    );
    for (line, forged) in [
        (7, json!([rec("a", "x", 1), rec("b", "y", 1)])), // an old version after the cas
        (7, json!([rec("a", "z", 2)])),                   // b left out while it lived
        (11, json!([rec("a", "z", 2), rec("b", "y", 1)])), // b after its expiry
    ] {
        let mut bad = ok.clone();
        bad[line].4 = forged.clone();
        assert_eq!(
            verdict(&Storage, &bad).verdict,
            Verdict::NotLinearizable,
            "line {line} forged as {forged}"
        );
    }
    for input in [json!({"from": "a"}), json!(["a", "c"])] {
        let bad = [
            (0, "invoke", "storage_get_range", "a", input.clone()),
            (0, "ok", "storage_get_range", "a", json!([])),
        ];
        let events = input::read(&jsonl(&bad), Format::Jsonl).unwrap();
        let (raw, _) = pair(&events).unwrap();
        let e = operations(&Storage, &raw).unwrap_err();
        assert!(e.message.contains("range"), "{input}: {}", e.message);
    }
}

#[test]
fn edn_vector_edn_lines_and_json_lines_read_alike() {
    let lines = "{:process 0, :type :invoke, :f :write, :value 1}\n\
                 {:process 0, :type :ok, :f :write, :value 1}\n\
                 {:process :nemesis, :type :info, :f :start, :value nil}\n\
                 {:process 1, :type :invoke, :f :read, :value nil}\n\
                 {:process 1, :type :ok, :f :read, :value 1}\n";
    let vector = format!("[{}]", lines.replace('\n', "\n "));
    let json = jsonl(&[
        (0, "invoke", "write", "", json!(1)),
        (0, "ok", "write", "", json!(1)),
        (1, "invoke", "read", "", N),
        (1, "ok", "read", "", json!(1)),
    ]);
    assert_eq!(input::detect(lines), Format::Edn);
    assert_eq!(input::detect(&vector), Format::Edn);
    assert_eq!(input::detect(&json), Format::Jsonl);
    for (text, format) in [
        (lines.to_string(), Format::Edn),
        (vector, Format::Edn),
        (json, Format::Jsonl),
    ] {
        let c = check_text(&Register::default(), &text, format);
        assert_eq!(c.verdict, Verdict::Linearizable);
        assert_eq!(c.ops, 2);
    }
    let stale = lines.replace(":ok, :f :read, :value 1", ":ok, :f :read, :value 2");
    assert_eq!(
        check_text(&Register::default(), &stale, Format::Edn).verdict,
        Verdict::NotLinearizable
    );
}

#[test]
fn bad_histories_are_named_by_line() {
    let err = |text: &str, format: Format| -> String {
        match input::read(text, format) {
            Err(e) => e.to_string(),
            Ok(events) => match pair(&events) {
                Err(e) => e.to_string(),
                Ok((raw, _)) => match operations(&Register::default(), &raw) {
                    Err(e) => e.to_string(),
                    Ok(_) => panic!("{text:?} was accepted"),
                },
            },
        }
    };
    assert_eq!(
        err(
            "{\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"value\":1}\n",
            Format::Jsonl
        ),
        "line 1: process 0 completes an operation it never called"
    );
    assert!(err(
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\nnot json\n",
        Format::Jsonl
    )
    .starts_with("line 2: not JSON"));
    assert!(err(
        "{\"process\":0,\"type\":\"begun\",\"f\":\"read\"}\n",
        Format::Jsonl
    )
    .contains(":type must be"));
    assert!(err("{\"type\":\"invoke\",\"f\":\"read\"}\n", Format::Jsonl).contains("no :process"));
    assert!(err("[1, 2]\n", Format::Jsonl).contains("expected a map"));
    assert!(err(
        "{:process 0 :type :invoke :f :cas :value 3}\n{:process 0 :type :ok :f :cas :value 3}",
        Format::Edn
    )
    .starts_with("line 1: :cas needs [old new]"));
    assert!(err(
        "{:process 0 :type :invoke :f :read}\n{:process 0 :type :ok :f :write}",
        Format::Edn
    )
    .starts_with("line 2: process 0 completes :write but its pending call (line 1) is :read"));
    assert!(err("[{:process 0 :type :invoke :f :read}\n", Format::Edn).contains("never closed"));
    assert!(err("{:process 0 :type :invoke\n :f :read", Format::Edn).starts_with("line 1:"));
    assert!(err("[{:process 0 :type :invoke :f :read}] x", Format::Edn)
        .contains("after the history's closing"));
    assert!(err(
        "INFO  jepsen.util - x\t:invoke\t:read\tnil\n",
        Format::JepsenLog
    )
    .contains("process must be a number"));
    assert!(err(
        "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nsomething else\n",
        Format::JepsenLog
    )
    .starts_with("line 2:"));
    assert!(err(
        "INFO  jepsen.util - 0\t:begin\t:read\tnil\n",
        Format::JepsenLog
    )
    .contains("the type must be"));
}

mod generated {
    use super::*;
    use proptest::prelude::*;
    use tenure::sim::lin::generate::{registers, Spec};
    use tenure::sim::lin::models::{val, RegisterOp, RegisterOut};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Histories of a real register are linearizable; one read changed to a value nobody
        /// wrote is not, and the failure names that read or an operation of its key.
        #[test]
        fn generated_histories_pass_and_a_forged_read_fails(
            ops in 1usize..400,
            keys in 1usize..6,
            processes in 1usize..8,
            unknown in 0u64..200,
            seed in any::<u64>(),
            pick in any::<prop::sample::Index>(),
        ) {
            let spec = Spec { ops, keys, processes, unknown_per_mille: unknown, seed };
            let mut h = registers(spec);
            let c = check(&Register::default(), &h, Budget::default());
            prop_assert_eq!(c.verdict, Verdict::Linearizable, "{:?}", c);
            let reads: Vec<usize> = h
                .iter()
                .enumerate()
                .filter(|(_, o)| matches!((&o.input, &o.output), (RegisterOp::Read { .. }, Some(_))))
                .map(|(i, _)| i)
                .collect();
            if !reads.is_empty() {
                let i = reads[pick.index(reads.len())];
                h[i].output = Some(RegisterOut::Read(Some(val(&json!("forged")))));
                let c = check(&Register::default(), &h, Budget::default());
                prop_assert_eq!(c.verdict, Verdict::NotLinearizable);
                let RegisterOp::Read { key } = &h[i].input else { unreachable!() };
                let (part, _) = c.failures().next().unwrap();
                prop_assert_eq!(&part.keys, &vec![key.clone()]);
            }
        }
    }
}
