//! Seed 000: the ArangoDB agency API, its `Lock`, and `is_same_endpoint`.
//!
//! Keys are [`Key`] paths; values are JSON. Writes return the revision they committed at,
//! which is also the fencing token of a lock grant.

use crate::client::{ClientError, HealthError, StoreClient};
use crate::clock::ceil_ms;
use crate::command::*;
use crate::key::Key;
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

mod lock;
pub use lock::{BeliefUpdate, Lock};

/// The agency family's errors.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AgencyError {
    /// Nothing is stored at `key`, the key asked for; `missing` is the shortest prefix of it
    /// that holds nothing (the key itself, or an ancestor).
    #[error("key not found: {key}{}", if key == missing { String::new() } else { format!(" (nothing at {missing})") })]
    KeyNotFound { key: Key, missing: Key },
    /// A write condition did not hold: `check` failed, the key held `found`.
    #[error("condition failed: {check:?} (found {found:?})")]
    ConditionFailed {
        check: Precondition,
        found: Option<Value>,
    },
    #[error("already locked")]
    AlreadyLocked,
    #[error("not locked")]
    NotLocked,
    /// Bad input: the message names the argument and what is wrong with it.
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Checks a write makes first; all must hold. Build with [`WriteCondition::new`] and the
/// `if_*` methods, as the driver's builder.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteCondition {
    pub checks: Vec<Precondition>,
    /// Not a check but a property of the write: see [`WriteCondition::with_lock_delay`].
    pub lock_delay: Option<Duration>,
}

impl WriteCondition {
    pub fn new() -> WriteCondition {
        WriteCondition::default()
    }
    /// Nothing is stored at `key`.
    pub fn if_empty(mut self, key: &Key) -> WriteCondition {
        self.checks.push(Precondition::IfEmpty(key.clone()));
        self
    }
    /// The value at `key` equals `old`.
    pub fn if_equal_to(mut self, key: &Key, old: Value) -> WriteCondition {
        self.checks.push(Precondition::IfEqualTo(key.clone(), old));
        self
    }
    /// The key's current incarnation was created at revision `rev`.
    pub fn if_created_at(mut self, key: &Key, rev: u64) -> WriteCondition {
        self.checks.push(Precondition::CreatedAt(key.clone(), rev));
        self
    }
    /// The value at `key` is an array.
    pub fn if_is_array(mut self, key: &Key) -> WriteCondition {
        self.checks.push(Precondition::IfIsArray(key.clone()));
        self
    }
    /// Arms a lock-delay on the written key: if it later expires (its holder died rather than
    /// removing it), writes that need it empty fail for `delay` of agency time.
    pub fn with_lock_delay(mut self, delay: Duration) -> WriteCondition {
        self.lock_delay = Some(delay);
        self
    }
}

/// The agency API (seed 000).
#[async_trait]
pub trait Agency: Send + Sync {
    /// The value (subtree) at `key`.
    async fn read_key(&self, key: &Key) -> Result<Value, AgencyError>;
    /// Writes `value` at `key`, expiring after `ttl` if given, if `condition` holds.
    async fn write_key(
        &self,
        key: &Key,
        value: Value,
        ttl: Option<Duration>,
        condition: Option<WriteCondition>,
    ) -> Result<Revision, AgencyError>;
    /// Writes only if nothing is stored at `key`.
    async fn write_key_if_empty(
        &self,
        key: &Key,
        value: Value,
        ttl: Option<Duration>,
    ) -> Result<Revision, AgencyError> {
        let c = WriteCondition::new().if_empty(key);
        self.write_key(key, value, ttl, Some(c)).await
    }
    /// Writes only if the value at `key` equals `old`.
    async fn write_key_if_equal_to(
        &self,
        key: &Key,
        new: Value,
        old: Value,
        ttl: Option<Duration>,
    ) -> Result<Revision, AgencyError> {
        let c = WriteCondition::new().if_equal_to(key, old);
        self.write_key(key, new, ttl, Some(c)).await
    }
    /// Removes `key` (and its subtree) if `condition` holds.
    async fn remove_key(
        &self,
        key: &Key,
        condition: Option<WriteCondition>,
    ) -> Result<Revision, AgencyError>;
    /// Removes `key` only if its value equals `old`.
    async fn remove_key_if_equal_to(&self, key: &Key, old: Value) -> Result<Revision, AgencyError> {
        let c = WriteCondition::new().if_equal_to(key, old);
        self.remove_key(key, Some(c)).await
    }
    /// Sends every change of `key` (or of keys above or below it) to the address `url`.
    async fn register_change_callback(&self, key: &Key, url: &str) -> Result<(), AgencyError>;
    /// Stops sending changes of `key` to `url`.
    async fn unregister_change_callback(&self, key: &Key, url: &str) -> Result<(), AgencyError>;
}

/// The agency API over any backend.
#[derive(Clone)]
pub struct AgencyApi {
    client: Arc<dyn StoreClient>,
}

impl AgencyApi {
    pub fn new(client: Arc<dyn StoreClient>) -> AgencyApi {
        AgencyApi { client }
    }

    /// The Go driver's `NewAgencyConnection`: this API over a connection that sends every
    /// request to all agents at once and takes the first normal answer. Over a backend with
    /// a single agent (`mem:`), the same connection.
    pub fn broadcast(&self) -> AgencyApi {
        AgencyApi {
            client: self
                .client
                .broadcast()
                .unwrap_or_else(|| self.client.clone()),
        }
    }

    /// `register_change_callback`, returning the revision it took effect at: every change of
    /// `key` after it is sent to `url`, in order (a tenure extension: the seed's call returns
    /// nothing, so a caller could not tell which changes to expect).
    pub async fn register_change_callback_from(
        &self,
        key: &Key,
        url: &str,
    ) -> Result<Revision, AgencyError> {
        if url.is_empty() {
            return Err(AgencyError::Invalid(
                "callback url: must not be empty".into(),
            ));
        }
        let cmd = Command::Observe {
            key: key.clone(),
            url: url.to_string(),
        };
        match self.client.submit(cmd).await? {
            Outcome::Observed { revision, .. } => Ok(revision),
            Outcome::Rejected(r) => Err(AgencyError::Invalid(r.to_string())),
            other => Err(AgencyError::Invalid(format!(
                "unexpected outcome {other:?}"
            ))),
        }
    }

    /// The Go driver's `AreAgentsHealthy` (and `WithAllowNoLeader`): exactly one agent
    /// answers as leader and every other redirects to it; with `allow_no_leader`, no leader
    /// at all (and nobody naming one) is healthy too. Returns the leader agent (from 1).
    pub async fn are_agents_healthy(
        &self,
        allow_no_leader: bool,
    ) -> Result<Option<u64>, HealthError> {
        self.client.health(allow_no_leader).await
    }

    async fn txn(&self, txn: Txn) -> Result<Revision, AgencyError> {
        match self.client.submit(Command::Txn(txn)).await? {
            Outcome::Txn(TxnOutcome::Committed { revision, .. }) => Ok(revision),
            Outcome::Txn(TxnOutcome::PreconditionFailed {
                precondition,
                found,
                ..
            }) => Err(AgencyError::ConditionFailed {
                check: precondition,
                found,
            }),
            Outcome::Txn(TxnOutcome::Rejected(r)) | Outcome::Rejected(r) => {
                Err(AgencyError::Invalid(r.to_string()))
            }
            other => Err(AgencyError::Invalid(format!(
                "unexpected outcome {other:?}"
            ))),
        }
    }
}

impl AgencyApi {
    /// Submits an observer (un)registration; its outcome carries nothing to report.
    async fn observe(&self, cmd: Command) -> Result<(), AgencyError> {
        self.client.submit(cmd).await?;
        Ok(())
    }
}

fn check_writable(key: &Key) -> Result<(), AgencyError> {
    if key.is_root() {
        return Err(AgencyError::Invalid(
            "key: the root cannot be written or removed".into(),
        ));
    }
    Ok(())
}

/// A write's TTL in ms: none, or zero (the Go driver's "no TTL"), is none.
fn ttl_ms(ttl: Option<Duration>) -> Option<u64> {
    ttl.filter(|d| !d.is_zero()).map(ceil_ms)
}

#[async_trait]
impl Agency for AgencyApi {
    async fn read_key(&self, key: &Key) -> Result<Value, AgencyError> {
        let r = self.client.read(key).await?;
        match r.value {
            Some(v) => Ok(v),
            None => Err(AgencyError::KeyNotFound {
                key: key.clone(),
                missing: r.missing_prefix.unwrap_or_else(|| key.clone()),
            }),
        }
    }

    async fn write_key(
        &self,
        key: &Key,
        value: Value,
        ttl: Option<Duration>,
        condition: Option<WriteCondition>,
    ) -> Result<Revision, AgencyError> {
        check_writable(key)?;
        let ttl_ms = ttl_ms(ttl);
        let condition = condition.unwrap_or_default();
        let mut ops = vec![Op::Set {
            key: key.clone(),
            value,
            ttl_ms,
            lease: LeaseBinding::None,
        }];
        if let Some(d) = condition.lock_delay.filter(|d| !d.is_zero()) {
            ops.push(Op::LockDelay {
                key: key.clone(),
                delay_ms: ceil_ms(d),
            });
        }
        let txn = Txn {
            preconditions: condition.checks,
            ops,
            else_ops: Vec::new(),
        };
        self.txn(txn).await
    }

    async fn remove_key(
        &self,
        key: &Key,
        condition: Option<WriteCondition>,
    ) -> Result<Revision, AgencyError> {
        check_writable(key)?;
        let txn = Txn {
            preconditions: condition.map(|c| c.checks).unwrap_or_default(),
            ops: vec![Op::Delete { key: key.clone() }],
            else_ops: Vec::new(),
        };
        self.txn(txn).await
    }

    async fn register_change_callback(&self, key: &Key, url: &str) -> Result<(), AgencyError> {
        if url.is_empty() {
            return Err(AgencyError::Invalid(
                "callback url: must not be empty".into(),
            ));
        }
        self.observe(Command::Observe {
            key: key.clone(),
            url: url.to_string(),
        })
        .await
    }

    async fn unregister_change_callback(&self, key: &Key, url: &str) -> Result<(), AgencyError> {
        self.observe(Command::Unobserve {
            key: key.clone(),
            url: url.to_string(),
        })
        .await
    }
}

/// True when two endpoint URLs name the same server: schemes `http`/`tcp` and `https`/`ssl`
/// are the same, host names compare without case, and a trailing `/` does not matter.
pub fn is_same_endpoint(a: &str, b: &str) -> bool {
    fn norm(s: &str) -> String {
        let s = s.trim().trim_end_matches('/');
        let (scheme, rest) = match s.split_once("://") {
            Some((sc, r)) => (sc.to_ascii_lowercase(), r),
            None => ("http".to_string(), s),
        };
        let scheme = match scheme.as_str() {
            "tcp" | "http" | "vst" | "http+tcp" => "http",
            "ssl" | "https" | "http+ssl" | "vst+ssl" => "https",
            other => other,
        }
        .to_string();
        format!("{scheme}://{}", rest.to_ascii_lowercase())
    }
    norm(a) == norm(b)
}
