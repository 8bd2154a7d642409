//! The runtime side of a world's parts, inside a run: their nodes (made again on restart),
//! their clocks and contexts, the fenced resources, and the `eventually` probes after the
//! heal.

use super::context::{Context, Directory, Inner, Log};
use super::{PartBody, Parts};
use crate::actor::{run_actor, ActorEnv};
use crate::clock::{NodeClock, SkewedClock};
use crate::cluster::{Cluster, NetClient};
use crate::history::{Event, Recorder};
use crate::net::Socket;
use crate::resource::FencedResource;
use crate::run::RunConfig;
use futures::FutureExt;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The port every part listens on (at its node's address).
pub const PART_PORT: u16 = 7000;

/// The address of the node with client index `index` (as [`Cluster::client_node`] gives).
pub(crate) fn client_addr(index: usize) -> SocketAddr {
    SocketAddr::from((
        [10, 0, 1 + (index / 250) as u8, (index % 250 + 1) as u8],
        PART_PORT,
    ))
}

/// A part's clock: drifting at a rate drawn from `[-client_drift, client_drift]` (or slow by
/// exactly that), kept outside its node so a restart keeps it.
fn part_clock(rec: &Recorder, cfg: &RunConfig) -> SkewedClock {
    let drawn = (madsim::rand::random::<f64>() * 2.0 - 1.0) * cfg.client_drift;
    let drift = if cfg.client_drift_slow {
        -cfg.client_drift
    } else {
        drawn
    };
    let node_clock = NodeClock::new(0, drift).expect("client drift lies in (-1, 1)");
    SkewedClock::with_origin(rec.origin(), Arc::new(Mutex::new(node_clock)))
}

/// What every part's context shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub agents: Vec<SocketAddr>,
    pub rec: Recorder,
    pub cfg: RunConfig,
    pub dir: Arc<Directory>,
    pub ops: Arc<AtomicU64>,
}

/// A context for part `name` (process `id`) on the current node, listening at `addr`.
pub(crate) async fn context(
    s: &Shared,
    name: &str,
    id: u64,
    addr: SocketAddr,
    clock: SkewedClock,
) -> Context {
    context_with_disk(s, name, id, addr, clock, None, true).await
}

/// [`context`] with the process's disk.
pub(crate) async fn context_with_disk(
    s: &Shared,
    name: &str,
    id: u64,
    addr: SocketAddr,
    clock: SkewedClock,
    disk: Option<Arc<Mutex<crate::disk::SimDisk>>>,
    bind: bool,
) -> Context {
    let client = NetClient::connect_with(
        s.agents.clone(),
        s.cfg.client,
        Some((s.rec.clone(), name.to_string())),
        clock.shared(),
    )
    .await
    .expect("a part's node binds a client socket");
    let sock = std::sync::OnceLock::new();
    if bind {
        let _ = sock.set(Socket::bind(addr).expect("a part's address is its own"));
    }
    context_on(s, name, id, addr, clock, Arc::new(client), disk, sock)
}

/// A context over a client already connected (the runner's, which also probes health).
#[allow(clippy::too_many_arguments)]
pub(crate) fn context_on(
    s: &Shared,
    name: &str,
    id: u64,
    addr: SocketAddr,
    clock: SkewedClock,
    client: Arc<NetClient>,
    disk: Option<Arc<Mutex<crate::disk::SimDisk>>>,
    sock: std::sync::OnceLock<Socket>,
) -> Context {
    Context(Arc::new(Inner {
        name: name.to_string(),
        id,
        rec: s.rec.clone(),
        clock,
        client,
        rho: s.cfg.cluster.agent.rho,
        sock,
        addr,
        dir: s.dir.clone(),
        ops: s.ops.clone(),
        pending: Mutex::new(None),
        duration: s.cfg.duration,
        disk,
    }))
}

/// A clock that reads zero now and does not drift (the runner's, a plain role's).
pub(crate) fn steady_clock() -> SkewedClock {
    SkewedClock::new(Arc::new(Mutex::new(
        NodeClock::new(0, 0.0).expect("zero drift is valid"),
    )))
}

/// A context for a built-in role's process `id` named `name` on the current node, on a clock
/// that does not drift and reads zero now.
pub(crate) async fn plain_context(s: &Shared, name: &str, id: u64) -> Context {
    let clock = steady_clock();
    context_with_disk(
        s,
        name,
        id,
        client_addr(id as usize - 1),
        clock,
        None,
        false,
    )
    .await
}

/// A context for a built-in holder's process `id` named `name` on the current node, on its
/// own drifting clock (the drift drawn now, as [`part_clock`] draws it).
pub(crate) async fn drifting_context(s: &Shared, name: &str, id: u64) -> Context {
    let clock = part_clock(&s.rec, &s.cfg);
    context_with_disk(
        s,
        name,
        id,
        client_addr(id as usize - 1),
        clock,
        None,
        false,
    )
    .await
}

/// Starts the fenced resources and every part (numbered from `first`, on client index equal
/// to its number); returns what their contexts share.
pub(crate) fn start(
    cluster: &Cluster,
    rec: &Recorder,
    cfg: &RunConfig,
    parts: &Parts,
    ops: Arc<AtomicU64>,
    first: u64,
) -> Shared {
    let mut dir = Directory::default();
    for (k, name) in parts.resources.iter().enumerate() {
        let addr = SocketAddr::from(([10, 0, 10 + (k / 250) as u8, (k % 250 + 1) as u8], 5000));
        dir.resources.insert(name.clone(), addr);
    }
    for (k, part) in parts.parts.iter().enumerate() {
        let id = first + k as u64;
        dir.parts
            .insert(part.name.clone(), client_addr(id as usize));
    }
    let shared = Shared {
        agents: cluster.addrs.clone(),
        rec: rec.clone(),
        cfg: cfg.clone(),
        dir: Arc::new(dir),
        ops,
    };
    for (name, addr) in &shared.dir.resources {
        let env = ActorEnv {
            name: name.clone(),
            addr: *addr,
            clock: part_clock_fixed(rec),
            disk: None,
            fsync: Duration::ZERO,
            rec: rec.clone(),
            agent: false,
        };
        let resource = FencedResource::new(name, name, rec.clone());
        cluster
            .node(name, addr.ip())
            .spawn(run_actor(resource, env));
    }
    for (k, part) in parts.parts.iter().enumerate() {
        let id = first + k as u64;
        rec.record(
            &part.name,
            Event::Part {
                process: id,
                name: part.name.clone(),
            },
        );
        let clock = part_clock(rec, cfg);
        cluster.register_clock(id, clock.node_clock());
        let addr = client_addr(id as usize);
        let disk = match part.body {
            PartBody::Process(_) => {
                let d = Arc::new(Mutex::new(crate::disk::SimDisk::new()));
                cluster.register_disk(id, d.clone());
                Some(d)
            }
            PartBody::Actor(_) => None,
        };
        let (s, name, body) = (shared.clone(), part.name.clone(), part.body.clone());
        let node = cluster.client_node_init(&part.name, id as usize, move || {
            let (s, name, body, clock, disk) = (
                s.clone(),
                name.clone(),
                body.clone(),
                clock.clone(),
                disk.clone(),
            );
            async move {
                let run = match body {
                    PartBody::Process(make) => {
                        let ctx = context_with_disk(&s, &name, id, addr, clock, disk, true).await;
                        make(ctx)
                    }
                    PartBody::Actor(start) => {
                        let log = Log {
                            name: name.clone(),
                            id,
                            rec: s.rec.clone(),
                            clock: clock.clone(),
                        };
                        let env = ActorEnv {
                            name: name.clone(),
                            addr,
                            clock,
                            disk: None,
                            fsync: Duration::ZERO,
                            rec: s.rec.clone(),
                            agent: false,
                        };
                        start(env, s.dir.clone(), log)
                    }
                };
                // A panic in the user's code ends the seed, naming the part.
                if let Err(p) = std::panic::AssertUnwindSafe(run).catch_unwind().await {
                    panic!(
                        "user part {name} (process {id}) panicked: {}",
                        crate::panic_message(&*p)
                    );
                }
            }
        });
        cluster.register_process(id, &node);
    }
    shared
}

/// A clock with no drift, for a resource.
pub(crate) fn part_clock_fixed(rec: &Recorder) -> SkewedClock {
    SkewedClock::with_origin(
        rec.origin(),
        Arc::new(Mutex::new(
            NodeClock::new(0, 0.0).expect("zero drift is valid"),
        )),
    )
}

/// Runs every `eventually` probe of `parts` after the heal, one after another, each on a node
/// of its own (process `first + k`): again every 100 ms until it passes or its bound is up.
/// Each records a `Check` named after its rule (read back by the liveness checks).
pub(crate) async fn eventually(cluster: &Cluster, shared: &Shared, parts: &Parts, first: u64) {
    for (k, (rule, within, probe)) in parts.eventually.iter().enumerate() {
        let id = first + k as u64;
        let name = format!("eventually-{}", k + 1);
        shared.rec.record(
            &name,
            Event::Part {
                process: id,
                name: name.clone(),
            },
        );
        let (s, rule, within, probe) = (shared.clone(), rule.clone(), *within, probe.clone());
        // A probe's future need not be `Send`: it runs as its node's init (never restarted)
        // and says it is done through a channel.
        let (done, finished) = futures::channel::oneshot::channel::<()>();
        let done = Arc::new(Mutex::new(Some(done)));
        let node_name = name.clone();
        cluster.client_node_init(&node_name, id as usize, move || {
            let (s, rule, probe, name, done) = (
                s.clone(),
                rule.clone(),
                probe.clone(),
                name.clone(),
                done.clone(),
            );
            async move {
                let outcome = probe_until(&s, &name, id, within, &probe).await;
                s.rec.record(
                    &name,
                    Event::Check {
                        name: rule.name(),
                        ok: outcome.is_ok(),
                        detail: outcome.unwrap_or_else(|e| e),
                    },
                );
                if let Some(d) = done.lock().unwrap().take() {
                    let _ = d.send(());
                }
            }
        });
        let _ = finished.await;
    }
}

/// Tries `probe` until it passes or `within` is up: what it found.
async fn probe_until(
    s: &Shared,
    name: &str,
    id: u64,
    within: Duration,
    probe: &super::ProbeFn,
) -> Result<String, String> {
    let clock = part_clock_fixed(&s.rec);
    let ctx = context(s, name, id, client_addr(id as usize), clock.clone()).await;
    let start = clock.true_now();
    loop {
        // A probe that hangs is cut off when the bound is up.
        let left = within.saturating_sub(clock.true_now() - start);
        let attempt = std::panic::AssertUnwindSafe(probe(ctx.clone())).catch_unwind();
        let tried = tenure_core::clock::timeout(&*clock.shared(), left, attempt)
            .await
            .unwrap_or_else(|| Ok(Err("the probe did not return".to_string())));
        let waited = clock.true_now() - start;
        match tried {
            Ok(Ok(())) => return Ok(format!("held {} ms after the heal", waited.as_millis())),
            Err(p) => return Err(format!("the probe panicked: {}", crate::panic_message(&*p))),
            Ok(Err(why)) if waited >= within => {
                return Err(format!(
                    "not within {} ms of the heal: {why}",
                    within.as_millis()
                ))
            }
            Ok(Err(_)) => clock.true_sleep(Duration::from_millis(100)).await,
        }
    }
}
