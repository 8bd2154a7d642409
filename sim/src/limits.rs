//! The limits a run meets, and a [`RunConfig`] checked against them as a whole.
//!
//! A run is stopped as hung when its virtual time passes [`RunConfig::time_limit`]. Every
//! setting is bounded on its own, and the virtual time the whole run may need (the workload,
//! its tail after the duration, and the runner's checks after the heal, each bounded by the
//! settings) must fit under [`MAX_RUN_VIRTUAL`]; [`RunConfig::virtual_bound`] is that need and
//! becomes the run's time limit. So a setting of hours is refused before the run with the
//! sum that broke the limit, instead of the run dying at the limit.

use crate::run::RunConfig;
use std::time::Duration;

/// Most virtual time any run may need: a duration of an hour with every wait at its
/// longest still fits.
pub const MAX_RUN_VIRTUAL: Duration = Duration::from_secs(3 * 3_600);

/// Most virtual duration of a run's workload.
pub const MAX_DURATION: Duration = Duration::from_secs(3_600);

/// Most registers a workload spreads over.
pub const MAX_REGISTERS: usize = 10_000;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3_600);

impl RunConfig {
    /// The longest a client call can take: every attempt timing out, with the pauses between.
    fn call_bound(&self) -> Duration {
        let c = &self.client;
        (c.request_timeout.saturating_add(c.retry_pause)).saturating_mul(c.max_attempts as u32)
    }

    /// How long after the heal a dead (or departed) holder's grant must be free again: the TTL
    /// on the agency's clock read through the drift bound, the lock-delay, and the election
    /// bound (L2, L3).
    pub fn release_bound(&self) -> Duration {
        let rho = self.cluster.agent.rho;
        let slow = if (0.0..0.5).contains(&rho) {
            1.0 - rho
        } else {
            0.5
        };
        self.lock_ttl
            .div_f64(slow)
            .saturating_add(self.lock_delay)
            .saturating_add(self.liveness_bound)
    }

    /// The most virtual time this run can need: its duration; the tail of the workload (a
    /// pause, a holder's work and grant, calls in flight); the runner's checks after the heal
    /// (liveness, each grant acquirable again, watchers caught up); and a minute's slack.
    pub fn virtual_bound(&self) -> Duration {
        let call = self.call_bound();
        let release = self.release_bound();
        let tail = [self.op_pause, self.work, release, call.saturating_mul(3)];
        let finale = [
            self.liveness_bound,
            call,
            release
                .saturating_add(call.saturating_mul(2))
                .saturating_mul(3),
            self.liveness_bound,
            call,
            MINUTE,
        ];
        tail.iter()
            .chain(&finale)
            .fold(self.duration, |a, b| a.saturating_add(*b))
    }

    /// Checks every setting against its limit and the whole run against
    /// [`MAX_RUN_VIRTUAL`]; the error names the setting (by its scenario-file name).
    pub fn check_limits(&self) -> Result<(), String> {
        let over = |field: &str, v: Duration, max: Duration| -> Result<(), String> {
            if v > max {
                Err(format!(
                    "settings.{field}: {} ms is over the limit of {} ms",
                    v.as_millis(),
                    max.as_millis()
                ))
            } else {
                Ok(())
            }
        };
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return Err(format!(
                "settings.duration_ms: must be more than 0 and at most {} ms (an hour)",
                MAX_DURATION.as_millis()
            ));
        }
        if self.registers == 0 || self.registers > MAX_REGISTERS {
            return Err(format!(
                "settings.registers: must be 1 to {MAX_REGISTERS}, not {}",
                self.registers
            ));
        }
        over("op_pause_ms", self.op_pause, 10 * MINUTE)?;
        over("work_ms", self.work, 10 * MINUTE)?;
        over("lock_ttl_ms", self.lock_ttl, HOUR)?;
        over("lock_delay_ms", self.lock_delay, HOUR)?;
        over("liveness_bound_ms", self.liveness_bound, HOUR)?;
        over("request_timeout_ms", self.client.request_timeout, MINUTE)?;
        over("clock_spread_ms", self.cluster.clock_spread, HOUR)?;
        let raft = &self.cluster.agent.raft;
        if raft.heartbeat_ticks == 0 || raft.heartbeat_ticks > 1_000 {
            return Err("settings.heartbeat_ticks: must be 1 to 1000".into());
        }
        if raft.election_ticks <= raft.heartbeat_ticks || raft.election_ticks > 10_000 {
            return Err(
                "settings.election_ticks: must exceed heartbeat_ticks and be at most 10000".into(),
            );
        }
        // An election takes up to two election timeouts (each drawn below 2x the base); a
        // bound shorter than one can never be met, which is a bad setting, not a finding.
        let election = self
            .cluster
            .tick
            .saturating_mul(raft.election_ticks.saturating_mul(2));
        if self.liveness_bound < election {
            return Err(format!(
                "settings.liveness_bound_ms: {} ms is shorter than one election timeout ({} ms: \
                 2 x election_ticks x the {} ms tick): no cluster could meet it",
                self.liveness_bound.as_millis(),
                election.as_millis(),
                self.cluster.tick.as_millis()
            ));
        }
        if let crate::run::FaultPoints::Only(names) = &self.fault_points {
            for n in names {
                tenure_core::buggify::find(n).map_err(|e| format!("settings.fault_points: {e}"))?;
            }
        }
        let need = self.virtual_bound();
        if need > MAX_RUN_VIRTUAL {
            return Err(format!(
                "the run could need {} s of virtual time, over the limit of {} s: the duration \
                 ({} ms) plus the waits after it (op_pause, work, lock_ttl through rho, \
                 lock_delay, liveness_bound, and client calls of up to {} ms) are too long \
                 together",
                need.as_secs(),
                MAX_RUN_VIRTUAL.as_secs(),
                self.duration.as_millis(),
                self.call_bound().as_millis()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_run_fits_and_settings_of_hours_are_refused_by_name() {
        let c = RunConfig::default();
        c.check_limits().unwrap();
        assert!(c.virtual_bound() < Duration::from_secs(600));
        let mut long = RunConfig {
            duration: MAX_DURATION,
            ..RunConfig::default()
        };
        long.check_limits().unwrap();
        long.lock_ttl = Duration::from_secs(3_000);
        long.lock_delay = Duration::from_secs(3_000);
        let e = long.check_limits().unwrap_err();
        assert!(e.contains("virtual time"), "{e}");
        let e = RunConfig {
            op_pause: Duration::from_secs(7_200),
            ..RunConfig::default()
        }
        .check_limits()
        .unwrap_err();
        assert!(e.contains("op_pause_ms"), "{e}");
        let e = RunConfig {
            liveness_bound: Duration::ZERO,
            ..RunConfig::default()
        }
        .check_limits()
        .unwrap_err();
        assert!(e.contains("liveness_bound_ms"), "{e}");
        let mut c = RunConfig::default();
        c.cluster.agent.raft.election_ticks = u32::MAX;
        assert!(c.check_limits().unwrap_err().contains("election_ticks"));
    }
}
