//! A monotonic real clock implementing core's [`Clock`]: time since the clock was made,
//! never going back; sleeps and background tasks on the tokio runtime it was made in.

use std::time::{Duration, Instant};
use tenure_core::clock::{BoxFuture, Clock};

/// Real time, monotonic, read as the time since the clock was made.
#[derive(Clone)]
pub struct RealClock {
    origin: Instant,
    runtime: tokio::runtime::Handle,
}

impl RealClock {
    /// A clock starting at zero now, spawning on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn new() -> RealClock {
        RealClock {
            origin: Instant::now(),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// This clock, shared.
    pub fn shared(&self) -> std::sync::Arc<dyn Clock> {
        std::sync::Arc::new(self.clone())
    }
}

impl Default for RealClock {
    fn default() -> Self {
        RealClock::new()
    }
}

impl Clock for RealClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
    fn sleep(&self, d: Duration) -> BoxFuture<()> {
        Box::pin(tokio::time::sleep(d))
    }
    fn spawn(&self, task: BoxFuture<()>) {
        self.runtime.spawn(task);
    }
}
