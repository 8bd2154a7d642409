//! The history of a run: every client operation (invoke, then ok / fail / info) and every
//! system event (role and term changes, persisted hard state, applied entries, expiries,
//! faults, messages on request), in the order they happened, stamped with true time and the
//! node's local clock. Written as JSON lines; a run's digest is the SHA-256 of those lines, so
//! the same seed and build give the same digest.
//!
//! Inside a run every actor writes through a recorder (tenure-sim's `Recorder`); checkers
//! read the finished [`History`].

use crate::faults::Fault;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tenure_core::raft::{Entry, Index, NodeId, Term};

/// One line of a history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// True (virtual) time since the run began, in microseconds.
    pub t_us: u64,
    /// The node it happened on: `agent-2`, `client-1`, `nemesis`, `runner`.
    pub node: String,
    #[serde(flatten)]
    pub event: Event,
}

impl Record {
    /// The record's JSON line (without the newline), as serde writes it. Apply records, three
    /// in four of a run's, are written directly: serde writes a flattened record through a
    /// map, field by field, at several times the cost.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        let Event::Apply {
            agent,
            index,
            term,
            hash,
        } = &self.event
        else {
            serde_json::to_writer(out, self).expect("records serialize");
            return;
        };
        let _ = write!(out, "{{\"t_us\":{},\"node\":", self.t_us);
        serde_json::to_writer(&mut *out, &self.node).expect("strings serialize");
        let _ = write!(
            out,
            ",\"type\":\"apply\",\"agent\":{agent},\"index\":{index},\"term\":{term},\"hash\":"
        );
        serde_json::to_writer(&mut *out, hash).expect("strings serialize");
        out.push(b'}');
    }
}

/// How a client operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Completion {
    /// It took effect, with the value recorded.
    Ok,
    /// It surely did not take effect.
    Fail,
    /// Unknown: it may have taken effect, at any time after its invocation, or never.
    Info,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A client calls an operation `f` (`read`, `write`, `cas`, ...) on `key`.
    Invoke {
        process: u64,
        op: u64,
        f: String,
        key: String,
        value: Value,
        local_us: u64,
    },
    /// The operation `op` returned.
    Complete {
        process: u64,
        op: u64,
        result: Completion,
        value: Value,
        local_us: u64,
    },
    /// An agent's role, term or known leader changed.
    Role {
        agent: NodeId,
        role: String,
        term: Term,
        leader: Option<NodeId>,
        /// Its last log index (with the term of that entry) at the change.
        last_index: Index,
        last_term: Term,
    },
    /// An agent synced a new term or vote to its disk.
    HardState {
        agent: NodeId,
        term: Term,
        vote: Option<NodeId>,
    },
    /// An agent (re)started from its disk with this term and vote.
    Restored {
        agent: NodeId,
        term: Term,
        vote: Option<NodeId>,
        log_len: Index,
    },
    /// An agent applied the committed entry at `index`; `hash` identifies its content.
    Apply {
        agent: NodeId,
        index: Index,
        term: Term,
        hash: String,
    },
    /// An agent replaced its log up to `index` by a snapshot: its own (compaction), or the
    /// leader's (`installed`), which it loaded.
    Snapshot {
        agent: NodeId,
        index: Index,
        term: Term,
        installed: bool,
        /// Identifies the store's state at `index` (agents compact at the same indices).
        hash: String,
    },
    /// An agent applied the expiry of `key` (TTL or lease) at agency revision `revision`.
    Expire {
        agent: NodeId,
        key: String,
        revision: u64,
    },
    /// An agent applied a write that binds `key` to `lease` at agency revision `revision`;
    /// `alive`: the lease was still granted then (S7: a grant never goes to a dead lease).
    Bound {
        agent: NodeId,
        key: String,
        revision: u64,
        lease: i64,
        alive: bool,
    },
    /// An agent applied a change of `key` (under the run's watched prefix) at `revision`,
    /// leaving it at `version` (0: deleted): what every watcher must see (S16).
    Change {
        agent: NodeId,
        key: String,
        revision: u64,
        version: u64,
    },
    /// A watcher (re)started following `key` and everything under it after revision `from`,
    /// on its `stream`: `watch` (it asks for the events after a revision) or `callback` (an
    /// observer registration whose notifications it pulls).
    WatchStart {
        process: u64,
        #[serde(default = "watch_stream")]
        stream: String,
        key: String,
        from: u64,
    },
    /// A watcher received, on `stream`, the change of `key` at `revision` (leaving it at
    /// `version`).
    Watched {
        process: u64,
        #[serde(default = "watch_stream")]
        stream: String,
        key: String,
        revision: u64,
        version: u64,
    },
    /// What a holder believes about `resource` (`lock:/locks/0`), from this record's time:
    /// it holds grant `token` until true time `until_us` (its local deadline `until_local_us`,
    /// mapped through its clock), or (`until_us: None`) it stopped believing, now.
    Belief {
        process: u64,
        resource: String,
        token: u64,
        until_local_us: Option<u64>,
        until_us: Option<u64>,
    },
    /// The fenced resource got a write from `process` carrying `token`: accepted, or rejected
    /// because it had already seen the higher token `highest`.
    Fenced {
        process: u64,
        resource: String,
        token: u64,
        accepted: bool,
        highest: u64,
        /// What the write carried, if anything (a user's ledger entry).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<Value>,
    },
    /// A user's part of the world: process `process` is the user process `name` (its
    /// operations are checked by the user's checks, not held to the built-in models).
    Part { process: u64, name: String },
    /// A user process reached its `sometimes` point `point` (coverage).
    Sometimes { process: u64, point: String },
    /// The nemesis carried out a fault.
    Fault { fault: Fault },
    /// A fault point inside the system fired (`tenure_core::buggify`; simulated runs only),
    /// injecting a delay of `delay_ms` if it injects one.
    FaultPoint {
        point: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delay_ms: Option<u64>,
    },
    /// A message left (`delivered: false`) or arrived (`delivered: true`); recorded only when
    /// the run asks for messages.
    Message {
        from: String,
        to: String,
        delivered: bool,
        summary: String,
        /// Pairs a delivery with its sending (numbered from 1 in the order sent).
        #[serde(default)]
        id: u64,
    },
    /// A check of the runner (health, liveness write, final read) and what it found.
    Check {
        name: String,
        ok: bool,
        detail: String,
    },
}

/// A finished history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub records: Vec<Record>,
}

impl History {
    /// The history as JSON lines, one record per line.
    pub fn to_jsonl(&self) -> String {
        let mut out = Vec::new();
        for r in &self.records {
            r.write_json(&mut out);
            out.push(b'\n');
        }
        String::from_utf8(out).expect("JSON is UTF-8")
    }

    /// Reads JSON lines back; an error names the line.
    pub fn from_jsonl(text: &str) -> Result<History, String> {
        let mut records = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            records.push(
                serde_json::from_str(line).map_err(|e| format!("history line {}: {e}", i + 1))?,
            );
        }
        Ok(History { records })
    }

    /// SHA-256 of the JSON lines, in hex.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        // The same bytes as `to_jsonl`, a record at a time through one buffer (hashing
        // serde's many small writes one by one cost more than the hashing itself).
        let mut line = Vec::with_capacity(256);
        for r in &self.records {
            line.clear();
            r.write_json(&mut line);
            line.push(b'\n');
            h.update(&line);
        }
        hex(&h.finalize())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A short, stable identity of an entry (FNV-1a over its JSON, the bytes of its log record),
/// for comparing what different agents applied at one index.
pub fn entry_hash(e: &Entry) -> u64 {
    let mut h = Fnv::new();
    serde_json::to_writer(&mut h, e).expect("entries serialize");
    h.0
}

/// FNV-1a of `bytes`.
pub fn bytes_fnv(bytes: &[u8]) -> u64 {
    let mut h = Fnv::new();
    h.add(bytes);
    h.0
}

/// FNV-1a of `bytes`, in hex.
pub fn bytes_hash(bytes: &[u8]) -> String {
    hash_hex(bytes_fnv(bytes))
}

/// A hash as the history writes it: 16 hex digits.
pub fn hash_hex(h: u64) -> String {
    format!("{h:016x}")
}

/// FNV-1a, fed as bytes are written (no buffer).
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn add(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= *b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl std::io::Write for Fnv {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.add(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn watch_stream() -> String {
    "watch".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenure_core::raft::Payload;

    #[test]
    fn apply_records_are_written_as_serde_writes_them() {
        let rec = |node: &str, hash: &str| Record {
            t_us: 12_345,
            node: node.into(),
            event: Event::Apply {
                agent: 3,
                index: u64::MAX,
                term: 0,
                hash: hash.into(),
            },
        };
        let other = Record {
            t_us: 1,
            node: "runner".into(),
            event: Event::Check {
                name: "health".into(),
                ok: true,
                detail: String::new(),
            },
        };
        for r in [
            rec("agent-3", "00ff"),
            rec("a \"quoted\"\n\u{e9}", "\\"),
            other,
        ] {
            let mut direct = Vec::new();
            r.write_json(&mut direct);
            assert_eq!(
                String::from_utf8(direct).unwrap(),
                serde_json::to_string(&r).unwrap()
            );
        }
    }

    #[test]
    fn an_entry_hashes_as_its_log_record_does() {
        let e = Entry {
            term: 3,
            index: 9,
            payload: Payload::Command(tenure_core::Command::Tick { advance_ms: 50 }).into(),
        };
        let json = serde_json::to_vec(&e).unwrap();
        assert_eq!(hash_hex(entry_hash(&e)), bytes_hash(&json));
        let other = Entry {
            index: 10,
            ..e.clone()
        };
        assert_ne!(entry_hash(&e), entry_hash(&other));
        assert_eq!(bytes_hash(b""), "cbf29ce484222325");
        assert_eq!(bytes_hash(b"a"), "af63dc4c8601ec8c");
    }
}
