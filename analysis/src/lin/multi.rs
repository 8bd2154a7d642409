//! Knossos's multi-register: registers by key, read and written together in transactions.
//! A call is `:f :txn` with a list of micro-operations, `[[:read :x nil] [:write :y 2]]`;
//! its completion repeats the list with the values read filled in. A transaction takes effect
//! at one instant: its reads see the registers as the writes before it left them (and as its
//! own earlier writes left them). Every register starts at `initial` (`None`: no value, nil).

use super::input::{FromRaw, Outcome, RawOp};
use super::models::{val, Val};
use super::{Footprint, Model};
use serde_json::Value;
use std::collections::BTreeMap;

/// The multi-register model.
#[derive(Clone, Debug, Default)]
pub struct MultiRegister {
    pub initial: Option<Val>,
}

/// One micro-operation of a transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum Micro {
    /// A read of `key`, and what it returned when known.
    Read {
        key: String,
        value: Option<Val>,
    },
    Write {
        key: String,
        value: Val,
    },
}

impl Micro {
    fn key(&self) -> &str {
        match self {
            Micro::Read { key, .. } | Micro::Write { key, .. } => key,
        }
    }
}

/// The registers a transaction history has written, by key (sorted, so equal states are
/// equal values).
pub type MultiState = BTreeMap<String, Val>;

impl MultiRegister {
    fn read<'a>(&'a self, s: &'a MultiState, key: &str) -> Option<&'a Val> {
        s.get(key).or(self.initial.as_ref())
    }
}

impl Model for MultiRegister {
    type State = MultiState;
    /// The transaction as completed when known, else as called (reads without values).
    type Input = Vec<Micro>;
    type Output = ();

    fn name(&self) -> &'static str {
        "multi_register"
    }
    fn init(&self) -> MultiState {
        MultiState::new()
    }
    fn step(&self, s: &MultiState, txn: &Vec<Micro>, _: Option<&()>) -> Option<MultiState> {
        let mut next = s.clone();
        for m in txn {
            match m {
                Micro::Read {
                    key,
                    value: Some(v),
                } => {
                    if self.read(&next, key) != Some(v) {
                        return None;
                    }
                }
                Micro::Read { value: None, .. } => {}
                Micro::Write { key, value } => {
                    next.insert(key.clone(), value.clone());
                }
            }
        }
        Some(next)
    }
    fn footprint(&self, txn: &Vec<Micro>) -> Footprint {
        let mut keys: Vec<String> = txn.iter().map(|m| m.key().to_string()).collect();
        keys.sort();
        keys.dedup();
        Footprint::Keys(keys)
    }
    fn describe(&self, txn: &Vec<Micro>, _: Option<&()>) -> String {
        let parts: Vec<String> = txn
            .iter()
            .map(|m| match m {
                Micro::Read { key, value } => {
                    format!("read {key} -> {}", value.as_deref().unwrap_or("?"))
                }
                Micro::Write { key, value } => format!("write {key} {value}"),
            })
            .collect();
        format!("txn [{}]", parts.join(", "))
    }
    fn describe_state(&self, s: &MultiState) -> String {
        let parts: Vec<String> = s.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        format!("{{{}}}", parts.join(", "))
    }
}

/// `[f k v]` as a micro-operation; a read's value counts only when `known`.
fn micro(v: &Value, known: bool) -> Result<Micro, String> {
    let Some([f, k, value]) = v.as_array().map(Vec::as_slice) else {
        return Err(format!("a micro-operation is [f key value], found {v}"));
    };
    let key = match k {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match f.as_str() {
        Some("read" | "r") => Ok(Micro::Read {
            key,
            value: (known && !value.is_null()).then(|| val(value)),
        }),
        Some("write" | "w") => Ok(Micro::Write {
            key,
            value: val(value),
        }),
        _ => Err(format!("a micro-operation is :read or :write, found {f}")),
    }
}

impl FromRaw for MultiRegister {
    fn from_raw(&self, r: &RawOp) -> Result<Option<(Vec<Micro>, Option<()>)>, String> {
        if r.f != "txn" {
            return Ok(None);
        }
        let known = r.outcome == Outcome::Ok && !r.output.is_null();
        let list = if known { &r.output } else { &r.input };
        let Some(items) = list.as_array() else {
            return Err(format!(
                "a transaction is a list of micro-operations, found {list}"
            ));
        };
        let txn = items
            .iter()
            .map(|m| micro(m, known))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some((txn, known.then_some(()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(key: &str, v: Option<i64>) -> Micro {
        Micro::Read {
            key: key.into(),
            value: v.map(|v| val(&Value::from(v))),
        }
    }

    fn write(key: &str, v: i64) -> Micro {
        Micro::Write {
            key: key.into(),
            value: val(&Value::from(v)),
        }
    }

    #[test]
    fn transactions_read_what_the_writes_before_them_left() {
        let m = MultiRegister {
            initial: Some(val(&Value::from(0))),
        };
        let s = m.init();
        assert!(m.step(&s, &vec![read("x", Some(0))], Some(&())).is_some());
        assert!(m.step(&s, &vec![read("x", Some(1))], Some(&())).is_none());
        let s = m
            .step(&s, &vec![write("x", 1), read("x", Some(1))], Some(&()))
            .unwrap();
        assert!(m
            .step(&s, &vec![read("x", Some(1)), read("y", Some(0))], Some(&()))
            .is_some());
        assert_eq!(m.describe_state(&s), "{x: 1}");
    }
}
