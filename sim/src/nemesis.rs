//! The nemesis: carries fault schedules out against a running [`Cluster`]. The faults
//! themselves (data, the swarm, validation, lifting) are tenure-analysis's `faults`,
//! re-exported here.

pub use tenure_analysis::faults::*;

use crate::cluster::Cluster;
use std::time::Duration;

/// Carries out one fault now, against `cluster`.
pub fn apply(cluster: &Cluster, fault: &Fault) {
    let handle = madsim::runtime::Handle::current();
    let net = crate::net::Net::current();
    let node = |agent: u64| cluster.nodes[agent as usize - 1].id();
    let agents = cluster.nodes.len() as u64;
    match fault {
        Fault::Partition { groups } => {
            let group_of = |a: u64| {
                groups
                    .iter()
                    .position(|g| g.contains(&a))
                    .map_or(1_000 + a as usize, |g| g)
            };
            for a in 1..=agents {
                for b in 1..=agents {
                    if a != b {
                        if group_of(a) == group_of(b) {
                            net.unclog_link(node(a), node(b));
                        } else {
                            net.clog_link(node(a), node(b));
                        }
                    }
                }
            }
        }
        Fault::Heal => {
            net.clear_delays();
            for (a, b) in cluster.take_separated() {
                if let (Some(a), Some(b)) = (cluster.process_node(a), cluster.process_node(b)) {
                    net.unclog_link(a, b);
                    net.unclog_link(b, a);
                }
            }
            for p in cluster.process_nodes() {
                for a in 1..=agents {
                    net.unclog_link(p, node(a));
                    net.unclog_link(node(a), p);
                }
            }
            for a in 1..=agents {
                for b in 1..=agents {
                    if a != b {
                        net.unclog_link(node(a), node(b));
                    }
                }
            }
        }
        Fault::Clog { from, to } => net.clog_link(node(*from), node(*to)),
        Fault::Delay {
            from,
            to,
            min_ms,
            max_ms,
        } => net.set_delay(node(*from), node(*to), *min_ms, *max_ms),
        Fault::Unclog { from, to } => net.unclog_link(node(*from), node(*to)),
        Fault::Loss { rate } => net.set_loss(*rate),
        Fault::Latency { min_ms, max_ms } => net.set_latency(
            Duration::from_millis(*min_ms),
            Duration::from_millis(*max_ms),
        ),
        Fault::Kill { agent } => {
            handle.kill(node(*agent));
            crash(cluster, *agent);
        }
        Fault::Restart { agent } => {
            // madsim needs a kill first, or the node's sockets stay bound.
            handle.kill(node(*agent));
            crash(cluster, *agent);
            handle.restart(node(*agent));
        }
        Fault::Pause { agent } => handle.pause(node(*agent)),
        Fault::Resume { agent } => handle.resume(node(*agent)),
        Fault::PauseProcess { process } => {
            if let Some(n) = cluster.process_node(*process) {
                handle.pause(n);
                cluster.note_paused(*process, true);
            }
        }
        Fault::ResumeProcess { process } => {
            if let Some(n) = cluster.process_node(*process) {
                handle.resume(n);
                cluster.note_paused(*process, false);
            }
        }
        Fault::KillProcess { process } => {
            if let Some(n) = cluster.process_node(*process) {
                handle.kill(n);
                if let Some(d) = cluster.process_disk(*process) {
                    crash_disk(&d);
                }
            }
        }
        Fault::RestartProcess { process } => {
            if let Some(n) = cluster.process_node(*process) {
                // A kill first (madsim's restart keeps the node's sockets otherwise); then
                // the node's init, a user process's factory, runs again, on what its disk
                // kept through the crash.
                handle.kill(n);
                if let Some(d) = cluster.process_disk(*process) {
                    crash_disk(&d);
                }
                handle.restart(n);
                cluster.note_paused(*process, false);
            }
        }
        Fault::IsolateProcess { process } => {
            if let Some(p) = cluster.process_node(*process) {
                for a in 1..=agents {
                    net.clog_link(p, node(a));
                    net.clog_link(node(a), p);
                }
            }
        }
        Fault::KillLeader
        | Fault::PauseLeader
        | Fault::IsolateLeader
        | Fault::PauseHolder
        | Fault::ResumeProcesses => {
            for f in resolve_now(cluster, fault).unwrap_or_default() {
                apply(cluster, &f);
            }
        }
        Fault::SeparateProcesses { a, b } => {
            if let (Some(na), Some(nb)) = (cluster.process_node(*a), cluster.process_node(*b)) {
                net.clog_link(na, nb);
                net.clog_link(nb, na);
                cluster.note_separated(*a, *b);
            }
        }
        Fault::ProcessClock { process, change } => {
            if let Some(clock) = cluster.process_clock(*process) {
                let now = cluster.true_now();
                // Validated: a drift outside (-1, 1) never reaches here.
                let _ = clock.lock().unwrap().apply(*change, now);
            }
        }
        Fault::Clock { agent, change } => {
            let now = cluster.true_now();
            // Validated: a drift outside (-1, 1) never reaches here.
            let _ = cluster.clocks[*agent as usize - 1]
                .lock()
                .unwrap()
                .apply(*change, now);
        }
    }
}

/// A crash of `agent`'s disk: of each file's unsynced tail, the run's randomness keeps none,
/// all, or a prefix (which may tear the last record).
fn crash(cluster: &Cluster, agent: u64) {
    crash_disk(&cluster.disks[agent as usize - 1]);
}

/// A crash of a disk: of each file's unsynced tail, the run's randomness keeps none, all, or
/// a prefix (which may tear the last record).
fn crash_disk(disk: &std::sync::Mutex<crate::disk::SimDisk>) {
    disk.lock()
        .unwrap()
        .crash(|_, tail| match madsim::rand::random::<u64>() % 3 {
            0 => 0,
            1 => tail,
            _ => (madsim::rand::random::<u64>() % (tail as u64 + 1)) as usize,
        });
}

/// How long a fault aimed at the leader (or a holder) waits for one, when there is none yet.
const TARGET_WAIT: Duration = Duration::from_secs(10);

/// The concrete faults `fault` stands for now, or `None` when its target does not exist now
/// (no leader elected yet, nobody holding anything).
fn resolve_now(cluster: &Cluster, fault: &Fault) -> Option<Vec<Fault>> {
    let rec = &cluster.recorder;
    match fault {
        Fault::PauseHolder => {
            let now = cluster.true_now().as_micros() as u64;
            let process = rec.current_holder(now)?;
            Some(vec![Fault::PauseProcess { process }])
        }
        Fault::ResumeProcesses => Some(
            cluster
                .paused_processes()
                .into_iter()
                .map(|process| Fault::ResumeProcess { process })
                .collect(),
        ),
        f if f.aims_at_leader() => {
            let leader = rec.latest_leader()?;
            Some(vec![f.aimed_at(leader, cluster.nodes.len() as u64)])
        }
        f => Some(vec![f.clone()]),
    }
}

/// Carries out `schedule` against `cluster`, sleeping until each step and recording each
/// fault in the cluster's history; returns the steps applied with the true time (ms) they
/// happened at. A fault aimed at the leader or a holder is resolved then (waiting up to 10 s
/// for one if there is none) and recorded and returned as the faults it became; if none
/// came, it is skipped.
pub async fn run_schedule(cluster: &Cluster, schedule: &Schedule) -> Vec<(u64, Fault)> {
    let mut done = Vec::new();
    for step in &schedule.steps {
        let at = Duration::from_millis(step.at_ms);
        let now = cluster.true_now();
        if at > now {
            madsim::time::sleep(at - now).await;
        }
        let mut waited = Duration::ZERO;
        let faults = loop {
            match resolve_now(cluster, &step.fault) {
                Some(f) => break f,
                None if waited >= TARGET_WAIT => break Vec::new(),
                None => {
                    madsim::time::sleep(Duration::from_millis(10)).await;
                    waited += Duration::from_millis(10);
                }
            }
        };
        for fault in faults {
            apply(cluster, &fault);
            cluster.recorder.record(
                "nemesis",
                crate::history::Event::Fault {
                    fault: fault.clone(),
                },
            );
            done.push((cluster.true_now().as_millis() as u64, fault));
        }
    }
    done
}

/// [`run_schedule`], then at `end_ms` whatever the faults it carried out (as resolved) left
/// in place lifted ([`Schedule::lifted`]). Returns every step carried out, lifts included.
pub async fn run_schedule_lifted(
    cluster: &Cluster,
    schedule: &Schedule,
    end_ms: u64,
) -> Vec<(u64, Fault)> {
    let mut done = run_schedule(cluster, schedule).await;
    let applied = Schedule {
        steps: done
            .iter()
            .map(|(at_ms, fault)| Step {
                at_ms: *at_ms,
                fault: fault.clone(),
            })
            .collect(),
    };
    let lifts = Schedule {
        steps: applied.lifted(end_ms).steps.split_off(applied.steps.len()),
    };
    done.extend(run_schedule(cluster, &lifts).await);
    done
}
