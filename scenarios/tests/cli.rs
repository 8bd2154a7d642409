//! The `tenure` program end to end: output, determinism and exit codes.

use std::process::Command;

fn tenure(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn list_names_the_scenarios() {
    let (code, out, _) = tenure(&["list"]);
    assert_eq!(code, 0);
    assert!(out.contains("lock-contention"));
}

#[test]
fn run_is_deterministic_and_writes_the_history() {
    let dir = std::env::temp_dir().join(format!("tenure-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let h1 = dir.join("h1.jsonl");
    let h2 = dir.join("h2.jsonl");
    let args = |h: &std::path::Path| {
        vec![
            "run".to_string(),
            "lock-contention".into(),
            "--seed".into(),
            "3".into(),
            "--duration-s".into(),
            "20".into(),
            "--history".into(),
            h.display().to_string(),
        ]
    };
    let a1: Vec<String> = args(&h1);
    let a2: Vec<String> = args(&h2);
    let (c1, o1, _) = tenure(&a1.iter().map(String::as_str).collect::<Vec<_>>());
    let (c2, o2, _) = tenure(&a2.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!((c1, c2), (0, 0));
    assert_eq!(o1, o2);
    assert!(o1.contains("violations 0"));
    let (b1, b2) = (std::fs::read(&h1).unwrap(), std::fs::read(&h2).unwrap());
    assert!(!b1.is_empty());
    assert_eq!(b1, b2, "byte-identical histories");
    let (_, o3, _) = tenure(&[
        "run",
        "lock-contention",
        "--seed",
        "4",
        "--duration-s",
        "20",
    ]);
    assert_ne!(
        o1.lines().last(),
        o3.lines().last(),
        "another seed, another digest"
    );
    let (c, json, _) = tenure(&[
        "run",
        "lock-contention",
        "--seed",
        "3",
        "--duration-s",
        "20",
        "--json",
    ]);
    assert_eq!(c, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["seed"], 3);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_input_exits_2_with_a_message() {
    for args in [
        vec!["run", "no-such-scenario"],
        vec!["run", "lock-contention", "--clients", "0"],
        vec!["run", "lock-contention", "--seed", "minus-one"],
        vec!["run", "lock-contention", "--ttl-ms", "1"],
        vec!["run", "lock-contention", "--duration-s", "0"],
        vec![
            "run",
            "lock-contention",
            "--history",
            "/nonexistent-dir/h.jsonl",
            "--duration-s",
            "1",
        ],
        vec!["frobnicate"],
    ] {
        let (code, _, err) = tenure(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(!err.trim().is_empty(), "{args:?} says why");
    }
}

fn data(file: &str) -> String {
    format!(
        "{}/../tests/data/porcupine-jepsen-etcd/{file}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn scratch(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tenure-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn check_gives_jepsen_verdicts_with_exit_codes() {
    // etcd_002 is linearizable, etcd_000 is not (porcupine's verdicts).
    let (code, out, err) = tenure(&["check", &data("etcd_002.log")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verdict    linearizable"), "{out}");
    let (code, out, _) = tenure(&["check", &data("etcd_000.log")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("NOT linearizable"), "{out}");
    assert!(out.contains("cannot be placed"), "{out}");
    // As JSON.
    let (code, out, _) = tenure(&[
        "check",
        "--json",
        "--model",
        "register",
        &data("etcd_000.log"),
    ]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["linearizability"]["verdict"], "not_linearizable");
    assert_eq!(v["violations"][0]["rule"], "S13 linearizability");
    // A budget too small to decide: exit 3, "unknown".
    let (code, out, _) = tenure(&["check", "--steps", "10", &data("etcd_002.log")]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("unknown"), "{out}");
}

#[test]
fn check_reads_edn_with_keys_and_other_models() {
    let edn = "[{:process 0 :type :invoke :f :acquire :key \"m\" :value nil}\n\
               {:process 0 :type :ok :f :acquire :key \"m\" :value nil}\n\
               {:process 1 :type :invoke :f :acquire :key \"m\" :value nil}\n\
               {:process 1 :type :ok :f :acquire :key \"m\" :value nil}]\n";
    let p = scratch("mutex.edn", edn);
    let (code, out, _) = tenure(&["check", "--model", "mutex", p.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("acquire m by 1"), "{out}");
    let fixed = edn.replace(
        "{:process 1 :type :invoke",
        "{:process 0 :type :invoke :f :release :key \"m\"}\n{:process 0 :type :ok :f :release :key \"m\"}\n{:process 1 :type :invoke",
    );
    let p = scratch("mutex-ok.edn", &fixed);
    let (code, out, _) = tenure(&["check", "--model", "mutex", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn check_runs_every_invariant_on_a_tenure_history() {
    let report = tenure_sim::run(&tenure_sim::RunConfig::default(), 2).unwrap();
    assert!(report.ok());
    let text = report.history.to_jsonl();
    let p = scratch("run.jsonl", &text);
    let (code, out, err) = tenure(&["check", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("every invariant held"), "{out}");
    // The same history checked as registers only.
    let (code, out, _) = tenure(&["check", "--model", "register", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("not in the model, skipped"), "{out}");
    // A record of two leaders in one term breaks S12.
    let role = text
        .lines()
        .find(|l| l.contains("\"type\":\"role\"") && l.contains("\"role\":\"leader\""))
        .unwrap()
        .to_string();
    let other = role
        .replacen("\"agent\":1", "\"agent\":9", 1)
        .replacen("\"agent\":2", "\"agent\":9", 1)
        .replacen("\"agent\":3", "\"agent\":9", 1);
    let p = scratch("two-leaders.jsonl", &format!("{text}{other}\n"));
    let (code, out, _) = tenure(&["check", p.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("S12"), "{out}");
}

#[test]
fn check_refuses_bad_input_with_the_line() {
    let cases = [
        (
            "empty-type.jsonl",
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n{\"process\":0,\"f\":\"read\"}\n",
            "line 2",
        ),
        (
            "bad.edn",
            "{:process 0 :type :invoke :f :read}\n{:process 0 :type",
            "line 2",
        ),
        (
            "orphan.edn",
            "{:process 0 :type :ok :f :read :value 1}",
            "line 1",
        ),
        (
            "bad.log",
            "INFO  jepsen.util - 0\t:invoke\t:cas\t[1\n",
            "line 1",
        ),
        (
            "tenure-bad.jsonl",
            "{\"t_us\": 1, \"node\": \"x\", \"type\": \"nonsense\"}\n",
            "line 1",
        ),
    ];
    for (name, text, line) in cases {
        let p = scratch(name, text);
        let (code, out, err) = tenure(&["check", p.to_str().unwrap()]);
        assert_eq!(code, 2, "{name}: {out}{err}");
        assert!(err.contains(line), "{name}: {err}");
    }
    let p = scratch("binary.log", "");
    std::fs::write(&p, [0xff, 0xfe, 0x00]).unwrap();
    for args in [
        vec!["check", "/nonexistent/history.edn"],
        vec!["check", p.to_str().unwrap()],
        vec!["check", "--model", "nosuch", &data("etcd_000.log")],
        vec!["check", "--time-limit", "-1", &data("etcd_000.log")],
        vec!["check", "--format", "xml", &data("etcd_000.log")],
        vec!["check"],
    ] {
        let (code, _, err) = tenure(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(!err.trim().is_empty());
    }
}

#[test]
fn cluster_scenarios_run_replay_exactly_and_list_as_json() {
    let (code, out, _) = tenure(&["list", "--json"]);
    assert_eq!(code, 0);
    let all: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for n in [
        "quiet",
        "swarm",
        "minority-partition",
        "drift-beyond-rho",
        "lock-contention",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    let (code, out, err) = tenure(&["run", "minority-partition", "--seed", "4"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("violations 0") && out.contains("faults     2"),
        "{out}"
    );
    let digest = out
        .lines()
        .find_map(|l| l.strip_prefix("digest     "))
        .unwrap()
        .to_string();
    // The same seed replays to the same digest, traced in virtual time with node names.
    let (code, _, err) = tenure(&[
        "replay",
        "minority-partition",
        "--seed",
        "4",
        "--expect",
        &digest,
        "--trace",
        "info",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("replayed exactly"), "{err}");
    assert!(err.contains("name=\"agent-1\"") && err.contains("\"type\":\"fault\""));
    let (code, _, err) = tenure(&[
        "replay",
        "minority-partition",
        "--seed",
        "4",
        "--expect",
        "0",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("differs"), "{err}");
}

#[test]
fn a_scenario_file_runs_like_a_built_in_one_and_bad_files_are_named() {
    let file = scratch(
        "two-kills.toml",
        r#"name = "two-kills"
about = "agents 1 and 2 die and come back"
watches = ["S12", "S15"]
[settings]
clients = 2
duration_ms = 4000
[faults]
mode = "schedule"
steps = [
  { at_ms = 1000, fault = { kind = "kill", agent = 1 } },
  { at_ms = 2000, fault = { kind = "restart", agent = 1 } },
  { at_ms = 2500, fault = { kind = "kill", agent = 2 } },
]
"#,
    );
    let (code, out, err) = tenure(&["run", file.to_str().unwrap(), "--seed", "2"]);
    assert_eq!(code, 0, "{out}{err}");
    // Agent 2, left dead by the file, is restarted at the end (every fault is lifted).
    assert!(
        out.contains("two-kills") && out.contains("faults     4"),
        "{out}"
    );
    for (name, text, says) in [
        ("syntax.toml", "name = \"x\nabout = \"y\"\n", "line 1"),
        ("field.toml", "name = \"x\"\nabout = \"y\"\nflavour = 1\n", "flavour"),
        (
            "value.toml",
            "name = \"x\"\nabout = \"y\"\n[settings]\nrho = 0.9\n",
            "settings.rho",
        ),
        (
            "late.toml",
            "name = \"x\"\nabout = \"y\"\n[settings]\nduration_ms = 1000\n[faults]\nmode = \"schedule\"\nsteps = [{ at_ms = 5000, fault = { kind = \"heal\" } }]\n",
            "past the duration",
        ),
        (
            "process.toml",
            "name = \"x\"\nabout = \"y\"\n[faults]\nmode = \"schedule\"\nsteps = [{ at_ms = 10, fault = { kind = \"kill_process\", process = 99 } }]\n",
            "99",
        ),
    ] {
        let f = scratch(name, text);
        let (code, _, err) = tenure(&["run", f.to_str().unwrap()]);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(err.contains(says) && err.contains(name), "{name}: {err}");
    }
    let (code, _, err) = tenure(&["run", "/nonexistent/s.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/s.toml"), "{err}");
}

#[test]
fn sweeps_shard_merge_and_name_failing_seeds_with_a_replay_command() {
    let one = scratch("shard1.json", "");
    let two = scratch("shard2.json", "");
    for (k, f) in [("1/2", &one), ("2/2", &two)] {
        let (code, out, err) = tenure(&[
            "sweep",
            "quiet",
            "--seeds",
            "0..4",
            "--shard",
            k,
            "--out",
            f.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("2 ran, 0 failed"), "{out}");
        // Not a terminal: no progress bar.
        assert!(err.is_empty(), "{err}");
    }
    let (code, merged, _) = tenure(&["merge", one.to_str().unwrap(), two.to_str().unwrap()]);
    assert_eq!(code, 0);
    let (code, full, _) = tenure(&["sweep", "quiet", "--seeds", "0..4", "--json"]);
    assert_eq!(code, 0);
    let (m, f): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&merged).unwrap(),
        serde_json::from_str(&full).unwrap(),
    );
    assert_eq!(m["results"], f["results"]);
    assert_eq!(m["results"].as_array().unwrap().len(), 4);
    // Beyond the drift bound some seed breaks S1; each failure comes with its replay line.
    let (code, out, _) = tenure(&["sweep", "drift-beyond-rho", "--seeds", "0..3"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("S1 exclusivity"), "{out}");
    assert!(
        out.contains("tenure replay drift-beyond-rho --seed"),
        "{out}"
    );
    for args in [
        vec!["sweep", "quiet", "--seeds", "5..5"],
        vec!["sweep", "quiet", "--seeds", "x"],
        vec!["sweep", "quiet", "--shard", "0/3"],
        vec!["sweep", "quiet", "--jobs", "0"],
        vec!["sweep", "nowhere"],
        vec!["merge", "/nonexistent.json"],
    ] {
        let (code, _, err) = tenure(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(!err.trim().is_empty(), "{args:?}");
    }
    let junk = scratch("junk.json", "{\"scenario\": 3}");
    let (code, _, err) = tenure(&["merge", junk.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("junk.json"), "{err}");
}
