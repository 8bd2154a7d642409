//! The one seam between the API families and a backend: [`StoreClient`].
//!
//! Every family (agency, kv, storage, lease, leadership) is plain client logic written once
//! against this trait. The in-process backend ([`crate::mem`]) implements it over a local
//! store; the simulated cluster implements it over the network, so the same family code and
//! the same tests run against both.

use crate::clock::Clock;
use crate::command::{Command, Event, LeaseId, Outcome, Rejection, Revision};
use crate::key::Key;
use crate::store::{Node, ReadResult};
use async_trait::async_trait;
use std::sync::Arc;

/// Why a backend could not carry out a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The request surely did not take effect (no leader reachable, refused before sending).
    #[error("agency unavailable: {0}")]
    Unavailable(String),
    /// The request may or may not have taken effect (sent, but no answer in time).
    #[error("outcome unknown: {0}")]
    Indeterminate(String),
    /// A watch asked for events that are no longer kept.
    #[error("events up to revision {compacted} were compacted")]
    Compacted { compacted: Revision },
    /// The handle was closed.
    #[error("the connection is closed")]
    Closed,
}

/// What `are_agents_healthy` found wrong (agents are numbered from 1).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HealthError {
    #[error("agent {agent} did not answer")]
    NoAnswer { agent: u64 },
    #[error("{0} agents answer as leader: {1:?}")]
    SeveralLeaders(usize, Vec<u64>),
    #[error("no agent answers as leader")]
    NoLeader,
    #[error("agent {agent} redirects to {to:?}, not to the leader {leader}")]
    WrongRedirect {
        agent: u64,
        to: Option<u64>,
        leader: u64,
    },
}

/// The agency's `AreAgentsHealthy` verdict on each agent's answer to `Request::Health`,
/// agent 1 first (`None`: no answer): exactly one leads and every other redirects to it
/// (or, with `allow_no_leader`, none leads and none names a leader). Returns the leader.
/// Every driver's client judges with this one function.
pub fn judge_health(
    answers: impl IntoIterator<Item = (u64, Option<crate::agent::Response>)>,
    allow_no_leader: bool,
) -> Result<Option<u64>, HealthError> {
    use crate::agent::Response;
    let mut leaders = Vec::new();
    let mut redirects = Vec::new();
    for (agent, answer) in answers {
        match answer {
            Some(Response::Leader { .. }) => leaders.push(agent),
            Some(Response::NotLeader { leader }) => redirects.push((agent, leader)),
            _ => return Err(HealthError::NoAnswer { agent }),
        }
    }
    match leaders.as_slice() {
        [leader] => match redirects.iter().find(|(_, to)| *to != Some(*leader)) {
            Some(&(agent, to)) => Err(HealthError::WrongRedirect {
                agent,
                to,
                leader: *leader,
            }),
            None => Ok(Some(*leader)),
        },
        [] if allow_no_leader && redirects.iter().all(|(_, to)| to.is_none()) => Ok(None),
        [] => Err(HealthError::NoLeader),
        many => Err(HealthError::SeveralLeaders(many.len(), many.to_vec())),
    }
}

/// A connection to an agency store, local or remote.
#[async_trait]
pub trait StoreClient: Send + Sync + 'static {
    /// The clock of the node this client runs on.
    fn clock(&self) -> Arc<dyn Clock>;
    /// Submits one command to the log and returns its outcome once applied.
    async fn submit(&self, cmd: Command) -> Result<Outcome, ClientError>;
    /// A linearizable read of the subtree at `key`.
    async fn read(&self, key: &Key) -> Result<ReadResult, ClientError>;
    /// A linearizable read of the stored nodes in `[start, end]`.
    async fn range(&self, start: &Key, end: &Key) -> Result<Vec<(Key, Node)>, ClientError>;
    /// Waits until at least one change to a key related to `key` has a revision greater than
    /// `after`, then returns all such changes so far, in order, with no gap.
    async fn wait_events(&self, key: &Key, after: Revision) -> Result<Vec<Event>, ClientError>;
    /// A linearizable read of a lease: `None` if it does not exist.
    async fn lease(&self, id: LeaseId) -> Result<Option<LeaseInfo>, ClientError>;
    /// The agency's `AreAgentsHealthy`: asks every agent, without redirects, whether it
    /// leads; healthy when exactly one does and every other redirects to it (or, with
    /// `allow_no_leader`, when none does and none names a leader). Returns the leader.
    /// The default is an in-process store's: one agent, always leading.
    async fn health(&self, _allow_no_leader: bool) -> Result<Option<u64>, HealthError> {
        Ok(Some(1))
    }
    /// The agency's broadcast connection (`NewAgencyConnection`): the same agents, every
    /// request sent to all of them at once, the first normal answer taken (only a leader
    /// gives one). `None` when this client already reaches a single agent directly.
    fn broadcast(&self) -> Option<Arc<dyn StoreClient>> {
        None
    }
}

/// What a client can learn of a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeaseInfo {
    pub id: LeaseId,
    pub ttl_ms: u64,
    /// Agency time left before the lease ends, at the read.
    pub remaining_ms: u64,
    /// The revision of the grant: the lease's fencing token.
    pub granted_revision: Revision,
}

/// Grants a lease of `ttl_ms`; returns its id and the revision of the grant.
pub async fn grant_lease(
    client: &dyn StoreClient,
    ttl_ms: u64,
) -> Result<Result<(LeaseId, Revision), Rejection>, ClientError> {
    match client.submit(Command::LeaseGrant { ttl_ms }).await? {
        Outcome::LeaseGranted { id, revision, .. } => Ok(Ok((id, revision))),
        Outcome::Rejected(r) => Ok(Err(r)),
        other => Err(ClientError::Unavailable(format!(
            "unexpected answer to a lease grant: {other:?}"
        ))),
    }
}

/// Keeps lease `id` alive every `ttl / 3` for as long as `owner` lives and `stop` is unset.
/// Ends when the lease is gone (expired or revoked), calling `on_lost`.
pub fn spawn_keep_alive(
    client: Arc<dyn StoreClient>,
    id: LeaseId,
    ttl: std::time::Duration,
    owner: std::sync::Weak<()>,
    on_lost: Box<dyn FnOnce() + Send>,
) {
    let clock = client.clock();
    let period = (ttl / 3).max(std::time::Duration::from_millis(1));
    clock.clone().spawn(Box::pin(async move {
        loop {
            let late = crate::buggify::delay(crate::buggify::LATE_RENEWAL).unwrap_or_default();
            clock.sleep(period + late).await;
            if owner.upgrade().is_none() {
                return;
            }
            // An unknown outcome or no leader: try again next period.
            if let Ok(Outcome::Rejected(Rejection::LeaseNotFound(_))) =
                client.submit(Command::LeaseKeepAlive { id }).await
            {
                on_lost();
                return;
            }
        }
    }));
}
