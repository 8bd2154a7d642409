//! Seeded runs of the cluster under swarm fault schedules (partitions, kills and restarts,
//! pauses, clock jumps and drift within the bound), with a KV workload. After the last fault
//! heals: every acknowledged write is present (durability), the cluster is healthy and
//! accepts a write within a bound (liveness).

use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenure::core::agency::{Agency, AgencyApi};
use tenure::core::{ClientError, Clock, Key};
use tenure::sim::nemesis::run_schedule;
use tenure::sim::{run_seed, swarm, ClientConfig, Cluster, ClusterConfig, MadsimClock, NetClient};

const FAULT_WINDOW: Duration = Duration::from_secs(20);
/// After the heal: election bound plus margin.
const LIVENESS_BOUND: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct Outcome {
    acked: Vec<u64>,
    indeterminate: usize,
    faults: usize,
}

fn run(seed: u64) -> Outcome {
    run_seed(seed, Some(Duration::from_secs(600)), move || async move {
        let cluster = Cluster::start(ClusterConfig::default(), seed);
        let (_, schedule) = swarm(seed, 3, FAULT_WINDOW);
        let handle = madsim::runtime::Handle::current();
        let node = handle.create_node().name("client").ip("10.0.1.1".parse().unwrap()).build();
        let addrs = cluster.addrs.clone();
        let acked = Arc::new(Mutex::new(Vec::new()));
        let indeterminate = Arc::new(Mutex::new(0usize));
        let (a2, i2) = (acked.clone(), indeterminate.clone());
        let workload = node.spawn(async move {
            let clock = MadsimClock::new();
            let c = NetClient::connect(addrs, ClientConfig::default()).await.unwrap();
            let agency = AgencyApi::new(Arc::new(c));
            let mut i = 0u64;
            while clock.now() < FAULT_WINDOW {
                let key = Key::parse(&format!("/w/{i}")).unwrap();
                match agency.write_key(&key, json!(i), None, None).await {
                    Ok(_) => a2.lock().unwrap().push(i),
                    Err(tenure::core::agency::AgencyError::Client(ClientError::Indeterminate(_))) => {
                        *i2.lock().unwrap() += 1
                    }
                    Err(_) => {}
                }
                i += 1;
                clock.sleep(Duration::from_millis(100)).await;
            }
        });
        let applied = run_schedule(&cluster, &schedule).await;
        workload.await.unwrap();
        let addrs = cluster.addrs.clone();
        let acked_now = acked.lock().unwrap().clone();
        let check = node.spawn(async move {
            let clock = MadsimClock::new();
            let c = Arc::new(NetClient::connect(addrs, ClientConfig::default()).await.unwrap());
            let healed_at = clock.now();
            // Liveness: healthy and writable within the bound.
            loop {
                let healthy = c.are_agents_healthy(false).await.is_ok();
                let agency = AgencyApi::new(c.clone());
                if healthy && agency.write_key(&Key::parse("/after").unwrap(), json!(1), None, None).await.is_ok() {
                    break;
                }
                assert!(
                    clock.now() - healed_at < LIVENESS_BOUND,
                    "seed {seed}: no healthy, writable cluster within {LIVENESS_BOUND:?} of the heal"
                );
                clock.sleep(Duration::from_millis(100)).await;
            }
            // Durability: every acknowledged write is there.
            let agency = AgencyApi::new(c.clone());
            let all = agency.read_key(&Key::parse("/w").unwrap()).await.unwrap_or(json!({}));
            for i in &acked_now {
                assert_eq!(all.get(i.to_string()), Some(&json!(i)), "seed {seed}: acknowledged write {i} lost");
            }
        });
        check.await.unwrap();
        let out = Outcome {
            acked: acked.lock().unwrap().clone(),
            indeterminate: *indeterminate.lock().unwrap(),
            faults: applied.len(),
        };
        out
    })
    .unwrap()
}

#[test]
fn swarm_faults_keep_acknowledged_writes_and_recover() {
    let mut total_faults = 0;
    let mut total_acked = 0;
    // Two seeds at a time (CI has 2 cores); each on its own fresh thread.
    for (seed, o) in tenure::sim::sweep(0..40, 2, run) {
        assert!(!o.acked.is_empty(), "seed {seed}: some writes succeed");
        total_faults += o.faults;
        total_acked += o.acked.len();
    }
    assert!(
        total_faults > 100,
        "the swarm injected faults ({total_faults})"
    );
    assert!(total_acked > 1000);
}

#[test]
fn a_faulty_run_is_reproduced_by_its_seed() {
    let a = run(3);
    let b = run(3);
    assert_eq!(a.acked, b.acked);
    assert_eq!(a.indeterminate, b.indeterminate);
}
