//! tenure-scenarios: the scenario library behind the `tenure` program.
//!
//! A scenario builds a world from a seed, runs it for a virtual duration, records a history
//! (JSON lines) and checks it. The same seed and build give a byte-identical history, hence
//! the same digest. Cluster scenarios are data (`library`, TOML files in `library/`); the
//! in-process `lock-contention` scenario over `mem:` is code (below).

pub mod bench;
pub mod check;
pub mod cli;
pub mod explore;
pub mod files;
pub mod fuzz;
pub mod harness;
pub mod library;
pub mod margin;
pub mod shrink;
pub mod strategy;
pub mod sweep;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenure_core::agency::{Agency, AgencyApi, AgencyError, Lock};
use tenure_core::{Clock, Key, MemBackend};
use tenure_sim::{run_seed, MadsimClock, RunFailure};

/// The scenarios this build knows, with a line each.
pub const SCENARIOS: &[(&str, &str)] = &[(
    "lock-contention",
    "clients contend for one agency Lock over mem:, holding it for random times; checks that \
     holds never overlap and fencing tokens increase",
)];

/// Knobs of a run; every one has a default.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Params {
    pub clients: usize,
    pub duration: Duration,
    pub lock_ttl: Duration,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            clients: 3,
            duration: Duration::from_secs(60),
            lock_ttl: Duration::from_secs(2),
        }
    }
}

/// One line of a history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Virtual (true) time since the run began, in ms.
    pub at_ms: u64,
    pub client: usize,
    pub op: String,
    /// `invoke`, `ok` or `fail`.
    pub phase: String,
    /// The fencing token of a grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<u64>,
}

/// What a run produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    pub params: Params,
    pub operations: usize,
    pub grants: usize,
    pub violations: Vec<String>,
    /// SHA-256 of the history's JSON lines.
    pub digest: String,
    #[serde(skip)]
    pub history: Vec<Entry>,
}

impl Report {
    /// The history as JSON lines.
    pub fn history_jsonl(&self) -> String {
        history_jsonl(&self.history)
    }
}

fn history_jsonl(h: &[Entry]) -> String {
    let mut out = String::new();
    for e in h {
        out.push_str(&serde_json::to_string(e).expect("entries serialize"));
        out.push('\n');
    }
    out
}

/// Why a scenario could not run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("unknown scenario {0:?}; `tenure list` shows the known ones")]
    Unknown(String),
    #[error("invalid parameter: {0}")]
    BadParam(String),
    #[error("seed {seed}: {failure}")]
    Failed { seed: u64, failure: RunFailure },
}

/// The cluster scenario a command line names: a built-in name, or a TOML file's path.
pub fn resolve(name_or_path: &str) -> Result<library::Scenario, String> {
    if let Some(s) = library::built_in(name_or_path) {
        return Ok(s);
    }
    if SCENARIOS.iter().any(|(n, _)| *n == name_or_path) {
        return Err(format!(
            "{name_or_path} runs in process over mem:, not on a cluster: this command takes cluster scenarios (`tenure list` marks them)"
        ));
    }
    if let Some(path) = scenario_file(name_or_path) {
        let text = files::read_text(path, "scenario file", files::SCENARIO_LIMIT)?;
        return library::parse(&text, name_or_path);
    }
    Err(format!(
        "unknown scenario {name_or_path:?}; `tenure list` shows the known ones (or give a .toml file)"
    ))
}

/// The file a command line's scenario names, if it names one (not a built-in name).
pub fn scenario_file(name_or_path: &str) -> Option<&std::path::Path> {
    let path = std::path::Path::new(name_or_path);
    (library::built_in(name_or_path).is_none()
        && !SCENARIOS.iter().any(|(n, _)| *n == name_or_path)
        && (path.exists() || name_or_path.ends_with(".toml")))
    .then_some(path)
}

/// Runs scenario `name` with `seed`.
pub fn run(name: &str, seed: u64, params: Params) -> Result<Report, ScenarioError> {
    if !SCENARIOS.iter().any(|(n, _)| *n == name) {
        return Err(ScenarioError::Unknown(name.to_string()));
    }
    if params.clients == 0 || params.clients > 1000 {
        return Err(ScenarioError::BadParam(format!(
            "clients: {} is outside 1..=1000",
            params.clients
        )));
    }
    if params.duration.is_zero() || params.duration > tenure_sim::limits::MAX_DURATION {
        return Err(ScenarioError::BadParam(
            "duration: must be more than 0 and at most 3600 s".into(),
        ));
    }
    if params.lock_ttl < Duration::from_millis(10) || params.lock_ttl > Duration::from_secs(600) {
        return Err(ScenarioError::BadParam(
            "lock ttl: must be 10 ms to 600000 ms".into(),
        ));
    }
    let p = params.clone();
    // The run ends 4 TTLs after its duration (every hold and pause done), exactly.
    let limit = params.duration + params.lock_ttl * 4 + Duration::from_secs(60);
    let history = run_seed(seed, Some(limit), move || lock_contention(p))
        .map_err(|failure| ScenarioError::Failed { seed, failure })?;
    let violations = check_lock_history(&history);
    let digest = format!("{:x}", Sha256::digest(history_jsonl(&history).as_bytes()));
    Ok(Report {
        scenario: name.to_string(),
        seed,
        params,
        operations: history.iter().filter(|e| e.phase == "invoke").count(),
        grants: history
            .iter()
            .filter(|e| e.op == "lock" && e.phase == "ok")
            .count(),
        violations,
        digest,
        history,
    })
}

async fn lock_contention(p: Params) -> Vec<Entry> {
    use madsim::rand::Rng;
    let clock = MadsimClock::new();
    let mem = MemBackend::new(clock.shared());
    let history = Arc::new(Mutex::new(Vec::new()));
    let key = Key::parse("/scenario/lock").expect("valid key");
    let ttl_ms = p.lock_ttl.as_millis() as u64;
    for client in 0..p.clients {
        let agency: Arc<dyn Agency> = Arc::new(AgencyApi::new(mem.client()));
        let lock = Lock::new(
            agency,
            clock.shared(),
            key.clone(),
            &format!("client-{client}"),
            p.lock_ttl,
        )
        .expect("valid lock");
        let (clock, history) = (clock.clone(), history.clone());
        let end = p.duration;
        clock.clone().spawn(Box::pin(async move {
            let record = |op: &str, phase: &str, token: Option<u64>| {
                history.lock().unwrap().push(Entry {
                    at_ms: clock.now().as_millis() as u64,
                    client,
                    op: op.to_string(),
                    phase: phase.to_string(),
                    token,
                });
            };
            while clock.now() < end {
                record("lock", "invoke", None);
                match lock.lock().await {
                    Ok(token) => {
                        record("lock", "ok", Some(token));
                        let hold = madsim::rand::thread_rng().gen_range(1..=3 * ttl_ms);
                        clock.sleep(Duration::from_millis(hold)).await;
                        record("unlock", "invoke", None);
                        match lock.unlock().await {
                            Ok(()) => record("unlock", "ok", None),
                            Err(_) => record("unlock", "fail", None),
                        }
                    }
                    Err(AgencyError::AlreadyLocked) => record("lock", "fail", None),
                    Err(_) => record("lock", "fail", None),
                }
                let pause = madsim::rand::thread_rng().gen_range(1..=ttl_ms);
                clock.sleep(Duration::from_millis(pause)).await;
            }
        }));
    }
    clock.sleep(p.duration + p.lock_ttl * 4).await;
    let h = history.lock().unwrap().clone();
    h
}

/// Mutual exclusion and token order: between a client's `lock ok` and its `unlock invoke`,
/// no other client's `lock ok` may happen; tokens grow with every grant.
pub fn check_lock_history(history: &[Entry]) -> Vec<String> {
    let mut violations = Vec::new();
    let mut holder: Option<(usize, u64)> = None;
    let mut last_token = 0;
    for (i, e) in history.iter().enumerate() {
        match (e.op.as_str(), e.phase.as_str()) {
            ("lock", "ok") => {
                if let Some((h, since)) = holder {
                    violations.push(format!(
                        "line {}: client {} was granted the lock at {} ms while client {h} held it since {since} ms",
                        i + 1,
                        e.client,
                        e.at_ms
                    ));
                }
                let t = e.token.unwrap_or(0);
                if t <= last_token {
                    violations.push(format!(
                        "line {}: fencing token {t} does not exceed the previous {last_token}",
                        i + 1
                    ));
                }
                last_token = last_token.max(t);
                holder = Some((e.client, e.at_ms));
            }
            ("unlock", "invoke") if holder.map(|h| h.0) == Some(e.client) => holder = None,
            _ => {}
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checker_catches_overlap_and_token_regress() {
        let e = |at_ms, client, op: &str, phase: &str, token| Entry {
            at_ms,
            client,
            op: op.into(),
            phase: phase.into(),
            token,
        };
        let bad = vec![
            e(1, 0, "lock", "ok", Some(5)),
            e(2, 1, "lock", "ok", Some(4)),
        ];
        let v = check_lock_history(&bad);
        assert_eq!(v.len(), 2, "{v:?}");
        let good = vec![
            e(1, 0, "lock", "ok", Some(5)),
            e(2, 0, "unlock", "invoke", None),
            e(3, 1, "lock", "ok", Some(6)),
        ];
        assert!(check_lock_history(&good).is_empty());
    }

    #[test]
    fn bad_params_are_named() {
        let p = Params {
            clients: 0,
            ..Params::default()
        };
        assert!(
            matches!(run("lock-contention", 1, p), Err(ScenarioError::BadParam(m)) if m.contains("clients"))
        );
        assert!(matches!(
            run("nope", 1, Params::default()),
            Err(ScenarioError::Unknown(_))
        ));
    }
}
