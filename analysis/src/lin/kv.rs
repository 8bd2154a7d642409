//! The key-value model: get, put, append, delete, cas, get_range and the system's expire
//! over a map of keys (etcd's and porcupine's key-value histories), with its reading from raw
//! calls. Its state keeps one key without touching the heap: a part of a key-value history is
//! mostly one key, and the search remembers a state for every configuration it explores.

use super::input::{key_of, opt_val, pair_of, text_of, FromRaw, RawOp};
use super::models::{fresh_val, show, val, Val};
use super::{Footprint, Model};
use serde_json::Value;
use std::sync::Arc;

/// A key-value map: get, put, append (string concatenation), delete, cas, get_range, and the
/// system's expire. A key never written (or deleted) reads as `initial`: `None` (no value,
/// as etcd and tenure answer) or a value (porcupine's key-value histories read missing keys
/// as the empty string).
#[derive(Clone, Debug, Default)]
pub struct Kv {
    pub initial: Option<Val>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum KvOp {
    Get {
        key: Val,
    },
    Put {
        key: Val,
        value: Val,
    },
    Append {
        key: Val,
        value: String,
    },
    Delete {
        key: Val,
    },
    Cas {
        key: Val,
        old: Val,
        new: Val,
    },
    /// Every key in `[from, to)`, in order.
    GetRange {
        from: String,
        to: String,
    },
    Expire {
        key: Val,
    },
    /// hmetcd's transaction, at one instant: `if value(key) cmp value { then } else
    /// { otherwise }`, each branch writing at most one key; the output says whether the
    /// comparison held. Strings compare byte-wise (other values as their JSON text for `=`
    /// and `!=`); a missing key fails every comparison. hmetcd's `tas` is `=` with `then`
    /// on the same key.
    Txn {
        key: Val,
        cmp: Cmp,
        value: Val,
        then: Option<(Val, Val)>,
        otherwise: Option<(Val, Val)>,
    },
}

/// A transaction's comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Gt,
}

impl Cmp {
    fn parse(s: &str) -> Option<Cmp> {
        match s {
            "=" | "==" => Some(Cmp::Eq),
            "!=" => Some(Cmp::Ne),
            "<" => Some(Cmp::Lt),
            ">" => Some(Cmp::Gt),
            _ => None,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Cmp::Eq => "=",
            Cmp::Ne => "!=",
            Cmp::Lt => "<",
            Cmp::Gt => ">",
        }
    }

    /// Whether `found cmp wanted` holds (`found` missing: never).
    fn holds(self, found: Option<&Val>, wanted: &Val) -> bool {
        let Some(found) = found else { return false };
        match self {
            Cmp::Eq => found == wanted,
            Cmp::Ne => found != wanted,
            Cmp::Lt => as_text(found) < as_text(wanted),
            Cmp::Gt => as_text(found) > as_text(wanted),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum KvOut {
    Value(Option<Val>),
    Range(Vec<(String, Val)>),
    Done,
    /// Whether a transaction's comparison held.
    Held(bool),
}

/// The string an append extends: a JSON string's contents, or the value's text.
fn as_text(v: &Val) -> String {
    match serde_json::from_str::<Value>(v) {
        Ok(Value::String(s)) => s,
        _ => v.to_string(),
    }
}

/// `text` appended to the value `old` (JSON text), as JSON text. A JSON string is extended
/// in place, without decoding it (the search appends on every step of a key-value history).
fn appended(old: Option<&Val>, text: &str) -> Val {
    let tail = serde_json::to_string(text).expect("strings serialize");
    match old {
        Some(o) if o.len() >= 2 && o.starts_with('"') && o.ends_with('"') => {
            let mut s = String::with_capacity(o.len() + tail.len() - 2);
            s.push_str(&o[..o.len() - 1]);
            s.push_str(&tail[1..]);
            Arc::from(s)
        }
        Some(o) => {
            let mut t = as_text(o);
            t.push_str(text);
            fresh_val(&Value::String(t))
        }
        None => Arc::from(tail),
    }
}

/// A key-value map as the search keeps it: its entries sorted by key, none with one entry
/// or none at all on the heap (a part of a key-value history is mostly one key, and every
/// configuration the search remembers holds a state).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum KvState {
    #[default]
    Empty,
    One(Val, Val),
    /// Two or more, sorted by key.
    Many(Vec<(Val, Val)>),
}

impl KvState {
    pub fn get(&self, key: &str) -> Option<&Val> {
        match self {
            KvState::Empty => None,
            KvState::One(k, v) => (&**k == key).then_some(v),
            KvState::Many(all) => all
                .binary_search_by(|(k, _)| (**k).cmp(key))
                .ok()
                .map(|i| &all[i].1),
        }
    }

    fn entries(&self) -> Vec<(Val, Val)> {
        match self {
            KvState::Empty => Vec::new(),
            KvState::One(k, v) => vec![(k.clone(), v.clone())],
            KvState::Many(all) => all.clone(),
        }
    }

    fn from_entries(mut all: Vec<(Val, Val)>) -> KvState {
        match all.len() {
            0 => KvState::Empty,
            1 => {
                let (k, v) = all.pop().expect("one entry");
                KvState::One(k, v)
            }
            _ => KvState::Many(all),
        }
    }

    /// `key` set to `value` (`None`: removed).
    pub fn with(&self, key: &Val, value: Option<Val>) -> KvState {
        match (self, value) {
            (KvState::Empty, Some(v)) => KvState::One(key.clone(), v),
            (KvState::Empty, None) => KvState::Empty,
            (KvState::One(k, _), Some(v)) if k == key => KvState::One(k.clone(), v),
            (KvState::One(k, _), None) if k == key => KvState::Empty,
            (KvState::One(..), None) => self.clone(),
            (s, value) => {
                let mut all = s.entries();
                match (all.binary_search_by(|(k, _)| k.cmp(key)), value) {
                    (Ok(i), Some(v)) => all[i].1 = v,
                    (Ok(i), None) => {
                        all.remove(i);
                    }
                    (Err(i), Some(v)) => all.insert(i, (key.clone(), v)),
                    (Err(_), None) => {}
                }
                KvState::from_entries(all)
            }
        }
    }

    /// The entries with keys in `[from, to)`, in order.
    fn range(&self, from: &str, to: &str) -> Vec<(String, Val)> {
        self.entries()
            .into_iter()
            .filter(|(k, _)| &**k >= from && &**k < to)
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }
}

impl Kv {
    /// What `key` reads as in `s`.
    fn read<'a>(&'a self, s: &'a KvState, key: &str) -> Option<&'a Val> {
        s.get(key).or(self.initial.as_ref())
    }
}

impl Model for Kv {
    type State = KvState;
    type Input = KvOp;
    type Output = KvOut;

    fn name(&self) -> &'static str {
        "kv"
    }
    fn init(&self) -> Self::State {
        KvState::Empty
    }
    fn step(&self, s: &Self::State, i: &KvOp, o: Option<&KvOut>) -> Option<Self::State> {
        match i {
            KvOp::Get { key } => match o {
                Some(KvOut::Value(v)) => (self.read(s, key) == v.as_ref()).then(|| s.clone()),
                Some(_) => None,
                None => Some(s.clone()),
            },
            KvOp::GetRange { from, to } => match o {
                Some(KvOut::Range(r)) => (s.range(from, to) == *r).then(|| s.clone()),
                Some(_) => None,
                None => Some(s.clone()),
            },
            KvOp::Put { key, value } => Some(s.with(key, Some(value.clone()))),
            KvOp::Append { key, value } => {
                Some(s.with(key, Some(appended(self.read(s, key), value))))
            }
            KvOp::Delete { key } | KvOp::Expire { key } => Some(s.with(key, None)),
            KvOp::Cas { key, old, new } => {
                let ok = self.read(s, key) == Some(old);
                match (ok, o) {
                    (true, _) => Some(s.with(key, Some(new.clone()))),
                    (false, None) => Some(s.clone()),
                    (false, Some(_)) => None,
                }
            }
            KvOp::Txn {
                key,
                cmp,
                value,
                then,
                otherwise,
            } => {
                let held = cmp.holds(self.read(s, key), value);
                if let Some(out) = o {
                    if *out != KvOut::Held(held) {
                        return None;
                    }
                }
                Some(match if held { then } else { otherwise } {
                    Some((k, v)) => s.with(k, Some(v.clone())),
                    None => s.clone(),
                })
            }
        }
    }
    fn footprint(&self, i: &KvOp) -> Footprint {
        match (self.key(i), i) {
            (Some(key), _) => Footprint::Keys(vec![key.to_string()]),
            (None, KvOp::GetRange { from, to }) => Footprint::Range {
                from: from.clone(),
                to: to.clone(),
            },
            // Every key it compares or may write, in one part.
            (
                None,
                KvOp::Txn {
                    key,
                    then,
                    otherwise,
                    ..
                },
            ) => {
                let mut keys: Vec<String> = std::iter::once(key)
                    .chain(then.iter().map(|(k, _)| k))
                    .chain(otherwise.iter().map(|(k, _)| k))
                    .map(|k| k.to_string())
                    .collect();
                keys.sort();
                keys.dedup();
                Footprint::Keys(keys)
            }
            (None, _) => Footprint::All,
        }
    }
    fn key<'a>(&self, i: &'a KvOp) -> Option<&'a str> {
        match i {
            KvOp::Get { key }
            | KvOp::Put { key, .. }
            | KvOp::Append { key, .. }
            | KvOp::Delete { key }
            | KvOp::Cas { key, .. }
            | KvOp::Expire { key } => Some(key),
            KvOp::GetRange { .. } | KvOp::Txn { .. } => None,
        }
    }
    fn describe(&self, i: &KvOp, o: Option<&KvOut>) -> String {
        let out = match o {
            Some(KvOut::Value(v)) => show(v),
            Some(KvOut::Range(r)) => format!(
                "{{{}}}",
                r.iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(KvOut::Done) => "ok".into(),
            Some(KvOut::Held(h)) => h.to_string(),
            None => "?".into(),
        };
        match i {
            KvOp::Get { key } => format!("get {key} -> {out}"),
            KvOp::GetRange { from, to } => format!(
                "get_range [{}, {}) -> {out}",
                from.escape_debug(),
                to.escape_debug()
            ),
            KvOp::Put { key, value } => format!("put {key} {value}"),
            KvOp::Append { key, value } => format!("append {key} {value:?}"),
            KvOp::Delete { key } => format!("delete {key}"),
            KvOp::Cas { key, old, new } => format!("cas {key} {old} -> {new}"),
            KvOp::Expire { key } => format!("expire {key}"),
            KvOp::Txn {
                key,
                cmp,
                value,
                then,
                otherwise,
            } => {
                let branch = |b: &Option<(Val, Val)>| match b {
                    Some((k, v)) => format!("{k} = {v}"),
                    None => "nothing".into(),
                };
                format!(
                    "txn if {key} {} {value} then {} else {} -> {out}",
                    cmp.text(),
                    branch(then),
                    branch(otherwise)
                )
            }
        }
    }
    fn describe_state(&self, s: &Self::State) -> String {
        format!(
            "{{{}}}",
            s.entries()
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

impl FromRaw for Kv {
    fn from_raw(&self, r: &RawOp) -> Result<Option<(KvOp, Option<KvOut>)>, String> {
        let key: Val = std::sync::Arc::from(key_of(r));
        Ok(Some(match r.f.as_str() {
            // A watch returns the value a change left, at an instant during the call.
            "get" | "read" | "watch" => (KvOp::Get { key }, Some(KvOut::Value(opt_val(&r.output)))),
            "put" | "write" => (
                KvOp::Put {
                    key,
                    value: val(&r.input),
                },
                Some(KvOut::Done),
            ),
            "append" => (
                KvOp::Append {
                    key,
                    value: text_of(&r.input),
                },
                Some(KvOut::Done),
            ),
            "delete" => (KvOp::Delete { key }, Some(KvOut::Done)),
            "expire" => (KvOp::Expire { key }, Some(KvOut::Done)),
            "cas" => {
                let (old, new) = pair_of(&r.input)?;
                (KvOp::Cas { key, old, new }, Some(KvOut::Done))
            }
            "txn" | "tas" => {
                let op = txn_of(&r.f, key, &r.input)?;
                let out = match &r.output {
                    Value::Bool(b) => Some(KvOut::Held(*b)),
                    Value::Null => None,
                    other => {
                        return Err(format!(
                            "a transaction returns true or false, found {other}"
                        ))
                    }
                };
                (op, out)
            }
            "get_range" | "range" => {
                let (from, to) = match &r.input {
                    Value::Array(a) if a.len() == 2 => (text_of(&a[0]), text_of(&a[1])),
                    Value::Object(m) => match (m.get("from"), m.get("to")) {
                        (Some(a), Some(b)) => (text_of(a), text_of(b)),
                        _ => return Err("needs {\"from\", \"to\"}".into()),
                    },
                    other => return Err(format!("needs [from to], found {other}")),
                };
                let out = match &r.output {
                    Value::Null => Vec::new(),
                    Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), val(v))).collect(),
                    Value::Array(a) => a
                        .iter()
                        .map(|p| match p.as_array().map(Vec::as_slice) {
                            Some([k, v]) => Ok((text_of(k), val(v))),
                            _ => Err(format!("a range result needs [key value] pairs, found {p}")),
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                    other => {
                        return Err(format!(
                            "a range result must be a map or pairs, found {other}"
                        ))
                    }
                };
                let mut out = out;
                out.sort();
                (KvOp::GetRange { from, to }, Some(KvOut::Range(out)))
            }
            _ => return Ok(None),
        }))
    }
}

/// A transaction from its input: `{"op", "value", "then": [key, value] | null, "else": ...}`
/// on the call's key, or a `tas`'s `{"test", "set"}`.
fn txn_of(f: &str, key: Val, input: &Value) -> Result<KvOp, String> {
    let field = |name: &str| {
        input
            .get(name)
            .ok_or_else(|| format!("a {f} needs {name:?}, found {input}"))
    };
    if f == "tas" {
        return Ok(KvOp::Txn {
            cmp: Cmp::Eq,
            value: val(field("test")?),
            then: Some((key.clone(), val(field("set")?))),
            otherwise: None,
            key,
        });
    }
    let cmp = field("op")?
        .as_str()
        .and_then(Cmp::parse)
        .ok_or_else(|| format!("a txn's op is one of =, !=, <, >; found {input}"))?;
    let branch = |name: &str| -> Result<Option<(Val, Val)>, String> {
        match input.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) if a.len() == 2 => {
                Ok(Some((std::sync::Arc::from(text_of(&a[0])), val(&a[1]))))
            }
            Some(other) => Err(format!(
                "a txn's {name:?} is [key, value] or null, found {other}"
            )),
        }
    };
    Ok(KvOp::Txn {
        cmp,
        value: val(field("value")?),
        then: branch("then")?,
        otherwise: branch("else")?,
        key,
    })
}
