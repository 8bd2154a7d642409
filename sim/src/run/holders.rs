//! The built-in holders: lockers (an agency `Lock` with lock-delay), leasers (a Juju lease,
//! directly or through lease-manager actors) and leaders (a service's leadership), each on
//! its own drifting clock, recording its beliefs and writing to a fenced resource.

use super::*;
use crate::actor::{run_actor, ActorEnv};
use crate::clock::{NodeClock, SkewedClock};
use crate::cluster::Cluster;
use crate::history::{Completion, Recorder};
use crate::manager::{LeaseManagerActor, ManagerClient};
use crate::resource::FencedResource;
use crate::world::Context;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenure_core::agency::{AgencyError, Lock};
use tenure_core::leadership::{LeadershipError, Manager as LeadershipManager, ManagerConfig};
use tenure_core::lease::{Checker, Claimer, LeaseClient, LeaseError, LeaseManager, Token};
use tenure_core::{buggify, ClientError, Key};
use tenure_core::{Command, Op, Outcome, Txn, TxnOutcome};

/// The lock the lockers contend for, and the resource it guards.
pub(crate) const LOCK_KEY: &str = "/locks/0";

pub(crate) const LOCK_RESOURCE: &str = "lock:/locks/0";

/// The Juju lease the leasers contend for, and the resource it guards.
pub(crate) const LEASE_NAME: &str = "svc";

pub(crate) const LEASE_RESOURCE: &str = "lease:svc";

/// The service whose leadership the leaders contend for, and the resource it guards.
pub(crate) const SERVICE: &str = "app";

pub(crate) const LEADERSHIP_RESOURCE: &str = "leadership:app";

/// What a holder process contends for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HolderKind {
    Lock,
    Lease,
    Leadership,
}

impl HolderKind {
    /// Where its fenced resource listens.
    pub(crate) fn resource_addr(self) -> SocketAddr {
        let host = match self {
            HolderKind::Lock => 1,
            HolderKind::Lease => 2,
            HolderKind::Leadership => 3,
        };
        SocketAddr::from(([10, 0, 9, host], 5000))
    }

    pub(crate) fn role(self) -> &'static str {
        match self {
            HolderKind::Lock => "locker",
            HolderKind::Lease => "leaser",
            HolderKind::Leadership => "leader",
        }
    }

    pub(crate) fn resource(self) -> &'static str {
        match self {
            HolderKind::Lock => LOCK_RESOURCE,
            HolderKind::Lease => LEASE_RESOURCE,
            HolderKind::Leadership => LEADERSHIP_RESOURCE,
        }
    }
}

/// Starts the fenced resource guarded by `kind` on its own node; returns its address.
pub(crate) fn start_resource(
    cluster: &Cluster,
    rec: &Recorder,
    kind: HolderKind,
    config: &RunConfig,
) -> SocketAddr {
    let addr = kind.resource_addr();
    let env = ActorEnv {
        name: format!("resource-{}", kind.role()),
        addr,
        clock: SkewedClock::with_origin(
            rec.origin(),
            Arc::new(Mutex::new(
                NodeClock::new(0, 0.0).expect("zero drift is valid"),
            )),
        ),
        disk: None,
        fsync: Duration::ZERO,
        rec: rec.clone(),
        agent: false,
    };
    let name = format!("resource-{}", kind.role());
    let mut resource = FencedResource::new(kind.resource(), &name, rec.clone());
    if config
        .bugs
        .contains(crate::bugs::Bug::ResourceSkipsTokenCheck)
    {
        resource = resource.without_token_check();
    }
    cluster
        .node(&name, addr.ip())
        .spawn(run_actor(resource, env));
    addr
}

/// A locker: takes the lock, holds it for a while, and while it believes it holds it (with
/// at least `work` of belief left) writes to the resource with its fencing token; then
/// unlocks. Every belief change is recorded with the true time it ends at.
pub(crate) async fn locker(ctx: Context, cfg: &RunConfig) {
    let fenced = ctx
        .resource(LOCK_RESOURCE)
        .expect("the lock's resource is in the directory");
    let (log, process) = (ctx.log(), ctx.id());
    let lock = Lock::new(
        Arc::new(ctx.agency()),
        ctx.clock(),
        key(LOCK_KEY),
        &format!("locker-{process}"),
        cfg.lock_ttl,
    )
    .and_then(|l| l.with_drift_bound(cfg.cluster.agent.rho))
    .and_then(|l| l.with_lock_delay(cfg.lock_delay))
    .and_then(|l| l.with_bugs(cfg.bugs))
    .and_then(|l| l.with_observer(move |b| log.belief(LOCK_RESOURCE, b.token, b.until)))
    .expect("the lock's settings are valid");
    let lock_key = key(LOCK_KEY);
    while ctx.workload_running() {
        let (res, _) = op(&ctx, "lock", &lock_key, Value::Null, async {
            lock.lock().await.map(|t| json!(t))
        })
        .await;
        if res != Completion::Ok {
            let ms = 50 + ctx.random() % 200;
            ctx.sleep(Duration::from_millis(ms)).await;
            continue;
        }
        let hold = cfg.lock_ttl.mul_f64(0.5 + 2.0 * ctx.random_f64());
        let until = ctx.now() + hold;
        while ctx.now() < until {
            let left = lock
                .belief_deadline()
                .filter(|_| lock.is_locked())
                .map(|d| d.saturating_sub(ctx.now()));
            let (Some(left), Some(token)) = (left, lock.fencing_token()) else {
                break;
            };
            if left <= cfg.work + Duration::from_millis(5) {
                ctx.sleep(Duration::from_millis(10)).await;
                continue;
            }
            // The work between the check and the write: a pause here makes it late.
            ctx.sleep(cfg.work + pause(buggify::PAUSE_BEFORE_WRITE))
                .await;
            fenced
                .send(token, None)
                .await
                .expect("a locker makes one call at a time");
            ctx.sleep(between_writes(&ctx)).await;
        }
        // Let go when done, as a deferred unlock does, whether or not the belief lasted: the
        // library answers "not locked" without asking the agency if it no longer holds it.
        release(&ctx, &lock, &lock_key).await;
        ctx.sleep(Duration::from_millis(50)).await;
    }
}

/// Unlocks, retrying while the unlock fails on the network (the library keeps the lock held,
/// or its release pending, so that a retry can remove it), a few times and then for as long
/// as the lock is still believed held. Ends on success or `NotLocked`.
pub(crate) async fn release(ctx: &Context, lock: &Lock, lock_key: &Key) {
    for attempt in 0.. {
        let mut network = false;
        op(ctx, "unlock", lock_key, Value::Null, async {
            let r = lock.unlock().await;
            network = matches!(r, Err(AgencyError::Client(_)));
            r.map(|_| Value::Null)
        })
        .await;
        if !network || attempt >= 3 && !lock.is_locked() {
            return;
        }
        ctx.sleep(Duration::from_millis(100 + ctx.random() % 100))
            .await;
    }
}

/// Starts the lease-manager actors, each on its own node with its own drifting clock and
/// agency client; returns their addresses.
/// Where lease-manager actor `k` (from 0) listens.
pub(crate) fn manager_addr(k: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 8, k as u8 + 1], 6000))
}

pub(crate) fn start_managers(
    cluster: &Cluster,
    rec: &Recorder,
    config: &RunConfig,
    ids: std::ops::Range<u64>,
) -> Vec<SocketAddr> {
    ids.enumerate()
        .map(|(k, id)| {
            let addr = manager_addr(k);
            let name = format!("manager-{}", k + 1);
            let (agents, rec, cfg, n) = (
                cluster.addrs.clone(),
                rec.clone(),
                config.clone(),
                name.clone(),
            );
            let node = cluster.node(&name, addr.ip());
            cluster.register_process(id, &node);
            node.spawn(async move {
                let (clock, c) = drifting_client(agents, &cfg, &rec, &n).await;
                let client = LeaseClient::new(Arc::new(c))
                    .with_drift_bound(cfg.cluster.agent.rho)
                    .expect("rho lies in [0, 1)");
                let actor = LeaseManagerActor::new(
                    LeaseManager::new(Arc::new(client)),
                    Duration::from_secs(1),
                );
                let env = ActorEnv {
                    name: n,
                    addr,
                    clock,
                    disk: None,
                    fsync: Duration::ZERO,
                    rec,
                    agent: false,
                };
                run_actor(actor, env).await;
            });
            addr
        })
        .collect()
}

/// A holder's pause after a fenced write, drawn from 50 - 150 ms: with a fixed pause every
/// holder wrote in the same rhythm, and a fault at a fixed instant (a scheduled pause) hit
/// the same phase of it on every seed.
pub(crate) fn between_writes(ctx: &Context) -> Duration {
    Duration::from_millis(50 + ctx.random() % 101)
}

/// How a leaser claims: a Juju lease through a `LeaseManager`, or a service's leadership
/// through the leadership `Manager` (which also checks its leadership and guards a
/// transaction with the token before each write).
pub(crate) enum Claimant {
    Lease(LeaseManager),
    Leader(LeadershipManager),
    /// Through the lease-manager actors, by messages.
    Remote(ManagerClient),
}

impl Claimant {
    async fn claim(&self, who: &str, d: Duration) -> Result<u64, LeaseError> {
        match self {
            Claimant::Lease(m) => m.claim(LEASE_NAME, who, d).await,
            Claimant::Remote(m) => m.claim(LEASE_NAME, who, d).await,
            Claimant::Leader(m) => m
                .claim_leadership(SERVICE, who, d)
                .await
                .map_err(|e| match e {
                    LeadershipError::ClaimDenied => LeaseError::ClaimDenied,
                    e => LeaseError::Invalid(e.to_string()),
                }),
        }
    }

    /// A claim recorded as the operation `claim` on `key`: the token, or `"denied"` (an
    /// answer, checked by S3), or unknown.
    async fn recorded_claim(&self, ctx: &Context, key: &Key, who: &str, d: Duration) -> Value {
        let (res, v) = op(ctx, "claim", key, Value::Null, async {
            match self.claim(who, d).await {
                Ok(t) => Ok(json!(t)),
                Err(LeaseError::ClaimDenied) => Ok(json!("denied")),
                Err(e) => Err(AgencyError::Invalid(e.to_string())),
            }
        })
        .await;
        match res {
            Completion::Ok => v,
            _ => Value::Null,
        }
    }

    /// A token check recorded as the operation `check` on `key`: `true` if `who` holds the
    /// lease now, `false` if not (checked by S3), or unknown. A leader's check yields the token
    /// whose preconditions guard its transaction.
    async fn recorded_check(&self, ctx: &Context, key: &Key, who: &str) -> Option<Token> {
        let mut token = None;
        op(ctx, "check", key, Value::Null, async {
            let held = match self {
                Claimant::Leader(m) => match m.check_leadership(SERVICE, who).await {
                    Ok(t) => {
                        token = Some(t);
                        Ok(())
                    }
                    Err(LeadershipError::NotLeader { .. }) => Err(LeaseError::NotHeld),
                    Err(e) => Err(LeaseError::Invalid(e.to_string())),
                },
                Claimant::Lease(m) => m.token(LEASE_NAME, who).check().await,
                Claimant::Remote(m) => m.check(LEASE_NAME, who).await,
            };
            match held {
                Ok(()) => Ok(json!(true)),
                Err(LeaseError::NotHeld) => Ok(json!(false)),
                Err(e) => Err(AgencyError::Invalid(e.to_string())),
            }
        })
        .await;
        token
    }
}

/// A leaser: claims the Juju lease `svc` (or the leadership of `app`) on its own clock,
/// re-claims (extends) every half duration while it wants it, and while it believes it holds
/// it (until the start of its last successful claim plus `duration * (1 - rho)`, with at
/// least `work` left) writes to the resource with its fencing token. A leader also checks
/// its leadership and commits a transaction guarded by the leadership token first.
pub(crate) async fn leaser(ctx: Context, kind: HolderKind, cfg: &RunConfig) {
    let fenced = ctx
        .resource(kind.resource())
        .expect("the holder's resource is in the directory");
    let store = ctx.store();
    let rho = cfg.cluster.agent.rho;
    let client = LeaseClient::new(store.clone())
        .with_drift_bound(rho)
        .expect("rho lies in [0, 1)");
    let (manager, name) = match kind {
        HolderKind::Leadership => {
            let config = ManagerConfig {
                client: Some(Arc::new(client)),
                clock: Some(ctx.clock()),
            };
            let m = LeadershipManager::new(config).expect("the config is complete");
            (Claimant::Leader(m), SERVICE)
        }
        _ if cfg.managers > 0 => {
            let m = ctx
                .lease_manager_actors(Duration::from_secs(2))
                .await
                .expect("a leaser binds");
            (Claimant::Remote(m), LEASE_NAME)
        }
        _ => (
            Claimant::Lease(LeaseManager::new(Arc::new(client))),
            LEASE_NAME,
        ),
    };
    let resource_name = kind.resource();
    let me = format!("{}-{}", kind.role(), ctx.id());
    let d = cfg.lock_ttl;
    let lease_key = key(&format!("/lease/{name}"));
    // When a belief counts from: the start of the call, or (planted) its answer.
    let from_response = cfg.bugs.contains(crate::bugs::Bug::HolderTimesFromResponse);
    let belief_start = |start| if from_response { ctx.now() } else { start };
    while ctx.workload_running() {
        let start = ctx.now();
        let v = manager.recorded_claim(&ctx, &lease_key, &me, d).await;
        let start = belief_start(start);
        let token = match v.as_u64() {
            Some(t) => t,
            None if v == "denied" && matches!(manager, Claimant::Leader(_)) => {
                // Denied: a unit waits for the leadership to be released (bounded, so the
                // run ends), then claims again.
                if let Claimant::Leader(m) = &manager {
                    let wait = 2 * d;
                    op(
                        &ctx,
                        "block_until_released",
                        &lease_key,
                        Value::Null,
                        async {
                            match tenure_core::clock::timeout(
                                &*ctx.clock(),
                                wait,
                                m.block_until_leadership_released(SERVICE),
                            )
                            .await
                            {
                                Some(Ok(())) => Ok(Value::Null),
                                Some(Err(e)) => Err(AgencyError::Invalid(e.to_string())),
                                None => Err(AgencyError::Client(ClientError::Unavailable(
                                    format!("still held after {wait:?}"),
                                ))),
                            }
                        },
                    )
                    .await;
                }
                continue;
            }
            _ => {
                let ms = 50 + ctx.random() % 200;
                ctx.sleep(Duration::from_millis(ms)).await;
                continue;
            }
        };
        let mut deadline = start + d.mul_f64(1.0 - rho);
        if let Some(p) = buggify::delay(buggify::PAUSE_AFTER_GRANT) {
            ctx.sleep(p).await;
        }
        ctx.belief(resource_name, token, Some(deadline));
        let hold_until = ctx.now() + d.mul_f64(0.5 + 2.0 * ctx.random_f64());
        let mut next_claim = start + d / 2;
        loop {
            let now = ctx.now();
            if now >= deadline {
                ctx.belief(resource_name, token, None);
                break;
            }
            if now >= next_claim && now < hold_until {
                let start = ctx.now();
                let v = manager.recorded_claim(&ctx, &lease_key, &me, d).await;
                let start = belief_start(start);
                match v.as_u64() {
                    Some(t) if t == token => {
                        deadline = deadline.max(start + d.mul_f64(1.0 - rho));
                        ctx.belief(resource_name, token, Some(deadline));
                    }
                    // Denied or granted anew: our grant is gone.
                    Some(_) => {
                        ctx.belief(resource_name, token, None);
                        break;
                    }
                    None if v == "denied" => {
                        ctx.belief(resource_name, token, None);
                        break;
                    }
                    // Unknown: keep believing until the deadline.
                    None => {}
                }
                next_claim = start + d / 2 + pause(buggify::LATE_RENEWAL);
                continue;
            }
            if now >= hold_until {
                // Let it lapse (a Juju lease is not released, it expires).
                ctx.belief(resource_name, token, None);
                ctx.sleep(deadline.saturating_sub(now)).await;
                break;
            }
            if deadline.saturating_sub(now) <= cfg.work + Duration::from_millis(5) {
                ctx.sleep(Duration::from_millis(10)).await;
                continue;
            }
            ctx.sleep(cfg.work + pause(buggify::PAUSE_BEFORE_WRITE))
                .await;
            // A token check before acting, as Juju's workers do (S3 checks its answer).
            let checked = manager.recorded_check(&ctx, &lease_key, &me).await;
            if let Some(t) = checked {
                // The leadership token guards a transaction in the agency itself.
                let state = key("/app/state");
                op(&ctx, "guarded_write", &state, json!(token), async {
                    let txn = Txn::new()
                        .when_all(t.preconditions())
                        .then(Op::set(state.clone(), json!(token)));
                    match store.submit(Command::Txn(txn)).await? {
                        Outcome::Txn(TxnOutcome::Committed { .. }) => Ok(json!(token)),
                        _ => Err(AgencyError::NotLocked),
                    }
                })
                .await;
            }
            fenced
                .send(token, None)
                .await
                .expect("a leaser makes one call at a time");
            ctx.sleep(between_writes(&ctx)).await;
        }
        ctx.sleep(Duration::from_millis(50)).await;
    }
}

/// The pause fault point `point` injects here, if it fires (zero otherwise, and always
/// outside simulation).
fn pause(point: &'static str) -> Duration {
    buggify::delay(point).unwrap_or_default()
}
