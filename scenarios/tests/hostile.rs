//! Hostile command lines and files, as a table: each case runs `tenure` with bad or edge
//! input and states the exit code and a part of the message it must give. Every case also
//! passes sentinel files (outputs that already exist, the scenario file it reads) and checks
//! that a failing command left them byte for byte as they were, with no temporary file behind.
//!
//! `{d}` in an argument is the case's scratch directory, which holds the files below.

use std::path::{Path, PathBuf};
use std::process::Command;

const QUIET: &str = include_str!("../library/quiet.toml");
const SENTINEL: &str = "a file the user keeps\n";

/// One Jepsen operation as EDN.
fn op(p: &str, t: &str, f: &str, v: &str) -> String {
    format!("{{:process {p} :type :{t} :f :{f} :value {v}}}\n")
}

/// The files every case finds in its directory.
fn files(d: &Path) {
    let w = |name: &str, text: &str| std::fs::write(d.join(name), text).unwrap();
    w("S.toml", QUIET);
    w("keep.txt", SENTINEL);
    w("keep.html", SENTINEL);
    w("empty", "");
    w("blank", "\n  \n\n");
    w("nemesis.edn", &op(":nemesis", "info", "start", "nil"));
    let reg = [
        op("0", "invoke", "write", "1"),
        op("0", "ok", "write", "1"),
        op("1", "invoke", "read", "nil"),
        op("1", "ok", "read", "1"),
    ]
    .concat();
    w("reg.edn", &reg);
    w(
        "unknown-f.edn",
        &reg.replace(":write", ":frob").replace(":read", ":frob"),
    );
    w(
        "twice.edn",
        &[
            op("0", "invoke", "read", "nil"),
            op("0", "invoke", "read", "nil"),
        ]
        .concat(),
    );
    w("frac.edn", &op("0.5", "invoke", "read", "nil"));
    w("negative.edn", &op("-1", "invoke", "read", "nil"));
    w("strproc.edn", &op("\"a\"", "invoke", "read", "nil"));
    w(
        "dupkey.edn",
        "{:process 0 :process 1 :type :invoke :f :read :value nil}\n",
    );
    w("orphan.edn", &op("0", "ok", "read", "nil"));
    w("badtype.edn", &op("0", "done", "read", "nil"));
    w(
        "unclosed.edn",
        "[{:process 0 :type :invoke :f :read :value nil}\n",
    );
    w("deep.edn", &"[".repeat(10_000));
    w("binary.edn", "\u{0}\u{1}\u{2}");
    let t = |t_us: u64, what: &str| {
        format!("{{\"t_us\":{t_us},\"node\":\"client-1\",\"type\":{what}}}\n")
    };
    let inv = |op: u64| {
        format!("\"invoke\",\"process\":1,\"op\":{op},\"f\":\"read\",\"key\":\"/r/0\",\"value\":null,\"local_us\":0")
    };
    let done = |op: u64| {
        format!("\"complete\",\"process\":1,\"op\":{op},\"result\":\"ok\",\"value\":null,\"local_us\":0")
    };
    w("t-orphan.jsonl", &t(5, &done(1)));
    w(
        "t-dup.jsonl",
        &[t(1, &inv(1)), t(2, &done(1)), t(3, &inv(1))].concat(),
    );
    w("t-two.jsonl", &[t(1, &inv(1)), t(2, &inv(2))].concat());
    w("t-back.jsonl", &[t(5, &inv(1)), t(2, &done(1))].concat());
    w("t-shape.jsonl", &t(1, "\"invoke\",\"process\":\"x\""));
    w("t-kind.jsonl", &t(1, "\"teleport\""));
    w(
        "arr.json",
        "[{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":1},{\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":1}]",
    );
    w("bom.edn", &format!("\u{feff}{reg}"));
    let scenario = |name: &str, body: &str| {
        w(
            name,
            &QUIET.replacen("[settings]", &format!("[settings]\n{body}"), 1),
        )
    };
    scenario("hours-pause.toml", "op_pause_ms = 7200000");
    scenario(
        "hours-ttl.toml",
        "lock_ttl_ms = 3000000\nlock_delay_ms = 3000000\nduration_ms = 3600000",
    );
    scenario("hours-delay.toml", "lock_delay_ms = 36000000");
    scenario("election.toml", "election_ticks = 4294967295");
    scenario("liveness.toml", "liveness_bound_ms = 0");
    scenario("huge-ms.toml", "request_timeout_ms = 18446744073709551615");
    scenario("zero-agents.toml", "agents = 0");
    scenario("many.toml", "managers = 100000");
    scenario("registers.toml", "registers = 9223372036854775807");
    scenario(
        "wrap.toml",
        "managers = 9223372036854775807\nregisters = 9223372036854775807",
    );
    w(
        "wrap-sum.toml",
        &QUIET
            .replace("lockers = 2", "lockers = 9223372036854775807")
            .replace("leasers = 2", "leasers = 9223372036854775807"),
    );
    scenario("rho.toml", "rho = 0.9");
    scenario("nan.toml", "rho = nan");
    scenario("unknown-setting.toml", "colour = 3");
    let named = |file: &str, name: &str| {
        w(
            file,
            &QUIET.replacen("name = \"quiet\"", &format!("name = {name}"), 1),
        )
    };
    named("name-empty.toml", "\"\"");
    named("name-escape.toml", "\"\\u001b[31mred\"");
    named("name-dots.toml", "\"../../etc/x\"");
    named("name-slash.toml", "\"a/b\"");
    let faults = |file: &str, step: &str| {
        w(
            file,
            &QUIET.replacen(
                "mode = \"none\"",
                &format!("mode = \"schedule\"\nsteps = [ {step} ]"),
                1,
            ),
        )
    };
    faults(
        "groups-empty.toml",
        "{ at_ms = 1000, fault = { kind = \"partition\", groups = [] } }",
    );
    faults(
        "groups-one.toml",
        "{ at_ms = 1000, fault = { kind = \"partition\", groups = [[1, 2, 3]] } }",
    );
    faults(
        "agent-9.toml",
        "{ at_ms = 1000, fault = { kind = \"kill\", agent = 9 } }",
    );
    faults(
        "late-step.toml",
        "{ at_ms = 99999999, fault = { kind = \"heal\" } }",
    );
    faults("latency.toml", "{ at_ms = 1000, fault = { kind = \"latency\", min_ms = 1, max_ms = 18446744073709551615 } }");
    faults("jump.toml", "{ at_ms = 1000, fault = { kind = \"clock\", agent = 1, change = { jump = { by_ms = -9223372036854775808 } } } }");
    faults(
        "loss.toml",
        "{ at_ms = 1000, fault = { kind = \"loss\", rate = 2.0 } }",
    );
    w("not-toml.toml", "name = [");
    w("not-results.json", "{\"x\": 1}");
}

/// A sweep's results file of `shard` over `seeds`, from a real sweep of `quiet`.
fn sweep_results(d: &Path, name: &str, seeds: &str, shard: Option<&str>) {
    let out = d.join(name);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenure"));
    cmd.args(["sweep", "quiet", "--seeds", seeds, "--out"])
        .arg(&out);
    if let Some(s) = shard {
        cmd.args(["--shard", s]);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The table: arguments, exit code, part of the message (standard error).
const CASES: &[(&[&str], i32, &str)] = &[
    // Verdicts that lie: nothing checked is not a pass.
    (&["check", "{d}/empty"], 2, "nothing to check"),
    (&["check", "{d}/blank"], 2, "nothing to check"),
    (&["check", "/dev/null"], 2, "not a regular file"),
    (&["check", "/dev/zero"], 2, "not a regular file"),
    (&["check", "{d}/fifo"], 2, "not a regular file"),
    (&["check", "{d}"], 2, "directory"),
    (&["check", "{d}/missing.edn"], 2, "cannot read"),
    (&["check", "{d}/nemesis.edn"], 2, "nothing to check"),
    (
        &["check", "{d}/unknown-f.edn"],
        2,
        "knows none of the operations found (frob x2)",
    ),
    (
        &["check", "{d}/reg.edn", "--model", "mutex"],
        2,
        "the mutex model knows none",
    ),
    (
        &["check", "{d}/reg.edn", "--model", "lease"],
        2,
        "knows none",
    ),
    // Malformed tenure histories are bad input, as malformed Jepsen ones are.
    (&["check", "{d}/t-orphan.jsonl"], 2, "never invoked"),
    (&["check", "{d}/t-dup.jsonl"], 2, "invoked again"),
    (&["check", "{d}/t-two.jsonl"], 2, "one call at a time"),
    (&["check", "{d}/t-back.jsonl"], 2, "order of true time"),
    (&["check", "{d}/t-shape.jsonl"], 2, "line 1"),
    (&["check", "{d}/t-kind.jsonl"], 2, "unknown variant"),
    (
        &["check", "{d}/t-orphan.jsonl", "--model", "register"],
        2,
        "never invoked",
    ),
    // Malformed Jepsen input.
    (&["check", "{d}/twice.edn"], 2, "invokes again"),
    (&["check", "{d}/frac.edn"], 2, "whole number"),
    (&["check", "{d}/negative.edn"], 2, "whole number"),
    (&["check", "{d}/strproc.edn"], 2, "whole number"),
    (&["check", "{d}/dupkey.edn"], 2, "twice"),
    (&["check", "{d}/orphan.edn"], 2, "never called"),
    (&["check", "{d}/badtype.edn"], 2, ":type must be"),
    (&["check", "{d}/unclosed.edn"], 2, "never closed"),
    (&["check", "{d}/deep.edn"], 2, "nested deeper"),
    (&["check", "{d}/binary.edn"], 2, "line 1"),
    // Budgets and numbers.
    (
        &["check", "{d}/reg.edn", "--time-limit", "1e300"],
        2,
        "--time-limit",
    ),
    (
        &["check", "{d}/reg.edn", "--time-limit", "1e19"],
        2,
        "--time-limit",
    ),
    (&["check", "{d}/reg.edn", "--time-limit", "-1"], 2, ""),
    (
        &["check", "{d}/reg.edn", "--time-limit", "nan"],
        2,
        "--time-limit",
    ),
    (&["check", "{d}/reg.edn", "--steps", "0"], 2, "--steps"),
    (
        &["check", "{d}/reg.edn", "--steps", "18446744073709551616"],
        2,
        "",
    ),
    (
        &["bench", "--quick", "--seeds", "18446744073709551615"],
        2,
        "--seeds must be",
    ),
    (&["bench", "--seeds", "0"], 2, "--seeds must be"),
    // Outputs that would clobber inputs or each other: refused before any work.
    (
        &["run", "{d}/S.toml", "--history", "{d}/S.toml"],
        2,
        "refusing to overwrite",
    ),
    (
        &["run", "{d}/S.toml", "--history", "{d}/./S.toml"],
        2,
        "refusing to overwrite",
    ),
    (
        &["run", "{d}/S.toml", "--html", "{d}/S.toml"],
        2,
        "refusing to overwrite",
    ),
    (
        &["report", "{d}/S.toml", "--html", "{d}/S.toml"],
        2,
        "refusing to overwrite",
    ),
    (
        &["sweep", "{d}/S.toml", "--out", "{d}/S.toml"],
        2,
        "refusing to overwrite",
    ),
    (
        &["shrink", "{d}/S.toml", "--seed", "1", "--out", "{d}/S.toml"],
        2,
        "refusing to overwrite",
    ),
    (
        &[
            "run",
            "quiet",
            "--history",
            "{d}/keep.txt",
            "--html",
            "{d}/keep.txt",
        ],
        2,
        "both name",
    ),
    (
        &[
            "run",
            "quiet",
            "--history",
            "{d}/keep.txt",
            "--shiviz",
            "{d}/keep.txt",
        ],
        2,
        "both name",
    ),
    (
        &["run", "quiet", "--history", "{d}/keep.txt", "--html", "{d}"],
        2,
        "is a directory",
    ),
    (
        &[
            "run",
            "quiet",
            "--history",
            "{d}/keep.txt",
            "--html",
            "{d}/nodir/r.html",
        ],
        2,
        "not a directory",
    ),
    (
        &[
            "run",
            "quiet",
            "--history",
            "{d}/keep.txt",
            "--html",
            "/dev/null",
        ],
        2,
        "not a regular file",
    ),
    (
        &[
            "run",
            "quiet",
            "--history",
            "{d}/keep.txt",
            "--shiviz",
            "{d}/keep.html",
            "--shiviz-window",
            "5..1",
        ],
        2,
        "--shiviz-window",
    ),
    (
        &[
            "run",
            "quiet",
            "--history",
            "{d}/keep.txt",
            "--shiviz-window",
            "1..5",
        ],
        2,
        "needs --shiviz",
    ),
    (
        &[
            "sweep",
            "quiet",
            "--seeds",
            "0..2",
            "--out",
            "{d}/nodir/r.json",
        ],
        2,
        "not a directory",
    ),
    (
        &["sweep", "quiet", "--seeds", "0..2", "--out", "{d}"],
        2,
        "is a directory",
    ),
    (
        &["run", "lock-contention", "--history", "{d}/nodir/h"],
        2,
        "not a directory",
    ),
    // Values past the simulator's limits, and arithmetic on user numbers.
    (
        &["run", "quiet", "--duration-s", "3601"],
        2,
        "--duration-s must be 1 to 3600",
    ),
    (
        &["run", "quiet", "--duration-s", "18446744073709551615"],
        2,
        "--duration-s",
    ),
    (&["run", "quiet", "--duration-s", "0"], 2, "--duration-s"),
    (
        &[
            "run",
            "lock-contention",
            "--duration-s",
            "18446744073709551615",
        ],
        2,
        "duration",
    ),
    (
        &["run", "lock-contention", "--ttl-ms", "18446744073709551615"],
        2,
        "lock ttl",
    ),
    (&["run", "lock-contention", "--clients", "0"], 2, "clients"),
    (&["run", "{d}/hours-pause.toml"], 2, "op_pause_ms"),
    (&["run", "{d}/hours-ttl.toml"], 2, "virtual time"),
    (&["run", "{d}/hours-delay.toml"], 2, "lock_delay_ms"),
    (&["run", "{d}/huge-ms.toml"], 2, "request_timeout_ms"),
    (&["run", "{d}/election.toml"], 2, "election_ticks"),
    (&["run", "{d}/liveness.toml"], 2, "liveness_bound_ms"),
    (&["run", "{d}/zero-agents.toml"], 2, "agents"),
    (&["run", "{d}/many.toml"], 2, "processes"),
    (&["run", "{d}/wrap.toml"], 2, "processes"),
    (&["run", "{d}/registers.toml"], 2, "registers"),
    (&["run", "{d}/wrap-sum.toml"], 2, "processes"),
    (&["run", "{d}/rho.toml"], 2, "rho"),
    (&["run", "{d}/nan.toml"], 2, "rho"),
    (&["run", "{d}/unknown-setting.toml"], 2, "colour"),
    (&["run", "{d}/not-toml.toml"], 2, "line 1"),
    (
        &["sweep", "quiet", "--seeds", "18446744073709551615"],
        2,
        "seeds",
    ),
    (&["sweep", "quiet", "--seeds", "5..5"], 2, "empty"),
    (
        &["sweep", "quiet", "--seeds", "0..1", "--shard", "2/2"],
        2,
        "holds no seed",
    ),
    (
        &["sweep", "quiet", "--seeds", "0..2", "--shard", "0/2"],
        2,
        "shard",
    ),
    (
        &["sweep", "quiet", "--seeds", "0..2", "--shard", "3/2"],
        2,
        "shard",
    ),
    (
        &["sweep", "quiet", "--seeds", "0..2", "--jobs", "0"],
        2,
        "--jobs",
    ),
    (
        &["sweep", "quiet", "--seeds", "0..2", "--jobs", "100000"],
        2,
        "--jobs",
    ),
    (
        &["margin", "quiet", "--param", "drift", "--jobs", "100000"],
        2,
        "--jobs",
    ),
    (
        &[
            "margin",
            "quiet",
            "--param",
            "drift",
            "--seeds",
            "0..18446744073709551615",
        ],
        2,
        "--seeds",
    ),
    (
        &["margin", "quiet", "--param", "drift", "--resolution", "0"],
        2,
        "--resolution",
    ),
    (
        &["margin", "quiet", "--param", "drift", "--range", "0..0.9"],
        2,
        "below 0.5",
    ),
    (&["margin", "quiet", "--param", "warp"], 2, ""),
    (
        &[
            "margin",
            "paused-holder",
            "--param",
            "pause",
            "--range",
            "0..1e300",
        ],
        2,
        "--range",
    ),
    (
        &["margin", "quiet", "--param", "delay", "--range", "0..1e19"],
        2,
        "--range",
    ),
    (
        &["margin", "quiet", "--param", "delay", "--range", "0..nan"],
        2,
        "--range",
    ),
    (
        &[
            "shrink",
            "quiet",
            "--seed",
            "1",
            "--budget",
            "18446744073709551615",
        ],
        2,
        "",
    ),
    // Nonsense that must be refused, and words that must say the truth.
    (&["run", "{d}/name-empty.toml"], 2, "name \"\""),
    (&["run", "{d}/name-escape.toml"], 2, "names output files"),
    (&["run", "{d}/name-dots.toml"], 2, "names output files"),
    (&["run", "{d}/name-slash.toml"], 2, "names output files"),
    (&["run", "{d}/groups-empty.toml"], 2, "at least two groups"),
    (&["run", "{d}/groups-one.toml"], 2, "at least two groups"),
    (&["run", "{d}/agent-9.toml"], 2, "agent 9 does not exist"),
    (&["run", "{d}/late-step.toml"], 2, "past the duration"),
    (&["run", "{d}/latency.toml"], 2, "latency"),
    (&["run", "{d}/jump.toml"], 2, "clock jump"),
    (&["run", "{d}/loss.toml"], 2, "loss rate"),
    (&["shrink", "quiet", "--seed", "1"], 2, "breaks no rule"),
    (
        &["shrink", "quiet", "--seed", "1", "--rule", ""],
        2,
        "--rule",
    ),
    (
        &["margin", "quiet", "--param", "drift", "--rule", " "],
        2,
        "--rule",
    ),
    (
        &["replay", "quiet", "--seed", "1", "--expect", ""],
        2,
        "is not a digest",
    ),
    (
        &["replay", "quiet", "--seed", "1", "--expect", "xyz"],
        2,
        "is not a digest",
    ),
    (&["sweep", "lock-contention"], 2, "in process over mem:"),
    (
        &["margin", "lock-contention", "--param", "drift"],
        2,
        "cluster scenarios",
    ),
    (&["run", "no-such-scenario"], 2, "unknown scenario"),
    (&["run", "quiet", "--bug", "no-such-bug"], 2, "no-such-bug"),
    (&["run", "quiet", "--trace", "loud"], 2, "loud"),
    (
        &["run", "quiet", "--clients", "3"],
        2,
        "lock-contention only",
    ),
    // Merges that would claim what was not run.
    (&["merge", "{d}/r1.json"], 2, "shards missing: 2/2"),
    (
        &["merge", "{d}/r1.json", "{d}/r1.json"],
        2,
        "both shard 1/2",
    ),
    (&["merge", "{d}/r1.json", "{d}/r-other.json"], 2, "seeds"),
    (
        &[
            "merge",
            "{d}/r1.json",
            "{d}/r2.json",
            "--out",
            "{d}/r1.json",
        ],
        2,
        "refusing to overwrite",
    ),
    (&["merge", "{d}/not-results.json"], 2, "not the results"),
    (&["merge", "{d}/empty"], 2, "not the results"),
    (&["merge", "/dev/zero"], 2, "not a regular file"),
];

fn scratch(i: usize) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tenure-hostile-{}-{i}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Every file of `d` with its bytes.
fn contents(d: &Path) -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<(String, Vec<u8>)> = std::fs::read_dir(d)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    all.sort();
    all
}

#[test]
fn hostile_input_gets_a_clear_error_and_loses_nothing() {
    // Shards of a real sweep, made once.
    let shards = scratch(usize::MAX);
    sweep_results(&shards, "r1.json", "0..2", Some("1/2"));
    sweep_results(&shards, "r2.json", "0..2", Some("2/2"));
    sweep_results(&shards, "r-other.json", "0..4", Some("2/2"));
    let mut failures = Vec::new();
    for (i, (args, code, says)) in CASES.iter().enumerate() {
        let d = scratch(i);
        files(&d);
        for f in ["r1.json", "r2.json", "r-other.json"] {
            std::fs::copy(shards.join(f), d.join(f)).unwrap();
        }
        let fifo = d.join("fifo");
        let made = Command::new("mkfifo").arg(&fifo).status();
        assert!(
            made.is_ok_and(|s| s.success()),
            "mkfifo is needed for this test"
        );
        let before = contents(&d);
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("{d}", &d.display().to_string()))
            .collect();
        let out = Command::new(env!("CARGO_BIN_EXE_tenure"))
            .args(&args)
            .current_dir(&d)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let got = out.status.code().unwrap_or(-1);
        if got != *code || !err.contains(says) || err.contains("panicked") {
            failures.push(format!(
                "tenure {}: exit {got} (wanted {code}), stderr {err:?} (wanted {says:?})",
                args.join(" ")
            ));
        }
        // Nothing written, nothing left behind.
        if contents(&d) != before {
            failures.push(format!(
                "tenure {}: changed the files of its directory",
                args.join(" ")
            ));
        }
        let _ = std::fs::remove_dir_all(&d);
    }
    let _ = std::fs::remove_dir_all(&shards);
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn accepted_edge_input_is_read_as_its_tool_wrote_it() {
    let d = scratch(usize::MAX - 1);
    files(&d);
    for (file, format) in [
        ("arr.json", "json-lines"),
        ("bom.edn", "edn"),
        ("reg.edn", "edn"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tenure"))
            .args(["check"])
            .arg(d.join(file))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{file}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(format) && text.contains("verdict    linearizable"),
            "{text}"
        );
    }
    // Several files in one process: each its verdict, the worst exit code.
    let out = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("check")
        .args([d.join("reg.edn"), d.join("empty"), d.join("arr.json")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("verdict    linearizable")
            .count(),
        2
    );
    // A Jepsen store directory stands for its history.edn.
    let store = d.join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::copy(d.join("reg.edn"), store.join("history.edn")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("check")
        .arg(&store)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&d);
}
