//! Fuzz targets: every parser and entry point that takes input from outside, as a function of
//! bytes that must return (an error is a fine answer) and never panic, hang or allocate
//! without bound. Where a roundtrip must hold (a scenario written back reads the same, a key
//! prints as it parses) the target asserts it too, so a fuzzer finds wrong answers as well as
//! crashes.
//!
//! The same functions run three ways: under libFuzzer (`fuzz/`, `cargo fuzz run NAME`, for
//! the long runs BENCHMARKS.md records), in `cargo test` as a short smoke run over a seed
//! corpus and seeded mutations of it ([`smoke`]), and as the regression tests of what a
//! fuzzer once found (`scenarios/tests/fuzz_smoke.rs`).

use crate::check::{check_text, CheckOptions, FormatName, ModelName};
use std::time::Duration;
use tenure_sim::lin::Budget;

/// A fuzz target: it returns on any input, or the input found a bug.
pub type Target = fn(&[u8]);

/// Each target by name (the names of `fuzz/fuzz_targets/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("scenario_toml", scenario_toml),
    ("history_jsonl", history_jsonl),
    ("edn", edn),
    ("jepsen_log", jepsen_log),
    ("sweep_results", sweep_results),
    ("fault_schedule", fault_schedule),
    ("names", names),
];

/// A small budget: a fuzzer's input must be decided (or left undecided) in milliseconds.
fn options(model: Option<ModelName>, format: FormatName) -> CheckOptions {
    CheckOptions {
        model,
        format,
        budget: Budget {
            max_steps: Some(20_000),
            max_time: None,
        },
        initial: None,
    }
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// A scenario file: read, checked against the limits, written back as TOML, which must read
/// back to the same scenario.
pub fn scenario_toml(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let Ok(s) = crate::library::parse(t, "fuzz") else {
        return;
    };
    let written = crate::library::to_toml(&s).expect("a scenario that reads writes");
    let again = crate::library::parse(&written, "fuzz (written back)")
        .unwrap_or_else(|e| panic!("a written scenario does not read back: {e}\n{written}"));
    assert_eq!(
        crate::library::to_toml(&again).expect("writes"),
        written,
        "a scenario written twice differs"
    );
}

/// A history as `tenure check` reads it with the format detected: tenure records (every
/// invariant), Jepsen JSON lines or a JSON array (the register model), and again with the kv
/// model and an initial value.
pub fn history_jsonl(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let _ = check_text(t, &options(None, FormatName::Jsonl));
    let mut kv = options(Some(ModelName::Kv), FormatName::Jsonl);
    kv.initial = Some(String::new());
    let _ = check_text(t, &kv);
}

/// Jepsen's and Knossos's EDN, under every model.
pub fn edn(data: &[u8]) {
    let Some(t) = text(data) else { return };
    for model in [
        ModelName::Register,
        ModelName::Kv,
        ModelName::Mutex,
        ModelName::Lease,
        ModelName::Agency,
        ModelName::Storage,
        ModelName::MultiRegister,
    ] {
        let _ = check_text(t, &options(Some(model), FormatName::Edn));
    }
}

/// `jepsen.util` log lines.
pub fn jepsen_log(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let _ = check_text(
        t,
        &options(Some(ModelName::Register), FormatName::JepsenLog),
    );
}

/// A sweep's results as `tenure merge` reads them: alone, twice (which must be refused), and
/// merged with itself as shard 1/2 beside a shard 2/2 of nothing.
pub fn sweep_results(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let Ok(r) = serde_json::from_str::<crate::sweep::SweepResults>(t) else {
        return;
    };
    if let Ok(m) = crate::sweep::merge(vec![("a".into(), r.clone())]) {
        // What one file proves, the merge keeps: every seed once, in order.
        assert!(m.results.windows(2).all(|w| w[0].seed < w[1].seed));
    }
    assert!(
        crate::sweep::merge(vec![("a".into(), r.clone()), ("b".into(), r.clone())]).is_err(),
        "a file merged with itself must be refused"
    );
    let mut other = r;
    other.shard = Some("2/2".into());
    other.results.clear();
    let _ = crate::sweep::merge(vec![("b".into(), other)]);
}

/// A fault schedule as JSON: read and validated for 3 agents and 10 processes; a valid one
/// also describes every step (the run summary prints them).
pub fn fault_schedule(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let Ok(s) = serde_json::from_str::<tenure_sim::Schedule>(t) else {
        return;
    };
    if s.validate_with(3, 10).is_ok() {
        for step in &s.steps {
            let _ = step.fault.to_string();
        }
        let _ = s.last_at_ms();
    }
}

/// Key paths and lease names: a key prints as text that reads back to it; a lease claimed
/// under any name over `mem:` either fails with an error or is held by its claimer.
pub fn names(data: &[u8]) {
    use tenure_core::lease::{Checker, Claimer, LeaseClient, LeaseManager};
    let Some(t) = text(data) else { return };
    // `Key::parse` reads a path as the agency's APIs give it (a `%` is a `%`); `str::parse`
    // reads a key as it prints, `%2F` and `%25` standing for `/` and `%`.
    if let Ok(k) = t.parse::<tenure_core::Key>() {
        let printed = k.to_string();
        assert_eq!(
            printed.parse::<tenure_core::Key>().ok(),
            Some(k),
            "{t:?} prints as {printed:?}"
        );
    }
    if let Ok(k) = tenure_core::Key::parse(t) {
        assert_eq!(k.to_string().parse::<tenure_core::Key>().ok(), Some(k));
    }
    let (name, holder) = t.split_once('\n').unwrap_or((t, "fuzz"));
    let clock = tenure_core::ManualClock::new();
    let Ok(mem) = tenure_core::open("mem:", clock.shared()) else {
        return;
    };
    let manager = LeaseManager::new(std::sync::Arc::new(LeaseClient::new(mem.client())));
    let (name, holder) = (name.to_string(), holder.to_string());
    clock.block_on(async move {
        let claimed = manager.claim(&name, &holder, Duration::from_secs(10)).await;
        if claimed.is_ok() {
            let held = manager.token(&name, &holder).check().await;
            assert!(
                held.is_ok(),
                "{name:?} claimed by {holder:?} is not held: {held:?}"
            );
        }
    });
    // The backend's ticker holds the clock: without this, every input leaks both.
    drop(mem);
    clock.shutdown();
}

/// A few byte-level mutations of `input`, drawn from `seed`: flips, deletions, insertions of
/// bytes and of tokens the parsers care about, duplicated and truncated stretches.
pub fn mutate(input: &[u8], seed: u64) -> Vec<u8> {
    #[rustfmt::skip]
    const TOKENS: &[&str] = &[
        "{", "}", "[", "]", "(", ")", "\"", ":", ",", "\n", "nil", ":process", ":type",
        ":invoke", ":ok", ":info", ":fail", ":f", ":value", ":key", "#_", "#{", ";", "\\",
        "-1", "0", "1.5", "1e300", "18446744073709551615", "-9223372036854775808", "nan",
        "\"t_us\":", "\"type\":\"invoke\"", "\"op\":1", "\u{feff}", "..", "/", "//", "ü",
        "[settings]", "[faults]", "= ", "steps = [", "mode = \"schedule\"", "kind = \"",
    ];
    let mut rng = tenure_core::rng::SplitMix64::new(seed);
    let mut out = input.to_vec();
    for _ in 0..1 + rng.next_u64() % 4 {
        let at = if out.is_empty() {
            0
        } else {
            (rng.next_u64() % (out.len() as u64 + 1)) as usize
        };
        match rng.next_u64() % 6 {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << (rng.next_u64() % 8);
            }
            1 if !out.is_empty() => {
                let end = (at + 1 + (rng.next_u64() % 8) as usize).min(out.len());
                out.drain(at.min(end)..end);
            }
            2 => out.insert(at, rng.next_u64() as u8),
            3 => {
                let t = TOKENS[(rng.next_u64() % TOKENS.len() as u64) as usize];
                out.splice(at..at, t.bytes());
            }
            4 if !out.is_empty() => {
                let from = (rng.next_u64() % out.len() as u64) as usize;
                let len = (1 + rng.next_u64() % 64) as usize;
                let piece: Vec<u8> = out[from..(from + len).min(out.len())].to_vec();
                out.splice(at..at, piece);
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// Runs `target` on every input of `corpus` and on `per_input` mutations of each.
pub fn smoke(target: Target, corpus: &[Vec<u8>], per_input: u64) -> u64 {
    let mut runs = 0;
    for (i, input) in corpus.iter().enumerate() {
        target(input);
        runs += 1;
        for m in 0..per_input {
            target(&mutate(input, (i as u64) << 32 | m));
            runs += 1;
        }
    }
    runs
}
