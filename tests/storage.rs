//! Seed 003 over `mem:`: versioned records and the Lessor.

mod common;

use common::run;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tenure::core::storage::{Record, Storage, StorageApi, StorageError};
use tenure::core::NO_LEASE;

fn storage(env: &common::Env) -> StorageApi {
    StorageApi::new(env.client())
}

#[test]
fn create_get_cas_delete() {
    run(|env| async move {
        let s = storage(&env);
        assert_eq!(
            s.create(Record::new("r", json!({"a": 1}))).await.unwrap(),
            1
        );
        match s.create(Record::new("r", json!(2))).await {
            Err(StorageError::AlreadyExists(existing)) => {
                assert_eq!(existing.value, json!({"a": 1}));
                assert_eq!(existing.version, 1);
            }
            other => panic!("{other:?}"),
        }
        let mut r = s.get("r").await.unwrap();
        assert_eq!((r.version, r.lease), (1, NO_LEASE));
        r.value = json!("v2");
        assert_eq!(s.cas_by_version(r.clone()).await.unwrap(), 2);
        assert_eq!(
            s.cas_by_version(r.clone()).await,
            Err(StorageError::WrongVersion { current: 2 })
        );
        assert_eq!(s.get("r").await.unwrap().value, json!("v2"));
        s.delete("r").await.unwrap();
        assert_eq!(s.delete("r").await, Err(StorageError::NotFound));
        assert_eq!(s.get("r").await, Err(StorageError::NotFound));
        assert_eq!(s.cas_by_version(r).await, Err(StorageError::NotFound));
        // A new incarnation starts again at version 1.
        assert_eq!(s.create(Record::new("r", json!(0))).await.unwrap(), 1);
    });
}

#[test]
fn get_range_is_inclusive() {
    run(|env| async move {
        let s = storage(&env);
        for k in ["a", "b", "c", "d"] {
            s.create(Record::new(k, json!(k))).await.unwrap();
        }
        let keys: Vec<String> = s
            .get_range("b", "c")
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.key)
            .collect();
        assert_eq!(keys, vec!["b", "c"]);
        assert!(s.get_range("x", "z").await.unwrap().is_empty());
    });
}

#[test]
fn leased_records_vanish_with_the_lease_and_cas_keeps_the_lease() {
    run(|env| async move {
        let s = storage(&env);
        let lessor = s.lessor();
        let lease = lessor
            .new_lease(Duration::from_secs(5), false)
            .await
            .unwrap();
        let mut rec = Record::new("eph", json!(1));
        rec.lease = lease.id();
        s.create(rec).await.unwrap();
        let mut r = s.get("eph").await.unwrap();
        assert_eq!(r.lease, lease.id());
        r.value = json!(2);
        r.lease = NO_LEASE; // ignored on update
        s.cas_by_version(r).await.unwrap();
        assert_eq!(s.get("eph").await.unwrap().lease, lease.id());
        env.clock.sleep(Duration::from_secs(2)).await;
        let three = Duration::from_secs(3);
        let left = lease.ttl().await.unwrap();
        // Agency time runs at 1 - rho of the leader's clock, in ticks: a real cluster's
        // lease may have a little more left than the wall time says.
        assert!(
            left <= env.after(three) && left >= env.before(three),
            "{left:?}"
        );
        env.clock.sleep(env.after(three)).await;
        assert_eq!(s.get("eph").await, Err(StorageError::NotFound));
        assert_eq!(
            lease.ttl().await,
            Err(StorageError::LeaseNotFound(lease.id()))
        );
        assert!(lessor.get_lease(lease.id()).await.is_err());
    });
}

#[test]
fn kept_alive_leases_live_while_the_handle_does_and_release_deletes() {
    run(|env| async move {
        let s = storage(&env);
        let lease = s
            .lessor()
            .new_lease(Duration::from_secs(3), true)
            .await
            .unwrap();
        let mut rec = Record::new("k", json!(1));
        rec.lease = lease.id();
        s.create(rec).await.unwrap();
        env.clock.sleep(env.long(Duration::from_secs(60))).await;
        assert!(s.get("k").await.is_ok());
        let same = s.lessor().get_lease(lease.id()).await.unwrap();
        same.release().await.unwrap();
        assert_eq!(s.get("k").await, Err(StorageError::NotFound));
        assert_eq!(
            lease.release().await,
            Err(StorageError::LeaseNotFound(lease.id()))
        );

        // The keep-alive stops when the storage handle is dropped: the lease runs out.
        let other = storage(&env);
        let l2 = other
            .lessor()
            .new_lease(Duration::from_secs(3), true)
            .await
            .unwrap();
        let id = l2.id();
        drop(l2);
        drop(other);
        env.clock.sleep(Duration::from_secs(5)).await;
        assert!(s.lessor().get_lease(id).await.is_err());
    });
}

#[test]
fn bad_inputs() {
    run(|env| async move {
        let s = storage(&env);
        assert!(matches!(
            s.create(Record::new("", json!(1))).await,
            Err(StorageError::Invalid(_))
        ));
        assert!(matches!(s.get("").await, Err(StorageError::Invalid(_))));
        let mut r = Record::new("x", json!(1));
        r.lease = 77;
        assert_eq!(s.create(r).await, Err(StorageError::LeaseNotFound(77)));
        assert!(s.get("x").await.is_err(), "nothing written");
        let l = s.lessor();
        assert!(matches!(
            l.new_lease(Duration::ZERO, false).await,
            Err(StorageError::Invalid(_))
        ));
        assert!(matches!(
            l.get_lease(NO_LEASE).await,
            Err(StorageError::Invalid(_))
        ));
        assert_eq!(
            l.get_lease(12345).await.err(),
            Some(StorageError::LeaseNotFound(12345))
        );
        assert_eq!(
            s.wait_for_version_change("nope", 1).await,
            Err(StorageError::NotFound)
        );
    });
}

#[test]
fn wait_for_version_change() {
    run(|env| async move {
        let s = Arc::new(storage(&env));
        s.create(Record::new("w", json!(1))).await.unwrap();
        // A version other than the current one returns at once.
        let r = s.wait_for_version_change("w", 7).await.unwrap().unwrap();
        assert_eq!(r.version, 1);
        let (s2, clock) = (s.clone(), env.shared_clock());
        env.clock.spawn(Box::pin(async move {
            clock.sleep(Duration::from_secs(1)).await;
            s2.create(Record::new("unrelated", json!(0))).await.unwrap();
            clock.sleep(Duration::from_secs(1)).await;
            let mut r = s2.get("w").await.unwrap();
            r.value = json!(2);
            s2.cas_by_version(r).await.unwrap();
            clock.sleep(Duration::from_secs(1)).await;
            s2.delete("w").await.unwrap();
        }));
        let r = s.wait_for_version_change("w", 1).await.unwrap().unwrap();
        assert_eq!((r.version, r.value.clone()), (2, json!(2)));
        let two = Duration::from_secs(2);
        assert!(env.clock.now() >= two && env.clock.now() <= env.after(two));
        assert_eq!(
            s.wait_for_version_change("w", 2).await.unwrap(),
            None,
            "deleted"
        );
        let three = Duration::from_secs(3);
        assert!(env.clock.now() >= three && env.clock.now() <= env.after(three));
    });
}
