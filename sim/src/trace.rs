//! Tracing for runs: every history record is also a `tracing` event (target `tenure`), and
//! [`subscriber`] builds a `tracing-subscriber` formatter that stamps each line with the
//! run's virtual time and, through madsim's node spans, the node it happened on:
//!
//! ```text
//!    2.350417s  INFO node{id=2 name="agent-1"}: tenure: {"type":"role","agent":1,...}
//! ```
//!
//! System events (roles, hard state, faults, checks, expiries) are `INFO`; client operations
//! and applied entries `DEBUG`; envelopes `TRACE` (recorded only when the run records
//! messages). A run on its fresh thread inherits the tracing dispatcher of the thread that
//! started it, so `tracing::subscriber::with_default` around a run traces that run alone.

use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing::Level;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::MakeWriter;

/// Formats the time of a line as the run's virtual time in seconds (`-` outside a run).
#[derive(Clone, Copy, Debug, Default)]
pub struct VirtualTime;

impl FormatTime for VirtualTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        match madsim::time::TimeHandle::try_current() {
            Some(t) => write!(w, "{:>12.6}s", t.elapsed().as_secs_f64()),
            None => write!(w, "{:>13}", "-"),
        }
    }
}

/// Parses a level name: `error`, `warn`, `info`, `debug` or `trace`.
pub fn parse_level(name: &str) -> Result<Level, String> {
    name.parse::<Level>().map_err(|_| {
        format!("unknown trace level {name:?} (expected error, warn, info, debug or trace)")
    })
}

/// A subscriber writing lines with virtual time and node names, up to `level`, to `out`.
pub fn subscriber<W>(level: Level, out: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_timer(VirtualTime)
        .with_ansi(false)
        .with_writer(out)
        .finish()
}

/// An in-memory writer for [`subscriber`]: what was traced, as text.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> MakeWriter<'w> for Captured {
    type Writer = Captured;

    fn make_writer(&'w self) -> Captured {
        self.clone()
    }
}
