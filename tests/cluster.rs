//! The API families over a simulated 3-agent cluster (Raft on madsim), without faults.

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tenure::core::agency::{Agency, AgencyApi, AgencyError, Lock};
use tenure::core::kv::{Kvi, Kvs};
use tenure::core::{Clock, Key, StoreClient};
use tenure::sim::{run_seed, ClientConfig, Cluster, ClusterConfig, MadsimClock, NetClient};

/// Runs `test` on a client node of a fresh 3-agent cluster, with a madsim seed.
fn on_cluster<F, Fut>(seed: u64, test: F)
where
    F: FnOnce(Vec<std::net::SocketAddr>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    run_seed(seed, Some(Duration::from_secs(3600)), move || async move {
        let cluster = Cluster::start(ClusterConfig::default(), seed);
        let node = cluster.client_node("client", 0);
        node.spawn(test(cluster.addrs.clone())).await.unwrap();
    })
    .unwrap();
}

async fn client(addrs: &[std::net::SocketAddr]) -> Arc<dyn StoreClient> {
    Arc::new(
        NetClient::connect(addrs.to_vec(), ClientConfig::default())
            .await
            .unwrap(),
    )
}

#[test]
fn agency_reads_writes_and_ttls_through_raft() {
    on_cluster(1, |addrs| async move {
        let a = AgencyApi::new(client(&addrs).await);
        let k = Key::parse("/arango/Plan/x").unwrap();
        a.write_key(&k, json!({"v": 1}), None, None).await.unwrap();
        assert_eq!(
            a.read_key(&Key::parse("/arango").unwrap()).await.unwrap(),
            json!({"Plan": {"x": {"v": 1}}})
        );
        assert!(matches!(
            a.write_key_if_empty(&k, json!(2), None).await,
            Err(AgencyError::ConditionFailed { .. })
        ));
        let t = Key::parse("/ttl").unwrap();
        a.write_key(&t, json!(1), Some(Duration::from_secs(2)), None)
            .await
            .unwrap();
        let clock = MadsimClock::new();
        clock.sleep(Duration::from_millis(1500)).await;
        assert!(a.read_key(&t).await.is_ok());
        // Agency time runs at (1 - rho) of the leader's clock and ticks every 50 ms: allow both.
        clock.sleep(Duration::from_millis(700)).await;
        assert!(matches!(
            a.read_key(&t).await,
            Err(AgencyError::KeyNotFound { .. })
        ));
    });
}

#[test]
fn locks_exclude_across_clients() {
    for seed in 0..10 {
        locks_exclude_across_clients_with(seed);
    }
}

fn locks_exclude_across_clients_with(seed: u64) {
    on_cluster(seed, |addrs| async move {
        let clock = MadsimClock::new().shared();
        let a: Arc<dyn Agency> = Arc::new(AgencyApi::new(client(&addrs).await));
        let b: Arc<dyn Agency> = Arc::new(AgencyApi::new(client(&addrs).await));
        let ttl = Duration::from_secs(1);
        let key = Key::parse("/lock").unwrap();
        let la = Lock::new(a, clock.clone(), key.clone(), "A", ttl).unwrap();
        let lb = Lock::new(b, clock.clone(), key, "B", ttl).unwrap();
        let ta = la.lock().await.unwrap();
        assert_eq!(lb.lock().await, Err(AgencyError::AlreadyLocked));
        clock.sleep(Duration::from_secs(10)).await;
        assert!(la.is_locked(), "renewed through the cluster");
        assert_eq!(lb.lock().await, Err(AgencyError::AlreadyLocked));
        la.unlock().await.unwrap();
        assert!(lb.lock().await.unwrap() > ta);
    });
}

#[test]
fn kv_temp_keys_and_watches_through_raft() {
    on_cluster(3, |addrs| async move {
        let a = Kvs::open(client(&addrs).await, &["session_ttl_ms=1000"]).unwrap();
        let b = Kvs::open(client(&addrs).await, &[]).unwrap();
        a.temp_key("members/a").await.unwrap();
        a.dist_lock().await.unwrap();
        assert!(b.get("members/a").await.unwrap().1);
        a.close().await.unwrap();
        assert!(!b.get("members/a").await.unwrap().1);
        // Over a network a zero timeout always expires first: give the call time to travel.
        b.dist_timed_lock(Duration::from_secs(1)).await.unwrap();
        b.store("w", "1").await.unwrap();
        assert!(b.tas("w", "1", "2").await.unwrap());
        assert_eq!(b.get("w").await.unwrap().0, "2");
    });
}

#[test]
fn same_seed_same_run() {
    let trace = |seed| {
        let out = Arc::new(std::sync::Mutex::new(Vec::new()));
        let o = out.clone();
        on_cluster(seed, move |addrs| async move {
            let a = AgencyApi::new(client(&addrs).await);
            for i in 0..5 {
                let rev = a
                    .write_key(&Key::parse("/k").unwrap(), json!(i), None, None)
                    .await
                    .unwrap();
                o.lock()
                    .unwrap()
                    .push((rev, madsim::time::Instant::now().elapsed().as_nanos()));
            }
        });
        let v = out.lock().unwrap().clone();
        v
    };
    assert_eq!(trace(11), trace(11));
}

#[test]
fn acknowledged_writes_survive_every_agent_restarting() {
    run_seed(5, Some(Duration::from_secs(3600)), || async {
        let cluster = Cluster::start(ClusterConfig::default(), 5);
        let handle = madsim::runtime::Handle::current();
        let node = cluster.client_node("client", 0);
        let addrs = cluster.addrs.clone();
        node.spawn(async move {
            let a = AgencyApi::new(client(&addrs).await);
            for i in 0..20 {
                a.write_key(
                    &Key::parse(&format!("/d/{i}")).unwrap(),
                    json!(i),
                    None,
                    None,
                )
                .await
                .unwrap();
            }
        })
        .await
        .unwrap();
        for n in &cluster.nodes {
            handle.kill(n.id());
        }
        MadsimClock::new().sleep(Duration::from_secs(1)).await;
        for n in &cluster.nodes {
            handle.restart(n.id());
        }
        let addrs = cluster.addrs.clone();
        node.spawn(async move {
            let a = AgencyApi::new(client(&addrs).await);
            let all = a.read_key(&Key::parse("/d").unwrap()).await.unwrap();
            assert_eq!(
                all.as_object().unwrap().len(),
                20,
                "every acknowledged write is back"
            );
        })
        .await
        .unwrap();
    })
    .unwrap();
}

#[test]
fn agents_are_healthy_once_a_leader_is_elected() {
    on_cluster(9, |addrs| async move {
        let c = NetClient::connect(addrs.clone(), ClientConfig::default())
            .await
            .unwrap();
        // At the very start nobody leads yet.
        assert_eq!(
            c.are_agents_healthy(false).await,
            Err(tenure::sim::HealthError::NoLeader)
        );
        assert_eq!(c.are_agents_healthy(true).await, Ok(()));
        MadsimClock::new().sleep(Duration::from_secs(2)).await;
        assert_eq!(c.are_agents_healthy(false).await, Ok(()));
    });
}

/// The agent that answers `Health` as leader, if exactly one does.
async fn leader_of(c: &NetClient, agents: u64) -> Option<u64> {
    let mut leaders = Vec::new();
    for a in 1..=agents {
        if let Some(tenure::core::agent::Response::Leader { .. }) =
            c.ask_agent(a, tenure::core::agent::Request::Health).await
        {
            leaders.push(a);
        }
    }
    (leaders.len() == 1).then(|| leaders[0])
}

#[test]
fn health_sees_partitions_and_dead_agents_and_recovery() {
    use tenure::sim::nemesis::{apply, Fault};
    use tenure::sim::HealthError;
    run_seed(21, Some(Duration::from_secs(3600)), || async {
        let cluster = Cluster::start(ClusterConfig::default(), 21);
        let node = cluster.client_node("client", 0);
        let addrs = cluster.addrs.clone();
        let c = node
            .spawn(async move {
                NetClient::connect(addrs, ClientConfig::default())
                    .await
                    .unwrap()
            })
            .await
            .unwrap();
        let clock = MadsimClock::new();
        clock.sleep(Duration::from_secs(2)).await;
        let c2 = c.clone();
        let old = node
            .spawn(async move { leader_of(&c2, 3).await })
            .await
            .unwrap()
            .unwrap();
        // Cut the leader off from the other agents (the client still reaches everyone).
        let others: Vec<u64> = (1..=3).filter(|a| *a != old).collect();
        apply(
            &cluster,
            &Fault::Partition {
                groups: vec![vec![old], others.clone()],
            },
        );
        clock.sleep(Duration::from_secs(3)).await;
        let c2 = c.clone();
        let (health, new) = node
            .spawn(async move { (c2.are_agents_healthy(false).await, leader_of(&c2, 3).await) })
            .await
            .unwrap();
        let new = new.expect("the majority elected a leader");
        assert!(others.contains(&new));
        // The deposed leader stepped down (check-quorum) and knows no leader to point to.
        assert_eq!(
            health,
            Err(HealthError::WrongRedirect {
                agent: old,
                to: None,
                leader: new
            })
        );
        apply(&cluster, &Fault::Heal);
        clock.sleep(Duration::from_secs(2)).await;
        let c2 = c.clone();
        assert_eq!(
            node.spawn(async move { c2.are_agents_healthy(false).await })
                .await
                .unwrap(),
            Ok(())
        );
        // A dead agent does not answer.
        let victim = others[0];
        apply(&cluster, &Fault::Kill { agent: victim });
        let c2 = c.clone();
        assert_eq!(
            node.spawn(async move { c2.are_agents_healthy(true).await })
                .await
                .unwrap(),
            Err(HealthError::NoAnswer { agent: victim })
        );
    })
    .unwrap();
}

#[test]
fn asking_every_agent_at_once_serves_reads_and_writes_across_a_leader_kill() {
    use tenure::sim::nemesis::{apply, Fault};
    use tenure::sim::Routing;
    run_seed(4, Some(Duration::from_secs(3600)), || async {
        let cluster = Cluster::start(ClusterConfig::default(), 4);
        let node = cluster.client_node("client", 0);
        let addrs = cluster.addrs.clone();
        let config = ClientConfig {
            routing: Routing::AskAll,
            ..ClientConfig::default()
        };
        let c = node
            .spawn(async move { NetClient::connect(addrs, config).await.unwrap() })
            .await
            .unwrap();
        let a = AgencyApi::new(Arc::new(c.clone()));
        let k = Key::parse("/x").unwrap();
        let a2 = a.clone();
        let k2 = k.clone();
        node.spawn(async move {
            // Before any leader exists, the client waits and retries.
            a2.write_key(&k2, json!(1), None, None).await.unwrap();
            assert_eq!(a2.read_key(&k2).await.unwrap(), json!(1));
        })
        .await
        .unwrap();
        let c2 = c.clone();
        let leader = node
            .spawn(async move { leader_of(&c2, 3).await })
            .await
            .unwrap()
            .unwrap();
        apply(&cluster, &Fault::Kill { agent: leader });
        let clock = MadsimClock::new();
        let started = clock.now();
        node.spawn(async move {
            // The kill makes a write unknown or delays it until a new leader answers.
            match a.write_key(&k, json!(2), None, None).await {
                Ok(_) | Err(AgencyError::Client(tenure::core::ClientError::Indeterminate(_))) => {}
                Err(e) => panic!("{e}"),
            }
            a.write_key(&k, json!(3), None, None).await.unwrap();
            assert_eq!(a.read_key(&k).await.unwrap(), json!(3));
        })
        .await
        .unwrap();
        assert!(clock.now() - started < Duration::from_secs(5));
    })
    .unwrap();
}
