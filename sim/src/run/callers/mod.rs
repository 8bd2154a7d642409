//! The built-in seed callers: the calls of the seed documents that the other roles do not
//! make, through the public families, under the run's faults, each recorded for a check.
//!
//! - hmetcd on the keys `s0`, `s1`, `s2` and `w` (`/kv/...`): `store` (`put`), `get`,
//!   `get_range` (one read of the three `s` keys), `delete`, `transaction` (`txn`, its then
//!   and else on any of the keys), `tas`, a blocking `watch` (a read of the value it returns)
//!   — S13 against a key-value map, a range or transaction in one part with every key it
//!   touches; the untimed `dist_lock`, `dist_unlock` and `close` (a release if held) — S6;
//!   a `watch_with_cb` on `w` (through [`Kvs::watch_events`], the same watch with revisions),
//!   cancelled by `watch_cb_cancel` and started again now and then — S16 and, after the heal,
//!   L5; `close` and a new handle now and then.
//! - the agency API's `register_change_callback` / `unregister_change_callback` on `w`, a
//!   stream started again under a new address now and then — S16, L5; and its
//!   `AreAgentsHealthy`.
//! - Juju's lease client on the lease `seed`: `claim_lease`, `extend_lease` (S3 claims),
//!   `refresh` with `leases` (a check of whether this caller holds it, S3) and
//!   `expire_lease` (a vacancy it saw, S3).
//! - Juju leadership of `seed-app`: `claim_leadership`, `check_leadership` (S3), and
//!   `block_until_leadership_released` that a `Manager::stop` from another task ends (S3 for
//!   a wait that returned; L4: the stop makes it return).
//! - Storage: `new_lease` without keep-alive and a record bound to it (S14, S7, its expiry
//!   the system's), `get_lease` and `Lease::ttl`, `Lease::release` (deletes the bound record:
//!   recorded as that delete, S14), `delete`, and `get_range` (one read of every record in
//!   its range, S14).
//!
//! Every value written is unique (`caller-<process>-<nonce>-<n>`), so a watch sees every
//! write as a change and a check can tell writes apart; the holder name carries a nonce
//! drawn at start, so a restarted caller is a new holder, as the history numbers it.

use super::*;
use crate::history::Completion;
use crate::world::Context;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tenure_core::agency::{Agency, AgencyError};
use tenure_core::kv::{KeyChange, KvError, Kvi, Kvs, WatchHandle};
use tenure_core::leadership::LeadershipError;
use tenure_core::lease::{Client as _, LeaseError, Request};
use tenure_core::storage::{Record, Storage as _, StorageError};
use tenure_core::Key;

mod families;
mod streams;
use streams::{agency_stream, start_kv_watch};

/// The hmetcd key the callers' watches follow (`w`), as the agency stores it.
pub(crate) const WATCHED_KV: &str = "/kv/w";
/// The Juju lease the callers contend for.
const SEED_LEASE: &str = "seed";
/// The service whose leadership the callers contend for.
const SEED_SERVICE: &str = "seed-app";
/// The hmetcd keys the callers read and write (`w` is never deleted: its watches end on a
/// delete).
const KV_KEYS: [&str; 4] = ["s0", "s1", "s2", "w"];
/// The kv watch stream's and the agency callback stream's names (S16, L5).
pub(crate) const KV_STREAM: &str = "kv-watch";
pub(crate) const AGENCY_STREAM: &str = "agency-callback";

/// One caller: its own hmetcd handle, lease client and storage, a loop of seed calls while
/// the workload runs; its two streams go on until the run ends.
pub(crate) async fn caller(ctx: Context, cfg: &RunConfig) {
    let me = format!("caller-{}-{:08x}", ctx.id(), ctx.random() as u32);
    let c = ctx.clone();
    ctx.clock()
        .spawn(Box::pin(async move { agency_stream(&c).await }));
    let mut s = Caller {
        kv: open_kv(&ctx, cfg),
        watch: None,
        seen: BTreeMap::new(),
        n: 0,
        records: Vec::new(),
        me,
        ctx,
        cfg: cfg.clone(),
    };
    while s.ctx.workload_running() {
        if s.watch.is_none() {
            // Not started yet, or its start failed (cut off): try again.
            s.watch = s.start_kv_watch().await;
        }
        s.n += 1;
        match s.ctx.random() % 26 {
            0..=2 => s.store().await,
            3..=4 => s.get().await,
            5..=6 => s.get_range().await,
            7 => s.delete().await,
            8..=9 => s.transaction().await,
            10..=11 => s.tas().await,
            12 => s.watch_once().await,
            13 => s.dist_lock().await,
            14 => s.restart_kv_watch().await,
            15 => s.close_and_reopen().await,
            16 => s.claim().await,
            17 => s.check_lease().await,
            18 => s.expire_lease().await,
            19..=20 => s.leased_record().await,
            21 => s.lease_ttl_or_release().await,
            22 => s.storage_range_and_delete().await,
            23 => s.health().await,
            _ => s.leadership().await,
        }
        let pause = s.cfg.op_pause.as_millis() as u64;
        s.ctx
            .sleep(Duration::from_millis(
                pause / 2 + s.ctx.random() % pause.max(1),
            ))
            .await;
    }
    // The watch must run on after the workload (L5): start it in the background until it
    // does, if it is not running.
    if s.watch.is_none() {
        let (ctx, kv) = (s.ctx.clone(), s.kv);
        s.ctx.clock().spawn(Box::pin(async move {
            while start_kv_watch(&ctx, &kv).await.is_none() {
                ctx.sleep(Duration::from_millis(200)).await;
            }
            // The watch holds the handle's state; the handle itself may go.
        }));
    }
}

fn open_kv(ctx: &Context, cfg: &RunConfig) -> Kvs {
    let option = format!("session_ttl_ms={}", cfg.lock_ttl.as_millis());
    let kv = ctx
        .kv(&[&option])
        .expect("the session option is valid")
        .with_bugs(cfg.bugs);
    let c = ctx.clone();
    kv.on_session_lost(move |loss| {
        c.sometimes("caller session lost");
        if loss.held_lock {
            c.sometimes("caller lost the dist lock with its session");
        }
    });
    kv
}

fn kv_path(k: &str) -> String {
    format!("/kv/{k}")
}

struct Caller {
    ctx: Context,
    cfg: RunConfig,
    me: String,
    kv: Kvs,
    watch: Option<WatchHandle>,
    /// The last value this caller saw of each hmetcd key (a `tas` tests against it).
    seen: BTreeMap<String, String>,
    n: u64,
    /// Storage records made with a lease, and the lease, newest last.
    records: Vec<(String, tenure_core::LeaseId)>,
}

impl Caller {
    fn unique(&self) -> String {
        format!("{}-{}", self.me, self.n)
    }

    fn pick(&self, keys: &[&'static str]) -> &'static str {
        keys[(self.ctx.random() % keys.len() as u64) as usize]
    }

    async fn store(&mut self) {
        let k = self.pick(&KV_KEYS);
        let v = self.unique();
        op(&self.ctx, "put", &key(&kv_path(k)), json!(v), async {
            self.kv.store(k, &v).await.map(|_| Value::Null)
        })
        .await;
    }

    async fn get(&mut self) {
        let k = self.pick(&KV_KEYS);
        let (res, out) = op(&self.ctx, "get", &key(&kv_path(k)), Value::Null, async {
            let (v, exists) = self.kv.get(k).await?;
            Ok::<_, KvError>(if exists { json!(v) } else { Value::Null })
        })
        .await;
        if let (Completion::Ok, Value::String(v)) = (res, out) {
            self.seen.insert(k.to_string(), v);
        }
    }

    async fn get_range(&mut self) {
        // hmetcd's range is inclusive: [s0, s2] is every key from s0 up to s2 itself.
        let input = json!({"from": kv_path("s0"), "to": format!("{}\u{0}", kv_path("s2"))});
        let (res, out) = op(&self.ctx, "get_range", &key(&kv_path("s0")), input, async {
            let pairs = self.kv.get_range("s0", "s2").await?;
            let map: Map<String, Value> = pairs
                .into_iter()
                .map(|p| (kv_path(&p.key), json!(p.value)))
                .collect();
            Ok::<_, KvError>(Value::Object(map))
        })
        .await;
        if let (Completion::Ok, Value::Object(m)) = (res, out) {
            for (k, v) in m {
                if let (Some(k), Some(v)) = (k.strip_prefix("/kv/"), v.as_str()) {
                    self.seen.insert(k.to_string(), v.to_string());
                }
            }
        }
    }

    async fn delete(&mut self) {
        let k = self.pick(&KV_KEYS[..3]);
        op(&self.ctx, "delete", &key(&kv_path(k)), Value::Null, async {
            self.kv.delete(k).await.map(|_| Value::Null)
        })
        .await;
    }

    async fn transaction(&mut self) {
        let k = self.pick(&KV_KEYS);
        let cmp = ["=", "!=", "<", ">"][(self.ctx.random() % 4) as usize];
        // Compare against a value seen (or a fresh one), so both branches happen.
        let against = match self.seen.get(k) {
            Some(v) if self.ctx.random().is_multiple_of(2) => v.clone(),
            _ => self.unique(),
        };
        let branch = |s: &Self, tag: &str| match s.ctx.random() % 4 {
            0 => None,
            _ => Some((s.pick(&KV_KEYS), format!("{}{tag}", s.unique()))),
        };
        let (then, otherwise) = (branch(self, "t"), branch(self, "e"));
        let side = |b: &Option<(&str, String)>| match b {
            Some((k, v)) => json!([kv_path(k), v]),
            None => Value::Null,
        };
        let input =
            json!({"op": cmp, "value": against, "then": side(&then), "else": side(&otherwise)});
        let arg = |b: &Option<(&'static str, String)>| b.clone().unwrap_or(("", String::new()));
        let ((tk, tv), (ek, ev)) = (arg(&then), arg(&otherwise));
        op(&self.ctx, "txn", &key(&kv_path(k)), input, async {
            self.kv
                .transaction(k, cmp, &against, tk, &tv, ek, &ev)
                .await
                .map(Value::Bool)
        })
        .await;
    }

    /// A `tas` of a key against the value this caller saw last, mostly just read (so it
    /// often succeeds, and contends with the other callers' writes).
    async fn tas(&mut self) {
        let k = self.pick(&KV_KEYS);
        if !self.ctx.random().is_multiple_of(4) {
            let (res, out) = op(&self.ctx, "get", &key(&kv_path(k)), Value::Null, async {
                let (v, exists) = self.kv.get(k).await?;
                Ok::<_, KvError>(if exists { json!(v) } else { Value::Null })
            })
            .await;
            if let (Completion::Ok, Value::String(v)) = (res, out) {
                self.seen.insert(k.to_string(), v);
            }
        }
        let test = self.seen.get(k).cloned().unwrap_or_else(|| self.unique());
        let set = self.unique();
        let input = json!({"test": test, "set": set});
        let (res, out) = op(&self.ctx, "tas", &key(&kv_path(k)), input, async {
            self.kv.tas(k, &test, &set).await.map(Value::Bool)
        })
        .await;
        if (res, out) == (Completion::Ok, Value::Bool(true)) {
            self.seen.insert(k.to_string(), set);
        }
    }

    /// A blocking watch of one key, given up (as a read that found nothing) after 1 s.
    async fn watch_once(&mut self) {
        let k = self.pick(&KV_KEYS);
        let clock = self.ctx.clock();
        let (res, out) = op(&self.ctx, "watch", &key(&kv_path(k)), Value::Null, async {
            let w = self.kv.watch(k);
            match tenure_core::clock::timeout(&*clock, Duration::from_secs(1), w).await {
                Some(Ok((v, KeyChange::Put))) => Ok(json!(v)),
                Some(Ok(_)) => Ok(Value::Null),
                Some(Err(e)) => Err(e),
                None => Err(KvError::Invalid("no change within 1 s".into())),
            }
        })
        .await;
        if let (Completion::Ok, Value::String(v)) = (res, out) {
            self.seen.insert(k.to_string(), v);
            self.ctx.sometimes("caller watch saw a change");
        }
    }

    /// The untimed distributed lock, held a moment, then released.
    async fn dist_lock(&mut self) {
        let lock = key(&kv_path(tenure_core::kv::DIST_LOCK_KEY));
        // Untimed: it waits as long as the lock is held, but not past the workload (a member
        // may keep it to the end); given up then by dropping the call, its outcome unknown.
        let ctx = self.ctx.clone();
        let end = async move {
            while ctx.workload_running() {
                ctx.sleep(Duration::from_millis(100)).await;
            }
        };
        let (res, _) = op(&self.ctx, "dist_lock", &lock, Value::Null, async {
            let lock = std::pin::pin!(self.kv.dist_lock());
            match futures::future::select(lock, std::pin::pin!(end)).await {
                futures::future::Either::Left((r, _)) => r.map(|_| Value::Null),
                futures::future::Either::Right(_) => {
                    Err(KvError::Client(tenure_core::ClientError::Indeterminate(
                        "given up at the end of the workload".into(),
                    )))
                }
            }
        })
        .await;
        if res != Completion::Ok {
            return;
        }
        self.ctx.sleep(Duration::from_millis(50)).await;
        let (res, _) = op(&self.ctx, "dist_unlock", &lock, Value::Null, async {
            self.kv.dist_unlock().await.map(|_| Value::Null)
        })
        .await;
        if res == Completion::Ok {
            self.ctx.sometimes("caller released the dist lock");
        }
    }

    async fn start_kv_watch(&self) -> Option<WatchHandle> {
        start_kv_watch(&self.ctx, &self.kv).await
    }

    async fn restart_kv_watch(&mut self) {
        if let Some(h) = self.watch.take() {
            op(
                &self.ctx,
                "watch_cb_cancel",
                &key(WATCHED_KV),
                Value::Null,
                async { self.kv.watch_cb_cancel(h).map(|_| Value::Null) },
            )
            .await;
        }
        self.watch = self.start_kv_watch().await;
    }

    /// Closes the handle (releasing the lock if it held it: recorded as that release) and
    /// opens a new one, with a new watch.
    async fn close_and_reopen(&mut self) {
        let lock = key(&kv_path(tenure_core::kv::DIST_LOCK_KEY));
        op(&self.ctx, "dist_unlock", &lock, json!("close"), async {
            self.kv.close().await.map(|_| Value::Null)
        })
        .await;
        self.kv = open_kv(&self.ctx, &self.cfg);
        self.watch = self.start_kv_watch().await;
    }
}
