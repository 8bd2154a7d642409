//! The agency `Lock` (seed 000's `Lock`): a TTL'd key written if empty, renewed at TTL/2
//! with write-if-equal, believed until `start + ttl * (1 - rho)` of the holder's own clock,
//! released by a conditioned remove (kept held when the remove surely failed).

use super::{check_writable, Agency, AgencyError, WriteCondition};
use crate::bugs::{Bug, Bugs};
use crate::client::ClientError;
use crate::clock::{Clock, DEFAULT_DRIFT_BOUND};
use crate::command::*;
use crate::key::Key;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An agency-backed exclusive lock (the driver's `Lock`).
///
/// `lock` writes the holder's id at the key if it is empty, with the TTL; a background task
/// renews it every TTL/2 with write-if-equal. The holder believes it holds the lock until
/// `start + ttl * (1 - rho)` of its own clock, where `start` is when the last successful
/// lock or renewal *began*; it stops believing as soon as a renewal is refused or that
/// deadline passes. `unlock` removes the key only if it still holds this lock's id.
#[derive(Clone)]
pub struct Lock {
    inner: Arc<LockInner>,
}

/// A change in what a lock holder believes, as its library sees it (for recorders and
/// checkers): it holds the grant `token` until local time `until`, or (`until: None`) it
/// stopped believing it holds it, now (unlock, a failed renewal, or its deadline passed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BeliefUpdate {
    pub token: Revision,
    pub until: Option<Duration>,
}

type BeliefObserver = Arc<dyn Fn(BeliefUpdate) + Send + Sync>;

struct LockInner {
    api: Arc<dyn Agency>,
    clock: Arc<dyn Clock>,
    key: Key,
    observer: Option<BeliefObserver>,
    id: String,
    ttl: Duration,
    rho: f64,
    lock_delay: Duration,
    /// Planted bugs (none unless [`Lock::with_bugs`]).
    bugs: Bugs,
    state: Mutex<LockState>,
}

#[derive(Default)]
struct LockState {
    held: bool,
    belief_deadline: Duration,
    /// Bumped by every lock and unlock, so that an old renewal task stops.
    generation: u64,
    token: Option<Revision>,
    /// The grant an unlock whose outcome is unknown tried to remove: a retried `unlock`
    /// removes it (conditioned on it), though the holder no longer believes it holds it.
    pending_release: Option<Revision>,
}

impl Lock {
    /// A lock on `key` for the holder `id`, lasting `ttl` unless renewed.
    pub fn new(
        api: Arc<dyn Agency>,
        clock: Arc<dyn Clock>,
        key: Key,
        id: &str,
        ttl: Duration,
    ) -> Result<Lock, AgencyError> {
        check_writable(&key)?;
        if id.is_empty() {
            return Err(AgencyError::Invalid("lock id: must not be empty".into()));
        }
        if ttl < Duration::from_millis(2) {
            return Err(AgencyError::Invalid(format!(
                "lock ttl: {ttl:?} is too short; it must be at least 2ms so it can be renewed at ttl/2"
            )));
        }
        Ok(Lock {
            inner: Arc::new(LockInner {
                api,
                clock,
                key,
                id: id.to_string(),
                ttl,
                rho: DEFAULT_DRIFT_BOUND,
                lock_delay: Duration::ZERO,
                bugs: Bugs::new(),
                observer: None,
                state: Mutex::new(LockState::default()),
            }),
        })
    }

    /// Sets the drift bound the belief deadline allows for (default 0.01); `0 <= rho < 1`.
    pub fn with_drift_bound(self, rho: f64) -> Result<Lock, AgencyError> {
        if !(0.0..1.0).contains(&rho) {
            return Err(AgencyError::Invalid(format!(
                "drift bound: {rho} is outside [0, 1)"
            )));
        }
        let inner = Arc::try_unwrap(self.inner).map_err(|_| {
            AgencyError::Invalid("drift bound: set it before sharing the lock".into())
        })?;
        Ok(Lock {
            inner: Arc::new(LockInner { rho, ..inner }),
        })
    }

    /// After an involuntary release (this holder died and the key expired), nobody gets the
    /// lock for `delay` of agency time: a holder that was only slow has time to notice.
    pub fn with_lock_delay(self, delay: Duration) -> Result<Lock, AgencyError> {
        let inner = Arc::try_unwrap(self.inner).map_err(|_| {
            AgencyError::Invalid("lock delay: set it before sharing the lock".into())
        })?;
        Ok(Lock {
            inner: Arc::new(LockInner {
                lock_delay: delay,
                ..inner
            }),
        })
    }

    /// Plants the lock's share of `bugs` (for the simulator's planted-bug runs only):
    /// [`Bug::HolderTimesFromResponse`], [`Bug::NoLockDelay`], [`Bug::UnlockWithoutIdCheck`].
    pub fn with_bugs(self, bugs: Bugs) -> Result<Lock, AgencyError> {
        let inner = Arc::try_unwrap(self.inner)
            .map_err(|_| AgencyError::Invalid("bugs: set them before sharing the lock".into()))?;
        Ok(Lock {
            inner: Arc::new(LockInner { bugs, ..inner }),
        })
    }

    /// Calls `observer` on every change of belief (grant, renewal, release, loss), in order.
    pub fn with_observer(
        self,
        observer: impl Fn(BeliefUpdate) + Send + Sync + 'static,
    ) -> Result<Lock, AgencyError> {
        let inner = Arc::try_unwrap(self.inner)
            .map_err(|_| AgencyError::Invalid("observer: set it before sharing the lock".into()))?;
        Ok(Lock {
            inner: Arc::new(LockInner {
                observer: Some(Arc::new(observer)),
                ..inner
            }),
        })
    }

    /// Takes the lock, or fails with `AlreadyLocked` if anyone (this holder included) holds it.
    pub async fn lock(&self) -> Result<Revision, AgencyError> {
        if self.is_locked() {
            return Err(AgencyError::AlreadyLocked);
        }
        let i = &self.inner;
        let start = i.clock.now();
        let mut condition = WriteCondition::new().if_empty(&i.key);
        if !i.bugs.contains(Bug::NoLockDelay) {
            condition = condition.with_lock_delay(i.lock_delay);
        }
        let rev = match i
            .api
            .write_key(&i.key, json!(i.id), Some(i.ttl), Some(condition))
            .await
        {
            Ok(rev) => rev,
            Err(AgencyError::ConditionFailed { .. }) => return Err(AgencyError::AlreadyLocked),
            Err(e) => return Err(e),
        };
        if let Some(pause) = crate::buggify::delay(crate::buggify::PAUSE_AFTER_GRANT) {
            // The holder is slow to act on its grant (a fault point: off outside simulation).
            i.clock.sleep(pause).await;
        }
        let start = i.belief_start(start);
        let generation = {
            let mut st = i.state.lock().unwrap();
            st.generation += 1;
            st.held = true;
            st.belief_deadline = start + i.ttl.mul_f64(1.0 - i.rho);
            st.token = Some(rev);
            st.pending_release = None;
            i.tell(rev, Some(st.belief_deadline));
            st.generation
        };
        i.clock
            .spawn(Box::pin(renew(self.inner.clone(), generation)));
        Ok(rev)
    }

    /// Releases the lock; `NotLocked` if this holder does not hold it.
    ///
    /// The holder stops believing it holds the lock before the remove is sent (it must not
    /// act on it while the release is under way). When the remove surely did not happen (the
    /// agency could not be reached), the lock is held again, as the Go driver keeps it, with
    /// its belief and renewals, so the caller can retry. When its outcome is unknown, the
    /// holder stays released (the key may be gone and taken by another) but a retried
    /// `unlock` removes this grant's key if it is still there.
    pub async fn unlock(&self) -> Result<(), AgencyError> {
        let i = &self.inner;
        let unchecked = i.bugs.contains(Bug::UnlockWithoutIdCheck);
        let (token, deadline) = {
            let mut st = i.state.lock().unwrap();
            if !st.held && st.pending_release.is_none() && !unchecked {
                return Err(AgencyError::NotLocked);
            }
            let was_held = std::mem::take(&mut st.held);
            st.generation += 1;
            let token = st.token.take().or(st.pending_release.take());
            if let (Some(token), true) = (token, was_held) {
                i.tell(token, None);
            }
            (
                token,
                was_held.then_some((st.belief_deadline, st.generation)),
            )
        };
        // Only this grant's incarnation of the key: an unlock that arrives late (its answer
        // was lost, so the holder locked again) must not remove a newer grant with the same id.
        let mut c = WriteCondition::new().if_equal_to(&i.key, json!(i.id));
        if let Some(token) = token {
            c = c.if_created_at(&i.key, token);
        }
        let c = (!i.bugs.contains(Bug::UnlockWithoutIdCheck)).then_some(c);
        match i.api.remove_key(&i.key, c).await {
            Ok(_) => Ok(()),
            Err(AgencyError::ConditionFailed { .. }) => Err(AgencyError::NotLocked),
            Err(e @ AgencyError::Client(ClientError::Unavailable(_))) => {
                // Surely not removed: still ours until the belief deadline it had.
                let mut st = i.state.lock().unwrap();
                match (token, deadline) {
                    // Unless the holder locked or unlocked again meanwhile, or the belief
                    // deadline has passed.
                    (Some(token), Some((deadline, generation)))
                        if st.generation == generation && i.clock.now() < deadline =>
                    {
                        st.held = true;
                        st.generation += 1;
                        st.token = Some(token);
                        st.belief_deadline = deadline;
                        i.tell(token, Some(deadline));
                        let generation = st.generation;
                        drop(st);
                        i.clock
                            .spawn(Box::pin(renew(self.inner.clone(), generation)));
                    }
                    _ => st.pending_release = token,
                }
                Err(e)
            }
            Err(e) => {
                self.inner.state.lock().unwrap().pending_release = token;
                Err(e)
            }
        }
    }

    /// True while this holder believes it holds the lock.
    pub fn is_locked(&self) -> bool {
        let st = self.inner.state.lock().unwrap();
        st.held && self.inner.clock.now() < st.belief_deadline
    }

    /// The fencing token of the current grant: the revision that wrote the lock key.
    pub fn fencing_token(&self) -> Option<Revision> {
        if self.is_locked() {
            self.inner.state.lock().unwrap().token
        } else {
            None
        }
    }

    /// Local clock time until which the holder believes it holds the lock.
    pub fn belief_deadline(&self) -> Option<Duration> {
        let st = self.inner.state.lock().unwrap();
        st.held.then_some(st.belief_deadline)
    }
}

impl LockInner {
    /// When the belief counts from: the start of the call, or (planted) its response.
    fn belief_start(&self, start: Duration) -> Duration {
        if self.bugs.contains(Bug::HolderTimesFromResponse) {
            self.clock.now()
        } else {
            start
        }
    }

    fn tell(&self, token: Revision, until: Option<Duration>) {
        if let Some(o) = &self.observer {
            o(BeliefUpdate { token, until });
        }
    }
}

async fn renew(i: Arc<LockInner>, generation: u64) {
    loop {
        let late = crate::buggify::delay(crate::buggify::LATE_RENEWAL).unwrap_or_default();
        i.clock.sleep(i.ttl / 2 + late).await;
        {
            let mut st = i.state.lock().unwrap();
            if st.generation != generation || !st.held {
                return;
            }
            if i.clock.now() >= st.belief_deadline {
                st.held = false;
                if let Some(token) = st.token {
                    i.tell(token, None);
                }
                return;
            }
        }
        let start = i.clock.now();
        let token = i.state.lock().unwrap().token;
        let mut c = WriteCondition::new().if_equal_to(&i.key, json!(i.id));
        if let Some(token) = token {
            c = c.if_created_at(&i.key, token);
        }
        let r = i
            .api
            .write_key(&i.key, json!(i.id), Some(i.ttl), Some(c))
            .await;
        let mut st = i.state.lock().unwrap();
        if st.generation != generation {
            return;
        }
        match r {
            Ok(_) => {
                st.belief_deadline = i.belief_start(start) + i.ttl.mul_f64(1.0 - i.rho);
                if let Some(token) = st.token {
                    i.tell(token, Some(st.belief_deadline));
                }
            }
            Err(AgencyError::ConditionFailed { .. }) => {
                st.held = false;
                if let Some(token) = st.token {
                    i.tell(token, None);
                }
                return;
            }
            // Unknown outcome or no leader: keep trying until the belief deadline passes.
            Err(_) => {}
        }
    }
}
