//! The built-in members: hmetcd temp keys kept alive by a session, and a Storage record
//! bound to a kept-alive lease, until the process dies.

use super::*;
use crate::history::Completion;
use crate::world::Context;
use serde_json::{json, Value};
use std::time::Duration;
use tenure_core::agency::AgencyError;
use tenure_core::kv::{Kvi, Kvs};
use tenure_core::storage::{Record, Storage, StorageApi, StorageError};

/// The agency key behind each resource holders believe in (for S4).
pub(crate) const EXPIRING_KEYS: [(&str, &str); 3] = [
    (LOCK_KEY, LOCK_RESOURCE),
    ("/lease/svc", LEASE_RESOURCE),
    ("/lease/app", LEADERSHIP_RESOURCE),
];

/// A member: an hmetcd handle whose session keeps the temp key `member-<process>` alive, and
/// a Storage record of the same name bound to a kept-alive Lessor lease, until the run ends
/// (or the process dies, when both must go within the TTL).
pub(crate) async fn member(ctx: Context, cfg: &RunConfig) {
    let option = format!("session_ttl_ms={}", cfg.lock_ttl.as_millis());
    let kv = Kvs::open(ctx.store(), &[&option]).expect("the session option is valid");
    let storage = StorageApi::new(ctx.store()).with_bugs(cfg.bugs);
    let name = format!("member-{}", ctx.id());
    let path = key(&format!("/kv/{name}"));
    loop {
        let (res, _) = op(&ctx, "temp_key", &path, Value::Null, async {
            kv.temp_key(&name)
                .await
                .map(|_| Value::Null)
                .map_err(|e| AgencyError::Invalid(e.to_string()))
        })
        .await;
        if res == Completion::Ok || !ctx.workload_running() {
            break;
        }
        ctx.sleep(Duration::from_millis(200)).await;
    }
    let record_key = key(&format!("/storage/{name}"));
    let mut lease = None;
    while ctx.workload_running() {
        let (res, _) = op(&ctx, "leased_record", &record_key, Value::Null, async {
            let fail = |e: StorageError| AgencyError::Invalid(e.to_string());
            let l = storage
                .lessor()
                .new_lease(cfg.lock_ttl, true)
                .await
                .map_err(fail)?;
            let mut r = Record::new(&name, json!(ctx.id()));
            r.lease = l.id();
            storage.create(r).await.map_err(fail)?;
            lease = Some(l);
            Ok::<_, AgencyError>(Value::Null)
        })
        .await;
        if res == Completion::Ok {
            break;
        }
        ctx.sleep(Duration::from_millis(200)).await;
    }
    // While the session and lease are kept alive: take the hmetcd distributed lock now and
    // then (a timed lock: try, wait at most 1 s), bump a shared Storage record by version,
    // and wait for someone else's change to it.
    let dist = key(&format!("/kv/{}", tenure_core::kv::DIST_LOCK_KEY));
    let shared = key("/storage/shared");
    while ctx.workload_running() {
        let (res, _) = op(&ctx, "dist_timed_lock", &dist, Value::Null, async {
            kv.dist_timed_lock(Duration::from_secs(1))
                .await
                .map(|_| Value::Null)
                .map_err(|e| AgencyError::Invalid(e.to_string()))
        })
        .await;
        if res == Completion::Ok {
            ctx.sleep(Duration::from_millis(100)).await;
            op(&ctx, "dist_unlock", &dist, Value::Null, async {
                kv.dist_unlock()
                    .await
                    .map(|_| Value::Null)
                    .map_err(|e| AgencyError::Invalid(e.to_string()))
            })
            .await;
        }
        // Read the shared record, then set it by the version read (or create it); each step
        // is an operation of its own, so the storage model checks them (S14).
        let (res, got) = op(&ctx, "storage_get", &shared, Value::Null, async {
            storage
                .get("shared")
                .await
                .map(|r| json!({"value": r.value, "version": r.version}))
        })
        .await;
        if res != Completion::Ok {
            ctx.sleep(Duration::from_millis(200)).await;
            continue;
        }
        // Each member writes its own id, so values repeat (A, B, A, ...): only the version
        // tells one write from another, as compare-and-set by version must. Some work
        // between the read and the write back (up to 1 s) lets other members' writes come
        // in between, which the compare-and-set must then refuse.
        let mine = json!(ctx.id());
        let think = ctx.random() % 1000;
        ctx.sleep(Duration::from_millis(think)).await;
        let (res, v) = match got.get("version").and_then(Value::as_u64) {
            Some(seen) => {
                let input = json!({"version": seen, "value": mine});
                let (res, v) = op(&ctx, "cas_by_version", &shared, input, async {
                    let mut r = Record::new("shared", mine.clone());
                    r.version = seen;
                    storage
                        .cas_by_version(r)
                        .await
                        .map(|v| json!({ "version": v }))
                })
                .await;
                (
                    res,
                    if res == Completion::Ok {
                        v
                    } else {
                        json!({ "version": seen })
                    },
                )
            }
            None => {
                op(&ctx, "create", &shared, json!({ "value": mine }), async {
                    storage
                        .create(Record::new("shared", mine.clone()))
                        .await
                        .map(|v| json!({ "version": v }))
                })
                .await
            }
        };
        if let (Completion::Ok | Completion::Fail, Some(v)) =
            (res, v.get("version").and_then(Value::as_u64))
        {
            // Wait (at most 1 s) for someone else's change.
            op(&ctx, "wait_for_version_change", &shared, json!(v), async {
                let wait = storage.wait_for_version_change("shared", v);
                match tenure_core::clock::timeout(&*ctx.clock(), Duration::from_secs(1), wait).await
                {
                    Some(Ok(Some(r))) => Ok(json!({ "version": r.version })),
                    Some(Ok(None)) => Ok(json!({ "deleted": true })),
                    Some(Err(e)) => Err(e),
                    None => Ok(json!({ "timed_out": true })),
                }
            })
            .await;
        }
        ctx.sleep(Duration::from_millis(200)).await;
    }
    drop((kv, lease));
}
