//! Seed 001: `hmetcd`, a string key-value interface with a distributed lock, temporary keys,
//! transactions, test-and-set and watches.
//!
//! Keys are any non-empty strings, stored under `/kv/<key>` (the whole key as one segment,
//! so ranges compare keys byte-wise as etcd does); values are strings. Each handle has a
//! *session*: a lease, granted on first use and kept alive while the handle lives, to which
//! its lock key and its temporary keys are bound. When the handle is closed the lease is
//! revoked and they disappear at once; when the holder dies they disappear within the TTL.
//! Unlike the original's `mem:` backend, locks, temp keys and watches really work over
//! `mem:`.
//!
//! Faults: a session lost while the handle lives (cut off longer than the TTL) is re-created
//! with its temp keys, and told (`session.rs`); a `watch_with_cb` survives partitions and
//! leader changes, resuming from the last revision it delivered, and tells its callback when
//! the events it missed were compacted away (`watch.rs`).

mod session;
mod watch;

use session::Session;
pub use session::{SessionLoss, SessionLossCallback};

use crate::client::{ClientError, StoreClient};
use crate::clock::{timeout, Clock};
use crate::command::*;
use crate::key::Key;
use async_trait::async_trait;
use futures::channel::oneshot;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The key of the distributed lock (hmetcd's `DIST_LOCK_KEY`).
pub const DIST_LOCK_KEY: &str = "hbtd_dist_lock";
/// The top-level path the family stores its keys under.
pub const NAMESPACE: &str = "kv";
/// The session lease TTL unless `session_ttl_ms=` says otherwise.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(10);

/// The kv family's errors.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum KvError {
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("the handle is closed")]
    Closed,
    #[error("timed out after {0:?} waiting for the distributed lock")]
    LockTimeout(Duration),
    #[error("no such watch (never made, already cancelled or finished)")]
    UnknownWatch,
    /// The distributed lock this handle held went with its session (the lease expired while
    /// the holder was cut off or paused): another handle may have taken it since.
    #[error("the distributed lock was lost with the session; it was not re-taken")]
    LockLost,
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// What happened to a watched key (`KVC_KEYCHANGE_PUT` / `_DELETE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KeyChange {
    Put,
    Delete,
    /// Only to a `watch_with_cb` callback, whatever `op` it asked for: the changes since the
    /// last one delivered were compacted away before the watch could read them (it was cut
    /// off too long). The value given is the key's current one ("" if absent). Return `true`
    /// to go on watching from now, `false` to end the watch.
    Compacted,
}

/// One key and its value from `get_range`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvPair {
    pub key: String,
    pub value: String,
}

/// A watch callback: `(key, value, change) -> keep watching?`. User data is captured.
pub type WatchCallback = Box<dyn FnMut(&str, &str, KeyChange) -> bool + Send>;

/// What [`Kvs::watch_events`] tells its callback: the seed callback's value and change,
/// with the revision of the change and the key's version after it (0 once deleted). For a
/// [`KeyChange::Compacted`] notice, the revision the current value was read at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    pub value: String,
    pub change: KeyChange,
    pub revision: Revision,
    pub version: u64,
}

/// A [`Kvs::watch_events`] callback: `event -> keep watching?`.
pub type WatchEventCallback = Box<dyn FnMut(&WatchEvent) -> bool + Send>;

/// Identifies a watch made by `watch_with_cb`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct WatchHandle(u64);

/// The hmetcd interface (`Kvi`).
#[async_trait]
pub trait Kvi: Send + Sync {
    /// Blocks until this handle holds the distributed lock (at once if it already does).
    async fn dist_lock(&self) -> Result<(), KvError>;
    /// As `dist_lock`, giving up with `LockTimeout` after `timeout` (zero: a try-lock).
    async fn dist_timed_lock(&self, timeout: Duration) -> Result<(), KvError>;
    /// Releases the lock if this handle holds it; otherwise does nothing.
    async fn dist_unlock(&self) -> Result<(), KvError>;
    /// Creates or updates `key`.
    async fn store(&self, key: &str, value: &str) -> Result<(), KvError>;
    /// Creates `key` bound to this handle's session: it lives as long as the handle.
    async fn temp_key(&self, key: &str) -> Result<(), KvError>;
    /// The value of `key` and whether it exists.
    async fn get(&self, key: &str) -> Result<(String, bool), KvError>;
    /// Keys in `[start, end]` (inclusive), sorted.
    async fn get_range(&self, start: &str, end: &str) -> Result<Vec<KvPair>, KvError>;
    /// Deletes `key`; deleting a missing key is no error.
    async fn delete(&self, key: &str) -> Result<(), KvError>;
    /// `if value(key) op value { thenkey = thenval } else { elsekey = elseval }`, atomically.
    /// `op` is `=`, `!=`, `<` or `>` (byte-wise on strings; a missing key fails every
    /// comparison). An empty `thenkey`/`elsekey` writes nothing on that branch. Returns
    /// whether the comparison held.
    #[allow(clippy::too_many_arguments)]
    async fn transaction(
        &self,
        key: &str,
        op: &str,
        value: &str,
        thenkey: &str,
        thenval: &str,
        elsekey: &str,
        elseval: &str,
    ) -> Result<bool, KvError>;
    /// Sets `key` to `setval` if it holds `testval`; returns whether it did.
    async fn tas(&self, key: &str, testval: &str, setval: &str) -> Result<bool, KvError>;
    /// Blocks until `key` is written or deleted; returns the new value ("" if deleted).
    async fn watch(&self, key: &str) -> Result<(String, KeyChange), KvError>;
    /// Calls `cb` on every change of kind `op` to `key`, in the background, until the key is
    /// deleted, `cb` returns false, the watch is cancelled or the handle closed. The watch
    /// survives outages, resuming after the last change it delivered; if the changes it
    /// missed were compacted away, `cb` is called once with [`KeyChange::Compacted`].
    async fn watch_with_cb(
        &self,
        key: &str,
        op: KeyChange,
        cb: WatchCallback,
    ) -> Result<WatchHandle, KvError>;
    /// Cancels a watch; `UnknownWatch` if it is not running.
    fn watch_cb_cancel(&self, handle: WatchHandle) -> Result<(), KvError>;
    /// Ends the session: releases the lock, deletes temp keys, stops watches. Idempotent.
    async fn close(&self) -> Result<(), KvError>;
}

/// The hmetcd interface over any backend.
pub struct Kvs {
    client: Arc<dyn StoreClient>,
    clock: Arc<dyn Clock>,
    session_ttl: Duration,
    state: Arc<Mutex<KvState>>,
    /// Planted bugs (none unless [`Kvs::with_bugs`]).
    bugs: crate::bugs::Bugs,
}

#[derive(Default)]
struct KvState {
    closed: bool,
    session: Option<Session>,
    lock_token: Option<Revision>,
    /// The lock was held and lost with a session since the last `dist_unlock`.
    lock_lost: bool,
    /// The temp keys made through this handle, re-created after a session loss.
    temp_keys: BTreeSet<String>,
    losses: Vec<SessionLoss>,
    on_loss: Option<SessionLossCallback>,
    watches: BTreeMap<WatchHandle, oneshot::Sender<()>>,
    next_watch: u64,
}

fn kv_key(key: &str) -> Result<Key, KvError> {
    if key.is_empty() {
        return Err(KvError::Invalid("key: must not be empty".into()));
    }
    Ok(Key::from_segments(&[NAMESPACE, key]).expect("non-empty segments"))
}

fn as_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Kvs {
    /// Opens the interface over `client`. Options: `session_ttl_ms=N` (default 10000).
    pub fn open(client: Arc<dyn StoreClient>, options: &[&str]) -> Result<Kvs, KvError> {
        let mut session_ttl = DEFAULT_SESSION_TTL;
        for opt in options {
            match opt.split_once('=') {
                Some(("session_ttl_ms", v)) => {
                    let ms: u64 = v.parse().map_err(|_| {
                        KvError::Invalid(format!(
                            "option {opt:?}: {v:?} is not a whole number of ms"
                        ))
                    })?;
                    if ms < 3 {
                        return Err(KvError::Invalid(format!(
                            "option {opt:?}: the session TTL must be at least 3 ms"
                        )));
                    }
                    session_ttl = Duration::from_millis(ms);
                }
                None if *opt == "session_ttl_ms" => {
                    return Err(KvError::Invalid(format!(
                        "option {opt:?}: give the TTL as session_ttl_ms=N (ms)"
                    )))
                }
                // The seed: options it does not know are ignored (said, not refused).
                _ => tracing::warn!(
                    target: "tenure",
                    "hmetcd open: ignoring unknown option {opt:?} (known: session_ttl_ms=N)"
                ),
            }
        }
        Ok(Kvs {
            clock: client.clock(),
            client,
            session_ttl,
            state: Arc::new(Mutex::new(KvState::default())),
            bugs: crate::bugs::Bugs::new(),
        })
    }

    /// Plants the family's share of `bugs` (for the simulator's planted-bug runs only):
    /// [`Bug::KvWatchSkipsOutage`](crate::bugs::Bug::KvWatchSkipsOutage),
    /// [`Bug::TasReadThenWrite`](crate::bugs::Bug::TasReadThenWrite),
    /// [`Bug::GetRangeExcludesEnd`](crate::bugs::Bug::GetRangeExcludesEnd).
    pub fn with_bugs(mut self, bugs: crate::bugs::Bugs) -> Kvs {
        self.bugs = bugs;
        self
    }

    fn check_open(&self) -> Result<(), KvError> {
        if self.state.lock().unwrap().closed {
            Err(KvError::Closed)
        } else {
            Ok(())
        }
    }

    /// The fencing token of the lock, while this handle holds it.
    pub fn lock_token(&self) -> Option<Revision> {
        self.state.lock().unwrap().lock_token
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, KvError> {
        self.check_open()?;
        match self.client.submit(Command::Txn(txn)).await? {
            Outcome::Txn(TxnOutcome::Rejected(r)) => Err(KvError::Invalid(r.to_string())),
            Outcome::Txn(o) => Ok(o),
            other => Err(KvError::Invalid(format!("unexpected outcome {other:?}"))),
        }
    }

    async fn try_lock_once(&self) -> Result<Option<Revision>, KvError> {
        let lease = self.session().await?;
        let key = kv_key(DIST_LOCK_KEY)?;
        let me = Value::String(format!("session-{lease}"));
        let t = Txn::new()
            .when(Precondition::IfEmpty(key.clone()))
            .then(Op::Set {
                key: key.clone(),
                value: me.clone(),
                ttl_ms: None,
                lease: LeaseBinding::Lease(lease),
            });
        match self.txn(t).await? {
            TxnOutcome::Committed { revision, .. } => Ok(Some(revision)),
            TxnOutcome::PreconditionFailed {
                found, revision, ..
            } => {
                if found.as_ref() == Some(&me) {
                    // Already ours: the lock is re-entrant within a handle, as in hmetcd.
                    let r = self.client.read(&key).await?;
                    Ok(r.meta.map(|m| m.create_revision).or(Some(revision)))
                } else {
                    Ok(None)
                }
            }
            TxnOutcome::Rejected(r) => Err(KvError::Invalid(r.to_string())),
        }
    }

    /// Tries to take the lock, and while someone else holds it waits for the lock key to
    /// change and tries again; with a `limit`, gives up once it has waited that long (every
    /// call tries at least once, however small the limit: the limit bounds the waiting, not
    /// the round trips).
    async fn lock_loop(&self, limit: Option<Duration>) -> Result<(), KvError> {
        let key = kv_key(DIST_LOCK_KEY)?;
        let deadline = limit.map(|l| self.clock.now() + l);
        loop {
            let seen = self.client.read(&key).await?.revision;
            if let Some(token) = self.try_lock_once().await? {
                let mut st = self.state.lock().unwrap();
                st.lock_token = Some(token);
                st.lock_lost = false;
                return Ok(());
            }
            // Held by someone else: wait for the next change of the lock key.
            let wait = self.client.wait_events(&key, seen);
            match (deadline, limit) {
                (Some(deadline), Some(limit)) => {
                    let left = deadline.saturating_sub(self.clock.now());
                    if left.is_zero() {
                        return Err(KvError::LockTimeout(limit));
                    }
                    match timeout(&*self.clock, left, wait).await {
                        Some(r) => r.map(drop)?,
                        None => return Err(KvError::LockTimeout(limit)),
                    }
                }
                _ => wait.await.map(drop)?,
            }
        }
    }

    /// The next change of `key`'s value after revision `after` (a write of the same value
    /// is no change, as in hmetcd).
    async fn wait_change(&self, key: &Key, mut after: Revision) -> Result<WatchEvent, KvError> {
        loop {
            let events = self.client.wait_events(key, after).await?;
            for e in events {
                after = e.revision;
                let (old, new) = e.project(key);
                if old == new {
                    continue;
                }
                let (value, change) = match new {
                    Some(v) => (as_string(&v), KeyChange::Put),
                    None => (String::new(), KeyChange::Delete),
                };
                return Ok(WatchEvent {
                    value,
                    change,
                    revision: e.revision,
                    version: e.version,
                });
            }
        }
    }
}

#[async_trait]
impl Kvi for Kvs {
    async fn dist_lock(&self) -> Result<(), KvError> {
        self.lock_loop(None).await
    }

    async fn dist_timed_lock(&self, limit: Duration) -> Result<(), KvError> {
        self.lock_loop(Some(limit)).await
    }

    async fn dist_unlock(&self) -> Result<(), KvError> {
        self.check_open()?;
        let lease = {
            let mut st = self.state.lock().unwrap();
            if std::mem::take(&mut st.lock_lost) {
                return Err(KvError::LockLost);
            }
            if st.lock_token.is_none() {
                return Ok(());
            }
            st.session.as_ref().map(|s| s.lease)
        };
        let Some(lease) = lease else { return Ok(()) };
        let key = kv_key(DIST_LOCK_KEY)?;
        let t = Txn::new()
            .when(Precondition::IfEqualTo(
                key.clone(),
                Value::String(format!("session-{lease}")),
            ))
            .then(Op::Delete { key });
        // The lock stays held until the agency answers: on an error the caller can retry.
        self.txn(t).await?;
        let mut st = self.state.lock().unwrap();
        if st.session.as_ref().map(|s| s.lease) == Some(lease) {
            st.lock_token = None;
        }
        Ok(())
    }

    async fn store(&self, key: &str, value: &str) -> Result<(), KvError> {
        let t = Txn::new().then(Op::set(kv_key(key)?, Value::String(value.into())));
        self.txn(t).await?;
        Ok(())
    }

    async fn temp_key(&self, key: &str) -> Result<(), KvError> {
        kv_key(key)?;
        // Kept from the first attempt: a temp key whose write had an unknown outcome may
        // exist, and must come back after a session loss like the others.
        self.state.lock().unwrap().temp_keys.insert(key.to_string());
        self.write_temp_key(key).await
    }

    async fn get(&self, key: &str) -> Result<(String, bool), KvError> {
        let k = kv_key(key)?;
        self.check_open()?;
        let r = self.client.read(&k).await?;
        Ok(match r.value {
            Some(v) => (as_string(&v), true),
            None => (String::new(), false),
        })
    }

    async fn get_range(&self, start: &str, end: &str) -> Result<Vec<KvPair>, KvError> {
        let (s, e) = (kv_key(start)?, kv_key(end)?);
        self.check_open()?;
        let half_open = self.bugs.contains(crate::bugs::Bug::GetRangeExcludesEnd);
        Ok(self
            .client
            .range(&s, &e)
            .await?
            .into_iter()
            .filter(|(k, _)| k.len() == 2 && !(half_open && *k == e))
            .map(|(k, n)| KvPair {
                key: k.segments()[1].clone(),
                value: as_string(&n.value),
            })
            .collect())
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        let k = kv_key(key)?;
        // A temp key deleted by its owner is not re-created after a session loss.
        self.state.lock().unwrap().temp_keys.remove(key);
        self.txn(Txn::new().then(Op::Delete { key: k })).await?;
        Ok(())
    }

    async fn transaction(
        &self,
        key: &str,
        op: &str,
        value: &str,
        thenkey: &str,
        thenval: &str,
        elsekey: &str,
        elseval: &str,
    ) -> Result<bool, KvError> {
        let cmp = CmpOp::parse(op)
            .ok_or_else(|| KvError::Invalid(format!("op {op:?}: expected one of =, !=, <, >")))?;
        let mut t = Txn::new().when(Precondition::Compare(
            kv_key(key)?,
            cmp,
            Value::String(value.into()),
        ));
        if !thenkey.is_empty() {
            t = t.then(Op::set(kv_key(thenkey)?, Value::String(thenval.into())));
        }
        if !elsekey.is_empty() {
            t = t.otherwise(Op::set(kv_key(elsekey)?, Value::String(elseval.into())));
        }
        Ok(self.txn(t).await?.is_committed())
    }

    async fn tas(&self, key: &str, testval: &str, setval: &str) -> Result<bool, KvError> {
        let k = kv_key(key)?;
        if self.bugs.contains(crate::bugs::Bug::TasReadThenWrite) {
            let (found, exists) = self.get(key).await?;
            if !exists || found != testval {
                return Ok(false);
            }
            self.store(key, setval).await?;
            return Ok(true);
        }
        let t = Txn::new()
            .when(Precondition::IfEqualTo(
                k.clone(),
                Value::String(testval.into()),
            ))
            .then(Op::set(k, Value::String(setval.into())));
        Ok(self.txn(t).await?.is_committed())
    }

    async fn watch(&self, key: &str) -> Result<(String, KeyChange), KvError> {
        let k = kv_key(key)?;
        self.check_open()?;
        let from = self.client.read(&k).await?.revision;
        let e = self.wait_change(&k, from).await?;
        Ok((e.value, e.change))
    }

    async fn watch_with_cb(
        &self,
        key: &str,
        op: KeyChange,
        cb: WatchCallback,
    ) -> Result<WatchHandle, KvError> {
        let mut cb = cb;
        let user_key = key.to_string();
        self.watch_events(
            key,
            op,
            None,
            Box::new(move |e| cb(&user_key, &e.value, e.change)),
        )
        .await
    }

    fn watch_cb_cancel(&self, handle: WatchHandle) -> Result<(), KvError> {
        match self.state.lock().unwrap().watches.remove(&handle) {
            Some(tx) => {
                let _ = tx.send(());
                Ok(())
            }
            None => Err(KvError::UnknownWatch),
        }
    }

    async fn close(&self) -> Result<(), KvError> {
        let (session, watches) = {
            let mut st = self.state.lock().unwrap();
            if st.closed {
                return Ok(());
            }
            st.closed = true;
            st.lock_token = None;
            (st.session.take(), std::mem::take(&mut st.watches))
        };
        for (_, tx) in watches {
            let _ = tx.send(());
        }
        if let Some(s) = session {
            // Revoking deletes the lock key and the temp keys bound to the session.
            self.client
                .submit(Command::LeaseRevoke { id: s.lease })
                .await?;
        }
        Ok(())
    }
}
