//! Seed 001 over `mem:`: hmetcd's interface, with locks, temp keys and watches that work.

mod common;

use common::run;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenure::core::kv::{KeyChange, KvError, KvPair, Kvi, Kvs};

fn kvs(env: &common::Env) -> Kvs {
    Kvs::open(env.client(), &["session_ttl_ms=3000"]).unwrap()
}

#[test]
fn store_get_delete_range() {
    run(|env| async move {
        let kv = kvs(&env);
        assert_eq!(kv.get("a").await.unwrap(), (String::new(), false));
        kv.store("a", "").await.unwrap();
        assert_eq!(kv.get("a").await.unwrap(), (String::new(), true));
        kv.store("/x/b", "2").await.unwrap();
        kv.store("/x/a", "1").await.unwrap();
        kv.store("/x/c", "3").await.unwrap();
        kv.store("/y", "4").await.unwrap();
        let r = kv.get_range("/x/a", "/x/b").await.unwrap();
        assert_eq!(
            r,
            vec![
                KvPair {
                    key: "/x/a".into(),
                    value: "1".into()
                },
                KvPair {
                    key: "/x/b".into(),
                    value: "2".into()
                }
            ]
        );
        assert!(kv.get_range("/z", "/zz").await.unwrap().is_empty());
        assert!(kv.get_range("/y", "/x").await.unwrap().is_empty());
        kv.delete("/x/a").await.unwrap();
        kv.delete("/x/a").await.unwrap(); // not an error
        assert!(!kv.get("/x/a").await.unwrap().1);
    });
}

#[test]
fn transaction_and_tas() {
    run(|env| async move {
        let kv = kvs(&env);
        kv.store("k", "5").await.unwrap();
        assert!(kv
            .transaction("k", "=", "5", "t", "yes", "e", "no")
            .await
            .unwrap());
        assert_eq!(kv.get("t").await.unwrap().0, "yes");
        assert!(!kv
            .transaction("k", ">", "6", "t", "again", "e", "no")
            .await
            .unwrap());
        assert_eq!(kv.get("e").await.unwrap().0, "no");
        assert_eq!(kv.get("t").await.unwrap().0, "yes");
        assert!(kv.transaction("k", "<", "6", "", "", "", "").await.unwrap());
        assert!(kv
            .transaction("k", "!=", "4", "", "", "", "")
            .await
            .unwrap());
        // A missing key fails every comparison.
        assert!(!kv
            .transaction("missing", "!=", "x", "t", "1", "", "")
            .await
            .unwrap());
        assert!(matches!(
            kv.transaction("k", "~", "5", "", "", "", "").await,
            Err(KvError::Invalid(_))
        ));
        assert!(kv.tas("k", "5", "6").await.unwrap());
        assert!(!kv.tas("k", "5", "7").await.unwrap());
        assert!(!kv.tas("missing", "", "7").await.unwrap());
        assert_eq!(kv.get("k").await.unwrap().0, "6");
    });
}

#[test]
fn bad_inputs() {
    run(|env| async move {
        let kv = kvs(&env);
        assert!(matches!(kv.store("", "v").await, Err(KvError::Invalid(_))));
        assert!(matches!(kv.get("").await, Err(KvError::Invalid(_))));
        assert!(matches!(kv.temp_key("").await, Err(KvError::Invalid(_))));
        assert!(matches!(kv.watch("").await, Err(KvError::Invalid(_))));
        // As the seed says: unknown options are ignored (with a warning); a known one that
        // is malformed is refused.
        assert!(Kvs::open(env.client(), &["bogus", "dial_timeout=5s"]).is_ok());
        assert!(Kvs::open(env.client(), &["session_ttl_ms=abc"]).is_err());
        assert!(Kvs::open(env.client(), &["session_ttl_ms=0"]).is_err());
        assert!(Kvs::open(env.client(), &["session_ttl_ms"]).is_err());
    });
}

#[test]
fn dist_lock_excludes_and_hands_over() {
    run(|env| async move {
        let a = Arc::new(kvs(&env));
        let b = Arc::new(kvs(&env));
        a.dist_lock().await.unwrap();
        a.dist_lock().await.unwrap(); // re-entrant within a handle
        let ta = a.lock_token().unwrap();
        assert_eq!(
            b.dist_timed_lock(Duration::from_secs(1)).await,
            Err(KvError::LockTimeout(Duration::from_secs(1)))
        );
        assert_eq!(
            b.dist_timed_lock(Duration::ZERO).await,
            Err(KvError::LockTimeout(Duration::ZERO))
        );
        // B blocks until A unlocks, 20 s later (4 s on the real cluster: still past the 3 s
        // session TTL); the session keep-alive holds A's lock meanwhile.
        let twenty = env.long(Duration::from_secs(20));
        let (a2, clock) = (a.clone(), env.shared_clock());
        env.clock.spawn(Box::pin(async move {
            clock.sleep(twenty).await;
            a2.dist_unlock().await.unwrap();
        }));
        let start = env.clock.now();
        b.dist_lock().await.unwrap();
        let waited = env.clock.now() - start;
        assert!(
            waited >= twenty && waited <= env.after(twenty),
            "{waited:?}"
        );
        assert!(b.lock_token().unwrap() > ta);
        // Unlocking a lock one does not hold does nothing and removes nothing.
        a.dist_unlock().await.unwrap();
        assert!(a.dist_timed_lock(Duration::ZERO).await.is_err());
    });
}

#[test]
fn closing_releases_the_lock_and_temp_keys() {
    run(|env| async move {
        let a = kvs(&env);
        let b = kvs(&env);
        a.dist_lock().await.unwrap();
        a.temp_key("members/a").await.unwrap();
        assert!(b.get("members/a").await.unwrap().1);
        env.clock.sleep(env.long(Duration::from_secs(60))).await;
        assert!(
            b.get("members/a").await.unwrap().1,
            "kept alive while the handle lives"
        );
        a.close().await.unwrap();
        a.close().await.unwrap();
        assert!(!b.get("members/a").await.unwrap().1);
        b.dist_timed_lock(Duration::ZERO).await.unwrap();
        assert_eq!(a.store("x", "y").await, Err(KvError::Closed));
        assert_eq!(a.dist_lock().await, Err(KvError::Closed));
    });
}

#[test]
fn a_dead_holders_temp_key_disappears_within_the_ttl() {
    run(|env| async move {
        let b = kvs(&env);
        {
            let a = kvs(&env);
            a.temp_key("members/a").await.unwrap();
            a.dist_lock().await.unwrap();
        } // dropped without close: the process died
        assert!(b.get("members/a").await.unwrap().1);
        let start = env.clock.now();
        let (v, change) = b.watch("members/a").await.unwrap();
        assert_eq!((v.as_str(), change), ("", KeyChange::Delete));
        assert!(env.clock.now() - start <= env.after(Duration::from_secs(3)));
        b.dist_timed_lock(Duration::ZERO).await.unwrap();
    });
}

#[test]
fn watch_blocks_until_the_key_changes() {
    run(|env| async move {
        let kv = Arc::new(kvs(&env));
        let (k2, clock) = (kv.clone(), env.shared_clock());
        env.clock.spawn(Box::pin(async move {
            clock.sleep(Duration::from_secs(5)).await;
            k2.store("other", "x").await.unwrap();
            clock.sleep(Duration::from_secs(5)).await;
            k2.store("w", "new").await.unwrap();
        }));
        assert_eq!(
            kv.watch("w").await.unwrap(),
            ("new".to_string(), KeyChange::Put)
        );
        let ten = Duration::from_secs(10);
        assert!(env.clock.now() >= ten && env.clock.now() <= env.after(ten));
    });
}

#[test]
fn watch_with_callback_until_delete_false_or_cancel() {
    run(|env| async move {
        let kv = kvs(&env);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let h = kv
            .watch_with_cb(
                "w",
                KeyChange::Put,
                Box::new(move |k, v, c| {
                    s.lock().unwrap().push((k.to_string(), v.to_string(), c));
                    true
                }),
            )
            .await
            .unwrap();
        kv.store("w", "1").await.unwrap();
        kv.store("w", "2").await.unwrap();
        env.clock.sleep(env.after(Duration::from_millis(1))).await;
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                ("w".into(), "1".into(), KeyChange::Put),
                ("w".into(), "2".into(), KeyChange::Put)
            ]
        );
        kv.watch_cb_cancel(h).unwrap();
        assert_eq!(kv.watch_cb_cancel(h), Err(KvError::UnknownWatch));
        kv.store("w", "3").await.unwrap();
        env.clock.sleep(env.after(Duration::from_millis(1))).await;
        assert_eq!(
            seen.lock().unwrap().len(),
            2,
            "cancelled watch saw nothing more"
        );

        // A delete ends the watch; a callback returning false ends it too.
        let s = seen.clone();
        let h = kv
            .watch_with_cb(
                "w",
                KeyChange::Delete,
                Box::new(move |k, v, c| {
                    s.lock().unwrap().push((k.to_string(), v.to_string(), c));
                    true
                }),
            )
            .await
            .unwrap();
        kv.store("w", "4").await.unwrap();
        kv.delete("w").await.unwrap();
        env.clock.sleep(env.after(Duration::from_millis(1))).await;
        assert_eq!(seen.lock().unwrap().last().unwrap().2, KeyChange::Delete);
        assert_eq!(
            seen.lock().unwrap().len(),
            3,
            "put filtered out, delete seen"
        );
        assert_eq!(
            kv.watch_cb_cancel(h),
            Err(KvError::UnknownWatch),
            "finished by the delete"
        );
        let count = Arc::new(Mutex::new(0));
        let c2 = count.clone();
        kv.watch_with_cb(
            "v",
            KeyChange::Put,
            Box::new(move |_, _, _| {
                *c2.lock().unwrap() += 1;
                false
            }),
        )
        .await
        .unwrap();
        kv.store("v", "1").await.unwrap();
        kv.store("v", "2").await.unwrap();
        env.clock.sleep(env.after(Duration::from_millis(1))).await;
        assert_eq!(*count.lock().unwrap(), 1);
    });
}

/// A `mem:` store on a manual clock, and a client of it the test can cut off.
fn flaky_env() -> (
    tenure::core::ManualClock,
    tenure::core::MemBackend,
    common::flaky::Flaky,
) {
    let clock = tenure::core::ManualClock::new();
    let mem = tenure::core::open("mem:", clock.shared()).unwrap();
    let flaky = common::flaky::Flaky::new(mem.client());
    (clock, mem, flaky)
}

type Seen = Arc<Mutex<Vec<(String, KeyChange)>>>;

fn recorder(seen: &Seen, keep_going: bool) -> tenure::core::kv::WatchCallback {
    let s = seen.clone();
    Box::new(move |_, v, c| {
        s.lock().unwrap().push((v.to_string(), c));
        keep_going
    })
}

#[test]
fn a_callback_watch_survives_an_outage_and_misses_nothing() {
    let (clock, mem, flaky) = flaky_env();
    let manual = clock.clone();
    manual.block_on(async move {
        let clock = clock.shared();
        let watcher = Kvs::open(Arc::new(flaky.clone()), &[]).unwrap();
        let writer = Kvs::open(mem.client(), &[]).unwrap();
        let seen = Seen::default();
        let h = watcher
            .watch_with_cb("w", KeyChange::Put, recorder(&seen, true))
            .await
            .unwrap();
        writer.store("w", "1").await.unwrap();
        clock.sleep(Duration::from_millis(10)).await;
        // Cut off for a minute (longer than any request timeout): three changes meanwhile.
        flaky.set_down(true);
        for v in ["2", "3", "4"] {
            clock.sleep(Duration::from_secs(20)).await;
            writer.store("w", v).await.unwrap();
        }
        flaky.set_down(false);
        clock.sleep(Duration::from_secs(2)).await;
        let values: Vec<_> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|(v, _)| v.clone())
            .collect();
        assert_eq!(values, ["1", "2", "3", "4"], "every change once, in order");
        // Still running: a later change arrives, and cancelling finds the watch.
        writer.store("w", "5").await.unwrap();
        clock.sleep(Duration::from_millis(10)).await;
        assert_eq!(seen.lock().unwrap().len(), 5);
        watcher.watch_cb_cancel(h).unwrap();
    });
}

#[test]
fn a_callback_watch_is_told_of_compaction_and_may_go_on() {
    let (clock, mem, flaky) = flaky_env();
    let manual = clock.clone();
    manual.block_on(async move {
        let clock = clock.shared();
        let watcher = Kvs::open(Arc::new(flaky.clone()), &[]).unwrap();
        let writer = Kvs::open(mem.client(), &[]).unwrap();
        let seen = Seen::default();
        let h = watcher
            .watch_with_cb("w", KeyChange::Put, recorder(&seen, true))
            .await
            .unwrap();
        writer.store("w", "1").await.unwrap();
        clock.sleep(Duration::from_millis(10)).await;
        flaky.set_down(true);
        clock.sleep(Duration::from_millis(20)).await;
        writer.store("w", "2").await.unwrap();
        writer.store("w", "3").await.unwrap();
        *flaky.compact_next.lock().unwrap() = Some(3);
        flaky.set_down(false);
        clock.sleep(Duration::from_secs(2)).await;
        assert_eq!(
            *seen.lock().unwrap(),
            [
                ("1".into(), KeyChange::Put),
                ("3".into(), KeyChange::Compacted)
            ],
            "told once, with the current value"
        );
        writer.store("w", "4").await.unwrap();
        clock.sleep(Duration::from_millis(10)).await;
        assert_eq!(seen.lock().unwrap().last().unwrap().0, "4", "went on");
        watcher.watch_cb_cancel(h).unwrap();

        // A callback answering false to the notice ends the watch.
        let seen = Seen::default();
        let h = watcher
            .watch_with_cb("w", KeyChange::Put, recorder(&seen, false))
            .await
            .unwrap();
        *flaky.compact_next.lock().unwrap() = Some(9);
        writer.store("w", "5").await.unwrap();
        clock.sleep(Duration::from_secs(1)).await;
        assert_eq!(seen.lock().unwrap().len(), 1);
        assert_eq!(watcher.watch_cb_cancel(h), Err(KvError::UnknownWatch));
        assert!(matches!(
            watcher
                .watch_with_cb("w", KeyChange::Compacted, recorder(&seen, true))
                .await,
            Err(KvError::Invalid(_))
        ));
    });
}

#[test]
fn a_lost_session_brings_its_temp_keys_back_and_never_the_lock() {
    let (clock, mem, flaky) = flaky_env();
    let manual = clock.clone();
    manual.block_on(async move {
        let clock = clock.shared();
        let a = Kvs::open(Arc::new(flaky.clone()), &["session_ttl_ms=3000"]).unwrap();
        let b = Kvs::open(mem.client(), &["session_ttl_ms=3000"]).unwrap();
        let told = Arc::new(Mutex::new(Vec::new()));
        let t = told.clone();
        a.on_session_lost(move |loss| t.lock().unwrap().push(loss.clone()));
        a.temp_key("members/a").await.unwrap();
        a.dist_lock().await.unwrap();
        // Cut off past the TTL: the agency ends the session, its keys and the lock.
        flaky.set_down(true);
        clock.sleep(Duration::from_secs(4)).await;
        assert!(!b.get("members/a").await.unwrap().1);
        b.dist_timed_lock(Duration::ZERO).await.unwrap();
        flaky.set_down(false);
        clock.sleep(Duration::from_secs(2)).await;
        let losses = a.session_losses();
        assert_eq!(losses.len(), 1);
        assert!(losses[0].held_lock);
        assert_eq!(losses[0].temp_keys, ["members/a"]);
        assert_eq!(*told.lock().unwrap(), losses, "the callback was told");
        assert!(b.get("members/a").await.unwrap().1, "the temp key is back");
        assert_eq!(a.lock_token(), None);
        assert_eq!(a.dist_unlock().await, Err(KvError::LockLost));
        assert_eq!(a.dist_unlock().await, Ok(()), "told once");
        assert!(b.lock_token().is_some(), "b still holds the lock it took");
        // The new session is kept alive: the key outlives several TTLs.
        clock.sleep(Duration::from_secs(10)).await;
        assert!(b.get("members/a").await.unwrap().1);
        // A temp key deleted by its owner is not brought back.
        a.delete("members/a").await.unwrap();
        assert!(a.temp_keys().is_empty());
        a.close().await.unwrap();
    });
}

#[test]
fn dist_unlock_that_fails_keeps_the_lock_for_a_retry() {
    let (clock, _mem, flaky) = flaky_env();
    let manual = clock.clone();
    manual.block_on(async move {
        let a = Kvs::open(Arc::new(flaky.clone()), &[]).unwrap();
        a.dist_lock().await.unwrap();
        flaky.set_down(true);
        assert!(a.dist_unlock().await.is_err());
        assert!(
            a.lock_token().is_some(),
            "still held: the remove did not happen"
        );
        flaky.set_down(false);
        a.dist_unlock().await.unwrap();
        assert_eq!(a.lock_token(), None);
    });
}
