//! The entries of the replicated log and what applying them yields: commands, transactions,
//! preconditions, operations, outcomes and change events. All plain data (serde).

use crate::key::Key;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The store's global revision: bumped once by every mutation of keys or of the lease set.
pub type Revision = u64;
/// A lease's identifier; `NO_LEASE` (0) is never granted.
pub type LeaseId = i64;
/// The id that means "no lease" (Storage's `NoLeaseId`).
pub const NO_LEASE: LeaseId = 0;

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Preconditions and operations, applied all or nothing.
    Txn(Txn),
    /// Advances agency time; whatever is due by the new time expires in the same entry.
    Tick { advance_ms: u64 },
    /// Grants a lease that lives `ttl_ms` of agency time unless kept alive.
    LeaseGrant { ttl_ms: u64 },
    /// Restarts a lease's TTL from the current agency time.
    LeaseKeepAlive { id: LeaseId },
    /// Ends a lease now and deletes every key bound to it.
    LeaseRevoke { id: LeaseId },
    /// Registers `url` to receive the change events of `key` (and of keys above and below).
    Observe { key: Key, url: String },
    /// Removes an observer registration.
    Unobserve { key: Key, url: String },
}

/// A transaction: if every precondition holds, every operation of `ops` is applied, in order,
/// at one new revision; otherwise only the operations of `else_ops` are (often none), and the
/// outcome names the first failed check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Txn {
    pub preconditions: Vec<Precondition>,
    pub ops: Vec<Op>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub else_ops: Vec<Op>,
}

impl Txn {
    pub fn new() -> Txn {
        Txn::default()
    }
    pub fn when(mut self, p: Precondition) -> Txn {
        self.preconditions.push(p);
        self
    }
    pub fn when_all(mut self, ps: impl IntoIterator<Item = Precondition>) -> Txn {
        self.preconditions.extend(ps);
        self
    }
    pub fn then(mut self, op: Op) -> Txn {
        self.ops.push(op);
        self
    }
    pub fn otherwise(mut self, op: Op) -> Txn {
        self.else_ops.push(op);
        self
    }
}

/// A comparison operator for [`Precondition::Compare`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Gt,
}

impl CmpOp {
    /// Parses hmetcd's operator text: `=`, `!=`, `<`, `>`.
    pub fn parse(s: &str) -> Option<CmpOp> {
        match s {
            "=" | "==" => Some(CmpOp::Eq),
            "!=" => Some(CmpOp::Ne),
            "<" => Some(CmpOp::Lt),
            ">" => Some(CmpOp::Gt),
            _ => None,
        }
    }
}

/// A check a transaction makes before it writes. Paths may point inside a stored value
/// (agency semantics): `/lease/x/holder` reads the `holder` field of the value at `/lease/x`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precondition {
    /// Nothing is stored at the key.
    IfEmpty(Key),
    /// Something is stored at the key.
    IfExists(Key),
    /// The value at the key equals the given value.
    IfEqualTo(Key, Value),
    /// The value at the key is a JSON array.
    IfIsArray(Key),
    /// `value_at(key) op value`. Numbers compare as numbers, strings byte-wise; a missing
    /// key or values of different kinds make every comparison false (as in etcd).
    Compare(Key, CmpOp, Value),
    /// The version of the key equals this (0: the key does not exist as a stored key).
    VersionEquals(Key, u64),
    /// The key is stored and bound to this lease.
    LeaseEquals(Key, LeaseId),
    /// The key is stored and this incarnation of it was created at this revision (a lock
    /// grant's token): guards a holder's later writes against a newer incarnation carrying the
    /// same value.
    CreatedAt(Key, u64),
    /// The lease exists (has been granted and has neither expired nor been revoked).
    LeaseAlive(LeaseId),
}

/// How a [`Op::Set`] binds the key's lifetime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseBinding {
    /// The key lives until deleted (or until its TTL, if one is given).
    #[default]
    None,
    /// Keep the lease and TTL deadline of the key being overwritten, if any.
    Keep,
    /// Bind the key to this lease: it is deleted when the lease ends.
    Lease(LeaseId),
}

/// A write inside a transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Replaces the subtree at `key` with `value`; with `ttl_ms`, the key expires that much
    /// agency time later.
    Set {
        key: Key,
        value: Value,
        ttl_ms: Option<u64>,
        lease: LeaseBinding,
    },
    /// Removes the subtree at `key` (a missing key is no error and no change).
    Delete { key: Key },
    /// Adds `delta` to the number at `key` (a missing or non-integer value counts as 0).
    Increment { key: Key, delta: i64 },
    /// Appends to the array at `key` (a missing or non-array value becomes `[value]`).
    Push { key: Key, value: Value },
    /// Removes the last element of the array at `key` (no change if it is not an array).
    Pop { key: Key },
    /// Moves the TTL deadline of the stored key to at least `ttl_ms` from now; never earlier.
    ExtendTtl { key: Key, ttl_ms: u64 },
    /// Arms a lock-delay on the stored key (Chubby's): if this incarnation of the key is later
    /// removed involuntarily (its TTL or its lease runs out: the holder died), `IfEmpty(key)`
    /// fails for `delay_ms` of agency time, so the lock is not granted again at once. A
    /// voluntary delete disarms it. No effect on a missing key.
    LockDelay { key: Key, delay_ms: u64 },
}

impl Op {
    /// A plain write with no TTL and no lease.
    pub fn set(key: Key, value: Value) -> Op {
        Op::Set {
            key,
            value,
            ttl_ms: None,
            lease: LeaseBinding::None,
        }
    }
}

/// What applying a command did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Txn(TxnOutcome),
    Ticked {
        now_ms: u64,
    },
    LeaseGranted {
        id: LeaseId,
        ttl_ms: u64,
        deadline_ms: u64,
        revision: Revision,
    },
    LeaseKeptAlive {
        id: LeaseId,
        deadline_ms: u64,
    },
    LeaseRevoked {
        id: LeaseId,
        revision: Revision,
    },
    Observed {
        added: bool,
        /// The store's revision when the registration applied: the address is notified of
        /// every change after it.
        #[serde(default)]
        revision: Revision,
    },
    Unobserved {
        removed: bool,
    },
    /// The command was not valid in this state (unknown lease, zero TTL); nothing changed.
    Rejected(Rejection),
}

/// Why a command changed nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    #[error("lease {0} does not exist (never granted, expired or revoked)")]
    LeaseNotFound(LeaseId),
    #[error("TTL must be greater than zero")]
    ZeroTtl,
    #[error("the root of the tree cannot be written or deleted")]
    RootWrite,
}

/// What a transaction did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnOutcome {
    /// Every precondition held; the operations ran at `revision` (the store's revision after
    /// them; unchanged if they changed nothing). `results` holds, per operation, the value
    /// at its key afterwards (for `Pop`: the removed element).
    Committed {
        revision: Revision,
        results: Vec<Option<Value>>,
    },
    /// The precondition at `index` did not hold; `found` is what the key held (for an
    /// `IfEmpty` refused by a lock-delay: `{"lock_delay_until_ms": t}`, the agency time it
    /// lasts until). The `else_ops`, if any, ran; `revision` is the store's revision
    /// afterwards.
    PreconditionFailed {
        index: usize,
        precondition: Precondition,
        found: Option<Value>,
        revision: Revision,
    },
    /// The transaction was malformed; nothing changed.
    Rejected(Rejection),
}

impl TxnOutcome {
    pub fn is_committed(&self) -> bool {
        matches!(self, TxnOutcome::Committed { .. })
    }
}

/// The kind of change an event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Create,
    Modify,
    Delete,
}

/// What made a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// A transaction's operation.
    Write,
    /// The key's own TTL ran out.
    TtlExpired,
    /// The key's lease ran out.
    LeaseExpired(LeaseId),
    /// The key's lease was revoked.
    LeaseRevoked(LeaseId),
}

/// One change to one key: what a watcher or observer receives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub revision: Revision,
    pub key: Key,
    pub kind: EventKind,
    /// The value at `key` before the change.
    pub old: Option<Value>,
    /// The value at `key` after the change.
    pub new: Option<Value>,
    /// The key's version after the change (0 once deleted).
    pub version: u64,
    pub cause: Cause,
    /// The lease the key is bound to after the change (as etcd's events carry it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseId>,
}

impl Event {
    /// The value a reader of `key` saw before and after this event, for a `key` related to
    /// the event's key (above, below or equal); `None` where nothing was there.
    pub fn project(&self, key: &Key) -> (Option<Value>, Option<Value>) {
        if let Some(rest) = key.strip_prefix(&self.key) {
            (
                self.old
                    .as_ref()
                    .and_then(|v| crate::store::navigate(v, rest)),
                self.new
                    .as_ref()
                    .and_then(|v| crate::store::navigate(v, rest)),
            )
        } else {
            // The event is below `key`: a reader of `key` sees the whole subtree change,
            // which the event alone does not hold; report the part that changed.
            (self.old.clone(), self.new.clone())
        }
    }
}
