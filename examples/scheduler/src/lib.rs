//! A singleton job scheduler behind leadership, and its world: an example of testing your own
//! service with tenure, written against tenure's public API only.
//!
//! Several scheduler processes contend for the leadership of the service `scheduler`. The
//! leader runs job slots 1, 2, 3, ... in order, each exactly once: it checks its leadership,
//! reads the next slot from the agency (`/jobs/next`), prepares the job, advances the slot in
//! a transaction guarded by its leadership token's preconditions and by the slot it read, and
//! only then runs the job, a write to the fenced `ledger` carrying its fencing token.
//!
//! The mistaken variant ([`Options::mistaken`]) acts on a leadership check without the
//! token's preconditions: it advances the slot with a plain write. A leader paused between
//! its read and its write wakes after another has taken over and sets the slot back; the new
//! leader then runs a slot a second time, with a valid token the ledger accepts. The check
//! [`ONCE`] finds it.

use std::time::Duration;
use tenure::core::agency::{Agency, AgencyError};
use tenure::core::leadership::LeadershipError;
use tenure::core::{Command, Key, Op, Outcome, Precondition, Txn, TxnOutcome};
use tenure::sim::history::{Event, History};
use tenure::sim::world::{Builder, Context, World, WorldError};
use tenure::sim::{Rule, RuleKind, RunConfig};

/// The service whose leadership the schedulers contend for.
pub const SERVICE: &str = "scheduler";
/// The fenced resource each job writes to.
pub const LEDGER: &str = "ledger";
/// Where the next slot to run is kept.
pub const NEXT: &str = "/jobs/next";

/// JOB1: no job slot is run twice (two accepted ledger writes for one slot).
pub const ONCE: &str = "JOB1";
/// JOB2: after the faults are lifted, the jobs go on (a new slot within the bound).
pub const PROGRESS: &str = "JOB2";

/// How the schedulers behave.
#[derive(Clone, Debug)]
pub struct Options {
    /// Scheduler processes (`scheduler-1`, ...).
    pub schedulers: usize,
    /// How long a claim of the leadership lasts.
    pub lease: Duration,
    /// Preparing a job, between reading its slot and advancing it.
    pub prepare: Duration,
    /// The mistake: advance the slot with a plain write, not guarded by the token.
    pub mistaken: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            schedulers: 3,
            lease: Duration::from_secs(2),
            prepare: Duration::from_millis(50),
            mistaken: false,
        }
    }
}

/// The scheduler's world: 3 agents, no built-in roles, the schedulers, the ledger, and the
/// checks: [`ONCE`] (always), [`PROGRESS`] (eventually, within 10 s of the heal), and
/// `sometimes` points for taking over and for a refused write. `config` gives the cluster
/// and the faults (a swarm by default).
pub fn world(config: RunConfig, opts: &Options) -> Result<World, WorldError> {
    let mut b = Builder::new(config).resource(LEDGER);
    for i in 1..=opts.schedulers {
        let o = opts.clone();
        b = b.process(&format!("scheduler-{i}"), move |ctx| {
            scheduler(ctx, o.clone())
        });
    }
    let once = Rule::user(ONCE, "each job slot runs at most once", RuleKind::Safety)
        .expect("a valid rule");
    let progress = Rule::user(PROGRESS, "jobs go on after the heal", RuleKind::Liveness)
        .expect("a valid rule");
    b.always(once, each_slot_once)
        .eventually(progress, Duration::from_secs(10), jobs_go_on)
        .sometimes("became leader")
        .sometimes("took over a later slot")
        .sometimes("ledger refused a stale token")
        .build()
}

/// The settings the example runs with: 3 agents, the schedulers alone (no built-in clients
/// or watchers), 20 s of swarm faults.
pub fn config() -> RunConfig {
    RunConfig {
        clients: 0,
        watchers: 0,
        duration: Duration::from_secs(20),
        ..RunConfig::default()
    }
}

/// [`ONCE`]: the ledger accepted each slot at most once.
pub fn each_slot_once(h: &History) -> Result<(), String> {
    let mut seen = std::collections::BTreeMap::new();
    for (i, r) in h.records.iter().enumerate() {
        if let Event::Fenced {
            resource,
            accepted: true,
            value: Some(v),
            token,
            ..
        } = &r.event
        {
            let Some(slot) = v.get("slot").and_then(|s| s.as_u64()) else {
                continue;
            };
            if resource != LEDGER {
                continue;
            }
            if let Some((first, t)) = seen.insert(slot, (i, *token)) {
                return Err(format!(
                    "slot {slot} ran twice: record {first} (token {t}) and record {i} (token {token})"
                ));
            }
        }
    }
    Ok(())
}

/// [`PROGRESS`]: the next slot moves within 3 s.
async fn jobs_go_on(ctx: Context) -> Result<(), String> {
    let before = next_slot(&ctx).await.map_err(|e| e.to_string())?;
    ctx.sleep(Duration::from_secs(3)).await;
    let after = next_slot(&ctx).await.map_err(|e| e.to_string())?;
    if after > before {
        Ok(())
    } else {
        Err(format!("the next slot stayed at {before}"))
    }
}

fn next_key() -> Key {
    Key::parse(NEXT).expect("a valid key")
}

/// The next slot to run (1 before any).
async fn next_slot(ctx: &Context) -> Result<u64, AgencyError> {
    match ctx.agency().read_key(&next_key()).await {
        Ok(v) => Ok(v.as_u64().unwrap_or(1)),
        Err(AgencyError::KeyNotFound { .. }) => Ok(1),
        Err(e) => Err(e),
    }
}

/// One scheduler: claims the leadership, and while it believes it leads, runs slots.
pub async fn scheduler(ctx: Context, opts: Options) {
    let me = ctx.name().to_string();
    let leadership = ctx.leadership().expect("a complete leadership config");
    let ledger = ctx.resource(LEDGER).expect("the world has a ledger");
    let rho = ctx.lease_client().drift_bound();
    let mut last_slot = 0;
    loop {
        let start = ctx.now();
        let token = match leadership.claim_leadership(SERVICE, &me, opts.lease).await {
            Ok(t) => t,
            Err(LeadershipError::ClaimDenied) => {
                let wait = leadership.block_until_leadership_released(SERVICE);
                let _ = tenure::core::clock::timeout(&*ctx.clock(), 2 * opts.lease, wait).await;
                continue;
            }
            Err(_) => {
                ctx.sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut deadline = start + opts.lease.mul_f64(1.0 - rho);
        ctx.belief(LEDGER, token, Some(deadline));
        ctx.sometimes("became leader");
        let mut renew_at = start + opts.lease / 2;
        loop {
            let now = ctx.now();
            if now >= renew_at {
                let start = ctx.now();
                match leadership.claim_leadership(SERVICE, &me, opts.lease).await {
                    Ok(t) if t == token => {
                        deadline = start + opts.lease.mul_f64(1.0 - rho);
                        renew_at = start + opts.lease / 2;
                        ctx.belief(LEDGER, token, Some(deadline));
                    }
                    _ => break,
                }
            }
            // Enough belief left for a whole job, or stop acting.
            if ctx.now() + opts.prepare * 4 >= deadline {
                break;
            }
            match run_slot(&ctx, &leadership, &me, token, &opts, &ledger).await {
                Some(slot) => {
                    if slot > last_slot + 1 && last_slot > 0 {
                        ctx.sometimes("took over a later slot");
                    }
                    last_slot = slot;
                }
                None => ctx.sleep(Duration::from_millis(20)).await,
            }
            ctx.sleep(Duration::from_millis(50)).await;
        }
        ctx.belief(LEDGER, token, None);
        ctx.sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the next slot, if this scheduler still leads and wins the slot: the slot it ran.
async fn run_slot(
    ctx: &Context,
    leadership: &tenure::core::leadership::Manager,
    me: &str,
    token: u64,
    opts: &Options,
    ledger: &tenure::sim::world::Resource,
) -> Option<u64> {
    let held = leadership.check_leadership(SERVICE, me).await.ok()?;
    let slot = next_slot(ctx).await.ok()?;
    ctx.sleep(opts.prepare).await;
    let advanced = if opts.mistaken {
        // The mistake: the check said we lead, so write (nothing ties the write to it).
        ctx.agency()
            .write_key(&next_key(), serde_json::json!(slot + 1), None, None)
            .await
            .is_ok()
    } else {
        let was = if slot == 1 {
            Precondition::IfEmpty(next_key())
        } else {
            Precondition::IfEqualTo(next_key(), serde_json::json!(slot))
        };
        let txn = Txn::new()
            .when_all(held.preconditions())
            .when(was)
            .then(Op::set(next_key(), serde_json::json!(slot + 1)));
        matches!(
            ctx.store().submit(Command::Txn(txn)).await,
            Ok(Outcome::Txn(TxnOutcome::Committed { .. }))
        )
    };
    if !advanced {
        return None;
    }
    let accepted = ledger
        .write(
            token,
            serde_json::json!({ "slot": slot }),
            Duration::from_secs(1),
        )
        .await;
    if accepted == Some(false) {
        ctx.sometimes("ledger refused a stale token");
    }
    Some(slot)
}
