//! Seed 002: Juju's `lease` package: `Request`, `Client` (claim, extend, expire), `Claimer`,
//! `Checker` and `Token`.
//!
//! A lease named `n` is the key `/lease/n` holding `{"holder": h, "duration_ms": d}` with a
//! TTL: the agency expires it itself when agency time passes the deadline, so no writer's
//! clock decides expiry. A claim commits at an agency time after the call started, so the
//! holder keeps the lease at least `duration` after the *start* of the call; the holder
//! itself believes it only until `start + duration * (1 - rho)` of its own clock. The grant's
//! revision is its fencing token; a `Token` also yields preconditions that make a later
//! transaction fail unless the holder still holds the lease (the seed's trapdoor).

use crate::client::{ClientError, StoreClient};
use crate::clock::{ceil_ms, Clock, DEFAULT_DRIFT_BOUND};
use crate::command::*;
use crate::key::{validate_string, Key};
use async_trait::async_trait;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The top-level path leases live under.
pub const NAMESPACE: &str = "lease";

/// The lease family's errors.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LeaseError {
    /// The claim was denied: another holder held the lease during the call.
    #[error("lease claim denied")]
    ClaimDenied,
    /// The operation is impossible given the latest state: check `leases()` and try again.
    #[error("invalid lease operation: {0}")]
    Invalid(String),
    /// The holder does not hold the lease.
    #[error("lease not held")]
    NotHeld,
    /// A bad name, duration or configuration.
    #[error("bad input: {0}")]
    BadInput(String),
    /// The manager was stopped while the call waited.
    #[error("the lease manager is stopped")]
    Stopped,
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// A request for a lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub holder: String,
    pub duration: Duration,
}

impl Request {
    pub fn new(holder: &str, duration: Duration) -> Request {
        Request {
            holder: holder.to_string(),
            duration,
        }
    }

    /// The holder must pass [`validate_string`]; the duration must be positive.
    pub fn validate(&self) -> Result<(), LeaseError> {
        validate_string("holder", &self.holder).map_err(|e| LeaseError::BadInput(e.to_string()))?;
        if self.duration.is_zero() {
            return Err(LeaseError::BadInput(
                "duration: must be greater than zero".into(),
            ));
        }
        Ok(())
    }
}

fn validate_lease_name(name: &str) -> Result<(), LeaseError> {
    validate_string("lease", name).map_err(|e| LeaseError::BadInput(e.to_string()))
}

/// What a client knows of a lease.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Info {
    pub holder: String,
    /// The latest local clock time at which the lease might still be valid.
    pub expiry: Duration,
    /// The revision of the grant.
    pub fencing_token: Revision,
}

fn lease_key(name: &str) -> Key {
    Key::from_segments(&[NAMESPACE, name]).expect("validated name")
}

fn holder_key(name: &str) -> Key {
    lease_key(name).child("holder").expect("non-empty")
}

/// Juju's lease `Client`. Not meant to be shared by concurrent callers (its cache is a
/// snapshot), though doing so is memory-safe.
#[async_trait]
pub trait Client: Send + Sync {
    /// Records `request.holder`'s claim to the vacant `lease`; `Invalid` if it is held.
    /// Returns the grant's fencing token.
    async fn claim_lease(&self, lease: &str, request: Request) -> Result<Revision, LeaseError>;
    /// Extends the holder's claim (never shortening it); `Invalid` if the holder does not
    /// hold the lease. Returns the grant's fencing token.
    async fn extend_lease(&self, lease: &str, request: Request) -> Result<Revision, LeaseError>;
    /// Records the vacation of `lease`; `Invalid` while agency time has not passed its expiry.
    async fn expire_lease(&self, lease: &str) -> Result<(), LeaseError>;
    /// The last known state of every lease, by name.
    fn leases(&self) -> BTreeMap<String, Info>;
    /// Reads every lease from the agency.
    async fn refresh(&self) -> Result<(), LeaseError>;
}

/// The lease client over any backend.
pub struct LeaseClient {
    client: Arc<dyn StoreClient>,
    clock: Arc<dyn Clock>,
    rho: f64,
    cache: Mutex<BTreeMap<String, Info>>,
}

impl LeaseClient {
    pub fn new(client: Arc<dyn StoreClient>) -> LeaseClient {
        LeaseClient {
            clock: client.clock(),
            client,
            rho: DEFAULT_DRIFT_BOUND,
            cache: Mutex::default(),
        }
    }

    /// The drift bound used to turn agency time left into local time (default 0.01).
    pub fn with_drift_bound(mut self, rho: f64) -> Result<LeaseClient, LeaseError> {
        if !(0.0..1.0).contains(&rho) {
            return Err(LeaseError::BadInput(format!(
                "drift bound: {rho} is outside [0, 1)"
            )));
        }
        self.rho = rho;
        Ok(self)
    }

    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// A client of the same agency whose local times (a claim's start, the expiries in
    /// `leases()`) are read from `clock` instead of the store client's, with an empty cache.
    pub fn with_clock(&self, clock: Arc<dyn Clock>) -> LeaseClient {
        LeaseClient {
            client: self.client.clone(),
            clock,
            rho: self.rho,
            cache: Mutex::default(),
        }
    }

    pub fn drift_bound(&self) -> f64 {
        self.rho
    }

    fn local_expiry(&self, remaining_ms: u64) -> Duration {
        self.clock.now() + Duration::from_millis(remaining_ms).div_f64(1.0 - self.rho)
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, LeaseError> {
        match self.client.submit(Command::Txn(txn)).await? {
            Outcome::Txn(TxnOutcome::Rejected(r)) => Err(LeaseError::BadInput(r.to_string())),
            Outcome::Txn(o) => Ok(o),
            other => Err(LeaseError::Invalid(format!("unexpected outcome {other:?}"))),
        }
    }

    /// The current holder of `lease` and its fencing token, read from the agency.
    pub async fn holder(&self, lease: &str) -> Result<Option<(String, Revision)>, LeaseError> {
        validate_lease_name(lease)?;
        let r = self.client.read(&lease_key(lease)).await?;
        Ok(match (r.value, r.meta) {
            (Some(v), Some(m)) => {
                let holder = v
                    .get("holder")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let expiry = m.expires_at_ms.map_or(Duration::MAX, |d| {
                    self.local_expiry(d.saturating_sub(r.now_ms))
                });
                self.cache.lock().unwrap().insert(
                    lease.to_string(),
                    Info {
                        holder: holder.clone(),
                        expiry,
                        fencing_token: m.create_revision,
                    },
                );
                Some((holder, m.create_revision))
            }
            _ => {
                self.cache.lock().unwrap().remove(lease);
                None
            }
        })
    }

    /// Waits until `lease` is vacant.
    pub async fn wait_vacant(&self, lease: &str) -> Result<(), LeaseError> {
        validate_lease_name(lease)?;
        let key = lease_key(lease);
        loop {
            let r = self.client.read(&key).await?;
            if r.value.is_none() {
                self.cache.lock().unwrap().remove(lease);
                return Ok(());
            }
            self.client.wait_events(&key, r.revision).await?;
        }
    }

    /// After an `Invalid` answer the seed says the caller finds the new state in `leases()`:
    /// the cache is read again (if that read fails, the caller's next `refresh` will do it;
    /// the `Invalid` stands either way).
    async fn refresh_after_invalid(&self) {
        let _ = Client::refresh(self).await;
    }

    /// Preconditions that hold while `holder` holds `lease`.
    pub fn holds_preconditions(lease: &str, holder: &str) -> Vec<Precondition> {
        vec![Precondition::IfEqualTo(holder_key(lease), json!(holder))]
    }
}

#[async_trait]
impl Client for LeaseClient {
    async fn claim_lease(&self, lease: &str, request: Request) -> Result<Revision, LeaseError> {
        validate_lease_name(lease)?;
        request.validate()?;
        let start = self.clock.now();
        let t = Txn::new()
            .when(Precondition::IfEmpty(lease_key(lease)))
            .then(Op::Set {
                key: lease_key(lease),
                value: json!({"holder": request.holder, "duration_ms": ceil_ms(request.duration)}),
                ttl_ms: Some(ceil_ms(request.duration)),
                lease: LeaseBinding::None,
            });
        match self.txn(t).await? {
            TxnOutcome::Committed { revision, .. } => {
                self.cache.lock().unwrap().insert(
                    lease.to_string(),
                    Info {
                        holder: request.holder,
                        expiry: start.max(self.clock.now())
                            + request.duration.div_f64(1.0 - self.rho),
                        fencing_token: revision,
                    },
                );
                Ok(revision)
            }
            TxnOutcome::PreconditionFailed { found, .. } => {
                self.refresh_after_invalid().await;
                Err(LeaseError::Invalid(format!(
                    "lease {lease:?} is held: {}",
                    found.unwrap_or(Value::Null)
                )))
            }
            TxnOutcome::Rejected(r) => Err(LeaseError::BadInput(r.to_string())),
        }
    }

    async fn extend_lease(&self, lease: &str, request: Request) -> Result<Revision, LeaseError> {
        validate_lease_name(lease)?;
        request.validate()?;
        let t = Txn::new()
            .when_all(LeaseClient::holds_preconditions(lease, &request.holder))
            .then(Op::ExtendTtl {
                key: lease_key(lease),
                ttl_ms: ceil_ms(request.duration),
            });
        match self.txn(t).await? {
            // The token is read after the extension: if the lease changed hands in between
            // (it expired and someone else claimed it), that token is not the holder's, and
            // answering with it would hand the holder another's grant (found by S3).
            TxnOutcome::Committed { .. } => match self.holder(lease).await? {
                Some((h, token)) if h == request.holder => Ok(token),
                _ => Err(LeaseError::Invalid(format!(
                    "lease {lease:?} expired right after {:?} extended it",
                    request.holder
                ))),
            },
            TxnOutcome::PreconditionFailed { found, .. } => {
                self.refresh_after_invalid().await;
                Err(LeaseError::Invalid(format!(
                    "lease {lease:?} is not held by {:?} (holder: {})",
                    request.holder,
                    found.unwrap_or(Value::Null)
                )))
            }
            TxnOutcome::Rejected(r) => Err(LeaseError::BadInput(r.to_string())),
        }
    }

    async fn expire_lease(&self, lease: &str) -> Result<(), LeaseError> {
        match self.holder(lease).await? {
            None => Ok(()),
            Some((holder, _)) => Err(LeaseError::Invalid(format!(
                "lease {lease:?} held by {holder:?} has not expired in agency time"
            ))),
        }
    }

    fn leases(&self) -> BTreeMap<String, Info> {
        self.cache.lock().unwrap().clone()
    }

    async fn refresh(&self) -> Result<(), LeaseError> {
        let now_ms = self
            .client
            .read(&Key::from_segments(&[NAMESPACE]).unwrap())
            .await?
            .now_ms;
        let start = Key::from_segments(&[NAMESPACE]).unwrap();
        // Every key under /lease sorts before the one-segment key "lease\0".
        let end = Key::from_segments(&["lease\u{0}"]).unwrap();
        let nodes = self.client.range(&start, &end).await?;
        let mut fresh = BTreeMap::new();
        for (k, n) in nodes {
            if k.len() != 2 || !k.starts_with(&start) {
                continue;
            }
            let holder = n.value.get("holder").and_then(Value::as_str).unwrap_or("");
            let expiry = n.meta.expires_at_ms.map_or(Duration::MAX, |d| {
                self.local_expiry(d.saturating_sub(now_ms))
            });
            fresh.insert(
                k.segments()[1].clone(),
                Info {
                    holder: holder.to_string(),
                    expiry,
                    fencing_token: n.meta.create_revision,
                },
            );
        }
        *self.cache.lock().unwrap() = fresh;
        Ok(())
    }
}

/// A fact, not necessarily a true one, about a holder's ownership of a lease.
#[derive(Clone)]
pub struct Token {
    client: Arc<LeaseClient>,
    lease: String,
    holder: String,
}

impl Token {
    /// `NotHeld` unless the holder holds the lease now (a linearizable read).
    pub async fn check(&self) -> Result<(), LeaseError> {
        match self.client.holder(&self.lease).await? {
            Some((h, _)) if h == self.holder => Ok(()),
            _ => Err(LeaseError::NotHeld),
        }
    }

    /// Preconditions that make a transaction fail unless the fact still holds when it
    /// commits (the Rust form of the trapdoor and of leadership's `AssertOps`).
    pub fn preconditions(&self) -> Vec<Precondition> {
        LeaseClient::holds_preconditions(&self.lease, &self.holder)
    }

    pub fn lease(&self) -> &str {
        &self.lease
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }
}

/// Acquisition and expiry notification (seed's `Claimer`).
#[async_trait]
pub trait Claimer: Send + Sync {
    /// Acquires or extends `lease` for `holder`. On success the holder keeps it at least
    /// `duration` after the start of the call; `ClaimDenied` means another holder has it.
    async fn claim(
        &self,
        lease: &str,
        holder: &str,
        duration: Duration,
    ) -> Result<Revision, LeaseError>;
    /// Returns once `lease` is no longer held.
    async fn wait_until_expired(&self, lease: &str) -> Result<(), LeaseError>;
}

/// Facts about ownership (seed's `Checker`).
pub trait Checker: Send + Sync {
    fn token(&self, lease: &str, holder: &str) -> Token;
}

/// Claimer and Checker over a [`LeaseClient`]. Clones share one stop signal: once
/// [`LeaseManager::stop`] is called, every claim and wait in flight, and every later one,
/// fails with [`LeaseError::Stopped`].
#[derive(Clone)]
pub struct LeaseManager {
    client: Arc<LeaseClient>,
    stop: Arc<StopSignal>,
}

/// A one-way switch that futures can wait on.
struct StopSignal {
    tx: Mutex<Option<futures::channel::oneshot::Sender<()>>>,
    rx: futures::future::Shared<futures::channel::oneshot::Receiver<()>>,
}

/// How many times a claim retries when the lease changes hands under it.
const CLAIM_ATTEMPTS: usize = 8;

impl LeaseManager {
    pub fn new(client: Arc<LeaseClient>) -> LeaseManager {
        use futures::FutureExt;
        let (tx, rx) = futures::channel::oneshot::channel();
        LeaseManager {
            client,
            stop: Arc::new(StopSignal {
                tx: Mutex::new(Some(tx)),
                rx: rx.shared(),
            }),
        }
    }

    pub fn client(&self) -> &Arc<LeaseClient> {
        &self.client
    }

    /// Stops the manager: claims and waits in flight end with `Stopped`, and so do later
    /// ones. A claim that had already been sent may still have taken effect; the lease then
    /// simply runs out. Idempotent.
    pub fn stop(&self) {
        self.stop.tx.lock().unwrap().take();
    }

    /// Whether [`LeaseManager::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.stop.tx.lock().unwrap().is_none()
    }

    /// Runs `work` unless or until the manager stops (the stop is looked at first).
    pub async fn unless_stopped<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, LeaseError>>,
    ) -> Result<T, LeaseError> {
        use futures::FutureExt;
        if self.is_stopped() {
            return Err(LeaseError::Stopped);
        }
        let mut work = std::pin::pin!(work.fuse());
        let stopped = self.stop.rx.clone().fuse();
        futures::pin_mut!(stopped);
        futures::select_biased! {
            _ = stopped => Err(LeaseError::Stopped),
            r = work => r,
        }
    }
}

#[async_trait]
impl Claimer for LeaseManager {
    async fn claim(
        &self,
        lease: &str,
        holder: &str,
        duration: Duration,
    ) -> Result<Revision, LeaseError> {
        let request = Request::new(holder, duration);
        validate_lease_name(lease)?;
        request.validate()?;
        self.unless_stopped(self.claim_attempts(lease, holder, request))
            .await
    }

    async fn wait_until_expired(&self, lease: &str) -> Result<(), LeaseError> {
        self.unless_stopped(self.client.wait_vacant(lease)).await
    }
}

impl LeaseManager {
    async fn claim_attempts(
        &self,
        lease: &str,
        holder: &str,
        request: Request,
    ) -> Result<Revision, LeaseError> {
        for _ in 0..CLAIM_ATTEMPTS {
            match self.client.claim_lease(lease, request.clone()).await {
                Err(LeaseError::Invalid(_)) => {}
                other => return other,
            }
            match self.client.extend_lease(lease, request.clone()).await {
                Err(LeaseError::Invalid(_)) => {}
                other => return other,
            }
            // Neither: someone else holds it, or it changed hands between the two calls.
            match self.client.holder(lease).await? {
                Some((h, _)) if h != holder => return Err(LeaseError::ClaimDenied),
                _ => continue,
            }
        }
        Err(LeaseError::Invalid(format!(
            "lease {lease:?} changed hands {CLAIM_ATTEMPTS} times during the claim"
        )))
    }
}

impl Checker for LeaseManager {
    fn token(&self, lease: &str, holder: &str) -> Token {
        Token {
            client: self.client.clone(),
            lease: lease.to_string(),
            holder: holder.to_string(),
        }
    }
}
