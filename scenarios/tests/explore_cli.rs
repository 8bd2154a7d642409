//! `tenure explore` and the fault points at the command line: a finding written as a scenario
//! file that replays and shrinks, a corpus kept on disk and read back, coverage in `sweep`,
//! `list --fault-points`, and bad input refused with exit 2 and nothing written.

use std::path::PathBuf;
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

/// A fresh directory for one test (removed when the test ends, pass or fail).
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("tenure-explore-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn path(&self, f: &str) -> String {
        self.0.join(f).display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The value after `key` on the line starting with `prefix`.
fn word_after(out: &str, prefix: &str, key: &str) -> String {
    let line = out
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{out}"));
    let rest = &line[line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len()..];
    rest.split_whitespace().next().unwrap().to_string()
}

#[test]
fn explore_finds_a_planted_bug_and_writes_an_input_that_replays_and_shrinks() {
    let d = Dir::new("found");
    let found = d.path("found.toml");
    let (code, out, err) = tenure(&[
        "explore",
        "swarm-world",
        "--bug",
        "vote-not-persisted",
        "--budget",
        "200",
        "--seed",
        "3",
        "--out",
        &found,
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("found      at run"), "{out}");
    let seed = word_after(&out, "input", "seed ")
        .trim_end_matches(',')
        .to_string();
    let digest = word_after(&out, "replay", "--expect ");
    let (code, rout, rerr) = tenure(&["replay", &found, "--seed", &seed, "--expect", &digest]);
    // Exit 1: the run breaks its rule again, and gives the same digest.
    assert_eq!(code, 1, "{rout}{rerr}");
    assert!(rerr.contains("replayed exactly"), "{rerr}");
    let (code, run, _) = tenure(&["run", &found, "--seed", &seed]);
    assert_eq!(code, 1, "the input fails when run: {run}");
    assert!(run.contains("points") || run.contains("coverage"), "{run}");
    let shrunk = d.path("shrunk.toml");
    let (code, sout, serr) = tenure(&[
        "shrink", &found, "--seed", &seed, "--budget", "30", "--out", &shrunk,
    ]);
    assert_eq!(code, 0, "{sout}{serr}");
    assert!(std::path::Path::new(&shrunk).exists());
}

#[test]
fn explore_keeps_its_corpus_on_disk_and_reads_it_back() {
    let d = Dir::new("corpus");
    let corpus = d.path("corpus");
    let args = |budget: &'static str| {
        [
            "explore", "swarm", "--budget", budget, "--seed", "4", "--corpus", &corpus,
        ]
        .map(String::from)
    };
    let run = |budget| {
        let a = args(budget);
        tenure(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (code, out, err) = run("16");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("plateau"), "{out}");
    let entries = std::fs::read_dir(&corpus).unwrap().count();
    assert!(entries > 0, "the corpus was written");
    let (code, out, err) = run("8");
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("corpus     {entries} entries read")),
        "{out}"
    );
}

#[test]
fn sweep_prints_the_coverage_reached() {
    let (code, out, _) = tenure(&["sweep", "swarm", "--seeds", "0..3"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("coverage ") && out.contains("features in all"),
        "{out}"
    );
}

#[test]
fn list_names_the_fault_points() {
    let (code, out, _) = tenure(&["list", "--fault-points"]);
    assert_eq!(code, 0);
    for p in tenure_core::buggify::POINTS {
        assert!(out.contains(p.name), "{} in {out}", p.name);
    }
}

#[test]
fn bad_exploration_input_is_refused_with_exit_2() {
    let d = Dir::new("bad");
    let (code, _, err) = tenure(&["explore", "swarm", "--budget", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("--budget"), "{err}");
    let file = d.path("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let (code, _, err) = tenure(&["explore", "swarm", "--budget", "4", "--corpus", &file]);
    assert_eq!(code, 2);
    assert!(err.contains("not a directory"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "x",
        "nothing touched"
    );
    // A corpus entry that is not a scenario.
    let corpus = d.path("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    std::fs::write(d.0.join("corpus/entry-000001-seed-7.toml"), "name = 3").unwrap();
    let (code, _, err) = tenure(&["explore", "swarm", "--budget", "4", "--corpus", &corpus]);
    assert_eq!(code, 2);
    assert!(err.contains("entry-000001-seed-7.toml"), "{err}");
    // Fault points that do not exist, or a mode that is not one.
    let s = d.path("s.toml");
    for (setting, named) in [
        ("fault_points = [\"agent.melt\"]", "agent.melt"),
        ("fault_points = \"sometimes\"", "sometimes"),
        // Bounds of a drawn world that cannot hold.
        ("draw_world = true\ndraw_ttl_ms = [900, 800]", "draw_ttl_ms"),
        (
            "draw_world = true\ndraw_drift_of_rho = 1.5",
            "draw_drift_of_rho",
        ),
    ] {
        std::fs::write(
            &s,
            format!("name = \"s\"\nabout = \"a\"\n[settings]\n{setting}\n"),
        )
        .unwrap();
        for command in ["run", "explore"] {
            let args = if command == "run" {
                vec![command, &s, "--seed", "1"]
            } else {
                vec![command, &s, "--budget", "4"]
            };
            let (code, _, err) = tenure(&args);
            assert_eq!(code, 2, "{command} {setting}: {err}");
            assert!(err.contains(named), "{err}");
        }
    }
    let (code, _, err) = tenure(&["explore", "no-such-scenario", "--budget", "4"]);
    assert_eq!(code, 2, "{err}");
}
