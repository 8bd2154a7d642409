//! `tenure check`: verdicts on history files from anywhere.
//!
//! A tenure history (the JSON lines `tenure run --history` writes) with no model named gets
//! every invariant checker that needs nothing but the history (S1, S10, S12, S13, S15, L1; S11
//! as warnings). With a model named, or for Jepsen histories (EDN or `jepsen.util` log lines)
//! and Jepsen operations as JSON lines, the file is checked for linearizability against that
//! model (default `register`).

use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tenure_sim::check::{self, Violation};
use tenure_sim::history::History;
use tenure_sim::lin::input::{self, Format, FromRaw};
use tenure_sim::lin::models::{Agency, Kv, Lease, Mutex, Register, Storage};
use tenure_sim::lin::multi::MultiRegister;
use tenure_sim::lin::{self, Budget, Checked, Verdict};

/// The models `tenure check --model` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelName {
    /// read, write, cas (per key when operations carry keys)
    Register,
    /// get, put, append, delete, cas, get_range, expire
    Kv,
    /// acquire, release (by the calling process), expire; per key
    Mutex,
    /// txn (preconditions, writes, else-writes), read, expire
    Agency,
    /// create, read, cas_by_version, delete, expire
    Storage,
    /// claim (token or "denied"), check (true/false), wait_until_expired, expire; per key
    Lease,
    /// txn of [:read k v] and [:write k v] over registers by key (Knossos's multi-register)
    MultiRegister,
}

/// The history formats `tenure check --format` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatName {
    /// Decide from the first line.
    Auto,
    /// tenure records, or Jepsen operations as JSON, one per line (or one JSON array).
    Jsonl,
    /// Jepsen EDN: maps one after another, or one vector `[...]` or list `(...)` of maps.
    Edn,
    /// `INFO jepsen.util - PROCESS :TYPE :F VALUE` lines.
    JepsenLog,
}

/// What `tenure check` found.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    pub format: String,
    /// Calls and completions read.
    pub events: usize,
    /// The linearizability verdict (absent for a full check with no linearizable operations).
    pub linearizability: Option<Checked>,
    /// Failed calls, left out (they surely had no effect).
    pub failed: usize,
    /// Operations whose `f` the model does not know, by `f`.
    pub skipped: BTreeMap<String, usize>,
    /// Broken invariants (a full check of a tenure history, or the linearizability failures).
    pub violations: Vec<Violation>,
    /// Expected-under-pauses findings and undecided checks.
    pub warnings: Vec<Violation>,
    pub seconds: f64,
}

impl CheckReport {
    /// 0 all held, 1 a violation, 3 undecided within the budget.
    pub fn exit_code(&self) -> u8 {
        if !self.violations.is_empty() {
            1
        } else if self
            .linearizability
            .as_ref()
            .is_some_and(|c| c.verdict == Verdict::Unknown)
        {
            3
        } else {
            0
        }
    }
}

/// How to check a history.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// The model for linearizability (default: every invariant for a tenure history, the
    /// register otherwise).
    pub model: Option<ModelName>,
    pub format: FormatName,
    pub budget: Budget,
    /// What a register or key never written reads as (`--initial`), as EDN; `None`: no value.
    pub initial: Option<String>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            model: None,
            format: FormatName::Auto,
            budget: Budget::default(),
            initial: None,
        }
    }
}

/// `--initial`'s text as a value: EDN (`0`, `"x"`, `nil`), and the empty text as the empty
/// string (porcupine's convention for a key never written).
pub fn initial_value(text: &str) -> Result<Option<tenure_sim::lin::models::Val>, String> {
    if text.is_empty() {
        return Ok(Some(tenure_sim::lin::models::val(&serde_json::json!(""))));
    }
    let mut r = tenure_sim::lin::edn::Reader::new(text);
    let v = match r.next_form() {
        Ok(Some((v, _))) if r.next_form().is_ok_and(|f| f.is_none()) => v.to_json(),
        _ => {
            return Err(format!(
                "--initial {text:?} is not one EDN value (a number, \"text\", nil; '' is the empty string)"
            ))
        }
    };
    Ok((!v.is_null()).then(|| tenure_sim::lin::models::val(&v)))
}

/// Checks the history `text`. Errors (bad input) name the line.
pub fn check_text(text: &str, opts: &CheckOptions) -> Result<CheckReport, String> {
    let (model, format, budget) = (opts.model, opts.format, opts.budget);
    let initial = match &opts.initial {
        None => None,
        Some(_)
            if !matches!(
                model,
                None | Some(ModelName::Register | ModelName::Kv | ModelName::MultiRegister)
            ) =>
        {
            return Err("--initial applies to the register, kv and multi-register models".into())
        }
        Some(t) => initial_value(t)?,
    };
    let started = Instant::now();
    let text = input::without_bom(text);
    let format = match format {
        FormatName::Auto => input::detect(text),
        FormatName::Jsonl => Format::Jsonl,
        FormatName::Edn => Format::Edn,
        FormatName::JepsenLog => Format::JepsenLog,
    };
    let format_name = match format {
        Format::Jsonl => "json-lines",
        Format::Edn => "edn",
        Format::JepsenLog => "jepsen-log",
    };
    let tenure_history = format == Format::Jsonl
        && text
            .lines()
            .find(|l| !l.trim().is_empty())
            .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .is_some_and(|v| v.get("t_us").is_some());
    let tenure = if tenure_history {
        let h = History::from_jsonl(text)?;
        tenure_sim::shape::check(&h)
            .map_err(|e| format!("not a well-formed tenure history: {e}"))?;
        Some(h)
    } else {
        None
    };
    if let (Some(h), None) = (&tenure, model) {
        if opts.initial.is_some() {
            return Err(
                "--initial needs --model: a tenure history's own checks know its initial values"
                    .into(),
            );
        }
        let (violations, mut warnings) = check::split_warnings(check::all(h));
        warnings.extend(check::actions_within_belief(h));
        let events = input::from_history(h).len();
        return Ok(CheckReport {
            format: "tenure".into(),
            events,
            linearizability: None,
            failed: 0,
            skipped: BTreeMap::new(),
            violations,
            warnings,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    let events = match &tenure {
        Some(h) => input::from_history(h),
        None => input::read(text, format).map_err(|e| e.to_string())?,
    };
    if events.is_empty() {
        return Err(format!(
            "nothing to check: no operations found (read as {format_name}; an empty file, blank lines, or only nemesis records)"
        ));
    }
    let (raw, failed) = input::pair(&events).map_err(|e| e.to_string())?;
    let model = model.unwrap_or(ModelName::Register);
    let (checked, skipped) = match model {
        ModelName::Register => linearize(&Register { initial }, &raw, budget)?,
        ModelName::Kv => linearize(&Kv { initial }, &raw, budget)?,
        ModelName::Mutex => linearize(&Mutex, &raw, budget)?,
        ModelName::Agency => linearize(&Agency, &raw, budget)?,
        ModelName::Storage => linearize(&Storage, &raw, budget)?,
        ModelName::Lease => linearize(&Lease, &raw, budget)?,
        ModelName::MultiRegister => linearize(&MultiRegister { initial }, &raw, budget)?,
    };
    if checked.ops == 0 {
        let found: Vec<String> = skipped.iter().map(|(f, n)| format!("{f} x{n}")).collect();
        let model_name = serde_json::to_value(model)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        return Err(if found.is_empty() {
            format!(
                "nothing to check: all {failed} calls failed (a failed call surely had no effect)"
            )
        } else {
            format!(
                "nothing to check: the {model_name} model knows none of the operations found ({}){}; choose the model with --model",
                found.join(", "),
                if failed > 0 { format!(" besides {failed} failed calls") } else { String::new() }
            )
        });
    }
    let (violations, warnings) = check::lin_findings(
        &checked,
        |_| tenure_sim::check::rule::S13,
        display_keys,
        |line| (line, String::new()),
    );
    Ok(CheckReport {
        format: format_name.into(),
        events: events.len(),
        linearizability: Some(checked),
        failed,
        skipped,
        violations,
        warnings,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn display_keys(keys: &[String]) -> String {
    if keys.len() == 1 && keys[0].is_empty() {
        "the register".into()
    } else {
        keys.join(", ")
    }
}

fn linearize<M: FromRaw>(
    model: &M,
    raw: &[input::RawOp],
    budget: Budget,
) -> Result<(Checked, BTreeMap<String, usize>), String> {
    let (ops, skipped) = input::operations(model, raw).map_err(|e| e.to_string())?;
    Ok((lin::check(model, &ops, budget), skipped))
}

/// Longest `--time-limit`.
pub const MAX_TIME_LIMIT_S: f64 = 7.0 * 24.0 * 3600.0;

/// The budget from the command line's limits (`--steps` of any size: the search's memory is
/// bounded by [`lin::MAX_MEMO`] whatever it says).
pub fn budget(steps: Option<u64>, time_limit_s: Option<f64>) -> Result<Budget, String> {
    let max_time = match time_limit_s {
        Some(t) if !(t.is_finite() && t > 0.0 && t <= MAX_TIME_LIMIT_S) => {
            return Err(format!(
                "--time-limit must be a number of seconds above 0 and at most {MAX_TIME_LIMIT_S} (a week), not {t}"
            ))
        }
        Some(t) => Some(Duration::from_secs_f64(t)),
        None => None,
    };
    if steps == Some(0) {
        return Err("--steps must be at least 1".into());
    }
    Ok(Budget {
        max_steps: Some(steps.unwrap_or(Budget::default().max_steps.unwrap_or(u64::MAX))),
        max_time,
    })
}

/// The report for a person.
pub fn render(path: &str, r: &CheckReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "history    {path} ({}, {} calls and completions)",
        r.format, r.events
    );
    if let Some(c) = &r.linearizability {
        let _ = writeln!(out, "model      {}", c.model);
        let mut ops = format!("{}", c.ops);
        if r.failed > 0 {
            ops.push_str(&format!("; {} failed calls left out", r.failed));
        }
        if !r.skipped.is_empty() {
            let s: Vec<String> = r.skipped.iter().map(|(f, n)| format!("{f} x{n}")).collect();
            ops.push_str(&format!("; not in the model, skipped: {}", s.join(", ")));
        }
        let _ = writeln!(out, "operations {ops}");
        let _ = writeln!(
            out,
            "parts      {} ({} search steps)",
            c.parts.len(),
            c.steps
        );
        let verdict = match c.verdict {
            Verdict::Linearizable => "linearizable",
            Verdict::NotLinearizable => "NOT linearizable",
            Verdict::Unknown => "unknown (the budget ran out; raise --steps or --time-limit)",
        };
        let _ = writeln!(out, "verdict    {verdict}");
    } else {
        let verdict = if r.violations.is_empty() {
            "every invariant held"
        } else {
            "VIOLATED"
        };
        let _ = writeln!(out, "verdict    {verdict}");
    }
    for v in &r.violations {
        let _ = writeln!(out, "  {}: {} (line {})", v.rule, v.message, line_of(r, v));
    }
    if !r.warnings.is_empty() {
        let _ = writeln!(out, "warnings   {}", r.warnings.len());
        for v in r.warnings.iter().take(20) {
            let _ = writeln!(out, "  {}: {}", v.rule, v.message);
        }
    }
    let _ = writeln!(out, "time       {:.3} s", r.seconds);
    out
}

/// The line a violation points at: records are 0-based in a tenure history, lines otherwise.
fn line_of(r: &CheckReport, v: &Violation) -> String {
    let lines: Vec<String> = v
        .records
        .iter()
        .map(|&i| if r.format == "tenure" { i + 1 } else { i }.to_string())
        .collect();
    lines.join(", ")
}
