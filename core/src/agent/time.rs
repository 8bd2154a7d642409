//! The agent's own time, quinn-style: when the driver must wake it (`poll_timeout`), the
//! ticks up to now (`handle_timeout`, the ones that only count counted at once), and the
//! leader's agency-time proposals (`Tick` entries at `1 - rho` of its clock).

use super::*;

impl AgentCore {
    /// Sets the local time between Raft ticks (10 ms by default; at least 1 µs).
    pub fn with_tick_period(mut self, period: Duration) -> AgentCore {
        self.tick_period = period.max(Duration::from_micros(1));
        self
    }

    /// Starts counting time at local time `now`: the first tick is due one period later.
    pub fn start(&mut self, now: Duration) {
        self.next_tick = now + self.tick_period;
    }

    /// When the next tick is due (local time), whether or not it acts.
    pub fn next_tick(&self) -> Duration {
        self.next_tick
    }

    /// When the driver must call [`AgentCore::handle_timeout`] next (local time), as quinn's
    /// `poll_timeout`: the next tick that acts (a heartbeat, a quorum check, an election, an
    /// agency-time proposal); the ticks before it only count and are counted on the way.
    pub fn poll_timeout(&self) -> Duration {
        let due = self.ticks_until_due(self.next_tick, self.tick_period);
        let skipped = u32::try_from(due - 1).unwrap_or(u32::MAX);
        self.next_tick + self.tick_period * skipped
    }

    /// Brings Raft's logical clock up to local time `now`: one tick per period, those that
    /// only count counted at once. Call it when [`AgentCore::poll_timeout`] passes and before
    /// feeding a message or a request at `now` (cheap when nothing is due). The same as a
    /// timer per tick, event for event, except across clock jumps: after a backward jump the
    /// lost time is not replayed; a forward jump counts the time it skipped up to the next
    /// tick that acts, which runs once (a tick late by a whole period or more drops the rest
    /// rather than tick in a burst).
    pub fn handle_timeout(&mut self, now: Duration) {
        let tick = self.tick_period;
        if now + tick < self.next_tick {
            self.next_tick = now + tick;
            return;
        }
        while self.next_tick <= now {
            let due = self.ticks_until_due(self.next_tick, tick);
            if due > 1 {
                let passed = ((now - self.next_tick).as_nanos() / tick.as_nanos().max(1)) as u64;
                let n = (due - 1).min(passed + 1);
                self.skip_ticks(n);
                self.next_tick += tick * u32::try_from(n).unwrap_or(u32::MAX);
                continue;
            }
            self.tick(now);
            self.next_tick = if now >= self.next_tick + tick {
                now + tick
            } else {
                self.next_tick + tick
            };
        }
    }

    /// A Raft tick at local time `now`; the leader also proposes agency time, every
    /// `agency_tick` of its clock while something waits on it (a TTL, a lease, a
    /// lock-delay). While nothing does, no `Tick` is proposed: the time is not lost, the next
    /// `Tick` (before a write, or once something waits) carries all of it since the last.
    pub fn tick(&mut self, now: Duration) {
        self.raft.tick();
        if !self.is_leader() {
            self.ticked_until = None;
            return;
        }
        if self.ticked_until.is_none() && self.config.bugs.contains(Bug::NewLeaderUsesOwnClock) {
            // Planted: the new leader takes agency time from its own clock (scaled), so the
            // time no leader counted, and its clock's lead, run every deadline down at once.
            let own_ms = (now.as_secs_f64() * 1000.0 * (1.0 - self.config.rho)).floor() as u64;
            let advance_ms = own_ms.saturating_sub(self.store.now_ms());
            if advance_ms > 0 {
                let _ = self.raft.propose(Command::Tick { advance_ms });
            }
        }
        let since = *self.ticked_until.get_or_insert(now);
        if now.saturating_sub(since) >= self.config.agency_tick && self.store.waits_on_time() {
            self.advance_agency_time(now, false);
        }
    }

    /// How many ticks until one that acts, when they come every `period` of local time and
    /// the next is at `next_at`: Raft's next heartbeat, quorum check or election, or (while
    /// leading) the next agency-time proposal. At least 1. The ones before it may be counted
    /// at once with [`AgentCore::skip_ticks`].
    pub fn ticks_until_due(&self, next_at: Duration, period: Duration) -> u64 {
        let raft = u64::from(self.raft.ticks_until_due());
        if !self.is_leader() {
            return raft;
        }
        let Some(since) = self.ticked_until else {
            // The first tick as leader starts counting agency time.
            return 1;
        };
        if !self.store.waits_on_time() {
            return raft;
        }
        let due_at = since + self.config.agency_tick;
        let agency = if due_at <= next_at || period.is_zero() {
            1
        } else {
            ((due_at - next_at).as_nanos().div_ceil(period.as_nanos()) as u64).saturating_add(1)
        };
        raft.min(agency)
    }

    /// `n` ticks that do nothing but count (fewer than [`AgentCore::ticks_until_due`]).
    pub fn skip_ticks(&mut self, n: u64) {
        self.raft.skip_ticks(n.min(u64::from(u32::MAX)) as u32);
        if !self.is_leader() {
            self.ticked_until = None;
        }
    }

    /// While leader: proposes a `Tick` for the local time elapsed since the last one, times
    /// `1 - rho`, in whole milliseconds. A periodic tick carries the fraction over, so agency
    /// time runs at exactly `1 - rho` of the leader's clock. Before a write (`before_write`)
    /// the count restarts at `now`, dropping the fraction: the write's agency time is then
    /// current, so a TTL it sets runs from the moment the leader proposed it, never from a
    /// stale tick before the client's call began (dropping time only slows agency time,
    /// which errs on the safe side).
    pub(super) fn advance_agency_time(&mut self, now: Duration, before_write: bool) {
        let rate = if self.config.bugs.contains(Bug::NoDriftMargin) {
            1.0
        } else {
            1.0 - self.config.rho
        };
        let since = *self.ticked_until.get_or_insert(now);
        let elapsed = now.saturating_sub(since);
        let advance_ms = (elapsed.as_secs_f64() * 1000.0 * rate).floor() as u64;
        if advance_ms > 0 && self.raft.propose(Command::Tick { advance_ms }).is_err() {
            return;
        }
        self.ticked_until = Some(if before_write {
            now
        } else {
            since + Duration::from_secs_f64(advance_ms as f64 / 1000.0 / rate).min(elapsed)
        });
    }
}
