//! A short run of every fuzz target (`tenure_scenarios::fuzz`) over a seed corpus and seeded
//! mutations of it: the long runs are libFuzzer's (`fuzz/`, BENCHMARKS.md); this keeps every
//! target compiling, running and crash-free on what once crashed it. Deterministic: the
//! mutations come from fixed seeds.

use std::path::{Path, PathBuf};
use tenure_scenarios::fuzz;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: PathBuf) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first `lines` lines of a file.
fn head(path: PathBuf, lines: usize) -> Vec<u8> {
    let text = String::from_utf8(read(path)).unwrap();
    text.lines()
        .take(lines)
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .into_bytes()
}

fn library() -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(root().join("scenarios/library"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    all.sort();
    all
}

/// Inputs that once crashed a target, or came close: kept as regression cases.
const FOUND: &[(&str, &str)] = &[
    ("edn", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["),
    ("edn", "{:process 0 :process 0}"),
    ("edn", "{:process 18446744073709551616 :type :invoke :f :read}"),
    ("edn", "({:process 0 :type :invoke :f :cas :value [1]})"),
    ("jepsen_log", "INFO jepsen.util - 0 :invoke :read \""),
    ("history_jsonl", "[{\"process\":1e400}]"),
    ("history_jsonl", "{\"t_us\":18446744073709551615,\"node\":\"\",\"type\":\"check\",\"name\":\"x\",\"ok\":true,\"detail\":\"\"}"),
    ("fault_schedule", "{\"steps\":[{\"at_ms\":0,\"fault\":{\"kind\":\"latency\",\"min_ms\":0,\"max_ms\":18446744073709551615}}]}"),
    ("names", "/a//b"),
    ("names", "lease\n"),
    ("sweep_results", "{\"scenario\":\"q\",\"scenario_digest\":\"d\",\"build\":\"b\",\"seeds\":\"0..18446744073709551615\",\"shard\":\"1/1\",\"stopped_early\":false,\"results\":[]}"),
];

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let data = root().join("tests/data");
    let mut c: Vec<Vec<u8>> = FOUND
        .iter()
        .filter(|(t, _)| *t == target)
        .map(|(_, input)| input.as_bytes().to_vec())
        .collect();
    match target {
        "scenario_toml" => c.extend(library().into_iter().map(read)),
        "history_jsonl" => {
            let mut s = tenure_scenarios::library::built_in("quiet").unwrap();
            s.settings.duration_ms = Some(500);
            let r = tenure_sim::run(&s.run_config().unwrap(), 1).unwrap();
            let h = r.history.to_jsonl();
            c.push(
                h.lines()
                    .take(200)
                    .collect::<Vec<_>>()
                    .join("\n")
                    .into_bytes(),
            );
            c.push(
                b"{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"key\":\"a\",\"value\":1}\n\
                  {\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"key\":\"a\",\"value\":1}\n"
                    .to_vec(),
            );
        }
        "edn" => {
            c.push(head(data.join("porcupine-kv/c01-ok.txt"), 40));
            c.push(read(
                data.join("knossos/cas-register/bad/rethink-fail-minimal.edn"),
            ));
            c.push(read(data.join("knossos/cas-register/bad/bad-analysis.edn")));
            c.push(head(data.join("knossos/mutex/bad/etcd.edn"), 40));
        }
        "jepsen_log" => c.push(head(data.join("porcupine-jepsen-etcd/etcd_000.log"), 60)),
        "sweep_results" => {
            let mut s = tenure_scenarios::library::built_in("quiet").unwrap();
            s.settings.duration_ms = Some(300);
            let set = tenure_scenarios::sweep::SeedSet {
                range: 0..2,
                shard: None,
            };
            let (results, _) =
                tenure_scenarios::sweep::run_seeds(&s, &set, 1, false, |_, _, _| {}).unwrap();
            let all = tenure_scenarios::sweep::SweepResults {
                scenario: "quiet".into(),
                scenario_digest: "d".into(),
                build: "b".into(),
                seeds: "0..2".into(),
                shard: None,
                stopped_early: false,
                checked_determinism: false,
                results,
            };
            c.push(serde_json::to_vec(&all).unwrap());
        }
        "fault_schedule" => {
            for p in library() {
                let text = String::from_utf8(read(p)).unwrap();
                let s = tenure_scenarios::library::parse(&text, "lib").unwrap();
                if !s.faults.steps.is_empty() {
                    let schedule = tenure_sim::Schedule {
                        steps: s.faults.steps.clone(),
                    };
                    c.push(serde_json::to_vec(&schedule).unwrap());
                }
            }
        }
        "names" => {
            for n in [
                "/arango/Plan/x",
                "/",
                "svc",
                "unit/0",
                "a b",
                "ünï",
                "",
                "x\ny",
            ] {
                c.push(n.as_bytes().to_vec());
            }
        }
        other => panic!("no corpus for {other}"),
    }
    c
}

#[test]
fn every_fuzz_target_survives_its_corpus_and_mutations() {
    let mut ran = Vec::new();
    for (name, target) in fuzz::TARGETS {
        let c = corpus(name);
        assert!(!c.is_empty(), "{name}: an empty corpus");
        let per_input = (1_500 / c.len() as u64).clamp(20, 400);
        ran.push((name, fuzz::smoke(*target, &c, per_input)));
    }
    assert_eq!(ran.len(), 7);
    assert!(ran.iter().all(|(_, n)| *n >= 500), "{ran:?}");
}

#[test]
fn mutations_are_a_function_of_the_seed() {
    let input = b"{:process 0 :type :invoke :f :read :value nil}".to_vec();
    assert_eq!(fuzz::mutate(&input, 7), fuzz::mutate(&input, 7));
    let distinct: std::collections::BTreeSet<Vec<u8>> =
        (0..100).map(|s| fuzz::mutate(&input, s)).collect();
    assert!(distinct.len() > 80);
}
