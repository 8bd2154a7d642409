//! User worlds through the public API: typed messages between processes and actors, restarts,
//! faults aimed at parts (by name and by role), the user's checks (always, eventually,
//! linearizable with a model, sometimes), and every way of building a world wrong.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use tenure::sim::lin::models::Register;
use tenure::sim::nemesis::{Fault, Schedule, Step};
use tenure::world::{
    Actor, Aim, Builder, Context, Ctx, Event, Faults, History, Log, Message, Rule, RuleKind,
    RunConfig, SendError,
};

fn quiet(duration_s: u64) -> RunConfig {
    RunConfig {
        clients: 0,
        watchers: 0,
        duration: Duration::from_secs(duration_s),
        faults: Faults::None,
        ..RunConfig::default()
    }
}

fn rule(id: &str, kind: RuleKind) -> Rule {
    Rule::user(id, "a test rule", kind).expect("a valid rule")
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Ping {
    Ping(u64),
    Pong(u64),
}

impl Message for Ping {
    fn summary(&self) -> String {
        format!("{self:?}")
    }
}

/// Answers every ping with a pong, and says so.
struct Echo {
    log: Log,
}

impl Actor for Echo {
    type Msg = Ping;
    fn start(&mut self, _: &mut Ctx<Ping>) {}
    fn message(&mut self, from: std::net::SocketAddr, msg: Ping, ctx: &mut Ctx<Ping>) {
        if let Ping::Ping(n) = msg {
            self.log.sometimes("echoed");
            ctx.send(from, Ping::Pong(n));
        }
    }
    fn timer(&mut self, _: &mut Ctx<Ping>) {}
}

fn points(h: &History, point: &str) -> usize {
    h.records
        .iter()
        .filter(|r| matches!(&r.event, Event::Sometimes { point: p, .. } if p == point))
        .count()
}

async fn pinger(ctx: Context) {
    for n in 0..5 {
        ctx.send("echo", Ping::Ping(n)).expect("echo is a part");
        if let Some((from, Ping::Pong(m))) = ctx.recv_timeout::<Ping>(Duration::from_secs(1)).await
        {
            assert_eq!(from, "echo");
            assert_eq!(m, n);
            ctx.sometimes("pong");
        }
        ctx.sleep(Duration::from_millis(100)).await;
    }
    let refused = ctx.send("nobody", Ping::Ping(9));
    assert!(
        matches!(refused, Err(SendError::UnknownPart(..))),
        "{refused:?}"
    );
    ctx.sometimes("unknown part refused");
    std::future::pending::<()>().await;
}

#[test]
fn processes_and_actors_exchange_typed_messages_deterministically() {
    let w = Builder::new(quiet(3))
        .actor("echo", |_, log| Echo { log })
        .process("pinger", pinger)
        .sometimes("pong")
        .sometimes("never")
        .build()
        .expect("the world builds");
    let r = w.self_check(7).expect("deterministic");
    assert!(r.ok(), "{:?}", r.violations);
    assert_eq!(points(&r.history, "pong"), 5);
    assert_eq!(points(&r.history, "echoed"), 5);
    assert_eq!(r.sometimes["unknown part refused"], 1);
    assert_eq!(r.sometimes["never"], 0);
    // Encoded as JSON on the wire, the same history.
    let mut c = w.config().clone();
    c.encode_messages = true;
    let encoded = w.with_config(c).unwrap().run(7).unwrap();
    assert_eq!(encoded.digest, r.digest);
}

#[test]
fn a_restarted_process_starts_afresh_and_a_killed_one_stays_down() {
    let w = Builder::new(quiet(4))
        .process("phoenix", |ctx: Context| async move {
            ctx.sometimes("started");
            std::future::pending::<()>().await;
        })
        .process("mortal", |ctx: Context| async move {
            ctx.sometimes("mortal started");
            loop {
                ctx.sleep(Duration::from_millis(200)).await;
                ctx.sometimes("mortal lives");
            }
        })
        .fault(Duration::from_secs(1), Aim::Restart("phoenix".into()))
        .fault(Duration::from_secs(2), Aim::Restart("phoenix".into()))
        .fault(Duration::from_secs(1), Aim::Kill("mortal".into()))
        .build()
        .expect("the world builds");
    let r = w.run(1).expect("runs");
    assert!(r.ok(), "{:?}", r.violations);
    assert_eq!(r.sometimes["started"], 3);
    assert_eq!(r.sometimes["mortal started"], 1);
    assert!(r.sometimes["mortal lives"] <= 5, "{:?}", r.sometimes);
    let id = w.process_id("phoenix").unwrap();
    assert!(r
        .schedule
        .steps
        .iter()
        .any(|s| s.fault == Fault::RestartProcess { process: id }));
}

#[test]
fn pause_holder_reaches_a_user_process_that_believes() {
    let mut config = quiet(6);
    config.faults = Faults::Schedule(Schedule {
        steps: vec![Step {
            at_ms: 2_000,
            fault: Fault::PauseHolder,
        }],
    });
    let w = Builder::new(config)
        .process("holder", |ctx: Context| async move {
            ctx.belief("thing", 1, Some(ctx.now() + Duration::from_secs(60)));
            std::future::pending::<()>().await;
        })
        .build()
        .expect("the world builds");
    let r = w.run(3).expect("runs");
    let id = w.process_id("holder").unwrap();
    assert!(
        r.schedule
            .steps
            .iter()
            .any(|s| s.fault == Fault::PauseProcess { process: id }),
        "{:?}",
        r.schedule
    );
}

/// A register kept in the agency, recorded as `read`/`write` of `x`; with `lie`, a read
/// answers a value nobody wrote.
async fn register_user(ctx: Context, lie: bool) {
    use tenure::core::agency::Agency;
    let key = tenure::core::Key::parse("/user/x").unwrap();
    for n in 1..=5u64 {
        let call = ctx.invoke("write", "x", serde_json::json!(n)).unwrap();
        match ctx
            .agency()
            .write_key(&key, serde_json::json!(n), None, None)
            .await
        {
            Ok(_) => call.ok(serde_json::json!(n)),
            Err(e) => call.info(serde_json::json!(e.to_string())),
        }
        let call = ctx.invoke("read", "x", serde_json::Value::Null).unwrap();
        match ctx.agency().read_key(&key).await {
            Ok(v) if lie && n == 3 => call.ok(serde_json::json!(v.as_u64().unwrap() + 100)),
            Ok(v) => call.ok(v),
            Err(e) => call.info(serde_json::json!(e.to_string())),
        }
    }
    std::future::pending::<()>().await;
}

#[test]
fn user_operations_are_checked_against_a_model_and_kept_from_the_built_in_ones() {
    for lie in [false, true] {
        let w = Builder::new(quiet(3))
            .process("user", move |ctx| register_user(ctx, lie))
            .linearizable(rule("X1", RuleKind::Safety), Register::default(), |_| true)
            .build()
            .expect("the world builds");
        let r = w.run(2).expect("runs");
        let x1: Vec<_> = r
            .violations
            .iter()
            .filter(|v| v.rule.id() == "X1")
            .collect();
        assert_eq!(x1.len(), usize::from(lie), "{:?}", r.violations);
        // S13 (the built-in KV clients' registers) never sees a user's operations.
        assert!(
            r.violations.iter().all(|v| v.rule.id() != "S13"),
            "{:?}",
            r.violations
        );
    }
}

#[test]
fn always_and_eventually_checks_report_under_their_rules() {
    let w = Builder::new(quiet(2))
        .process("idle", |_ctx: Context| std::future::pending::<()>())
        .always(rule("A1", RuleKind::Safety), |h: &History| {
            if h.records.is_empty() {
                Err("empty".into())
            } else {
                Ok(())
            }
        })
        .always(rule("A2", RuleKind::Safety), |_h: &History| {
            Err("always broken".into())
        })
        .eventually(
            rule("E1", RuleKind::Liveness),
            Duration::from_millis(500),
            |_ctx| async { Err::<(), _>("never true".to_string()) },
        )
        .eventually(
            rule("E2", RuleKind::Liveness),
            Duration::from_secs(2),
            |ctx| async move {
                use tenure::core::agency::Agency;
                let k = tenure::core::Key::parse("/e2").unwrap();
                ctx.agency()
                    .write_key(&k, serde_json::json!(1), None, None)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        )
        .build()
        .expect("the world builds");
    let r = w.run(5).expect("runs");
    let ids: Vec<&str> = r.violations.iter().map(|v| v.rule.id()).collect();
    assert!(ids.contains(&"A2"), "{ids:?}");
    assert!(ids.contains(&"E1"), "{ids:?}");
    assert!(!ids.contains(&"A1") && !ids.contains(&"E2"), "{ids:?}");
    let e1 = r.violations.iter().find(|v| v.rule.id() == "E1").unwrap();
    assert!(e1.message.contains("never true"), "{e1}");
}

#[test]
fn a_panicking_check_or_process_fails_its_seed_naming_the_user_code() {
    let w = Builder::new(quiet(2))
        .process("idle", |_ctx: Context| std::future::pending::<()>())
        .always(
            rule("P1", RuleKind::Safety),
            |_h: &History| -> Result<(), String> { panic!("the check broke") },
        )
        .build()
        .unwrap();
    let r = w.run(1).expect("a panicking check does not break the run");
    let v = &r.violations[0];
    assert_eq!(v.rule.id(), "U0");
    assert!(
        v.message.contains("P1") && v.message.contains("the check broke"),
        "{v}"
    );

    let w = Builder::new(quiet(2))
        .process("crasher", |ctx: Context| async move {
            ctx.sleep(Duration::from_millis(300)).await;
            panic!("the service broke");
        })
        .build()
        .unwrap();
    let e = w.run(1).expect_err("a panicking process breaks the run");
    let text = e.to_string();
    assert!(
        text.contains("crasher") && text.contains("the service broke"),
        "{text}"
    );
}

#[test]
fn a_world_built_wrong_is_refused_with_every_mistake_named() {
    let idle = |_ctx: Context| std::future::pending::<()>();
    let err = |b: Builder| b.build().expect_err("refused").to_string();
    let e = err(Builder::new(quiet(2)).process("a", idle).process("a", idle));
    assert!(e.contains("two parts are named \"a\""), "{e}");
    let e = err(Builder::new(quiet(2)).process("a", idle).resource("a"));
    assert!(e.contains("two parts are named \"a\""), "{e}");
    let e = err(Builder::new(quiet(2)).process("", idle));
    assert!(e.contains("part name \"\""), "{e}");
    let e = err(Builder::new(quiet(2)).process("agent-1", idle));
    assert!(e.contains("built-in roles"), "{e}");
    let e = err(Builder::new(quiet(2))
        .process("a", idle)
        .fault(Duration::from_secs(1), Aim::Pause("b".into())));
    assert!(e.contains("names \"b\", which is no part"), "{e}");
    let e = err(Builder::new(quiet(2))
        .process("a", idle)
        .fault(Duration::from_secs(5), Aim::Pause("a".into())));
    assert!(e.contains("past the duration"), "{e}");
    let ok = |_h: &History| Ok(());
    let e = err(Builder::new(quiet(2))
        .always(rule("R1", RuleKind::Safety), ok)
        .always(rule("R1", RuleKind::Safety), ok));
    assert!(e.contains("rule id R1 is given twice"), "{e}");
    let e = err(Builder::new(quiet(2)).always(tenure::core::rule::S1, ok));
    assert!(e.contains("built-in rule's id"), "{e}");
    let e = err(Builder::new(quiet(2)).eventually(
        rule("R2", RuleKind::Safety),
        Duration::from_secs(1),
        |_ctx| async { Ok(()) },
    ));
    assert!(e.contains("liveness rule"), "{e}");
    let e = err(Builder::new(quiet(2)).sometimes("p").sometimes("p"));
    assert!(e.contains("declared twice"), "{e}");
    let mut bad = quiet(2);
    bad.duration = Duration::ZERO;
    let e = err(Builder::new(bad));
    assert!(e.contains("duration_ms"), "{e}");
    // Several mistakes: each on its own line.
    let e = err(Builder::new(quiet(2))
        .process("a", idle)
        .process("a", idle)
        .process("", idle));
    assert_eq!(e.lines().count(), 2, "{e}");
    // A user rule cannot take a built-in id.
    assert!(Rule::user("S1", "mine", RuleKind::Safety).is_err());
}

#[test]
fn written_schedules_name_parts_by_name() {
    let w = Builder::new(quiet(4))
        .process("phoenix", |ctx: Context| async move {
            ctx.sometimes("started");
            std::future::pending::<()>().await;
        })
        .build()
        .unwrap();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("world-schedules");
    std::fs::create_dir_all(&dir).unwrap();
    let toml = dir.join("restart.toml");
    std::fs::write(
        &toml,
        "duration_ms = 3000\n\
         [[steps]]\nat_ms = 1000\nfault = { kind = \"restart_process\", process = \"phoenix\" }\n",
    )
    .unwrap();
    let replay = tenure::harness::with_schedule_file(&w, &toml).expect("the file reads");
    let r = replay.run(1).unwrap();
    assert_eq!(r.sometimes["started"], 2);
    assert_eq!(replay.config().duration, Duration::from_secs(3));
    // Written back with the name, it reads the same.
    let f =
        tenure::harness::read_schedule(&w, &std::fs::read_to_string(&toml).unwrap(), true).unwrap();
    let json = tenure::harness::schedule_text(&w, &f);
    assert!(json.contains("\"phoenix\""), "{json}");
    assert_eq!(tenure::harness::read_schedule(&w, &json, false).unwrap(), f);
    // A name that is no part, and a step past the duration, are refused by name.
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"duration_ms": 3000, "steps": [{"at_ms": 5, "fault": {"kind": "pause_process", "process": "ghost"}}]}"#,
    )
    .unwrap();
    let e = tenure::harness::with_schedule_file(&w, &bad).unwrap_err();
    assert!(e.contains("no part is named \"ghost\""), "{e}");
    std::fs::write(
        &bad,
        r#"{"duration_ms": 3000, "steps": [{"at_ms": 5000, "fault": {"kind": "heal"}}]}"#,
    )
    .unwrap();
    let e = tenure::harness::with_schedule_file(&w, &bad).unwrap_err();
    assert!(e.contains("past the duration"), "{e}");
}

#[test]
fn a_process_keeps_its_synced_disk_across_a_restart() {
    let w = Builder::new(quiet(3))
        .process("keeper", |ctx: Context| async move {
            let disk = ctx.disk().expect("a user process has a disk");
            let found = disk.lock().unwrap().read("log").to_vec();
            if found.is_empty() {
                ctx.sometimes("fresh disk");
                let mut d = disk.lock().unwrap();
                d.write_all("log", b"synced");
                d.sync("log");
                d.write_all("log", b"-tail");
            } else if found.starts_with(b"synced") && found.len() <= b"synced-tail".len() {
                ctx.sometimes("kept what it synced");
            } else {
                ctx.sometimes("lost what it synced");
            }
            std::future::pending::<()>().await;
        })
        .fault(Duration::from_secs(1), Aim::Restart("keeper".into()))
        .build()
        .unwrap();
    for seed in 1..=6 {
        let r = w.run(seed).unwrap();
        assert_eq!(r.sometimes.get("fresh disk"), Some(&1), "{:?}", r.sometimes);
        assert_eq!(
            r.sometimes.get("kept what it synced"),
            Some(&1),
            "{:?}",
            r.sometimes
        );
        assert!(!r.sometimes.contains_key("lost what it synced"));
    }
}

/// A user's own model: a counter whose `incr` answers the value after it.
struct Counter {
    panics: bool,
}

impl tenure::sim::lin::Model for Counter {
    type State = u64;
    type Input = ();
    type Output = u64;
    fn name(&self) -> &'static str {
        "counter"
    }
    fn init(&self) -> u64 {
        0
    }
    fn step(&self, state: &u64, _: &(), output: Option<&u64>) -> Option<u64> {
        if self.panics {
            panic!("the counter model broke");
        }
        let next = state + 1;
        output.is_none_or(|o| *o == next).then_some(next)
    }
    fn footprint(&self, _: &()) -> tenure::sim::lin::Footprint {
        tenure::sim::lin::Footprint::Keys(vec!["c".into()])
    }
    fn describe(&self, _: &(), output: Option<&u64>) -> String {
        format!("incr -> {output:?}")
    }
    fn describe_state(&self, state: &u64) -> String {
        state.to_string()
    }
}

impl tenure::sim::lin::input::FromRaw for Counter {
    fn from_raw(
        &self,
        raw: &tenure::sim::lin::input::RawOp,
    ) -> Result<Option<((), Option<u64>)>, String> {
        if raw.f != "incr" {
            return Ok(None);
        }
        Ok(Some(((), raw.output.as_u64())))
    }
}

/// Increments a counter in the agency by compare-and-set; with `skip`, answers one value
/// too many.
async fn counting(ctx: Context, skip: bool) {
    use tenure::core::agency::Agency;
    let key = tenure::core::Key::parse("/user/c").unwrap();
    for n in 1..=4u64 {
        let call = ctx.invoke("incr", "c", serde_json::Value::Null).unwrap();
        let written = if n == 1 {
            ctx.agency()
                .write_key_if_empty(&key, serde_json::json!(n), None)
                .await
        } else {
            ctx.agency()
                .write_key_if_equal_to(&key, serde_json::json!(n), serde_json::json!(n - 1), None)
                .await
        };
        match written {
            Ok(_) if skip && n == 3 => call.ok(serde_json::json!(n + 1)),
            Ok(_) => call.ok(serde_json::json!(n)),
            Err(e) => call.info(serde_json::json!(e.to_string())),
        }
    }
    std::future::pending::<()>().await;
}

#[test]
fn a_users_own_model_checks_their_operations_and_a_panicking_one_is_named() {
    for (skip, panics, expect) in [
        (false, false, None),
        (true, false, Some("C1")),
        (false, true, Some("U0")),
    ] {
        let w = Builder::new(quiet(3))
            .process("counter", move |ctx| counting(ctx, skip))
            .linearizable(rule("C1", RuleKind::Safety), Counter { panics }, |_| true)
            .build()
            .unwrap();
        let r = w.run(4).expect("runs");
        let ids: Vec<&str> = r.violations.iter().map(|v| v.rule.id()).collect();
        match expect {
            None => assert!(ids.is_empty(), "{:?}", r.violations),
            Some(id) => {
                assert_eq!(ids, vec![id], "{:?}", r.violations);
                if id == "U0" {
                    let m = &r.violations[0].message;
                    assert!(
                        m.contains("C1") && m.contains("the counter model broke"),
                        "{m}"
                    );
                }
            }
        }
    }
}

#[test]
fn faults_separate_two_parts_and_move_a_parts_clock() {
    use tenure::sim::clock::ClockFault;
    let w = Builder::new(quiet(3))
        .actor("echo", |_, log| Echo { log })
        .process("pinger", |ctx: Context| async move {
            let mut n = 0;
            loop {
                n += 1;
                ctx.send("echo", Ping::Ping(n)).unwrap();
                let sent = ctx.now();
                if let Some((_, Ping::Pong(_))) =
                    ctx.recv_timeout::<Ping>(Duration::from_millis(90)).await
                {
                    let ms = sent.as_millis();
                    ctx.sometimes(match ms {
                        0..=999 => "pong before",
                        1100..=2899 => "pong while separated",
                        3100.. => "pong after the heal",
                        _ => "pong at an edge",
                    });
                }
                ctx.sleep(Duration::from_millis(100)).await;
            }
        })
        .process("clocked", |ctx: Context| async move {
            ctx.sleep(Duration::from_millis(500)).await;
            let before = ctx.now();
            ctx.sleep(Duration::from_millis(1_000)).await;
            if ctx.now() >= before + Duration::from_secs(10) {
                ctx.sometimes("jumped");
            }
            std::future::pending::<()>().await;
        })
        .fault(
            Duration::from_secs(1),
            Aim::Separate("pinger".into(), "echo".into()),
        )
        .fault(
            Duration::from_secs(1),
            Aim::Clock("clocked".into(), ClockFault::Jump { by_ms: 10_000 }),
        )
        .build()
        .unwrap();
    let r = w.run(2).unwrap();
    assert!(
        r.sometimes.get("pong before").is_some_and(|n| *n > 3),
        "{:?}",
        r.sometimes
    );
    assert!(
        !r.sometimes.contains_key("pong while separated"),
        "{:?}",
        r.sometimes
    );
    assert_eq!(r.sometimes.get("jumped"), Some(&1), "{:?}", r.sometimes);
    // The heal at the end of the faults reconnects them (the world runs on after it).
    assert!(
        r.sometimes.contains_key("pong after the heal"),
        "{:?}",
        r.sometimes
    );
    let id = |n| w.process_id(n).unwrap();
    assert!(r.schedule.steps.iter().any(|s| s.fault
        == Fault::SeparateProcesses {
            a: id("pinger"),
            b: id("echo")
        }));
    let e = Builder::new(quiet(2))
        .process("a", |_ctx: Context| std::future::pending::<()>())
        .fault(
            Duration::from_secs(1),
            Aim::Separate("a".into(), "a".into()),
        )
        .build()
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot be separated from itself"), "{e}");
}
