//! The in-process backend, `mem:`: one [`Store`] shared by every handle made from it.
//!
//! Unlike hmetcd's `Kvs_mem`, everything works: TTLs and leases expire (agency time follows
//! the injected clock, and a background ticker applies the expiry on time), locks exclude,
//! watches and change callbacks fire. Several handles on one backend behave as several
//! clients of one agency.

use crate::client::{ClientError, LeaseInfo, StoreClient};
use crate::clock::{BoxFuture, Clock};
use crate::command::{Command, Event, LeaseId, Outcome, Revision};
use crate::key::Key;
use crate::store::{Node, ReadResult, Store};
use async_trait::async_trait;
use futures::channel::mpsc;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Poll, Waker};
use std::time::Duration;

/// Why `open` refused an address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("unknown backend address {0:?}: expected \"mem:\"")]
    UnknownScheme(String),
}

/// Opens a backend by address. `mem:` gives a fresh in-process store on `clock`; clone the
/// returned [`MemBackend`] to give more clients the same store.
pub fn open(address: &str, clock: Arc<dyn Clock>) -> Result<MemBackend, OpenError> {
    match address {
        "mem:" => Ok(MemBackend::new(clock)),
        other => Err(OpenError::UnknownScheme(other.to_string())),
    }
}

/// An in-process agency. Cheap to clone; clones share the store.
#[derive(Clone)]
pub struct MemBackend {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

struct State {
    store: Store,
    /// Bumped by every applied command; wakes watchers and the ticker.
    changes: u64,
    waiters: Vec<Waker>,
    /// Callback addresses that a receiver listens on.
    inboxes: BTreeMap<String, mpsc::UnboundedSender<Event>>,
}

impl MemBackend {
    /// A fresh store whose agency time follows `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> MemBackend {
        let inner = Arc::new(Inner {
            clock: clock.clone(),
            state: Mutex::new(State {
                store: Store::new(),
                changes: 0,
                waiters: Vec::new(),
                inboxes: BTreeMap::new(),
            }),
        });
        clock.spawn(ticker(Arc::downgrade(&inner), clock.clone()));
        MemBackend { inner }
    }

    /// This backend as the [`StoreClient`] the API families take.
    pub fn client(&self) -> Arc<dyn StoreClient> {
        Arc::new(self.clone())
    }

    /// The clock the backend's agency time follows.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    /// Listens on a change-callback address: every change event sent to `url` by an
    /// observer registration (`register_change_callback`) arrives here, in order. A second
    /// call for the same address replaces the first receiver.
    pub fn callback_inbox(&self, url: &str) -> mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = mpsc::unbounded();
        self.inner
            .state
            .lock()
            .unwrap()
            .inboxes
            .insert(url.to_string(), tx);
        rx
    }

    /// A copy of the whole store, after bringing agency time up to the clock.
    pub fn store(&self) -> Store {
        self.inner.sync_time();
        self.inner.state.lock().unwrap().store.clone()
    }
}

impl Inner {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.now().as_millis()).unwrap_or(u64::MAX)
    }

    /// Applies `cmd`, delivers its events to observers and wakes waiters.
    fn apply_locked(st: &mut State, cmd: &Command) -> Outcome {
        let applied = st.store.apply(cmd);
        for event in &applied.events {
            for url in st.store.observers_of(&event.key) {
                if let Some(tx) = st.inboxes.get(&url) {
                    // A closed receiver is an address nobody listens on: the event is lost,
                    // as a callback to a dead URL would be.
                    let _ = tx.unbounded_send(event.clone());
                }
            }
        }
        st.changes += 1;
        for w in st.waiters.drain(..) {
            w.wake();
        }
        applied.outcome
    }

    /// Brings agency time up to the clock, expiring whatever is due.
    fn sync_time(&self) {
        let now = self.now_ms();
        let mut st = self.state.lock().unwrap();
        let agency_now = st.store.now_ms();
        if now > agency_now {
            Inner::apply_locked(
                &mut st,
                &Command::Tick {
                    advance_ms: now - agency_now,
                },
            );
        }
    }
}

/// Applies expiry on time even when no client calls: sleeps until the next deadline or the
/// next change, whichever comes first. Ends when the backend is dropped.
fn ticker(inner: Weak<Inner>, clock: Arc<dyn Clock>) -> BoxFuture<()> {
    Box::pin(async move {
        loop {
            let (deadline, seen) = {
                let Some(i) = inner.upgrade() else { return };
                i.sync_time();
                let st = i.state.lock().unwrap();
                (st.store.next_deadline_ms(), st.changes)
            };
            let changed = futures::future::poll_fn(|cx| {
                let Some(i) = inner.upgrade() else {
                    return Poll::Ready(());
                };
                let mut st = i.state.lock().unwrap();
                if st.changes != seen {
                    Poll::Ready(())
                } else {
                    st.waiters.push(cx.waker().clone());
                    Poll::Pending
                }
            });
            match deadline {
                Some(d) => {
                    let now = clock.now();
                    let wait = Duration::from_millis(d).saturating_sub(now);
                    let sleep = clock.sleep(wait);
                    futures::future::select(Box::pin(changed), sleep).await;
                }
                None => changed.await,
            }
        }
    })
}

#[async_trait]
impl StoreClient for MemBackend {
    fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    async fn submit(&self, cmd: Command) -> Result<Outcome, ClientError> {
        self.inner.sync_time();
        let mut st = self.inner.state.lock().unwrap();
        Ok(Inner::apply_locked(&mut st, &cmd))
    }

    async fn read(&self, key: &Key) -> Result<ReadResult, ClientError> {
        self.inner.sync_time();
        Ok(self.inner.state.lock().unwrap().store.read(key))
    }

    async fn range(&self, start: &Key, end: &Key) -> Result<Vec<(Key, Node)>, ClientError> {
        self.inner.sync_time();
        Ok(self.inner.state.lock().unwrap().store.range(start, end))
    }

    async fn lease(&self, id: LeaseId) -> Result<Option<LeaseInfo>, ClientError> {
        self.inner.sync_time();
        let st = self.inner.state.lock().unwrap();
        let now = st.store.now_ms();
        Ok(st.store.lease(id).map(|l| LeaseInfo {
            id,
            ttl_ms: l.ttl_ms,
            remaining_ms: l.deadline_ms.saturating_sub(now),
            granted_revision: l.granted_revision,
        }))
    }

    async fn wait_events(&self, key: &Key, after: Revision) -> Result<Vec<Event>, ClientError> {
        self.inner.sync_time();
        futures::future::poll_fn(|cx| {
            let mut st = self.inner.state.lock().unwrap();
            match st.store.events_after(after) {
                Err(c) => Poll::Ready(Err(ClientError::Compacted {
                    compacted: c.compacted,
                })),
                Ok(events) => {
                    let related: Vec<Event> = events
                        .into_iter()
                        .filter(|e| e.key.is_related(key))
                        .collect();
                    if related.is_empty() {
                        st.waiters.push(cx.waker().clone());
                        Poll::Pending
                    } else {
                        Poll::Ready(Ok(related))
                    }
                }
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::command::{LeaseBinding, Op, Txn};
    use serde_json::json;

    #[test]
    fn open_accepts_mem_only() {
        let clock = ManualClock::new();
        assert!(open("mem:", clock.shared()).is_ok());
        assert_eq!(
            open("etcd://x", clock.shared()).err(),
            Some(OpenError::UnknownScheme("etcd://x".into()))
        );
    }

    #[test]
    fn ttl_expires_without_any_client_call() {
        let clock = ManualClock::new();
        let mem = MemBackend::new(clock.shared());
        let key = Key::parse("/t").unwrap();
        let m = mem.clone();
        let k = key.clone();
        clock.block_on(async move {
            m.submit(Command::Txn(Txn::new().then(Op::Set {
                key: k,
                value: json!(1),
                ttl_ms: Some(500),
                lease: LeaseBinding::None,
            })))
            .await
            .unwrap();
        });
        let mut inbox_events = Vec::new();
        let m = mem.clone();
        let k = key.clone();
        let waiter = clock.block_on(async move { m.wait_events(&k, 1).await.unwrap() });
        inbox_events.extend(waiter);
        assert_eq!(clock.now(), Duration::from_millis(500));
        assert_eq!(inbox_events.len(), 1);
        assert_eq!(inbox_events[0].kind, crate::command::EventKind::Delete);
    }

    #[test]
    fn watchers_from_a_revision_get_every_related_change_in_order() {
        let clock = ManualClock::new();
        let mem = MemBackend::new(clock.shared());
        let m = mem.clone();
        clock.block_on(async move {
            let k = |s: &str| Key::parse(s).unwrap();
            for i in 0..20 {
                let key = if i % 2 == 0 { "/w/a" } else { "/other" };
                m.submit(Command::Txn(Txn::new().then(Op::set(k(key), json!(i)))))
                    .await
                    .unwrap();
            }
            // From revision 4: the writes to /w (and /w/a) at revisions 5, 7, ..., 19.
            let events = m.wait_events(&k("/w"), 4).await.unwrap();
            let revs: Vec<u64> = events.iter().map(|e| e.revision).collect();
            assert_eq!(revs, vec![5, 7, 9, 11, 13, 15, 17, 19]);
            let values: Vec<_> = events.iter().map(|e| e.new.clone().unwrap()).collect();
            assert_eq!(values[0], json!(4));
            // Resuming from the last one seen blocks until the next change.
            let m2 = m.clone();
            let c = m.clock();
            m.clock().spawn(Box::pin(async move {
                c.sleep(Duration::from_secs(1)).await;
                m2.submit(Command::Txn(Txn::new().then(Op::Delete { key: k("/w") })))
                    .await
                    .unwrap();
            }));
            let next = m.wait_events(&k("/w/a"), 19).await.unwrap();
            assert_eq!(next.len(), 1);
            assert_eq!(next[0].revision, 21);
            assert_eq!(next[0].project(&k("/w/a")), (Some(json!(18)), None));
        });
    }
}
