//! `SimDisk`: a node's disk with crash semantics madsim's `fs` lacks.
//!
//! Each file has a *written* view (what the node reads back while it runs) and a *synced*
//! layer (what survives a crash). A crash keeps the synced layer plus, if the file was only
//! appended to since the last sync, a prefix of the unsynced tail of the crash's choosing: the
//! whole tail, none of it, or part of it, which can tear the last record. Writes that were
//! not appends (a truncation) are lost unless synced.
//!
//! Records are framed as `tenure_core::records` says (`[length][crc32][payload]`), the format
//! a real agent's disk holds too, so reading back stops at the first short or corrupt frame
//! and reports where: a torn record is detected, never returned.
//!
//! A sync costs nothing in proportion to the file: while a file is only appended to, its
//! synced layer is a length (a prefix of the written view), and a copy is taken only when a
//! truncation cuts into the synced prefix or a whole rewrite replaces it.

use std::collections::BTreeMap;

#[derive(Clone, Debug)]
struct File {
    written: Vec<u8>,
    synced: Synced,
}

/// Where a file's synced layer is.
#[derive(Clone, Debug)]
enum Synced {
    /// The first `n` bytes of the written view (nothing but appends since the sync).
    Prefix(usize),
    /// Its own bytes (the written view was cut into or replaced since the sync).
    Apart(Vec<u8>),
}

impl Default for File {
    fn default() -> File {
        File {
            written: Vec::new(),
            synced: Synced::Prefix(0),
        }
    }
}

impl File {
    fn synced(&self) -> &[u8] {
        match &self.synced {
            Synced::Prefix(n) => &self.written[..*n],
            Synced::Apart(bytes) => bytes,
        }
    }

    /// Keeps the synced layer apart before the written view loses part of it.
    fn detach(&mut self) {
        if let Synced::Prefix(n) = self.synced {
            self.synced = Synced::Apart(self.written[..n].to_vec());
        }
    }

    /// The length of the unsynced tail, if the written view extends the synced layer.
    fn tail(&self) -> Option<usize> {
        match &self.synced {
            Synced::Prefix(n) => Some(self.written.len() - n),
            Synced::Apart(bytes) => self
                .written
                .starts_with(bytes)
                .then(|| self.written.len() - bytes.len()),
        }
    }

    fn sync(&mut self) {
        self.synced = Synced::Prefix(self.written.len());
    }
}

impl PartialEq for File {
    fn eq(&self, other: &File) -> bool {
        self.written == other.written && self.synced() == other.synced()
    }
}

impl Eq for File {}

pub use tenure_core::records::Records;

/// A simulated disk: named files, written and synced layers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimDisk {
    files: BTreeMap<String, File>,
}

impl SimDisk {
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    /// Appends one framed record; returns the byte offset it starts at.
    pub fn append_record(&mut self, file: &str, payload: &[u8]) -> u64 {
        let f = self.files.entry(file.to_string()).or_default();
        let at = f.written.len() as u64;
        f.written
            .extend_from_slice(&tenure_core::records::frame(payload));
        at
    }

    /// Replaces the file's content (not an append: lost on a crash unless synced).
    pub fn write_all(&mut self, file: &str, bytes: &[u8]) {
        let f = self.files.entry(file.to_string()).or_default();
        f.detach();
        f.written.clear();
        f.written.extend_from_slice(bytes);
    }

    /// Cuts the written view to `len` bytes.
    pub fn truncate(&mut self, file: &str, len: u64) {
        if let Some(f) = self.files.get_mut(file) {
            let len = len as usize;
            if matches!(f.synced, Synced::Prefix(n) if n > len) {
                f.detach();
            }
            f.written.truncate(len);
        }
    }

    /// Makes everything written to `file` survive crashes.
    pub fn sync(&mut self, file: &str) {
        if let Some(f) = self.files.get_mut(file) {
            f.sync();
        }
    }

    /// Syncs every file.
    pub fn sync_all(&mut self) {
        for f in self.files.values_mut() {
            f.sync();
        }
    }

    /// The written view of `file` (empty if it does not exist).
    pub fn read(&self, file: &str) -> &[u8] {
        self.files.get(file).map_or(&[], |f| &f.written)
    }

    /// Bytes written to `file` but not yet synced, if the file was only appended to.
    pub fn unsynced_tail(&self, file: &str) -> Option<usize> {
        self.files.get(file)?.tail()
    }

    /// Crashes the disk. For each file that was only appended to since its last sync,
    /// `keep(file, unsynced_len)` says how many bytes of the unsynced tail survive (clamped);
    /// other files revert to their synced layer.
    pub fn crash(&mut self, mut keep: impl FnMut(&str, usize) -> usize) {
        for (name, f) in self.files.iter_mut() {
            if let Some(tail) = f.tail() {
                let kept = keep(name, tail).min(tail);
                let synced = f.written.len() - tail;
                f.written.truncate(synced + kept);
            } else if let Synced::Apart(bytes) = std::mem::replace(&mut f.synced, Synced::Prefix(0))
            {
                f.written = bytes;
            }
            f.sync();
        }
    }

    /// Reads the framed records of `file` up to the first bad frame.
    pub fn read_records(&self, file: &str) -> Records {
        tenure_core::records::read(self.read(file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads(d: &SimDisk, f: &str) -> Vec<Vec<u8>> {
        d.read_records(f)
            .records
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    #[test]
    fn records_round_trip() {
        let mut d = SimDisk::new();
        d.append_record("log", b"one");
        let at = d.append_record("log", b"");
        d.append_record("log", b"three");
        assert_eq!(
            payloads(&d, "log"),
            vec![b"one".to_vec(), vec![], b"three".to_vec()]
        );
        assert_eq!(d.read_records("log").torn_at, None);
        d.truncate("log", at);
        assert_eq!(payloads(&d, "log"), vec![b"one".to_vec()]);
        assert!(d.read_records("missing").records.is_empty());
    }

    #[test]
    fn a_crash_drops_unsynced_records() {
        let mut d = SimDisk::new();
        d.append_record("log", b"a");
        d.sync("log");
        d.append_record("log", b"b");
        d.crash(|_, _| 0);
        assert_eq!(payloads(&d, "log"), vec![b"a".to_vec()]);
    }

    #[test]
    fn a_crash_can_keep_a_prefix_and_tear_the_last_record() {
        let mut d = SimDisk::new();
        d.append_record("log", b"a");
        d.sync("log");
        d.append_record("log", b"bb");
        d.append_record("log", b"cccc");
        let tail = d.unsynced_tail("log").unwrap();
        assert_eq!(tail, 10 + 12);
        // Keep the whole of "bb" and 5 bytes of "cccc"'s frame: torn.
        d.crash(|_, _| 10 + 5);
        let r = d.read_records("log");
        assert_eq!(r.records.len(), 2);
        assert_eq!(r.torn_at, Some(9 + 10));
        // A corrupted payload is detected by its CRC.
        let mut d2 = SimDisk::new();
        d2.append_record("log", b"hello");
        let mut bytes = d2.read("log").to_vec();
        bytes[9] ^= 0xff;
        d2.write_all("log", &bytes);
        assert_eq!(d2.read_records("log").torn_at, Some(0));
    }

    #[test]
    fn unsynced_truncation_is_lost_on_crash() {
        let mut d = SimDisk::new();
        d.append_record("log", b"a");
        d.append_record("log", b"b");
        d.sync("log");
        d.truncate("log", 9);
        assert_eq!(d.unsynced_tail("log"), None);
        d.crash(|_, n| n);
        assert_eq!(payloads(&d, "log").len(), 2);
        d.truncate("log", 9);
        d.sync_all();
        d.crash(|_, n| n);
        assert_eq!(payloads(&d, "log").len(), 1);
    }

    /// The disk as first written (every sync copies every file): the reference the
    /// copy-free layers must agree with, operation by operation.
    #[derive(Default)]
    struct Naive(BTreeMap<String, (Vec<u8>, Vec<u8>)>);

    #[derive(Clone, Debug)]
    enum Op {
        Append(u8, Vec<u8>),
        WriteAll(u8, Vec<u8>),
        Truncate(u8, u16),
        Sync(u8),
        SyncAll,
        Crash(u16),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let bytes = proptest::collection::vec(0u8..3, 0..6);
        prop_oneof![
            (0u8..2, bytes.clone()).prop_map(|(f, b)| Op::Append(f, b)),
            (0u8..2, bytes).prop_map(|(f, b)| Op::WriteAll(f, b)),
            (0u8..2, 0u16..40).prop_map(|(f, n)| Op::Truncate(f, n)),
            (0u8..2).prop_map(Op::Sync),
            Just(Op::SyncAll),
            (0u16..40).prop_map(Op::Crash),
        ]
    }

    proptest::proptest! {
        #[test]
        fn layers_agree_with_copying_on_every_sync(ops in proptest::collection::vec(op(), 0..40)) {
            let mut d = SimDisk::new();
            let mut n = Naive::default();
            let name = |f: u8| format!("f{f}");
            for op in ops {
                match op {
                    Op::Append(f, b) => {
                        d.append_record(&name(f), &b);
                        let w = &mut n.0.entry(name(f)).or_default().0;
                        w.extend_from_slice(&(b.len() as u32).to_le_bytes());
                        w.extend_from_slice(&crc32fast::hash(&b).to_le_bytes());
                        w.extend_from_slice(&b);
                    }
                    Op::WriteAll(f, b) => {
                        d.write_all(&name(f), &b);
                        n.0.entry(name(f)).or_default().0 = b;
                    }
                    Op::Truncate(f, len) => {
                        d.truncate(&name(f), len as u64);
                        if let Some((w, _)) = n.0.get_mut(&name(f)) {
                            w.truncate(len as usize);
                        }
                    }
                    Op::Sync(f) => {
                        d.sync(&name(f));
                        if let Some((w, s)) = n.0.get_mut(&name(f)) {
                            *s = w.clone();
                        }
                    }
                    Op::SyncAll => {
                        d.sync_all();
                        for (w, s) in n.0.values_mut() {
                            *s = w.clone();
                        }
                    }
                    Op::Crash(keep) => {
                        let mut asked = Vec::new();
                        d.crash(|f, tail| {
                            asked.push((f.to_string(), tail));
                            keep as usize
                        });
                        let mut expected = Vec::new();
                        for (f, (w, s)) in n.0.iter_mut() {
                            if w.starts_with(s) {
                                let tail = w.len() - s.len();
                                expected.push((f.clone(), tail));
                                w.truncate(s.len() + (keep as usize).min(tail));
                            } else {
                                *w = s.clone();
                            }
                            *s = w.clone();
                        }
                        proptest::prop_assert_eq!(asked, expected);
                    }
                }
                for f in 0..2 {
                    let naive = n.0.get(&name(f));
                    proptest::prop_assert_eq!(d.read(&name(f)), naive.map_or(&[][..], |(w, _)| w));
                    proptest::prop_assert_eq!(
                        d.unsynced_tail(&name(f)),
                        naive.and_then(|(w, s)| w.starts_with(s).then(|| w.len() - s.len()))
                    );
                }
            }
        }
    }
}
