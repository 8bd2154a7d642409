//! Per-node clocks over true (virtual) time: offset, drift rate, forward and backward jumps.
//!
//! madsim has one global virtual clock. A [`NodeClock`] maps true time to a node's local
//! reading, piecewise linearly: `local(t) = anchor_local + (t - anchor_true) * (1 + drift)`.
//! A drift change re-anchors at the moment it happens; a jump moves the local reading at once.
//! The simulator keeps true time, so checkers compare every belief against it.
//! [`SkewedClock`] is core's `Clock` for one node inside a madsim run.

use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenure_core::clock::{BoxFuture, Clock};

pub use tenure_analysis::faults::ClockFault;

/// A node's local clock as a function of true time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeClock {
    anchor_true_ns: i128,
    anchor_local_ns: i128,
    drift: f64,
}

impl NodeClock {
    /// A clock reading `offset_ms` (may be negative; readings stop at zero) at true time 0,
    /// running at `1 + drift` times true speed. `drift` must lie in (-1, 1).
    pub fn new(offset_ms: i64, drift: f64) -> Result<NodeClock, String> {
        check_drift(drift)?;
        Ok(NodeClock {
            anchor_true_ns: 0,
            anchor_local_ns: offset_ms as i128 * 1_000_000,
            drift,
        })
    }

    fn local_ns(&self, true_now: Duration) -> i128 {
        let dt = true_now.as_nanos() as i128 - self.anchor_true_ns;
        if self.drift == 0.0 {
            return self.anchor_local_ns + dt;
        }
        // Through i64 where it fits (every run's does: 292 years): the same value as from
        // i128, without the slow wide conversions on every clock reading.
        let scaled = match i64::try_from(dt) {
            Ok(dt) => (dt as f64 * (1.0 + self.drift)).round() as i64 as i128,
            Err(_) => (dt as f64 * (1.0 + self.drift)).round() as i128,
        };
        self.anchor_local_ns + scaled
    }

    /// The local reading at true time `true_now` (never below zero).
    pub fn local(&self, true_now: Duration) -> Duration {
        Duration::from_nanos(self.local_ns(true_now).clamp(0, u64::MAX as i128) as u64)
    }

    /// The current drift rate.
    pub fn drift(&self) -> f64 {
        self.drift
    }

    /// Applies a fault at true time `true_now`.
    pub fn apply(&mut self, fault: ClockFault, true_now: Duration) -> Result<(), String> {
        let local = self.local_ns(true_now);
        match fault {
            ClockFault::Jump { by_ms } => {
                self.anchor_local_ns = local + by_ms as i128 * 1_000_000;
            }
            ClockFault::Drift { rate } => {
                check_drift(rate)?;
                self.anchor_local_ns = local;
                self.drift = rate;
            }
        }
        self.anchor_true_ns = true_now.as_nanos() as i128;
        Ok(())
    }

    /// The true time at which this clock reads `local`, if the clock keeps its current drift
    /// and has no more jumps (never before its last change).
    pub fn true_at(&self, local: Duration) -> Duration {
        let dl = local.as_nanos() as i128 - self.anchor_local_ns;
        let dt = (dl as f64 / (1.0 + self.drift)).round() as i128;
        Duration::from_nanos((self.anchor_true_ns + dt).clamp(0, u64::MAX as i128) as u64)
    }

    /// How much true time passes while this clock advances by `local` (absent jumps).
    pub fn true_duration_for(&self, local: Duration) -> Duration {
        local.div_f64(1.0 + self.drift)
    }
}

fn check_drift(rate: f64) -> Result<(), String> {
    if rate.is_finite() && rate > -1.0 && rate < 1.0 {
        Ok(())
    } else {
        Err(format!("clock drift rate {rate} is outside (-1, 1)"))
    }
}

/// Reads madsim's virtual time through the run's time handle, kept from when it was made:
/// `Instant::now()` inside a run goes through madsim's `clock_gettime` override, which looks
/// the runtime up and converts the instant there and back (12% of a run's wall time when
/// every reading went that way).
#[derive(Clone)]
pub struct VirtualNow(Option<madsim::time::TimeHandle>);

impl VirtualNow {
    /// The current run's time (or the process's, outside a run).
    pub fn current() -> VirtualNow {
        VirtualNow(madsim::time::TimeHandle::try_current())
    }

    pub fn now(&self) -> madsim::time::Instant {
        match &self.0 {
            Some(t) => t.now_instant(),
            None => madsim::time::Instant::now(),
        }
    }

    /// A sleep of `d` of virtual time.
    pub fn sleep(&self, d: Duration) -> madsim::time::Sleep {
        match &self.0 {
            Some(t) => t.sleep(d),
            None => madsim::time::sleep(d),
        }
    }
}

/// core's [`Clock`] for one node in a madsim run: local readings from a shared
/// [`NodeClock`] (which the nemesis may change), timers and tasks on madsim.
#[derive(Clone)]
pub struct SkewedClock {
    origin: madsim::time::Instant,
    node: Arc<Mutex<NodeClock>>,
    time: VirtualNow,
}

impl SkewedClock {
    /// Must be called inside a madsim runtime; true time counts from this call.
    pub fn new(node: Arc<Mutex<NodeClock>>) -> SkewedClock {
        let time = VirtualNow::current();
        SkewedClock {
            origin: time.now(),
            node,
            time,
        }
    }

    /// A clock whose true time counts from `origin` (shared by every node of a run, so that
    /// clock faults and restarts agree on true time).
    pub fn with_origin(origin: madsim::time::Instant, node: Arc<Mutex<NodeClock>>) -> SkewedClock {
        SkewedClock {
            origin,
            node,
            time: VirtualNow::current(),
        }
    }

    /// The node clock it reads (shared: a fault that changes it changes this clock).
    pub fn node_clock(&self) -> Arc<Mutex<NodeClock>> {
        self.node.clone()
    }

    /// A sleep of `d` of true time.
    pub fn true_sleep(&self, d: Duration) -> madsim::time::Sleep {
        self.time.sleep(d)
    }

    /// This clock as core's shared `Clock`.
    pub fn shared(&self) -> Arc<dyn Clock> {
        Arc::new(self.clone())
    }

    /// How much true time passes while this node's clock advances by `local`.
    pub fn node_true_duration(&self, local: Duration) -> Duration {
        self.node.lock().unwrap().true_duration_for(local)
    }

    /// The true time (since the origin) at which this clock will read `local`, if it keeps
    /// its current drift.
    pub fn true_at(&self, local: Duration) -> Duration {
        self.node.lock().unwrap().true_at(local)
    }

    /// True (virtual) time since this clock's origin.
    pub fn true_now(&self) -> Duration {
        self.time.now() - self.origin
    }
}

impl Clock for SkewedClock {
    fn now(&self) -> Duration {
        self.node.lock().unwrap().local(self.true_now())
    }

    fn sleep(&self, d: Duration) -> BoxFuture<()> {
        let true_d = self.node.lock().unwrap().true_duration_for(d);
        Box::pin(self.time.sleep(true_d))
    }

    fn spawn(&self, task: BoxFuture<()>) {
        drop(madsim::task::spawn(task));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn offset_drift_and_jumps() {
        let mut c = NodeClock::new(500, 0.01).unwrap();
        assert_eq!(c.local(Duration::ZERO), Duration::from_millis(500));
        assert_eq!(c.local(100 * S), Duration::from_millis(500 + 101_000));
        c.apply(ClockFault::Jump { by_ms: -2_000 }, 100 * S)
            .unwrap();
        assert_eq!(c.local(100 * S), Duration::from_millis(99_500));
        c.apply(ClockFault::Drift { rate: -0.5 }, 100 * S).unwrap();
        assert_eq!(c.local(110 * S), Duration::from_millis(104_500));
        assert_eq!(c.true_duration_for(S), 2 * S);
        assert!(c.apply(ClockFault::Drift { rate: 1.0 }, 110 * S).is_err());
        assert!(NodeClock::new(0, f64::NAN).is_err());
    }

    #[test]
    fn readings_stop_at_zero() {
        let c = NodeClock::new(-1_000, 0.0).unwrap();
        assert_eq!(c.local(Duration::from_millis(500)), Duration::ZERO);
        assert_eq!(c.local(2 * S), S);
    }

    #[test]
    fn skewed_clock_in_a_run() {
        let (local, true_t) = crate::run_seed(3, None, || async {
            let node = Arc::new(Mutex::new(NodeClock::new(0, 0.25).unwrap()));
            let c = SkewedClock::new(node);
            c.sleep(10 * S).await; // 10 s local = 8 s true
            (c.now(), c.true_now())
        })
        .unwrap();
        assert!(
            local >= 10 * S && local < 10 * S + Duration::from_millis(5),
            "{local:?}"
        );
        assert!(
            true_t >= 8 * S && true_t < 8 * S + Duration::from_millis(5),
            "{true_t:?}"
        );
    }
}
