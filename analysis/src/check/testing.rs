//! Records for the checkers' tests.

#![allow(dead_code)]

use super::*;
use crate::history::{Completion, Event, History, Record};
pub use serde_json::json;
use tenure_core::raft::{Index, NodeId, Term};

pub fn rec(t_us: u64, node: &str, event: Event) -> Record {
    Record {
        t_us,
        node: node.into(),
        event,
    }
}

pub fn leader(agent: NodeId, term: Term, last_index: Index) -> Event {
    Event::Role {
        agent,
        role: "leader".into(),
        term,
        leader: Some(agent),
        last_index,
        last_term: term,
    }
}

pub fn apply(agent: NodeId, index: Index, term: Term, hash: &str) -> Event {
    Event::Apply {
        agent,
        index,
        term,
        hash: hash.into(),
    }
}

pub fn hard(agent: NodeId, term: Term, vote: Option<NodeId>) -> Event {
    Event::HardState { agent, term, vote }
}

pub fn rules(h: &History) -> Vec<String> {
    all(h).into_iter().map(|v| v.rule.name()).collect()
}

pub fn invoke(op: u64, f: &str, key: &str, value: serde_json::Value) -> Event {
    Event::Invoke {
        process: 1,
        op,
        f: f.into(),
        key: key.into(),
        value,
        local_us: 0,
    }
}

pub fn complete(op: u64, result: Completion, value: serde_json::Value) -> Event {
    Event::Complete {
        process: 1,
        op,
        result,
        value,
        local_us: 0,
    }
}

/// Records of one operation of `process`: its call at `t` and its completion at `t + 1`.
pub fn op_at(t: u64, process: u64, op: u64, f: &str, out: serde_json::Value) -> [Record; 2] {
    op_on("/lease/svc", t, process, op, f, out)
}

pub fn op_on(
    key: &str,
    t: u64,
    process: u64,
    op: u64,
    f: &str,
    out: serde_json::Value,
) -> [Record; 2] {
    let node = format!("leaser-{process}");
    [
        rec(
            t,
            &node,
            Event::Invoke {
                process,
                op,
                f: f.into(),
                key: key.into(),
                value: json!(null),
                local_us: 0,
            },
        ),
        rec(
            t + 1,
            &node,
            Event::Complete {
                process,
                op,
                result: Completion::Ok,
                value: out,
                local_us: 0,
            },
        ),
    ]
}

pub fn expire_at(t: u64, revision: u64) -> Record {
    expire_of("/lease/svc", t, revision)
}

pub fn expire_of(key: &str, t: u64, revision: u64) -> Record {
    rec(
        t,
        "agent-1",
        Event::Expire {
            agent: 1,
            key: key.into(),
            revision,
        },
    )
}

pub fn belief(t: u64, process: u64, token: u64, until: Option<u64>) -> Record {
    rec(
        t,
        &format!("client-{process}"),
        Event::Belief {
            process,
            resource: "lock:/l".into(),
            token,
            // The holders' clocks read true time here.
            until_local_us: until,
            until_us: until,
        },
    )
}

pub fn expire(t: u64, revision: u64) -> Record {
    rec(
        t,
        "agent-1",
        Event::Expire {
            agent: 1,
            key: "/l".into(),
            revision,
        },
    )
}

pub fn fenced(t: u64, process: u64, token: u64, accepted: bool) -> Record {
    rec(
        t,
        "resource",
        Event::Fenced {
            process,
            resource: "lock:/l".into(),
            token,
            accepted,
            highest: token,
            value: None,
        },
    )
}

pub fn names(v: Vec<Violation>) -> Vec<String> {
    v.into_iter().map(|v| v.rule.name()).collect()
}

/// Process 1 holds token 5 over [10, 100), renews to 150, lets go at 120; the key expires
/// at 200; process 2 gets token 9 at 260 (after a 50 us lock-delay) until 400.
pub fn holders() -> Vec<Record> {
    vec![
        belief(10, 1, 5, Some(100)),
        fenced(20, 1, 5, true),
        belief(50, 1, 5, Some(150)),
        belief(120, 1, 5, None),
        expire(200, 7),
        belief(260, 2, 9, Some(400)),
        fenced(270, 2, 9, true),
        fenced(280, 1, 5, false),
    ]
}
