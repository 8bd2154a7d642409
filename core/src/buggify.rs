//! Fault points inside the system (FoundationDB's BUGGIFY): named places in the agent, the
//! clients and the lock and lease libraries where a simulated run may inject a stall, a
//! dropped reply, a slow fsync, an early timer or a late renewal.
//!
//! A point does nothing unless the run installed its state on the running thread
//! ([`install`]): the simulator does, for the points a run enables; a real process, a unit
//! test, or any program that never calls `install` runs every point as a no-op. So the points
//! are off outside simulation by construction, not by a flag someone must remember.
//!
//! Whether the `n`-th hit of point `p` fires is a hash of the run's seed, `p`'s name and `n`,
//! so it does not depend on which other points are enabled: removing a point while shrinking
//! leaves the others' first decisions as they were. Each run counts how often each enabled
//! point fired; the report keeps the counts.

use crate::rng::SplitMix64;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// One fault point: its name, what it does, how often a hit fires (per million hits) and the
/// range of the delay it injects, if it injects one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Point {
    pub name: &'static str,
    pub about: &'static str,
    pub per_million: u64,
    pub min_ms: u64,
    pub max_ms: u64,
}

const fn point(
    name: &'static str,
    about: &'static str,
    per_million: u64,
    min_ms: u64,
    max_ms: u64,
) -> Point {
    Point {
        name,
        about,
        per_million,
        min_ms,
        max_ms,
    }
}

/// An agent's disk sync takes much longer (the node stalls until it ends).
pub const SLOW_FSYNC: &str = "agent.slow_fsync";
/// An agent's snapshot (its own, or one installed from the leader) takes long to write.
pub const SLOW_SNAPSHOT: &str = "agent.slow_snapshot";
/// An agent stops for a while before handling a tick (a leader stalled mid-term).
pub const STALL_ON_TICK: &str = "agent.stall_on_tick";
/// An agent drops its answer to a client (the client times out: an indeterminate outcome).
pub const DROP_REPLY: &str = "agent.drop_reply";
/// A follower's election timer goes off early.
pub const EARLY_ELECTION: &str = "agent.early_election";
/// A client gives up on an agent's answer after a fraction of its request timeout.
pub const EARLY_TIMEOUT: &str = "client.early_timeout";
/// A client receives an answer late (it reaches the caller a while after it arrived).
pub const LATE_RESPONSE: &str = "client.late_response";
/// A lock, lease or leadership holder renews late.
pub const LATE_RENEWAL: &str = "holder.late_renewal";
/// A holder pauses right after its grant, before acting on it.
pub const PAUSE_AFTER_GRANT: &str = "holder.pause_after_grant";
/// A holder pauses between its check that it holds and its write.
pub const PAUSE_BEFORE_WRITE: &str = "holder.pause_before_write";

/// Every fault point, by name.
pub const POINTS: &[Point] = &[
    point(
        SLOW_FSYNC,
        "an agent's disk sync takes 20-400 ms longer",
        10_000,
        20,
        400,
    ),
    point(
        SLOW_SNAPSHOT,
        "an agent's snapshot write takes 100-1500 ms (compaction or install)",
        250_000,
        100,
        1_500,
    ),
    point(
        STALL_ON_TICK,
        "an agent stalls 100-1500 ms before handling a tick",
        1_000,
        100,
        1_500,
    ),
    point(
        DROP_REPLY,
        "an agent drops its answer to a client",
        10_000,
        0,
        0,
    ),
    point(
        EARLY_ELECTION,
        "an election timer, when set, goes off at a third of its base timeout",
        200_000,
        0,
        0,
    ),
    point(
        EARLY_TIMEOUT,
        "a client stops waiting for an answer after a tenth of its timeout",
        10_000,
        0,
        0,
    ),
    point(
        LATE_RESPONSE,
        "an answer reaches its caller 50-1500 ms after it arrived",
        20_000,
        50,
        1_500,
    ),
    point(
        LATE_RENEWAL,
        "a holder renews 100-3000 ms late",
        50_000,
        100,
        3_000,
    ),
    point(
        PAUSE_AFTER_GRANT,
        "a holder pauses 100-3000 ms right after its grant",
        50_000,
        100,
        3_000,
    ),
    point(
        PAUSE_BEFORE_WRITE,
        "a holder pauses 100-3000 ms between its check and its write",
        50_000,
        100,
        3_000,
    ),
];

/// The point named `name`; an error lists the names.
pub fn find(name: &str) -> Result<&'static Point, String> {
    POINTS.iter().find(|p| p.name == name).ok_or_else(|| {
        let names: Vec<&str> = POINTS.iter().map(|p| p.name).collect();
        format!(
            "no fault point named {name:?} (fault points: {})",
            names.join(", ")
        )
    })
}

/// Whether point `name` stalls an agent (holds its ticks or its commits back for as long as
/// it lasts): checks that bound agency time allow for these.
pub fn stalls_an_agent(name: &str) -> bool {
    name == STALL_ON_TICK || name == SLOW_FSYNC || name == SLOW_SNAPSHOT
}

/// The points a seed enables when the run lets the seed choose (swarm testing: each point on
/// in about half the seeds).
pub fn drawn(seed: u64) -> BTreeSet<String> {
    let mut r = SplitMix64::new(seed ^ 0x4255_4747_4946_5921);
    POINTS
        .iter()
        .filter(|_| r.below(2) == 0)
        .map(|p| p.name.to_string())
        .collect()
}

/// What a run does when a point fires, given its name and the delay it injects (if it
/// injects one): the simulator records it in the history.
pub type OnFire = Box<dyn Fn(&'static str, Option<Duration>)>;

struct State {
    seed: u64,
    on_fire: Option<OnFire>,
    enabled: BTreeSet<&'static str>,
    hits: BTreeMap<&'static str, u64>,
    fired: BTreeMap<&'static str, u64>,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// While alive, the points `enabled` fire on this thread as seed `seed` decides; dropping it
/// turns every point off again.
#[must_use = "the points are off again once the guard is dropped"]
pub struct Guard(());

impl Drop for Guard {
    fn drop(&mut self) {
        STATE.with(|s| s.borrow_mut().take());
    }
}

/// Enables `enabled` on this thread for a run of `seed`. Unknown names are an error (checked
/// before anything is installed).
pub fn install(seed: u64, enabled: &BTreeSet<String>) -> Result<Guard, String> {
    install_with(seed, enabled, None)
}

/// [`install`], calling `on_fire` with the point's name and delay each time one fires.
pub fn install_with(
    seed: u64,
    enabled: &BTreeSet<String>,
    on_fire: Option<OnFire>,
) -> Result<Guard, String> {
    let enabled = enabled
        .iter()
        .map(|n| find(n).map(|p| p.name))
        .collect::<Result<BTreeSet<_>, _>>()?;
    STATE.with(|s| {
        *s.borrow_mut() = Some(State {
            seed,
            on_fire,
            fired: enabled.iter().map(|p| (*p, 0)).collect(),
            enabled,
            hits: BTreeMap::new(),
        })
    });
    Ok(Guard(()))
}

/// Turns every point off for the rest of the run, keeping the counts: the simulator calls it
/// when the faults are lifted, so that the checks of a healed system (liveness, health, the
/// final reads) meet a system without injected faults, as FoundationDB's quiet phase does.
pub fn quiet() {
    STATE.with(|s| {
        if let Some(s) = s.borrow_mut().as_mut() {
            s.enabled.clear();
        }
    })
}

/// How often each enabled point fired so far on this thread (empty when none is installed).
pub fn fired() -> BTreeMap<String, u64> {
    STATE.with(|s| {
        s.borrow().as_ref().map_or_else(BTreeMap::new, |s| {
            s.fired.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        })
    })
}

/// If this hit of `name` fires: the delay it injects (zero for a point without one).
fn hit(name: &'static str) -> Option<Duration> {
    let (x, on_fire) = STATE.with(|s| {
        let mut s = s.borrow_mut();
        let s = s.as_mut()?;
        if !s.enabled.contains(name) {
            return None;
        }
        let p = find(name).ok()?;
        let n = s.hits.entry(p.name).or_insert(0);
        *n += 1;
        let mut h = SplitMix64::new(s.seed ^ name_hash(p.name) ^ n.wrapping_mul(0x9E37_79B9));
        if h.below(1_000_000) >= p.per_million {
            return None;
        }
        *s.fired.entry(p.name).or_insert(0) += 1;
        let span = p.max_ms.saturating_sub(p.min_ms) + 1;
        let d = Duration::from_millis(p.min_ms + h.next_u64() % span);
        // Taken out while it runs, so that what it calls may not reach a point again.
        Some((d, s.on_fire.take()))
    })?;
    if let Some(f) = on_fire {
        let shown = find(name).ok().filter(|p| p.max_ms > 0).map(|_| x);
        f(name, shown);
        STATE.with(|s| {
            if let Some(s) = s.borrow_mut().as_mut() {
                s.on_fire = Some(f);
            }
        });
    }
    Some(x)
}

fn name_hash(name: &str) -> u64 {
    // FNV-1a: stable across builds and platforms.
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Whether point `name` fires at this hit (always `false` outside a simulated run).
pub fn fires(name: &'static str) -> bool {
    hit(name).is_some()
}

/// The delay point `name` injects at this hit, if it fires (its range, drawn).
pub fn delay(name: &'static str) -> Option<Duration> {
    hit(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_off_unless_installed() {
        for _ in 0..10_000 {
            assert!(!fires(DROP_REPLY));
        }
        assert!(fired().is_empty());
    }

    #[test]
    fn an_enabled_point_fires_at_its_rate_and_is_counted() {
        let on = BTreeSet::from([LATE_RENEWAL.to_string()]);
        let g = install(7, &on).unwrap();
        let n = (0..10_000)
            .filter(|_| delay(LATE_RENEWAL).is_some())
            .count() as u64;
        // 5% of 10,000 hits, give or take.
        assert!((350..650).contains(&n), "{n}");
        assert!(!fires(DROP_REPLY), "a point not enabled never fires");
        assert_eq!(fired()[LATE_RENEWAL], n);
        assert_eq!(fired().get(DROP_REPLY), None);
        quiet();
        assert!(delay(LATE_RENEWAL).is_none() && (0..1_000).all(|_| !fires(LATE_RENEWAL)));
        assert_eq!(fired()[LATE_RENEWAL], n, "quiet keeps the counts");
        drop(g);
        assert!(!fires(LATE_RENEWAL), "off again once the guard is dropped");
        assert!(fired().is_empty());
    }

    #[test]
    fn a_points_decisions_do_not_depend_on_the_others() {
        let run = |enabled: &[&str]| {
            let on = enabled.iter().map(|s| s.to_string()).collect();
            let _g = install(3, &on).unwrap();
            (0..2_000)
                .map(|_| {
                    let _ = fires(DROP_REPLY);
                    delay(PAUSE_AFTER_GRANT)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            run(&[PAUSE_AFTER_GRANT]),
            run(&[PAUSE_AFTER_GRANT, DROP_REPLY])
        );
    }

    #[test]
    fn delays_stay_in_their_range_and_unknown_names_are_refused() {
        let _g = install(1, &BTreeSet::from([SLOW_FSYNC.to_string()])).unwrap();
        for _ in 0..20_000 {
            if let Some(d) = delay(SLOW_FSYNC) {
                assert!((20..=400).contains(&(d.as_millis() as u64)), "{d:?}");
            }
        }
        let e = install(1, &BTreeSet::from(["agent.nope".to_string()]))
            .err()
            .unwrap();
        assert!(e.contains("agent.nope") && e.contains(SLOW_FSYNC), "{e}");
    }

    #[test]
    fn a_seed_draws_about_half_the_points() {
        let total: usize = (0..200).map(|s| drawn(s).len()).sum();
        let mean = total as f64 / 200.0;
        let half = POINTS.len() as f64 / 2.0;
        assert!((half - 1.0..half + 1.0).contains(&mean), "{mean}");
        assert_eq!(drawn(5), drawn(5));
    }
}
