//! A real 3-agent cluster on 127.0.0.1 (ports the OS chooses, a temporary data directory per
//! agent), driven by the seed families through `TcpClient`; the leader killed and restarted
//! from its data directory mid-workload: no acknowledged write lost, the cluster serving again.
//! Every agent is stopped by the test, also when it fails (the runtime ends its tasks).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tenure_core::agency::{Agency, AgencyApi, Lock};
use tenure_core::agent::AgentConfig;
use tenure_core::kv::{Kvi, Kvs};
use tenure_core::{Key, StoreClient};
use tenure_server::agent::start_agent_on;
use tenure_server::client::ClientOptions;
use tenure_server::{AgentHandle, AgentOptions, TcpClient};
use tokio::net::TcpListener;

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "tenure-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn options(id: u64, peers: &[SocketAddr], dir: &TempDir) -> AgentOptions {
    AgentOptions {
        id,
        cluster: "test".into(),
        peers: peers.to_vec(),
        data: dir.0.join(format!("agent-{id}")),
        config: AgentConfig::default(),
        tick: Duration::from_millis(10),
        security: tenure_server::tls::Security::Plaintext,
    }
}

async fn start(peers: &[SocketAddr], dir: &TempDir, id: u64, listener: TcpListener) -> AgentHandle {
    start_agent_on(options(id, peers, dir), listener)
        .await
        .expect("the agent starts")
}

/// Waits (at most 10 s) for one leader that every agent names.
async fn healthy(c: &TcpClient) -> u64 {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        match c.health(false).await {
            Ok(Some(l)) => return l,
            r if Instant::now() > until => panic!("no healthy cluster within 10 s: {r:?}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn key(s: &str) -> Key {
    Key::parse(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_families_on_a_real_cluster_survive_a_leader_kill() {
    let dir = TempDir::new("cluster");
    let mut listeners = Vec::new();
    for _ in 0..3 {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let peers: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    let mut agents: Vec<Option<AgentHandle>> = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        agents.push(Some(start(&peers, &dir, i as u64 + 1, l).await));
    }
    let client = TcpClient::new(peers.clone(), "test", ClientOptions::default());
    let leader = healthy(&client).await;
    let store: Arc<dyn StoreClient> = Arc::new(client.clone());

    // The agency API, a lock with its fencing token, hmetcd's calls.
    let agency = AgencyApi::new(store.clone());
    agency
        .write_key(&key("/a/x"), serde_json::json!(1), None, None)
        .await
        .unwrap();
    assert_eq!(
        agency.read_key(&key("/a/x")).await.unwrap(),
        serde_json::json!(1)
    );
    assert_eq!(
        agency.are_agents_healthy(false).await.unwrap(),
        Some(leader)
    );
    let lock = Lock::new(
        Arc::new(agency.clone()),
        store.clock(),
        key("/locks/l"),
        "me",
        Duration::from_secs(3),
    )
    .unwrap();
    let token = lock.lock().await.unwrap();
    assert!(token > 0 && lock.is_locked());
    lock.unlock().await.unwrap();
    let kv = Kvs::open(store.clone(), &[]).unwrap();
    kv.store("k", "v1").await.unwrap();
    assert!(kv.tas("k", "v1", "v2").await.unwrap());
    assert_eq!(kv.get("k").await.unwrap(), ("v2".to_string(), true));
    kv.dist_lock().await.unwrap();
    kv.dist_unlock().await.unwrap();

    // Acknowledged writes, then the leader killed mid-workload and restarted from its disk.
    let mut acked = Vec::new();
    for i in 0..20 {
        agency
            .write_key(&key(&format!("/w/{i}")), serde_json::json!(i), None, None)
            .await
            .unwrap();
        acked.push(i);
    }
    let victim = leader as usize - 1;
    agents[victim].take().unwrap().kill();
    let killed = Instant::now();
    // Writes go on against the two left (a new leader within the election bound).
    for i in 20..30 {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            match agency
                .write_key(&key(&format!("/w/{i}")), serde_json::json!(i), None, None)
                .await
            {
                Ok(_) => break,
                Err(e) if Instant::now() > until => panic!("write {i} after the kill: {e}"),
                Err(_) => {}
            }
        }
        acked.push(i);
    }
    let served_after = killed.elapsed();
    let l = TcpListener::bind(peers[victim])
        .await
        .expect("the port is free again");
    agents[victim] = Some(start(&peers, &dir, victim as u64 + 1, l).await);
    healthy(&client).await;
    for i in &acked {
        assert_eq!(
            agency.read_key(&key(&format!("/w/{i}"))).await.unwrap(),
            serde_json::json!(i),
            "acknowledged write {i} lost"
        );
    }
    assert!(
        served_after < Duration::from_secs(5),
        "served again {served_after:?} after the leader's kill"
    );
    // The restarted agent caught up: asked alone through its own connection, it redirects
    // to the leader, and the leader's reads hold every write.
    for a in agents.into_iter().flatten() {
        a.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_of_another_cluster_is_refused_and_kept() {
    let dir = TempDir::new("other");
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peers = vec![l.local_addr().unwrap()];
    let a = start(&peers, &dir, 1, l).await;
    a.stop().await;
    let mut other = options(1, &peers, &dir);
    other.cluster = "another".into();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let e = start_agent_on(other, l).await.err().expect("refused");
    assert!(e.to_string().contains("belongs to cluster \"test\""), "{e}");
    assert!(dir.0.join("agent-1").join("tenure.json").exists());
    // Bad options are named.
    let mut bad = options(4, &peers, &dir);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let e = start_agent_on(bad.clone(), l).await.err().unwrap();
    assert!(e.to_string().contains("id 4"), "{e}");
    bad.id = 1;
    bad.cluster = "a b".into();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    assert!(start_agent_on(bad, l).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_log_record_in_the_middle_stops_the_start_naming_it() {
    let dir = TempDir::new("corrupt");
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peers = vec![l.local_addr().unwrap()];
    let a = start(&peers, &dir, 1, l).await;
    let c = TcpClient::new(peers.clone(), "test", ClientOptions::default());
    healthy(&c).await;
    let agency = AgencyApi::new(Arc::new(c));
    for i in 0..5 {
        agency
            .write_key(&key(&format!("/x/{i}")), serde_json::json!(i), None, None)
            .await
            .unwrap();
    }
    a.stop().await;
    let log = dir.0.join("agent-1").join("log.bin");
    let mut bytes = std::fs::read(&log).unwrap();
    assert!(bytes.len() > 40);
    bytes[10] ^= 0xff;
    std::fs::write(&log, &bytes).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let e = start_agent_on(options(1, &peers, &dir), l)
        .await
        .err()
        .expect("refused");
    assert!(
        e.to_string().contains("log.bin") && e.to_string().contains("byte 0"),
        "{e}"
    );
    assert_eq!(std::fs::read(&log).unwrap(), bytes, "nothing changed");
}
