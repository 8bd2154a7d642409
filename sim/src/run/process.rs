//! What the built-in roles share besides the public `world::Context`: `op` (a call recorded
//! through the context, one at a time), the drifting client of the lease-manager actors, and
//! `key`.

use super::*;
use crate::clock::{NodeClock, SkewedClock};
use crate::cluster::NetClient;
use crate::history::{Completion, Recorder};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tenure_core::Key;

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
