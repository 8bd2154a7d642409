//! The lease manager as an actor: Juju's manager loop over the agency-backed lease client,
//! serving `Claimer` and `Checker` to client actors by messages. A claim is granted if the
//! lease is free, extended if the claimer holds it, denied otherwise (the library refreshes
//! and retries when the lease changed hands during the call); a check answers whether the
//! holder holds it now. A timer refreshes the manager's view and expires the leases whose
//! deadline has passed (in the agency a TTL removes them; expiring only confirms it).
//! Several managers may run at once, on nodes with different clocks: they share nothing but
//! the agency.
//!
//! Client actors talk to managers through [`ManagerClient`], which asks one manager and moves
//! to the next when it does not answer in time.

use crate::actor::{self, Actor, Ctx, Socket, Wire};
use crate::history::Recorder;
use futures::channel::oneshot;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenure_core::clock::Clock;
use tenure_core::lease::{Checker, Claimer, Client, LeaseError, LeaseManager};

/// Messages between client actors and lease managers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ManagerMsg {
    /// Claim (or extend) `lease` for `holder` for `duration_ms`.
    Claim {
        id: u64,
        lease: String,
        holder: String,
        duration_ms: u64,
    },
    /// Does `holder` hold `lease` now?
    Check {
        id: u64,
        lease: String,
        holder: String,
    },
    /// Answer when `lease` is vacant.
    WaitExpired {
        id: u64,
        lease: String,
    },
    Reply {
        id: u64,
        outcome: ManagerOutcome,
    },
}

/// A manager's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ManagerOutcome {
    /// Claimed or extended; the grant's fencing token.
    Granted { token: u64 },
    /// Someone else holds it.
    Denied,
    /// The check passed.
    Held,
    /// The check failed.
    NotHeld,
    /// The lease is vacant.
    Expired,
    /// The manager could not find out (no agency, bad input): the outcome is unknown.
    Failed(String),
}

impl Wire for ManagerMsg {
    fn summary(&self) -> String {
        match self {
            ManagerMsg::Claim {
                id, lease, holder, ..
            } => format!("claim {id} {lease} for {holder}"),
            ManagerMsg::Check { id, lease, holder } => format!("check {id} {lease} {holder}"),
            ManagerMsg::WaitExpired { id, lease } => format!("wait_expired {id} {lease}"),
            ManagerMsg::Reply { id, outcome } => format!("reply {id} {outcome:?}"),
        }
    }
}

/// The manager actor.
pub struct LeaseManagerActor {
    manager: Arc<LeaseManager>,
    /// How often the expiry timer runs (local time).
    period: Duration,
}

impl LeaseManagerActor {
    /// A manager over `manager` (a `LeaseManager` on this node's clock and agency client),
    /// expiring leases every `period`.
    pub fn new(manager: LeaseManager, period: Duration) -> LeaseManagerActor {
        LeaseManagerActor {
            manager: Arc::new(manager),
            period,
        }
    }
}

fn outcome_of_claim(r: Result<u64, LeaseError>) -> ManagerOutcome {
    match r {
        Ok(token) => ManagerOutcome::Granted { token },
        Err(LeaseError::ClaimDenied) => ManagerOutcome::Denied,
        Err(e) => ManagerOutcome::Failed(e.to_string()),
    }
}

impl Actor for LeaseManagerActor {
    type Msg = ManagerMsg;

    fn start(&mut self, ctx: &mut Ctx<ManagerMsg>) {
        ctx.set_timer(ctx.now() + self.period);
    }

    fn message(&mut self, from: SocketAddr, msg: ManagerMsg, ctx: &mut Ctx<ManagerMsg>) {
        let (m, sender) = (self.manager.clone(), ctx.sender());
        // Each request is served by its own task: they wait on the agency, not on each other.
        madsim::task::spawn(async move {
            let (id, outcome) = match msg {
                ManagerMsg::Claim {
                    id,
                    lease,
                    holder,
                    duration_ms,
                } => {
                    let d = Duration::from_millis(duration_ms);
                    (id, outcome_of_claim(m.claim(&lease, &holder, d).await))
                }
                ManagerMsg::Check { id, lease, holder } => {
                    let outcome = match m.token(&lease, &holder).check().await {
                        Ok(()) => ManagerOutcome::Held,
                        Err(LeaseError::NotHeld) => ManagerOutcome::NotHeld,
                        Err(e) => ManagerOutcome::Failed(e.to_string()),
                    };
                    (id, outcome)
                }
                ManagerMsg::WaitExpired { id, lease } => {
                    let outcome = match m.wait_until_expired(&lease).await {
                        Ok(()) => ManagerOutcome::Expired,
                        Err(e) => ManagerOutcome::Failed(e.to_string()),
                    };
                    (id, outcome)
                }
                ManagerMsg::Reply { .. } => return,
            };
            sender.send(from, ManagerMsg::Reply { id, outcome });
        });
    }

    fn timer(&mut self, ctx: &mut Ctx<ManagerMsg>) {
        let m = self.manager.clone();
        madsim::task::spawn(async move {
            let client = m.client();
            if client.refresh().await.is_err() {
                return;
            }
            let now = client.clock().now();
            for (name, info) in client.leases() {
                if info.expiry <= now {
                    // Confirms the agency removed it (an unexpired lease is refused).
                    let _ = client.expire_lease(&name).await;
                }
            }
        });
        ctx.set_timer(ctx.now() + self.period);
    }
}

/// A client actor's handle on the lease managers.
#[derive(Clone)]
pub struct ManagerClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    sock: Socket,
    managers: Vec<SocketAddr>,
    clock: Arc<dyn Clock>,
    timeout: Duration,
    rec: Recorder,
    name: String,
    state: Mutex<ClientState>,
}

#[derive(Default)]
struct ClientState {
    next_id: u64,
    current: usize,
    waiting: BTreeMap<u64, oneshot::Sender<ManagerOutcome>>,
}

impl ManagerClient {
    /// Binds on the current node; asks `managers` (one at a time), waiting `timeout` for each.
    pub async fn connect(
        managers: Vec<SocketAddr>,
        clock: Arc<dyn Clock>,
        timeout: Duration,
        rec: Recorder,
        name: &str,
    ) -> std::io::Result<ManagerClient> {
        let sock = Socket::bind_any()?;
        let inner = Arc::new(ClientInner {
            sock: sock.clone(),
            managers,
            clock,
            timeout,
            rec: rec.clone(),
            name: name.to_string(),
            state: Mutex::default(),
        });
        let weak = Arc::downgrade(&inner);
        let me = name.to_string();
        madsim::task::spawn(async move {
            while let Some(d) = sock.recv().await {
                let Some(inner) = weak.upgrade() else { return };
                if let Some(ManagerMsg::Reply { id, outcome }) =
                    actor::receive::<ManagerMsg>(&rec, &me, d)
                {
                    if let Some(tx) = inner.state.lock().unwrap().waiting.remove(&id) {
                        let _ = tx.send(outcome);
                    }
                }
            }
        });
        Ok(ManagerClient { inner })
    }

    /// Sends a request built from a fresh id to the current manager and waits; on no answer,
    /// moves to the next manager and reports `Failed` (the outcome is unknown).
    async fn ask(&self, make: impl Fn(u64) -> ManagerMsg) -> ManagerOutcome {
        let i = &self.inner;
        let (id, rx, to) = {
            let mut st = i.state.lock().unwrap();
            st.next_id += 1;
            let id = st.next_id;
            let (tx, rx) = oneshot::channel();
            st.waiting.insert(id, tx);
            (id, rx, i.managers[st.current % i.managers.len()])
        };
        actor::send(&i.sock, &i.rec, &i.name, to, make(id));
        let answer = tenure_core::clock::timeout(&*i.clock, i.timeout, rx).await;
        let mut st = i.state.lock().unwrap();
        st.waiting.remove(&id);
        match answer {
            Some(Ok(outcome)) => outcome,
            _ => {
                st.current += 1;
                ManagerOutcome::Failed(format!("manager {to} did not answer in {:?}", i.timeout))
            }
        }
    }

    /// Claims (or extends) `lease` for `holder`: the grant's token, `ClaimDenied`, or
    /// `Invalid` when the outcome is unknown.
    pub async fn claim(&self, lease: &str, holder: &str, d: Duration) -> Result<u64, LeaseError> {
        let duration_ms = tenure_core::clock::ceil_ms(d);
        let outcome = self
            .ask(|id| ManagerMsg::Claim {
                id,
                lease: lease.to_string(),
                holder: holder.to_string(),
                duration_ms,
            })
            .await;
        match outcome {
            ManagerOutcome::Granted { token } => Ok(token),
            ManagerOutcome::Denied => Err(LeaseError::ClaimDenied),
            other => Err(LeaseError::Invalid(format!("claim: {other:?}"))),
        }
    }

    /// `Ok` if `holder` holds `lease` now, `NotHeld` if not.
    pub async fn check(&self, lease: &str, holder: &str) -> Result<(), LeaseError> {
        let outcome = self
            .ask(|id| ManagerMsg::Check {
                id,
                lease: lease.to_string(),
                holder: holder.to_string(),
            })
            .await;
        match outcome {
            ManagerOutcome::Held => Ok(()),
            ManagerOutcome::NotHeld => Err(LeaseError::NotHeld),
            other => Err(LeaseError::Invalid(format!("check: {other:?}"))),
        }
    }
}
