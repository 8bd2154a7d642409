//! The fenced resource's rules: S10 (no write accepted under a token older than one already
//! seen) and S11 (a holder acts only within its belief: a warning, as pauses make it happen
//! and fencing must make it harmless).

use super::*;
use crate::history::{Event, History};
use serde_json::Value;
use std::collections::BTreeMap;
use tenure_core::rule;

/// S10: a fenced resource never accepts a lower token after a higher one.
pub fn fencing(h: &History) -> Vec<Violation> {
    let mut highest: BTreeMap<&str, (u64, usize)> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, r) in h.records.iter().enumerate() {
        if let Event::Fenced {
            resource,
            token,
            accepted: true,
            process,
            ..
        } = &r.event
        {
            match highest.get(resource.as_str()) {
                Some(&(hi, j)) if *token < hi => out.push(Violation {
                    rule: rule::S10,
                    records: vec![j, i],
                    message: format!(
                        "{resource} accepted token {token} from process {process} ({}) after \
                         accepting token {hi} ({})",
                        at(r),
                        at(&h.records[j])
                    ),
                }),
                _ => {
                    highest.insert(resource, (*token, i));
                }
            }
        }
    }
    out
}

/// S11 (expected to break under pauses; fencing is the defence): every `fenced_write` a
/// process invokes happens inside its belief interval for the token it carries.
pub fn actions_within_belief(h: &History) -> Vec<Violation> {
    let beliefs = belief_intervals(h);
    let mut out = Vec::new();
    for (i, r) in h.records.iter().enumerate() {
        let Event::Invoke {
            process, f, value, ..
        } = &r.event
        else {
            continue;
        };
        if f != "fenced_write" {
            continue;
        }
        let Some(token) = value.get("token").and_then(Value::as_u64) else {
            continue;
        };
        let inside = beliefs.iter().any(|b| {
            b.process == *process && b.token == token && b.from_us <= r.t_us && r.t_us < b.until_us
        });
        if !inside {
            out.push(Violation {
                rule: rule::S11,
                records: vec![i],
                message: format!(
                    "process {process} wrote with token {token} at {} us, outside its belief \
                     in that grant (a pause between its check and its write?)",
                    r.t_us
                ),
            });
        }
    }
    out
}
