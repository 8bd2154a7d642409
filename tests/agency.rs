//! Seed 000 over `mem:`: the agency API and its Lock.

mod common;

use common::{key, run};
use futures::StreamExt;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tenure::core::agency::{
    is_same_endpoint, Agency, AgencyApi, AgencyError, Lock, WriteCondition,
};
use tenure::core::EventKind;

fn api(env: &common::Env) -> Arc<dyn Agency> {
    Arc::new(AgencyApi::new(env.client()))
}

#[test]
fn read_write_and_key_not_found_names_the_missing_prefix() {
    run(|env| async move {
        let a = api(&env);
        a.write_key(&key("/arango/Plan/x"), json!({"v": 1}), None, None)
            .await
            .unwrap();
        assert_eq!(
            a.read_key(&key("/arango/Plan")).await.unwrap(),
            json!({"x": {"v": 1}})
        );
        assert_eq!(
            a.read_key(&key("/arango/Plan/x/v")).await.unwrap(),
            json!(1)
        );
        // The error names the key asked for, and the prefix that holds nothing.
        match a.read_key(&key("/arango/Current/y")).await {
            Err(e @ AgencyError::KeyNotFound { .. }) => {
                let AgencyError::KeyNotFound { key: k, missing } = &e else {
                    unreachable!()
                };
                assert_eq!(k, &key("/arango/Current/y"));
                assert_eq!(missing, &key("/arango/Current"));
                assert_eq!(
                    e.to_string(),
                    "key not found: /arango/Current/y (nothing at /arango/Current)"
                );
            }
            other => panic!("{other:?}"),
        }
        let e = a.read_key(&key("/nope")).await.unwrap_err();
        assert_eq!(e.to_string(), "key not found: /nope");
    });
}

#[test]
fn ttl_writes_expire_on_agency_time() {
    run(|env| async move {
        let a = api(&env);
        a.write_key(&key("/t"), json!(1), Some(Duration::from_secs(5)), None)
            .await
            .unwrap();
        let ttl = Duration::from_secs(5);
        env.clock.sleep(env.before(ttl)).await;
        assert_eq!(a.read_key(&key("/t")).await.unwrap(), json!(1));
        env.clock.sleep(env.after(ttl) - env.before(ttl)).await;
        assert!(matches!(
            a.read_key(&key("/t")).await,
            Err(AgencyError::KeyNotFound { .. })
        ));
        // A sub-millisecond TTL rounds up, never down to "no TTL".
        a.write_key(&key("/u"), json!(1), Some(Duration::from_micros(10)), None)
            .await
            .unwrap();
        env.clock.sleep(env.after(Duration::from_millis(1))).await;
        assert!(a.read_key(&key("/u")).await.is_err());
    });
}

#[test]
fn conditions() {
    run(|env| async move {
        let a = api(&env);
        let k = key("/c");
        a.write_key_if_empty(&k, json!("a"), None).await.unwrap();
        let e = a
            .write_key_if_empty(&k, json!("b"), None)
            .await
            .unwrap_err();
        assert!(
            matches!(e, AgencyError::ConditionFailed { found: Some(_), .. }),
            "{e:?}"
        );
        a.write_key_if_equal_to(&k, json!("b"), json!("a"), None)
            .await
            .unwrap();
        assert!(a
            .write_key_if_equal_to(&k, json!("c"), json!("a"), None)
            .await
            .is_err());
        assert_eq!(a.read_key(&k).await.unwrap(), json!("b"));
        // A condition on another key.
        let arr = key("/arr");
        let cond = WriteCondition::new().if_is_array(&arr);
        assert!(a
            .write_key(&k, json!("d"), None, Some(cond.clone()))
            .await
            .is_err());
        a.write_key(&arr, json!([]), None, None).await.unwrap();
        a.write_key(&k, json!("d"), None, Some(cond)).await.unwrap();
        assert!(a.remove_key_if_equal_to(&k, json!("x")).await.is_err());
        a.remove_key_if_equal_to(&k, json!("d")).await.unwrap();
        assert!(a.read_key(&k).await.is_err());
        a.remove_key(&arr, Some(WriteCondition::new().if_empty(&key("/zz"))))
            .await
            .unwrap();
        assert!(a.read_key(&arr).await.is_err());
    });
}

#[test]
fn a_zero_ttl_means_no_ttl_as_in_the_go_driver() {
    run(|env| async move {
        let a = api(&env);
        a.write_key(&key("/t"), json!(1), Some(Duration::ZERO), None)
            .await
            .unwrap();
        // Ten minutes on: a TTL of zero would have expired at once.
        env.clock.sleep(env.long(Duration::from_secs(600))).await;
        assert_eq!(a.read_key(&key("/t")).await.unwrap(), json!(1));
    });
}

#[test]
fn bad_inputs_are_refused() {
    run(|env| async move {
        let a = api(&env);
        let root = tenure::core::Key::root();
        assert!(matches!(
            a.write_key(&root, json!(1), None, None).await,
            Err(AgencyError::Invalid(_))
        ));
        assert!(matches!(
            a.remove_key(&root, None).await,
            Err(AgencyError::Invalid(_))
        ));
        assert!(a.register_change_callback(&key("/x"), "").await.is_err());
        let lock = Lock::new(
            a.clone(),
            env.shared_clock(),
            key("/l"),
            "",
            Duration::from_secs(1),
        );
        assert!(matches!(lock, Err(AgencyError::Invalid(_))));
        let lock = Lock::new(
            a.clone(),
            env.shared_clock(),
            key("/l"),
            "me",
            Duration::ZERO,
        );
        assert!(matches!(lock, Err(AgencyError::Invalid(_))));
        let lock = Lock::new(
            a.clone(),
            env.shared_clock(),
            root,
            "me",
            Duration::from_secs(1),
        );
        assert!(matches!(lock, Err(AgencyError::Invalid(_))));
        let lock = Lock::new(
            a,
            env.shared_clock(),
            key("/l"),
            "me",
            Duration::from_secs(1),
        )
        .unwrap();
        assert!(lock.with_drift_bound(1.5).is_err());
    });
}

#[test]
fn change_callbacks_receive_events_in_order() {
    run(|env| async move {
        let a = api(&env);
        let mut inbox = env.callback_inbox("http://observer/cb");
        a.register_change_callback(&key("/watched"), "http://observer/cb")
            .await
            .unwrap();
        a.write_key(&key("/watched/a"), json!(1), None, None)
            .await
            .unwrap();
        a.write_key(&key("/other"), json!(1), None, None)
            .await
            .unwrap();
        a.write_key(&key("/watched"), json!({"a": 2}), None, None)
            .await
            .unwrap();
        a.remove_key(&key("/watched"), None).await.unwrap();
        a.unregister_change_callback(&key("/watched"), "http://observer/cb")
            .await
            .unwrap();
        a.write_key(&key("/watched"), json!(3), None, None)
            .await
            .unwrap();
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(inbox.next().await.unwrap());
        }
        let kinds: Vec<_> = got.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![EventKind::Create, EventKind::Modify, EventKind::Delete]
        );
        let revs: Vec<_> = got.iter().map(|e| e.revision).collect();
        assert_eq!(revs, vec![1, 3, 4]);
        assert!(inbox.try_recv().is_err(), "nothing after unregistering");
    });
}

#[test]
fn lock_excludes_renews_and_unlocks() {
    run(|env| async move {
        let a = api(&env);
        let b = api(&env);
        let ttl = Duration::from_secs(2);
        let la = Lock::new(a, env.shared_clock(), key("/lock"), "A", ttl).unwrap();
        let lb = Lock::new(b, env.shared_clock(), key("/lock"), "B", ttl).unwrap();
        assert!(!la.is_locked());
        let token_a = la.lock().await.unwrap();
        assert!(la.is_locked());
        assert_eq!(la.fencing_token(), Some(token_a));
        assert_eq!(la.lock().await, Err(AgencyError::AlreadyLocked));
        assert_eq!(lb.lock().await, Err(AgencyError::AlreadyLocked));
        assert_eq!(lb.unlock().await, Err(AgencyError::NotLocked));
        // Renewal keeps it well past the TTL.
        env.clock.sleep(env.long(Duration::from_secs(30))).await;
        assert!(la.is_locked());
        assert_eq!(lb.lock().await, Err(AgencyError::AlreadyLocked));
        la.unlock().await.unwrap();
        assert!(!la.is_locked());
        assert_eq!(la.unlock().await, Err(AgencyError::NotLocked));
        let token_b = lb.lock().await.unwrap();
        assert!(token_b > token_a, "fencing tokens increase");
    });
}

/// A holder's unlock whose answer was lost may still arrive after the holder locked again:
/// it must not remove the new grant, which holds the same id (an S1 overlap found by the
/// holder sweep, seed 111). The unlock is guarded by the grant's creation revision.
#[test]
fn a_late_unlock_does_not_remove_a_newer_grant_of_the_same_holder() {
    run(|env| async move {
        let a = api(&env);
        let ttl = Duration::from_secs(2);
        let la = Lock::new(a.clone(), env.shared_clock(), key("/lock"), "A", ttl).unwrap();
        let first = la.lock().await.unwrap();
        la.unlock().await.unwrap();
        let second = la.lock().await.unwrap();
        assert!(second > first);
        // The first grant's unlock, replayed late, exactly as `Lock::unlock` sends it.
        let stale = WriteCondition::new()
            .if_equal_to(&key("/lock"), json!("A"))
            .if_created_at(&key("/lock"), first);
        assert!(matches!(
            a.remove_key(&key("/lock"), Some(stale)).await,
            Err(AgencyError::ConditionFailed { .. })
        ));
        assert_eq!(a.read_key(&key("/lock")).await.unwrap(), json!("A"));
        // Renewals keep the grant, and its own unlock still works.
        env.clock.sleep(env.after(Duration::from_secs(5))).await;
        assert!(la.is_locked());
        assert_eq!(la.fencing_token(), Some(second));
        la.unlock().await.unwrap();
        assert!(a.read_key(&key("/lock")).await.is_err());
    });
}

#[test]
fn lock_holder_stops_believing_when_the_key_is_taken_over() {
    run(|env| async move {
        let a = api(&env);
        let ttl = Duration::from_secs(2);
        let la = Lock::new(a.clone(), env.shared_clock(), key("/lock"), "A", ttl).unwrap();
        la.lock().await.unwrap();
        // Someone overwrites the lock key: the next renewal fails and A lets go.
        a.write_key(&key("/lock"), json!("intruder"), None, None)
            .await
            .unwrap();
        // The renewal at TTL/2 finds the key taken.
        env.clock
            .sleep(env.after(Duration::from_millis(1001)))
            .await;
        assert!(!la.is_locked());
        assert_eq!(la.unlock().await, Err(AgencyError::NotLocked));
        assert_eq!(a.read_key(&key("/lock")).await.unwrap(), json!("intruder"));
    });
}

#[test]
fn belief_deadline_allows_for_drift() {
    run(|env| async move {
        let a = api(&env);
        let ttl = Duration::from_secs(10);
        let l = Lock::new(a, env.shared_clock(), key("/lock"), "A", ttl)
            .unwrap()
            .with_drift_bound(0.1)
            .unwrap();
        let start = env.clock.now();
        l.lock().await.unwrap();
        // From the start of the call (read by the lock just after `start`; on the virtual
        // clocks, the same instant): 10 s times 1 - 0.1.
        let d = l.belief_deadline().unwrap();
        let nine = Duration::from_secs(9);
        assert!(
            d >= start + nine
                && d <= start + nine + Duration::from_millis(if env.is_real() { 50 } else { 0 }),
            "{d:?} from {start:?}"
        );
    });
}

#[test]
fn same_endpoint() {
    assert!(is_same_endpoint("http://Agent1:8529", "tcp://agent1:8529/"));
    assert!(is_same_endpoint("https://a:1", "ssl://a:1"));
    assert!(!is_same_endpoint("http://a:1", "https://a:1"));
    assert!(!is_same_endpoint("http://a:1", "http://a:2"));
}

#[test]
fn lock_delay_keeps_a_dead_holders_lock_from_being_granted_at_once() {
    run(|env| async move {
        let a = api(&env);
        let k = key("/locks/d");
        let ttl = Duration::from_secs(2);
        let delay = Duration::from_secs(3);
        // A holder took the lock with a lock-delay and died (nobody renews or removes it).
        let dead = WriteCondition::new().if_empty(&k).with_lock_delay(delay);
        a.write_key(&k, json!("dead"), Some(ttl), Some(dead))
            .await
            .unwrap();
        let lb = Lock::new(a.clone(), env.shared_clock(), k.clone(), "B", ttl)
            .unwrap()
            .with_lock_delay(delay)
            .unwrap();
        env.clock.sleep(env.after(ttl)).await;
        assert!(a.read_key(&k).await.is_err(), "expired");
        assert_eq!(
            lb.lock().await,
            Err(AgencyError::AlreadyLocked),
            "lock-delay"
        );
        env.clock
            .sleep(env.after(ttl + delay) - env.after(ttl))
            .await;
        lb.lock().await.unwrap();
        // A voluntary release starts no delay.
        lb.unlock().await.unwrap();
        let lc = Lock::new(a.clone(), env.shared_clock(), k.clone(), "C", ttl).unwrap();
        lc.lock().await.unwrap();
    });
}

#[test]
fn an_unlock_that_fails_keeps_the_lock_for_a_retry() {
    use std::sync::atomic::Ordering;
    let clock = tenure::core::ManualClock::new();
    let mem = tenure::core::open("mem:", clock.shared()).unwrap();
    let flaky = common::flaky::Flaky::new(mem.client());
    let c = clock.shared();
    clock.block_on(async move {
        let other = Lock::new(
            Arc::new(AgencyApi::new(mem.client())),
            c.clone(),
            key("/l"),
            "b",
            Duration::from_secs(3),
        )
        .unwrap();
        let lock = Lock::new(
            Arc::new(AgencyApi::new(Arc::new(flaky.clone()))),
            c.clone(),
            key("/l"),
            "a",
            Duration::from_secs(3),
        )
        .unwrap();
        lock.lock().await.unwrap();
        // Cut off: the remove surely did not happen, so the lock is still held, renewed.
        flaky.set_down(true);
        assert!(matches!(lock.unlock().await, Err(AgencyError::Client(_))));
        assert!(lock.is_locked(), "kept, as the Go driver keeps it");
        flaky.set_down(false);
        c.sleep(Duration::from_secs(10)).await;
        assert!(lock.is_locked(), "renewed meanwhile");
        assert_eq!(other.lock().await, Err(AgencyError::AlreadyLocked));
        lock.unlock().await.unwrap();
        assert!(!lock.is_locked());
        other.lock().await.unwrap();
        other.unlock().await.unwrap();

        // An unknown outcome: no longer believed held, but a retry may remove the key.
        lock.lock().await.unwrap();
        flaky.lose_answers.store(true, Ordering::SeqCst);
        assert!(lock.unlock().await.is_err());
        flaky.lose_answers.store(false, Ordering::SeqCst);
        assert!(!lock.is_locked());
        // It did happen: the retry finds the key gone (NotLocked), and another may lock.
        assert_eq!(lock.unlock().await, Err(AgencyError::NotLocked));
        other.lock().await.unwrap();
        assert_eq!(lock.unlock().await, Err(AgencyError::NotLocked));
    });
}

#[test]
fn agents_health_and_the_broadcast_connection_through_the_agency_api() {
    run(|env| async move {
        let a = AgencyApi::new(env.client());
        let leader = a.are_agents_healthy(false).await.unwrap();
        assert!(leader.is_some());
        assert_eq!(a.are_agents_healthy(true).await.unwrap(), leader);
        // The broadcast connection reads and writes the same agency.
        let b = a.broadcast();
        b.write_key(&key("/bc/x"), json!(1), None, None)
            .await
            .unwrap();
        assert_eq!(a.read_key(&key("/bc/x")).await.unwrap(), json!(1));
        a.write_key(&key("/bc/x"), json!(2), None, None)
            .await
            .unwrap();
        assert_eq!(b.read_key(&key("/bc/x")).await.unwrap(), json!(2));
        assert_eq!(b.are_agents_healthy(false).await.unwrap(), leader);
    });
}
