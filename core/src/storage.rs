//! Seed 003: a versioned record `Storage` with a `Lessor`.
//!
//! Records live under `/storage/<key>`; a record's version is the store's per-key version
//! (1 at creation, +1 per write), so versions of one incarnation are consecutive. A record
//! bound to a lease is deleted when the lease ends. `cas_by_version` keeps the record's lease.

use crate::bugs::{Bug, Bugs};
use crate::client::{grant_lease, spawn_keep_alive, ClientError, StoreClient};
use crate::clock::ceil_ms;
use crate::command::*;
use crate::key::Key;
use crate::store::Node;
use async_trait::async_trait;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The top-level path the family stores its records under.
pub const NAMESPACE: &str = "storage";

/// A record's version (0: no record).
pub type Version = u64;

/// A stored record.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub key: String,
    pub value: Value,
    /// Managed by the storage; ignored by `create`, compared by `cas_by_version`.
    pub version: Version,
    /// The lease the record is bound to, or [`NO_LEASE`]. Set at creation only.
    pub lease: LeaseId,
}

impl Record {
    pub fn new(key: &str, value: Value) -> Record {
        Record {
            key: key.to_string(),
            value,
            version: 0,
            lease: NO_LEASE,
        }
    }
}

/// The storage family's errors.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum StorageError {
    /// `create` found a record already there; here it is.
    #[error("record {:?} already exists (version {})", .0.key, .0.version)]
    AlreadyExists(Box<Record>),
    #[error("record not found")]
    NotFound,
    /// `cas_by_version` expected another version; the record has `current`.
    #[error("wrong version: the record is at version {current}")]
    WrongVersion { current: Version },
    #[error("lease {0} not found (never granted, expired or released)")]
    LeaseNotFound(LeaseId),
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// A lease on records (seed's `Lease`).
#[async_trait]
pub trait Lease: Send + Sync {
    fn id(&self) -> LeaseId;
    /// Time left before the lease expires (agency time).
    async fn ttl(&self) -> Result<Duration, StorageError>;
    /// Ends the lease now, deleting its records.
    async fn release(&self) -> Result<(), StorageError>;
}

/// Grants and finds leases (seed's `Lessor`).
#[async_trait]
pub trait Lessor: Send + Sync {
    /// A new lease of `ttl`; with `keep_alive` it is renewed for as long as this storage
    /// handle lives (the process "is done" when the handle is dropped).
    async fn new_lease(
        &self,
        ttl: Duration,
        keep_alive: bool,
    ) -> Result<Arc<dyn Lease>, StorageError>;
    /// A handle on an existing lease.
    async fn get_lease(&self, id: LeaseId) -> Result<Arc<dyn Lease>, StorageError>;
}

/// The record storage (seed's `Storage`).
#[async_trait]
pub trait Storage: Send + Sync {
    fn lessor(&self) -> Arc<dyn Lessor>;
    /// Adds a record; `AlreadyExists` (with the existing record) if the key is taken.
    async fn create(&self, record: Record) -> Result<Version, StorageError>;
    async fn get(&self, key: &str) -> Result<Record, StorageError>;
    /// Records with keys in `[start, end]`, sorted; empty if none.
    async fn get_range(&self, start: &str, end: &str) -> Result<Vec<Record>, StorageError>;
    /// Sets the value if the stored version equals `record.version`; returns the new version.
    async fn cas_by_version(&self, record: Record) -> Result<Version, StorageError>;
    /// Removes the record; `NotFound` if there is none.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;
    /// Returns at once if the record's version differs from `version` (or `NotFound` if
    /// there is no record); otherwise waits for the next change: the new record, or `None`
    /// if it was deleted. Cancel by dropping the future.
    async fn wait_for_version_change(
        &self,
        key: &str,
        version: Version,
    ) -> Result<Option<Record>, StorageError>;
}

/// Storage and Lessor over any backend.
#[derive(Clone)]
pub struct StorageApi {
    client: Arc<dyn StoreClient>,
    /// Life tokens of the kept-alive leases; dropping the last handle stops their renewal.
    kept: Arc<Mutex<BTreeMap<LeaseId, Arc<()>>>>,
    /// Planted bugs (none unless [`StorageApi::with_bugs`]).
    bugs: Bugs,
    /// With [`Bug::CasComparesValues`]: the last record read per key (its version and value).
    last_read: Arc<Mutex<BTreeMap<String, (Version, Value)>>>,
}

fn storage_key(key: &str) -> Result<Key, StorageError> {
    if key.is_empty() {
        return Err(StorageError::Invalid("key: must not be empty".into()));
    }
    Ok(Key::from_segments(&[NAMESPACE, key]).expect("non-empty segments"))
}

fn record(key: &str, node: &Node) -> Record {
    Record {
        key: key.to_string(),
        value: node.value.clone(),
        version: node.meta.version,
        lease: node.meta.lease.unwrap_or(NO_LEASE),
    }
}

impl StorageApi {
    pub fn new(client: Arc<dyn StoreClient>) -> StorageApi {
        StorageApi {
            client,
            kept: Arc::default(),
            bugs: Bugs::new(),
            last_read: Arc::default(),
        }
    }

    /// Plants the storage library's share of `bugs` (for the simulator's planted-bug runs
    /// only): [`Bug::CasComparesValues`].
    pub fn with_bugs(mut self, bugs: Bugs) -> StorageApi {
        self.bugs = bugs;
        self
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StorageError> {
        match self.client.submit(Command::Txn(txn)).await? {
            Outcome::Txn(TxnOutcome::Rejected(Rejection::LeaseNotFound(id))) => {
                Err(StorageError::LeaseNotFound(id))
            }
            Outcome::Txn(TxnOutcome::Rejected(r)) => Err(StorageError::Invalid(r.to_string())),
            Outcome::Txn(o) => Ok(o),
            other => Err(StorageError::Invalid(format!(
                "unexpected outcome {other:?}"
            ))),
        }
    }

    async fn read_record(&self, key: &str) -> Result<(Option<Record>, Revision), StorageError> {
        let k = storage_key(key)?;
        let r = self.client.read(&k).await?;
        let rec = match (r.value, r.meta) {
            (Some(value), Some(meta)) => Some(record(key, &Node { value, meta })),
            _ => None,
        };
        Ok((rec, r.revision))
    }
}

struct StoredLease {
    id: LeaseId,
    client: Arc<dyn StoreClient>,
    kept: Arc<Mutex<BTreeMap<LeaseId, Arc<()>>>>,
}

#[async_trait]
impl Lease for StoredLease {
    fn id(&self) -> LeaseId {
        self.id
    }

    async fn ttl(&self) -> Result<Duration, StorageError> {
        match self.client.lease(self.id).await? {
            Some(info) => Ok(Duration::from_millis(info.remaining_ms)),
            None => Err(StorageError::LeaseNotFound(self.id)),
        }
    }

    async fn release(&self) -> Result<(), StorageError> {
        self.kept.lock().unwrap().remove(&self.id);
        match self
            .client
            .submit(Command::LeaseRevoke { id: self.id })
            .await?
        {
            Outcome::LeaseRevoked { .. } => Ok(()),
            Outcome::Rejected(Rejection::LeaseNotFound(id)) => Err(StorageError::LeaseNotFound(id)),
            other => Err(StorageError::Invalid(format!(
                "unexpected outcome {other:?}"
            ))),
        }
    }
}

#[async_trait]
impl Lessor for StorageApi {
    async fn new_lease(
        &self,
        ttl: Duration,
        keep_alive: bool,
    ) -> Result<Arc<dyn Lease>, StorageError> {
        if ttl.is_zero() {
            return Err(StorageError::Invalid(
                "ttl: must be greater than zero".into(),
            ));
        }
        if keep_alive && ttl < Duration::from_millis(3) {
            return Err(StorageError::Invalid(
                "ttl: a kept-alive lease needs at least 3ms, to be renewed at ttl/3".into(),
            ));
        }
        let (id, _) = grant_lease(&*self.client, ceil_ms(ttl))
            .await?
            .map_err(|r| StorageError::Invalid(r.to_string()))?;
        if keep_alive {
            let life = Arc::new(());
            let kept = Arc::downgrade(&self.kept);
            spawn_keep_alive(
                self.client.clone(),
                id,
                ttl,
                Arc::downgrade(&life),
                Box::new(move || {
                    if let Some(kept) = kept.upgrade() {
                        kept.lock().unwrap().remove(&id);
                    }
                }),
            );
            self.kept.lock().unwrap().insert(id, life);
        }
        Ok(Arc::new(StoredLease {
            id,
            client: self.client.clone(),
            kept: self.kept.clone(),
        }))
    }

    async fn get_lease(&self, id: LeaseId) -> Result<Arc<dyn Lease>, StorageError> {
        if id == NO_LEASE {
            return Err(StorageError::Invalid("lease id: 0 is NoLeaseId".into()));
        }
        match self.client.lease(id).await? {
            Some(_) => Ok(Arc::new(StoredLease {
                id,
                client: self.client.clone(),
                kept: self.kept.clone(),
            })),
            None => Err(StorageError::LeaseNotFound(id)),
        }
    }
}

#[async_trait]
impl Storage for StorageApi {
    fn lessor(&self) -> Arc<dyn Lessor> {
        Arc::new(self.clone())
    }

    async fn create(&self, rec: Record) -> Result<Version, StorageError> {
        let k = storage_key(&rec.key)?;
        let lease = if rec.lease == NO_LEASE {
            LeaseBinding::None
        } else {
            LeaseBinding::Lease(rec.lease)
        };
        loop {
            let t = Txn::new()
                .when(Precondition::IfEmpty(k.clone()))
                .then(Op::Set {
                    key: k.clone(),
                    value: rec.value.clone(),
                    ttl_ms: None,
                    lease,
                });
            match self.txn(t).await? {
                TxnOutcome::Committed { .. } => return Ok(1),
                _ => {
                    if let (Some(existing), _) = self.read_record(&rec.key).await? {
                        return Err(StorageError::AlreadyExists(Box::new(existing)));
                    }
                    // Deleted between the two calls: try again.
                }
            }
        }
    }

    async fn get(&self, key: &str) -> Result<Record, StorageError> {
        let r = self
            .read_record(key)
            .await?
            .0
            .ok_or(StorageError::NotFound)?;
        if self.bugs.contains(Bug::CasComparesValues) {
            self.last_read
                .lock()
                .unwrap()
                .insert(key.to_string(), (r.version, r.value.clone()));
        }
        Ok(r)
    }

    async fn get_range(&self, start: &str, end: &str) -> Result<Vec<Record>, StorageError> {
        let (s, e) = (storage_key(start)?, storage_key(end)?);
        Ok(self
            .client
            .range(&s, &e)
            .await?
            .iter()
            .filter(|(k, _)| k.len() == 2)
            .map(|(k, n)| record(&k.segments()[1], n))
            .collect())
    }

    async fn cas_by_version(&self, rec: Record) -> Result<Version, StorageError> {
        let k = storage_key(&rec.key)?;
        let guard = if self.bugs.contains(Bug::CasComparesValues) {
            // Planted: guarded by the value read at that version (the last one read, or read
            // now), not by the version: another writer's equal value (ABA) passes.
            let cached = self.last_read.lock().unwrap().get(&rec.key).cloned();
            let old = match cached {
                Some((v, value)) if v == rec.version => value,
                _ => match self.read_record(&rec.key).await?.0 {
                    Some(r) if r.version == rec.version => r.value,
                    Some(r) => return Err(StorageError::WrongVersion { current: r.version }),
                    None => return Err(StorageError::NotFound),
                },
            };
            Precondition::IfEqualTo(k.clone(), old)
        } else {
            Precondition::VersionEquals(k.clone(), rec.version)
        };
        let t = Txn::new()
            .when(Precondition::IfExists(k.clone()))
            .when(guard)
            .then(Op::Set {
                key: k.clone(),
                value: rec.value,
                ttl_ms: None,
                lease: LeaseBinding::Keep,
            });
        match self.txn(t).await? {
            TxnOutcome::Committed { .. } => Ok(rec.version + 1),
            TxnOutcome::PreconditionFailed { index: 0, .. } => Err(StorageError::NotFound),
            TxnOutcome::PreconditionFailed { .. } => {
                let current = self.read_record(&rec.key).await?.0.map_or(0, |r| r.version);
                Err(StorageError::WrongVersion { current })
            }
            TxnOutcome::Rejected(r) => Err(StorageError::Invalid(r.to_string())),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let k = storage_key(key)?;
        let t = Txn::new()
            .when(Precondition::IfExists(k.clone()))
            .then(Op::Delete { key: k });
        match self.txn(t).await? {
            TxnOutcome::Committed { .. } => Ok(()),
            _ => Err(StorageError::NotFound),
        }
    }

    async fn wait_for_version_change(
        &self,
        key: &str,
        version: Version,
    ) -> Result<Option<Record>, StorageError> {
        let k = storage_key(key)?;
        let (current, mut after) = self.read_record(key).await?;
        let current = current.ok_or(StorageError::NotFound)?;
        if current.version != version {
            return Ok(Some(current));
        }
        loop {
            for e in self.client.wait_events(&k, after).await? {
                after = e.revision;
                if e.key != k {
                    // A write above the record replaced it as a whole.
                    let (old, new) = e.project(&k);
                    if old == new {
                        continue;
                    }
                    return Ok(self.read_record(key).await?.0);
                }
                if e.kind == EventKind::Delete {
                    return Ok(None);
                }
                if e.version != version {
                    return Ok(Some(Record {
                        key: key.to_string(),
                        value: e.new.clone().unwrap_or(Value::Null),
                        version: e.version,
                        lease: current.lease,
                    }));
                }
            }
        }
    }
}
