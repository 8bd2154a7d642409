//! Locks and leases across the simulated cluster, under faults: lockers on drifting clocks
//! contend for one agency `Lock`, leasers for one Juju lease through `LeaseManager`s, and each
//! writes to a `FencedResource` while it believes it holds the grant. Their
//! beliefs are recorded against true time and checked: no two holders believe at once (S1)
//! while drift stays within `rho`; beyond it the overlap is detected; a paused holder's late
//! write is refused by the resource (S10 holds while S11 breaks); and a dead holder's lock is
//! acquirable again within a bound (L2).

use std::time::Duration;
use tenure::sim::check::{self, belief_intervals};
use tenure::sim::history::{Completion, Event};
use tenure::sim::nemesis::Fault;
use tenure::sim::{run, sweep, Faults, Report, RunConfig, Schedule};

/// Processes: 1 KV client, lockers 2-4, leasers 5-7, leaders 8-9, members 10-11 (temp keys,
/// leased records, hmetcd dist locks, Storage compare-and-set and waits).
fn lockers(drift: f64) -> RunConfig {
    RunConfig {
        clients: 1,
        lockers: 3,
        leasers: 3,
        leaders: 2,
        members: 2,
        client_drift: drift,
        clock_jumps: false,
        ..RunConfig::default()
    }
}

fn reports(config: &RunConfig, seeds: std::ops::Range<u64>) -> Vec<(u64, Report)> {
    sweep(seeds, 2, |seed| run(config, seed))
        .into_iter()
        .map(|(seed, r)| (seed, r.unwrap_or_else(|e| panic!("{e}"))))
        .collect()
}

/// What one seed of the within-bound sweep found (histories are dropped as the sweep goes).
#[derive(Default)]
struct Summary {
    failures: Vec<String>,
    grants: usize,
    accepted: usize,
    isolations: usize,
    guarded: usize,
    member_ops: usize,
    /// Writes binding a key to a lease, as the agents saw them (S7 checks each).
    bound: usize,
    /// The runner's L2 (lock, lease and leadership acquirable) and L3 (temp keys gone)
    /// checks that held.
    released: usize,
}

fn summarize(seed: u64, r: &Report) -> Summary {
    let mut s = Summary {
        failures: r
            .violations
            .iter()
            .map(|v| format!("seed {seed}: {v}"))
            .collect(),
        accepted: r.counters.fenced_accepted,
        ..Summary::default()
    };
    let beliefs = belief_intervals(&r.history);
    s.grants = beliefs
        .iter()
        .map(|b| b.token)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    s.isolations = r
        .schedule
        .steps
        .iter()
        .filter(|s| matches!(s.fault, Fault::IsolateProcess { .. }))
        .count();
    s.member_ops = r
        .history
        .records
        .iter()
        .filter(|rec| {
            rec.node.starts_with("member-")
                && matches!(
                    &rec.event,
                    Event::Complete {
                        result: Completion::Ok,
                        ..
                    }
                )
        })
        .count();
    s.bound = r
        .history
        .records
        .iter()
        .filter(|rec| matches!(rec.event, Event::Bound { .. }))
        .count();
    s.released = r
        .history
        .records
        .iter()
        .filter(|rec| matches!(&rec.event, Event::Check { name, ok: true, .. } if name == "acquirable" || name == "temp keys"))
        .count();
    s.guarded = r
        .history
        .records
        .iter()
        .filter(|rec| {
            matches!(&rec.event, Event::Complete { result: Completion::Ok, value, .. }
                if value.is_u64() && rec.node.starts_with("leader-"))
        })
        .count();
    // Tokens grow in grant order, per resource.
    for resource in ["lock:/locks/0", "lease:svc", "leadership:app"] {
        let mut tokens: Vec<(u64, u64)> = beliefs
            .iter()
            .filter(|b| b.resource == resource)
            .map(|b| (b.from_us, b.token))
            .collect();
        tokens.sort();
        let mut seen = std::collections::BTreeSet::new();
        let mut last = 0;
        for (_, t) in tokens {
            if seen.insert(t) {
                if t <= last {
                    s.failures.push(format!(
                        "seed {seed}: {resource} token {t} granted after {last}"
                    ));
                }
                last = t;
            }
        }
    }
    s
}

#[test]
fn holders_never_overlap_and_tokens_fence_within_the_drift_bound() {
    // Drift of every holder's clock within rho = 0.01; partitions, kills, agent and holder
    // pauses, isolated holders, lossy and slow links.
    let config = lockers(0.009);
    let all = sweep(0..200, 2, |seed| match run(&config, seed) {
        Ok(r) => summarize(seed, &r),
        Err(e) => Summary {
            failures: vec![e.to_string()],
            ..Summary::default()
        },
    });
    let mut total = Summary::default();
    for (_, s) in all {
        total.failures.extend(s.failures);
        total.grants += s.grants;
        total.accepted += s.accepted;
        total.isolations += s.isolations;
        total.guarded += s.guarded;
        total.member_ops += s.member_ops;
        total.bound += s.bound;
        total.released += s.released;
    }
    let Summary {
        failures,
        grants,
        accepted,
        isolations,
        guarded,
        member_ops,
        bound,
        released,
    } = total;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(grants > 1_000, "{grants} grants");
    assert!(accepted > 10_000, "{accepted} fenced writes");
    assert!(isolations > 20, "{isolations} holders isolated");
    assert!(
        guarded > 200,
        "{guarded} claims and leadership-guarded transactions"
    );
    assert!(bound > 1_000, "{bound} lease-bound writes seen by agents");
    // Both end-of-run liveness checks ran on (nearly) every seed (a failed one is a violation).
    assert!(released >= 380, "{released} L2/L3 checks held");
    assert!(
        member_ops > 2_000,
        "{member_ops} dist-lock, CAS and wait operations"
    );
    eprintln!(
        "200 seeds: {grants} grants, {accepted} fenced writes, {isolations} isolations, \
         {guarded} leader claims and guarded transactions, {member_ops} member operations, \
         {bound} lease-bound writes, {released} L2/L3 checks held"
    );
}

#[test]
fn drift_beyond_the_bound_shows_as_overlapping_beliefs_and_fencing_still_holds() {
    // Clocks up to 30% slow, and each holder in turn cut off from the agency for longer than
    // a grant lasts: a slow holder believes long after its grant expired and someone else
    // took it.
    let mut steps = Vec::new();
    for (k, p) in (2..=9).enumerate() {
        let at = 500 + k as u64 * 2_300;
        steps.push(format!(
            r#"{{"at_ms": {at}, "fault": {{"kind": "isolate_process", "process": {p}}}}}"#
        ));
        steps.push(format!(
            r#"{{"at_ms": {}, "fault": {{"kind": "heal"}}}}"#,
            at + 2_200
        ));
    }
    let schedule = format!(r#"{{"steps": [{}]}}"#, steps.join(","));
    let config = RunConfig {
        faults: Faults::Schedule(Schedule::from_json(&schedule, 3).unwrap()),
        duration: Duration::from_secs(19),
        ..lockers(0.3)
    };
    let all = reports(&config, 0..16);
    let mut overlaps = Vec::new();
    for (seed, r) in &all {
        for v in &r.violations {
            // Beliefs overlap (S1), and the agency expires keys whose holders still believe
            // (S4): both follow from drift beyond the bound.
            assert!(
                v.rule.id() == "S1" || v.rule.id() == "S4",
                "seed {seed}: {v}"
            );
            if v.rule.id() == "S1" {
                overlaps.push(format!("seed {seed}: {v}"));
            }
        }
    }
    assert!(!overlaps.is_empty(), "drift beyond rho must be caught");
    eprintln!("{} overlaps, first: {}", overlaps.len(), overlaps[0]);
    // The same schedule with drift within rho: no overlap.
    let within = RunConfig {
        client_drift: 0.009,
        ..config
    };
    for (seed, r) in reports(&within, 0..16) {
        assert!(r.ok(), "seed {seed}: {:?}", r.violations);
    }
}

#[test]
fn a_paused_holder_writes_late_and_the_resource_refuses_its_stale_token() {
    // Long work between the check and the write, and each holder in turn paused.
    let mut steps = String::new();
    for (i, p) in [2u64, 5, 3, 6, 4, 7].iter().enumerate() {
        let at = 1_000 + i as u64 * 1_400;
        steps.push_str(&format!(
            r#"{{"at_ms": {at}, "fault": {{"kind": "pause_process", "process": {p}}}}},
               {{"at_ms": {}, "fault": {{"kind": "resume_process", "process": {p}}}}},"#,
            at + 1_300
        ));
    }
    let schedule = format!(
        r#"{{"steps": [{}]}}"#,
        steps.trim_end().trim_end_matches(',')
    );
    let config = RunConfig {
        faults: Faults::Schedule(Schedule::from_json(&schedule, 3).unwrap()),
        work: Duration::from_millis(300),
        lock_ttl: Duration::from_secs(1),
        ..lockers(0.0)
    };
    let (mut late, mut refused) = (0, 0);
    for (seed, r) in reports(&config, 0..12) {
        assert!(r.ok(), "seed {seed}: {:?}", r.violations);
        late += r.warnings.len();
        refused += r.counters.fenced_rejected;
        for w in &r.warnings {
            assert!(w.rule.id() == "S11", "{w}");
        }
    }
    assert!(late > 0, "a paused holder acted outside its belief");
    assert!(refused > 0, "the resource refused stale tokens");
}

#[test]
fn a_dead_holders_lock_is_acquirable_again_within_the_bound() {
    // Locker 1 (process 2) dies at 3 s; if it held the lock, locker 2 gets it within
    // (ttl + lock-delay) / (1 - rho) plus a retry and a round trip, and not before the
    // lock-delay has passed since the expiry.
    let ttl = Duration::from_secs(2);
    // With a lock-delay (S8, checked by the run): not before the delay, and within the bound.
    let delay = Duration::from_secs(1);
    let bound_us = ((ttl + delay).as_secs_f64() / 0.99 * 1e6) as u64 + 600_000;
    let schedule = Schedule::from_json(
        r#"{"steps": [{"at_ms": 3000, "fault": {"kind": "kill_process", "process": 2}}]}"#,
        3,
    )
    .unwrap();
    let config = RunConfig {
        clients: 1,
        lockers: 2,
        faults: Faults::Schedule(schedule),
        lock_ttl: ttl,
        lock_delay: delay,
        ..RunConfig::default()
    };
    let mut died_holding = 0;
    for (seed, r) in reports(&config, 0..16) {
        assert!(r.ok(), "seed {seed}: {:?}", r.violations);
        let beliefs = belief_intervals(&r.history);
        let cut = 3_000_000;
        if !beliefs
            .iter()
            .any(|b| b.process == 2 && b.from_us <= cut && cut < b.until_us)
        {
            continue;
        }
        died_holding += 1;
        let next = beliefs
            .iter()
            .filter(|b| b.process == 3 && b.from_us > cut)
            .map(|b| b.from_us)
            .min()
            .unwrap_or_else(|| panic!("seed {seed}: never acquired again"));
        let expired = r
            .history
            .records
            .iter()
            .find(|rec| {
                rec.t_us > cut
                    && matches!(&rec.event, Event::Expire { key, .. } if key == "/locks/0")
            })
            .map(|rec| rec.t_us)
            .unwrap_or_else(|| panic!("seed {seed}: the dead holder's key never expired"));
        assert!(
            next >= expired + delay.as_micros() as u64 - 50_000,
            "seed {seed}: granted {} ms after the expiry, within the lock-delay",
            (next - expired) / 1000
        );
        assert!(
            next - cut <= bound_us,
            "seed {seed}: acquired again {} ms after the holder died (bound {} ms)",
            (next - cut) / 1000,
            bound_us / 1000
        );
        // The dead holder wrote nothing after the other took over.
        assert!(r
            .history
            .records
            .iter()
            .all(|rec| !matches!(&rec.event, Event::Fenced { process: 2, accepted: true, .. } if rec.t_us > next)));
    }
    assert!(
        died_holding >= 3,
        "the holder died holding in {died_holding} seeds"
    );
}

#[test]
fn a_dead_members_temp_key_and_leased_record_disappear_within_the_ttl() {
    // Members 1 and 2 (processes 2 and 3) keep temp keys; member 1 dies at 3 s.
    let ttl = Duration::from_secs(2);
    let schedule = Schedule::from_json(
        r#"{"steps": [{"at_ms": 3000, "fault": {"kind": "kill_process", "process": 2}}]}"#,
        3,
    )
    .unwrap();
    let config = RunConfig {
        clients: 1,
        members: 2,
        faults: Faults::Schedule(schedule),
        lock_ttl: ttl,
        ..RunConfig::default()
    };
    let bound_us = (ttl.as_secs_f64() / 0.99 * 1e6) as u64 + 300_000;
    for (seed, r) in reports(&config, 0..8) {
        assert!(r.ok(), "seed {seed}: {:?}", r.violations);
        let expiry = |k: &str| {
            r.history.records.iter().find_map(|rec| match &rec.event {
                Event::Expire { key, .. } if key == k => Some(rec.t_us),
                _ => None,
            })
        };
        for k in ["/kv/member-2", "/storage/member-2"] {
            let gone = expiry(k).unwrap_or_else(|| panic!("seed {seed}: {k} never removed"));
            assert!(
                gone > 3_000_000 && gone - 3_000_000 <= bound_us,
                "seed {seed}: {k} removed {} ms after the member died",
                (gone - 3_000_000) / 1000
            );
        }
        // The live member's keys stay while its leases are kept alive (until the run's end;
        // then the runner waits for them to go, L3).
        for k in ["/kv/member-3", "/storage/member-3"] {
            let gone = expiry(k);
            assert!(
                gone.is_some_and(|t| t > 10_000_000),
                "seed {seed}: {k} removed at {gone:?} us"
            );
        }
    }
}

#[test]
fn leasers_claim_through_lease_manager_actors_and_survive_losing_one() {
    // Processes: 1 KV client, leasers 2-4, managers 5-6. Swarm faults within the bound (they
    // pause and cut off managers too), then a schedule that kills manager 1 for good.
    let managed = RunConfig {
        clients: 1,
        leasers: 3,
        managers: 2,
        client_drift: 0.009,
        clock_jumps: false,
        ..RunConfig::default()
    };
    let claims = |r: &Report, after_us: u64| {
        r.history
            .records
            .iter()
            .filter(|rec| {
                rec.t_us > after_us
                    && rec.node.starts_with("leaser-")
                    && matches!(&rec.event, Event::Complete { result: Completion::Ok, value, .. } if value.is_u64())
            })
            .count()
    };
    let mut total = 0;
    for (seed, r) in reports(&managed, 0..40) {
        assert!(r.ok(), "seed {seed}: {:?}", r.violations);
        total += claims(&r, 0);
    }
    assert!(total > 80, "{total} claims granted through managers");
    let kill = Schedule::from_json(
        r#"{"steps": [{"at_ms": 3000, "fault": {"kind": "kill_process", "process": 5}}]}"#,
        3,
    )
    .unwrap();
    let config = RunConfig {
        faults: Faults::Schedule(kill),
        ..managed
    };
    for (seed, r) in reports(&config, 0..6) {
        assert!(r.ok(), "seed {seed}: {:?}", r.violations);
        assert!(
            claims(&r, 5_000_000) > 0,
            "seed {seed}: no claim after manager 1 died"
        );
    }
}

/// S14 and S16 run on the members' Storage operations: a real run passes; the same history
/// with a compare-and-set that "succeeded" on a version already used, or a wait that
/// "returned" the version it waited on, is caught.
#[test]
fn storage_versions_and_waits_are_checked_and_forgeries_caught() {
    let config = RunConfig {
        faults: Faults::None,
        ..lockers(0.0)
    };
    let report = run(&config, 3).unwrap();
    assert!(report.ok(), "{:?}", report.violations);
    let h = &report.history;
    assert!(check::storage_versions(h).is_empty());
    let invoked = check::invocations(h);
    let ok_of = |name: &str| -> Vec<(usize, serde_json::Value)> {
        h.records
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match &r.event {
                Event::Complete {
                    op,
                    result: Completion::Ok,
                    value,
                    ..
                } if invoked[op].1 == name => {
                    Some((i, invoked[op].3.clone())).filter(|_| value.get("version").is_some())
                }
                _ => None,
            })
            .collect()
    };
    let cas = ok_of("cas_by_version");
    let waits = ok_of("wait_for_version_change");
    assert!(
        cas.len() >= 5 && !waits.is_empty(),
        "{} cas, {} waits",
        cas.len(),
        waits.len()
    );
    // A later cas claims the version an earlier one produced.
    let mut forged = h.clone();
    let first_new = match &h.records[cas[0].0].event {
        Event::Complete { value, .. } => value.clone(),
        _ => unreachable!(),
    };
    if let Event::Complete { value, .. } = &mut forged.records[cas[3].0].event {
        *value = first_new;
    }
    let v = check::storage_versions(&forged);
    assert!(
        v.iter().any(|v| v.rule == "S14 compare-and-set by version"),
        "{v:?}"
    );
    // A wait returns the very version it waited on.
    let mut forged = h.clone();
    let (i, waited) = &waits[0];
    if let Event::Complete { value, .. } = &mut forged.records[*i].event {
        *value = serde_json::json!({ "version": waited });
    }
    let v = check::storage_versions(&forged);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].rule, "S16 watches");
}
