//! The real service as processes: three `tenure agent` processes on 127.0.0.1, a workload
//! through `tenure_server::TcpClient`, the leader killed with SIGKILL mid-workload and started
//! again on its data directory: no acknowledged write lost, the cluster serving again within
//! the election bound; `tenure status` and `tenure agent`'s bad input. Every process a test
//! starts is killed when the test ends, also when it fails.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tenure_core::agency::{Agency, AgencyApi};
use tenure_core::{Key, StoreClient};
use tenure_server::client::ClientOptions;
use tenure_server::TcpClient;

/// Agent processes, killed when dropped; and their data, removed.
struct Cluster {
    dir: PathBuf,
    peers: Vec<SocketAddr>,
    children: Vec<Option<Child>>,
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        let dir = std::env::temp_dir().join(format!(
            "tenure-real-cli-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
                ^ std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos()
        ));
        // Ports the OS gives now, free again once the probes are dropped.
        let probes: Vec<std::net::TcpListener> = (0..n)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let peers = probes.iter().map(|l| l.local_addr().unwrap()).collect();
        drop(probes);
        let mut c = Cluster {
            dir,
            peers,
            children: Vec::new(),
        };
        for id in 1..=n {
            let child = c.spawn(id);
            c.children.push(Some(child));
        }
        c
    }

    fn spawn(&self, id: usize) -> Child {
        let peers: Vec<String> = self.peers.iter().map(|a| a.to_string()).collect();
        Command::new(env!("CARGO_BIN_EXE_tenure"))
            .args([
                "agent",
                "--id",
                &id.to_string(),
                "--peers",
                &peers.join(","),
            ])
            .args(["--cluster", "cli", "--plaintext", "--data"])
            .arg(self.dir.join(format!("agent-{id}")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tenure agent starts")
    }

    fn kill(&mut self, id: usize) {
        if let Some(mut c) = self.children[id - 1].take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    fn restart(&mut self, id: usize) {
        self.kill(id);
        self.children[id - 1] = Some(self.spawn(id));
    }

    fn url(&self) -> String {
        let peers: Vec<String> = self.peers.iter().map(|a| a.to_string()).collect();
        format!("tenure://{}?cluster=cli&plaintext", peers.join(","))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in 1..=self.children.len() {
            self.kill(id);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

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

async fn healthy(c: &TcpClient, within: Duration) -> u64 {
    let until = Instant::now() + within;
    loop {
        match c.health(false).await {
            Ok(Some(l)) => return l,
            r if Instant::now() > until => panic!("no healthy cluster within {within:?}: {r:?}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn key(s: &str) -> Key {
    Key::parse(s).unwrap()
}

#[test]
fn agent_processes_lose_no_acknowledged_write_to_a_sigkill_of_the_leader() {
    let mut cluster = Cluster::new(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt
        .block_on(async { TcpClient::new(cluster.peers.clone(), "cli", ClientOptions::default()) });
    let leader = rt.block_on(healthy(&client, Duration::from_secs(20)));
    let (code, out, _) = tenure(&["status", &cluster.url()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("agent {leader} leads")), "{out}");
    let agency = AgencyApi::new(Arc::new(client.clone()));
    let mut acked = Vec::new();
    rt.block_on(async {
        for i in 0..20 {
            agency
                .write_key(&key(&format!("/w/{i}")), serde_json::json!(i), None, None)
                .await
                .unwrap();
            acked.push(i);
        }
    });
    cluster.kill(leader as usize);
    let killed = Instant::now();
    rt.block_on(async {
        for i in 20..30 {
            let until = Instant::now() + Duration::from_secs(10);
            loop {
                match agency
                    .write_key(&key(&format!("/w/{i}")), serde_json::json!(i), None, None)
                    .await
                {
                    Ok(_) => break,
                    Err(e) if Instant::now() > until => panic!("write {i} after the SIGKILL: {e}"),
                    Err(_) => {}
                }
            }
            acked.push(i);
        }
    });
    let served_after = killed.elapsed();
    cluster.restart(leader as usize);
    rt.block_on(async {
        healthy(&client, Duration::from_secs(20)).await;
        for i in &acked {
            assert_eq!(
                agency.read_key(&key(&format!("/w/{i}"))).await.unwrap(),
                serde_json::json!(i),
                "acknowledged write {i} lost"
            );
        }
    });
    assert!(
        served_after < Duration::from_secs(5),
        "served again only {served_after:?} after the kill"
    );
    let (code, out, _) = tenure(&["status", &cluster.url()]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn bad_agent_options_and_addresses_exit_2_naming_the_problem() {
    let dir = std::env::temp_dir().join(format!("tenure-real-bad-{}", std::process::id()));
    let d = dir.to_str().unwrap();
    for (args, says) in [
        (
            vec![
                "agent",
                "--id",
                "4",
                "--peers",
                "127.0.0.1:1,127.0.0.1:2",
                "--data",
                d,
            ],
            "id 4",
        ),
        (
            vec!["agent", "--id", "1", "--peers", "localhost:1", "--data", d],
            "not host:port",
        ),
        (
            vec![
                "agent",
                "--id",
                "1",
                "--peers",
                "127.0.0.1:1,127.0.0.1:1",
                "--data",
                d,
            ],
            "twice",
        ),
        (vec!["status", "http://127.0.0.1:1"], "scheme"),
        (vec!["status", "tenure://127.0.0.1:1"], "plaintext"),
        (vec!["up", "9"], "not 1 to 7"),
        (vec!["load", "--clients", "0"], "--clients"),
        (vec!["load", "--seconds", "0"], "--seconds"),
        (vec!["load", "tenure://nope"], "not an address"),
        (vec!["certs", "--agents", "0"], "--agents"),
    ] {
        // Agents in plaintext, as these tests ask (the problem named is another one).
        let mut args = args;
        if args[0] == "agent" {
            args.push("--plaintext");
        }
        let (code, _, err) = tenure(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // Neither TLS nor plaintext said; TLS from a directory without certificates.
    for (args, says) in [
        (
            vec!["agent", "--id", "1", "--peers", "127.0.0.1:1", "--data", d],
            "--plaintext",
        ),
        (
            vec![
                "agent",
                "--id",
                "1",
                "--peers",
                "127.0.0.1:1",
                "--tls",
                "/nonexistent",
                "--data",
                d,
            ],
            "--tls",
        ),
    ] {
        let (code, _, err) = tenure(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // A port in use.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let (code, _, err) = tenure(&[
        "agent",
        "--id",
        "1",
        "--peers",
        &addr,
        "--plaintext",
        "--data",
        d,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot listen"), "{err}");
    // Nobody there: status says so, exit 1.
    let (code, out, _) = tenure(&["status", &format!("tenure://{addr}?plaintext")]);
    drop(busy);
    assert_eq!(code, 1, "{out}");
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}

#[test]
fn certs_are_made_once_and_a_tls_agent_answers_status() {
    let dir = std::env::temp_dir().join(format!("tenure-real-certs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap().to_string();
    let (code, out, err) = tenure(&["certs", "--dir", &d, "--agents", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("agent-1.key") && out.contains("client.pem"),
        "{out}"
    );
    let (code, _, err) = tenure(&["certs", "--dir", &d, "--agents", "1"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not overwritten"), "{err}");
    // One agent over TLS, asked by status with the client's certificate.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let mut agent = Cluster {
        dir: dir.clone(),
        peers: vec![addr],
        children: Vec::new(),
    };
    let a = addr.to_string();
    agent.children.push(Some(
        Command::new(env!("CARGO_BIN_EXE_tenure"))
            .args(["agent", "--id", "1", "--peers", &a, "--tls", &d, "--data"])
            .arg(dir.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    let url = format!("tenure://{addr}?tls={d}");
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, out, err) = tenure(&["status", &url]);
        if code == 0 {
            assert!(out.contains("agent 1 leads"), "{out}");
            break;
        }
        assert!(
            Instant::now() < until,
            "no healthy TLS agent within 20 s: {out}{err}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A plaintext client gets nothing from it.
    let (code, _, _) = tenure(&["status", &format!("tenure://{addr}?plaintext")]);
    assert_eq!(code, 1);
}
