//! `FencedResource`: a downstream service guarded by fencing tokens. It accepts a write that
//! carries a token at least as high as the highest it has seen and rejects a lower one (a
//! holder that lost its lock while paused, writing late), recording every decision in the
//! history. It is an [`Actor`]; clients reach it with [`ResourceMsg::Write`].

use crate::actor::{Actor, Ctx, Wire};
use crate::history::{Event, Recorder};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The resource's messages.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ResourceMsg {
    /// Process `process`, believing it holds grant `token`, writes.
    Write {
        process: u64,
        token: u64,
        id: u64,
        /// What the write carries (a user's ledger entry); recorded with the decision.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<serde_json::Value>,
    },
    /// The answer to write `id`.
    Ack {
        id: u64,
        accepted: bool,
        highest: u64,
    },
}

impl Wire for ResourceMsg {
    fn summary(&self) -> String {
        match self {
            ResourceMsg::Write {
                process, token, id, ..
            } => {
                format!("write {id} from {process} token={token}")
            }
            ResourceMsg::Ack {
                id,
                accepted,
                highest,
            } => format!("ack {id} accepted={accepted} highest={highest}"),
        }
    }
}

/// The resource's state: the highest token it accepted.
pub struct FencedResource {
    name: String,
    node: String,
    highest: u64,
    rec: Recorder,
    /// Off only with the planted bug `resource-skips-token-check`.
    check_tokens: bool,
}

impl FencedResource {
    /// A resource named `name` (`lock:/locks/0`) on node `node`, recording into `rec`.
    pub fn new(name: &str, node: &str, rec: Recorder) -> FencedResource {
        FencedResource {
            name: name.to_string(),
            node: node.to_string(),
            highest: 0,
            rec,
            check_tokens: true,
        }
    }

    /// The planted bug `resource-skips-token-check`: every write is accepted.
    pub fn without_token_check(mut self) -> FencedResource {
        self.check_tokens = false;
        self
    }
}

impl Actor for FencedResource {
    type Msg = ResourceMsg;

    fn start(&mut self, _: &mut Ctx<ResourceMsg>) {}

    fn message(&mut self, from: SocketAddr, msg: ResourceMsg, ctx: &mut Ctx<ResourceMsg>) {
        let ResourceMsg::Write {
            process,
            token,
            id,
            value,
        } = msg
        else {
            return;
        };
        let accepted = token >= self.highest || !self.check_tokens;
        self.highest = self.highest.max(token);
        self.rec.record(
            &self.node,
            Event::Fenced {
                process,
                resource: self.name.clone(),
                token,
                accepted,
                highest: self.highest,
                value,
            },
        );
        ctx.send(
            from,
            ResourceMsg::Ack {
                id,
                accepted,
                highest: self.highest,
            },
        );
    }

    fn timer(&mut self, _: &mut Ctx<ResourceMsg>) {}
}
