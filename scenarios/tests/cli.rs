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
fn a_closed_standard_output_ends_the_run_quietly() {
    // `tenure sweep ... | head -0`: the reader is gone before anything is written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args(["sweep", "quiet", "--seeds", "0..2", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{err}");
    assert!(!err.contains("panicked"), "{err}");
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
        vec!["bench", "--seeds", "0"],
        vec!["bench", "--seeds", "many"],
        vec!["bench", "--bogus"],
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

/// The first seed in 1..=8 at which `tenure <args> --seed S` exits 1 (a violation). The tests
/// of planted bugs name no seed: a change of timing moves a failure from seed to seed, while a
/// bug that none of eight seeds finds still fails them.
fn failing_seed(args: &[&str]) -> String {
    (1..=8)
        .map(|s| s.to_string())
        .find(|seed| {
            let mut all = args.to_vec();
            all.extend(["--seed", seed]);
            tenure(&all).0 == 1
        })
        .unwrap_or_else(|| panic!("no seed in 1..=8 breaks `tenure {}`", args.join(" ")))
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
    // Right after the real one, at the same true time: a well-formed history.
    let p = scratch(
        "two-leaders.jsonl",
        &text.replacen(&role, &format!("{role}\n{other}"), 1),
    );
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
        &"0".repeat(64),
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

/// Every `href="#X"` of `html` lands on an `id="X"`.
fn links_land(html: &str) {
    let ids: std::collections::BTreeSet<&str> = html
        .split("id=\"")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect();
    for target in html.split("href=\"#").skip(1) {
        let target = &target[..target.find('"').unwrap()];
        assert!(ids.contains(target), "a link to #{target} lands nowhere");
    }
}

#[test]
fn the_html_report_shows_every_violation_and_fault_and_links_them_to_records() {
    let dir = std::env::temp_dir().join(format!("tenure-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("drift.html");
    // A failing run: its summary as JSON, then its report.
    let (code, out, _) = tenure(&["run", "drift-beyond-rho", "--seed", "18", "--json"]);
    assert_eq!(code, 1);
    let run: serde_json::Value = serde_json::from_str(&out).unwrap();
    let violations = run["violations"].as_array().unwrap();
    let warnings = run["warnings"].as_array().unwrap();
    let faults = run["counters"]["faults"].as_u64().unwrap() as usize;
    assert!(!violations.is_empty() && faults > 0);
    let (code, _, err) = tenure(&[
        "report",
        "drift-beyond-rho",
        "--seed",
        "18",
        "--html",
        page.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
    // Self-contained: nothing is fetched.
    assert!(!html.contains("src=") && !html.contains("<link"));
    assert!(html.contains(run["digest"].as_str().unwrap()));
    // Every violation and warning is listed with its rule and linked to its records, and
    // marked on the timeline.
    assert_eq!(
        html.matches("<li class=\"violation\"").count(),
        violations.len()
    );
    assert_eq!(
        html.matches("<li class=\"warning\"").count(),
        warnings.len()
    );
    assert_eq!(html.matches("class=\"vmark\"").count(), violations.len());
    for v in violations {
        assert!(html.contains(v["rule"].as_str().unwrap()));
        for r in v["records"].as_array().unwrap() {
            assert!(html.contains(&format!("href=\"#r{r}\"")), "record {r}");
            assert!(html.contains(&format!("<tr id=\"r{r}\" class=\"hit\">")));
        }
    }
    // Every fault is on the timeline and in the table.
    assert_eq!(html.matches("class=\"fault\" data-record").count(), faults);
    assert_eq!(html.matches("<tr class=\"fault-row\">").count(), faults);
    // Each agent, each holder, beliefs with tokens, leader terms.
    for lane in [
        "agent-1", "agent-2", "agent-3", "locker-1", "leaser-1", "leader-1",
    ] {
        assert!(html.contains(&format!(">{lane}</text>")), "lane {lane}");
    }
    assert!(html.contains("class=\"belief\"") && html.contains("class=\"leader\""));
    // The key the violations name comes first, open.
    let first = html.find("<details class=\"key").unwrap();
    assert!(html[first..].starts_with("<details class=\"key named\" id=\"key-_locks_0\" open>"));
    assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
    links_land(&html);
}

#[test]
fn reports_are_deterministic_and_shiviz_logs_carry_vector_clocks() {
    let dir = std::env::temp_dir().join(format!("tenure-shiviz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b, log) = (
        dir.join("a.html"),
        dir.join("b.html"),
        dir.join("run.shiviz"),
    );
    for page in [&a, &b] {
        let (code, _, err) = tenure(&[
            "report",
            "leader-loss-while-locked",
            "--seed",
            "2",
            "--duration-s",
            "7",
            "--html",
            page.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
    }
    let html = std::fs::read(&a).unwrap();
    assert_eq!(html, std::fs::read(&b).unwrap(), "byte-identical pages");
    let html = String::from_utf8(html).unwrap();
    assert!(
        html.contains("kill agent"),
        "the leader's kill, as resolved"
    );
    links_land(&html);
    let (code, _, err) = tenure(&[
        "run",
        "leader-loss-while-locked",
        "--seed",
        "2",
        "--duration-s",
        "7",
        "--shiviz",
        log.to_str().unwrap(),
        "--shiviz-window",
        "2500..3500",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("wrote the ShiViz log"), "{err}");
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(tenure_sim::shiviz::PARSER));
    assert_eq!(lines.next(), Some(""));
    // Each host's own entry counts its events from 1; a receipt knows its sender's count.
    let mut own: std::collections::BTreeMap<String, u64> = Default::default();
    let (mut events, mut receipts) = (0, 0);
    for line in lines {
        let (host, rest) = line.split_once(' ').unwrap();
        let end = rest.find('}').unwrap();
        let clock: std::collections::BTreeMap<String, u64> =
            serde_json::from_str(&rest[..=end]).unwrap();
        let n = own.entry(host.to_string()).or_default();
        *n += 1;
        assert_eq!(clock[host], *n, "{line}");
        let (us, event) = rest[end + 2..].split_once(' ').unwrap();
        let us: u64 = us.parse().unwrap();
        assert!((2_500_000..3_500_000).contains(&us), "{line}");
        if event.starts_with("receive ") && clock.len() > 1 {
            receipts += 1;
        }
        events += 1;
    }
    assert!(
        events > 1000 && receipts > 100,
        "{events} events, {receipts} receipts"
    );
    // Bad windows and outputs are refused.
    for (args, why) in [
        (vec!["--shiviz-window", "5..1"], "bad --shiviz-window"),
        (vec!["--shiviz-window", "1..5"], "needs --shiviz"),
        (vec!["--html", "/nonexistent-dir/x.html"], "not a directory"),
    ] {
        let mut all = vec!["run", "quiet", "--duration-s", "1"];
        all.extend(args.iter().copied());
        if why == "bad --shiviz-window" {
            all.extend(["--shiviz", "/tmp/unused.shiviz"]);
        }
        let (code, _, err) = tenure(&all);
        assert_eq!(code, 2, "{all:?}: {err}");
        assert!(err.contains(why), "{all:?}: {err}");
    }
}

#[test]
fn a_planted_bug_is_listed_switched_on_by_name_and_found() {
    let (code, out, _) = tenure(&["list", "--bugs", "--json"]);
    assert_eq!(code, 0);
    let bugs: serde_json::Value = serde_json::from_str(&out).unwrap();
    let unfenced = bugs
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "resource-skips-token-check")
        .expect("listed");
    assert_eq!(unfenced["invariant"], "S10 fencing");
    let scenario = unfenced["scenario"].as_str().unwrap();
    // The scenario that finds it does, and names the rule; without the bug the same seed holds.
    let seed = failing_seed(&["run", scenario]);
    let (code, out, _) = tenure(&["run", scenario, "--seed", &seed]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("S10 fencing"), "{out}");
    let (code, out, _) = tenure(&["run", "paused-holder", "--seed", &seed]);
    assert_eq!(code, 0, "{out}");
    // --bug plants it in any scenario, and the replay command carries it.
    let (code, out, _) = tenure(&[
        "run",
        "paused-holder",
        "--seed",
        &seed,
        "--bug",
        "resource-skips-token-check",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "tenure replay paused-holder --bug resource-skips-token-check --seed {seed}"
        )),
        "{out}"
    );
    let (code, _, err) = tenure(&["run", "quiet", "--bug", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown bug \"nope\""), "{err}");
    let bad = scratch(
        "bad-bug.toml",
        "name = \"x\"\nabout = \"a\"\n[settings]\nbugs = [\"nope\"]\n",
    );
    let (code, _, err) = tenure(&["run", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("settings.bugs"), "{err}");
}

#[test]
fn shrink_writes_a_smaller_scenario_that_replays_and_refuses_what_does_not_fail() {
    let dir = std::env::temp_dir().join(format!("tenure-cli-shrink-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("shrunk.toml");
    let seed = failing_seed(&[
        "run",
        "paused-holder",
        "--bug",
        "resource-skips-token-check",
    ]);
    let (code, out, err) = tenure(&[
        "shrink",
        "paused-holder",
        "--seed",
        &seed,
        "--bug",
        "resource-skips-token-check",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("breaks     S10 fencing"), "{out}");
    assert!(out.contains("2 steps -> 1"), "{out}");
    assert!(
        err.contains("shrink: "),
        "progress on standard error: {err}"
    );
    // The file reads as a scenario, plants the bug, and replays with the digest printed.
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("resource-skips-token-check"), "{text}");
    assert!(text.contains("kind = \"pause_holder\""), "{text}");
    let replay = out
        .lines()
        .find_map(|l| l.strip_prefix("replay     tenure "))
        .expect("a replay command");
    let args: Vec<&str> = replay.split_whitespace().collect();
    let digest = args.last().unwrap().to_string();
    let (code, again, err) = tenure(&args);
    // Exit 1 for the violation it reproduces; a differing digest would say so.
    assert_eq!(code, 1, "{again}{err}");
    assert!(!err.contains("differs"), "{err}");
    assert!(again.contains(&format!("digest     {digest}")), "{again}");
    let (code, run, _) = tenure(&["run", file.to_str().unwrap(), "--seed", &seed]);
    assert_eq!(code, 1, "{run}");
    assert!(run.contains("S10 fencing"), "{run}");
    // A seed that holds, a rule it does not break, and bad arguments: exit 2, nothing written.
    let none = dir.join("none.toml");
    let cases: [(&[&str], &str); 4] = [
        (
            &["shrink", "paused-holder", "--seed", "1"],
            "breaks no rule",
        ),
        (
            &[
                "shrink",
                "paused-holder",
                "--seed",
                &seed,
                "--bug",
                "resource-skips-token-check",
                "--rule",
                "S7",
            ],
            "breaks no rule named \"S7\"",
        ),
        (
            &["shrink", "lock-contention", "--seed", "1"],
            "cluster scenarios",
        ),
        (
            &["shrink", "quiet", "--seed", "1", "--budget", "1"],
            "--budget",
        ),
    ];
    for (args, says) in cases {
        let mut args = args.to_vec();
        args.extend(["--out", none.to_str().unwrap()]);
        let (code, _, err) = tenure(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!none.exists(), "{args:?} wrote a file");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_rule_id_names_that_rule_only_never_a_prefix() {
    // Seed 1 of paused-holder-unfenced breaks S10 alone: `--rule S1` must not shrink it (S1
    // once matched S10 by prefix), and `--rule S10` does.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("rule-exact");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out_file = dir.join("shrunk.toml");
    let out = out_file.to_str().unwrap();
    let (code, _, err) = tenure(&[
        "shrink",
        "paused-holder-unfenced",
        "--seed",
        "1",
        "--rule",
        "S1",
        "--out",
        out,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("breaks no rule named \"S1\"") && err.contains("S10 fencing"),
        "{err}"
    );
    assert!(!out_file.exists());
    let (code, stdout, err) = tenure(&[
        "shrink",
        "paused-holder-unfenced",
        "--seed",
        "1",
        "--rule",
        "S10",
        "--out",
        out,
    ]);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(stdout.contains("breaks     S10 fencing"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn margin_brackets_the_breaking_value_with_seeds_and_names_the_bound() {
    // A pause of the unfenced paused-holder: somewhere below 2020 ms (the TTL read through
    // the drift bound) the frozen holder's late write starts to land after a newer token.
    let (code, out, err) = tenure(&[
        "margin",
        "paused-holder-unfenced",
        "--param",
        "pause",
        "--seeds",
        "1..4",
        "--range",
        "0..4000",
        "--resolution",
        "200",
        "--rule",
        "S10",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let m: serde_json::Value = serde_json::from_str(&out).unwrap();
    let holds = m["holds"]["value"].as_f64().expect("a holding side");
    let breaks = m["breaks"]["value"].as_f64().expect("a breaking side");
    assert!(holds < breaks && breaks - holds <= 200.0, "{m}");
    assert!(breaks <= 4000.0 && holds >= 0.0, "{m}");
    assert_eq!(m["breaks"]["failing_seed"][1], "S10 fencing", "{m}");
    assert!(m["holds"]["failing_seed"].is_null(), "{m}");
    assert!((m["bound"].as_f64().unwrap() - 2020.2).abs() < 1.0, "{m}");
    assert!(
        err.contains("margin: at "),
        "progress on standard error: {err}"
    );
    // Fencing on, the same pauses break nothing.
    let (code, out, _) = tenure(&[
        "margin",
        "paused-holder",
        "--param",
        "pause",
        "--seeds",
        "1..3",
        "--range",
        "0..4000",
        "--rule",
        "S10",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("holds      up to 4000 ms"), "{out}");
    // Bad input: exit 2, named.
    let cases: [(&[&str], &str); 5] = [
        (&["margin", "quiet", "--param", "heat"], "unknown parameter"),
        (&["margin", "swarm", "--param", "pause"], "written schedule"),
        (
            &["margin", "quiet", "--param", "drift", "--range", "0.3..0.1"],
            "--range",
        ),
        (
            &["margin", "quiet", "--param", "drift", "--range", "0..0.7"],
            "below 0.5",
        ),
        (
            &["margin", "quiet", "--param", "delay", "--resolution", "0"],
            "--resolution",
        ),
    ];
    for (args, says) in cases {
        let (code, _, err) = tenure(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
