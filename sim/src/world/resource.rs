//! [`Resource`]: a world's fenced resource as a process sees it.

use super::context::{Context, RecordError};
use crate::actor;
use crate::net::Socket;
use crate::resource::ResourceMsg;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A fenced resource as a process sees it: writes carry a fencing token, and the resource
/// refuses a token lower than the highest it has accepted (S10 checks it did).
pub struct Resource {
    pub(crate) ctx: Context,
    pub(crate) name: String,
    pub(crate) addr: SocketAddr,
    pub(crate) writes: Arc<AtomicU64>,
    /// Its own socket, for the answers.
    pub(crate) sock: Socket,
}

impl Resource {
    /// Sends a write under `token` (with `value`, if any) and does not wait: recorded as the
    /// operation `fenced_write` on the resource, done when sent (the resource's decision is
    /// in the history as it makes it).
    pub async fn send(&self, token: u64, value: Option<Value>) -> Result<(), RecordError> {
        let c = &self.ctx.0;
        let id = self.writes.fetch_add(1, Ordering::Relaxed);
        let w = ResourceMsg::Write {
            process: c.id,
            token,
            id,
            value,
        };
        let sock = &self.sock;
        self.ctx
            .call(
                "fenced_write",
                &self.name,
                serde_json::json!({ "token": token }),
                async {
                    actor::send(sock, &c.rec, &c.name, self.addr, w);
                    Ok::<_, tenure_core::agency::AgencyError>(Value::Null)
                },
            )
            .await
            .map(drop)
    }

    /// Writes `value` under `token`, recorded as the operation `fenced_write` on the
    /// resource; waits up to `wait` of local time for the answer: `Some(accepted)`, or
    /// `None` if none came (the write may still land).
    pub async fn write(&self, token: u64, value: Value, wait: Duration) -> Option<bool> {
        let sock = &self.sock;
        let id = self.writes.fetch_add(1, Ordering::Relaxed);
        let call = self
            .ctx
            .invoke(
                "fenced_write",
                &self.name,
                serde_json::json!({ "token": token }),
            )
            .ok();
        let c = &self.ctx.0;
        let w = ResourceMsg::Write {
            process: c.id,
            token,
            id,
            value: Some(value),
        };
        actor::send(sock, &c.rec, &c.name, self.addr, w);
        let answer = tenure_core::clock::timeout(&*self.ctx.clock(), wait, async {
            loop {
                let d = sock.recv().await?;
                if let Some(ResourceMsg::Ack {
                    id: got, accepted, ..
                }) = actor::receive::<ResourceMsg>(&c.rec, &c.name, d)
                {
                    if got == id {
                        return Some(accepted);
                    }
                }
            }
        })
        .await
        .flatten();
        if let Some(call) = call {
            match answer {
                Some(true) => call.ok(Value::Bool(true)),
                Some(false) => call.fail(serde_json::json!("refused: a higher token was seen")),
                None => call.info(Value::Null),
            }
        }
        answer
    }
}
