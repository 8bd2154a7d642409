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
