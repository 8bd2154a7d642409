//! deploy/: the Indexed Job's command is the README's, and it works as written: eight pods'
//! shards (each with its JOB_COMPLETION_INDEX) merge into the whole range.

use std::process::Command;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The shell command of the manifest's container.
fn manifest_command() -> String {
    let yaml = std::fs::read_to_string(root().join("deploy/indexed-job.yaml")).unwrap();
    let lines: Vec<&str> = yaml.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim() == "- -c")
        .expect("the container runs sh -c");
    lines[at + 1].trim().trim_start_matches("- ").to_string()
}

#[test]
fn the_manifest_runs_the_readmes_command() {
    let command = manifest_command();
    assert!(command.starts_with("tenure sweep "), "{command}");
    for doc in ["README.md", "deploy/README.md"] {
        let text = std::fs::read_to_string(root().join(doc)).unwrap();
        assert!(text.contains(&command), "{doc} does not give {command:?}");
    }
    let workflow = std::fs::read_to_string(root().join("deploy/github-sweep.yml")).unwrap();
    assert!(workflow.contains("--shard ${{ matrix.shard }}/8"));
    assert!(workflow.contains("tenure merge shard-*.json"));
}

#[test]
fn the_manifests_shards_merge_into_the_whole_range() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("deploy");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The manifest's command, on 16 seeds of `quiet` instead of 100,000 of `swarm`, writing
    // where this test can: every pod of the job in turn.
    let command = manifest_command()
        .replace("tenure ", "")
        .replace("swarm", "quiet")
        .replace("0..100000", "0..16")
        .replace("/results/", &format!("{}/", dir.display()));
    for index in 0..8 {
        let args: Vec<String> = command
            .replace("$JOB_COMPLETION_INDEX", &index.to_string())
            .split_whitespace()
            .map(String::from)
            .collect();
        let out = Command::new(env!("CARGO_BIN_EXE_tenure"))
            .args(&args)
            .env("JOB_COMPLETION_INDEX", index.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pod {index}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let shards: Vec<String> = (0..8)
        .map(|i| dir.join(format!("shard-{i}.json")).display().to_string())
        .collect();
    let mut args = vec!["merge".to_string()];
    args.extend(shards);
    let out = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args(&args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("16"), "{text}");
}
