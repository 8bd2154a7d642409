//! A primary/backup pair with its own messages, tested in a tenure world: an example of a
//! small actor protocol, written against tenure's public API only.
//!
//! Two replicas contend for the Juju lease `primary`. The one that holds it is the primary:
//! it announces itself to the `witness` (an [`Actor`]), and every 100 ms applies the next
//! entry of its log and replicates it to the other replica with its fencing token. The backup
//! applies an entry only if its token is at least the highest it has seen, so a deposed
//! primary (paused while its lease ran out) cannot overwrite what a newer one wrote.
//!
//! The checks: S1 holds the replicas' beliefs in the lease to exclusivity (a built-in rule,
//! for free); [`MONOTONE`] holds the backup's applied tokens to never going back; and
//! `sometimes` points say whether the faults made a failover, a refused stale entry and a
//! stale announcement happen at all.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;
use tenure::core::lease::{Claimer, LeaseError};
use tenure::world::{
    Actor, Builder, Context, Ctx, Event, History, Log, Message, Rule, RuleKind, RunConfig, World,
    WorldError,
};

/// The lease whose holder is the primary.
pub const LEASE: &str = "primary";
/// PB1: the backup's applied tokens never go back.
pub const MONOTONE: &str = "PB1";

/// The pair's messages.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Msg {
    /// The primary under `token` applied entry `seq`: apply it too.
    Replicate { token: u64, seq: u64 },
    /// The backup applied (or refused) `seq`.
    Ack { seq: u64, applied: bool },
    /// A replica became primary under `token` (to the witness).
    Announce { token: u64 },
}

impl Message for Msg {
    fn summary(&self) -> String {
        format!("{self:?}")
    }
}

/// The witness: an actor that hears every new primary and notes a stale announcement (a
/// token lower than one it has heard).
pub struct Witness {
    log: Log,
    highest: u64,
}

impl Actor for Witness {
    type Msg = Msg;
    fn start(&mut self, _: &mut Ctx<Msg>) {}
    fn message(&mut self, _from: SocketAddr, msg: Msg, _: &mut Ctx<Msg>) {
        if let Msg::Announce { token } = msg {
            if token < self.highest {
                self.log.sometimes("witness heard a stale primary");
            } else if self.highest > 0 {
                self.log.sometimes("witness heard a later term");
            }
            self.highest = self.highest.max(token);
        }
    }
    fn timer(&mut self, _: &mut Ctx<Msg>) {}
}

/// The world: 3 agents, two replicas, the witness; 20 s of swarm faults unless `config`
/// says otherwise.
pub fn world(config: RunConfig) -> Result<World, WorldError> {
    let monotone = Rule::user(
        MONOTONE,
        "the backup's tokens never go back",
        RuleKind::Safety,
    )
    .expect("a valid rule");
    Builder::new(config)
        .process("replica-a", |ctx| replica(ctx, "replica-b"))
        .process("replica-b", |ctx| replica(ctx, "replica-a"))
        .actor("witness", |_, log| Witness { log, highest: 0 })
        .always(monotone, tokens_never_go_back)
        .sometimes("became primary")
        .sometimes("backup applied")
        .sometimes("backup refused a stale entry")
        .sometimes("witness heard a later term")
        .sometimes("witness heard a stale primary")
        .build()
}

/// The example's settings: no built-in roles, 20 s of swarm faults.
pub fn config() -> RunConfig {
    RunConfig {
        clients: 0,
        watchers: 0,
        duration: Duration::from_secs(20),
        ..RunConfig::default()
    }
}

/// [`MONOTONE`]: the tokens of the backup's accepted `apply` calls never go back.
pub fn tokens_never_go_back(h: &History) -> Result<(), String> {
    let mut pending = std::collections::BTreeMap::new();
    let mut highest: std::collections::BTreeMap<u64, u64> = Default::default();
    for r in &h.records {
        match &r.event {
            Event::Invoke {
                op,
                f,
                value,
                process,
                ..
            } if f == "apply" => {
                pending.insert(*op, (*process, value["token"].as_u64().unwrap_or(0)));
            }
            Event::Complete {
                op,
                result: tenure::world::Completion::Ok,
                ..
            } => {
                if let Some((process, token)) = pending.remove(op) {
                    let h = highest.entry(process).or_default();
                    if token < *h {
                        return Err(format!(
                            "process {process} applied token {token} after token {h}"
                        ));
                    }
                    *h = token;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// One replica: primary while it holds the lease, backup otherwise.
pub async fn replica(ctx: Context, other: &'static str) {
    let me = ctx.name().to_string();
    let manager = ctx.lease_manager();
    let rho = ctx.lease_client().drift_bound();
    let lease = Duration::from_secs(2);
    let mut highest = 0;
    let mut seq = 0;
    loop {
        let start = ctx.now();
        match manager.claim(LEASE, &me, lease).await {
            Ok(token) => {
                let deadline = start + lease.mul_f64(1.0 - rho);
                ctx.belief(LEASE, token, Some(deadline));
                ctx.sometimes("became primary");
                let _ = ctx.send("witness", Msg::Announce { token });
                while ctx.now() + Duration::from_millis(200) < deadline {
                    seq += 1;
                    let _ = ctx.send(other, Msg::Replicate { token, seq });
                    ctx.sleep(Duration::from_millis(100)).await;
                }
                ctx.belief(LEASE, token, None);
            }
            Err(LeaseError::ClaimDenied) => {
                // Backup: apply what the primary replicates for a while, then try again.
                let until = ctx.now() + Duration::from_millis(500);
                while ctx.now() < until {
                    let Some((from, Msg::Replicate { token, seq: s })) =
                        ctx.recv_timeout::<Msg>(Duration::from_millis(200)).await
                    else {
                        continue;
                    };
                    let call = ctx
                        .invoke(
                            "apply",
                            "log",
                            serde_json::json!({ "token": token, "seq": s }),
                        )
                        .expect("one call at a time");
                    if token >= highest {
                        highest = token;
                        seq = seq.max(s);
                        call.ok(serde_json::Value::Null);
                        ctx.sometimes("backup applied");
                    } else {
                        call.fail(serde_json::json!("stale"));
                        ctx.sometimes("backup refused a stale entry");
                    }
                    let _ = ctx.send(
                        &from,
                        Msg::Ack {
                            seq: s,
                            applied: token >= highest,
                        },
                    );
                }
            }
            Err(_) => ctx.sleep(Duration::from_millis(100)).await,
        }
    }
}
