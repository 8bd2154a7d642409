//! A [`StoreClient`] over TCP: every seed family, from any tokio program, against a real
//! cluster of agents.
//!
//! `open("tenure://127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003?cluster=NAME")` gives a
//! [`TcpClient`]. It keeps one connection per agent (made when first needed, remade after a
//! failure), and routes as the seed's driver does: ask the agent believed to lead and follow
//! "not leader, try X" redirects, or (`&routing=ask_all`, and [`StoreClient::broadcast`]) ask
//! every agent at once and take the first normal answer. A write whose answer never comes is
//! `Indeterminate`, never a failure. Every request loop is bounded in attempts and time.

use crate::clock::RealClock;
use crate::tls::{Security, Tls};
use crate::wire::{self, Wire};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenure_core::agent::{Request, Response};
use tenure_core::client::{HealthError, LeaseInfo};
use tenure_core::store::{Node, ReadResult};
use tenure_core::{
    ClientError, Clock, Command, Event, Key, LeaseId, Outcome, Revision, StoreClient,
};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// Why a `tenure://` address cannot be opened.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("{url:?}: {why} (expected tenure://host:port,host:port,...?tls=DIR|plaintext[&cluster=NAME][&routing=redirect|ask_all])")]
    BadUrl { url: String, why: String },
}

/// How a client routes, and how long it waits.
#[derive(Clone, Copy, Debug)]
pub struct ClientOptions {
    pub ask_all: bool,
    /// How long to wait for one agent's answer.
    pub request_timeout: Duration,
    /// How many agents to try before giving up.
    pub max_attempts: usize,
    /// Pause before retrying when no leader is known.
    pub retry_pause: Duration,
    /// Poll period of `wait_events`.
    pub watch_poll: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            ask_all: false,
            request_timeout: Duration::from_millis(1000),
            max_attempts: 40,
            retry_pause: Duration::from_millis(50),
            watch_poll: Duration::from_millis(10),
        }
    }
}

/// Opens a `tenure://` address (see the module's doc). Must be called inside a tokio runtime.
pub fn open(url: &str) -> Result<TcpClient, OpenError> {
    let bad = |why: String| OpenError::BadUrl {
        url: url.to_string(),
        why,
    };
    let rest = url
        .strip_prefix("tenure://")
        .ok_or_else(|| bad("the scheme must be tenure://".into()))?;
    let (hosts, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut agents = Vec::new();
    for h in hosts.split(',') {
        let a: SocketAddr = h.parse().map_err(|_| {
            bad(format!(
                "{h:?} is not an address host:port (an IP address and a port)"
            ))
        })?;
        if agents.contains(&a) {
            return Err(bad(format!("{a} is listed twice")));
        }
        agents.push(a);
    }
    let mut cluster = "tenure".to_string();
    let mut options = ClientOptions::default();
    let mut security = None;
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        match kv.split_once('=') {
            Some(("cluster", c)) if !c.is_empty() => cluster = c.to_string(),
            None if kv == "plaintext" => security = Some(Security::Plaintext),
            Some(("tls", dir)) if !dir.is_empty() => {
                let t = Tls::from_dir(std::path::Path::new(dir), "client")
                    .map_err(|e| bad(format!("tls: {e}")))?;
                security = Some(Security::Tls(t));
            }
            Some(("routing", "redirect")) => options.ask_all = false,
            Some(("routing", "ask_all")) => options.ask_all = true,
            _ => return Err(bad(format!("unknown or malformed option {kv:?}"))),
        }
    }
    let security = security.ok_or_else(|| {
        bad("say how to connect: tls=DIR (its ca.pem, client.pem, client.key) or plaintext".into())
    })?;
    Ok(TcpClient::new(agents, &cluster, options).with_security(security))
}

/// A connection to one agent: requests go out through the writer, answers come back to the
/// waiter registered under their id.
struct Conn {
    tx: mpsc::Sender<Wire>,
    waiting: Arc<Mutex<BTreeMap<u64, oneshot::Sender<Response>>>>,
    dead: Arc<std::sync::atomic::AtomicBool>,
}

struct Inner {
    security: Security,
    agents: Vec<SocketAddr>,
    cluster: String,
    options: ClientOptions,
    clock: RealClock,
    conns: tokio::sync::Mutex<Vec<Option<Arc<Conn>>>>,
    state: Mutex<(u64, usize)>,
}

/// A client of a real cluster.
#[derive(Clone)]
pub struct TcpClient {
    inner: Arc<Inner>,
    ask_all: bool,
}

impl TcpClient {
    /// A client of the agents at `agents` (agent 1 first) of `cluster`.
    pub fn new(agents: Vec<SocketAddr>, cluster: &str, options: ClientOptions) -> TcpClient {
        let n = agents.len();
        TcpClient {
            ask_all: options.ask_all,
            inner: Arc::new(Inner {
                security: Security::Plaintext,
                agents,
                cluster: cluster.to_string(),
                options,
                clock: RealClock::new(),
                conns: tokio::sync::Mutex::new(vec![None; n]),
                state: Mutex::new((0, 0)),
            }),
        }
    }

    /// The same client over mutual TLS (`Security::Tls`), or plaintext.
    pub fn with_security(self, security: Security) -> TcpClient {
        let inner = Inner {
            security,
            agents: self.inner.agents.clone(),
            cluster: self.inner.cluster.clone(),
            options: self.inner.options,
            clock: self.inner.clock.clone(),
            conns: tokio::sync::Mutex::new(vec![None; self.inner.agents.len()]),
            state: Mutex::new((0, 0)),
        };
        TcpClient {
            inner: Arc::new(inner),
            ask_all: self.ask_all,
        }
    }

    async fn conn(&self, to: usize) -> Option<Arc<Conn>> {
        let mut conns = self.inner.conns.lock().await;
        if let Some(c) = &conns[to] {
            if !c.dead.load(std::sync::atomic::Ordering::SeqCst) {
                return Some(c.clone());
            }
        }
        let addr = self.inner.agents[to];
        let stream =
            tokio::time::timeout(self.inner.options.request_timeout, TcpStream::connect(addr))
                .await
                .ok()?
                .ok()?;
        let _ = stream.set_nodelay(true);
        let stream = match self.inner.security.connect(stream).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(target: "tenure", "TLS with agent {addr}: {e}");
                return None;
            }
        };
        let (mut r, mut w) = tokio::io::split(stream);
        let hello = Wire::Hello {
            cluster: self.inner.cluster.clone(),
            agent: None,
        };
        wire::write(&mut w, &hello).await.ok()?;
        let (tx, mut rx) = mpsc::channel::<Wire>(1024);
        let waiting: Arc<Mutex<BTreeMap<u64, oneshot::Sender<Response>>>> = Arc::default();
        let dead = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (d1, d2) = (dead.clone(), dead.clone());
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if wire::write(&mut w, &m).await.is_err() {
                    break;
                }
            }
            d1.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let wt = waiting.clone();
        tokio::spawn(async move {
            loop {
                match wire::read(&mut r).await {
                    Ok(Some(Wire::Response { id, response })) => {
                        if let Some(tx) = wt.lock().unwrap().remove(&id) {
                            let _ = tx.send(response);
                        }
                    }
                    Ok(Some(Wire::Refused(why))) => {
                        tracing::warn!(target: "tenure", "agent {addr} refused the connection: {why}");
                        break;
                    }
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
            d2.store(true, std::sync::atomic::Ordering::SeqCst);
            // Answers that will never come: their waiters see the channel close.
            wt.lock().unwrap().clear();
        });
        let c = Arc::new(Conn { tx, waiting, dead });
        conns[to] = Some(c.clone());
        Some(c)
    }

    /// Asks agent `agent` (from 1) alone, without redirects; `None` if it does not answer in
    /// time.
    pub async fn ask_agent(&self, agent: u64, request: Request) -> Option<Response> {
        let to = usize::try_from(agent).ok()?.checked_sub(1)?;
        if to >= self.inner.agents.len() {
            return None;
        }
        self.send_and_wait(to, request).await
    }

    /// Change notifications sent to the callback address `url` (registered with the agency
    /// API's `register_change_callback`), pulled from the leader in order, as they come; the
    /// stream ends if the ones it needs next were dropped, so a gap is never silent. The pulling
    /// task ends when the receiver is dropped.
    pub fn callback_inbox(&self, url: &str) -> futures::channel::mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let (me, url) = (self.clone(), url.to_string());
        tokio::spawn(async move {
            let mut after = 0;
            loop {
                match me.call(Request::Callbacks(url.clone(), after)).await {
                    Ok(Response::Events(Ok(events))) => {
                        for e in events {
                            after = e.revision;
                            if tx.unbounded_send(e).is_err() {
                                return;
                            }
                        }
                    }
                    Ok(Response::Events(Err(_dropped))) => return,
                    _ => {}
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(me.inner.options.watch_poll).await;
            }
        });
        rx
    }

    /// The agents' addresses, agent 1 first.
    pub fn agents(&self) -> &[SocketAddr] {
        &self.inner.agents
    }

    /// Sends `request` to agent index `to` and waits up to the request timeout.
    async fn send_and_wait(&self, to: usize, request: Request) -> Option<Response> {
        let conn = self.conn(to).await?;
        let id = {
            let mut st = self.inner.state.lock().unwrap();
            st.0 += 1;
            st.0
        };
        let (tx, rx) = oneshot::channel();
        conn.waiting.lock().unwrap().insert(id, tx);
        if conn.tx.send(Wire::Request { id, request }).await.is_err() {
            conn.waiting.lock().unwrap().remove(&id);
            return None;
        }
        let answer = tokio::time::timeout(self.inner.options.request_timeout, rx).await;
        conn.waiting.lock().unwrap().remove(&id);
        answer.ok()?.ok()
    }

    /// Every agent at once: the first normal answer; `Ok(None)` if all redirected, `Err(())`
    /// if some did not answer.
    async fn ask_all_once(&self, request: &Request) -> Result<Option<Response>, ()> {
        let mut asks: futures::stream::FuturesUnordered<_> = (0..self.inner.agents.len())
            .map(|to| self.send_and_wait(to, request.clone()))
            .collect();
        let mut silent = false;
        while let Some(r) = futures::StreamExt::next(&mut asks).await {
            match r {
                Some(Response::NotLeader { .. } | Response::NotCommitted) => {}
                Some(r) => return Ok(Some(r)),
                None => silent = true,
            }
        }
        if silent {
            Err(())
        } else {
            Ok(None)
        }
    }

    async fn call(&self, request: Request) -> Result<Response, ClientError> {
        let o = self.inner.options;
        let is_write = matches!(request, Request::Submit(_));
        let n = self.inner.agents.len();
        if self.ask_all {
            for _ in 0..o.max_attempts {
                match self.ask_all_once(&request).await {
                    Ok(Some(r)) => return Ok(r),
                    Ok(None) => tokio::time::sleep(o.retry_pause).await,
                    Err(()) if is_write => {
                        return Err(ClientError::Indeterminate(format!(
                            "not every agent answered within {:?}",
                            o.request_timeout
                        )))
                    }
                    Err(()) => tokio::time::sleep(o.retry_pause).await,
                }
            }
            return Err(ClientError::Unavailable(format!(
                "no leader answered after {} rounds",
                o.max_attempts
            )));
        }
        for _ in 0..o.max_attempts {
            let to = self.inner.state.lock().unwrap().1;
            match self.send_and_wait(to, request.clone()).await {
                Some(Response::NotLeader { leader: Some(l) }) if (l as usize) <= n && l > 0 => {
                    self.inner.state.lock().unwrap().1 = l as usize - 1;
                }
                Some(Response::NotLeader { .. }) | Some(Response::NotCommitted) => {
                    self.inner.state.lock().unwrap().1 = (to + 1) % n;
                    tokio::time::sleep(o.retry_pause).await;
                }
                Some(r) => return Ok(r),
                None => {
                    self.inner.state.lock().unwrap().1 = (to + 1) % n;
                    if is_write {
                        return Err(ClientError::Indeterminate(format!(
                            "no answer from agent {} ({}) within {:?}",
                            to + 1,
                            self.inner.agents[to],
                            o.request_timeout
                        )));
                    }
                    tokio::time::sleep(o.retry_pause).await;
                }
            }
        }
        Err(ClientError::Unavailable(format!(
            "no leader reached after {} attempts",
            o.max_attempts
        )))
    }
}

fn unexpected(r: Response) -> ClientError {
    ClientError::Unavailable(format!("unexpected answer {r:?}"))
}

#[async_trait]
impl StoreClient for TcpClient {
    fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.shared()
    }

    async fn submit(&self, cmd: Command) -> Result<Outcome, ClientError> {
        match self.call(Request::Submit(cmd)).await? {
            Response::Applied(o) => Ok(o),
            r => Err(unexpected(r)),
        }
    }

    async fn read(&self, key: &Key) -> Result<ReadResult, ClientError> {
        match self.call(Request::Read(key.clone())).await? {
            Response::Read(r) => Ok(r),
            r => Err(unexpected(r)),
        }
    }

    async fn range(&self, start: &Key, end: &Key) -> Result<Vec<(Key, Node)>, ClientError> {
        match self
            .call(Request::Range(start.clone(), end.clone()))
            .await?
        {
            Response::Range(r) => Ok(r),
            r => Err(unexpected(r)),
        }
    }

    async fn wait_events(&self, key: &Key, after: Revision) -> Result<Vec<Event>, ClientError> {
        loop {
            match self.call(Request::Events(key.clone(), after)).await? {
                Response::Events(Ok(events)) if !events.is_empty() => return Ok(events),
                Response::Events(Ok(_)) => tokio::time::sleep(self.inner.options.watch_poll).await,
                Response::Events(Err(compacted)) => {
                    return Err(ClientError::Compacted { compacted })
                }
                r => return Err(unexpected(r)),
            }
        }
    }

    async fn lease(&self, id: LeaseId) -> Result<Option<LeaseInfo>, ClientError> {
        match self.call(Request::Lease(id)).await? {
            Response::Lease(l) => Ok(l),
            r => Err(unexpected(r)),
        }
    }

    async fn health(&self, allow_no_leader: bool) -> Result<Option<u64>, HealthError> {
        let mut answers = Vec::new();
        for agent in 1..=self.inner.agents.len() as u64 {
            answers.push((agent, self.ask_agent(agent, Request::Health).await));
        }
        tenure_core::client::judge_health(answers, allow_no_leader)
    }

    fn broadcast(&self) -> Option<Arc<dyn StoreClient>> {
        Some(Arc::new(TcpClient {
            inner: self.inner.clone(),
            ask_all: true,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_and_bad_ones_named() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let c = open("tenure://127.0.0.1:1,127.0.0.1:2?cluster=x&routing=ask_all&plaintext")
                .unwrap();
            assert_eq!(c.inner.agents.len(), 2);
            assert_eq!(c.inner.cluster, "x");
            assert!(c.ask_all);
            for (url, says) in [
                ("http://127.0.0.1:1", "scheme"),
                ("tenure://", "not an address"),
                ("tenure://localhost", "not an address"),
                ("tenure://127.0.0.1:1,127.0.0.1:1", "twice"),
                ("tenure://127.0.0.1:1?cluster=", "option"),
                ("tenure://127.0.0.1:1?routing=any", "option"),
                ("tenure://127.0.0.1:99999", "not an address"),
                ("tenure://127.0.0.1:1", "tls=DIR"),
                ("tenure://127.0.0.1:1?tls=/nonexistent-tenure-dir", "tls:"),
            ] {
                let e = open(url).err().unwrap_or_else(|| panic!("{url} opened"));
                assert!(e.to_string().contains(says), "{url}: {e}");
            }
        });
    }
}
