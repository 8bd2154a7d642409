//! Property test: the store against a small reference model.
//!
//! Random writes (with TTLs and leases), compare-and-sets by version, deletes, ticks, lease
//! grants, keep-alives and revokes run on both; after every step the revision, every key's
//! value and metadata, and the set of live leases must agree. The model is deliberately
//! naive (flat keys, linear scans) so that it is obviously right.

use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;
use tenure::core::store::Store;
use tenure::core::*;

const KEYS: usize = 4;

#[derive(Clone, Debug)]
enum Step {
    Set {
        k: usize,
        v: i64,
        ttl: Option<u64>,
        lease: Option<usize>,
    },
    Cas {
        k: usize,
        v: i64,
        version: u64,
    },
    Delete {
        k: usize,
    },
    Tick {
        ms: u64,
    },
    Grant {
        ttl: u64,
    },
    KeepAlive {
        lease: usize,
    },
    Revoke {
        lease: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..KEYS, 0..100i64, prop::option::of(1..60u64), prop::option::of(0..4usize))
            .prop_map(|(k, v, ttl, lease)| Step::Set { k, v, ttl, lease }),
        2 => (0..KEYS, 0..100i64, 0..4u64).prop_map(|(k, v, version)| Step::Cas { k, v, version }),
        1 => (0..KEYS).prop_map(|k| Step::Delete { k }),
        4 => (0..40u64).prop_map(|ms| Step::Tick { ms }),
        1 => (1..80u64).prop_map(|ttl| Step::Grant { ttl }),
        1 => (0..4usize).prop_map(|lease| Step::KeepAlive { lease }),
        1 => (0..4usize).prop_map(|lease| Step::Revoke { lease }),
    ]
}

#[derive(Clone, Debug, PartialEq)]
struct MKey {
    value: i64,
    create: u64,
    modified: u64,
    version: u64,
    expires: Option<u64>,
    lease: Option<i64>,
}

#[derive(Default)]
struct Model {
    keys: BTreeMap<usize, MKey>,
    revision: u64,
    now: u64,
    /// id -> (ttl, deadline)
    leases: BTreeMap<i64, (u64, u64)>,
    granted: Vec<i64>,
    next_id: i64,
}

impl Model {
    fn write(&mut self, k: usize, value: i64, expires: Option<u64>, lease: Option<i64>) {
        self.revision += 1;
        let rev = self.revision;
        let e = self.keys.entry(k).or_insert(MKey {
            value,
            create: rev,
            modified: rev,
            version: 0,
            expires,
            lease,
        });
        e.value = value;
        e.modified = rev;
        e.version += 1;
        e.expires = expires;
        e.lease = lease;
    }

    fn end_lease(&mut self, id: i64) {
        self.leases.remove(&id);
        self.keys.retain(|_, v| v.lease != Some(id));
    }

    fn step(&mut self, s: &Step) {
        match *s {
            Step::Set { k, v, ttl, lease } => {
                let lease = lease.and_then(|i| self.granted.get(i).copied());
                if let Some(id) = lease {
                    if !self.leases.contains_key(&id) {
                        return; // rejected: unknown lease
                    }
                }
                self.write(k, v, ttl.map(|t| self.now + t), lease);
            }
            Step::Cas { k, v, version } => {
                let current = self.keys.get(&k).map(|m| (m.version, m.expires, m.lease));
                match current {
                    Some((ver, expires, lease)) if ver == version => {
                        self.write(k, v, expires, lease)
                    }
                    _ => {}
                }
            }
            Step::Delete { k } => {
                if self.keys.remove(&k).is_some() {
                    self.revision += 1;
                }
            }
            Step::Tick { ms } => {
                self.now += ms;
                let now = self.now;
                let due_keys = self
                    .keys
                    .values()
                    .any(|m| m.expires.is_some_and(|e| e <= now));
                let due: Vec<i64> = self
                    .leases
                    .iter()
                    .filter(|(_, (_, d))| *d <= now)
                    .map(|(id, _)| *id)
                    .collect();
                if due_keys || !due.is_empty() {
                    self.revision += 1;
                    self.keys.retain(|_, m| m.expires.is_none_or(|e| e > now));
                    for id in due {
                        self.end_lease(id);
                    }
                }
            }
            Step::Grant { ttl } => {
                self.revision += 1;
                self.next_id += 1;
                self.leases.insert(self.next_id, (ttl, self.now + ttl));
                self.granted.push(self.next_id);
            }
            Step::KeepAlive { lease } => {
                if let Some(id) = self.granted.get(lease) {
                    if let Some((ttl, deadline)) = self.leases.get_mut(id) {
                        *deadline = (*deadline).max(self.now + *ttl);
                    }
                }
            }
            Step::Revoke { lease } => {
                if let Some(&id) = self.granted.get(lease) {
                    if self.leases.contains_key(&id) {
                        self.revision += 1;
                        self.end_lease(id);
                    }
                }
            }
        }
    }
}

fn key(k: usize) -> Key {
    Key::parse(&format!("/k{k}")).unwrap()
}

fn command(s: &Step, granted: &[i64]) -> Command {
    match *s {
        Step::Set { k, v, ttl, lease } => Command::Txn(Txn::new().then(Op::Set {
            key: key(k),
            value: json!(v),
            ttl_ms: ttl,
            lease: match lease.map(|i| granted.get(i).copied()) {
                None => LeaseBinding::None,
                Some(Some(id)) => LeaseBinding::Lease(id),
                Some(None) => LeaseBinding::None,
            },
        })),
        Step::Cas { k, v, version } => Command::Txn(
            Txn::new()
                .when(Precondition::IfExists(key(k)))
                .when(Precondition::VersionEquals(key(k), version))
                .then(Op::Set {
                    key: key(k),
                    value: json!(v),
                    ttl_ms: None,
                    lease: LeaseBinding::Keep,
                }),
        ),
        Step::Delete { k } => Command::Txn(Txn::new().then(Op::Delete { key: key(k) })),
        Step::Tick { ms } => Command::Tick { advance_ms: ms },
        Step::Grant { ttl } => Command::LeaseGrant { ttl_ms: ttl },
        Step::KeepAlive { lease } => Command::LeaseKeepAlive {
            id: granted.get(lease).copied().unwrap_or(999),
        },
        Step::Revoke { lease } => Command::LeaseRevoke {
            id: granted.get(lease).copied().unwrap_or(999),
        },
    }
}

/// A `Set` naming a lease slot that was never granted falls back to no lease in both.
fn normalise(s: &Step, granted: &[i64]) -> Step {
    match s.clone() {
        Step::Set {
            k,
            v,
            ttl,
            lease: Some(i),
        } if i >= granted.len() => Step::Set {
            k,
            v,
            ttl,
            lease: None,
        },
        other => other,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn store_agrees_with_the_model(steps in prop::collection::vec(step(), 1..80)) {
        let mut store = Store::new();
        let mut model = Model::default();
        let mut last_event_rev = 0;
        for s in &steps {
            let s = normalise(s, &model.granted);
            let applied = store.apply(&command(&s, &model.granted));
            model.step(&s);
            prop_assert_eq!(store.revision(), model.revision, "revision after {:?}", s);
            prop_assert_eq!(store.now_ms(), model.now);
            for e in &applied.events {
                prop_assert!(e.revision >= last_event_rev, "events in order");
                prop_assert_eq!(e.revision, store.revision());
                last_event_rev = e.revision;
            }
            for k in 0..KEYS {
                let node = store.node(&key(k));
                let want = model.keys.get(&k);
                match (node, want) {
                    (None, None) => {}
                    (Some(n), Some(m)) => {
                        prop_assert_eq!(&n.value, &json!(m.value), "value of k{} after {:?}", k, s);
                        prop_assert_eq!(n.meta.create_revision, m.create);
                        prop_assert_eq!(n.meta.mod_revision, m.modified);
                        prop_assert_eq!(n.meta.version, m.version);
                        prop_assert_eq!(n.meta.expires_at_ms, m.expires);
                        prop_assert_eq!(n.meta.lease, m.lease);
                    }
                    (n, m) => prop_assert!(false, "k{} store {:?} model {:?} after {:?}", k, n, m, s),
                }
            }
            let live: Vec<i64> = store.leases().keys().copied().collect();
            let want: Vec<i64> = model.leases.keys().copied().collect();
            prop_assert_eq!(live, want);
        }
        // Every change is in the event log, in revision order, with no duplicate.
        let events = store.events_after(0).unwrap();
        prop_assert!(events.windows(2).all(|w| w[0].revision <= w[1].revision));
        // A snapshot restores to an identical store.
        prop_assert_eq!(Store::restore(&store.snapshot()).unwrap(), store);
    }
}
