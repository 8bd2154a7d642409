//! The live side of a run's history: the [`Recorder`] every actor writes through (a shared
//! handle; a madsim run is single threaded, so the lock is never contended). The history's
//! data, [`History`] and its records, is tenure-analysis's, re-exported here.

pub use tenure_analysis::history::*;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A shared handle that appends to one run's history.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Mutex<History>>,
    counts: Arc<MessageCounts>,
    /// Per process and watch stream, the highest revision it started from or received.
    watch_marks: Arc<Mutex<std::collections::BTreeMap<(u64, String), u64>>>,
    origin: madsim::time::Instant,
    time: crate::clock::VirtualNow,
    messages: bool,
    /// Envelopes travel in their serde encoding instead of as values.
    encodes: bool,
    /// Agents record every change under these prefixes (for the watch checks).
    changes_under: Vec<tenure_core::key::Key>,
}

#[derive(Default)]
struct MessageCounts {
    sent: AtomicU64,
    delivered: AtomicU64,
    /// The last message id given out (recorded runs only).
    last_id: AtomicU64,
}

impl Recorder {
    /// A recorder whose true time zero is now (inside a madsim run). With `messages`, every
    /// envelope sent and delivered is recorded too.
    pub fn new(messages: bool) -> Recorder {
        Recorder::into_shared(Arc::default(), messages)
    }

    /// A recorder appending to `history`, which outlives the run (so a run that panics still
    /// leaves the history up to the panic).
    pub fn into_shared(history: Arc<Mutex<History>>, messages: bool) -> Recorder {
        let time = crate::clock::VirtualNow::current();
        Recorder {
            inner: history,
            counts: Arc::default(),
            watch_marks: Arc::default(),
            origin: time.now(),
            time,
            messages,
            encodes: false,
            changes_under: Vec::new(),
        }
    }

    /// Has every envelope of the run travel in its serde encoding (as bytes would on a real
    /// network) instead of as the value itself.
    pub fn with_encoding(mut self, encodes: bool) -> Recorder {
        self.encodes = encodes;
        self
    }

    /// Whether envelopes travel encoded.
    pub fn encodes(&self) -> bool {
        self.encodes
    }

    /// Has the agents record every change of `prefix` and the keys under it.
    pub fn with_changes_under(mut self, prefix: tenure_core::key::Key) -> Recorder {
        self.changes_under.push(prefix);
        self
    }

    /// Whether the agents record changes of `key`.
    pub fn records_changes_of(&self, key: &tenure_core::key::Key) -> bool {
        self.changes_under.iter().any(|p| key.starts_with(p))
    }

    /// True time zero of the run.
    pub fn origin(&self) -> madsim::time::Instant {
        self.origin
    }

    pub fn count_sent(&self) {
        self.counts.sent.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_delivered(&self) {
        self.counts.delivered.fetch_add(1, Ordering::Relaxed);
    }

    /// A fresh message id (from 1), to pair a recorded sending with its delivery.
    pub fn next_message_id(&self) -> u64 {
        self.counts.last_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Envelopes sent and delivered so far (counted whether or not they are recorded).
    pub fn message_counts(&self) -> (u64, u64) {
        (
            self.counts.sent.load(Ordering::Relaxed),
            self.counts.delivered.load(Ordering::Relaxed),
        )
    }

    /// True time since the run began.
    pub fn true_now(&self) -> std::time::Duration {
        self.time.now() - self.origin
    }

    pub fn record(&self, node: &str, event: Event) {
        let t_us = self.true_now().as_micros() as u64;
        // Also a tracing event; its text is only built when the level is on.
        match &event {
            Event::Message { .. } => {
                tracing::trace!(target: "tenure", "{}", serde_json::json!(&event))
            }
            Event::Invoke { .. } | Event::Complete { .. } | Event::Apply { .. } => {
                tracing::debug!(target: "tenure", "{}", serde_json::json!(&event))
            }
            _ => tracing::info!(target: "tenure", "{}", serde_json::json!(&event)),
        }
        if let Event::WatchStart {
            process,
            stream,
            from: revision,
            ..
        }
        | Event::Watched {
            process,
            stream,
            revision,
            ..
        } = &event
        {
            let mut marks = self.watch_marks.lock().unwrap();
            let mark = marks.entry((*process, stream.clone())).or_default();
            *mark = (*mark).max(*revision);
        }
        self.inner.lock().unwrap().records.push(Record {
            t_us,
            node: node.to_string(),
            event,
        });
    }

    /// How far process `process`'s watch stream `stream` got: the highest revision it
    /// started from or received (from the records, kept as they are written).
    pub fn watched_up_to(&self, process: u64, stream: &str) -> Option<u64> {
        self.watch_marks
            .lock()
            .unwrap()
            .get(&(process, stream.to_string()))
            .copied()
    }

    /// The agent leading the highest term among the agents whose latest role record says
    /// leader (a deposed leader that has not heard of the new term yet still says so).
    pub fn latest_leader(&self) -> Option<u64> {
        let h = self.inner.lock().unwrap();
        let mut seen = std::collections::BTreeSet::new();
        let mut best: Option<(u64, u64)> = None;
        for r in h.records.iter().rev() {
            if let Event::Role {
                agent, role, term, ..
            } = &r.event
            {
                if seen.insert(*agent) && role == "leader" && best.is_none_or(|(t, _)| *term > t) {
                    best = Some((*term, *agent));
                }
            }
        }
        best.map(|(_, a)| a)
    }

    /// The lowest-numbered process that believes now (true time `now_us`) that it holds a
    /// lock, lease or leadership: its latest belief about some resource runs past now.
    pub fn current_holder(&self, now_us: u64) -> Option<u64> {
        let h = self.inner.lock().unwrap();
        let mut seen = std::collections::BTreeSet::new();
        let mut holders = std::collections::BTreeSet::new();
        for r in h.records.iter().rev() {
            if let Event::Belief {
                process,
                resource,
                until_us,
                ..
            } = &r.event
            {
                if seen.insert((*process, resource.as_str()))
                    && until_us.is_some_and(|u| u > now_us)
                {
                    holders.insert(*process);
                }
            }
        }
        holders.first().copied()
    }

    /// Whether messages are recorded.
    pub fn messages(&self) -> bool {
        self.messages
    }

    /// The history so far.
    pub fn snapshot(&self) -> History {
        self.inner.lock().unwrap().clone()
    }

    /// Number of records so far.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap().records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
