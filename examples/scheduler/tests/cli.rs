//! The scheduler's binary: tenure's command line on its worlds, through `tenure::cli::main`.

use std::process::Command;

fn worlds(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scheduler-worlds"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tmp(name: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("scheduler-cli");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    p.display().to_string()
}

#[test]
fn list_sweep_shrink_and_replay_a_users_world() {
    let (code, out, _) = worlds(&["list"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains("scheduler-mistaken") && out.contains("scheduler-1"),
        "{out}"
    );

    let (code, out, _) = worlds(
        &["sweep", "scheduler", "--seeds", "1..6", "--jobs", "2"],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("5 seeds run, 0 failing") && out.contains("became leader"),
        "{out}"
    );

    let (code, out, _) = worlds(&["sweep", "scheduler-mistaken", "--seeds", "1..21"], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("JOB1"), "{out}");

    let file = tmp("shrunk.json");
    let (code, out, err) = worlds(
        &[
            "shrink",
            "scheduler-mistaken",
            "--seed",
            "12",
            "--out",
            &file,
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    let replay = out
        .lines()
        .find_map(|l| l.strip_prefix("replay     scheduler-worlds "))
        .expect("a replay command")
        .to_string();
    let args: Vec<&str> = replay.split_whitespace().collect();
    let (code, out, err) = worlds(&args, &[]);
    assert_eq!(code, 1, "the replay breaks JOB1 again: {out}{err}");
    assert!(
        out.contains("VIOLATION  JOB1") && !err.contains("differs"),
        "{out}{err}"
    );

    // The same schedule with another digest expected: the replay says it differs.
    let mut wrong = args.clone();
    let last = wrong.len() - 1;
    let zeros = "0".repeat(64);
    wrong[last] = &zeros;
    let (code, _, err) = worlds(&wrong, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("the digest differs"), "{err}");
}

#[test]
fn shards_of_an_indexed_job_merge_into_the_whole_sweep() {
    let mut files = Vec::new();
    for index in ["0", "1"] {
        let f = tmp(&format!("shard-{index}.json"));
        let (code, out, err) = worlds(
            &[
                "sweep",
                "scheduler",
                "--seeds",
                "1..5",
                "--shard",
                "job/2",
                "--out",
                &f,
            ],
            &[("JOB_COMPLETION_INDEX", index)],
        );
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("2 seeds run"), "{out}");
        files.push(f);
    }
    let (code, out, err) = worlds(&["merge", &files[0], &files[1]], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("4 seeds merged, 0 failing"), "{out}");
    // One shard alone does not cover the range.
    let (code, _, err) = worlds(&["merge", &files[0]], &[]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn bad_input_exits_2_naming_the_problem() {
    for (args, env, says) in [
        (
            vec!["run", "nope", "--seed", "1"],
            vec![],
            "no world named \"nope\"",
        ),
        (
            vec!["replay", "scheduler", "--seed", "1"],
            vec![],
            "replay needs --expect",
        ),
        (
            vec!["replay", "scheduler", "--seed", "1", "--expect", "abc"],
            vec![],
            "is not a digest",
        ),
        (
            vec!["sweep", "scheduler", "--seeds", "5..1"],
            vec![],
            "is empty",
        ),
        (
            vec!["sweep", "scheduler", "--jobs", "0"],
            vec![],
            "--jobs must be 1 to 256",
        ),
        (
            vec!["sweep", "scheduler", "--shard", "job/2"],
            vec![],
            "JOB_COMPLETION_INDEX, which is not set",
        ),
        (
            vec!["sweep", "scheduler", "--shard", "job/2"],
            vec![("JOB_COMPLETION_INDEX", "2")],
            "not below the 2 shards",
        ),
        (
            vec![
                "run",
                "scheduler",
                "--seed",
                "1",
                "--schedule",
                "/nonexistent/s.json",
            ],
            vec![],
            "/nonexistent/s.json",
        ),
        (
            vec!["run", "scheduler", "--seed", "x"],
            vec![],
            "invalid value 'x'",
        ),
        (
            vec!["shrink", "scheduler", "--seed", "1", "--rule", " "],
            vec![],
            "--rule is empty",
        ),
        (
            vec!["shrink", "scheduler", "--seed", "1"],
            vec![],
            "breaks no rule",
        ),
    ] {
        let (code, _, err) = worlds(&args, &env);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
