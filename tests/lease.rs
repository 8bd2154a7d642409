//! Seeds 002 and 004 over `mem:`: Juju's lease client, claimer, checker and tokens, and
//! leadership on top of them.

mod common;

use common::run;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tenure::core::leadership::{LeadershipError, Manager, ManagerConfig};
use tenure::core::lease::{
    Checker, Claimer, Client, LeaseClient, LeaseError, LeaseManager, Request,
};
use tenure::core::{Command, Op, Outcome, Txn, TxnOutcome};

fn client(env: &common::Env) -> Arc<LeaseClient> {
    Arc::new(LeaseClient::new(env.client()))
}

const SEC: Duration = Duration::from_secs(1);

#[test]
fn request_validation() {
    assert!(Request::new("unit-0", SEC).validate().is_ok());
    for holder in ["", "a b", "a.b", "a#b", "a$b"] {
        assert!(
            matches!(
                Request::new(holder, SEC).validate(),
                Err(LeaseError::BadInput(_))
            ),
            "{holder:?}"
        );
    }
    assert!(matches!(
        Request::new("u", Duration::ZERO).validate(),
        Err(LeaseError::BadInput(_))
    ));
}

#[test]
fn claim_extend_expire() {
    run(|env| async move {
        let c = client(&env);
        let t1 = c
            .claim_lease("db", Request::new("u0", 10 * SEC))
            .await
            .unwrap();
        assert!(matches!(
            c.claim_lease("db", Request::new("u1", SEC)).await,
            Err(LeaseError::Invalid(_))
        ));
        assert!(matches!(
            c.claim_lease("db", Request::new("u0", SEC)).await,
            Err(LeaseError::Invalid(_))
        ));
        assert!(matches!(
            c.extend_lease("db", Request::new("u1", SEC)).await,
            Err(LeaseError::Invalid(_))
        ));
        let info = c.leases()["db"].clone();
        assert_eq!((info.holder.as_str(), info.fencing_token), ("u0", t1));
        assert!(info.expiry >= 10 * SEC);
        env.clock.sleep(8 * SEC).await;
        // An extension never shortens: 1 s from now is before the current expiry at 10 s.
        assert_eq!(
            c.extend_lease("db", Request::new("u0", SEC)).await.unwrap(),
            t1
        );
        assert!(matches!(
            c.expire_lease("db").await,
            Err(LeaseError::Invalid(_))
        ));
        env.clock.sleep(SEC).await;
        assert_eq!(
            c.extend_lease("db", Request::new("u0", 5 * SEC))
                .await
                .unwrap(),
            t1
        );
        env.clock.sleep(env.before(5 * SEC)).await;
        assert!(c.expire_lease("db").await.is_err(), "extended to 14 s");
        env.clock
            .sleep(env.after(5 * SEC) - env.before(5 * SEC))
            .await;
        c.expire_lease("db").await.unwrap();
        assert!(!c.leases().contains_key("db"));
        let t2 = c.claim_lease("db", Request::new("u1", SEC)).await.unwrap();
        assert!(t2 > t1);
    });
}

#[test]
fn an_invalid_answer_leaves_the_new_state_in_leases() {
    // The seed: "If it returns ErrInvalid, the caller should consult Leases() (which will
    // have been refreshed) and try again".
    run(|env| async move {
        let a = client(&env);
        let b = LeaseClient::new(env.client());
        a.claim_lease("svc", Request::new("unit-a", 10 * SEC))
            .await
            .unwrap();
        assert!(b.leases().is_empty(), "b has not looked yet");
        assert!(matches!(
            b.claim_lease("svc", Request::new("unit-b", 10 * SEC)).await,
            Err(LeaseError::Invalid(_))
        ));
        assert_eq!(
            b.leases()["svc"].holder,
            "unit-a",
            "claim refreshed the cache"
        );
        let c = LeaseClient::new(env.client());
        assert!(matches!(
            c.extend_lease("svc", Request::new("unit-c", 10 * SEC))
                .await,
            Err(LeaseError::Invalid(_))
        ));
        assert_eq!(
            c.leases()["svc"].holder,
            "unit-a",
            "extend refreshed the cache"
        );
    });
}

#[test]
fn refresh_reads_every_lease() {
    run(|env| async move {
        let a = client(&env);
        let b = client(&env);
        a.claim_lease("x", Request::new("ua", 5 * SEC))
            .await
            .unwrap();
        a.claim_lease("y", Request::new("ub", 2 * SEC))
            .await
            .unwrap();
        assert!(b.leases().is_empty());
        b.refresh().await.unwrap();
        let l = b.leases();
        assert_eq!(l.keys().cloned().collect::<Vec<_>>(), vec!["x", "y"]);
        assert_eq!(l["y"].holder, "ub");
        env.clock.sleep(3 * SEC).await;
        b.refresh().await.unwrap();
        assert_eq!(b.leases().keys().cloned().collect::<Vec<_>>(), vec!["x"]);
    });
}

#[test]
fn bad_lease_names() {
    run(|env| async move {
        let c = client(&env);
        for name in ["", "a b", "a.b"] {
            assert!(matches!(
                c.claim_lease(name, Request::new("u", SEC)).await,
                Err(LeaseError::BadInput(_))
            ));
        }
        assert!(matches!(
            c.claim_lease("ok", Request::new("u", Duration::ZERO)).await,
            Err(LeaseError::BadInput(_))
        ));
        let m = LeaseManager::new(c.clone());
        assert!(matches!(
            m.claim("a#", "u", SEC).await,
            Err(LeaseError::BadInput(_))
        ));
        assert!(LeaseClient::new(env.client())
            .with_drift_bound(-0.1)
            .is_err());
    });
}

#[test]
fn claimer_acquires_extends_and_denies() {
    run(|env| async move {
        // 10 s on the virtual clocks; 3 s of real time on the real cluster.
        let ten = if env.is_real() { 3 * SEC } else { 10 * SEC };
        let m = LeaseManager::new(client(&env));
        let other = LeaseManager::new(client(&env));
        let t = m.claim("svc", "u0", ten).await.unwrap();
        let reclaimed = env.clock.now();
        assert_eq!(
            m.claim("svc", "u0", ten).await.unwrap(),
            t,
            "re-claim extends"
        );
        assert_eq!(
            other.claim("svc", "u1", SEC).await,
            Err(LeaseError::ClaimDenied)
        );
        // The guarantee: held at least `duration` after the start of the call.
        let until = reclaimed + env.before(ten);
        env.clock.sleep(until - env.clock.now()).await;
        assert_eq!(
            other.claim("svc", "u1", SEC).await,
            Err(LeaseError::ClaimDenied)
        );
        let start = env.clock.now();
        other.wait_until_expired("svc").await.unwrap();
        assert!(env.clock.now() > start);
        other.claim("svc", "u1", SEC).await.unwrap();
    });
}

#[test]
fn tokens_check_and_guard_transactions() {
    run(|env| async move {
        let m = LeaseManager::new(client(&env));
        m.claim("svc", "u0", 5 * SEC).await.unwrap();
        let good = m.token("svc", "u0");
        let bad = m.token("svc", "u1");
        good.check().await.unwrap();
        assert_eq!(bad.check().await, Err(LeaseError::NotHeld));
        let store = env.client();
        let guarded = |tok: &tenure::core::lease::Token| {
            Txn::new()
                .when_all(tok.preconditions())
                .then(Op::set(common::key("/app/x"), json!(1)))
        };
        let ok = store.submit(Command::Txn(guarded(&good))).await.unwrap();
        assert!(matches!(ok, Outcome::Txn(TxnOutcome::Committed { .. })));
        let no = store.submit(Command::Txn(guarded(&bad))).await.unwrap();
        assert!(matches!(
            no,
            Outcome::Txn(TxnOutcome::PreconditionFailed { .. })
        ));
        env.clock.sleep(env.after(5 * SEC)).await;
        assert_eq!(good.check().await, Err(LeaseError::NotHeld));
        let late = store.submit(Command::Txn(guarded(&good))).await.unwrap();
        assert!(matches!(
            late,
            Outcome::Txn(TxnOutcome::PreconditionFailed { .. })
        ));
    });
}

#[test]
fn leadership() {
    run(|env| async move {
        assert!(
            matches!(Manager::new(ManagerConfig::default()), Err(LeadershipError::BadInput(m)) if m.contains("client"))
        );
        let no_clock = ManagerConfig {
            client: Some(client(&env)),
            clock: None,
        };
        assert!(
            matches!(no_clock.validate(), Err(LeadershipError::BadInput(m)) if m.contains("clock"))
        );
        let mk = || {
            Arc::new(
                Manager::new(ManagerConfig {
                    client: Some(client(&env)),
                    clock: Some(env.shared_clock()),
                })
                .unwrap(),
            )
        };
        let m0 = mk();
        let m1 = mk();
        // 10 s on the virtual clocks; 3 s of real time on the real cluster.
        let ten = if env.is_real() { 3 * SEC } else { 10 * SEC };
        let claimed = env.clock.now();
        let t0 = m0.claim_leadership("mysql", "mysql/0", ten).await.unwrap();
        assert_eq!(
            m1.claim_leadership("mysql", "mysql/1", ten).await,
            Err(LeadershipError::ClaimDenied)
        );
        let token = m1.check_leadership("mysql", "mysql/0").await.unwrap();
        assert!(!token.preconditions().is_empty());
        assert!(matches!(
            m1.check_leadership("mysql", "mysql/1").await,
            Err(LeadershipError::NotLeader { .. })
        ));
        assert!(matches!(
            m0.claim_leadership("bad name", "u", SEC).await,
            Err(LeadershipError::BadInput(_))
        ));
        m1.block_until_leadership_released("mysql").await.unwrap();
        // Released no earlier than the lease allows, counted from the claim's start.
        let held = env.clock.now() - claimed;
        assert!(held >= env.before(ten), "released {held:?} after the claim");
        let t1 = m1.claim_leadership("mysql", "mysql/1", ten).await.unwrap();
        assert!(t1 > t0);
        // Stopping wakes a blocked caller with Stopped.
        let (m0b, clock) = (m0.clone(), env.shared_clock());
        env.clock.spawn(Box::pin(async move {
            clock.sleep(SEC).await;
            m0b.stop();
        }));
        assert_eq!(
            m0.block_until_leadership_released("mysql").await,
            Err(LeadershipError::Stopped)
        );
        assert_eq!(
            m0.claim_leadership("mysql", "mysql/0", SEC).await,
            Err(LeadershipError::Stopped)
        );
    });
}

/// A clock `ahead` in front of another (the manager's own frame), sleeping as it does.
struct Ahead(Arc<dyn tenure::core::Clock>, Duration);

impl tenure::core::Clock for Ahead {
    fn now(&self) -> Duration {
        self.0.now() + self.1
    }
    fn sleep(&self, d: Duration) -> tenure::core::clock::BoxFuture<()> {
        self.0.sleep(d)
    }
    fn spawn(&self, task: tenure::core::clock::BoxFuture<()>) {
        self.0.spawn(task)
    }
}

#[test]
fn the_leadership_manager_keeps_time_on_its_configured_clock() {
    run(|env| async move {
        let hour = Duration::from_secs(3600);
        let m = Manager::new(ManagerConfig {
            client: Some(client(&env)),
            clock: Some(Arc::new(Ahead(env.shared_clock(), hour))),
        })
        .unwrap();
        let start = env.clock.now() + hour;
        m.claim_leadership("svc", "u0", 10 * SEC).await.unwrap();
        let info = m.leases().client().leases()["svc"].clone();
        assert!(
            info.expiry >= start + 10 * SEC && info.expiry < start + 20 * SEC,
            "the expiry {:?} is in the manager's frame (from {start:?})",
            info.expiry
        );
    });
}

#[test]
fn stopping_ends_claims_checks_and_waits_in_flight() {
    use std::sync::atomic::Ordering;
    let clock = tenure::core::ManualClock::new();
    let mem = tenure::core::open("mem:", clock.shared()).unwrap();
    let flaky = common::flaky::Flaky::new(mem.client());
    let c = clock.shared();
    clock.block_on(async move {
        let m = Arc::new(
            Manager::new(ManagerConfig {
                client: Some(Arc::new(LeaseClient::new(Arc::new(flaky.clone())))),
                clock: Some(c.clone()),
            })
            .unwrap(),
        );
        let other = Manager::new(ManagerConfig {
            client: Some(Arc::new(LeaseClient::new(mem.client()))),
            clock: Some(c.clone()),
        })
        .unwrap();
        other
            .claim_leadership("held", "u9", 60 * SEC)
            .await
            .unwrap();
        // Every request of `m` hangs unanswered: a claim and a check in flight, and a wait
        // for a leadership held a minute.
        flaky.hang.store(true, Ordering::SeqCst);
        let ended = Arc::new(std::sync::Mutex::new(Vec::new()));
        for what in ["claim", "check", "wait"] {
            let (m, ended) = (m.clone(), ended.clone());
            c.spawn(Box::pin(async move {
                let r = match what {
                    "claim" => m.claim_leadership("svc", "u0", 5 * SEC).await.map(drop),
                    "check" => m.check_leadership("svc", "u0").await.map(drop),
                    _ => m.block_until_leadership_released("held").await,
                };
                ended.lock().unwrap().push((what, r));
            }));
        }
        c.sleep(5 * SEC).await;
        assert!(ended.lock().unwrap().is_empty(), "all three in flight");
        m.stop();
        c.sleep(Duration::from_millis(10)).await;
        let mut ended = ended.lock().unwrap().clone();
        ended.sort_by_key(|(w, _)| *w);
        assert_eq!(
            ended,
            [
                ("check", Err(LeadershipError::Stopped)),
                ("claim", Err(LeadershipError::Stopped)),
                ("wait", Err(LeadershipError::Stopped)),
            ]
        );
        m.stop();
        flaky.hang.store(false, Ordering::SeqCst);
        assert_eq!(
            m.check_leadership("held", "u9").await.map(drop),
            Err(LeadershipError::Stopped),
            "and every later call"
        );
        assert_eq!(
            m.leases().claim("x", "u0", SEC).await,
            Err(LeaseError::Stopped),
            "the lease manager underneath is stopped too"
        );
    });
}
