//! The harness of the client-side suite. Every test body runs three times: against a fresh
//! `mem:` backend on a manual clock, against a fresh simulated 3-agent Raft cluster (madsim,
//! no faults) through the networked client, and against a fresh real 3-agent cluster on
//! 127.0.0.1 (tenure-server: TCP, fsync'd data directories, real time) through `TcpClient`.
//! The suite is written against `StoreClient`, so every backend must give the same answers.
//!
//! Time differs between them: `mem:` expires a TTL exactly on its deadline, while the cluster
//! runs on agency time, which the leader advances in ticks by its elapsed time times
//! `1 - rho`, and reaches the client over the network. Tests therefore state time through
//! [`Env::before`] (a moment the deadline surely has not passed) and [`Env::after`] (a moment
//! it surely has); on `mem:` these are exact.
#![allow(dead_code)]

pub mod flaky;

use futures::channel::mpsc::UnboundedReceiver;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tenure::core::{Clock, Event, ManualClock, MemBackend, StoreClient};
use tenure::sim::{ClientConfig, Cluster, ClusterConfig, NetClient};

pub enum Backend {
    Mem(MemBackend),
    Cluster(NetClient),
    /// The client, and the cluster (its agents end when the test's environment is dropped).
    Real(tenure::server::TcpClient, tenure::server::LocalCluster),
}

pub struct Env {
    pub clock: Arc<dyn Clock>,
    pub backend: Backend,
}

impl Env {
    /// A new client of the same store (another process, from the store's view).
    pub fn client(&self) -> Arc<dyn StoreClient> {
        match &self.backend {
            Backend::Mem(m) => m.client(),
            Backend::Cluster(c) => Arc::new(c.clone()),
            Backend::Real(c, _) => Arc::new(c.clone()),
        }
    }

    pub fn shared_clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// Change notifications sent to the callback address `url`.
    pub fn callback_inbox(&self, url: &str) -> UnboundedReceiver<Event> {
        match &self.backend {
            Backend::Mem(m) => m.callback_inbox(url),
            Backend::Cluster(c) => c.callback_inbox(url),
            Backend::Real(c, _) => c.callback_inbox(url),
        }
    }

    /// A cluster of agents (simulated or real): time is agency time, reached over a network.
    pub fn is_cluster(&self) -> bool {
        matches!(self.backend, Backend::Cluster(_) | Backend::Real(..))
    }

    pub fn is_real(&self) -> bool {
        matches!(self.backend, Backend::Real(..))
    }

    /// How long after a call that set a deadline `d` ahead the deadline has surely not yet
    /// passed: `d` minus 1 ms on `mem:`; on the cluster, minus one agency tick and the
    /// network's delay, by which the call may have started late in agency time.
    pub fn before(&self, d: Duration) -> Duration {
        let margin = if self.is_real() {
            Duration::from_millis(300)
        } else if self.is_cluster() {
            Duration::from_millis(150)
        } else {
            Duration::from_millis(1)
        };
        d.saturating_sub(margin)
    }

    /// "A long time", for a wait that shows something lasts (a renewal, no TTL): `d` on the
    /// virtual clocks; on the real cluster at most 4 s of real time (past any TTL the suite
    /// sets, so still several renewals), so the suite stays quick.
    pub fn long(&self, d: Duration) -> Duration {
        if self.is_real() {
            d.min(Duration::from_secs(4))
        } else {
            d
        }
    }

    /// How long after such a call the deadline has surely passed and its effect is visible:
    /// exactly `d` on `mem:`; on the cluster `d / (1 - rho)` plus ticks and round trips.
    pub fn after(&self, d: Duration) -> Duration {
        if self.is_real() {
            d.mul_f64(1.0 / (1.0 - tenure::core::clock::DEFAULT_DRIFT_BOUND))
                + Duration::from_millis(600)
        } else if self.is_cluster() {
            d.mul_f64(1.0 / (1.0 - tenure::core::clock::DEFAULT_DRIFT_BOUND))
                + Duration::from_millis(300)
        } else {
            d
        }
    }
}

/// Runs `test` against a fresh `mem:` backend on a manual clock, then against a fresh
/// simulated 3-agent cluster (seed 1) from a client node, once a leader is elected.
pub fn run<F, Fut>(test: F)
where
    F: Fn(Arc<Env>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let clock = ManualClock::new();
    let mem = tenure::core::open("mem:", clock.shared()).expect("mem: opens");
    let env = Arc::new(Env {
        clock: clock.shared(),
        backend: Backend::Mem(mem),
    });
    clock.block_on(test(env));
    let test = Arc::new(test);
    let t = test.clone();
    run_on_cluster(1, move |env| t(env));
    run_on_real(move |env| test(env));
}

/// Runs `test` against a fresh real 3-agent cluster on 127.0.0.1, once it is healthy (within
/// 10 s). The agents end, and their data directory goes, when the test's environment does.
pub fn run_on_real<F, Fut>(test: F)
where
    F: FnOnce(Arc<Env>) -> Fut,
    Fut: Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    rt.block_on(async move {
        let cluster = tenure::server::LocalCluster::temporary(3)
            .await
            .expect("a local cluster starts on 127.0.0.1");
        let client = cluster.client();
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while client.health(false).await.is_err() {
            assert!(
                std::time::Instant::now() < until,
                "the real cluster did not elect a leader within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let env = Arc::new(Env {
            clock: client.clock(),
            backend: Backend::Real(client, cluster),
        });
        test(env).await;
    });
}

/// Runs `test` against a fresh simulated 3-agent cluster only.
pub fn run_on_cluster<F, Fut>(seed: u64, test: F)
where
    F: FnOnce(Arc<Env>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let result =
        tenure::sim::run_seed(seed, Some(Duration::from_secs(3_600)), move || async move {
            let cluster = Cluster::start(ClusterConfig::default(), seed);
            let node = cluster.client_node("client", 0);
            let addrs = cluster.addrs.clone();
            let net = node
                .spawn(async move {
                    let c = NetClient::connect(addrs, ClientConfig::default())
                        .await
                        .expect("the client binds");
                    // Wait for a leader, so tests start on a working cluster.
                    while c.are_agents_healthy(false).await.is_err() {
                        madsim::time::sleep(Duration::from_millis(50)).await;
                    }
                    c
                })
                .await
                .expect("the client starts");
            let env = Arc::new(Env {
                clock: tenure::sim::MadsimClock::new().shared(),
                backend: Backend::Cluster(net),
            });
            test(env).await;
        });
    if let Err(e) = result {
        panic!("on the simulated cluster: {e}");
    }
}

pub fn key(s: &str) -> tenure::core::Key {
    tenure::core::Key::parse(s).unwrap()
}
