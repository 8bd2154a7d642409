//! Seed 000: the ArangoDB agency API, its `Lock`, and `is_same_endpoint`.
//!
//! Keys are [`Key`] paths; values are JSON. Writes return the revision they committed at,
//! which is also the fencing token of a lock grant.

use crate::bugs::{Bug, Bugs};
use crate::client::{ClientError, HealthError, StoreClient};
use crate::clock::{ceil_ms, Clock, DEFAULT_DRIFT_BOUND};
use crate::command::*;
use crate::key::Key;
use async_trait::async_trait;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The agency family's errors.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AgencyError {
    /// Nothing is stored at `key`, the key asked for; `missing` is the shortest prefix of it
    /// that holds nothing (the key itself, or an ancestor).
    #[error("key not found: {key}{}", if key == missing { String::new() } else { format!(" (nothing at {missing})") })]
    KeyNotFound { key: Key, missing: Key },
    /// A write condition did not hold: `check` failed, the key held `found`.
    #[error("condition failed: {check:?} (found {found:?})")]
    ConditionFailed {
        check: Precondition,
        found: Option<Value>,
    },
    #[error("already locked")]
    AlreadyLocked,
    #[error("not locked")]
    NotLocked,
    /// Bad input: the message names the argument and what is wrong with it.
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Checks a write makes first; all must hold. Build with [`WriteCondition::new`] and the
/// `if_*` methods, as the driver's builder.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteCondition {
    pub checks: Vec<Precondition>,
    /// Not a check but a property of the write: see [`WriteCondition::with_lock_delay`].
    pub lock_delay: Option<Duration>,
}

impl WriteCondition {
    pub fn new() -> WriteCondition {
        WriteCondition::default()
    }
    /// Nothing is stored at `key`.
    pub fn if_empty(mut self, key: &Key) -> WriteCondition {
        self.checks.push(Precondition::IfEmpty(key.clone()));
        self
    }
    /// The value at `key` equals `old`.
    pub fn if_equal_to(mut self, key: &Key, old: Value) -> WriteCondition {
        self.checks.push(Precondition::IfEqualTo(key.clone(), old));
        self
    }
    /// The key's current incarnation was created at revision `rev`.
    pub fn if_created_at(mut self, key: &Key, rev: u64) -> WriteCondition {
        self.checks.push(Precondition::CreatedAt(key.clone(), rev));
        self
    }
    /// The value at `key` is an array.
    pub fn if_is_array(mut self, key: &Key) -> WriteCondition {
        self.checks.push(Precondition::IfIsArray(key.clone()));
        self
    }
    /// Arms a lock-delay on the written key: if it later expires (its holder died rather than
    /// removing it), writes that need it empty fail for `delay` of agency time.
    pub fn with_lock_delay(mut self, delay: Duration) -> WriteCondition {
        self.lock_delay = Some(delay);
        self
    }
}

/// The agency API (seed 000).
#[async_trait]
pub trait Agency: Send + Sync {
    /// The value (subtree) at `key`.
    async fn read_key(&self, key: &Key) -> Result<Value, AgencyError>;
    /// Writes `value` at `key`, expiring after `ttl` if given, if `condition` holds.
    async fn write_key(
        &self,
        key: &Key,
        value: Value,
        ttl: Option<Duration>,
        condition: Option<WriteCondition>,
    ) -> Result<Revision, AgencyError>;
    /// Writes only if nothing is stored at `key`.
    async fn write_key_if_empty(
        &self,
        key: &Key,
        value: Value,
        ttl: Option<Duration>,
    ) -> Result<Revision, AgencyError> {
        let c = WriteCondition::new().if_empty(key);
        self.write_key(key, value, ttl, Some(c)).await
    }
    /// Writes only if the value at `key` equals `old`.
    async fn write_key_if_equal_to(
        &self,
        key: &Key,
        new: Value,
        old: Value,
        ttl: Option<Duration>,
    ) -> Result<Revision, AgencyError> {
        let c = WriteCondition::new().if_equal_to(key, old);
        self.write_key(key, new, ttl, Some(c)).await
    }
    /// Removes `key` (and its subtree) if `condition` holds.
    async fn remove_key(
        &self,
        key: &Key,
        condition: Option<WriteCondition>,
    ) -> Result<Revision, AgencyError>;
    /// Removes `key` only if its value equals `old`.
    async fn remove_key_if_equal_to(&self, key: &Key, old: Value) -> Result<Revision, AgencyError> {
        let c = WriteCondition::new().if_equal_to(key, old);
        self.remove_key(key, Some(c)).await
    }
    /// Sends every change of `key` (or of keys above or below it) to the address `url`.
    async fn register_change_callback(&self, key: &Key, url: &str) -> Result<(), AgencyError>;
    /// Stops sending changes of `key` to `url`.
    async fn unregister_change_callback(&self, key: &Key, url: &str) -> Result<(), AgencyError>;
}

/// The agency API over any backend.
#[derive(Clone)]
pub struct AgencyApi {
    client: Arc<dyn StoreClient>,
}

impl AgencyApi {
    pub fn new(client: Arc<dyn StoreClient>) -> AgencyApi {
        AgencyApi { client }
    }

    /// The Go driver's `NewAgencyConnection`: this API over a connection that sends every
    /// request to all agents at once and takes the first normal answer. Over a backend with
    /// a single agent (`mem:`), the same connection.
    pub fn broadcast(&self) -> AgencyApi {
        AgencyApi {
            client: self
                .client
                .broadcast()
                .unwrap_or_else(|| self.client.clone()),
        }
    }

    /// `register_change_callback`, returning the revision it took effect at: every change of
    /// `key` after it is sent to `url`, in order (a tenure extension: the seed's call returns
    /// nothing, so a caller could not tell which changes to expect).
    pub async fn register_change_callback_from(
        &self,
        key: &Key,
        url: &str,
    ) -> Result<Revision, AgencyError> {
        if url.is_empty() {
            return Err(AgencyError::Invalid(
                "callback url: must not be empty".into(),
            ));
        }
        let cmd = Command::Observe {
            key: key.clone(),
            url: url.to_string(),
        };
        match self.client.submit(cmd).await? {
            Outcome::Observed { revision, .. } => Ok(revision),
            Outcome::Rejected(r) => Err(AgencyError::Invalid(r.to_string())),
            other => Err(AgencyError::Invalid(format!(
                "unexpected outcome {other:?}"
            ))),
        }
    }

    /// The Go driver's `AreAgentsHealthy` (and `WithAllowNoLeader`): exactly one agent
    /// answers as leader and every other redirects to it; with `allow_no_leader`, no leader
    /// at all (and nobody naming one) is healthy too. Returns the leader agent (from 1).
    pub async fn are_agents_healthy(
        &self,
        allow_no_leader: bool,
    ) -> Result<Option<u64>, HealthError> {
        self.client.health(allow_no_leader).await
    }

    async fn txn(&self, txn: Txn) -> Result<Revision, AgencyError> {
        match self.client.submit(Command::Txn(txn)).await? {
            Outcome::Txn(TxnOutcome::Committed { revision, .. }) => Ok(revision),
            Outcome::Txn(TxnOutcome::PreconditionFailed {
                precondition,
                found,
                ..
            }) => Err(AgencyError::ConditionFailed {
                check: precondition,
                found,
            }),
            Outcome::Txn(TxnOutcome::Rejected(r)) | Outcome::Rejected(r) => {
                Err(AgencyError::Invalid(r.to_string()))
            }
            other => Err(AgencyError::Invalid(format!(
                "unexpected outcome {other:?}"
            ))),
        }
    }
}

impl AgencyApi {
    /// Submits an observer (un)registration; its outcome carries nothing to report.
    async fn observe(&self, cmd: Command) -> Result<(), AgencyError> {
        self.client.submit(cmd).await?;
        Ok(())
    }
}

fn check_writable(key: &Key) -> Result<(), AgencyError> {
    if key.is_root() {
        return Err(AgencyError::Invalid(
            "key: the root cannot be written or removed".into(),
        ));
    }
    Ok(())
}

/// A write's TTL in ms: none, or zero (the Go driver's "no TTL"), is none.
fn ttl_ms(ttl: Option<Duration>) -> Option<u64> {
    ttl.filter(|d| !d.is_zero()).map(ceil_ms)
}

#[async_trait]
impl Agency for AgencyApi {
    async fn read_key(&self, key: &Key) -> Result<Value, AgencyError> {
        let r = self.client.read(key).await?;
        match r.value {
            Some(v) => Ok(v),
            None => Err(AgencyError::KeyNotFound {
                key: key.clone(),
                missing: r.missing_prefix.unwrap_or_else(|| key.clone()),
            }),
        }
    }

    async fn write_key(
        &self,
        key: &Key,
        value: Value,
        ttl: Option<Duration>,
        condition: Option<WriteCondition>,
    ) -> Result<Revision, AgencyError> {
        check_writable(key)?;
        let ttl_ms = ttl_ms(ttl);
        let condition = condition.unwrap_or_default();
        let mut ops = vec![Op::Set {
            key: key.clone(),
            value,
            ttl_ms,
            lease: LeaseBinding::None,
        }];
        if let Some(d) = condition.lock_delay.filter(|d| !d.is_zero()) {
            ops.push(Op::LockDelay {
                key: key.clone(),
                delay_ms: ceil_ms(d),
            });
        }
        let txn = Txn {
            preconditions: condition.checks,
            ops,
            else_ops: Vec::new(),
        };
        self.txn(txn).await
    }

    async fn remove_key(
        &self,
        key: &Key,
        condition: Option<WriteCondition>,
    ) -> Result<Revision, AgencyError> {
        check_writable(key)?;
        let txn = Txn {
            preconditions: condition.map(|c| c.checks).unwrap_or_default(),
            ops: vec![Op::Delete { key: key.clone() }],
            else_ops: Vec::new(),
        };
        self.txn(txn).await
    }

    async fn register_change_callback(&self, key: &Key, url: &str) -> Result<(), AgencyError> {
        if url.is_empty() {
            return Err(AgencyError::Invalid(
                "callback url: must not be empty".into(),
            ));
        }
        self.observe(Command::Observe {
            key: key.clone(),
            url: url.to_string(),
        })
        .await
    }

    async fn unregister_change_callback(&self, key: &Key, url: &str) -> Result<(), AgencyError> {
        self.observe(Command::Unobserve {
            key: key.clone(),
            url: url.to_string(),
        })
        .await
    }
}

/// True when two endpoint URLs name the same server: schemes `http`/`tcp` and `https`/`ssl`
/// are the same, host names compare without case, and a trailing `/` does not matter.
pub fn is_same_endpoint(a: &str, b: &str) -> bool {
    fn norm(s: &str) -> String {
        let s = s.trim().trim_end_matches('/');
        let (scheme, rest) = match s.split_once("://") {
            Some((sc, r)) => (sc.to_ascii_lowercase(), r),
            None => ("http".to_string(), s),
        };
        let scheme = match scheme.as_str() {
            "tcp" | "http" | "vst" | "http+tcp" => "http",
            "ssl" | "https" | "http+ssl" | "vst+ssl" => "https",
            other => other,
        }
        .to_string();
        format!("{scheme}://{}", rest.to_ascii_lowercase())
    }
    norm(a) == norm(b)
}

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
