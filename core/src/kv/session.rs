//! The hmetcd session: the lease a handle's lock key and temporary keys are bound to, kept
//! alive while the handle lives, and what happens when it is lost.
//!
//! A session is lost when its lease ends while the handle still lives: the holder was cut off
//! (or paused) for longer than the TTL and the agency expired it, deleting the lock key and
//! the temp keys with it. hmetcd then makes a new lease and re-creates the temporary keys;
//! so does this module, in the background, retrying until it succeeds or the handle closes.
//! The distributed lock is **never** re-taken silently: the holder must learn it lost it, so
//! the loss is recorded ([`SessionLoss`]), handed to the callback set with
//! [`Kvs::on_session_lost`](super::Kvs::on_session_lost), and the next `dist_unlock` answers
//! [`KvError::LockLost`](super::KvError::LockLost).

use super::{kv_key, KvError, KvState, Kvs};
use crate::client::{grant_lease, spawn_keep_alive};
use crate::clock::ceil_ms;
use crate::command::*;
use serde_json::Value;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// A session that ended while its handle still lived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionLoss {
    /// The lease that ended.
    pub lease: LeaseId,
    /// The handle's clock reading when the loss was learned.
    pub at: Duration,
    /// Whether the handle held the distributed lock (which is now gone, and not re-taken).
    pub held_lock: bool,
    /// The temporary keys that went with the lease; they are being re-created.
    pub temp_keys: Vec<String>,
}

/// Called once for every session loss, from the background task that learned it.
pub type SessionLossCallback = Box<dyn FnMut(&SessionLoss) + Send>;

/// A handle's live session.
pub(super) struct Session {
    pub(super) lease: LeaseId,
    /// Keeps the keep-alive task running; dropped on close.
    pub(super) _life: Arc<()>,
}

/// How long to wait between attempts to re-create a lost session.
const RETRY: Duration = Duration::from_millis(200);

impl Kvs {
    /// A handle sharing this one's state, for background work.
    pub(super) fn sibling(&self) -> Kvs {
        Kvs {
            client: self.client.clone(),
            clock: self.clock.clone(),
            session_ttl: self.session_ttl,
            state: self.state.clone(),
            bugs: self.bugs,
        }
    }

    /// The session lease, granting one if there is none.
    pub(super) async fn session(&self) -> Result<LeaseId, KvError> {
        self.check_open()?;
        if let Some(s) = &self.state.lock().unwrap().session {
            return Ok(s.lease);
        }
        let id = grant_lease(&*self.client, ceil_ms(self.session_ttl))
            .await?
            .map_err(|r| KvError::Invalid(r.to_string()))?;
        let id = id.0;
        let mut st = self.state.lock().unwrap();
        if st.closed {
            // Closed while granting: the lease is left to expire.
            return Err(KvError::Closed);
        }
        if let Some(s) = &st.session {
            // Another call granted one meanwhile: use it, let ours expire unused.
            return Ok(s.lease);
        }
        let life = Arc::new(());
        // Weak: the keep-alive task must not keep the handle's state (and so the session's
        // life token) alive, or a dropped handle would be renewed forever.
        let weak = Arc::downgrade(&self.state);
        let (client, clock, ttl) = (self.client.clone(), self.clock.clone(), self.session_ttl);
        spawn_keep_alive(
            self.client.clone(),
            id,
            self.session_ttl,
            Arc::downgrade(&life),
            Box::new(move || lost(weak, id, client, clock, ttl)),
        );
        st.session = Some(Session {
            lease: id,
            _life: life,
        });
        Ok(id)
    }

    /// Sets or replaces the callback told of every session loss.
    pub fn on_session_lost(&self, cb: impl FnMut(&SessionLoss) + Send + 'static) {
        self.state.lock().unwrap().on_loss = Some(Box::new(cb));
    }

    /// Every session loss so far, oldest first.
    pub fn session_losses(&self) -> Vec<SessionLoss> {
        self.state.lock().unwrap().losses.clone()
    }

    /// The temporary keys this handle keeps (and re-creates after a session loss).
    pub fn temp_keys(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .temp_keys
            .iter()
            .cloned()
            .collect()
    }

    /// Writes temporary key `key` bound to the current session.
    pub(super) async fn write_temp_key(&self, key: &str) -> Result<(), KvError> {
        let k = kv_key(key)?;
        let lease = self.session().await?;
        let t = Txn::new().then(Op::Set {
            key: k,
            value: Value::String(format!("session-{lease}")),
            ttl_ms: None,
            lease: LeaseBinding::Lease(lease),
        });
        self.txn(t).await?;
        Ok(())
    }
}

/// The keep-alive learned that lease `id` is gone: forget it and the lock, record and tell
/// the loss, and re-create the temporary keys on a new lease.
fn lost(
    weak: Weak<Mutex<KvState>>,
    id: LeaseId,
    client: Arc<dyn crate::client::StoreClient>,
    clock: Arc<dyn crate::clock::Clock>,
    session_ttl: Duration,
) {
    let Some(state) = weak.upgrade() else { return };
    let (loss, cb, generation) = {
        let mut st = state.lock().unwrap();
        if st.closed || st.session.as_ref().map(|s| s.lease) != Some(id) {
            return;
        }
        st.session = None;
        let held_lock = st.lock_token.take().is_some();
        st.lock_lost |= held_lock;
        let loss = SessionLoss {
            lease: id,
            at: clock.now(),
            held_lock,
            temp_keys: st.temp_keys.iter().cloned().collect(),
        };
        st.losses.push(loss.clone());
        tracing::warn!(
            target: "tenure",
            "hmetcd session lease {id} lost (held the lock: {held_lock}, temp keys: {})",
            loss.temp_keys.len()
        );
        (loss, st.on_loss.take(), st.losses.len() as u64)
    };
    if let Some(mut cb) = cb {
        cb(&loss);
        let mut st = state.lock().unwrap();
        if st.on_loss.is_none() {
            st.on_loss = Some(cb);
        }
    }
    if loss.temp_keys.is_empty() {
        return; // the next call that needs a session grants one
    }
    drop(state);
    clock.clone().spawn(Box::pin(recreate(
        weak,
        client,
        clock,
        session_ttl,
        generation,
    )));
}

/// Re-creates the session and the temporary keys after a loss, until it succeeds, the handle
/// closes or is dropped, or a newer loss takes over.
async fn recreate(
    weak: Weak<Mutex<KvState>>,
    client: Arc<dyn crate::client::StoreClient>,
    clock: Arc<dyn crate::clock::Clock>,
    session_ttl: Duration,
    generation: u64,
) {
    loop {
        let Some(state) = weak.upgrade() else { return };
        let keys = {
            let st = state.lock().unwrap();
            if st.closed || st.losses.len() as u64 != generation {
                return;
            }
            st.temp_keys.iter().cloned().collect::<Vec<_>>()
        };
        let kv = Kvs {
            client: client.clone(),
            clock: clock.clone(),
            session_ttl,
            state,
            bugs: crate::bugs::Bugs::new(),
        };
        let mut done = true;
        for k in &keys {
            if kv.write_temp_key(k).await.is_err() {
                done = false;
                break;
            }
        }
        drop(kv);
        if done {
            return;
        }
        clock.sleep(RETRY).await;
    }
}
