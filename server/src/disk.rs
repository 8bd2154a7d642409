//! An agent's data directory: what it must not lose.
//!
//! - `tenure.json`: the format, the cluster id and the agent's id, written when the directory
//!   is made. A directory of another cluster or another agent is refused: an agent must never
//!   vote or acknowledge with someone else's log.
//! - `hardstate.json`: term, vote and commit, replaced atomically (written beside, synced,
//!   renamed, the directory synced).
//! - `snapshot.bin`: the last snapshot (core's snapshot file format), replaced atomically.
//! - `log.bin`: the log entries after the snapshot, one CRC-framed record each (core's record
//!   format, the one the simulated disk holds to), appended and synced.
//!
//! [`DataDir::persist`] returns only once everything it wrote is synced: the driver sends and
//! answers after it, so nothing acknowledged is lost by a crash at any instant. On opening, a
//! torn last record (a write a crash cut short, never acknowledged) is cut off; a record that
//! does not check with intact data after it is corruption, and opening fails naming the file
//! and the offset, deleting nothing. The directory is created private (0700).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use tenure_core::agent::AgentOutput;
use tenure_core::raft::{Entry, HardState, Index, NodeId, Snapshot};
use tenure_core::records;

const META: &str = "tenure.json";
const HARD_STATE: &str = "hardstate.json";
const SNAPSHOT: &str = "snapshot.bin";
const LOG: &str = "log.bin";
/// The data directory's format.
pub const FORMAT: u32 = 1;

/// Why a data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} belongs to cluster {found:?}, agent {found_agent}; this is cluster {cluster:?}, agent {agent}")]
    OtherCluster {
        path: PathBuf,
        found: String,
        found_agent: NodeId,
        cluster: String,
        agent: NodeId,
    },
    #[error("{path}: {what}")]
    Corrupt { path: PathBuf, what: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DiskError + '_ {
    move |source| DiskError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    format: u32,
    cluster: String,
    agent: NodeId,
}

/// What an agent reads back on start.
pub struct Recovered {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    /// The log entries after the snapshot.
    pub entries: Vec<Entry>,
}

/// An open data directory.
pub struct DataDir {
    dir: PathBuf,
    log: File,
    /// Where each log record after the snapshot starts (entry `base + 1` first).
    offsets: Vec<u64>,
    /// Where the log file ends.
    end: u64,
    base: Index,
}

impl DataDir {
    /// Opens (creating if need be) the data directory of agent `agent` of `cluster`, and
    /// reads back what it holds.
    pub fn open(
        dir: &Path,
        cluster: &str,
        agent: NodeId,
    ) -> Result<(DataDir, Recovered), DiskError> {
        create_private(dir)?;
        let meta_path = dir.join(META);
        match std::fs::read(&meta_path) {
            Ok(bytes) => {
                let m: Meta = serde_json::from_slice(&bytes).map_err(|e| DiskError::Corrupt {
                    path: meta_path.clone(),
                    what: format!("not a tenure data directory's metadata: {e}"),
                })?;
                if m.format != FORMAT {
                    return Err(DiskError::Corrupt {
                        path: meta_path,
                        what: format!("format {}; this build reads format {FORMAT}", m.format),
                    });
                }
                if m.cluster != cluster || m.agent != agent {
                    return Err(DiskError::OtherCluster {
                        path: dir.to_path_buf(),
                        found: m.cluster,
                        found_agent: m.agent,
                        cluster: cluster.to_string(),
                        agent,
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let m = Meta {
                    format: FORMAT,
                    cluster: cluster.to_string(),
                    agent,
                };
                replace(
                    dir,
                    META,
                    &serde_json::to_vec_pretty(&m).expect("meta serializes"),
                )?;
            }
            Err(e) => return Err(io(&meta_path)(e)),
        }
        let hs_path = dir.join(HARD_STATE);
        let hard_state = match std::fs::read(&hs_path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| DiskError::Corrupt {
                path: hs_path.clone(),
                what: format!("the hard state does not decode: {e}"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HardState::default(),
            Err(e) => return Err(io(&hs_path)(e)),
        };
        let snap_path = dir.join(SNAPSHOT);
        let snapshot = match std::fs::read(&snap_path) {
            Ok(b) => Some(
                records::decode_snapshot(&b).ok_or_else(|| DiskError::Corrupt {
                    path: snap_path.clone(),
                    what: "a snapshot file shorter than its header".into(),
                })?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(&snap_path)(e)),
        };
        let base = snapshot.as_ref().map_or(0, |s| s.index);
        let log_path = dir.join(LOG);
        let mut log = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&log_path)
            .map_err(io(&log_path))?;
        let mut data = Vec::new();
        log.read_to_end(&mut data).map_err(io(&log_path))?;
        let found = records::read(&data);
        if let Some(at) = found.torn_at {
            if found.corrupt {
                return Err(DiskError::Corrupt {
                    path: log_path,
                    what: format!(
                        "the record at byte {at} does not check and intact data follows it; \
                         refusing to start (nothing was changed)"
                    ),
                });
            }
            // A torn tail: never synced, so never acknowledged. Cut it off.
            tracing::warn!(target: "tenure", "{}: cutting a torn last record at byte {at}", log_path.display());
            log.set_len(at).map_err(io(&log_path))?;
            log.sync_all().map_err(io(&log_path))?;
        }
        let mut entries = Vec::new();
        let mut offsets = Vec::new();
        for (offset, payload) in &found.records {
            let e: Entry = serde_json::from_slice(payload).map_err(|e| DiskError::Corrupt {
                path: log_path.clone(),
                what: format!("the record at byte {offset} is not a log entry: {e}"),
            })?;
            if e.index > base {
                offsets.push(*offset);
                entries.push(e);
            }
        }
        let end = found.torn_at.unwrap_or(data.len() as u64);
        Ok((
            DataDir {
                dir: dir.to_path_buf(),
                log,
                offsets,
                end,
                base,
            },
            Recovered {
                hard_state,
                snapshot,
                entries,
            },
        ))
    }

    /// Carries out the persistent part of `out` (with `hard_state`, the state to keep when
    /// `out` says it changed) and syncs it, in the order the core requires: the snapshot
    /// whole, then the log, then the hard state.
    pub fn persist(&mut self, out: &AgentOutput, hard_state: &HardState) -> Result<(), DiskError> {
        let log_path = self.dir.join(LOG);
        let mut log_dirty = false;
        if let Some(snap) = &out.snapshot {
            replace(&self.dir, SNAPSHOT, &records::encode_snapshot(snap))?;
            self.log.set_len(0).map_err(io(&log_path))?;
            self.offsets.clear();
            self.end = 0;
            self.base = snap.index;
            log_dirty = true;
        }
        if let Some(from) = out.persist_from {
            let keep = (from.saturating_sub(self.base) as usize).saturating_sub(1);
            if keep < self.offsets.len() {
                self.end = self.offsets[keep];
                self.log.set_len(self.end).map_err(io(&log_path))?;
                self.offsets.truncate(keep);
            }
            let mut buf = Vec::new();
            for e in &out.entries {
                self.offsets.push(self.end + buf.len() as u64);
                buf.extend(records::frame(
                    &serde_json::to_vec(e).expect("entries serialize"),
                ));
            }
            self.log.write_all(&buf).map_err(io(&log_path))?;
            self.end += buf.len() as u64;
            log_dirty = true;
        }
        if log_dirty {
            self.log.sync_data().map_err(io(&log_path))?;
        }
        if out.hard_state.is_some() {
            replace(
                &self.dir,
                HARD_STATE,
                &serde_json::to_vec(hard_state).expect("hard state serializes"),
            )?;
        }
        Ok(())
    }
}

/// Creates `dir` (and its parents) if missing, private to its owner.
fn create_private(dir: &Path) -> Result<(), DiskError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(io(dir))?;
    let meta = std::fs::metadata(dir).map_err(io(dir))?;
    if !meta.is_dir() {
        return Err(DiskError::Corrupt {
            path: dir.to_path_buf(),
            what: "not a directory".into(),
        });
    }
    Ok(())
}

/// Replaces `dir/name` with `bytes` atomically: written beside, synced, renamed, the
/// directory synced.
fn replace(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), DiskError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}
