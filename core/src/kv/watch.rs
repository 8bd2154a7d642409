//! `watch_with_cb`: a background watch that outlives partitions, leader changes and agent
//! restarts.
//!
//! The watch remembers the revision of the last change it delivered. When the client cannot
//! reach the agency (no leader, cut off, an answer lost), it waits and asks again for the
//! changes after that revision, so the callback sees every change exactly once and in order,
//! however long the outage. When the agency no longer keeps those changes (compacted while
//! the watch was away), the watch cannot know what it missed: it reads the key's current
//! value and calls the callback once with [`KeyChange::Compacted`], which decides whether to
//! go on from there. The watch ends only when the key is deleted, the callback returns
//! `false`, it is cancelled, or the handle is closed.

use super::{
    as_string, kv_key, KeyChange, KvError, Kvs, WatchEvent, WatchEventCallback, WatchHandle,
};
use crate::client::ClientError;
use crate::command::Revision;
use futures::channel::oneshot;
use std::time::Duration;

/// The first wait after a failed attempt; doubled each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// The longest wait between attempts while the agency cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What a watch does after an attempt to read further changes.
enum Next {
    /// Go on from this revision.
    From(Revision),
    /// The agency could not be reached: wait, then ask again for the same changes.
    Retry,
    End,
}

impl Kvs {
    /// `watch_with_cb` with the revision and version of every change: the same watch (the
    /// seed's callback is this one's projection), for callers that must know where in the
    /// agency's history each change lies (resuming elsewhere, checking for gaps). A tenure
    /// extension, not in the seed. `from`: the revision to deliver the changes after (a
    /// revision the caller read, or where an earlier watch stopped); `None`: now.
    pub async fn watch_events(
        &self,
        key: &str,
        op: KeyChange,
        from: Option<Revision>,
        cb: WatchEventCallback,
    ) -> Result<WatchHandle, KvError> {
        if op == KeyChange::Compacted {
            return Err(KvError::Invalid(
                "op: watch for Put or Delete (Compacted is told to every watch)".into(),
            ));
        }
        let k = kv_key(key)?;
        self.check_open()?;
        let from = match from {
            Some(r) => r,
            None => self.client.read(&k).await?.revision,
        };
        let (tx, rx) = oneshot::channel();
        let handle = {
            let mut st = self.state.lock().unwrap();
            let h = WatchHandle(st.next_watch);
            st.next_watch += 1;
            st.watches.insert(h, tx);
            h
        };
        let watcher = self.sibling();
        self.clock.spawn(Box::pin(async move {
            let work = watcher.run_watch(k, op, cb, from);
            // The cancel signal is polled first: once cancelled, no callback runs.
            futures::future::select(rx, Box::pin(work)).await;
            watcher.state.lock().unwrap().watches.remove(&handle);
        }));
        Ok(handle)
    }

    async fn run_watch(
        &self,
        k: crate::key::Key,
        op: KeyChange,
        mut cb: WatchEventCallback,
        from: Revision,
    ) {
        let mut after = from;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let next = match self.wait_change(&k, after).await {
                Ok(e) => {
                    if e.change == op && !cb(&e) || e.change == KeyChange::Delete {
                        Next::End
                    } else {
                        Next::From(e.revision)
                    }
                }
                Err(KvError::Client(ClientError::Compacted { .. })) => {
                    match self.client.read(&k).await {
                        Ok(r) => {
                            let notice = WatchEvent {
                                value: r.value.as_ref().map(as_string).unwrap_or_default(),
                                change: KeyChange::Compacted,
                                revision: r.revision,
                                version: r.meta.map_or(0, |m| m.version),
                            };
                            if cb(&notice) {
                                Next::From(r.revision)
                            } else {
                                Next::End
                            }
                        }
                        // Cannot read now: try again later.
                        Err(_) => Next::Retry,
                    }
                }
                Err(KvError::Client(ClientError::Closed)) | Err(KvError::Closed) => Next::End,
                // No leader, cut off, an answer lost: ask again for the same changes.
                Err(_) => Next::Retry,
            };
            if self.check_open().is_err() {
                return;
            }
            match next {
                Next::End => return,
                Next::From(rev) => {
                    after = rev;
                    backoff = FIRST_BACKOFF;
                }
                Next::Retry => {
                    self.clock.sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    if self.bugs.contains(crate::bugs::Bug::KvWatchSkipsOutage) {
                        if let Ok(r) = self.client.read(&k).await {
                            after = r.revision;
                        }
                    }
                }
            }
        }
    }
}
