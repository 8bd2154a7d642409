use super::*;
use serde_json::json;

fn k(s: &str) -> Key {
    Key::parse(s).unwrap()
}

fn set(store: &mut Store, key: &str, v: Value) -> TxnOutcome {
    txn(store, Txn::new().then(Op::set(k(key), v)))
}

fn txn(store: &mut Store, t: Txn) -> TxnOutcome {
    match store.apply(&Command::Txn(t)).outcome {
        Outcome::Txn(o) => o,
        o => panic!("unexpected {o:?}"),
    }
}

fn tick(store: &mut Store, ms: u64) -> Vec<Event> {
    store.apply(&Command::Tick { advance_ms: ms }).events
}

fn grant(store: &mut Store, ttl_ms: u64) -> LeaseId {
    match store.apply(&Command::LeaseGrant { ttl_ms }).outcome {
        Outcome::LeaseGranted { id, .. } => id,
        o => panic!("unexpected {o:?}"),
    }
}

#[test]
fn tree_reads_return_subtrees() {
    let mut s = Store::new();
    set(&mut s, "/a/b", json!(1));
    set(&mut s, "/a/c/d", json!("x"));
    assert_eq!(s.view(&k("/a")), Some(json!({"b": 1, "c": {"d": "x"}})));
    assert_eq!(s.view(&k("/a/c")), Some(json!({"d": "x"})));
    assert_eq!(
        s.view(&Key::root()),
        Some(json!({"a": {"b": 1, "c": {"d": "x"}}}))
    );
    assert_eq!(s.view(&k("/nope")), None);
    let r = s.read(&k("/a/x/y"));
    assert_eq!(r.value, None);
    assert_eq!(r.missing_prefix, Some(k("/a/x")));
    assert_eq!(Store::new().view(&Key::root()), Some(json!({})));
}

#[test]
fn writing_a_path_replaces_its_subtree() {
    let mut s = Store::new();
    set(&mut s, "/a/b", json!(1));
    set(&mut s, "/a/c", json!(2));
    set(&mut s, "/a", json!({"z": 3}));
    assert_eq!(s.view(&k("/a")), Some(json!({"z": 3})));
    assert_eq!(s.view(&k("/a/b")), None);
    assert_eq!(s.view(&k("/a/z")), Some(json!(3)));
}

#[test]
fn writing_below_a_node_splits_it_and_keeps_siblings() {
    let mut s = Store::new();
    set(&mut s, "/a", json!({"b": 1, "c": {"d": 2}}));
    set(&mut s, "/a/c/e", json!(3));
    assert_eq!(
        s.view(&k("/a")),
        Some(json!({"b": 1, "c": {"d": 2, "e": 3}}))
    );
    // The siblings keep the original node's metadata.
    let b = s.node(&k("/a/b")).unwrap().meta;
    assert_eq!((b.create_revision, b.version), (1, 1));
    // A scalar below which something is written becomes an object.
    set(&mut s, "/a/b/x", json!(true));
    assert_eq!(s.view(&k("/a/b")), Some(json!({"x": true})));
}

#[test]
fn revisions_and_versions() {
    let mut s = Store::new();
    assert_eq!(s.revision(), 0);
    set(&mut s, "/k", json!(1));
    set(&mut s, "/k", json!(2));
    set(&mut s, "/other", json!(0));
    let m = s.node(&k("/k")).unwrap().meta;
    assert_eq!((m.create_revision, m.mod_revision, m.version), (1, 2, 2));
    assert_eq!(s.revision(), 3);
    txn(&mut s, Txn::new().then(Op::Delete { key: k("/k") }));
    assert_eq!(s.revision(), 4);
    // Deleting a missing key changes nothing, not even the revision.
    txn(&mut s, Txn::new().then(Op::Delete { key: k("/k") }));
    assert_eq!(s.revision(), 4);
    set(&mut s, "/k", json!(3));
    let m = s.node(&k("/k")).unwrap().meta;
    assert_eq!((m.create_revision, m.version), (5, 1));
    // `CreatedAt` tells incarnations apart even when they hold the same value: an old one's
    // revision no longer matches, the current one's does, and an overwrite keeps it.
    let old = Precondition::CreatedAt(k("/k"), 1);
    assert!(!txn(&mut s, Txn::new().when(old)).is_committed());
    set(&mut s, "/k", json!(3));
    let now = Precondition::CreatedAt(k("/k"), 5);
    assert!(txn(&mut s, Txn::new().when(now)).is_committed());
    let missing = Precondition::CreatedAt(k("/nope"), 0);
    assert!(!txn(&mut s, Txn::new().when(missing)).is_committed());
}

#[test]
fn preconditions_are_all_or_nothing_and_name_the_failure() {
    let mut s = Store::new();
    set(&mut s, "/a", json!(5));
    set(&mut s, "/arr", json!([1]));
    let t = Txn::new()
        .when(Precondition::IfEqualTo(k("/a"), json!(5)))
        .when(Precondition::IfEmpty(k("/a")))
        .then(Op::set(k("/b"), json!(1)));
    match txn(&mut s, t) {
        TxnOutcome::PreconditionFailed { index, found, .. } => {
            assert_eq!(index, 1);
            assert_eq!(found, Some(json!(5)));
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(s.view(&k("/b")), None);
    assert_eq!(s.revision(), 2);
    let checks = [
        Precondition::IfExists(k("/a")),
        Precondition::IfIsArray(k("/arr")),
        Precondition::Compare(k("/a"), CmpOp::Gt, json!(4)),
        Precondition::Compare(k("/a"), CmpOp::Lt, json!(6)),
        Precondition::Compare(k("/a"), CmpOp::Ne, json!(6)),
        Precondition::Compare(k("/a"), CmpOp::Eq, json!(5)),
        Precondition::VersionEquals(k("/a"), 1),
        Precondition::VersionEquals(k("/missing"), 0),
        Precondition::IfEmpty(k("/missing")),
    ];
    for c in checks {
        let o = txn(&mut s, Txn::new().when(c.clone()));
        assert!(o.is_committed(), "{c:?}: {o:?}");
    }
    let failing = [
        Precondition::IfIsArray(k("/a")),
        Precondition::Compare(k("/missing"), CmpOp::Ne, json!(1)),
        Precondition::Compare(k("/a"), CmpOp::Lt, json!("x")),
        Precondition::VersionEquals(k("/a"), 2),
        Precondition::LeaseAlive(7),
        Precondition::LeaseEquals(k("/a"), 1),
    ];
    for c in failing {
        let o = txn(&mut s, Txn::new().when(c.clone()));
        assert!(!o.is_committed(), "{c:?}: {o:?}");
    }
}

#[test]
fn string_comparisons_are_bytewise() {
    let mut s = Store::new();
    set(&mut s, "/s", json!("b"));
    let gt = Precondition::Compare(k("/s"), CmpOp::Gt, json!("a"));
    assert!(txn(&mut s, Txn::new().when(gt)).is_committed());
    let lt = Precondition::Compare(k("/s"), CmpOp::Lt, json!("B"));
    assert!(!txn(&mut s, Txn::new().when(lt)).is_committed());
}

#[test]
fn increment_push_pop() {
    let mut s = Store::new();
    let t = Txn::new()
        .then(Op::Increment {
            key: k("/n"),
            delta: 2,
        })
        .then(Op::Increment {
            key: k("/n"),
            delta: 3,
        })
        .then(Op::Push {
            key: k("/q"),
            value: json!("a"),
        })
        .then(Op::Push {
            key: k("/q"),
            value: json!("b"),
        })
        .then(Op::Pop { key: k("/q") });
    match txn(&mut s, t) {
        TxnOutcome::Committed { revision, results } => {
            assert_eq!(revision, 1);
            assert_eq!(results[1], Some(json!(5)));
            assert_eq!(results[4], Some(json!("b")));
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(s.view(&k("/q")), Some(json!(["a"])));
    // All operations of one transaction share a revision; the version counts each write.
    assert_eq!(s.node(&k("/n")).unwrap().meta.version, 2);
}

#[test]
fn ttl_keys_expire_when_agency_time_reaches_the_deadline() {
    let mut s = Store::new();
    let t = Txn::new().then(Op::Set {
        key: k("/t"),
        value: json!(1),
        ttl_ms: Some(100),
        lease: LeaseBinding::None,
    });
    txn(&mut s, t);
    assert!(tick(&mut s, 99).is_empty());
    assert!(s.view(&k("/t")).is_some());
    let ev = tick(&mut s, 1);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].cause, Cause::TtlExpired);
    assert_eq!(ev[0].kind, EventKind::Delete);
    assert_eq!(ev[0].revision, 2);
    assert_eq!(s.view(&k("/t")), None);
    assert_eq!(s.next_deadline_ms(), None);
}

#[test]
fn zero_ttl_and_unknown_leases_are_rejected() {
    let mut s = Store::new();
    let t = Txn::new().then(Op::Set {
        key: k("/t"),
        value: json!(1),
        ttl_ms: Some(0),
        lease: LeaseBinding::None,
    });
    assert_eq!(txn(&mut s, t), TxnOutcome::Rejected(Rejection::ZeroTtl));
    let t = Txn::new().then(Op::Set {
        key: k("/t"),
        value: json!(1),
        ttl_ms: None,
        lease: LeaseBinding::Lease(42),
    });
    assert_eq!(
        txn(&mut s, t),
        TxnOutcome::Rejected(Rejection::LeaseNotFound(42))
    );
    assert_eq!(
        s.apply(&Command::LeaseGrant { ttl_ms: 0 }).outcome,
        Outcome::Rejected(Rejection::ZeroTtl)
    );
    assert_eq!(
        s.apply(&Command::LeaseRevoke { id: 9 }).outcome,
        Outcome::Rejected(Rejection::LeaseNotFound(9))
    );
    assert_eq!(
        s.apply(&Command::LeaseKeepAlive { id: 9 }).outcome,
        Outcome::Rejected(Rejection::LeaseNotFound(9))
    );
    let t = Txn::new().then(Op::Delete { key: Key::root() });
    assert_eq!(txn(&mut s, t), TxnOutcome::Rejected(Rejection::RootWrite));
    assert_eq!(s.revision(), 0);
}

#[test]
fn leases_expire_keep_alive_and_revoke() {
    let mut s = Store::new();
    let id = grant(&mut s, 100);
    assert_eq!(s.lease(id).unwrap().granted_revision, 1);
    let bind = |key: &str| {
        Txn::new().then(Op::Set {
            key: k(key),
            value: json!("v"),
            ttl_ms: None,
            lease: LeaseBinding::Lease(id),
        })
    };
    txn(&mut s, bind("/l/a"));
    txn(&mut s, bind("/l/b"));
    tick(&mut s, 60);
    s.apply(&Command::LeaseKeepAlive { id });
    assert_eq!(s.lease(id).unwrap().deadline_ms, 160);
    assert!(tick(&mut s, 60).is_empty());
    let ev = tick(&mut s, 40);
    assert_eq!(ev.len(), 2);
    assert!(ev.iter().all(|e| e.cause == Cause::LeaseExpired(id)));
    assert_eq!(s.view(&k("/l")), None);
    assert!(s.lease(id).is_none());

    let id2 = grant(&mut s, 100);
    assert_ne!(id2, id);
    txn(
        &mut s,
        Txn::new().then(Op::Set {
            key: k("/m"),
            value: json!(1),
            ttl_ms: None,
            lease: LeaseBinding::Lease(id2),
        }),
    );
    // A key rebound to no lease survives the end of its old lease.
    txn(&mut s, Txn::new().then(Op::set(k("/m"), json!(2))));
    let applied = s.apply(&Command::LeaseRevoke { id: id2 });
    assert!(applied.events.is_empty());
    assert_eq!(s.view(&k("/m")), Some(json!(2)));
}

#[test]
fn keep_binding_preserves_lease_and_ttl() {
    let mut s = Store::new();
    let id = grant(&mut s, 100);
    txn(
        &mut s,
        Txn::new().then(Op::Set {
            key: k("/r"),
            value: json!(1),
            ttl_ms: None,
            lease: LeaseBinding::Lease(id),
        }),
    );
    txn(
        &mut s,
        Txn::new().then(Op::Set {
            key: k("/r"),
            value: json!(2),
            ttl_ms: None,
            lease: LeaseBinding::Keep,
        }),
    );
    assert_eq!(s.node(&k("/r")).unwrap().meta.lease, Some(id));
    s.apply(&Command::LeaseRevoke { id });
    assert_eq!(s.view(&k("/r")), None);
}

#[test]
fn extend_ttl_never_shortens() {
    let mut s = Store::new();
    txn(
        &mut s,
        Txn::new().then(Op::Set {
            key: k("/t"),
            value: json!(1),
            ttl_ms: Some(100),
            lease: LeaseBinding::None,
        }),
    );
    txn(
        &mut s,
        Txn::new().then(Op::ExtendTtl {
            key: k("/t"),
            ttl_ms: 10,
        }),
    );
    assert_eq!(s.node(&k("/t")).unwrap().meta.expires_at_ms, Some(100));
    tick(&mut s, 50);
    txn(
        &mut s,
        Txn::new().then(Op::ExtendTtl {
            key: k("/t"),
            ttl_ms: 100,
        }),
    );
    assert_eq!(s.node(&k("/t")).unwrap().meta.expires_at_ms, Some(150));
    assert!(tick(&mut s, 99).is_empty());
    assert_eq!(tick(&mut s, 1).len(), 1);
}

#[test]
fn events_carry_old_and_new_values_and_watch_from_a_revision() {
    let mut s = Store::new().with_event_retention(3);
    set(&mut s, "/w", json!(1));
    set(&mut s, "/w", json!(2));
    txn(&mut s, Txn::new().then(Op::Delete { key: k("/w") }));
    let ev = s.events_after(0).unwrap();
    assert_eq!(ev.len(), 3);
    assert_eq!(ev[1].old, Some(json!(1)));
    assert_eq!(ev[1].new, Some(json!(2)));
    assert_eq!(ev[1].kind, EventKind::Modify);
    assert_eq!(ev[2].kind, EventKind::Delete);
    assert_eq!(s.events_after(2).unwrap().len(), 1);
    set(&mut s, "/w", json!(3));
    assert_eq!(
        s.events_after(0),
        Err(Compacted {
            compacted: 1,
            from: 0
        })
    );
    assert_eq!(s.events_after(1).unwrap().len(), 3);
}

#[test]
fn event_projection_into_a_subkey() {
    let mut s = Store::new();
    set(&mut s, "/a", json!({"b": 1}));
    let ev = s.apply(&Command::Txn(
        Txn::new().then(Op::set(k("/a"), json!({"b": 2}))),
    ));
    let (old, new) = ev.events[0].project(&k("/a/b"));
    assert_eq!((old, new), (Some(json!(1)), Some(json!(2))));
}

#[test]
fn observers_are_matched_by_related_keys() {
    let mut s = Store::new();
    s.apply(&Command::Observe {
        key: k("/a/b"),
        url: "http://x".into(),
    });
    s.apply(&Command::Observe {
        key: k("/c"),
        url: "http://y".into(),
    });
    assert_eq!(s.observers_of(&k("/a")), vec!["http://x".to_string()]);
    assert_eq!(s.observers_of(&k("/a/b/c")), vec!["http://x".to_string()]);
    assert!(s.observers_of(&k("/d")).is_empty());
    let o = s.apply(&Command::Unobserve {
        key: k("/a/b"),
        url: "http://x".into(),
    });
    assert_eq!(o.outcome, Outcome::Unobserved { removed: true });
    assert!(s.observers_of(&k("/a")).is_empty());
}

#[test]
fn snapshots_round_trip() {
    let mut s = Store::new();
    let id = grant(&mut s, 50);
    set(&mut s, "/a/b", json!([1, 2]));
    txn(
        &mut s,
        Txn::new().then(Op::Set {
            key: k("/l"),
            value: json!("x"),
            ttl_ms: Some(30),
            lease: LeaseBinding::Lease(id),
        }),
    );
    let bytes = s.snapshot();
    let mut r = Store::restore(&bytes).unwrap();
    assert_eq!(r, s);
    // The restored store goes on exactly as the original.
    assert_eq!(tick(&mut r, 30), tick(&mut s, 30));
    assert_eq!(r, s);
    assert!(Store::restore(b"{not json").is_err());
}

#[test]
fn else_branch_runs_when_a_precondition_fails() {
    let mut s = Store::new();
    set(&mut s, "/x", json!("a"));
    let t = Txn::new()
        .when(Precondition::Compare(k("/x"), CmpOp::Eq, json!("b")))
        .then(Op::set(k("/then"), json!(1)))
        .otherwise(Op::set(k("/else"), json!(2)));
    match txn(&mut s, t) {
        TxnOutcome::PreconditionFailed { revision, .. } => assert_eq!(revision, 2),
        o => panic!("{o:?}"),
    }
    assert_eq!(s.view(&k("/then")), None);
    assert_eq!(s.view(&k("/else")), Some(json!(2)));
}

#[test]
fn a_lock_delay_holds_a_dead_holders_key_but_not_a_released_one() {
    let mut s = Store::new();
    let acquire = |s: &mut Store, who: &str| {
        txn(
            s,
            Txn::new()
                .when(Precondition::IfEmpty(k("/l")))
                .then(Op::Set {
                    key: k("/l"),
                    value: json!(who),
                    ttl_ms: Some(1_000),
                    lease: LeaseBinding::None,
                })
                .then(Op::LockDelay {
                    key: k("/l"),
                    delay_ms: 500,
                }),
        )
    };
    assert!(acquire(&mut s, "a").is_committed());
    // The holder dies: the key expires, and for 500 ms nobody gets it.
    tick(&mut s, 1_000);
    assert_eq!(s.read(&k("/l")).value, None);
    match acquire(&mut s, "b") {
        TxnOutcome::PreconditionFailed { found, .. } => {
            assert_eq!(found, Some(json!({"lock_delay_until_ms": 1_500})))
        }
        other => panic!("{other:?}"),
    }
    tick(&mut s, 499);
    assert!(!acquire(&mut s, "b").is_committed());
    tick(&mut s, 1);
    assert!(acquire(&mut s, "b").is_committed());
    // A voluntary release starts no delay.
    assert!(txn(&mut s, Txn::new().then(Op::Delete { key: k("/l") })).is_committed());
    assert!(acquire(&mut s, "c").is_committed());
    // A lease that runs out is involuntary too.
    let id = grant(&mut s, 300);
    assert!(txn(&mut s, Txn::new().then(Op::Delete { key: k("/l") })).is_committed());
    let bound = Txn::new()
        .then(Op::Set {
            key: k("/l"),
            value: json!("d"),
            ttl_ms: None,
            lease: LeaseBinding::Lease(id),
        })
        .then(Op::LockDelay {
            key: k("/l"),
            delay_ms: 200,
        });
    assert!(txn(&mut s, bound).is_committed());
    tick(&mut s, 300);
    assert!(!acquire(&mut s, "e").is_committed());
    tick(&mut s, 200);
    assert!(acquire(&mut s, "e").is_committed());
    // It survives a snapshot.
    let t = tick(&mut s, 1_000);
    assert!(!t.is_empty());
    let restored = Store::restore(&s.snapshot()).unwrap();
    assert_eq!(restored, s);
}
