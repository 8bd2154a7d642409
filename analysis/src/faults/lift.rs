//! What a schedule leaves in place, lifted at the end of a run.

use super::*;

impl Schedule {
    /// This schedule, then at `end_ms` whatever it left in place lifted: a heal if it cut or
    /// clogged links, loss and latency back to normal, per-link delays removed, killed agents
    /// restarted, paused agents and processes resumed (killed processes stay dead; clock
    /// drift and jumps stay). So liveness after the heal is checked of every schedule.
    pub fn lifted(&self, end_ms: u64) -> Schedule {
        use std::collections::BTreeSet;
        let (mut cut, mut loss, mut latency) = (false, false, false);
        let mut delays = BTreeSet::new();
        let (mut down, mut paused, mut frozen) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for step in &self.steps {
            match &step.fault {
                Fault::Partition { .. }
                | Fault::Clog { .. }
                | Fault::IsolateProcess { .. }
                | Fault::SeparateProcesses { .. } => cut = true,
                Fault::Heal => cut = false,
                Fault::Unclog { .. }
                | Fault::KillProcess { .. }
                | Fault::RestartProcess { .. }
                | Fault::ProcessClock { .. }
                | Fault::Clock { .. } => {}
                // Resolved to concrete faults when carried out; lift those
                // ([`run_schedule_lifted`]).
                Fault::KillLeader
                | Fault::PauseLeader
                | Fault::IsolateLeader
                | Fault::PauseHolder
                | Fault::ResumeProcesses => {}
                Fault::Loss { rate } => loss = *rate > 0.0,
                Fault::Latency { min_ms, max_ms } => {
                    latency = (*min_ms, *max_ms) != DEFAULT_LATENCY_MS
                }
                Fault::Delay {
                    from, to, max_ms, ..
                } => {
                    if *max_ms == 0 {
                        delays.remove(&(*from, *to));
                    } else {
                        delays.insert((*from, *to));
                    }
                }
                Fault::Kill { agent } => {
                    down.insert(*agent);
                }
                Fault::Restart { agent } => {
                    down.remove(agent);
                }
                Fault::Pause { agent } => {
                    paused.insert(*agent);
                }
                Fault::Resume { agent } => {
                    paused.remove(agent);
                }
                Fault::PauseProcess { process } => {
                    frozen.insert(*process);
                }
                Fault::ResumeProcess { process } => {
                    frozen.remove(process);
                }
            }
        }
        let mut lift = Vec::new();
        if cut {
            lift.push(Fault::Heal);
        }
        if loss {
            lift.push(Fault::Loss { rate: 0.0 });
        }
        if latency {
            lift.push(Fault::Latency {
                min_ms: DEFAULT_LATENCY_MS.0,
                max_ms: DEFAULT_LATENCY_MS.1,
            });
        }
        lift.extend(delays.into_iter().map(|(from, to)| Fault::Delay {
            from,
            to,
            min_ms: 0,
            max_ms: 0,
        }));
        lift.extend(down.into_iter().map(|agent| Fault::Restart { agent }));
        lift.extend(paused.into_iter().map(|agent| Fault::Resume { agent }));
        lift.extend(
            frozen
                .into_iter()
                .map(|process| Fault::ResumeProcess { process }),
        );
        let mut steps = self.steps.clone();
        steps.extend(lift.into_iter().map(|fault| Step {
            at_ms: end_ms,
            fault,
        }));
        Schedule { steps }
    }
}
