//! Time and background work, injected: the [`Clock`] trait and [`ManualClock`].
//!
//! `core` never reads a clock. Client logic that needs the time (a lock's renewal at TTL/2, a
//! claim measured from the start of the call, a timed lock's timeout) asks the `Clock` it was
//! given. The clock is also where a client's background tasks (renewals, keep-alives, watch
//! callbacks) run, since only the world around `core` has an executor.
//!
//! [`ManualClock`] is a small deterministic single-threaded executor over virtual time:
//! `advance` moves time and runs whatever became due; `block_on` runs a future to the end,
//! jumping time forward whenever every task waits on a timer (as madsim and tokio's paused
//! clock do), so tests of TTLs take no real time.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// The drift bound `rho` a client allows for by default: it assumes its clock may run up to 1%
/// fast or slow against true time, and so believes in a grant of `d` for only `d * (1 - rho)`.
pub const DEFAULT_DRIFT_BOUND: f64 = 0.01;

/// A boxed, sendable future: what a [`Clock`] sleeps and spawns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A node's clock and task spawner.
pub trait Clock: Send + Sync + 'static {
    /// The local clock reading: time since this clock's origin. Monotonic unless the world
    /// makes it jump.
    fn now(&self) -> Duration;
    /// Completes once `now()` has advanced by at least `d`.
    fn sleep(&self, d: Duration) -> BoxFuture<()>;
    /// Runs `task` in the background, on the same executor as the caller.
    fn spawn(&self, task: BoxFuture<()>);
}

/// Runs `fut`, giving up after `d` of the clock's time: `None` on timeout.
pub async fn timeout<T>(clock: &dyn Clock, d: Duration, fut: impl Future<Output = T>) -> Option<T> {
    let fut = std::pin::pin!(fut);
    let sleep = clock.sleep(d);
    match futures::future::select(fut, sleep).await {
        futures::future::Either::Left((v, _)) => Some(v),
        futures::future::Either::Right(((), _)) => None,
    }
}

/// Converts a duration to whole milliseconds, rounding up so that a TTL is never shortened.
pub fn ceil_ms(d: Duration) -> u64 {
    let ms = d.as_millis();
    let ms = if d > Duration::from_millis(ms as u64) {
        ms + 1
    } else {
        ms
    };
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// A clock that moves only when told, with its own deterministic executor.
#[derive(Clone, Default)]
pub struct ManualClock {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    tasks: Mutex<Vec<Option<BoxFuture<()>>>>,
}

#[derive(Default)]
struct State {
    now: Duration,
    next_timer_id: u64,
    timers: BTreeMap<(Duration, u64), Option<Waker>>,
    ready: VecDeque<usize>,
    main_woken: bool,
}

struct TaskWaker {
    id: usize,
    inner: Weak<Inner>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        if let Some(inner) = self.inner.upgrade() {
            inner.state.lock().unwrap().ready.push_back(self.id);
        }
    }
}

struct MainWaker {
    inner: Weak<Inner>,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        if let Some(inner) = self.inner.upgrade() {
            inner.state.lock().unwrap().main_woken = true;
        }
    }
}

struct Sleep {
    inner: Arc<Inner>,
    deadline: Duration,
    id: Option<u64>,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let inner = self.inner.clone();
        let mut st = inner.state.lock().unwrap();
        if st.now >= self.deadline {
            if let Some(id) = self.id.take() {
                st.timers.remove(&(self.deadline, id));
            }
            return Poll::Ready(());
        }
        let id = match self.id {
            Some(id) => id,
            None => {
                let id = st.next_timer_id;
                st.next_timer_id += 1;
                self.id = Some(id);
                id
            }
        };
        st.timers
            .insert((self.deadline, id), Some(cx.waker().clone()));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            if let Ok(mut st) = self.inner.state.lock() {
                st.timers.remove(&(self.deadline, id));
            }
        }
    }
}

impl ManualClock {
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// This clock as a shared [`Clock`].
    pub fn shared(&self) -> Arc<dyn Clock> {
        Arc::new(self.clone())
    }

    /// Drops every background task and pending timer. A task usually holds the clock it runs
    /// on (a `mem:` backend's ticker does), so a clock with tasks keeps itself alive: call
    /// this when done with a clock that is not dropped with the process (the fuzz targets
    /// make one per input).
    pub fn shutdown(&self) {
        let tasks = std::mem::take(&mut *self.inner.tasks.lock().unwrap());
        {
            let mut st = self.inner.state.lock().unwrap();
            st.timers.clear();
            st.ready.clear();
        }
        // Dropped outside the locks: a task's drop may touch the clock.
        drop(tasks);
    }

    /// Polls every runnable background task until none is runnable.
    pub fn run_until_stalled(&self) {
        loop {
            let next = self.inner.state.lock().unwrap().ready.pop_front();
            let Some(id) = next else { return };
            let task = self
                .inner
                .tasks
                .lock()
                .unwrap()
                .get_mut(id)
                .and_then(Option::take);
            let Some(mut task) = task else { continue };
            let waker = Waker::from(Arc::new(TaskWaker {
                id,
                inner: Arc::downgrade(&self.inner),
            }));
            let mut cx = Context::from_waker(&waker);
            if task.as_mut().poll(&mut cx).is_pending() {
                self.inner.tasks.lock().unwrap()[id] = Some(task);
            }
        }
    }

    fn next_deadline(&self) -> Option<Duration> {
        self.inner
            .state
            .lock()
            .unwrap()
            .timers
            .keys()
            .next()
            .map(|(d, _)| *d)
    }

    fn wake_due(&self) {
        let wakers: Vec<Waker> = {
            let mut st = self.inner.state.lock().unwrap();
            let now = st.now;
            st.timers
                .range_mut(..=(now, u64::MAX))
                .filter_map(|(_, w)| w.take())
                .collect()
        };
        // Waking locks the state again: the lock above must be released first.
        for w in wakers {
            w.wake();
        }
    }

    /// Moves time forward by `d`, stopping at every timer on the way so that what it wakes
    /// runs at its own deadline.
    pub fn advance(&self, d: Duration) {
        let target = self.now() + d;
        loop {
            self.run_until_stalled();
            match self.next_deadline() {
                Some(t) if t <= target => {
                    {
                        let mut st = self.inner.state.lock().unwrap();
                        st.now = st.now.max(t);
                    }
                    self.wake_due();
                }
                _ => break,
            }
        }
        self.inner.state.lock().unwrap().now = target;
        self.wake_due();
        self.run_until_stalled();
    }

    /// Runs `fut` to completion with the background tasks, jumping time to the next timer
    /// whenever nothing can run.
    ///
    /// # Panics
    /// When every task waits and no timer is pending: the future can never finish.
    pub fn block_on<T>(&self, fut: impl Future<Output = T>) -> T {
        let mut fut = std::pin::pin!(fut);
        let waker = Waker::from(Arc::new(MainWaker {
            inner: Arc::downgrade(&self.inner),
        }));
        let mut cx = Context::from_waker(&waker);
        self.inner.state.lock().unwrap().main_woken = true;
        loop {
            let woken = std::mem::take(&mut self.inner.state.lock().unwrap().main_woken);
            if woken {
                if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                    return v;
                }
            }
            self.run_until_stalled();
            let st = self.inner.state.lock().unwrap();
            if st.main_woken || !st.ready.is_empty() {
                continue;
            }
            drop(st);
            match self.next_deadline() {
                Some(t) => {
                    {
                        let mut st = self.inner.state.lock().unwrap();
                        st.now = st.now.max(t);
                    }
                    self.wake_due();
                }
                None => panic!(
                    "ManualClock::block_on: every task is waiting and no timer is pending, \
                     so the future can never complete (a deadlock)"
                ),
            }
        }
    }

    /// Number of background tasks that have not finished.
    pub fn live_tasks(&self) -> usize {
        let tasks = self.inner.tasks.lock().unwrap();
        tasks.iter().filter(|t| t.is_some()).count()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        self.inner.state.lock().unwrap().now
    }

    fn sleep(&self, d: Duration) -> BoxFuture<()> {
        let deadline = self.now() + d;
        Box::pin(Sleep {
            inner: self.inner.clone(),
            deadline,
            id: None,
        })
    }

    fn spawn(&self, task: BoxFuture<()>) {
        let id = {
            let mut tasks = self.inner.tasks.lock().unwrap();
            tasks.push(Some(task));
            tasks.len() - 1
        };
        self.inner.state.lock().unwrap().ready.push_back(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn shutdown_frees_tasks_that_hold_their_clock() {
        let clock = ManualClock::new();
        let held = Arc::new(());
        let (c, h) = (clock.shared(), held.clone());
        clock.spawn(Box::pin(async move {
            let _keep = h;
            loop {
                c.sleep(Duration::from_secs(1)).await;
            }
        }));
        clock.advance(Duration::from_secs(3));
        assert_eq!(Arc::strong_count(&held), 2);
        clock.shutdown();
        assert_eq!(
            Arc::strong_count(&held),
            1,
            "the task and its clock are gone"
        );
    }

    #[test]
    fn advance_runs_timers_at_their_deadlines() {
        let clock = ManualClock::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        for ms in [30u64, 10, 20] {
            let c = clock.clone();
            let seen = seen.clone();
            clock.spawn(Box::pin(async move {
                c.sleep(Duration::from_millis(ms)).await;
                seen.lock().unwrap().push((ms, c.now()));
            }));
        }
        clock.advance(Duration::from_millis(25));
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                (10, Duration::from_millis(10)),
                (20, Duration::from_millis(20))
            ]
        );
        assert_eq!(clock.now(), Duration::from_millis(25));
        clock.advance(Duration::from_millis(5));
        assert_eq!(seen.lock().unwrap().len(), 3);
        assert_eq!(clock.live_tasks(), 0);
    }

    #[test]
    fn block_on_jumps_to_the_next_timer() {
        let clock = ManualClock::new();
        let c = clock.clone();
        let t = clock.block_on(async move {
            c.sleep(Duration::from_secs(3600)).await;
            c.now()
        });
        assert_eq!(t, Duration::from_secs(3600));
    }

    #[test]
    fn periodic_background_task_keeps_time() {
        let clock = ManualClock::new();
        let n = Arc::new(AtomicU64::new(0));
        let (c, n2) = (clock.clone(), n.clone());
        clock.spawn(Box::pin(async move {
            loop {
                c.sleep(Duration::from_millis(100)).await;
                n2.fetch_add(1, Ordering::SeqCst);
            }
        }));
        let c = clock.clone();
        clock.block_on(async move { c.sleep(Duration::from_millis(1050)).await });
        assert_eq!(n.load(Ordering::SeqCst), 10);
    }

    #[test]
    fn timeout_gives_up() {
        let clock = ManualClock::new();
        let c = clock.clone();
        let r = clock.block_on(async move {
            let forever = futures::future::pending::<()>();
            timeout(&c, Duration::from_secs(2), forever).await
        });
        assert_eq!(r, None);
        assert_eq!(clock.now(), Duration::from_secs(2));
        let c = clock.clone();
        let r =
            clock.block_on(async move { timeout(&c, Duration::from_secs(2), async { 7 }).await });
        assert_eq!(r, Some(7));
    }

    #[test]
    #[should_panic(expected = "deadlock")]
    fn block_on_reports_a_deadlock() {
        ManualClock::new().block_on(futures::future::pending::<()>());
    }

    #[test]
    fn ceil_ms_rounds_up() {
        assert_eq!(ceil_ms(Duration::from_micros(1500)), 2);
        assert_eq!(ceil_ms(Duration::from_millis(3)), 3);
        assert_eq!(ceil_ms(Duration::ZERO), 0);
    }
}
