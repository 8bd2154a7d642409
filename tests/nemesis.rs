//! Seeded runs of the whole world (`tenure::sim::run`): a 3-agent cluster under swarm fault
//! schedules (partitions, clogged and slowed links, loss, latency, kills and restarts with
//! torn disks, pauses, clock jumps and drift within the bound) while clients run a mixed KV
//! workload. Every run is checked for Raft safety (S12), durability of acknowledged writes
//! (S15) and liveness after the heal (L1); runs are reproduced exactly by their seed.

use std::collections::BTreeMap;
use std::time::Duration;
use tenure::sim::check;
use tenure::sim::history::{Completion, Event, History};
use tenure::sim::nemesis::Fault;
use tenure::sim::{run, self_check, sweep, Faults, RunConfig, Schedule};

/// How many swarm seeds the suite runs; `tenure sweep` runs more.
const SEEDS: u64 = 300;

#[test]
fn swarm_seeds_keep_raft_safe_writes_durable_and_the_cluster_live() {
    let config = RunConfig::default();
    // Two seeds at a time (CI has 2 cores), each on its own fresh thread.
    let results = sweep(0..SEEDS, 2, |seed| run(&config, seed));
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut ok, mut info, mut terms, mut installed) = (0, 0, 0, 0);
    let mut healthy = 0;
    let (mut watched, mut starts, mut caught_up) = (0, 0, 0);
    let mut failures = Vec::new();
    for (seed, r) in &results {
        match r {
            Ok(report) => {
                for v in &report.violations {
                    failures.push(format!("seed {seed}: {v}"));
                }
                for s in &report.schedule.steps {
                    *kinds.entry(Fault::kind(&s.fault)).or_default() += 1;
                }
                healthy += report.history.records.iter().any(
                    |r| matches!(&r.event, Event::Check { name, ok: true, .. } if name == "health"),
                ) as usize;
                for r in &report.history.records {
                    match &r.event {
                        Event::Watched { .. } => watched += 1,
                        Event::WatchStart { .. } => starts += 1,
                        Event::Check { name, ok: true, .. } if name == "watchers" => caught_up += 1,
                        _ => {}
                    }
                }
                ok += report.counters.ops_ok;
                info += report.counters.ops_indeterminate;
                terms += report.counters.leader_terms;
                installed += report.counters.snapshots_installed;
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The sweep exercised what it claims to.
    for k in [
        "partition",
        "heal",
        "clog",
        "loss",
        "latency",
        "delay",
        "kill",
        "restart",
        "pause",
        "resume",
        "clock",
    ] {
        assert!(
            kinds.get(k).copied().unwrap_or(0) >= 20,
            "few {k} faults: {kinds:?}"
        );
    }
    assert!(ok > 100 * SEEDS as usize, "{ok} operations succeeded");
    assert!(info > 0, "some operations ended indeterminate");
    assert!(
        terms > SEEDS as usize + 50,
        "leaders changed ({terms} terms)"
    );
    assert!(
        installed >= 20,
        "lagging agents caught up from snapshots ({installed})"
    );
    // S17 ran and held on every run (a failed probe is a violation above).
    assert_eq!(healthy, SEEDS as usize, "{healthy} health checks held");
    // The watcher of every run received changes (S16 checked each) and caught up after the
    // heal (L5), unless the swarm killed it.
    assert!(watched > 30 * SEEDS as usize, "{watched} changes watched");
    assert!(
        caught_up >= SEEDS as usize * 9 / 10,
        "{caught_up} watchers caught up"
    );
    eprintln!(
        "{SEEDS} seeds: {ok} ops ok, {info} indeterminate, {terms} leader terms, \
         {installed} snapshots installed, faults {kinds:?}; health held in {healthy}; \
         {watched} changes watched from {starts} watch starts, {caught_up} watchers caught up"
    );
}

#[test]
fn the_same_seed_gives_a_byte_identical_history() {
    for seed in [3, 17] {
        let report = self_check(&RunConfig::default(), seed).unwrap();
        assert!(report.ok(), "{:?}", report.violations);
        let text = report.history.to_jsonl();
        let back = History::from_jsonl(&text).unwrap();
        assert_eq!(back, report.history);
        assert_eq!(back.digest(), report.digest);
    }
    // With every envelope recorded too.
    let config = RunConfig {
        record_messages: true,
        ..RunConfig::default()
    };
    let report = self_check(&config, 5).unwrap();
    let sent = report
        .history
        .records
        .iter()
        .filter(|r| {
            matches!(
                r.event,
                Event::Message {
                    delivered: false,
                    ..
                }
            )
        })
        .count() as u64;
    assert_eq!(sent, report.counters.messages_sent);
    assert!(sent > 1000);
    // Every delivery names the sending it belongs to, with the same summary.
    let mut sendings = BTreeMap::new();
    let mut paired = 0;
    for r in &report.history.records {
        if let Event::Message {
            delivered,
            summary,
            id,
            ..
        } = &r.event
        {
            if *delivered {
                assert_eq!(sendings.get(id), Some(summary), "delivery of {id}");
                paired += 1;
            } else {
                assert!(sendings.insert(*id, summary.clone()).is_none(), "id {id}");
            }
        }
    }
    assert!(paired > 1000);
    // Different seeds, different runs.
    let other = run(&RunConfig::default(), 4).unwrap();
    let again = run(&RunConfig::default(), 3).unwrap();
    assert_ne!(other.digest, again.digest);
}

#[test]
fn a_written_schedule_runs_and_is_recorded() {
    let schedule = Schedule::from_json(
        r#"{"steps": [
            {"at_ms": 1000, "fault": {"kind": "kill", "agent": 1}},
            {"at_ms": 2500, "fault": {"kind": "partition", "groups": [[2], [3]]}},
            {"at_ms": 4000, "fault": {"kind": "heal"}},
            {"at_ms": 4000, "fault": {"kind": "delay", "from": 2, "to": 3, "min_ms": 50, "max_ms": 200}},
            {"at_ms": 5000, "fault": {"kind": "restart", "agent": 1}},
            {"at_ms": 6000, "fault": {"kind": "pause", "agent": 2}},
            {"at_ms": 7000, "fault": {"kind": "resume", "agent": 2}},
            {"at_ms": 8000, "fault": {"kind": "heal"}}
        ]}"#,
        3,
    )
    .unwrap();
    let config = RunConfig {
        faults: Faults::Schedule(schedule.clone()),
        duration: Duration::from_secs(9),
        ..RunConfig::default()
    };
    let report = run(&config, 1).unwrap();
    assert!(report.ok(), "{:?}", report.violations);
    let faults: Vec<&Fault> = report
        .history
        .records
        .iter()
        .filter_map(|r| match &r.event {
            Event::Fault { fault } => Some(fault),
            _ => None,
        })
        .collect();
    // The schedule, then what it left in place (the 2 -> 3 delay) lifted at the end.
    let lifted = schedule.lifted(9_000);
    assert_eq!(lifted.steps.len(), schedule.steps.len() + 1);
    assert_eq!(
        faults,
        lifted.steps.iter().map(|s| &s.fault).collect::<Vec<_>>()
    );
    // While a majority was down or split, writes failed or ended unknown; afterwards they
    // succeeded again.
    assert!(report.counters.ops_failed + report.counters.ops_indeterminate > 0);
    assert_eq!(report.counters.faults, 9);
    let live = report
        .history
        .records
        .iter()
        .any(|r| matches!(&r.event, Event::Check { name, ok: true, .. } if name == "liveness"));
    assert!(live);
}

/// Faults aimed at the leader hit whoever leads at that moment, are recorded as the fault they
/// became, and what they leave in place is lifted at the end.
#[test]
fn faults_aimed_at_the_leader_hit_the_leader_of_the_moment() {
    let schedule = Schedule::from_json(
        r#"{"steps": [
            {"at_ms": 2000, "fault": {"kind": "kill_leader"}},
            {"at_ms": 4500, "fault": {"kind": "isolate_leader"}},
            {"at_ms": 6000, "fault": {"kind": "heal"}},
            {"at_ms": 6500, "fault": {"kind": "pause_leader"}}
        ]}"#,
        5,
    )
    .unwrap();
    let mut config = RunConfig {
        faults: Faults::Schedule(schedule),
        duration: Duration::from_secs(9),
        ..RunConfig::default()
    };
    config.cluster.agents = 5;
    let report = run(&config, 3).unwrap();
    assert!(report.ok(), "{:?}", report.violations);
    // Who led when each fault came, from the role records before it.
    let mut leading: BTreeMap<u64, u64> = BTreeMap::new();
    let mut hit = Vec::new();
    for r in &report.history.records {
        match &r.event {
            Event::Role {
                agent, role, term, ..
            } => {
                if role == "leader" {
                    leading.insert(*agent, *term);
                } else {
                    leading.remove(agent);
                }
            }
            Event::Fault { fault } => {
                let leader = leading.iter().max_by_key(|(_, t)| **t).map(|(a, _)| *a);
                hit.push((fault.clone(), leader));
            }
            _ => {}
        }
    }
    let target = |f: &Fault| match f {
        Fault::Kill { agent } | Fault::Pause { agent } => Some(*agent),
        Fault::Partition { groups } => Some(groups[0][0]),
        _ => None,
    };
    let aimed: Vec<_> = hit.iter().filter(|(f, _)| f.kind() != "heal").collect();
    assert!(aimed.len() >= 3, "{hit:?}");
    for (fault, leader) in &aimed[..3] {
        assert_eq!(target(fault), *leader, "{fault} hit a follower: {hit:?}");
    }
    assert!(matches!(aimed[1].0, Fault::Partition { ref groups } if groups[0].len() == 1));
    // The killed and the paused leaders are restarted and resumed at the end.
    let tail: Vec<String> = report.schedule.steps[4..]
        .iter()
        .map(|s| s.fault.to_string())
        .collect();
    let killed = target(&aimed[0].0).unwrap();
    let paused = target(&aimed[2].0).unwrap();
    assert!(
        tail.contains(&format!("restart agent {killed}")),
        "{tail:?}"
    );
    assert!(tail.contains(&format!("resume agent {paused}")), "{tail:?}");
    assert!(report.counters.leader_terms >= 3);
}

/// `pause_holder` freezes a process that believes it holds the lock at that moment, and
/// `resume_processes` wakes it.
#[test]
fn pause_holder_freezes_whoever_holds_the_lock() {
    let schedule = Schedule::from_json(
        r#"{"steps": [
            {"at_ms": 3000, "fault": {"kind": "pause_holder"}},
            {"at_ms": 6000, "fault": {"kind": "resume_processes"}}
        ]}"#,
        3,
    )
    .unwrap();
    let config = RunConfig {
        faults: Faults::Schedule(schedule),
        duration: Duration::from_secs(8),
        clients: 1,
        lockers: 2,
        ..RunConfig::default()
    };
    for seed in 1..4 {
        let report = run(&config, seed).unwrap();
        assert!(report.ok(), "{:?}", report.violations);
        let faults: Vec<&Fault> = report.schedule.steps.iter().map(|s| &s.fault).collect();
        let Fault::PauseProcess { process } = faults[0] else {
            panic!("seed {seed}: {faults:?}")
        };
        assert_eq!(faults[1], &Fault::ResumeProcess { process: *process });
        assert_eq!(faults.len(), 2, "nothing left to lift: {faults:?}");
        // Its latest belief before the pause ran past it.
        let at = report
            .history
            .records
            .iter()
            .position(|r| matches!(&r.event, Event::Fault { .. }))
            .unwrap();
        let until = report.history.records[..at]
            .iter()
            .rev()
            .find_map(|r| match &r.event {
                Event::Belief {
                    process: p,
                    until_us,
                    ..
                } if p == process => Some(*until_us),
                _ => None,
            })
            .flatten();
        assert!(
            until.is_some_and(|u| u > 3_000_000),
            "seed {seed}: {until:?}"
        );
    }
}

/// Recording messages (for ShiViz) does not change the run: without the message records,
/// the history is the same.
#[test]
fn recording_messages_leaves_the_run_unchanged() {
    let plain = RunConfig::default();
    let recorded = RunConfig {
        record_messages: true,
        ..RunConfig::default()
    };
    let a = run(&plain, 6).unwrap();
    let b = run(&recorded, 6).unwrap();
    let without = |h: &History| -> Vec<_> {
        h.records
            .iter()
            .filter(|r| !matches!(r.event, Event::Message { .. }))
            .cloned()
            .collect()
    };
    assert!(b.history.records.len() > a.history.records.len());
    assert_eq!(without(&a.history), without(&b.history));
}

/// S13 runs on every simulated history: a real run passes, and the same history with one
/// read's answer changed to a value nobody wrote is caught, naming that read.
#[test]
fn linearizability_is_checked_on_every_run_and_catches_a_stale_read() {
    let report = run(&RunConfig::default(), 11).unwrap();
    assert!(report.ok(), "{:?}", report.violations);
    assert!(check::linearizability(&report.history).is_empty());
    let mut h = report.history.clone();
    let invoked = check::invocations(&report.history);
    let (at, key) = h
        .records
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, r)| match &r.event {
            Event::Complete {
                op,
                result: Completion::Ok,
                value,
                ..
            } if !value.is_null() => match invoked.get(op) {
                Some(&(_, "read", key, _)) => Some((i, key.to_string())),
                _ => None,
            },
            _ => None,
        })
        .expect("the run read a register");
    if let Event::Complete { value, .. } = &mut h.records[at].event {
        *value = serde_json::json!("never written");
    }
    let v = check::linearizability(&h);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].rule, "S13 linearizability");
    assert!(v[0].message.contains(&key), "{}", v[0].message);
    assert!(
        v[0].message.contains("\"never written\""),
        "{}",
        v[0].message
    );
}
