//! The sequential models a history can be checked against. Values are kept as canonical JSON
//! text (`3`, `"a"`, `[1,2]`), so any JSON value can be stored and compared.
//!
//! | model      | operations                                                          |
//! |------------|---------------------------------------------------------------------|
//! | `register` | read, write, cas(old, new); per key when the history has keys       |
//! | `kv`       | get, put, append (string concatenation), delete, cas, get_range, expire |
//! | `mutex`    | acquire, release (by the calling process), expire; per key          |
//! | `agency`   | transactions: preconditions, then writes, else other writes; read; expire |
//! | `storage`  | create, read (value and version), cas_by_version, delete, expire, wait_for_version_change |
//!
//! `expire` is an operation the system performs (a TTL or lease ran out): it removes the key.

pub use super::kv::{Kv, KvOp, KvOut, KvState};
pub use super::storage::{Storage, StorageOp, StorageOut, StorageState};
use super::{Footprint, Model, Operation};
use serde_json::Value;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;

/// A JSON value as canonical text.
pub type Val = Arc<str>;

/// `v` as canonical JSON text (object keys sorted, as serde_json's map keeps them), shared:
/// equal values read from one history are one allocation, so the search compares them by
/// pointer (`Arc`'s equality looks at the pointer first) instead of byte by byte.
pub fn val(v: &Value) -> Val {
    thread_local! {
        static SEEN: std::cell::RefCell<rustc_hash::FxHashMap<String, Val>> =
            std::cell::RefCell::new(Default::default());
    }
    /// Distinct values kept per thread; past it the table starts again (values stay valid).
    const KEPT: usize = 1 << 20;
    let text = v.to_string();
    SEEN.with(|seen| {
        let mut seen = seen.borrow_mut();
        if let Some(v) = seen.get(&text) {
            return v.clone();
        }
        if seen.len() >= KEPT {
            seen.clear();
        }
        let v: Val = Arc::from(text.as_str());
        seen.insert(text, v.clone());
        v
    })
}

/// `v` as JSON text, not shared: for values the search makes as it goes.
pub(super) fn fresh_val(v: &Value) -> Val {
    Arc::from(v.to_string())
}

pub(super) fn show(v: &Option<Val>) -> String {
    v.as_deref().unwrap_or("nil").to_string()
}

// ---------------------------------------------------------------------------------------------

/// A register per key (one register when operations carry no key): read, write, cas. Each
/// starts at `initial` (`None`: no value, Jepsen's `nil`).
#[derive(Clone, Debug, Default)]
pub struct Register {
    pub initial: Option<Val>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RegisterOp {
    Read { key: String },
    Write { key: String, value: Val },
    Cas { key: String, old: Val, new: Val },
}

#[derive(Clone, Debug, PartialEq)]
pub enum RegisterOut {
    /// What a read returned (`None`: no value).
    Read(Option<Val>),
    /// A write or a successful cas.
    Done,
}

impl Model for Register {
    type State = Option<Val>;
    type Input = RegisterOp;
    type Output = RegisterOut;

    fn name(&self) -> &'static str {
        "register"
    }
    fn init(&self) -> Option<Val> {
        self.initial.clone()
    }
    fn step(
        &self,
        s: &Option<Val>,
        i: &RegisterOp,
        o: Option<&RegisterOut>,
    ) -> Option<Option<Val>> {
        match (i, o) {
            (RegisterOp::Read { .. }, Some(RegisterOut::Read(v))) => (v == s).then(|| s.clone()),
            (RegisterOp::Read { .. }, _) => Some(s.clone()),
            (RegisterOp::Write { value, .. }, _) => Some(Some(value.clone())),
            (RegisterOp::Cas { old, new, .. }, Some(_)) => {
                (s.as_ref() == Some(old)).then(|| Some(new.clone()))
            }
            // Unknown outcome: it takes effect if it can, else it did nothing.
            (RegisterOp::Cas { old, new, .. }, None) => Some(if s.as_ref() == Some(old) {
                Some(new.clone())
            } else {
                s.clone()
            }),
        }
    }
    fn footprint(&self, i: &RegisterOp) -> Footprint {
        let (RegisterOp::Read { key }
        | RegisterOp::Write { key, .. }
        | RegisterOp::Cas { key, .. }) = i;
        Footprint::Keys(vec![key.clone()])
    }
    fn key<'a>(&self, i: &'a RegisterOp) -> Option<&'a str> {
        let (RegisterOp::Read { key }
        | RegisterOp::Write { key, .. }
        | RegisterOp::Cas { key, .. }) = i;
        Some(key)
    }
    fn describe(&self, i: &RegisterOp, o: Option<&RegisterOut>) -> String {
        let on = |key: &str| {
            if key.is_empty() {
                String::new()
            } else {
                format!(" {key}")
            }
        };
        match (i, o) {
            (RegisterOp::Read { key }, Some(RegisterOut::Read(v))) => {
                format!("read{} -> {}", on(key), show(v))
            }
            (RegisterOp::Read { key }, _) => format!("read{} -> ?", on(key)),
            (RegisterOp::Write { key, value }, _) => format!("write{} {value}", on(key)),
            (RegisterOp::Cas { key, old, new }, _) => format!("cas{} {old} -> {new}", on(key)),
        }
    }
    fn describe_state(&self, s: &Option<Val>) -> String {
        show(s)
    }
    /// An unknown write or cas whose value no read returned and no cas expected changes
    /// nothing anyone saw: in any linearization with it, drop it (and move any unknown cas it
    /// enabled to the end) and the rest still fits.
    fn redundant(&self, ops: &[Operation<RegisterOp, RegisterOut>]) -> Vec<bool> {
        let mut observed: rustc_hash::FxHashSet<(&str, &str)> = Default::default();
        for o in ops {
            match (&o.input, &o.output) {
                (RegisterOp::Read { key }, Some(RegisterOut::Read(Some(v)))) => {
                    observed.insert((key, v));
                }
                (RegisterOp::Cas { key, old, .. }, _) => {
                    observed.insert((key, old));
                }
                _ => {}
            }
        }
        ops.iter()
            .map(|o| {
                o.output.is_none()
                    && match &o.input {
                        RegisterOp::Write { key, value: v }
                        | RegisterOp::Cas { key, new: v, .. } => {
                            !observed.contains(&(key.as_str(), &**v))
                        }
                        RegisterOp::Read { .. } => true,
                    }
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------

/// A mutex per key: acquire and release by a holder (the calling process), and the system's
/// expire (the holder's TTL or lease ran out).
#[derive(Clone, Copy, Debug, Default)]
pub struct Mutex;

#[derive(Clone, Debug, PartialEq)]
pub enum MutexOp {
    Acquire {
        key: String,
        holder: String,
    },
    Release {
        key: String,
        holder: String,
    },
    /// Releases if `holder` holds it, else does nothing (hmetcd's `dist_unlock`).
    ReleaseIfHeld {
        key: String,
        holder: String,
    },
    Expire {
        key: String,
    },
}

impl Model for Mutex {
    type State = Option<String>;
    type Input = MutexOp;
    type Output = ();

    fn name(&self) -> &'static str {
        "mutex"
    }
    fn init(&self) -> Option<String> {
        None
    }
    fn step(&self, s: &Option<String>, i: &MutexOp, o: Option<&()>) -> Option<Option<String>> {
        let (ok, next) = match i {
            MutexOp::Acquire { holder, .. } => (s.is_none(), Some(holder.clone())),
            MutexOp::Release { holder, .. } => (s.as_ref() == Some(holder), None),
            MutexOp::ReleaseIfHeld { holder, .. } => (
                true,
                if s.as_ref() == Some(holder) {
                    None
                } else {
                    s.clone()
                },
            ),
            MutexOp::Expire { .. } => (true, None),
        };
        match (ok, o) {
            (true, _) => Some(next),
            (false, None) => Some(s.clone()),
            (false, Some(_)) => None,
        }
    }
    fn footprint(&self, i: &MutexOp) -> Footprint {
        let (MutexOp::Acquire { key, .. }
        | MutexOp::Release { key, .. }
        | MutexOp::ReleaseIfHeld { key, .. }
        | MutexOp::Expire { key }) = i;
        Footprint::Keys(vec![key.clone()])
    }
    /// An acquire with an unknown outcome only matters if its holder later releases the lock
    /// and is told it succeeded: had it taken effect it would only have kept others out. So
    /// without such a release it may be taken as never having happened (a locker cut off from
    /// the agency retries its acquire again and again, and each unknown one would otherwise
    /// double the search).
    fn redundant(&self, ops: &[Operation<MutexOp, ()>]) -> Vec<bool> {
        // Per (key, holder): the latest call of a release known to have succeeded.
        let mut released: HashMap<(&str, &str), u64> = HashMap::new();
        for o in ops {
            if let (MutexOp::Release { key, holder }, Some(())) = (&o.input, &o.output) {
                let last = released.entry((key, holder)).or_insert(o.call);
                *last = (*last).max(o.call);
            }
        }
        ops.iter()
            .map(|o| match (&o.input, &o.output) {
                (MutexOp::Acquire { key, holder }, None) => released
                    .get(&(key.as_str(), holder.as_str()))
                    .is_none_or(|last| *last < o.call),
                _ => false,
            })
            .collect()
    }
    fn describe(&self, i: &MutexOp, _: Option<&()>) -> String {
        match i {
            MutexOp::Acquire { key, holder } => format!("acquire {key} by {holder}"),
            MutexOp::Release { key, holder } => format!("release {key} by {holder}"),
            MutexOp::ReleaseIfHeld { key, holder } => {
                format!("release {key} if held by {holder}")
            }
            MutexOp::Expire { key } => format!("expire {key}"),
        }
    }
    fn describe_state(&self, s: &Option<String>) -> String {
        match s {
            Some(h) => format!("held by {h}"),
            None => "free".into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// A lease per key (a Juju lease or a service's leadership): claims by a holder (the calling
/// process) that are granted a fencing token or denied, token checks, waits for vacancy, and
/// the system's expire. What it checks is S3, honest answers: a denied claim saw another
/// holder, a passed check saw the holder, a granted claim found the lease free or held by the
/// claimant under the same token, a wait returned on a vacant lease.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lease;

#[derive(Clone, Debug, PartialEq)]
pub enum LeaseOp {
    /// Acquire, or extend when the claimant holds it.
    Claim {
        key: String,
        holder: String,
    },
    /// Does `holder` hold it?
    Check {
        key: String,
        holder: String,
    },
    /// Returns once nobody holds it.
    WaitVacant {
        key: String,
    },
    Expire {
        key: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum LeaseOut {
    Granted(u64),
    Denied,
    Held(bool),
    Vacant,
    Done,
}

/// The holder and its grant's token (`None` while only an unknown claim can have granted it).
pub type LeaseState = Option<(String, Option<u64>)>;

impl Model for Lease {
    type State = LeaseState;
    type Input = LeaseOp;
    type Output = LeaseOut;

    fn name(&self) -> &'static str {
        "lease"
    }
    fn init(&self) -> LeaseState {
        None
    }
    fn step(&self, s: &LeaseState, i: &LeaseOp, o: Option<&LeaseOut>) -> Option<LeaseState> {
        let held_by = |h: &str| matches!(s, Some((x, _)) if x == h);
        match (i, o) {
            (LeaseOp::Claim { holder, .. }, None) => Some(match s {
                None => Some((holder.clone(), None)),
                _ => s.clone(),
            }),
            (LeaseOp::Claim { holder, .. }, Some(LeaseOut::Granted(t))) => match s {
                None => Some(Some((holder.clone(), Some(*t)))),
                Some((h, tok)) if h == holder && tok.is_none_or(|x| x == *t) => {
                    Some(Some((h.clone(), Some(*t))))
                }
                _ => None,
            },
            (LeaseOp::Claim { holder, .. }, Some(LeaseOut::Denied)) => {
                (s.is_some() && !held_by(holder)).then(|| s.clone())
            }
            (LeaseOp::Check { .. }, None) => Some(s.clone()),
            (LeaseOp::Check { holder, .. }, Some(LeaseOut::Held(b))) => {
                (held_by(holder) == *b).then(|| s.clone())
            }
            (LeaseOp::WaitVacant { .. }, None) => Some(s.clone()),
            (LeaseOp::WaitVacant { .. }, Some(LeaseOut::Vacant)) => s.is_none().then_some(None),
            (LeaseOp::Expire { .. }, _) => Some(None),
            _ => None,
        }
    }
    fn footprint(&self, i: &LeaseOp) -> Footprint {
        let (LeaseOp::Claim { key, .. }
        | LeaseOp::Check { key, .. }
        | LeaseOp::WaitVacant { key }
        | LeaseOp::Expire { key }) = i;
        Footprint::Keys(vec![key.clone()])
    }
    /// A check or a wait with an unknown outcome changes nothing and was told nothing.
    ///
    /// A claim by `p` with an unknown outcome can only have made the lease held by `p`. That
    /// matters only to an answer that needs a holder and may come after it: a denial, a
    /// passed check, or a grant to `p`. Without any such answer returning after the claim was
    /// called, take any linearization with it and drop it (and, while the lease would have
    /// been held only through such claims, the unknown claims that found it held and did
    /// nothing): every answer in between needed the lease vacant or was indifferent, so the
    /// rest still fits. A holder cut off from the agency retries its claim again and again,
    /// and each unknown one would otherwise double the search.
    fn redundant(&self, ops: &[Operation<LeaseOp, LeaseOut>]) -> Vec<bool> {
        // Per key: the latest return of a denial or a passed check; per (key, holder): of a
        // grant to that holder.
        let mut needs_holder: HashMap<&str, u64> = HashMap::new();
        let mut granted: HashMap<(&str, &str), u64> = HashMap::new();
        for o in ops {
            let Some(ret) = o.ret else { continue };
            match (&o.input, &o.output) {
                (LeaseOp::Claim { key, .. }, Some(LeaseOut::Denied))
                | (LeaseOp::Check { key, .. }, Some(LeaseOut::Held(true))) => {
                    let last = needs_holder.entry(key).or_insert(ret);
                    *last = (*last).max(ret);
                }
                (LeaseOp::Claim { key, holder }, Some(LeaseOut::Granted(_))) => {
                    let last = granted.entry((key, holder)).or_insert(ret);
                    *last = (*last).max(ret);
                }
                _ => {}
            }
        }
        ops.iter()
            .map(|o| match (&o.input, &o.output) {
                (LeaseOp::Check { .. } | LeaseOp::WaitVacant { .. }, None) => true,
                (LeaseOp::Claim { key, holder }, None) => {
                    needs_holder
                        .get(key.as_str())
                        .is_none_or(|last| *last < o.call)
                        && granted
                            .get(&(key.as_str(), holder.as_str()))
                            .is_none_or(|last| *last < o.call)
                }
                _ => false,
            })
            .collect()
    }
    fn describe(&self, i: &LeaseOp, o: Option<&LeaseOut>) -> String {
        let out = match o {
            None => "?".to_string(),
            Some(LeaseOut::Granted(t)) => format!("granted token {t}"),
            Some(LeaseOut::Denied) => "denied".into(),
            Some(LeaseOut::Held(true)) => "held".into(),
            Some(LeaseOut::Held(false)) => "not held".into(),
            Some(LeaseOut::Vacant) => "vacant".into(),
            Some(LeaseOut::Done) => "done".into(),
        };
        match i {
            LeaseOp::Claim { key, holder } => format!("claim {key} by {holder} -> {out}"),
            LeaseOp::Check { key, holder } => format!("check {key} held by {holder} -> {out}"),
            LeaseOp::WaitVacant { key } => format!("wait until {key} is vacant -> {out}"),
            LeaseOp::Expire { key } => format!("expire {key}"),
        }
    }
    fn describe_state(&self, s: &LeaseState) -> String {
        match s {
            Some((h, Some(t))) => format!("held by {h} (token {t})"),
            Some((h, None)) => format!("held by {h} (token unknown)"),
            None => "vacant".into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// The agency's transactions over a flat key space: every precondition holds, then the writes
/// apply, else the `otherwise` writes do; all at once. Keys carry versions (1 on creation, +1 on
/// every write, gone with the key) for `version` preconditions.
#[derive(Clone, Copy, Debug, Default)]
pub struct Agency;

/// A precondition of a transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    Empty(String),
    Exists(String),
    Equal(String, Val),
    /// `value_at(key) op value`; numbers as numbers, strings byte-wise; a missing key or
    /// different kinds make it false.
    Compare(String, CmpOp, Val),
    /// The key's version (0: missing).
    Version(String, u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Gt,
}

/// A write of a transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    Set(String, Val),
    Delete(String),
    /// Adds to the number at the key (missing or not an integer: 0).
    Increment(String, i64),
    /// Appends to the array at the key (missing or not an array: a new array).
    Push(String, Val),
    /// Drops the last element of the array at the key.
    Pop(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum AgencyOp {
    Txn {
        conds: Vec<Cond>,
        then: Vec<Write>,
        otherwise: Vec<Write>,
    },
    Read {
        key: String,
    },
    Expire {
        key: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum AgencyOut {
    /// A transaction: whether its preconditions held (`None`: not recorded).
    Txn(Option<bool>),
    Read(Option<Val>),
}

fn cmp_vals(a: &Val, op: CmpOp, b: &Val) -> bool {
    let (Ok(a), Ok(b)) = (
        serde_json::from_str::<Value>(a),
        serde_json::from_str::<Value>(b),
    ) else {
        return false;
    };
    let ord = match (&a, &b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .zip(y.as_f64())
            .and_then(|(x, y)| x.partial_cmp(&y)),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ if op == CmpOp::Eq || op == CmpOp::Ne => return (a == b) == (op == CmpOp::Eq),
        _ => None,
    };
    match (ord, op) {
        (Some(o), CmpOp::Eq) => o.is_eq(),
        (Some(o), CmpOp::Ne) => o.is_ne(),
        (Some(o), CmpOp::Lt) => o.is_lt(),
        (Some(o), CmpOp::Gt) => o.is_gt(),
        (None, _) => false,
    }
}

type Versioned = BTreeMap<String, (Val, u64)>;

fn holds(s: &Versioned, c: &Cond) -> bool {
    match c {
        Cond::Empty(k) => !s.contains_key(k),
        Cond::Exists(k) => s.contains_key(k),
        Cond::Equal(k, v) => s.get(k).is_some_and(|(x, _)| x == v),
        Cond::Compare(k, op, v) => s.get(k).is_some_and(|(x, _)| cmp_vals(x, *op, v)),
        Cond::Version(k, n) => s.get(k).map_or(0, |(_, v)| *v) == *n,
    }
}

fn put(s: &mut Versioned, k: &str, v: Val) {
    let version = s.get(k).map_or(0, |(_, n)| *n) + 1;
    s.insert(k.to_string(), (v, version));
}

fn apply(s: &mut Versioned, w: &Write) {
    match w {
        Write::Set(k, v) => put(s, k, v.clone()),
        Write::Delete(k) => {
            s.remove(k);
        }
        Write::Increment(k, d) => {
            let n = s
                .get(k)
                .and_then(|(v, _)| v.parse::<i64>().ok())
                .unwrap_or(0);
            put(s, k, fresh_val(&Value::from(n.wrapping_add(*d))));
        }
        Write::Push(k, v) => {
            let mut arr = match s.get(k).map(|(x, _)| serde_json::from_str::<Value>(x)) {
                Some(Ok(Value::Array(a))) => a,
                _ => Vec::new(),
            };
            arr.push(serde_json::from_str(v).unwrap_or(Value::Null));
            put(s, k, fresh_val(&Value::Array(arr)));
        }
        Write::Pop(k) => {
            if let Some(Ok(Value::Array(mut a))) =
                s.get(k).map(|(x, _)| serde_json::from_str::<Value>(x))
            {
                a.pop();
                put(s, k, fresh_val(&Value::Array(a)));
            }
        }
    }
}

fn write_key(w: &Write) -> &str {
    match w {
        Write::Set(k, _)
        | Write::Delete(k)
        | Write::Increment(k, _)
        | Write::Push(k, _)
        | Write::Pop(k) => k,
    }
}

fn cond_key(c: &Cond) -> &str {
    match c {
        Cond::Empty(k)
        | Cond::Exists(k)
        | Cond::Equal(k, _)
        | Cond::Compare(k, _, _)
        | Cond::Version(k, _) => k,
    }
}

impl Model for Agency {
    type State = Versioned;
    type Input = AgencyOp;
    type Output = AgencyOut;

    fn name(&self) -> &'static str {
        "agency"
    }
    fn init(&self) -> Versioned {
        BTreeMap::new()
    }
    fn step(&self, s: &Versioned, i: &AgencyOp, o: Option<&AgencyOut>) -> Option<Versioned> {
        match i {
            AgencyOp::Read { key } => match o {
                Some(AgencyOut::Read(v)) => {
                    (s.get(key).map(|(x, _)| x) == v.as_ref()).then(|| s.clone())
                }
                Some(_) => None,
                None => Some(s.clone()),
            },
            AgencyOp::Expire { key } => {
                let mut s = s.clone();
                s.remove(key);
                Some(s)
            }
            AgencyOp::Txn {
                conds,
                then,
                otherwise,
            } => {
                let ok = conds.iter().all(|c| holds(s, c));
                if let Some(AgencyOut::Txn(Some(said))) = o {
                    if *said != ok {
                        return None;
                    }
                } else if let Some(AgencyOut::Read(_)) = o {
                    return None;
                }
                let mut s = s.clone();
                for w in if ok { then } else { otherwise } {
                    apply(&mut s, w);
                }
                Some(s)
            }
        }
    }
    fn footprint(&self, i: &AgencyOp) -> Footprint {
        match i {
            AgencyOp::Read { key } | AgencyOp::Expire { key } => Footprint::Keys(vec![key.clone()]),
            AgencyOp::Txn {
                conds,
                then,
                otherwise,
            } => {
                let mut keys: Vec<String> = conds
                    .iter()
                    .map(cond_key)
                    .chain(then.iter().chain(otherwise).map(write_key))
                    .map(str::to_string)
                    .collect();
                keys.sort();
                keys.dedup();
                Footprint::Keys(keys)
            }
        }
    }
    fn describe(&self, i: &AgencyOp, o: Option<&AgencyOut>) -> String {
        match i {
            AgencyOp::Read { key } => match o {
                Some(AgencyOut::Read(v)) => format!("read {key} -> {}", show(v)),
                _ => format!("read {key} -> ?"),
            },
            AgencyOp::Expire { key } => format!("expire {key}"),
            AgencyOp::Txn {
                conds,
                then,
                otherwise,
            } => {
                let outcome = match o {
                    Some(AgencyOut::Txn(Some(true))) => " -> then",
                    Some(AgencyOut::Txn(Some(false))) => " -> otherwise",
                    _ => "",
                };
                format!("txn if {conds:?} then {then:?} else {otherwise:?}{outcome}")
            }
        }
    }
    fn describe_state(&self, s: &Versioned) -> String {
        format!(
            "{{{}}}",
            s.iter()
                .map(|(k, (v, n))| format!("{k}: {v} (v{n})"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}
