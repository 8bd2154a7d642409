//! One agent as a real service: the simulator's [`AgentCore`], driven by a tokio task.
//!
//! The loop sleeps until the core's [`AgentCore::poll_timeout`] or until an input arrives (a
//! peer's Raft message, a client's request), feeds it with the time, then carries out the
//! core's output in order: [`DataDir::persist`] (synced), messages to peers, answers to
//! clients. Peers are dialled by one task each, with back-off on failure and a bounded queue
//! (Raft tolerates a lost message; a full queue drops the newest). Clients connect to the
//! listener; each connection's answers go back through its own bounded queue.

use crate::clock::RealClock;
use crate::disk::{DataDir, DiskError};
use crate::tls::{Io, Security};
use crate::wire::{self, Wire};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tenure_core::agent::{AgentConfig, AgentCore, Request};
use tenure_core::raft::{Message, NodeId};
use tenure_core::Clock;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// How one agent runs.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// This agent's id, from 1.
    pub id: NodeId,
    /// The cluster's id: every agent and client of the cluster names it, and a data directory
    /// remembers it.
    pub cluster: String,
    /// Every agent's address, agent 1 first, this one's included.
    pub peers: Vec<SocketAddr>,
    /// The data directory.
    pub data: PathBuf,
    pub config: AgentConfig,
    /// Local time between Raft ticks.
    pub tick: Duration,
    /// Mutual TLS with peers and clients, or plaintext (said at start).
    pub security: Security,
}

impl AgentOptions {
    /// Checks the options, naming the first problem.
    pub fn validate(&self) -> Result<(), StartError> {
        let bad = |m: String| Err(StartError::BadOptions(m));
        if self.peers.is_empty() {
            return bad("peers: give every agent's address, this one's included".into());
        }
        if self.id == 0 || self.id as usize > self.peers.len() {
            return bad(format!(
                "id {}: the peer list has {} agents, so the id is 1 to {}",
                self.id,
                self.peers.len(),
                self.peers.len()
            ));
        }
        for (i, a) in self.peers.iter().enumerate() {
            if self.peers[..i].contains(a) {
                return bad(format!("peers: {a} is listed twice"));
            }
        }
        if self.cluster.is_empty()
            || !self
                .cluster
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return bad(format!(
                "cluster {:?}: letters, digits, '-', '_' and '.' only, not empty",
                self.cluster
            ));
        }
        if self.tick.is_zero() {
            return bad("tick: must be more than 0".into());
        }
        Ok(())
    }
}

/// Why an agent did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("bad options: {0}")]
    BadOptions(String),
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Restore(String),
}

/// A running agent.
pub struct AgentHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl AgentHandle {
    /// Stops cleanly: the loop ends after the output in hand is persisted and sent.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(main) = self.tasks.first_mut() {
            let _ = main.await;
        }
        for t in &self.tasks {
            t.abort();
        }
    }

    /// Ends every task of the agent at once, as a crash would: nothing more is written or
    /// sent (what was synced stays).
    pub fn kill(self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

enum Input {
    Raft(Message),
    Request {
        conn: u64,
        id: u64,
        request: Request,
    },
    Client(u64, mpsc::Sender<Wire>),
    Gone(u64),
}

/// Binds the agent's own address from `opts.peers` and starts it.
pub async fn start_agent(opts: AgentOptions) -> Result<AgentHandle, StartError> {
    opts.validate()?;
    let addr = opts.peers[opts.id as usize - 1];
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    start_agent_on(opts, listener).await
}

/// Starts the agent on a listener already bound (tests bind port 0 first to learn the
/// addresses).
pub async fn start_agent_on(
    opts: AgentOptions,
    listener: TcpListener,
) -> Result<AgentHandle, StartError> {
    opts.validate()?;
    let (disk, rec) = DataDir::open(&opts.data, &opts.cluster, opts.id)?;
    let peers: Vec<NodeId> = (1..=opts.peers.len() as NodeId).collect();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ opts.id;
    let core = AgentCore::restore(
        opts.id,
        &peers,
        opts.config,
        seed,
        rec.hard_state,
        rec.snapshot,
        rec.entries,
    )
    .map_err(StartError::Restore)?
    .with_tick_period(opts.tick);
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: opts.peers[opts.id as usize - 1],
        source,
    })?;
    let (inputs_tx, inputs) = mpsc::channel(4096);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut links = Vec::new();
    let mut tasks = Vec::new();
    for (i, peer) in opts.peers.iter().enumerate() {
        if i as NodeId + 1 == opts.id {
            links.push(None);
            continue;
        }
        let (tx, rx) = mpsc::channel(1024);
        links.push(Some(tx));
        tasks.push(tokio::spawn(peer_link(
            *peer,
            opts.cluster.clone(),
            opts.security.clone(),
            opts.id,
            rx,
        )));
    }
    tasks.insert(
        0,
        tokio::spawn(run(core, disk, inputs, links, stop_rx, opts.id)),
    );
    if matches!(opts.security, Security::Plaintext) {
        tracing::warn!(target: "tenure", "agent {}: plaintext, as asked: no TLS between agents and clients", opts.id);
    }
    tasks.push(tokio::spawn(accept(
        listener,
        opts.cluster.clone(),
        opts.security.clone(),
        inputs_tx,
    )));
    tracing::info!(target: "tenure", "agent {} of cluster {} listening on {addr}", opts.id, opts.cluster);
    Ok(AgentHandle {
        addr,
        stop: stop_tx,
        tasks,
    })
}

/// The agent's loop: the one owner of its core and its disk.
async fn run(
    mut core: AgentCore,
    mut disk: DataDir,
    mut inputs: mpsc::Receiver<Input>,
    links: Vec<Option<mpsc::Sender<Message>>>,
    mut stop: watch::Receiver<bool>,
    me: NodeId,
) {
    let clock = RealClock::new();
    core.start(clock.now());
    let mut clients: BTreeMap<u64, mpsc::Sender<Wire>> = BTreeMap::new();
    let mut pending: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut next_req = 0u64;
    // Said when no leader is known for a while (a majority unreachable at start, or lost).
    let mut leaderless_since = Some(clock.now());
    let mut said_at = Duration::ZERO;
    loop {
        match (core.raft().leader(), leaderless_since) {
            (Some(_), _) => {
                leaderless_since = None;
                said_at = Duration::ZERO;
            }
            (None, None) => leaderless_since = Some(clock.now()),
            (None, Some(since)) => {
                let waited = clock.now().saturating_sub(since);
                if waited >= Duration::from_secs(5) && waited >= said_at + Duration::from_secs(5) {
                    said_at = waited;
                    tracing::warn!(
                        target: "tenure",
                        "agent {me}: no leader for {} s: waiting for a majority of the agents to be reachable",
                        waited.as_secs()
                    );
                }
            }
        }
        let wait = core.poll_timeout().saturating_sub(clock.now());
        let first = tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(wait) => None,
            i = inputs.recv() => match i {
                Some(i) => Some(i),
                None => break,
            },
        };
        core.handle_timeout(clock.now());
        let mut batch = first.into_iter().collect::<Vec<_>>();
        while batch.len() < 256 {
            match inputs.try_recv() {
                Ok(i) => batch.push(i),
                Err(_) => break,
            }
        }
        for input in batch {
            match input {
                Input::Raft(m) => core.step(m),
                Input::Request { conn, id, request } => {
                    next_req += 1;
                    pending.insert(next_req, (conn, id));
                    core.request(next_req, request, clock.now());
                }
                Input::Client(conn, tx) => {
                    clients.insert(conn, tx);
                }
                Input::Gone(conn) => {
                    clients.remove(&conn);
                }
            }
        }
        let out = core.output();
        let hs = core.raft().hard_state();
        // Synced before anything leaves: nothing acknowledged can be lost.
        if let Err(e) = disk.persist(&out, &hs) {
            tracing::error!(target: "tenure", "agent {me}: cannot persist, stopping: {e}");
            return;
        }
        for m in out.messages {
            if let Some(Some(link)) = links.get(m.to as usize - 1) {
                // A full queue (the peer is down or slow) drops the message: Raft resends.
                let _ = link.try_send(m);
            }
        }
        for (rid, response) in out.responses {
            if let Some((conn, id)) = pending.remove(&rid) {
                if let Some(tx) = clients.get(&conn) {
                    let _ = tx.try_send(Wire::Response { id, response });
                }
            }
        }
    }
    tracing::info!(target: "tenure", "agent {me} stopped");
}

/// Accepts connections: peers' Raft messages and clients' requests become inputs.
async fn accept(
    listener: TcpListener,
    cluster: String,
    security: Security,
    inputs: mpsc::Sender<Input>,
) {
    let mut next_conn = 0u64;
    loop {
        let Ok((stream, from)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        next_conn += 1;
        let (security, cluster, inputs) = (security.clone(), cluster.clone(), inputs.clone());
        let conn = next_conn;
        tokio::spawn(async move {
            match security.accept(stream).await {
                Ok(io) => connection(io, from, conn, cluster, inputs).await,
                Err(e) => tracing::warn!(target: "tenure", "refused {from}: {e}"),
            }
        });
    }
}

async fn connection(
    stream: Box<dyn Io>,
    from: SocketAddr,
    conn: u64,
    cluster: String,
    inputs: mpsc::Sender<Input>,
) {
    let (mut r, mut w) = tokio::io::split(stream);
    let agent = match wire::read(&mut r).await {
        Ok(Some(Wire::Hello { cluster: c, agent })) if c == cluster => agent,
        Ok(Some(Wire::Hello { cluster: c, .. })) => {
            let why = format!("this agent is of cluster {cluster:?}, not {c:?}");
            tracing::warn!(target: "tenure", "refused {from}: {why}");
            let _ = wire::write(&mut w, &Wire::Refused(why)).await;
            return;
        }
        Ok(other) => {
            tracing::warn!(target: "tenure", "refused {from}: the first frame was not a hello ({other:?})");
            return;
        }
        Err(e) => {
            tracing::warn!(target: "tenure", "refused {from}: {e}");
            let _ = wire::write(&mut w, &Wire::Refused(e.to_string())).await;
            return;
        }
    };
    if agent.is_some() {
        // A peer: Raft messages, one way.
        while let Ok(Some(msg)) = wire::read(&mut r).await {
            if let Wire::Raft(m) = msg {
                if inputs.send(Input::Raft(m)).await.is_err() {
                    return;
                }
            }
        }
        return;
    }
    let (tx, mut rx) = mpsc::channel::<Wire>(1024);
    if inputs.send(Input::Client(conn, tx)).await.is_err() {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if wire::write(&mut w, &msg).await.is_err() {
                return;
            }
        }
    });
    loop {
        match wire::read(&mut r).await {
            Ok(Some(Wire::Request { id, request })) => {
                if inputs
                    .send(Input::Request { conn, id, request })
                    .await
                    .is_err()
                {
                    break;
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(target: "tenure", "client {from}: {e}");
                break;
            }
        }
    }
    let _ = inputs.send(Input::Gone(conn)).await;
    writer.abort();
}

/// Dials `peer` and sends it this agent's Raft messages, reconnecting with back-off.
async fn peer_link(
    peer: SocketAddr,
    cluster: String,
    security: Security,
    me: NodeId,
    mut rx: mpsc::Receiver<Message>,
) {
    let mut backoff = Duration::from_millis(20);
    loop {
        let stream =
            match tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(peer)).await {
                Ok(Ok(s)) => s,
                _ => {
                    // Meanwhile the messages for it are stale: drop them.
                    while rx.try_recv().is_ok() {}
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
        let _ = stream.set_nodelay(true);
        let stream = match security.connect(stream).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(target: "tenure", "agent {me}: TLS with {peer}: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let (_r, mut w) = tokio::io::split(stream);
        let hello = Wire::Hello {
            cluster: cluster.clone(),
            agent: Some(me),
        };
        if wire::write(&mut w, &hello).await.is_err() {
            continue;
        }
        backoff = Duration::from_millis(20);
        while let Some(m) = rx.recv().await {
            if wire::write(&mut w, &Wire::Raft(m)).await.is_err() {
                break;
            }
        }
        if rx.is_closed() {
            return;
        }
    }
}
