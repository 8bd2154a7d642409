//! The runner's checks after the heal: liveness (L1), health (S17), each grant acquirable
//! again (L2), temp keys gone (L3), the last change reaching every watcher (L5), the final
//! read (S15).

use super::*;
use crate::clock::SkewedClock;
use crate::cluster::NetClient;
use crate::history::{Completion, Event};
use crate::world::Context;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tenure_core::agency::{AgencyError, Lock};
use tenure_core::lease::{Claimer, LeaseClient, LeaseError, LeaseManager};
use tenure_core::Clock;
use tenure_core::Key;
use tenure_core::StoreClient;

/// How many times the runner probes health on the stable cluster (S17).
pub(crate) const HEALTH_PROBES: usize = 5;

/// L2, run by the runner after the heal, once every holder has stopped or died: the lock, the
/// lease and the leadership the run contended for are each acquirable within
/// [`RunConfig::release_bound`] (the runner takes and gives back each, as process 0). Timed from when
/// the runner starts, since a holder may keep a grant past the end of the faults.
pub(crate) async fn acquirable(p: &Context, cfg: &RunConfig) {
    let store = p.store();
    let rho = cfg.cluster.agent.rho;
    let bound = cfg.release_bound();
    let started = p.now();
    let mut found = Vec::new();
    if cfg.lockers > 0 {
        let lock = Lock::new(
            Arc::new(p.agency()),
            p.clock(),
            key(LOCK_KEY),
            "runner",
            cfg.lock_ttl,
        )
        .and_then(|l| l.with_drift_bound(rho))
        .and_then(|l| l.with_lock_delay(cfg.lock_delay))
        .expect("the lock's settings are valid");
        let k = key(LOCK_KEY);
        let got = loop {
            let (res, _) = op(p, "lock", &k, Value::Null, async {
                lock.lock().await.map(|t| json!(t))
            })
            .await;
            if res == Completion::Ok {
                super::holders::release(p, &lock, &k).await;
                break true;
            }
            if p.now() - started >= bound {
                break false;
            }
            p.sleep(Duration::from_millis(100)).await;
        };
        found.push((LOCK_KEY.to_string(), got));
    }
    let manager = LeaseManager::new(Arc::new(
        LeaseClient::new(store.clone())
            .with_drift_bound(rho)
            .expect("rho lies in [0, 1)"),
    ));
    for (wanted, name) in [(cfg.leasers, LEASE_NAME), (cfg.leaders, SERVICE)] {
        if wanted == 0 {
            continue;
        }
        let k = key(&format!("/lease/{name}"));
        let got = loop {
            let (res, v) = op(p, "claim", &k, Value::Null, async {
                match manager.claim(name, "runner", cfg.lock_ttl).await {
                    Ok(t) => Ok(json!(t)),
                    Err(LeaseError::ClaimDenied) => Ok(json!("denied")),
                    Err(e) => Err(AgencyError::Invalid(e.to_string())),
                }
            })
            .await;
            if res == Completion::Ok && v.is_u64() {
                break true;
            }
            if p.now() - started >= bound {
                break false;
            }
            p.sleep(Duration::from_millis(100)).await;
        };
        found.push((k.to_string(), got));
    }
    if found.is_empty() {
        return;
    }
    let stuck: Vec<&str> = found
        .iter()
        .filter(|(_, got)| !got)
        .map(|(k, _)| k.as_str())
        .collect();
    p.0.rec.record(
        p.name(),
        Event::Check {
            name: "acquirable".into(),
            ok: stuck.is_empty(),
            detail: if stuck.is_empty() {
                format!(
                    "{} acquired {} ms after the holders stopped (bound {} ms)",
                    found
                        .iter()
                        .map(|(k, _)| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    (p.now() - started).as_millis(),
                    bound.as_millis()
                )
            } else {
                format!(
                    "{} not acquirable within {bound:?} after the holders stopped",
                    stuck.join(", ")
                )
            },
        },
    );
}

/// L3, run by the runner after the heal: every member has stopped keeping its session and
/// its lease alive (or died), so its temp key and its leased Storage record disappear within
/// [`RunConfig::release_bound`].
pub(crate) async fn temp_keys_gone(p: &Context, cfg: &RunConfig) {
    let store = p.store();
    if cfg.members == 0 {
        return;
    }
    let first = cfg.processes() - cfg.callers - cfg.watchers - cfg.managers - cfg.members;
    let keys: Vec<Key> = (first..first + cfg.members)
        .flat_map(|i| {
            let name = format!("member-{}", i + 1);
            [
                key(&format!("/kv/{name}")),
                key(&format!("/storage/{name}")),
            ]
        })
        .collect();
    let bound = cfg.release_bound();
    let started = p.now();
    let left = loop {
        let mut left = Vec::new();
        for k in &keys {
            match store.read(k).await {
                Ok(r) if r.value.is_none() => {}
                _ => left.push(k.to_string()),
            }
        }
        if left.is_empty() || p.now() - started >= bound {
            break left;
        }
        p.sleep(Duration::from_millis(200)).await;
    };
    p.0.rec.record(
        p.name(),
        Event::Check {
            name: "temp keys".into(),
            ok: left.is_empty(),
            detail: if left.is_empty() {
                format!(
                    "{} temp keys and leased records gone {} ms after the members stopped (bound {} ms)",
                    keys.len(),
                    (p.now() - started).as_millis(),
                    bound.as_millis()
                )
            } else {
                format!(
                    "{} still there {bound:?} after the members stopped",
                    left.join(", ")
                )
            },
        },
    );
}

/// The runner: after the heal, on a node of its own, checks the cluster and the built-in
/// roles' guarantees, recording each as a `Check` (or a violation-bearing operation).
pub(crate) struct Runner {
    pub agents: Vec<std::net::SocketAddr>,
    pub rec: Recorder,
    pub ops: Arc<std::sync::atomic::AtomicU64>,
    pub config: RunConfig,
    /// The watchers still alive (killed ones are not expected to catch up).
    pub watchers: Vec<u64>,
    /// The seed callers still alive, whose streams must catch up too.
    pub callers: Vec<u64>,
    /// The runner's node's address.
    pub addr: std::net::SocketAddr,
}

impl Runner {
    /// Every check after the heal, in order: liveness (L1); then, on a live cluster, health
    /// (S17), acquirable (L2), temp keys gone (L3), watchers caught up (L5), the final read
    /// (S15's evidence).
    pub(crate) async fn check(self) {
        let c = Arc::new(
            NetClient::connect_recorded(
                self.agents.clone(),
                self.config.client,
                Some((self.rec.clone(), "runner".into())),
            )
            .await
            .expect("the runner binds"),
        );
        // The runner's clock reads zero now and does not drift.
        let clock = crate::world::start::steady_clock();
        if !self.liveness(&c, &clock).await {
            return;
        }
        self.health(&c).await;
        let shared = crate::world::start::Shared {
            agents: self.agents.clone(),
            rec: self.rec.clone(),
            cfg: self.config.clone(),
            dir: Arc::default(),
            ops: self.ops.clone(),
        };
        let p = &crate::world::start::context_on(
            &shared,
            "runner",
            0,
            self.addr,
            clock,
            c.clone(),
            None,
            std::sync::OnceLock::new(),
        );
        acquirable(p, &self.config).await;
        temp_keys_gone(p, &self.config).await;
        if !self.watchers.is_empty() || !self.callers.is_empty() {
            self.watchers_caught_up(p, &c).await;
        }
        let w = key("/w");
        let agency = p.agency();
        op(p, "read_all", &w, Value::Null, agency.read_key(&w)).await;
    }

    fn record(&self, name: &str, ok: bool, detail: String) {
        self.rec.record(
            "runner",
            Event::Check {
                name: name.into(),
                ok,
                detail,
            },
        );
    }

    /// L1: a healthy, writable cluster within the liveness bound of the heal.
    async fn liveness(&self, c: &Arc<NetClient>, clock: &SkewedClock) -> bool {
        let healed = clock.now();
        let agency = AgencyApi::new(c.clone());
        let bound = self.config.liveness_bound;
        let live = loop {
            let health = c.are_agents_healthy(false).await;
            let write = agency
                .write_key(&key("/liveness"), json!(1), None, None)
                .await;
            let waited = clock.now() - healed;
            if health.is_ok() && write.is_ok() {
                break Ok(waited);
            }
            if waited >= bound {
                break Err(format!(
                    "no healthy, writable cluster within {bound:?} of the heal (health: {:?}, \
                     write: {:?})",
                    health.err().map(|e| e.to_string()),
                    write.err().map(|e| e.to_string())
                ));
            }
            madsim::time::sleep(Duration::from_millis(100)).await;
        };
        let ok = live.is_ok();
        let detail = match live {
            Ok(d) => format!("healthy and writable {} ms after the heal", d.as_millis()),
            Err(e) => e,
        };
        self.record("liveness", ok, detail);
        ok
    }

    /// S17: on the now stable cluster, exactly one agent answers as leader and every other
    /// redirects to it, probe after probe, and the leader stays the same.
    async fn health(&self, c: &Arc<NetClient>) {
        let mut seen = Vec::new();
        let mut problem = None;
        for _ in 0..HEALTH_PROBES {
            match c.health(false).await {
                Ok(leader) => {
                    if seen.last().is_some_and(|l| *l != leader) {
                        problem = Some(format!(
                            "the leader changed on a stable cluster: {seen:?} then {leader:?}"
                        ));
                    }
                    seen.push(leader);
                }
                Err(e) => problem = Some(e.to_string()),
            }
            if problem.is_some() {
                break;
            }
            madsim::time::sleep(Duration::from_millis(200)).await;
        }
        let ok = problem.is_none();
        let detail = problem.unwrap_or_else(|| {
            format!("{HEALTH_PROBES} probes: one leader, every other agent redirects to it")
        });
        self.record("health", ok, detail);
    }

    /// L5: a last change reaches both streams of every live watcher within the bound, and
    /// both streams of every live seed caller (its hmetcd callback watch and its agency
    /// change callbacks on `/kv/w`).
    async fn watchers_caught_up(&self, p: &Context, c: &Arc<NetClient>) {
        let mut behind = Vec::new();
        let mut details = Vec::new();
        let targets = [
            (
                key(&format!("{WATCHED}/final")),
                "write",
                json!(0),
                &self.watchers,
                ["watch", "callback"],
            ),
            (
                key(super::callers::WATCHED_KV),
                "put",
                json!("final"),
                &self.callers,
                [super::callers::KV_STREAM, super::callers::AGENCY_STREAM],
            ),
        ];
        for (fin, f, value, ids, streams) in targets {
            if ids.is_empty() {
                continue;
            }
            let (b, d) = self.caught_up(p, c, &fin, f, value, ids, streams).await;
            behind.extend(b);
            details.push(d);
        }
        self.record("watchers", behind.is_empty(), details.join("; "));
    }

    /// Writes `value` to `fin` (recorded as `f`) and waits up to the liveness bound for
    /// every `(id, stream)` to receive its revision; returns those behind, and a detail.
    #[allow(clippy::too_many_arguments)]
    async fn caught_up(
        &self,
        p: &Context,
        c: &Arc<NetClient>,
        fin: &Key,
        f: &str,
        value: Value,
        ids: &[u64],
        streams: [&'static str; 2],
    ) -> (Vec<(u64, &'static str)>, String) {
        let mut revision = None;
        op(p, f, fin, value.clone(), async {
            let txn = Txn::new().then(Op::set(fin.clone(), value.clone()));
            match c.submit(Command::Txn(txn)).await? {
                Outcome::Txn(TxnOutcome::Committed { revision: r, .. }) => {
                    revision = Some(r);
                    Ok(value.clone())
                }
                other => Err(AgencyError::Invalid(format!("{other:?}"))),
            }
        })
        .await;
        let started = p.now();
        let bound = self.config.liveness_bound;
        let behind = loop {
            let behind: Vec<(u64, &'static str)> = ids
                .iter()
                .flat_map(|id| streams.map(|s| (*id, s)))
                .filter(|(id, stream)| {
                    revision
                        .is_none_or(|r| self.rec.watched_up_to(*id, stream).is_none_or(|s| s < r))
                })
                .collect();
            if behind.is_empty() || p.now() - started >= bound {
                break behind;
            }
            madsim::time::sleep(Duration::from_millis(50)).await;
        };
        let (what, who, one) = if f == "write" {
            ("watches and callbacks", "watchers", "watcher")
        } else {
            (
                "hmetcd watches and agency callbacks",
                "seed callers",
                "caller",
            )
        };
        let detail = match revision {
            None => format!("the final write to {fin} did not commit"),
            Some(r) if behind.is_empty() => format!(
                "the {what} of {} live {who} received revision {r} within {} ms",
                ids.len(),
                (p.now() - started).as_millis()
            ),
            Some(r) => {
                format!("({one}, stream) {behind:?} did not receive revision {r} within {bound:?}")
            }
        };
        (behind, detail)
    }
}
