//! The example runs: it starts its own cluster, takes the lock, writes with its fencing
//! token through a leader kill, and exits 0; bad arguments exit 2.

use std::process::Command;
use std::time::Duration;

#[test]
fn the_lock_survives_a_leader_kill_and_every_fenced_write_lands() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_real-lock"))
        .args(["--seconds", "4"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: the program stops itself after 4 s; kill it if it has not within 60 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("real-lock did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(status.success(), "{out}");
    assert!(out.contains("killed     the leader"), "{out}");
    assert!(out.contains("restarted"), "{out}");
    assert!(out.contains("0 refused"), "{out}");
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        vec!["--seconds", "0"],
        vec!["http://x"],
        vec!["tenure://nope"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_real-lock"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}
