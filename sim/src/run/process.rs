//! The runner's process (the built-in roles are written against the public `world::Context`)
//! and the drifting clients of the lease-manager actors: a node's client and clock, and the recording of calls
//! (invoke, then ok / fail / info by how the call ended).

use super::*;
use crate::clock::{NodeClock, SkewedClock};
use crate::cluster::NetClient;
use crate::history::{Completion, Event, Recorder};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tenure_core::agency::{AgencyApi, AgencyError};
use tenure_core::storage::StorageError;
use tenure_core::{ClientError, Clock, Key};

/// A client process that records every operation it invokes and how it completed.
pub(crate) struct Process {
    pub(crate) id: u64,
    pub(crate) node: String,
    pub(crate) rec: Recorder,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ops: Arc<AtomicU64>,
    pub(crate) agency: AgencyApi,
}

/// How an error ends a recorded operation.
pub(crate) trait Classify: std::fmt::Display {
    /// The operation surely had no effect (`fail`); otherwise it is unknown (`info`).
    fn definite(&self) -> bool;
    /// A read found nothing: a successful read of "no value".
    fn absent(&self) -> bool;
}

impl Classify for AgencyError {
    fn definite(&self) -> bool {
        matches!(
            self,
            AgencyError::ConditionFailed { .. }
                | AgencyError::AlreadyLocked
                | AgencyError::NotLocked
                | AgencyError::Client(ClientError::Unavailable(_))
        )
    }
    fn absent(&self) -> bool {
        matches!(self, AgencyError::KeyNotFound { .. })
    }
}

impl Classify for StorageError {
    fn definite(&self) -> bool {
        matches!(
            self,
            StorageError::AlreadyExists(_)
                | StorageError::NotFound
                | StorageError::WrongVersion { .. }
                | StorageError::Client(ClientError::Unavailable(_))
        )
    }
    fn absent(&self) -> bool {
        matches!(self, StorageError::NotFound)
    }
}

impl Process {
    pub(crate) async fn op<F, E>(
        &self,
        f: &str,
        key: &Key,
        value: Value,
        call: F,
    ) -> (Completion, Value)
    where
        F: std::future::Future<Output = Result<Value, E>>,
        E: Classify,
    {
        self.op_on(f, &key.to_string(), value, call).await
    }

    /// [`Process::op`] on something other than an agency key (a fenced resource).
    pub(crate) async fn op_on<F, E>(
        &self,
        f: &str,
        key: &str,
        value: Value,
        call: F,
    ) -> (Completion, Value)
    where
        F: std::future::Future<Output = Result<Value, E>>,
        E: Classify,
    {
        let op = self.ops.fetch_add(1, Ordering::Relaxed);
        self.rec.record(
            &self.node,
            Event::Invoke {
                process: self.id,
                op,
                f: f.to_string(),
                key: key.to_string(),
                value,
                local_us: self.clock.now().as_micros() as u64,
            },
        );
        let (result, value) = match call.await {
            Ok(v) => (Completion::Ok, v),
            // A read of a missing key reads "nothing".
            Err(e) if e.absent() && (f.starts_with("read") || f == "storage_get") => {
                (Completion::Ok, Value::Null)
            }
            Err(e) if e.definite() => (Completion::Fail, json!(e.to_string())),
            Err(e) => (Completion::Info, json!(e.to_string())),
        };
        self.rec.record(
            &self.node,
            Event::Complete {
                process: self.id,
                op,
                result,
                value: value.clone(),
                local_us: self.clock.now().as_micros() as u64,
            },
        );
        (result, value)
    }
}

/// A process's own clock, drifting at a rate drawn from `[-client_drift, client_drift]`, and
/// an agency client on it (call on the process's node).
pub(crate) async fn drifting_client(
    agents: Vec<SocketAddr>,
    cfg: &RunConfig,
    rec: &Recorder,
    name: &str,
) -> (SkewedClock, NetClient) {
    // Drawn either way (the draw is made even when unused, so the rest of the run's draws
    // stay where they were).
    let drawn = (madsim::rand::random::<f64>() * 2.0 - 1.0) * cfg.client_drift;
    let drift = if cfg.client_drift_slow {
        -cfg.client_drift
    } else {
        drawn
    };
    let node_clock = NodeClock::new(0, drift).expect("client drift lies in (-1, 1)");
    let clock = SkewedClock::with_origin(rec.origin(), Arc::new(Mutex::new(node_clock)));
    let c = NetClient::connect_with(
        agents,
        cfg.client,
        Some((rec.clone(), name.to_string())),
        clock.shared(),
    )
    .await
    .expect("a process binds");
    (clock, c)
}

pub(crate) fn key(path: &str) -> Key {
    Key::parse(path).expect("workload keys are valid")
}

/// `call` recorded by `ctx` as the operation `f` on `key` (a built-in role makes one call at
/// a time).
pub(crate) async fn op<F, E>(
    ctx: &crate::world::Context,
    f: &str,
    key: &Key,
    value: Value,
    call: F,
) -> (Completion, Value)
where
    F: std::future::Future<Output = Result<Value, E>>,
    E: crate::world::CallError,
{
    ctx.call(f, &key.to_string(), value, call)
        .await
        .expect("a built-in role makes one call at a time")
}
