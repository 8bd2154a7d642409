//! Versioned storage (Juju's): a record per key with a version, 1 when created, +1 on every
//! successful compare-and-set by version; delete and the system's expire remove it (a new
//! incarnation starts again at 1). `get_range` reads every record in its range at one
//! instant, so the state is a map of records; a part of a storage history is mostly one
//! record, and its state then stays off the heap ([`StorageState`]).

use super::models::Val;
use super::{Footprint, Model};

/// The storage model.
#[derive(Clone, Copy, Debug, Default)]
pub struct Storage;

#[derive(Clone, Debug, PartialEq)]
pub enum StorageOp {
    Create {
        key: String,
        value: Val,
    },
    Read {
        key: String,
    },
    CasByVersion {
        key: String,
        version: u64,
        value: Val,
    },
    Delete {
        key: String,
    },
    Expire {
        key: String,
    },
    /// `wait_for_version_change(key, version)`: returns once the record's version is another.
    WaitChange {
        key: String,
        version: u64,
    },
    /// Every record with a key in `[from, to)`, at one instant.
    Range {
        from: String,
        to: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum StorageOut {
    /// What a wait returned: the version then, or `None` if the record was gone.
    Changed(Option<u64>),
    /// A read: the value and version, or nothing.
    Read(Option<(Val, u64)>),
    /// A create or cas: the new version (`None`: not recorded).
    Version(Option<u64>),
    /// A range read: each record's key, value and version, sorted by key.
    Range(Vec<(String, Val, u64)>),
    Done,
}

/// One record: its value and version.
pub type Rec = (Val, u64);

/// The records, sorted by key; one record (or none) without touching the heap.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum StorageState {
    #[default]
    Empty,
    One(Val, Rec),
    Many(Vec<(Val, Rec)>),
}

impl StorageState {
    pub fn get(&self, key: &str) -> Option<&Rec> {
        match self {
            StorageState::Empty => None,
            StorageState::One(k, r) => (&**k == key).then_some(r),
            StorageState::Many(all) => all
                .binary_search_by(|(k, _)| (**k).cmp(key))
                .ok()
                .map(|i| &all[i].1),
        }
    }

    fn entries(&self) -> Vec<(Val, Rec)> {
        match self {
            StorageState::Empty => Vec::new(),
            StorageState::One(k, r) => vec![(k.clone(), r.clone())],
            StorageState::Many(all) => all.clone(),
        }
    }

    /// `key`'s record set to `rec` (`None`: removed).
    fn with(&self, key: &str, rec: Option<Rec>) -> StorageState {
        match (self, rec) {
            (StorageState::One(k, _), Some(r)) if &**k == key => StorageState::One(k.clone(), r),
            (StorageState::One(k, _), None) if &**k == key => StorageState::Empty,
            (StorageState::Empty, None) => StorageState::Empty,
            (StorageState::Empty, Some(r)) => StorageState::One(std::sync::Arc::from(key), r),
            (s, rec) => {
                let mut all = s.entries();
                match (all.binary_search_by(|(k, _)| (**k).cmp(key)), rec) {
                    (Ok(i), Some(r)) => all[i].1 = r,
                    (Ok(i), None) => {
                        all.remove(i);
                    }
                    (Err(i), Some(r)) => all.insert(i, (std::sync::Arc::from(key), r)),
                    (Err(_), None) => return s.clone(),
                }
                match all.len() {
                    0 => StorageState::Empty,
                    1 => {
                        let (k, r) = all.pop().expect("one entry");
                        StorageState::One(k, r)
                    }
                    _ => StorageState::Many(all),
                }
            }
        }
    }

    fn range(&self, from: &str, to: &str) -> Vec<(String, Val, u64)> {
        self.entries()
            .into_iter()
            .filter(|(k, _)| &**k >= from && &**k < to)
            .map(|(k, (v, n))| (k.to_string(), v, n))
            .collect()
    }
}

impl Model for Storage {
    type State = StorageState;
    type Input = StorageOp;
    type Output = StorageOut;

    fn name(&self) -> &'static str {
        "storage"
    }
    fn init(&self) -> StorageState {
        StorageState::Empty
    }
    fn step(
        &self,
        s: &StorageState,
        i: &StorageOp,
        o: Option<&StorageOut>,
    ) -> Option<StorageState> {
        let (key, ok, next) = match i {
            StorageOp::Read { key } => {
                return match o {
                    Some(StorageOut::Read(r)) => (r.as_ref() == s.get(key)).then(|| s.clone()),
                    Some(_) => None,
                    None => Some(s.clone()),
                }
            }
            StorageOp::Range { from, to } => {
                return match o {
                    Some(StorageOut::Range(r)) => (s.range(from, to) == *r).then(|| s.clone()),
                    Some(_) => None,
                    None => Some(s.clone()),
                }
            }
            StorageOp::WaitChange { key, version } => {
                let now = s.get(key).map(|(_, n)| *n);
                return match o {
                    Some(StorageOut::Changed(got)) => {
                        (now != Some(*version) && *got == now).then(|| s.clone())
                    }
                    Some(_) => None,
                    None => Some(s.clone()),
                };
            }
            StorageOp::Create { key, value } => {
                (key, s.get(key).is_none(), Some((value.clone(), 1)))
            }
            StorageOp::CasByVersion {
                key,
                version,
                value,
            } => (
                key,
                s.get(key).is_some_and(|(_, v)| v == version),
                Some((value.clone(), version + 1)),
            ),
            // Deleting a missing record is no error and no change.
            StorageOp::Delete { key } | StorageOp::Expire { key } => (key, true, None),
        };
        match (ok, o) {
            (true, Some(StorageOut::Version(Some(v)))) => {
                (next.as_ref().map(|(_, n)| *n) == Some(*v)).then(|| s.with(key, next))
            }
            (true, Some(StorageOut::Read(_) | StorageOut::Range(_))) => None,
            (true, _) => Some(s.with(key, next)),
            (false, None) => Some(s.clone()),
            (false, Some(_)) => None,
        }
    }
    fn footprint(&self, i: &StorageOp) -> Footprint {
        match (self.key(i), i) {
            (Some(key), _) => Footprint::Keys(vec![key.to_string()]),
            (None, StorageOp::Range { from, to }) => Footprint::Range {
                from: from.clone(),
                to: to.clone(),
            },
            (None, _) => Footprint::All,
        }
    }
    fn key<'a>(&self, i: &'a StorageOp) -> Option<&'a str> {
        match i {
            StorageOp::Create { key, .. }
            | StorageOp::Read { key }
            | StorageOp::CasByVersion { key, .. }
            | StorageOp::Delete { key }
            | StorageOp::Expire { key }
            | StorageOp::WaitChange { key, .. } => Some(key),
            StorageOp::Range { .. } => None,
        }
    }
    fn describe(&self, i: &StorageOp, o: Option<&StorageOut>) -> String {
        match i {
            StorageOp::Read { key } => match o {
                Some(StorageOut::Read(Some((v, n)))) => format!("read {key} -> {v} (v{n})"),
                Some(StorageOut::Read(None)) => format!("read {key} -> nil"),
                _ => format!("read {key} -> ?"),
            },
            StorageOp::Range { from, to } => {
                let (from, to) = (from.escape_debug(), to.escape_debug());
                match o {
                    Some(StorageOut::Range(r)) => format!(
                        "get_range [{from}, {to}) -> {{{}}}",
                        r.iter()
                            .map(|(k, v, n)| format!("{k}: {v} (v{n})"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    _ => format!("get_range [{from}, {to}) -> ?"),
                }
            }
            StorageOp::Create { key, value } => format!("create {key} {value}"),
            StorageOp::CasByVersion {
                key,
                version,
                value,
            } => {
                format!("cas_by_version {key} v{version} -> {value}")
            }
            StorageOp::Delete { key } => format!("delete {key}"),
            StorageOp::Expire { key } => format!("expire {key}"),
            StorageOp::WaitChange { key, version } => match o {
                Some(StorageOut::Changed(Some(n))) => {
                    format!("wait_for_version_change {key} from v{version} -> v{n}")
                }
                Some(StorageOut::Changed(None)) => {
                    format!("wait_for_version_change {key} from v{version} -> deleted")
                }
                _ => format!("wait_for_version_change {key} from v{version} -> ?"),
            },
        }
    }
    fn describe_state(&self, s: &StorageState) -> String {
        match s {
            StorageState::Empty => "nil".into(),
            StorageState::One(_, (v, n)) => format!("{v} (v{n})"),
            StorageState::Many(all) => format!(
                "{{{}}}",
                all.iter()
                    .map(|(k, (v, n))| format!("{k}: {v} (v{n})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}
