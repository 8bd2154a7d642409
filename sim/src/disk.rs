//! `SimDisk`: a node's disk with crash semantics madsim's `fs` lacks.
//!
//! Each file has a *written* view (what the node reads back while it runs) and a *synced*
//! layer (what survives a crash). A crash keeps the synced layer plus, if the file was only
//! appended to since the last sync, a prefix of the unsynced tail of the crash's choosing: the
//! whole tail, none of it, or part of it, which can tear the last record. Writes that were
//! not appends (a truncation) are lost unless synced.
//!
//! Records are framed `[length: u32 LE][crc32 of payload: u32 LE][payload]`, so reading back
//! stops at the first short or corrupt frame and reports where: a torn record is detected,
//! never returned.

use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct File {
    written: Vec<u8>,
    synced: Vec<u8>,
}

/// What reading a record file found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Records {
    /// Complete, intact records, in order, with the byte offset each starts at.
    pub records: Vec<(u64, Vec<u8>)>,
    /// Where an incomplete or corrupt frame begins, if the file does not end cleanly.
    pub torn_at: Option<u64>,
}

/// A simulated disk: named files, written and synced layers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimDisk {
    files: BTreeMap<String, File>,
}

const HEADER: usize = 8;

impl SimDisk {
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    /// Appends one framed record; returns the byte offset it starts at.
    pub fn append_record(&mut self, file: &str, payload: &[u8]) -> u64 {
        let f = self.files.entry(file.to_string()).or_default();
        let at = f.written.len() as u64;
        let len = u32::try_from(payload.len()).expect("a record is under 4 GiB");
        f.written.extend_from_slice(&len.to_le_bytes());
        f.written
            .extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        f.written.extend_from_slice(payload);
        at
    }

    /// Replaces the file's content (not an append: lost on a crash unless synced).
    pub fn write_all(&mut self, file: &str, bytes: &[u8]) {
        self.files.entry(file.to_string()).or_default().written = bytes.to_vec();
    }

    /// Cuts the written view to `len` bytes.
    pub fn truncate(&mut self, file: &str, len: u64) {
        if let Some(f) = self.files.get_mut(file) {
            f.written.truncate(len as usize);
        }
    }

    /// Makes everything written to `file` survive crashes.
    pub fn sync(&mut self, file: &str) {
        if let Some(f) = self.files.get_mut(file) {
            f.synced = f.written.clone();
        }
    }

    /// Syncs every file.
    pub fn sync_all(&mut self) {
        for f in self.files.values_mut() {
            f.synced = f.written.clone();
        }
    }

    /// The written view of `file` (empty if it does not exist).
    pub fn read(&self, file: &str) -> &[u8] {
        self.files.get(file).map_or(&[], |f| &f.written)
    }

    /// Bytes written to `file` but not yet synced, if the file was only appended to.
    pub fn unsynced_tail(&self, file: &str) -> Option<usize> {
        let f = self.files.get(file)?;
        f.written
            .starts_with(&f.synced)
            .then(|| f.written.len() - f.synced.len())
    }

    /// Crashes the disk. For each file that was only appended to since its last sync,
    /// `keep(file, unsynced_len)` says how many bytes of the unsynced tail survive (clamped);
    /// other files revert to their synced layer.
    pub fn crash(&mut self, mut keep: impl FnMut(&str, usize) -> usize) {
        for (name, f) in self.files.iter_mut() {
            if f.written.starts_with(&f.synced) {
                let tail = f.written.len() - f.synced.len();
                let kept = keep(name, tail).min(tail);
                f.written.truncate(f.synced.len() + kept);
            } else {
                f.written = f.synced.clone();
            }
            f.synced = f.written.clone();
        }
    }

    /// Reads the framed records of `file` up to the first bad frame.
    pub fn read_records(&self, file: &str) -> Records {
        let data = self.read(file);
        let mut records = Vec::new();
        let mut at = 0usize;
        while at < data.len() {
            if data.len() - at < HEADER {
                return Records {
                    records,
                    torn_at: Some(at as u64),
                };
            }
            let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(data[at + 4..at + 8].try_into().unwrap());
            let end = at + HEADER + len;
            if end > data.len() || crc32fast::hash(&data[at + HEADER..end]) != crc {
                return Records {
                    records,
                    torn_at: Some(at as u64),
                };
            }
            records.push((at as u64, data[at + HEADER..end].to_vec()));
            at = end;
        }
        Records {
            records,
            torn_at: None,
        }
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
}
