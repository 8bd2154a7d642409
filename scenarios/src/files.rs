//! Files from and for users, handled so that bad input loses nothing.
//!
//! Inputs ([`read_text`]) are regular files only (a FIFO with no writer would block forever,
//! `/dev/zero` would never end), of a stated size limit, in UTF-8 (a byte-order mark is
//! dropped). Outputs ([`Outputs`]) are all checked before any work starts: each names a file
//! in an existing directory, none is a directory, a device or one of the command's inputs, no
//! two name the same file, and a temporary file is created beside each (so a directory we may
//! not write to fails now, not after a ten-minute sweep). Texts are written to those temporary
//! files and fsync'd; only when every one is written are they renamed into place. A command
//! that fails half way leaves every existing file as it was.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Largest history `tenure check` reads (1 GiB).
pub const HISTORY_LIMIT: u64 = 1 << 30;
/// Largest scenario file (1 MiB: the largest built-in one is under 4 KiB).
pub const SCENARIO_LIMIT: u64 = 1 << 20;
/// Largest sweep results file `tenure merge` reads (256 MiB: a million seeds' results).
pub const RESULTS_LIMIT: u64 = 256 << 20;

/// Reads the regular file `path` as UTF-8 text of at most `limit` bytes; `what` names it in
/// errors ("history", "scenario file").
pub fn read_text(path: &Path, what: &str, limit: u64) -> Result<String, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {what} {shown}: {e}"))?;
    if meta.is_dir() {
        return Err(format!("{what} {shown} is a directory, not a file"));
    }
    if !meta.is_file() {
        return Err(format!(
            "{what} {shown} is not a regular file (a pipe, device or socket): tenure reads only regular files"
        ));
    }
    if meta.len() > limit {
        return Err(format!(
            "{what} {shown} is {} bytes, over the limit of {limit} bytes",
            meta.len()
        ));
    }
    let file = File::open(path).map_err(|e| format!("cannot read {what} {shown}: {e}"))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow while we read it: never read past the limit.
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {what} {shown}: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "{what} {shown} grew past the limit of {limit} bytes while being read"
        ));
    }
    text_of(bytes).map_err(|at| format!("{what} {shown} is not UTF-8 text (byte {at})"))
}

/// UTF-8 text of `bytes` without a leading byte-order mark; or the offset of the first byte
/// that is not UTF-8.
pub fn text_of(mut bytes: Vec<u8>) -> Result<String, usize> {
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    String::from_utf8(bytes).map_err(|e| e.utf8_error().valid_up_to())
}

/// Where a path leads: the canonical path of the file if it exists, else its canonical
/// directory joined with its name. Two paths that lead to the same file compare equal.
fn identity(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = std::fs::canonicalize(path) {
        return Some(p);
    }
    let name = path.file_name()?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Some(std::fs::canonicalize(dir).ok()?.join(name))
}

/// Device and inode of an existing file (hard links to one file share them).
fn inode(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (inode(a), inode(b)) {
        (Some(x), Some(y)) => x == y,
        _ => identity(a).is_some_and(|x| identity(b).is_some_and(|y| x == y)),
    }
}

/// One output of a command: where it goes and the temporary file beside it.
struct Planned {
    path: PathBuf,
    what: String,
    temp: PathBuf,
    written: bool,
}

/// The outputs of one command, checked before any work and written all or nothing.
#[derive(Default)]
pub struct Outputs {
    inputs: Vec<(PathBuf, String)>,
    planned: Vec<Planned>,
}

impl Outputs {
    pub fn new() -> Outputs {
        Outputs::default()
    }

    /// A file the command reads, which no output may overwrite.
    pub fn input(&mut self, path: &Path, what: &str) {
        self.inputs.push((path.to_path_buf(), what.to_string()));
    }

    /// Plans `path` as the output given by `what` (its option, `--history`): refuses it now,
    /// with the reason, if it could not be written or would overwrite an input or another
    /// output.
    pub fn add(&mut self, what: &str, path: &Path) -> Result<(), String> {
        let shown = path.display();
        let Some(name) = path.file_name() else {
            return Err(format!("{what} {shown}: not a file name"));
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(format!(
                "cannot write {what} {shown}: {} is not a directory",
                dir.display()
            ));
        }
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.is_dir() {
                return Err(format!("cannot write {what} {shown}: it is a directory"));
            }
            if !meta.is_file() {
                return Err(format!(
                    "cannot write {what} {shown}: not a regular file (tenure writes regular files only)"
                ));
            }
        }
        for (input, kind) in &self.inputs {
            if same_file(path, input) {
                return Err(format!(
                    "{what} {shown} is the {kind} this command reads: refusing to overwrite it"
                ));
            }
        }
        for p in &self.planned {
            if same_file(path, &p.path) {
                return Err(format!(
                    "{} and {what} both name {shown}: give each its own file",
                    p.what
                ));
            }
        }
        let temp = dir.join(format!(
            ".{}.tenure-{}-{}.tmp",
            name.to_string_lossy(),
            std::process::id(),
            self.planned.len()
        ));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| format!("cannot write {what} {shown}: {e}"))?;
        self.planned.push(Planned {
            path: path.to_path_buf(),
            what: what.to_string(),
            temp,
            written: false,
        });
        Ok(())
    }

    /// Writes `text` for the planned output `path` to its temporary file (and syncs it); it
    /// replaces `path` only at [`Outputs::commit`].
    pub fn stage(&mut self, path: &Path, text: &[u8]) -> Result<(), String> {
        let Some(p) = self.planned.iter_mut().find(|p| p.path == path) else {
            return Err(format!("{} was not planned as an output", path.display()));
        };
        let fail = |e: std::io::Error| format!("cannot write {} {}: {e}", p.what, p.path.display());
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&p.temp)
            .map_err(fail)?;
        f.write_all(text).map_err(fail)?;
        f.sync_all().map_err(fail)?;
        p.written = true;
        Ok(())
    }

    /// Renames every staged output into place. Outputs planned but never staged are dropped
    /// (their files stay as they were).
    pub fn commit(mut self) -> Result<Vec<PathBuf>, String> {
        let mut done = Vec::new();
        for p in std::mem::take(&mut self.planned) {
            if !p.written {
                let _ = std::fs::remove_file(&p.temp);
                continue;
            }
            if let Err(e) = std::fs::rename(&p.temp, &p.path) {
                let _ = std::fs::remove_file(&p.temp);
                return Err(format!("cannot write {} {}: {e}", p.what, p.path.display()));
            }
            if let Some(dir) = p.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                if let Ok(d) = File::open(dir) {
                    let _ = d.sync_all();
                }
            }
            done.push(p.path);
        }
        Ok(done)
    }

    /// Whether any output is planned.
    pub fn is_empty(&self) -> bool {
        self.planned.is_empty()
    }
}

impl Drop for Outputs {
    /// A command that stops early leaves no temporary file behind.
    fn drop(&mut self) {
        for p in &self.planned {
            let _ = std::fs::remove_file(&p.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tenure-files-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn inputs_are_regular_bounded_utf8_files() {
        let d = scratch("in");
        let f = d.join("a.txt");
        std::fs::write(&f, b"\xEF\xBB\xBFhello").unwrap();
        assert_eq!(read_text(&f, "history", 100).unwrap(), "hello");
        let e = read_text(&f, "history", 3).unwrap_err();
        assert!(e.contains("over the limit"), "{e}");
        assert!(read_text(&d, "history", 100)
            .unwrap_err()
            .contains("directory"));
        let e = read_text(Path::new("/dev/null"), "history", 100).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        assert!(read_text(&d.join("missing"), "history", 100).is_err());
        std::fs::write(&f, b"ok\xFFno").unwrap();
        assert!(read_text(&f, "history", 100)
            .unwrap_err()
            .contains("byte 2"));
    }

    #[test]
    fn outputs_are_refused_before_work_and_written_all_or_nothing() {
        let d = scratch("out");
        let input = d.join("s.toml");
        std::fs::write(&input, "keep").unwrap();
        let a = d.join("a.txt");
        std::fs::write(&a, "old").unwrap();
        let mut o = Outputs::new();
        o.input(&input, "scenario file");
        assert!(o.add("--history", &input).unwrap_err().contains("refusing"));
        // The same file by another spelling.
        let other = d.join(".").join("s.toml");
        assert!(o.add("--history", &other).is_err());
        o.add("--history", &a).unwrap();
        assert!(o.add("--html", &a).unwrap_err().contains("both name"));
        assert!(o.add("--html", &d).unwrap_err().contains("directory"));
        assert!(o
            .add("--html", &d.join("missing/x"))
            .unwrap_err()
            .contains("not a directory"));
        assert!(o.add("--html", Path::new("/dev/null")).is_err());
        o.stage(&a, b"new").unwrap();
        // Dropped before commit: the old file stays, no temporary file is left.
        drop(o);
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "old");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 2);
        let mut o = Outputs::new();
        o.add("--history", &a).unwrap();
        o.stage(&a, b"new").unwrap();
        assert_eq!(o.commit().unwrap(), vec![a.clone()]);
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "new");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 2);
    }
}
