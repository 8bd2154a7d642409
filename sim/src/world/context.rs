//! [`Context`]: what a user process is given in a world. The five seed API families bound to
//! the simulated cluster, the process's own (skewed) clock, seeded randomness, a socket for
//! typed messages to other parts by name, a recorder for its operations, beliefs and
//! `sometimes` points, and handles to the world's fenced resources.
//!
//! Everything here runs inside a simulated run: time is the node's clock, randomness the
//! run's generator, so the same seed gives the same bytes.

use super::call::{Call, CallError};
use super::resource::Resource;
use crate::actor;
use crate::clock::SkewedClock;
use crate::cluster::NetClient;
use crate::history::{Completion, Event, Recorder};
use crate::net::Socket;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenure_core::agency::AgencyApi;
use tenure_core::kv::{KvError, Kvs};
use tenure_core::leadership::{LeadershipError, Manager as LeadershipManager, ManagerConfig};
use tenure_core::lease::{LeaseClient, LeaseManager};
use tenure_core::storage::StorageApi;
use tenure_core::{Clock, StoreClient};

/// Where every named part of a world listens: user processes and actors, and fenced
/// resources.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    pub(crate) parts: BTreeMap<String, SocketAddr>,
    pub(crate) resources: BTreeMap<String, SocketAddr>,
    /// The lease-manager actors (`RunConfig::managers`).
    pub(crate) managers: Vec<SocketAddr>,
}

impl Directory {
    /// The address of part `name` (a process or an actor).
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.parts.get(name).copied()
    }

    /// The name of the part listening at `addr`.
    pub fn name_of(&self, addr: SocketAddr) -> Option<&str> {
        self.parts
            .iter()
            .find(|(_, a)| **a == addr)
            .map(|(n, _)| n.as_str())
    }

    /// Every part's name, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.parts.keys().map(String::as_str)
    }
}

/// A message users send between their parts: any serde type with a one-line summary (for
/// the history and the message diagram); processes and actors share it. It is moved as a
/// value, or through its JSON encoding when the run encodes messages, as a real network
/// would.
pub use crate::actor::Wire as Message;

/// Why a message was not sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("no part of this world is named {0:?} (parts: {1})")]
    UnknownPart(String, String),
}

/// Why a call or a check could not be recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("process {0} invokes {1} while its operation {2} is pending: a process records one call at a time")]
    CallPending(String, String, u64),
    #[error("no fenced resource of this world is named {0:?} (resources: {1})")]
    UnknownResource(String, String),
}

pub(crate) struct Inner {
    pub name: String,
    pub id: u64,
    pub rec: Recorder,
    pub clock: SkewedClock,
    pub client: Arc<NetClient>,
    pub rho: f64,
    /// Where its messages arrive: bound when the part starts (a built-in role, which sends
    /// none, binds it on first use).
    pub sock: std::sync::OnceLock<Socket>,
    pub addr: SocketAddr,
    pub dir: Arc<Directory>,
    pub ops: Arc<AtomicU64>,
    pub pending: Mutex<Option<u64>>,
    /// The run's duration (the fault phase).
    pub duration: Duration,
    /// The process's disk, kept across its restarts (none for the built-in roles).
    pub disk: Option<Arc<Mutex<crate::disk::SimDisk>>>,
}

/// A part's recorder for what the checks read: beliefs and `sometimes` points. Processes
/// reach it through their [`Context`]; actors are given one when they are made.
#[derive(Clone)]
pub struct Log {
    pub(crate) name: String,
    pub(crate) id: u64,
    pub(crate) rec: Recorder,
    pub(crate) clock: SkewedClock,
}

impl Log {
    /// The part's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its process number.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Records a belief: the part holds `resource` under grant `token` until `until` on its
    /// own clock, or (`None`) it stopped believing now. Beliefs are what S1 (exclusivity),
    /// S11 (actions within belief), the HTML timeline and `pause_holder` read.
    pub fn belief(&self, resource: &str, token: u64, until: Option<Duration>) {
        self.rec.record(
            &self.name,
            Event::Belief {
                process: self.id,
                resource: resource.to_string(),
                token,
                until_local_us: until.map(|u| u.as_micros() as u64),
                until_us: until.map(|u| self.clock.true_at(u).as_micros() as u64),
            },
        );
    }

    /// Records that a watch of `key` (and everything under it) on `stream` (`watch`,
    /// `callback`, a name of yours) starts after revision `from`: S16 then holds what it
    /// receives to every change the agents applied after it, in order, once each.
    pub fn watch_start(&self, stream: &str, key: &str, from: u64) {
        self.rec.record(
            &self.name,
            Event::WatchStart {
                process: self.id,
                stream: stream.to_string(),
                key: key.to_string(),
                from,
            },
        );
    }

    /// Records that `stream` delivered the change of `key` at `revision`, leaving it at
    /// `version` (0: deleted).
    pub fn watched(&self, stream: &str, key: &str, revision: u64, version: u64) {
        self.rec.record(
            &self.name,
            Event::Watched {
                process: self.id,
                stream: stream.to_string(),
                key: key.to_string(),
                revision,
                version,
            },
        );
    }

    /// Marks a `sometimes` point as reached: a sweep counts, per point, the seeds that reach
    /// it (a point no seed reaches means the faults explored nothing there).
    pub fn sometimes(&self, point: &str) {
        self.rec.record(
            &self.name,
            Event::Sometimes {
                process: self.id,
                point: point.to_string(),
            },
        );
    }
}

/// A user process's view of its world (cheap to clone: one shared handle).
#[derive(Clone)]
pub struct Context(pub(crate) Arc<Inner>);

impl Context {
    /// The process's name, as given to [`crate::world::Builder::process`].
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Its number in the history and in fault schedules (`pause_process`, ...).
    pub fn id(&self) -> u64 {
        self.0.id
    }

    fn socket(&self) -> &Socket {
        self.0
            .sock
            .get_or_init(|| Socket::bind(self.0.addr).expect("a part's address is its own"))
    }

    /// Every part's address, by name.
    pub fn directory(&self) -> &Directory {
        &self.0.dir
    }

    // --- time and randomness -------------------------------------------------------------

    /// The process's own clock: its node's, drifting within the world's bound (and jumping,
    /// if a fault makes it).
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.0.clock.shared()
    }

    /// Local time on the process's clock.
    pub fn now(&self) -> Duration {
        self.0.clock.now()
    }

    /// Sleeps `d` of the process's local time.
    pub async fn sleep(&self, d: Duration) {
        self.0.clock.sleep(d).await
    }

    /// A number from the run's seeded generator.
    pub fn random(&self) -> u64 {
        madsim::rand::random::<u64>()
    }

    /// A number in `0..n` (`n > 0`) from the run's generator; 0 when `n` is 0.
    pub fn random_below(&self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.random() % n
        }
    }

    /// The process's own simulated disk, kept across its restarts: what it wrote and synced
    /// (`SimDisk::sync`) survives a kill or restart; of each file's unsynced tail the crash
    /// keeps none, all or a prefix (which may tear a record). `None` for a built-in role.
    pub fn disk(&self) -> Option<Arc<Mutex<crate::disk::SimDisk>>> {
        self.0.disk.clone()
    }

    // --- the five seed API families ------------------------------------------------------

    /// The store client every family is written against, bound to the simulated cluster.
    pub fn store(&self) -> Arc<dyn StoreClient> {
        self.0.client.clone()
    }

    /// The agency (keys, transactions, locks).
    pub fn agency(&self) -> AgencyApi {
        AgencyApi::new(self.0.client.clone())
    }

    /// hmetcd's key-value interface, opened with `options` (`session_ttl_ms=2000`, ...).
    pub fn kv(&self, options: &[&str]) -> Result<Kvs, KvError> {
        Kvs::open(self.0.client.clone(), options)
    }

    /// Storage and its lessor.
    pub fn storage(&self) -> StorageApi {
        StorageApi::new(self.0.client.clone())
    }

    /// A Juju lease client on the process's clock (the store client's), with the world's
    /// drift bound.
    pub fn lease_client(&self) -> LeaseClient {
        LeaseClient::new(self.0.client.clone())
            .with_drift_bound(self.0.rho)
            .expect("the world's rho was checked when it was built")
    }

    /// A Juju lease manager over [`Context::lease_client`].
    pub fn lease_manager(&self) -> LeaseManager {
        LeaseManager::new(Arc::new(self.lease_client()))
    }

    /// A client of the world's lease-manager actors (`RunConfig::managers` of them: Juju's
    /// manager loop as actors, reached by messages, moving to the next one when one does not
    /// answer within `timeout`); `None` if the world has none.
    pub async fn lease_manager_actors(
        &self,
        timeout: Duration,
    ) -> Option<crate::manager::ManagerClient> {
        if self.0.dir.managers.is_empty() {
            return None;
        }
        crate::manager::ManagerClient::connect(
            self.0.dir.managers.clone(),
            self.clock(),
            timeout,
            self.0.rec.clone(),
            &self.0.name,
        )
        .await
        .ok()
    }

    /// A leadership manager over [`Context::lease_client`].
    pub fn leadership(&self) -> Result<LeadershipManager, LeadershipError> {
        LeadershipManager::new(ManagerConfig {
            client: Some(Arc::new(self.lease_client())),
            clock: Some(self.clock()),
        })
    }

    // --- messages -------------------------------------------------------------------------

    /// Sends `msg` to the part named `to`. Like a datagram it may be lost, delayed or cut off
    /// by faults; nothing waits for it.
    pub fn send<M: Message>(&self, to: &str, msg: M) -> Result<(), SendError> {
        let Some(addr) = self.0.dir.addr(to) else {
            let names: Vec<&str> = self.0.dir.names().collect();
            return Err(SendError::UnknownPart(to.to_string(), names.join(", ")));
        };
        actor::send(self.socket(), &self.0.rec, &self.0.name, addr, msg);
        Ok(())
    }

    /// The next message of type `M` sent to this process, with its sender's name (messages
    /// of other types are dropped). Waits for one.
    pub async fn recv<M: Message>(&self) -> (String, M) {
        loop {
            let Some(d) = self.socket().recv().await else {
                // The socket closes only when the node dies: wait for the end.
                std::future::pending::<()>().await;
                unreachable!()
            };
            let from = d.from;
            if let Some(m) = actor::receive::<M>(&self.0.rec, &self.0.name, d) {
                let name = self.0.dir.name_of(from).unwrap_or("?").to_string();
                return (name, m);
            }
        }
    }

    /// [`Context::recv`], giving up after `d` of local time.
    pub async fn recv_timeout<M: Message>(&self, d: Duration) -> Option<(String, M)> {
        tenure_core::clock::timeout(&*self.clock(), d, self.recv::<M>()).await
    }

    // --- the recorder ---------------------------------------------------------------------

    /// Records `call` as the operation `f` on `key` with `value`: its invocation, then its
    /// completion by how it ended: `ok` with the value it gave; an error that
    /// [`CallError::absent`] calls a read of nothing (`f` starting `read`, or `storage_get`)
    /// as `ok` with `null`; a [`CallError::definite`] one as `fail`; any other as `info`
    /// (unknown). Returns the completion and the value recorded. One call at a time per
    /// process: while another is pending, nothing is run or recorded.
    pub async fn call<F, E>(
        &self,
        f: &str,
        key: &str,
        value: Value,
        call: F,
    ) -> Result<(Completion, Value), RecordError>
    where
        F: std::future::Future<Output = Result<Value, E>>,
        E: CallError,
    {
        let recorded = self.invoke(f, key, value)?;
        let (result, value) = match call.await {
            Ok(v) => (Completion::Ok, v),
            Err(e) if e.absent() && (f.starts_with("read") || f == "storage_get") => {
                (Completion::Ok, Value::Null)
            }
            Err(e) if e.definite() => (Completion::Fail, serde_json::json!(e.to_string())),
            Err(e) => (Completion::Info, serde_json::json!(e.to_string())),
        };
        recorded.end(result, value.clone());
        Ok((result, value))
    }

    /// Whether the run's fault phase (its duration) lasts: a workload that stops when it
    /// ends leaves a quiet system to the checks after the heal (the built-in roles do).
    pub fn workload_running(&self) -> bool {
        self.0.rec.true_now() < self.0.duration
    }

    /// A number in `[0, 1)` from the run's generator.
    pub fn random_f64(&self) -> f64 {
        madsim::rand::random::<f64>()
    }

    /// Change callbacks for `url` (registered by a `Command::Observe`), after revision
    /// `from`: the notifications the agents push, in order.
    pub fn callbacks_after(
        &self,
        url: &str,
        from: u64,
    ) -> impl futures::Stream<Item = tenure_core::command::Event> {
        self.0.client.callback_inbox_after(url, from)
    }

    /// Records the call of operation `f` on `key` with `value`; finish it with
    /// [`Call::ok`], [`Call::fail`] or [`Call::info`]. A call dropped unfinished stays
    /// pending (as a process that died mid-call). One call at a time per process.
    pub fn invoke(&self, f: &str, key: &str, value: Value) -> Result<Call, RecordError> {
        let mut pending = self.0.pending.lock().unwrap();
        if let Some(op) = *pending {
            return Err(RecordError::CallPending(
                self.0.name.clone(),
                f.to_string(),
                op,
            ));
        }
        let op = self.0.ops.fetch_add(1, Ordering::Relaxed);
        *pending = Some(op);
        self.0.rec.record(
            &self.0.name,
            Event::Invoke {
                process: self.0.id,
                op,
                f: f.to_string(),
                key: key.to_string(),
                value,
                local_us: self.now().as_micros() as u64,
            },
        );
        Ok(Call {
            ctx: self.clone(),
            op,
        })
    }

    /// The process's recorder of beliefs and `sometimes` points.
    pub fn log(&self) -> Log {
        Log {
            name: self.0.name.clone(),
            id: self.0.id,
            rec: self.0.rec.clone(),
            clock: self.0.clock.clone(),
        }
    }

    /// [`Log::belief`] of this process.
    pub fn belief(&self, resource: &str, token: u64, until: Option<Duration>) {
        self.log().belief(resource, token, until)
    }

    /// [`Log::sometimes`] of this process.
    pub fn sometimes(&self, point: &str) {
        self.log().sometimes(point)
    }

    /// A handle to the world's fenced resource `name`.
    pub fn resource(&self, name: &str) -> Result<Resource, RecordError> {
        let Some(addr) = self.0.dir.resources.get(name).copied() else {
            let names: Vec<&str> = self.0.dir.resources.keys().map(String::as_str).collect();
            return Err(RecordError::UnknownResource(
                name.to_string(),
                names.join(", "),
            ));
        };
        Ok(Resource {
            ctx: self.clone(),
            name: name.to_string(),
            addr,
            writes: Arc::new(AtomicU64::new(1)),
            sock: Socket::bind_any().expect("a process binds"),
        })
    }
}
