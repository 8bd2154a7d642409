//! The on-disk formats an agent persists in, shared by the simulated disk and the real one:
//! CRC-framed log records and the snapshot file.
//!
//! A record is framed `[length: u32 LE][crc32 of payload: u32 LE][payload]`. Reading back
//! stops at the first frame that does not check and says where: at the end of the file that
//! is a *torn tail* (a write cut short by a crash: it was never synced, so never
//! acknowledged, and is dropped); a bad frame with intact data after it is *corruption*, which
//! a real agent refuses to start on rather than guess.

use crate::raft::Snapshot;

/// The bytes before a record's payload.
pub const HEADER: usize = 8;

/// `payload` framed as a record.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    let len = u32::try_from(payload.len()).expect("a record is under 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// What reading a record file found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Records {
    /// Complete, intact records, in order, with the byte offset each starts at.
    pub records: Vec<(u64, Vec<u8>)>,
    /// Where an incomplete or corrupt frame begins, if the file does not end cleanly.
    pub torn_at: Option<u64>,
    /// Whether that frame is followed by more data than it claims (so not a torn tail: a
    /// record in the middle does not check).
    pub corrupt: bool,
}

/// The framed records of `data` up to the first bad frame.
pub fn read(data: &[u8]) -> Records {
    let mut records = Vec::new();
    let mut at = 0usize;
    while at < data.len() {
        let stop = |corrupt| Records {
            records: records.clone(),
            torn_at: Some(at as u64),
            corrupt,
        };
        if data.len() - at < HEADER {
            return stop(false);
        }
        let len = u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(data[at + 4..at + 8].try_into().expect("4 bytes"));
        let end = at.saturating_add(HEADER).saturating_add(len);
        if end > data.len() {
            return stop(false);
        }
        if crc32fast::hash(&data[at + HEADER..end]) != crc {
            return stop(end < data.len());
        }
        records.push((at as u64, data[at + HEADER..end].to_vec()));
        at = end;
    }
    Records {
        records,
        torn_at: None,
        corrupt: false,
    }
}

/// A snapshot as its file holds it: index and term (8 bytes each, little-endian), then the
/// store's encoding as it is (in JSON, the bytes would become an array of numbers, four times
/// the size and most of the cost of a snapshot).
pub fn encode_snapshot(s: &Snapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + s.data.len());
    out.extend_from_slice(&s.index.to_le_bytes());
    out.extend_from_slice(&s.term.to_le_bytes());
    out.extend_from_slice(&s.data);
    out
}

/// The snapshot in a file written by [`encode_snapshot`]; `None` for an empty (or short) file.
pub fn decode_snapshot(bytes: &[u8]) -> Option<Snapshot> {
    let index = u64::from_le_bytes(bytes.get(0..8)?.try_into().ok()?);
    let term = u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?);
    Some(Snapshot {
        index,
        term,
        data: bytes[16..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_tail_is_told_from_corruption_in_the_middle() {
        let mut data = frame(b"one");
        data.extend(frame(b"two"));
        let r = read(&data);
        assert_eq!(r.records.len(), 2);
        assert_eq!(r.torn_at, None);
        // Cut in the last record: a torn tail.
        let torn = read(&data[..data.len() - 1]);
        assert_eq!(
            (torn.records.len(), torn.torn_at, torn.corrupt),
            (1, Some(11), false)
        );
        // A flipped byte in the last record: torn too (nothing after it).
        let mut last = data.clone();
        *last.last_mut().unwrap() ^= 1;
        assert!(!read(&last).corrupt);
        // A flipped byte in the first record, the second intact after it: corruption.
        let mut mid = data.clone();
        mid[HEADER] ^= 1;
        let r = read(&mid);
        assert_eq!((r.records.len(), r.torn_at, r.corrupt), (0, Some(0), true));
        // A length that runs past the end: torn.
        let mut long = frame(b"x");
        long[0] = 200;
        assert!(!read(&long).corrupt);
    }

    #[test]
    fn snapshots_round_trip() {
        let s = Snapshot {
            index: 7,
            term: 3,
            data: b"{}".to_vec(),
        };
        assert_eq!(decode_snapshot(&encode_snapshot(&s)), Some(s));
        assert_eq!(decode_snapshot(b"short"), None);
    }
}
