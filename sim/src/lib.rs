//! tenure-sim: the world the system runs in, on madsim's virtual clock.
//!
//! The agents as actors ([`actor`], [`cluster`]) with their simulated disks ([`SimDisk`]) and
//! skewed clocks ([`NodeClock`], [`SkewedClock`]); clients, lease managers and fenced
//! resources; the nemesis and its fault schedules ([`nemesis`]); the history every run
//! records ([`history`]) and the checkers that read it ([`check`], [`lin`]); whole seeded runs
//! ([`run`]), and what shows a run to a person: tracing in virtual time ([`trace`]), the HTML
//! report ([`page`]) and the ShiViz log ([`shiviz`]). [`run_seed`] runs one seed in a fresh
//! madsim runtime on a fresh OS thread; [`sweep`] runs many.

#[cfg(not(madsim))]
compile_error!(
    "tenure-sim needs `--cfg madsim` (set in .cargo/config.toml; a RUSTFLAGS variable replaces it)"
);

pub mod actor;
pub mod bench;
pub use tenure_core::bugs;
pub mod clock;
pub mod cluster;
pub mod disk;
pub mod history;
pub mod limits;
pub mod manager;
pub mod nemesis;
pub mod net;
pub mod resource;
pub mod run;
pub mod trace;
pub use tenure_analysis::{check, coverage, lin, page, shape, shiviz};
pub mod world;

pub use actor::{run_actor, Actor, ActorEnv, Ctx, Wire};
pub use bugs::{Bug, Bugs};
pub use check::Violation;
pub use clock::{ClockFault, NodeClock, SkewedClock};
pub use cluster::{ClientConfig, Cluster, ClusterConfig, NetClient, Routing};
pub use disk::SimDisk;
pub use history::{History, Recorder};
pub use nemesis::{swarm, Fault, Schedule, Step, Swarm};
pub use net::{Net, Socket};
pub use run::{run, self_check, Counters, Faults, Report, RunConfig, RunError};
pub use tenure_core::client::HealthError;
pub use tenure_core::rule::{Rule, RuleKind};
pub use world::{Aim, Builder, Context, World, WorldError};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tenure_core::clock::{BoxFuture, Clock};

/// A node's clock inside a madsim run: virtual time since the clock was made, sleeping on
/// madsim timers and spawning on madsim's executor (so on the current node).
#[derive(Clone)]
pub struct MadsimClock {
    origin: madsim::time::Instant,
    time: clock::VirtualNow,
}

impl MadsimClock {
    /// A clock reading zero now. Must be called inside a madsim runtime.
    pub fn new() -> MadsimClock {
        let time = clock::VirtualNow::current();
        MadsimClock {
            origin: time.now(),
            time,
        }
    }

    pub fn shared(&self) -> Arc<dyn Clock> {
        Arc::new(self.clone())
    }
}

impl Default for MadsimClock {
    fn default() -> Self {
        MadsimClock::new()
    }
}

impl Clock for MadsimClock {
    fn now(&self) -> Duration {
        self.time.now() - self.origin
    }

    fn sleep(&self, d: Duration) -> BoxFuture<()> {
        Box::pin(self.time.sleep(d))
    }

    fn spawn(&self, task: BoxFuture<()>) {
        // Detached: the task runs until it ends or the run does.
        drop(madsim::task::spawn(task));
    }
}

/// Why a seed's run did not produce a result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunFailure {
    /// The run panicked; the message says where.
    Panicked(String),
}

impl std::fmt::Display for RunFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunFailure::Panicked(m) => write!(f, "the run panicked: {m}"),
        }
    }
}

/// Runs `make()`'s future to completion in a fresh madsim runtime seeded with `seed`, on a
/// fresh OS thread (madsim seeds std's hasher per thread, so a reused thread would make runs
/// differ). A panic inside the run is returned as a failure of that seed.
pub fn run_seed<F, Fut, T>(
    seed: u64,
    time_limit: Option<Duration>,
    make: F,
) -> Result<T, RunFailure>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    // The run traces wherever its caller traces.
    let dispatch = tracing::dispatcher::get_default(|d| d.clone());
    let thread = std::thread::Builder::new()
        .name(format!("seed-{seed}"))
        .spawn(move || {
            let _trace = tracing::dispatcher::set_default(&dispatch);
            if dispatch.is::<tracing::subscriber::NoSubscriber>() {
            } else {
                // Callsites first seen by untraced threads cached "never": look again.
                tracing::callsite::rebuild_interest_cache();
            }
            let mut rt =
                madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
            rt.add_simulator::<net::Net>();
            if let Some(limit) = time_limit {
                rt.set_time_limit(limit);
            }
            rt.block_on(make())
        })
        .map_err(|e| RunFailure::Panicked(format!("could not start the seed's thread: {e}")))?;
    thread
        .join()
        .map_err(|p| RunFailure::Panicked(panic_message(&*p)))
}

/// The message a panic carried.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// Runs `run(seed)` for every seed, `parallelism` at a time (each `run` is expected to call
/// [`run_seed`], so every seed gets its own fresh thread), and returns the results in seed
/// order, whatever order they finished in.
pub fn sweep<T, F>(seeds: std::ops::Range<u64>, parallelism: usize, run: F) -> Vec<(u64, T)>
where
    T: Send,
    F: Fn(u64) -> T + Sync,
{
    let next = std::sync::atomic::AtomicU64::new(seeds.start);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..parallelism.max(1) {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if seed >= seeds.end {
                    return;
                }
                let r = run(seed);
                results.lock().unwrap().push((seed, r));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(seed, _)| *seed);
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_follows_virtual_time() {
        let t = run_seed(1, None, || async {
            let c = MadsimClock::new();
            c.sleep(Duration::from_secs(3600)).await;
            c.now()
        })
        .unwrap();
        assert!(t >= Duration::from_secs(3600) && t < Duration::from_secs(3601));
    }

    #[test]
    fn same_seed_same_randomness_and_panics_are_reported() {
        // madsim's generator, seeded by the run: deterministic, unlike the OS's.
        let draw = |seed| run_seed(seed, None, || async { madsim::rand::random::<u64>() }).unwrap();
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let r = run_seed(1, None, || async { panic!("boom") });
        let swept = sweep(0..6, 3, draw);
        assert_eq!(
            swept.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            (0..6).collect::<Vec<_>>()
        );
        assert!(swept.iter().all(|(s, v)| *v == draw(*s)));
        assert!(matches!(r, Err(RunFailure::Panicked(m)) if m.contains("boom")));
    }
}
