//! User worlds: put your own service into a tenure run and get every tool on it.
//!
//! A [`Builder`] starts from a [`RunConfig`] (the agents, their settings, any built-in roles,
//! the faults) and adds the user's parts, each named:
//!
//! - **processes** ([`Builder::process`]): an async body made by a factory from a
//!   [`Context`] (the seed API clients bound to the simulated cluster, the node's own skewed
//!   clock, seeded randomness, typed messages to other parts by name, a recorder, fenced
//!   resources). A restart (`restart_process`) runs the factory again: the body starts fresh;
//! - **actors** ([`Builder::actor`]): an [`Actor`] with the user's own message type, made
//!   anew on every restart;
//! - **fenced resources** ([`Builder::resource`]): the built-in resource that refuses a
//!   fencing token lower than the highest it has seen, by name.
//!
//! Every part gets a process number (after the built-in roles'), so every process fault
//! (kill, restart, pause, resume, isolate) and the swarm reach it; [`Builder::fault`] names
//! parts by name. The user's checks: [`Builder::always`] (a function of the history),
//! [`Builder::eventually`] (a probe that must pass within a bound after the heal),
//! [`Builder::linearizable`] (the user's operations against a [`crate::lin::Model`]), and
//! `sometimes` points ([`Context::sometimes`], declared with [`Builder::sometimes`]) whose
//! reach each report counts. The built-in checks apply to user parts too: beliefs are held to
//! S1 and S11, fenced writes to S10, calls to L4.
//!
//! [`World::run`] runs one seed: the same seed, the same bytes.

pub mod call;
pub mod context;
pub mod resource;
pub(crate) mod start;

pub use crate::actor::{Actor, Ctx};
pub use call::{Call, CallError};
pub use context::{Context, Directory, Log, Message, RecordError, SendError};
pub use resource::Resource;

use crate::actor::{run_actor, ActorEnv};
use crate::check::Violation;
use crate::history::History;
use crate::lin::input::{FromRaw, RawOp};
use crate::nemesis::{Fault, Schedule, Step};
use crate::run::{Faults, Report, RunConfig, RunError};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tenure_core::rule::{Rule, RuleKind};

pub(crate) type Body = Pin<Box<dyn Future<Output = ()>>>;
pub(crate) type ProbeBody = Pin<Box<dyn Future<Output = Result<(), String>>>>;
type ProcessFactory = Arc<dyn Fn(Context) -> Body + Send + Sync>;
type ActorStart = Arc<dyn Fn(ActorEnv, Arc<Directory>, Log) -> Body + Send + Sync>;
type AlwaysFn = Arc<dyn Fn(&History) -> Result<(), String> + Send + Sync>;
pub(crate) type ProbeFn = Arc<dyn Fn(Context) -> ProbeBody + Send + Sync>;
type HistoryCheck = Arc<dyn Fn(&History) -> Vec<Violation> + Send + Sync>;

/// What runs on a part's node.
#[derive(Clone)]
pub(crate) enum PartBody {
    Process(ProcessFactory),
    Actor(ActorStart),
}

/// One named part of the user's.
#[derive(Clone)]
pub(crate) struct Part {
    pub name: String,
    pub body: PartBody,
}

/// A fault aimed at a part by name ([`Builder::fault`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Aim {
    Kill(String),
    Restart(String),
    Pause(String),
    Resume(String),
    /// Cut off from every agent until the next heal.
    Isolate(String),
    /// The part's own clock jumps or drifts.
    Clock(String, crate::clock::ClockFault),
    /// Two parts cut off from each other until the next heal.
    Separate(String, String),
}

impl Aim {
    /// The parts it names.
    fn targets(&self) -> Vec<&str> {
        match self {
            Aim::Kill(n)
            | Aim::Restart(n)
            | Aim::Pause(n)
            | Aim::Resume(n)
            | Aim::Isolate(n)
            | Aim::Clock(n, _) => vec![n],
            Aim::Separate(a, b) => vec![a, b],
        }
    }

    /// The fault, given the process numbers of [`Aim::targets`].
    fn fault(&self, ids: &[u64]) -> Fault {
        let process = ids[0];
        match self {
            Aim::Kill(_) => Fault::KillProcess { process },
            Aim::Restart(_) => Fault::RestartProcess { process },
            Aim::Pause(_) => Fault::PauseProcess { process },
            Aim::Resume(_) => Fault::ResumeProcess { process },
            Aim::Isolate(_) => Fault::IsolateProcess { process },
            Aim::Clock(_, change) => Fault::ProcessClock {
                process,
                change: *change,
            },
            Aim::Separate(..) => Fault::SeparateProcesses {
                a: ids[0],
                b: ids[1],
            },
        }
    }
}

/// The user's parts and checks, shared by every run of a world.
#[derive(Default)]
pub(crate) struct Parts {
    pub parts: Vec<Part>,
    pub resources: Vec<String>,
    pub always: Vec<(Rule, AlwaysFn)>,
    pub eventually: Vec<(Rule, Duration, ProbeFn)>,
    pub models: Vec<(Rule, HistoryCheck)>,
    pub sometimes: Vec<String>,
}

/// Why a world could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WorldError(pub String);

/// Builds a [`World`]; every mistake is reported by [`Builder::build`].
pub struct Builder {
    config: RunConfig,
    parts: Parts,
    faults: Vec<(Duration, Aim)>,
    errors: Vec<String>,
}

/// Node names the built-in roles use: a part may not take one.
const BUILT_IN_PREFIXES: [&str; 11] = [
    "agent-",
    "client-",
    "locker-",
    "leaser-",
    "leader-",
    "member-",
    "manager-",
    "watcher-",
    "resource-",
    "runner",
    "eventually-",
];

/// The most parts a world may have.
pub const MAX_PARTS: usize = 200;

impl Builder {
    /// A world with `config`'s agents, built-in roles and faults, and no user parts yet.
    pub fn new(config: RunConfig) -> Builder {
        Builder {
            config,
            parts: Parts::default(),
            faults: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// A user process named `name`: `body` makes its future from a [`Context`], at the start
    /// and again after every restart.
    pub fn process<F, Fut>(mut self, name: &str, body: F) -> Builder
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let body: ProcessFactory = Arc::new(move |ctx| Box::pin(body(ctx)));
        self.parts.parts.push(Part {
            name: name.to_string(),
            body: PartBody::Process(body),
        });
        self
    }

    /// A user actor named `name`, made by `make` (given every part's address and its own
    /// [`Log`]) at the start and after every restart. It listens at
    /// [`Directory::addr`]`(name)`; processes reach it with [`Context::send`] of its message
    /// type.
    pub fn actor<A, F>(mut self, name: &str, make: F) -> Builder
    where
        A: Actor,
        F: Fn(&Directory, Log) -> A + Send + Sync + 'static,
    {
        let start: ActorStart =
            Arc::new(move |env, dir, log| Box::pin(run_actor(make(&dir, log), env)) as Body);
        self.parts.parts.push(Part {
            name: name.to_string(),
            body: PartBody::Actor(start),
        });
        self
    }

    /// A fenced resource named `name` ([`Context::resource`]).
    pub fn resource(mut self, name: &str) -> Builder {
        self.parts.resources.push(name.to_string());
        self
    }

    /// An invariant over the whole history: `Err(why)` is a violation of `rule`. A check
    /// that panics is reported as that seed's failure (rule `U0`), naming the rule.
    pub fn always<F>(mut self, rule: Rule, check: F) -> Builder
    where
        F: Fn(&History) -> Result<(), String> + Send + Sync + 'static,
    {
        self.parts.always.push((rule, Arc::new(check)));
        self
    }

    /// A property that must hold within `within` after the faults are lifted: `probe` runs
    /// on a node of its own with a [`Context`], again every 100 ms until it passes or the
    /// time is up (then its last `Err` is the violation).
    pub fn eventually<F, Fut>(mut self, rule: Rule, within: Duration, probe: F) -> Builder
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + 'static,
    {
        self.parts
            .eventually
            .push((rule, within, Arc::new(move |ctx| Box::pin(probe(ctx)))));
        self
    }

    /// The user processes' recorded operations that `keep` accepts must be linearizable
    /// against `model` (a built-in one, or the user's through [`crate::lin::Model`] and
    /// [`FromRaw`]); a part that cannot be linearized is a violation of `rule`.
    pub fn linearizable<M, K>(mut self, rule: Rule, model: M, keep: K) -> Builder
    where
        M: FromRaw + Send + Sync + 'static,
        K: Fn(&RawOp) -> bool + Send + Sync + 'static,
    {
        let r = rule.clone();
        let check: HistoryCheck = Arc::new(move |h: &History| {
            let users = crate::check::linearizable::user_processes(h);
            let paired = crate::check::linearizable::paired_where(h, |p| users.contains(&p));
            crate::check::linearizable::linearizable(h, &paired, &model, &keep, |_| r.clone())
        });
        self.parts.models.push((rule, check));
        self
    }

    /// Declares a `sometimes` point: reports list it even when no run reached it.
    pub fn sometimes(mut self, point: &str) -> Builder {
        self.parts.sometimes.push(point.to_string());
        self
    }

    /// A fault at `at` (true time from the start) aimed at a part by name. The world's
    /// faults become this written schedule (with whatever it leaves in place lifted at the
    /// end), in place of the config's swarm.
    pub fn fault(mut self, at: Duration, aim: Aim) -> Builder {
        self.faults.push((at, aim));
        self
    }

    /// The world, or every mistake found, one per line.
    pub fn build(mut self) -> Result<World, WorldError> {
        let mut errors = std::mem::take(&mut self.errors);
        check_names(&self.parts, &mut errors);
        check_rules(&self.parts, &mut errors);
        if self.parts.parts.len() > MAX_PARTS {
            errors.push(format!(
                "{} parts: a world has at most {MAX_PARTS}",
                self.parts.parts.len()
            ));
        }
        if let Err(e) = self.config.check_limits() {
            errors.push(e);
        }
        let first = self.config.processes() as u64 + 1;
        let id_of = |name: &str| {
            self.parts
                .parts
                .iter()
                .position(|p| p.name == name)
                .map(|i| first + i as u64)
        };
        if !self.faults.is_empty() {
            let mut steps = match &self.config.faults {
                Faults::Schedule(s) => s.steps.clone(),
                _ => Vec::new(),
            };
            for (at, aim) in &self.faults {
                let mut ids = Vec::new();
                for name in aim.targets() {
                    match id_of(name) {
                        Some(p) => ids.push(p),
                        None => errors.push(format!(
                            "a fault ({aim:?}) names {name:?}, which is no part of this world"
                        )),
                    }
                }
                if ids.len() == aim.targets().len() {
                    steps.push(Step {
                        at_ms: at.as_millis() as u64,
                        fault: aim.fault(&ids),
                    });
                }
            }
            steps.sort_by_key(|s| s.at_ms);
            self.config.faults = Faults::Schedule(Schedule { steps });
        }
        let world = World {
            config: self.config,
            parts: Arc::new(self.parts),
        };
        if let Err(e) = world.check_faults() {
            errors.push(e);
        }
        if errors.is_empty() {
            Ok(world)
        } else {
            Err(WorldError(errors.join("\n")))
        }
    }
}

fn check_names(parts: &Parts, errors: &mut Vec<String>) {
    let mut seen = std::collections::BTreeSet::new();
    let names = parts
        .parts
        .iter()
        .map(|p| p.name.as_str())
        .chain(parts.resources.iter().map(String::as_str));
    for name in names {
        let ok = (1..=40).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            errors.push(format!(
                "part name {name:?}: 1 to 40 letters, digits, '-' or '_'"
            ));
        } else if let Some(p) = BUILT_IN_PREFIXES.iter().find(|p| name.starts_with(*p)) {
            errors.push(format!(
                "part name {name:?}: names starting {p:?} are the built-in roles'"
            ));
        }
        if !seen.insert(name) {
            errors.push(format!("two parts are named {name:?}: names are unique"));
        }
    }
    let mut points = std::collections::BTreeSet::new();
    for p in &parts.sometimes {
        if p.trim().is_empty() || p.len() > 200 {
            errors.push(format!("sometimes point {p:?}: 1 to 200 characters"));
        }
        if !points.insert(p) {
            errors.push(format!("sometimes point {p:?} is declared twice"));
        }
    }
}

fn check_rules(parts: &Parts, errors: &mut Vec<String>) {
    let mut ids: Vec<&Rule> = Vec::new();
    let rules = parts
        .always
        .iter()
        .map(|(r, _)| r)
        .chain(parts.eventually.iter().map(|(r, ..)| r))
        .chain(parts.models.iter().map(|(r, _)| r));
    for rule in rules {
        if tenure_core::rule::BUILTIN
            .iter()
            .any(|b| b.id() == rule.id())
        {
            errors.push(format!(
                "rule {rule}: {} is a built-in rule's id; make the rule with Rule::user",
                rule.id()
            ));
        }
        if let Some(other) = ids.iter().find(|r| r.id() == rule.id()) {
            errors.push(format!(
                "rule id {} is given twice ({other} and {rule}): one id, one check",
                rule.id()
            ));
        }
        ids.push(rule);
    }
    for (rule, within, _) in &parts.eventually {
        if rule.kind() != RuleKind::Liveness {
            errors.push(format!(
                "rule {rule}: an eventually check's rule is a liveness rule"
            ));
        }
        if within.is_zero() || *within > crate::limits::MAX_DURATION {
            errors.push(format!(
                "rule {rule}: an eventually check's bound must be more than 0 and at most an hour"
            ));
        }
    }
}

/// A built world: run it by seed, as often as you like.
#[derive(Clone)]
pub struct World {
    config: RunConfig,
    pub(crate) parts: Arc<Parts>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("config", &self.config)
            .field("parts", &self.part_names())
            .field("resources", &self.parts.resources)
            .finish()
    }
}

impl World {
    /// Its run settings (the faults include those aimed at parts).
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// The same parts and checks under other settings (other faults, a shorter duration:
    /// what shrinking tries), checked as [`Builder::build`] checks them.
    pub fn with_config(&self, config: RunConfig) -> Result<World, WorldError> {
        config.check_limits().map_err(WorldError)?;
        let w = World {
            config,
            parts: self.parts.clone(),
        };
        w.check_faults().map_err(WorldError)?;
        Ok(w)
    }

    fn check_faults(&self) -> Result<(), String> {
        if let Faults::Schedule(s) = &self.config.faults {
            s.validate_with(self.config.cluster.agents as u64, self.processes())?;
            let end = self.config.duration.as_millis() as u64;
            if let Some(st) = s.steps.iter().find(|st| st.at_ms >= end) {
                return Err(format!(
                    "a fault at {} ms lies past the duration ({end} ms)",
                    st.at_ms
                ));
            }
        }
        Ok(())
    }

    /// How many processes the world numbers: the built-in roles', then the parts'.
    pub fn processes(&self) -> u64 {
        self.config.processes() as u64 + self.parts.parts.len() as u64
    }

    /// The process number of part `name` (for schedules and the history).
    pub fn process_id(&self, name: &str) -> Option<u64> {
        let first = self.config.processes() as u64 + 1;
        self.parts
            .parts
            .iter()
            .position(|p| p.name == name)
            .map(|i| first + i as u64)
    }

    /// The name of the part with process number `process`.
    pub fn part_of(&self, process: u64) -> Option<&str> {
        let first = self.config.processes() as u64 + 1;
        let k = process.checked_sub(first)?;
        self.parts.parts.get(k as usize).map(|p| p.name.as_str())
    }

    /// The parts' names, in process order.
    pub fn part_names(&self) -> Vec<String> {
        self.parts.parts.iter().map(|p| p.name.clone()).collect()
    }

    /// The declared `sometimes` points.
    pub fn sometimes_points(&self) -> &[String] {
        &self.parts.sometimes
    }

    /// Runs `seed`: the cluster, the built-in roles, the parts, the faults, then the checks
    /// (built-in and the user's). `Err` only when the run itself broke (a panic in a part,
    /// the time limit), with the history up to the break.
    pub fn run(&self, seed: u64) -> Result<Report, Box<RunError>> {
        let mut config = self.config.clone();
        let probes = self
            .parts
            .eventually
            .iter()
            .fold(Duration::ZERO, |a, (_, w, _)| a.saturating_add(*w));
        config.time_limit = config.time_limit.saturating_add(probes);
        crate::run::run_with(&config, seed, Some(self.parts.clone()))
    }

    /// Runs `seed` twice: `Err` names the first record where the two runs differ.
    pub fn self_check(&self, seed: u64) -> Result<Report, String> {
        crate::run::compare_runs(seed, || self.run(seed))
    }
}

/// Runs each user check of `parts` on `h`: a check that panics is a `U0` violation naming it.
pub(crate) fn user_checks(parts: &Parts, h: &History) -> Vec<Violation> {
    let mut out = Vec::new();
    let guarded = |rule: &Rule, f: &dyn Fn() -> Vec<Violation>| -> Vec<Violation> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(v) => v,
            Err(p) => vec![Violation {
                rule: tenure_core::rule::U0,
                records: Vec::new(),
                message: format!(
                    "the user check of rule {rule} panicked: {}",
                    crate::panic_message(&*p)
                ),
            }],
        }
    };
    for (rule, check) in &parts.always {
        out.extend(guarded(rule, &|| match check(h) {
            Ok(()) => Vec::new(),
            Err(why) => vec![Violation {
                rule: rule.clone(),
                records: Vec::new(),
                message: why,
            }],
        }));
    }
    for (rule, check) in &parts.models {
        out.extend(guarded(rule, &|| check(h)));
    }
    out
}

/// How many times each `sometimes` point was reached in `h` (declared points included, at
/// zero).
pub(crate) fn sometimes_reached(
    parts: &Parts,
    h: &History,
) -> std::collections::BTreeMap<String, u64> {
    let mut m: std::collections::BTreeMap<String, u64> =
        parts.sometimes.iter().map(|p| (p.clone(), 0)).collect();
    for r in &h.records {
        if let crate::history::Event::Sometimes { point, .. } = &r.event {
            *m.entry(point.clone()).or_default() += 1;
        }
    }
    m
}
