//! The agency store: the replicated state machine.
//!
//! A JSON tree held as *nodes*: a node is a key written by a `Set`, holding a whole JSON value
//! and its metadata (`create_revision`, `mod_revision`, `version`, lease, TTL deadline).
//! Invariant: no node's key lies strictly under another node's key. Reading any path returns
//! the subtree there: the node's value, a part of an ancestor node's value, or an object built
//! from the nodes below. Writing a path replaces its subtree; writing below a node first splits
//! that node's object value into one node per field (keeping their metadata).
//!
//! Time inside the store is *agency time* (`now_ms`), moved only by `Tick` commands. TTL keys
//! and leases expire inside `apply`, so every replica expires the same things at the same log
//! index. [`Store::apply`] depends on nothing but the store and the command.

use crate::bugs::{Bug, Bugs};
use crate::command::*;
use crate::key::Key;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A stored key and its metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub value: Value,
    pub meta: Meta,
}

/// Per-key metadata, as etcd keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Revision at which this incarnation of the key was created.
    pub create_revision: Revision,
    /// Revision of the last change to the key.
    pub mod_revision: Revision,
    /// Writes since creation: 1 after the create, +1 per write; gone with the key.
    pub version: u64,
    /// The lease the key is bound to.
    pub lease: Option<LeaseId>,
    /// Agency time at which the key's own TTL ends.
    pub expires_at_ms: Option<u64>,
}

/// A granted lease.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    pub id: LeaseId,
    pub ttl_ms: u64,
    /// Agency time at which the lease ends unless kept alive.
    pub deadline_ms: u64,
    /// Revision of the grant: the lease's fencing token.
    pub granted_revision: Revision,
    /// Keys bound to the lease.
    pub keys: BTreeSet<Key>,
}

/// What a read found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadResult {
    /// The subtree at the key, if anything is there.
    pub value: Option<Value>,
    /// Metadata, when the key is exactly a stored node.
    pub meta: Option<Meta>,
    /// The shortest prefix of the key at which nothing is stored (for "key not found").
    pub missing_prefix: Option<Key>,
    /// The store's revision at the read.
    pub revision: Revision,
    /// Agency time at the read.
    pub now_ms: u64,
}

/// Everything one `apply` produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    pub outcome: Outcome,
    /// The changes, in order; all carry the same revision.
    pub events: Vec<Event>,
}

/// A watch asked for events the store no longer keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("events up to revision {compacted} were compacted; cannot watch from revision {from}")]
pub struct Compacted {
    pub compacted: Revision,
    pub from: Revision,
}

/// How many change events the store keeps for watchers that start in the past.
pub const DEFAULT_EVENT_RETENTION: usize = 100_000;

/// The replicated state machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Store {
    nodes: BTreeMap<Key, Node>,
    revision: Revision,
    now_ms: u64,
    leases: BTreeMap<LeaseId, Lease>,
    next_lease_id: LeaseId,
    observers: BTreeMap<Key, BTreeSet<String>>,
    /// TTL deadlines of nodes, for expiry in deadline order.
    ttl_index: BTreeSet<(u64, Key)>,
    events: VecDeque<Event>,
    /// Every event with a revision at or below this has been dropped from `events`.
    compacted_revision: Revision,
    event_retention: usize,
    /// Lock-delays armed on stored keys (`Op::LockDelay`), in ms of agency time.
    #[serde(default)]
    armed_delays: BTreeMap<Key, u64>,
    /// Keys whose holder died: `IfEmpty` on them fails until this agency time.
    #[serde(default)]
    delayed: BTreeMap<Key, u64>,
    /// Per change-callback address: the latest notifications (each change of a key the
    /// address observed when the change applied), and the revision up to which older ones
    /// were dropped. Part of the state, so every agent, restarted or not, serves the same.
    #[serde(default)]
    outbox: BTreeMap<String, (VecDeque<Event>, Revision)>,
    /// Planted bugs of the state machine: a setting of the agent, not part of the state.
    #[serde(skip)]
    bugs: Bugs,
}

/// Notifications kept per change-callback address.
pub const OUTBOX_LIMIT: usize = 10_000;

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

/// The value at `path` inside `value`, if there is one.
pub fn navigate(value: &Value, path: &[String]) -> Option<Value> {
    let mut v = value;
    for seg in path {
        v = v.as_object()?.get(seg)?;
    }
    Some(v.clone())
}

fn insert_at(obj: &mut Map<String, Value>, path: &[String], value: Value) {
    let (first, rest) = path.split_first().expect("non-empty path");
    if rest.is_empty() {
        obj.insert(first.clone(), value);
        return;
    }
    let entry = obj
        .entry(first.clone())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    insert_at(entry.as_object_mut().unwrap(), rest, value);
}

fn compare(found: &Value, op: CmpOp, want: &Value) -> bool {
    use std::cmp::Ordering;
    let ord = match (found, want) {
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            );
            a.partial_cmp(&b)
        }
        (Value::String(a), Value::String(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        _ => None,
    };
    match op {
        CmpOp::Eq => found == want,
        CmpOp::Ne => found != want,
        CmpOp::Lt => ord == Some(Ordering::Less),
        CmpOp::Gt => ord == Some(Ordering::Greater),
    }
}

impl Store {
    pub fn new() -> Store {
        Store {
            nodes: BTreeMap::new(),
            revision: 0,
            now_ms: 0,
            leases: BTreeMap::new(),
            next_lease_id: 1,
            observers: BTreeMap::new(),
            ttl_index: BTreeSet::new(),
            events: VecDeque::new(),
            compacted_revision: 0,
            event_retention: DEFAULT_EVENT_RETENTION,
            armed_delays: BTreeMap::new(),
            delayed: BTreeMap::new(),
            outbox: BTreeMap::new(),
            bugs: Bugs::new(),
        }
    }

    /// Planted ([`Bug::TtlResetOnLeaderChange`]): every lease's deadline goes back to a full
    /// TTL from now (never earlier than it was). Called by the agent for a new leader's first
    /// entry, so it happens at the same log index everywhere.
    pub fn reset_lease_deadlines(&mut self) {
        let now = self.now_ms;
        for lease in self.leases.values_mut() {
            lease.deadline_ms = lease.deadline_ms.max(now.saturating_add(lease.ttl_ms));
        }
    }

    /// The same store with `bugs` planted (its share: [`Bug::GrantWithoutLeaseCheck`]).
    pub fn with_bugs(mut self, bugs: Bugs) -> Store {
        self.bugs = bugs;
        self
    }

    /// The notifications for the callback address `url` after revision `after`, oldest
    /// first; `Err` with the revision up to which they were dropped if some are gone.
    pub fn notifications_after(&self, url: &str, after: Revision) -> Result<Vec<Event>, Revision> {
        match self.outbox.get(url) {
            Some((_, dropped)) if *dropped > after => Err(*dropped),
            Some((queue, _)) => Ok(queue
                .iter()
                .filter(|e| e.revision > after)
                .cloned()
                .collect()),
            None => Ok(Vec::new()),
        }
    }

    /// Keeps at most `n` events for watchers (at least 1).
    pub fn with_event_retention(mut self, n: usize) -> Store {
        self.event_retention = n.max(1);
        self
    }

    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// Agency time, in milliseconds since the store began.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// The stored nodes, in key order.
    pub fn nodes(&self) -> &BTreeMap<Key, Node> {
        &self.nodes
    }

    pub fn lease(&self, id: LeaseId) -> Option<&Lease> {
        self.leases.get(&id)
    }

    pub fn leases(&self) -> &BTreeMap<LeaseId, Lease> {
        &self.leases
    }

    /// The earliest agency time at which a key or lease is due to expire.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let ttl = self.ttl_index.iter().next().map(|(d, _)| *d);
        let lease = self.leases.values().map(|l| l.deadline_ms).min();
        match (ttl, lease) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether anything waits on agency time: a key with a TTL, a lease, or a lock-delay.
    /// While nothing does, the leader need not propose `Tick`s (see `AgentCore::tick`).
    pub fn waits_on_time(&self) -> bool {
        !self.ttl_index.is_empty() || !self.leases.is_empty() || !self.delayed.is_empty()
    }

    /// The URLs registered for changes of `key` or of a key related to it, sorted.
    pub fn observers_of(&self, key: &Key) -> Vec<String> {
        let mut out = BTreeSet::new();
        for (k, urls) in &self.observers {
            if k.is_related(key) {
                out.extend(urls.iter().cloned());
            }
        }
        out.into_iter().collect()
    }

    /// Events with a revision greater than `after`, oldest first.
    pub fn events_after(&self, after: Revision) -> Result<Vec<Event>, Compacted> {
        if after < self.compacted_revision {
            return Err(Compacted {
                compacted: self.compacted_revision,
                from: after,
            });
        }
        let start = self.events.partition_point(|e| e.revision <= after);
        Ok(self.events.iter().skip(start).cloned().collect())
    }

    /// The node stored exactly at `key`.
    pub fn node(&self, key: &Key) -> Option<&Node> {
        self.nodes.get(key)
    }

    fn ancestor_node(&self, key: &Key) -> Option<&Key> {
        (0..key.len()).rev().find_map(|n| {
            self.nodes
                .get_key_value(&key.segments()[..n])
                .map(|(k, _)| k)
        })
    }

    fn descendants(&self, key: &Key) -> Vec<Key> {
        self.nodes
            .range(key.clone()..)
            .take_while(|(k, _)| k.starts_with(key))
            .filter(|(k, _)| *k != key)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The subtree at `key`, if anything is stored there. The root always exists.
    pub fn view(&self, key: &Key) -> Option<Value> {
        if let Some(node) = self.nodes.get(key) {
            return Some(node.value.clone());
        }
        if let Some(anc) = self.ancestor_node(key) {
            let rest = key.strip_prefix(anc).unwrap();
            return navigate(&self.nodes[anc].value, rest);
        }
        let mut obj = Map::new();
        let mut any = false;
        for (k, node) in self
            .nodes
            .range(key.clone()..)
            .take_while(|(k, _)| k.starts_with(key))
        {
            insert_at(&mut obj, k.strip_prefix(key).unwrap(), node.value.clone());
            any = true;
        }
        if any || key.is_root() {
            Some(Value::Object(obj))
        } else {
            None
        }
    }

    /// Reads the subtree at `key` with its metadata.
    pub fn read(&self, key: &Key) -> ReadResult {
        let value = self.view(key);
        let missing_prefix = if value.is_none() {
            (1..=key.len())
                .map(|n| key.prefix(n))
                .find(|p| self.view(p).is_none())
        } else {
            None
        };
        ReadResult {
            value,
            meta: self.nodes.get(key).map(|n| n.meta),
            missing_prefix,
            revision: self.revision,
            now_ms: self.now_ms,
        }
    }

    /// Stored nodes with keys in `[start, end]`, in key order.
    pub fn range(&self, start: &Key, end: &Key) -> Vec<(Key, Node)> {
        if start > end {
            return Vec::new();
        }
        self.nodes
            .range(start.clone()..=end.clone())
            .map(|(k, n)| (k.clone(), n.clone()))
            .collect()
    }

    /// Serializes the whole store.
    pub fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("the store serializes")
    }

    /// How much a snapshot writes, in items: keys, leases, retained events and queued
    /// notifications.
    pub fn size(&self) -> usize {
        self.nodes.len()
            + self.leases.len()
            + self.events.len()
            + self.outbox.values().map(|(q, _)| q.len()).sum::<usize>()
    }

    /// Rebuilds a store from [`Store::snapshot`] bytes.
    pub fn restore(bytes: &[u8]) -> Result<Store, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    // ---- apply -------------------------------------------------------------------------

    /// Applies one log entry. Deterministic: depends only on `self` and `cmd`.
    pub fn apply(&mut self, cmd: &Command) -> Applied {
        let mut events = Vec::new();
        let outcome = match cmd {
            Command::Txn(txn) => Outcome::Txn(self.apply_txn(txn, &mut events)),
            Command::Tick { advance_ms } => {
                self.now_ms = self.now_ms.saturating_add(*advance_ms);
                self.expire(&mut events);
                Outcome::Ticked {
                    now_ms: self.now_ms,
                }
            }
            Command::LeaseGrant { ttl_ms } => {
                if *ttl_ms == 0 {
                    Outcome::Rejected(Rejection::ZeroTtl)
                } else {
                    self.revision += 1;
                    let id = self.next_lease_id;
                    self.next_lease_id += 1;
                    let deadline_ms = self.now_ms.saturating_add(*ttl_ms);
                    self.leases.insert(
                        id,
                        Lease {
                            id,
                            ttl_ms: *ttl_ms,
                            deadline_ms,
                            granted_revision: self.revision,
                            keys: BTreeSet::new(),
                        },
                    );
                    Outcome::LeaseGranted {
                        id,
                        ttl_ms: *ttl_ms,
                        deadline_ms,
                        revision: self.revision,
                    }
                }
            }
            Command::LeaseKeepAlive { id } => match self.leases.get_mut(id) {
                None => Outcome::Rejected(Rejection::LeaseNotFound(*id)),
                Some(lease) => {
                    lease.deadline_ms = lease
                        .deadline_ms
                        .max(self.now_ms.saturating_add(lease.ttl_ms));
                    Outcome::LeaseKeptAlive {
                        id: *id,
                        deadline_ms: lease.deadline_ms,
                    }
                }
            },
            Command::LeaseRevoke { id } => {
                if self.leases.contains_key(id) {
                    self.revision += 1;
                    self.end_lease(*id, Cause::LeaseRevoked(*id), &mut events);
                    Outcome::LeaseRevoked {
                        id: *id,
                        revision: self.revision,
                    }
                } else {
                    Outcome::Rejected(Rejection::LeaseNotFound(*id))
                }
            }
            Command::Observe { key, url } => Outcome::Observed {
                revision: self.revision,
                added: self
                    .observers
                    .entry(key.clone())
                    .or_default()
                    .insert(url.clone()),
            },
            Command::Unobserve { key, url } => {
                let removed = match self.observers.get_mut(key) {
                    Some(set) => {
                        let removed = set.remove(url);
                        if set.is_empty() {
                            self.observers.remove(key);
                        }
                        removed
                    }
                    None => false,
                };
                Outcome::Unobserved { removed }
            }
        };
        for e in &events {
            debug_assert_eq!(e.revision, self.revision);
            self.events.push_back(e.clone());
            for url in self.observers_of(&e.key) {
                let (queue, dropped) = self.outbox.entry(url).or_default();
                queue.push_back(e.clone());
                if queue.len() > OUTBOX_LIMIT {
                    *dropped = queue.pop_front().map_or(*dropped, |e| e.revision);
                }
            }
        }
        while self.events.len() > self.event_retention {
            let dropped = self.events.pop_front().unwrap();
            self.compacted_revision = dropped.revision;
        }
        self.check_invariants();
        Applied { outcome, events }
    }

    fn check_invariants(&self) {
        if cfg!(debug_assertions) {
            let mut prev: Option<&Key> = None;
            for k in self.nodes.keys() {
                if let Some(p) = prev {
                    assert!(!k.starts_with(p), "node {k} lies under node {p}");
                }
                prev = Some(k);
            }
        }
    }

    fn precondition_holds(&self, p: &Precondition) -> (bool, Option<Value>) {
        let key = match p {
            Precondition::LeaseAlive(id) => return (self.leases.contains_key(id), None),
            Precondition::IfEmpty(k)
            | Precondition::IfExists(k)
            | Precondition::IfEqualTo(k, _)
            | Precondition::IfIsArray(k)
            | Precondition::Compare(k, _, _)
            | Precondition::VersionEquals(k, _)
            | Precondition::LeaseEquals(k, _)
            | Precondition::CreatedAt(k, _) => k,
        };
        let found = self.view(key);
        if let Precondition::IfEmpty(k) = p {
            if let Some(&until) = self.delayed.get(k).filter(|u| **u > self.now_ms) {
                if found.is_none() {
                    return (
                        false,
                        Some(serde_json::json!({ "lock_delay_until_ms": until })),
                    );
                }
            }
        }
        let ok = match p {
            Precondition::IfEmpty(_) => found.is_none(),
            Precondition::IfExists(_) => found.is_some(),
            Precondition::IfEqualTo(_, v) => found.as_ref() == Some(v),
            Precondition::IfIsArray(_) => matches!(found, Some(Value::Array(_))),
            Precondition::Compare(_, op, v) => found.as_ref().is_some_and(|f| compare(f, *op, v)),
            Precondition::VersionEquals(k, want) => {
                self.nodes.get(k).map_or(0, |n| n.meta.version) == *want
            }
            Precondition::LeaseEquals(k, id) => {
                self.nodes.get(k).and_then(|n| n.meta.lease) == Some(*id)
            }
            Precondition::CreatedAt(k, rev) => {
                self.nodes.get(k).map(|n| n.meta.create_revision) == Some(*rev)
            }
            Precondition::LeaseAlive(_) => unreachable!(),
        };
        (ok, found)
    }

    fn validate_op(&self, op: &Op) -> Result<(), Rejection> {
        let key = match op {
            Op::Set {
                key, ttl_ms, lease, ..
            } => {
                if *ttl_ms == Some(0) {
                    return Err(Rejection::ZeroTtl);
                }
                if let LeaseBinding::Lease(id) = lease {
                    if !self.leases.contains_key(id)
                        && !self.bugs.contains(Bug::GrantWithoutLeaseCheck)
                    {
                        return Err(Rejection::LeaseNotFound(*id));
                    }
                }
                key
            }
            Op::ExtendTtl { key, ttl_ms } => {
                if *ttl_ms == 0 {
                    return Err(Rejection::ZeroTtl);
                }
                key
            }
            Op::Delete { key } | Op::Increment { key, .. } | Op::Push { key, .. } => key,
            Op::Pop { key } | Op::LockDelay { key, .. } => key,
        };
        if key.is_root() {
            return Err(Rejection::RootWrite);
        }
        Ok(())
    }

    fn apply_txn(&mut self, txn: &Txn, events: &mut Vec<Event>) -> TxnOutcome {
        for op in txn.ops.iter().chain(&txn.else_ops) {
            if let Err(r) = self.validate_op(op) {
                return TxnOutcome::Rejected(r);
            }
        }
        for (index, p) in txn.preconditions.iter().enumerate() {
            let (ok, found) = self.precondition_holds(p);
            if !ok {
                self.apply_ops(&txn.else_ops, events);
                return TxnOutcome::PreconditionFailed {
                    index,
                    precondition: p.clone(),
                    found,
                    revision: self.revision,
                };
            }
        }
        let results = self.apply_ops(&txn.ops, events);
        TxnOutcome::Committed {
            revision: self.revision,
            results,
        }
    }

    /// Operations cannot fail past validation, so a branch is applied all or nothing.
    fn apply_ops(&mut self, ops: &[Op], events: &mut Vec<Event>) -> Vec<Option<Value>> {
        let revision = self.revision + 1;
        let results = ops
            .iter()
            .map(|op| self.apply_op(op, revision, events))
            .collect();
        if !events.is_empty() {
            self.revision = revision;
        }
        results
    }

    fn apply_op(&mut self, op: &Op, rev: Revision, events: &mut Vec<Event>) -> Option<Value> {
        match op {
            Op::Set {
                key,
                value,
                ttl_ms,
                lease,
            } => {
                let expires = ttl_ms.map(|t| self.now_ms.saturating_add(t));
                self.set(key, value.clone(), expires, *lease, rev, events);
                Some(value.clone())
            }
            Op::Delete { key } => {
                self.delete(key, rev, Cause::Write, events);
                None
            }
            Op::Increment { key, delta } => {
                let old = self.view(key).and_then(|v| v.as_i64()).unwrap_or(0);
                let new = Value::from(old.saturating_add(*delta));
                self.set(key, new.clone(), None, LeaseBinding::Keep, rev, events);
                Some(new)
            }
            Op::Push { key, value } => {
                let mut arr = match self.view(key) {
                    Some(Value::Array(a)) => a,
                    _ => Vec::new(),
                };
                arr.push(value.clone());
                let new = Value::Array(arr);
                self.set(key, new.clone(), None, LeaseBinding::Keep, rev, events);
                Some(new)
            }
            Op::Pop { key } => match self.view(key) {
                Some(Value::Array(mut a)) if !a.is_empty() => {
                    let popped = a.pop();
                    self.set(key, Value::Array(a), None, LeaseBinding::Keep, rev, events);
                    popped
                }
                _ => None,
            },
            Op::LockDelay { key, delay_ms } => {
                if self.nodes.contains_key(key) {
                    self.armed_delays.insert(key.clone(), *delay_ms);
                }
                None
            }
            Op::ExtendTtl { key, ttl_ms } => {
                let want = self.now_ms.saturating_add(*ttl_ms);
                let node = self.nodes.get(key)?;
                let value = node.value.clone();
                match node.meta.expires_at_ms {
                    Some(old) if old < want => {
                        self.ttl_index.remove(&(old, key.clone()));
                        self.ttl_index.insert((want, key.clone()));
                        self.nodes.get_mut(key).unwrap().meta.expires_at_ms = Some(want);
                    }
                    _ => {}
                }
                Some(value)
            }
        }
    }

    fn remove_node(&mut self, key: &Key) -> Option<Node> {
        let node = self.nodes.remove(key)?;
        if let Some(d) = node.meta.expires_at_ms {
            self.ttl_index.remove(&(d, key.clone()));
        }
        if let Some(l) = node.meta.lease {
            if let Some(lease) = self.leases.get_mut(&l) {
                lease.keys.remove(key);
            }
        }
        Some(node)
    }

    fn insert_node(&mut self, key: Key, node: Node) {
        if let Some(d) = node.meta.expires_at_ms {
            self.ttl_index.insert((d, key.clone()));
        }
        if let Some(l) = node.meta.lease {
            if let Some(lease) = self.leases.get_mut(&l) {
                lease.keys.insert(key.clone());
            }
        }
        self.nodes.insert(key, node);
    }

    /// Splits ancestor nodes of `key` until none is left above it: an object value becomes
    /// one node per field, with the same metadata; any other value is dropped (a write below
    /// it replaces it with an object).
    fn split_ancestors(&mut self, key: &Key) {
        while let Some(anc) = self.ancestor_node(key).cloned() {
            let node = self.remove_node(&anc).unwrap();
            if let Value::Object(fields) = node.value {
                for (field, v) in fields {
                    if let Ok(child) = anc.child(&field) {
                        self.insert_node(
                            child,
                            Node {
                                value: v,
                                meta: node.meta,
                            },
                        );
                    }
                }
            }
        }
    }

    fn set(
        &mut self,
        key: &Key,
        value: Value,
        expires_at_ms: Option<u64>,
        binding: LeaseBinding,
        rev: Revision,
        events: &mut Vec<Event>,
    ) {
        let old = self.view(key);
        self.split_ancestors(key);
        for d in self.descendants(key) {
            self.remove_node(&d);
        }
        let prev = self.remove_node(key);
        let (lease, expires) = match binding {
            LeaseBinding::None => (None, expires_at_ms),
            LeaseBinding::Lease(id) => (Some(id), expires_at_ms),
            LeaseBinding::Keep => {
                let p = prev.as_ref().map(|n| n.meta);
                (
                    p.and_then(|m| m.lease),
                    expires_at_ms.or(p.and_then(|m| m.expires_at_ms)),
                )
            }
        };
        let meta = match prev {
            Some(p) => Meta {
                create_revision: p.meta.create_revision,
                mod_revision: rev,
                version: p.meta.version + 1,
                lease,
                expires_at_ms: expires,
            },
            None => Meta {
                create_revision: rev,
                mod_revision: rev,
                version: 1,
                lease,
                expires_at_ms: expires,
            },
        };
        self.insert_node(
            key.clone(),
            Node {
                value: value.clone(),
                meta,
            },
        );
        events.push(Event {
            revision: rev,
            kind: if old.is_some() {
                EventKind::Modify
            } else {
                EventKind::Create
            },
            key: key.clone(),
            old,
            new: Some(value),
            version: meta.version,
            cause: Cause::Write,
            lease: meta.lease,
        });
    }

    fn delete(&mut self, key: &Key, rev: Revision, cause: Cause, events: &mut Vec<Event>) {
        let Some(old) = self.view(key) else { return };
        self.split_ancestors(key);
        for d in self.descendants(key) {
            self.remove_node(&d);
        }
        self.remove_node(key);
        // Lock-delays armed on what was removed: started if the holder died, else disarmed.
        let armed: Vec<Key> = self
            .armed_delays
            .range(key.clone()..)
            .take_while(|(k, _)| k.starts_with(key))
            .map(|(k, _)| k.clone())
            .collect();
        for k in armed {
            let delay = self.armed_delays.remove(&k).unwrap_or(0);
            if matches!(cause, Cause::TtlExpired | Cause::LeaseExpired(_)) && delay > 0 {
                self.delayed.insert(k, self.now_ms.saturating_add(delay));
            }
        }
        events.push(Event {
            revision: rev,
            key: key.clone(),
            kind: EventKind::Delete,
            old: Some(old),
            new: None,
            version: 0,
            cause,
            lease: None,
        });
    }

    fn end_lease(&mut self, id: LeaseId, cause: Cause, events: &mut Vec<Event>) {
        let lease = self.leases.remove(&id).expect("lease exists");
        for k in &lease.keys {
            // The key may have been rebound; only delete it if it still belongs here.
            if self.nodes.get(k).and_then(|n| n.meta.lease) == Some(id) {
                self.delete(k, self.revision, cause, events);
            }
        }
    }

    /// Removes every key and lease whose deadline is at or before agency time, all at one new
    /// revision, keys first (by deadline, then key), then leases (by deadline, then id).
    fn expire(&mut self, events: &mut Vec<Event>) {
        let now = self.now_ms;
        self.delayed.retain(|_, until| *until > now);
        let due_keys: Vec<Key> = self
            .ttl_index
            .iter()
            .take_while(|(d, _)| *d <= self.now_ms)
            .map(|(_, k)| k.clone())
            .collect();
        let mut due_leases: Vec<(u64, LeaseId)> = self
            .leases
            .values()
            .filter(|l| l.deadline_ms <= self.now_ms)
            .map(|l| (l.deadline_ms, l.id))
            .collect();
        due_leases.sort();
        if due_keys.is_empty() && due_leases.is_empty() {
            return;
        }
        self.revision += 1;
        for k in due_keys {
            self.delete(&k, self.revision, Cause::TtlExpired, events);
        }
        for (_, id) in due_leases {
            self.end_lease(id, Cause::LeaseExpired(id), events);
        }
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
