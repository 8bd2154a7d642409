//! Histories from files: tenure's own JSON lines, Jepsen's operations (EDN, one map per line or
//! one vector of maps; or the same maps as JSON lines), and the `jepsen.util` log lines of
//! Jepsen's etcd tests. Each becomes a list of [`HistoryEvent`]s, then of [`RawOp`]s (a call
//! paired with its completion), then of a model's [`Operation`]s.
//!
//! Semantics (Jepsen's): `invoke` starts a call; `ok` says it took effect with the value given;
//! `fail` says it surely did not take effect (it is left out); `info`, or no completion by the
//! end, says it may take effect at any later time or never. Records of the `nemesis` process are
//! skipped. In tenure's own histories an `expire` record becomes an `expire` operation of the
//! system at that point.

use super::edn::{Edn, Reader};
use super::models::*;
use super::{Model, Operation};
use crate::history::{Completion, Event, Record};
use serde_json::Value;
use std::collections::BTreeMap;

/// What a history line says of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Invoke,
    Ok,
    Fail,
    Info,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        match s {
            "invoke" => Some(Kind::Invoke),
            "ok" => Some(Kind::Ok),
            "fail" => Some(Kind::Fail),
            "info" => Some(Kind::Info),
            _ => None,
        }
    }
}

/// One line of a history, in any format.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryEvent {
    pub process: String,
    pub kind: Kind,
    pub f: String,
    pub key: Option<String>,
    pub value: Value,
    /// Line in the file (1-based).
    pub line: usize,
}

/// A bad history: what is wrong, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

fn bad<T>(line: usize, message: impl Into<String>) -> Result<T, InputError> {
    Err(InputError {
        line,
        message: message.into(),
    })
}

/// The formats a history file can be in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON lines: tenure's records (`t_us`, `node`, `type`), or Jepsen operations as JSON.
    Jsonl,
    /// Jepsen's EDN: one map per line, or one vector of maps.
    Edn,
    /// `INFO  jepsen.util - PROCESS  :TYPE  :F  VALUE` lines.
    JepsenLog,
}

/// `text` without a leading byte-order mark (editors on some systems write one).
pub fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Guesses the format from the first thing in the text: JSON objects (a line each, or one
/// array of them) start `{"` or `[{"`; EDN maps start `{:`.
pub fn detect(text: &str) -> Format {
    let text = without_bom(text);
    let mut lead = text
        .trim_start()
        .strip_prefix('[')
        .map(str::trim_start)
        .and_then(|t| t.strip_prefix('{'))
        .map(str::trim_start);
    if lead.take().is_some_and(|t| t.starts_with('"')) {
        return Format::Jsonl;
    }
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with(';'))
        .unwrap_or("");
    if first.starts_with("INFO") || first.contains("jepsen.util") {
        Format::JepsenLog
    } else if first.starts_with("{\"") || first == "{" || first.starts_with("{ \"") {
        Format::Jsonl
    } else {
        Format::Edn
    }
}

/// Reads a history in the given format.
pub fn read(text: &str, format: Format) -> Result<Vec<HistoryEvent>, InputError> {
    let text = without_bom(text);
    match format {
        Format::Jsonl => read_jsonl(text),
        Format::Edn => read_edn(text),
        Format::JepsenLog => read_jepsen_log(text),
    }
}

fn read_jsonl(text: &str) -> Result<Vec<HistoryEvent>, InputError> {
    let mut out = Vec::new();
    let mut expired: BTreeMap<(String, u64), ()> = BTreeMap::new();
    // One JSON array of operations: its elements count as lines 1, 2, ...
    let values: Box<dyn Iterator<Item = (usize, Result<Value, InputError>)>> =
        if text.trim_start().starts_with('[') {
            let all: Vec<Value> = serde_json::from_str(text)
                .or_else(|e| bad(e.line(), format!("not a JSON array of operations: {e}")))?;
            Box::new(all.into_iter().enumerate().map(|(i, v)| (i + 1, Ok(v))))
        } else {
            Box::new(
                text.lines()
                    .enumerate()
                    .filter(|(_, l)| !l.trim().is_empty())
                    .map(|(i, l)| {
                        let v = serde_json::from_str(l)
                            .or_else(|e| bad(i + 1, format!("not JSON: {e}")));
                        (i + 1, v)
                    }),
            )
        };
    for (line, v) in values {
        let v = v?;
        if v.get("t_us").is_some() {
            let r: Record = serde_json::from_value(v)
                .or_else(|e| bad(line, format!("not a tenure history record: {e}")))?;
            tenure_record(&r, line, &mut expired, &mut out);
        } else {
            match jepsen_op(&v, line)? {
                Some(e) => out.push(e),
                None => continue,
            }
        }
    }
    Ok(out)
}

/// The events of a tenure history (record `i` is line `i + 1`).
pub fn from_history(h: &crate::history::History) -> Vec<HistoryEvent> {
    let mut out = Vec::new();
    let mut expired = BTreeMap::new();
    // A process killed or restarted becomes a new one, as Jepsen numbers a crashed process
    // anew: its pending call stays pending for good (`p`, then `p.1`, `p.2`, ...).
    let mut incarnations: BTreeMap<u64, u32> = BTreeMap::new();
    // A completion belongs to the incarnation that made the call.
    let mut caller: BTreeMap<u64, String> = BTreeMap::new();
    for (i, r) in h.records.iter().enumerate() {
        if let Event::Fault {
            fault:
                crate::faults::Fault::KillProcess { process }
                | crate::faults::Fault::RestartProcess { process },
        } = &r.event
        {
            *incarnations.entry(*process).or_default() += 1;
        }
        let before = out.len();
        tenure_record(r, i + 1, &mut expired, &mut out);
        match (out.get_mut(before), &r.event) {
            (Some(e), Event::Invoke { process, op, .. }) => {
                if let Some(n) = incarnations.get(process) {
                    e.process = format!("{process}.{n}");
                }
                caller.insert(*op, e.process.clone());
            }
            (Some(e), Event::Complete { op, .. }) => {
                if let Some(p) = caller.remove(op) {
                    e.process = p;
                }
            }
            _ => {}
        }
    }
    out
}

/// The events of one record of tenure's own history.
fn tenure_record(
    r: &Record,
    line: usize,
    expired: &mut BTreeMap<(String, u64), ()>,
    out: &mut Vec<HistoryEvent>,
) {
    match &r.event {
        Event::Invoke {
            process,
            f,
            key,
            value,
            ..
        } => out.push(HistoryEvent {
            process: process.to_string(),
            kind: Kind::Invoke,
            f: f.clone(),
            key: Some(key.clone()),
            value: value.clone(),
            line,
        }),
        Event::Complete {
            process,
            result,
            value,
            ..
        } => out.push(HistoryEvent {
            process: process.to_string(),
            kind: match result {
                Completion::Ok => Kind::Ok,
                Completion::Fail => Kind::Fail,
                Completion::Info => Kind::Info,
            },
            f: String::new(),
            key: None,
            value: value.clone(),
            line,
        }),
        // Every agent records the expiry it applies; the first is the one that counts.
        Event::Expire { key, revision, .. }
            if expired.insert((key.clone(), *revision), ()).is_none() =>
        {
            for kind in [Kind::Invoke, Kind::Ok] {
                out.push(HistoryEvent {
                    process: format!("system:{key}@{revision}"),
                    kind,
                    f: "expire".into(),
                    key: Some(key.clone()),
                    value: Value::Null,
                    line,
                });
            }
        }
        _ => {}
    }
}

/// A Jepsen operation (as JSON); `None` for records to skip (the nemesis).
fn jepsen_op(v: &Value, line: usize) -> Result<Option<HistoryEvent>, InputError> {
    let Some(m) = v.as_object() else {
        return bad(line, format!("expected a map of an operation, found {v}"));
    };
    let process = match m.get("process") {
        Some(Value::String(s)) if s == "nemesis" => return Ok(None),
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        Some(other) => {
            return bad(
                line,
                format!(":process must be a whole number (or :nemesis), found {other}"),
            )
        }
        None => return bad(line, "the operation has no :process"),
    };
    let kind = match m.get("type") {
        Some(Value::String(s)) => Kind::parse(s).map_or_else(
            || {
                bad(
                    line,
                    format!(":type must be invoke, ok, fail or info, found {s}"),
                )
            },
            Ok,
        )?,
        Some(other) => {
            return bad(
                line,
                format!(":type must be invoke, ok, fail or info, found {other}"),
            )
        }
        None => return bad(line, "the operation has no :type"),
    };
    let f = match m.get("f") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => return bad(line, format!(":f must be a name, found {other}")),
        None => return bad(line, "the operation has no :f"),
    };
    let key = match m.get("key") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    Ok(Some(HistoryEvent {
        process,
        kind,
        f,
        key,
        value: m.get("value").cloned().unwrap_or(Value::Null),
        line,
    }))
}

fn read_edn(text: &str) -> Result<Vec<HistoryEvent>, InputError> {
    let mut r = Reader::new(text);
    let edn_err = |e: super::edn::EdnError| InputError {
        line: e.line,
        message: e.message,
    };
    // One vector `[...]` (Jepsen's history.edn) or list `(...)` (Knossos's files) of
    // operations, or operations one after another.
    let close = r.open_seq();
    let mut out = Vec::new();
    loop {
        if let Some(c) = close {
            if r.close_seq(c) {
                if let Some(c) = r.peek_start() {
                    return bad(
                        r.line(),
                        format!("text after the history's closing bracket: '{}'", c as char),
                    );
                }
                break;
            }
        }
        let Some((form, line)) = r.next_form().map_err(edn_err)? else {
            if close.is_some() {
                return bad(r.line(), "the history's opening bracket is never closed");
            }
            break;
        };
        if !matches!(form, Edn::Map(_)) {
            return bad(
                line,
                "expected a map of an operation ({:process .. :type ..})",
            );
        }
        if let Some(e) = jepsen_op(&form.to_json(), line)? {
            out.push(e);
        }
    }
    Ok(out)
}

fn read_jepsen_log(text: &str) -> Result<Vec<HistoryEvent>, InputError> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let line = i + 1;
        if l.trim().is_empty() {
            continue;
        }
        let Some((_, rest)) = l.split_once("jepsen.util - ") else {
            return bad(
                line,
                "expected 'INFO  jepsen.util - PROCESS :TYPE :F VALUE'",
            );
        };
        let mut it = rest.split_whitespace();
        let (Some(p), Some(t), Some(f)) = (it.next(), it.next(), it.next()) else {
            return bad(
                line,
                "expected PROCESS :TYPE :F VALUE after 'jepsen.util - '",
            );
        };
        let value_text: Vec<&str> = it.collect();
        if p == ":nemesis" {
            continue;
        }
        if p.parse::<u64>().is_err() {
            return bad(line, format!("the process must be a number, found {p}"));
        }
        let kind = t.strip_prefix(':').and_then(Kind::parse).map_or_else(
            || {
                bad(
                    line,
                    format!("the type must be :invoke, :ok, :fail or :info, found {t}"),
                )
            },
            Ok,
        )?;
        let Some(f) = f.strip_prefix(':') else {
            return bad(line, format!("the function must be a keyword, found {f}"));
        };
        let value = if value_text.is_empty() {
            Value::Null
        } else {
            let joined = value_text.join(" ");
            let mut r = Reader::new(&joined);
            match r.next_form() {
                Ok(Some((v, _))) => v.to_json(),
                Ok(None) => Value::Null,
                Err(e) => return bad(line, format!("bad value: {}", e.message)),
            }
        };
        out.push(HistoryEvent {
            process: p.to_string(),
            kind,
            f: f.to_string(),
            key: None,
            value,
            line,
        });
    }
    Ok(out)
}

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// `info`, or no completion: may take effect at any time after the call, or never.
    Unknown,
}

/// A call paired with its completion (failed calls are left out).
#[derive(Clone, Debug, PartialEq)]
pub struct RawOp {
    pub process: String,
    pub f: String,
    pub key: Option<String>,
    /// Positions of the call and the completion among the events.
    pub call: u64,
    pub ret: Option<u64>,
    pub outcome: Outcome,
    /// The value given with the call, and with the completion.
    pub input: Value,
    pub output: Value,
    /// The call's line.
    pub line: usize,
}

/// Pairs calls with completions, process by process. A completion with no call pending is an
/// error, and so is a call made while the process's previous call is pending: a Jepsen process
/// makes one call at a time, and one that crashed is completed `:info` and replaced by a new
/// process number, so a second call means the history is malformed.
pub fn pair(events: &[HistoryEvent]) -> Result<(Vec<RawOp>, usize), InputError> {
    let mut pending: BTreeMap<&str, usize> = BTreeMap::new();
    let mut ops: Vec<Option<RawOp>> = Vec::new();
    let mut failed = 0;
    for (pos, e) in events.iter().enumerate() {
        match e.kind {
            Kind::Invoke => {
                if let Some(prev) = pending.insert(&e.process, ops.len()) {
                    let at = ops[prev].as_ref().map_or(0, |op| op.line);
                    return bad(
                        e.line,
                        format!(
                            "process {} invokes again while its call on line {at} is pending (a process makes one call at a time; a crashed one completes :info)",
                            e.process
                        ),
                    );
                }
                ops.push(Some(RawOp {
                    process: e.process.clone(),
                    f: e.f.clone(),
                    key: e.key.clone(),
                    call: pos as u64,
                    ret: None,
                    outcome: Outcome::Unknown,
                    input: e.value.clone(),
                    output: Value::Null,
                    line: e.line,
                }));
            }
            kind => {
                let Some(i) = pending.remove(e.process.as_str()) else {
                    return bad(
                        e.line,
                        format!(
                            "process {} completes an operation it never called",
                            e.process
                        ),
                    );
                };
                let op = ops[i].as_mut().expect("pending ops are kept");
                if !e.f.is_empty() && e.f != op.f {
                    return bad(
                        e.line,
                        format!(
                            "process {} completes :{} but its pending call (line {}) is :{}",
                            e.process, e.f, op.line, op.f
                        ),
                    );
                }
                match kind {
                    Kind::Ok => {
                        op.outcome = Outcome::Ok;
                        op.ret = Some(pos as u64);
                        op.output = e.value.clone();
                    }
                    Kind::Fail => {
                        ops[i] = None;
                        failed += 1;
                    }
                    _ => op.outcome = Outcome::Unknown,
                }
            }
        }
    }
    Ok((ops.into_iter().flatten().collect(), failed))
}

/// A model that can read its operations from raw calls.
pub trait FromRaw: Model {
    /// The operation, `Ok(None)` if its `f` is not one of the model's (skipped), or an error
    /// naming what is wrong with its values.
    #[allow(clippy::type_complexity, clippy::wrong_self_convention)]
    fn from_raw(&self, raw: &RawOp) -> Result<Option<(Self::Input, Option<Self::Output>)>, String>;
}

/// The model's operations of `raw`; also the `f`s skipped, with their counts.
#[allow(clippy::type_complexity)]
pub fn operations<M: FromRaw>(
    model: &M,
    raw: &[RawOp],
) -> Result<(Vec<Operation<M::Input, M::Output>>, BTreeMap<String, usize>), InputError> {
    let mut ops = Vec::with_capacity(raw.len());
    let mut skipped = BTreeMap::new();
    for r in raw {
        // An unknown outcome's value (an error text, or nothing) says nothing of its result.
        let unknown;
        let r = if r.outcome == Outcome::Ok {
            r
        } else {
            unknown = RawOp {
                output: Value::Null,
                ..r.clone()
            };
            &unknown
        };
        match model.from_raw(r) {
            Ok(Some((input, output))) => {
                let known = r.outcome == Outcome::Ok;
                ops.push(Operation {
                    process: r.process.clone(),
                    call: r.call,
                    ret: if known { r.ret } else { None },
                    input,
                    output: if known { output } else { None },
                    source: r.line,
                })
            }
            Ok(None) => *skipped.entry(r.f.clone()).or_insert(0) += 1,
            Err(e) => return bad(r.line, format!(":{} {e}", r.f)),
        }
    }
    Ok((ops, skipped))
}

pub(super) fn key_of(raw: &RawOp) -> String {
    raw.key.clone().unwrap_or_default()
}

pub(super) fn opt_val(v: &Value) -> Option<Val> {
    (!v.is_null()).then(|| val(v))
}

pub(super) fn pair_of(v: &Value) -> Result<(Val, Val), String> {
    match v.as_array().map(Vec::as_slice) {
        Some([a, b]) => Ok((val(a), val(b))),
        _ => Err(format!("needs [old new], found {v}")),
    }
}

impl FromRaw for Register {
    fn from_raw(&self, r: &RawOp) -> Result<Option<(RegisterOp, Option<RegisterOut>)>, String> {
        let key = key_of(r);
        Ok(Some(match r.f.as_str() {
            "read" | "get" => (
                RegisterOp::Read { key },
                Some(RegisterOut::Read(opt_val(&r.output))),
            ),
            "write" | "put" => (
                RegisterOp::Write {
                    key,
                    value: val(&r.input),
                },
                Some(RegisterOut::Done),
            ),
            "cas" => {
                let (old, new) = pair_of(&r.input)?;
                (RegisterOp::Cas { key, old, new }, Some(RegisterOut::Done))
            }
            _ => return Ok(None),
        }))
    }
}

pub(super) fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl FromRaw for Mutex {
    fn from_raw(&self, r: &RawOp) -> Result<Option<(MutexOp, Option<()>)>, String> {
        let key = key_of(r);
        let holder = r.process.clone();
        Ok(Some(match r.f.as_str() {
            "acquire" | "lock" | "dist_lock" | "dist_timed_lock" => {
                (MutexOp::Acquire { key, holder }, Some(()))
            }
            "release" | "unlock" => (MutexOp::Release { key, holder }, Some(())),
            "release_if_held" | "dist_unlock" => (MutexOp::ReleaseIfHeld { key, holder }, Some(())),
            "expire" => (MutexOp::Expire { key }, Some(())),
            _ => return Ok(None),
        }))
    }
}

impl FromRaw for Lease {
    fn from_raw(&self, r: &RawOp) -> Result<Option<(LeaseOp, Option<LeaseOut>)>, String> {
        let key = key_of(r);
        let holder = r.process.clone();
        Ok(Some(match r.f.as_str() {
            "claim" | "claim_lease" | "claim_leadership" => {
                let out = match &r.output {
                    Value::Null => None,
                    Value::String(s) if s == "denied" => Some(LeaseOut::Denied),
                    v => match v.as_u64() {
                        Some(t) => Some(LeaseOut::Granted(t)),
                        None => {
                            return Err(format!(
                                "a claim returns its token or \"denied\", found {v}"
                            ))
                        }
                    },
                };
                (LeaseOp::Claim { key, holder }, out)
            }
            "check" | "check_leadership" => {
                let out = match &r.output {
                    Value::Null => None,
                    Value::Bool(b) => Some(LeaseOut::Held(*b)),
                    v => return Err(format!("a check returns true or false, found {v}")),
                };
                (LeaseOp::Check { key, holder }, out)
            }
            "block_until_released" | "wait_until_expired" | "wait_vacant" => {
                (LeaseOp::WaitVacant { key }, Some(LeaseOut::Vacant))
            }
            "expire" => (LeaseOp::Expire { key }, Some(LeaseOut::Done)),
            _ => return Ok(None),
        }))
    }
}

fn cond_of(v: &Value) -> Result<Cond, String> {
    let a = v.as_array().map(Vec::as_slice).unwrap_or(&[]);
    let key = |k: &Value| text_of(k);
    Ok(match a {
        [k, Value::String(c)] if c == "empty" => Cond::Empty(key(k)),
        [k, Value::String(c)] if c == "exists" => Cond::Exists(key(k)),
        [k, Value::String(c), v] if c == "=" || c == "==" => Cond::Equal(key(k), val(v)),
        [k, Value::String(c), Value::Number(n)] if c == "version" => {
            Cond::Version(key(k), n.as_u64().ok_or("a version must be a whole number")?)
        }
        [k, Value::String(c), v] => {
            let op = match c.as_str() {
                "!=" => CmpOp::Ne,
                "<" => CmpOp::Lt,
                ">" => CmpOp::Gt,
                _ => return Err(format!("unknown precondition {c:?}")),
            };
            Cond::Compare(key(k), op, val(v))
        }
        _ => {
            return Err(format!(
                "a precondition is [key \"empty\"|\"exists\"] or [key \"=\"|\"!=\"|\"<\"|\">\"|\"version\" value], found {v}"
            ))
        }
    })
}

fn write_of(v: &Value) -> Result<Write, String> {
    let a = v.as_array().map(Vec::as_slice).unwrap_or(&[]);
    Ok(match a {
        [Value::String(o), k, v] if o == "set" => Write::Set(text_of(k), val(v)),
        [Value::String(o), k] if o == "delete" => Write::Delete(text_of(k)),
        [Value::String(o), k, Value::Number(d)] if o == "increment" => {
            Write::Increment(text_of(k), d.as_i64().ok_or("an increment must be a whole number")?)
        }
        [Value::String(o), k, v] if o == "push" => Write::Push(text_of(k), val(v)),
        [Value::String(o), k] if o == "pop" => Write::Pop(text_of(k)),
        _ => {
            return Err(format!(
                "a write is [\"set\" key value], [\"delete\" key], [\"increment\" key n], [\"push\" key value] or [\"pop\" key], found {v}"
            ))
        }
    })
}

fn list<T>(v: Option<&Value>, each: fn(&Value) -> Result<T, String>) -> Result<Vec<T>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().map(each).collect(),
        Some(other) => Err(format!("expected a list, found {other}")),
    }
}

impl FromRaw for Agency {
    fn from_raw(&self, r: &RawOp) -> Result<Option<(AgencyOp, Option<AgencyOut>)>, String> {
        Ok(Some(match r.f.as_str() {
            "read" | "get" => (
                AgencyOp::Read { key: key_of(r) },
                Some(AgencyOut::Read(opt_val(&r.output))),
            ),
            "expire" => (AgencyOp::Expire { key: key_of(r) }, None),
            "txn" => {
                let m = r
                    .input
                    .as_object()
                    .ok_or("needs {\"if\": [..], \"then\": [..], \"else\": [..]}")?;
                let op = AgencyOp::Txn {
                    conds: list(m.get("if"), cond_of)?,
                    then: list(m.get("then"), write_of)?,
                    otherwise: list(m.get("else"), write_of)?,
                };
                let said = match &r.output {
                    Value::Bool(b) => Some(*b),
                    Value::Object(o) => o.get("succeeded").and_then(Value::as_bool),
                    _ => None,
                };
                (op, Some(AgencyOut::Txn(said)))
            }
            _ => return Ok(None),
        }))
    }
}

impl FromRaw for Storage {
    fn from_raw(&self, r: &RawOp) -> Result<Option<(StorageOp, Option<StorageOut>)>, String> {
        let key = key_of(r);
        let version_of = |v: &Value| match v {
            Value::Number(n) => n.as_u64(),
            Value::Object(m) => m.get("version").and_then(Value::as_u64),
            _ => None,
        };
        Ok(Some(match r.f.as_str() {
            "create" => (
                StorageOp::Create {
                    key,
                    value: val(r.input.get("value").unwrap_or(&r.input)),
                },
                Some(StorageOut::Version(version_of(&r.output))),
            ),
            "wait_for_version_change" => {
                let Some(version) = version_of(&r.input) else {
                    return Err(format!("needs the version waited on, found {}", r.input));
                };
                let out = match &r.output {
                    Value::Object(m) if m.get("deleted") == Some(&Value::Bool(true)) => {
                        Some(StorageOut::Changed(None))
                    }
                    Value::Object(m) if m.get("timed_out") == Some(&Value::Bool(true)) => None,
                    Value::Null if r.outcome != Outcome::Ok => None,
                    v => match version_of(v) {
                        Some(n) => Some(StorageOut::Changed(Some(n))),
                        None => {
                            return Err(format!(
                                "a wait returns {{\"version\"}}, {{\"deleted\": true}} or {{\"timed_out\": true}}, found {v}"
                            ))
                        }
                    },
                };
                (StorageOp::WaitChange { key, version }, out)
            }
            "read" | "get" | "storage_get" => {
                let out = match &r.output {
                    Value::Null => None,
                    Value::Object(m) => {
                        match (m.get("value"), m.get("version").and_then(Value::as_u64)) {
                            (Some(v), Some(n)) => Some((val(v), n)),
                            _ => {
                                return Err(format!(
                                    "a read returns {{\"value\", \"version\"}} or nil, found {}",
                                    r.output
                                ))
                            }
                        }
                    }
                    other => {
                        return Err(format!(
                            "a read returns {{\"value\", \"version\"}} or nil, found {other}"
                        ))
                    }
                };
                (StorageOp::Read { key }, Some(StorageOut::Read(out)))
            }
            "cas_by_version" => {
                let (Some(version), Some(value)) = (
                    r.input.get("version").and_then(Value::as_u64),
                    r.input.get("value"),
                ) else {
                    return Err(format!(
                        "needs {{\"version\", \"value\"}}, found {}",
                        r.input
                    ));
                };
                (
                    StorageOp::CasByVersion {
                        key,
                        version,
                        value: val(value),
                    },
                    Some(StorageOut::Version(version_of(&r.output))),
                )
            }
            "delete" => (StorageOp::Delete { key }, Some(StorageOut::Done)),
            "expire" => (StorageOp::Expire { key }, Some(StorageOut::Done)),
            "storage_get_range" => {
                let (Some(from), Some(to)) = (
                    r.input.get("from").and_then(Value::as_str),
                    r.input.get("to").and_then(Value::as_str),
                ) else {
                    return Err(format!(
                        "a range needs {{\"from\", \"to\"}} (keys, to excluded), found {}",
                        r.input
                    ));
                };
                let out = match &r.output {
                    Value::Null => None,
                    Value::Array(records) => {
                        let mut out = Vec::with_capacity(records.len());
                        for rec in records {
                            match (
                                rec.get("key").and_then(Value::as_str),
                                rec.get("value"),
                                rec.get("version").and_then(Value::as_u64),
                            ) {
                                (Some(k), Some(v), Some(n)) => out.push((k.to_string(), val(v), n)),
                                _ => {
                                    return Err(format!(
                                        "a range returns [{{\"key\", \"value\", \"version\"}}], found {rec}"
                                    ))
                                }
                            }
                        }
                        out.sort_by(|a, b| a.0.cmp(&b.0));
                        Some(StorageOut::Range(out))
                    }
                    other => {
                        return Err(format!(
                            "a range returns [{{\"key\", \"value\", \"version\"}}], found {other}"
                        ))
                    }
                };
                (
                    StorageOp::Range {
                        from: from.to_string(),
                        to: to.to_string(),
                    },
                    out,
                )
            }
            _ => return Ok(None),
        }))
    }
}
