//! Actors: the shape of every simulated process. An [`Actor`] reacts to three events (start,
//! a message, its timer) by changing its state and filling a [`Ctx`]: messages to send,
//! whether what it wrote to its disk must be durable before they leave, and when it next
//! wants its timer. [`run_actor`] is the runtime that drives one actor on its madsim node:
//! it receives from the network ([`crate::net`]), keeps the timer on the node's own (possibly
//! skewed) clock, syncs the node's `SimDisk` (waiting `fsync` first when something durable was
//! written, so a kill in that window loses or tears it), then sends, counting and (on request)
//! recording every envelope in the run's history.
//!
//! The agent (`cluster::Agent`) is the first actor; workloads, lease managers and fenced
//! resources are written the same way.

use crate::clock::SkewedClock;
use crate::disk::SimDisk;
use crate::history::{Event as HistEvent, Recorder};
use crate::net::Payload;
pub use crate::net::{Datagram, Socket};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenure_core::buggify;
use tenure_core::clock::Clock;

/// The most queued messages the runtime handles behind one disk sync.
const GROUP_COMMIT: usize = 256;

/// A message in its serde encoding (runs with `encode_messages`).
struct Encoded(Vec<u8>);

/// A message type actors exchange: serde data with a one-line summary for the history.
///
/// Messages cross the simulated network as values, moved, not copied or encoded: the network
/// carries any `Send + Sync` value, and every node lives in one process. A run with
/// `encode_messages` sends each one through its serde encoding instead, as a real network
/// would; the tests check that both give the same history, byte for byte.
pub trait Wire: Serialize + DeserializeOwned + Send + Sync + 'static {
    fn summary(&self) -> String;
}

/// What an actor asks of the runtime while handling one event.
pub struct Ctx<M> {
    now: Duration,
    timer: Option<Duration>,
    durable: bool,
    /// Time the sync takes beyond the disk's usual (a fault point's slow write).
    slow_sync: Duration,
    out: Vec<(SocketAddr, M)>,
    sender: Arc<Sender<M>>,
}

/// Sends messages from tasks an actor spawns (an answer that needs `await`s first). What it
/// sends does not wait for the actor's disk.
pub struct Sender<M> {
    sock: Socket,
    rec: Recorder,
    name: String,
    _m: std::marker::PhantomData<fn(M)>,
}

impl<M> Clone for Sender<M> {
    fn clone(&self) -> Self {
        Sender {
            sock: self.sock.clone(),
            rec: self.rec.clone(),
            name: self.name.clone(),
            _m: std::marker::PhantomData,
        }
    }
}

impl<M: Wire> Sender<M> {
    /// Sends `m` to `to` now.
    pub fn send(&self, to: SocketAddr, m: M) {
        send(&self.sock, &self.rec, &self.name, to, m);
    }
}

impl<M> Ctx<M> {
    /// The node's local clock at the event.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Sends `msg` to `to` once the handler returns (after the disk is synced).
    pub fn send(&mut self, to: SocketAddr, msg: M) {
        self.out.push((to, msg));
    }

    /// Asks for the timer at local time `at` (replacing any earlier request).
    pub fn set_timer(&mut self, at: Duration) {
        self.timer = Some(at);
    }

    /// A sender for tasks the handler spawns (on this node, so they die with it).
    pub fn sender(&self) -> Sender<M> {
        Sender::clone(&self.sender)
    }

    /// What the handler wrote to disk must be durable before its messages leave: the runtime
    /// waits the disk's sync time, syncs, then sends.
    pub fn need_durable(&mut self) {
        self.durable = true;
    }

    /// This event's sync takes `extra` longer (a fault point: a large write, a slow disk).
    pub fn slow_sync(&mut self, extra: Duration) {
        self.slow_sync += extra;
    }
}

/// A simulated process.
pub trait Actor: 'static {
    type Msg: Wire;

    /// The node is up (first start or restart).
    fn start(&mut self, ctx: &mut Ctx<Self::Msg>);

    /// A message arrived from `from`.
    fn message(&mut self, from: SocketAddr, msg: Self::Msg, ctx: &mut Ctx<Self::Msg>);

    /// The timer set with [`Ctx::set_timer`] is due.
    fn timer(&mut self, ctx: &mut Ctx<Self::Msg>);

    /// Every event of a batch has been handed over (the start, or the first message or timer
    /// and whatever else had already arrived), and the disk is about to be synced: an actor
    /// that gathers its output across events (the agent's Raft sends one append per follower
    /// for a whole burst of proposals) writes and sends it here.
    fn batch_end(&mut self, _ctx: &mut Ctx<Self::Msg>) {}

    /// The disk was synced after an event: what was written is durable now (before any of the
    /// event's messages leave).
    fn synced(&mut self) {}
}

/// Sends a message now (the network drops it on a clogged or lossy link), counting it and
/// recording it when the run records messages.
pub fn send<M: Wire>(sock: &Socket, rec: &Recorder, from: &str, to: SocketAddr, m: M) {
    rec.count_sent();
    let payload: Payload = if rec.encodes() {
        Box::new(Encoded(serde_json::to_vec(&m).expect("messages serialize")))
    } else {
        Box::new(m)
    };
    let mut id = 0;
    if rec.messages() {
        id = rec.next_message_id();
        let summary = match payload.downcast_ref::<M>() {
            Some(m) => m.summary(),
            None => decode::<M>(&payload).map_or_else(String::new, |m| m.summary()),
        };
        rec.record(
            from,
            HistEvent::Message {
                from: from.to_string(),
                to: to.to_string(),
                delivered: false,
                summary,
                id,
            },
        );
    }
    sock.send_to(to, id, payload);
}

fn decode<M: Wire>(payload: &Payload) -> Option<M> {
    serde_json::from_slice(&payload.downcast_ref::<Encoded>()?.0).ok()
}

/// Takes the message out of a received datagram, counting and recording its delivery;
/// `None` if it is not a message of this type.
pub fn receive<M: Wire>(rec: &Recorder, me: &str, d: Datagram) -> Option<M> {
    let m: M = match d.payload.downcast::<M>() {
        Ok(m) => *m,
        Err(payload) => decode(&payload)?,
    };
    rec.count_delivered();
    if rec.messages() {
        rec.record(
            me,
            HistEvent::Message {
                from: d.from.to_string(),
                to: me.to_string(),
                delivered: true,
                summary: m.summary(),
                id: d.id,
            },
        );
    }
    Some(m)
}

/// Where and how an actor runs.
#[derive(Clone)]
pub struct ActorEnv {
    /// The node's name in the history (`agent-1`).
    pub name: String,
    pub addr: SocketAddr,
    pub clock: SkewedClock,
    /// The node's disk, synced after every event.
    pub disk: Option<Arc<Mutex<SimDisk>>>,
    /// How long a sync takes when something durable was written.
    pub fsync: Duration,
    pub rec: Recorder,
    /// An agent of the cluster: its stalls and syncs are fault points
    /// ([`tenure_core::buggify`]).
    pub agent: bool,
}

/// Drives `actor` on the current node until the node is killed.
pub async fn run_actor<A: Actor>(mut actor: A, env: ActorEnv) {
    use std::task::Poll;
    let sock = Socket::bind(env.addr).expect("an actor binds its address");
    let sender = Arc::new(Sender {
        sock: sock.clone(),
        rec: env.rec.clone(),
        name: env.name.clone(),
        _m: std::marker::PhantomData,
    });
    let mut timer: Option<Duration> = None;
    let mut due = std::collections::VecDeque::new();
    // The sleep for the timer (its local deadline, and whether its wake-up is registered):
    // kept across events while the deadline stands, so a burst of messages does not add a
    // madsim timer each.
    let mut wait: Option<(Duration, std::pin::Pin<Box<madsim::time::Sleep>>, bool)> = None;
    let mut first = true;
    loop {
        let mut ctx = Ctx {
            now: Duration::ZERO,
            timer: None,
            durable: false,
            slow_sync: Duration::ZERO,
            out: Vec::new(),
            sender: sender.clone(),
        };
        if first {
            first = false;
            ctx.now = env.clock.now();
            actor.start(&mut ctx);
        } else {
            let received = loop {
                let now = env.clock.now();
                // A due timer goes first: under a steady stream of messages the mailbox is
                // never empty, and a leader whose timer waited for a quiet moment stopped
                // sending heartbeats (found by the S17 health check).
                if timer.is_some_and(|at| now >= at) {
                    break None;
                }
                if let Some(at) = timer {
                    if wait.as_ref().is_none_or(|w| w.0 != at) {
                        let true_wait = env.clock.node_true_duration(at - now);
                        wait = Some((at, Box::pin(env.clock.true_sleep(true_wait)), false));
                    }
                }
                let got = std::future::poll_fn(|cx| {
                    if let Poll::Ready(d) = sock.poll_recv(cx) {
                        return Poll::Ready(Some(d));
                    }
                    let Some((_, sleep, registered)) = wait.as_mut().filter(|_| timer.is_some())
                    else {
                        return Poll::Pending;
                    };
                    if sleep.is_elapsed() {
                        return Poll::Ready(None);
                    }
                    if !*registered {
                        *registered = true;
                        if std::future::Future::poll(sleep.as_mut(), cx).is_ready() {
                            return Poll::Ready(None);
                        }
                    }
                    Poll::Pending
                })
                .await;
                match got {
                    Some(d) => break Some(d),
                    // The sleep ended: due by the node's clock now, unless the clock was
                    // slowed or set back meanwhile (then wait again).
                    None => wait = None,
                }
            };
            ctx.now = env.clock.now();
            match received {
                Some(Some(d)) => {
                    let from = d.from;
                    match receive(&env.rec, &env.name, d) {
                        Some(m) => actor.message(from, m, &mut ctx),
                        None => continue,
                    }
                }
                Some(None) => return,
                None => {
                    timer = None;
                    wait = None;
                    if let Some(stall) = env
                        .agent
                        .then(|| buggify::delay(buggify::STALL_ON_TICK))
                        .flatten()
                    {
                        // A stall: what arrives meanwhile waits; the tick acts after it.
                        env.clock.true_sleep(stall).await;
                        ctx.now = env.clock.now();
                    }
                    actor.timer(&mut ctx);
                }
            }
            // Group commit: handle what else is due before one sync, as a server batches a
            // burst of requests behind one fsync (one sync per message collapses under load).
            // No virtual time passes meanwhile: `ctx.now` stands.
            sock.take_due(GROUP_COMMIT, &mut due);
            for d in due.drain(..) {
                let from = d.from;
                if let Some(m) = receive(&env.rec, &env.name, d) {
                    actor.message(from, m, &mut ctx);
                }
            }
        }
        actor.batch_end(&mut ctx);
        if let Some(at) = ctx.timer {
            timer = Some(at);
        }
        if let Some(disk) = &env.disk {
            if ctx.durable && !env.fsync.is_zero() {
                // A kill while the sync is under way loses (part of) what was written; what
                // arrives meanwhile waits in the mailbox.
                let slow = env
                    .agent
                    .then(|| buggify::delay(buggify::SLOW_FSYNC))
                    .flatten()
                    .unwrap_or_default();
                env.clock.true_sleep(env.fsync + slow + ctx.slow_sync).await;
            }
            disk.lock().unwrap().sync_all();
            actor.synced();
        }
        for (to, m) in ctx.out {
            sender.send(to, m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::NodeClock;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize)]
    struct Ping(u64);

    impl Wire for Ping {
        fn summary(&self) -> String {
            format!("ping {}", self.0)
        }
    }

    /// Pings its peer every 100 ms of its own clock, writing the count to disk first.
    struct Pinger {
        peer: SocketAddr,
        disk: Arc<Mutex<SimDisk>>,
        sent: u64,
        synced: Arc<Mutex<u64>>,
    }

    impl Actor for Pinger {
        type Msg = Ping;
        fn start(&mut self, ctx: &mut Ctx<Ping>) {
            ctx.set_timer(ctx.now() + Duration::from_millis(100));
        }
        fn message(&mut self, _: SocketAddr, _: Ping, _: &mut Ctx<Ping>) {}
        fn timer(&mut self, ctx: &mut Ctx<Ping>) {
            self.sent += 1;
            self.disk
                .lock()
                .unwrap()
                .write_all("count", &self.sent.to_le_bytes());
            ctx.need_durable();
            ctx.send(self.peer, Ping(self.sent));
            ctx.set_timer(ctx.now() + Duration::from_millis(100));
        }
        fn synced(&mut self) {
            *self.synced.lock().unwrap() = self.sent;
        }
    }

    /// Counts what arrives.
    struct Counter(Arc<Mutex<Vec<u64>>>);

    impl Actor for Counter {
        type Msg = Ping;
        fn start(&mut self, _: &mut Ctx<Ping>) {}
        fn message(&mut self, _: SocketAddr, m: Ping, _: &mut Ctx<Ping>) {
            self.0.lock().unwrap().push(m.0);
        }
        fn timer(&mut self, _: &mut Ctx<Ping>) {}
    }

    #[test]
    fn actors_exchange_messages_on_their_own_clocks_after_syncing() {
        let (got, synced, disk_bytes, sent) = crate::run_seed(3, None, || async {
            let rec = Recorder::new(true);
            let handle = madsim::runtime::Handle::current();
            let (a, b): (SocketAddr, SocketAddr) =
                ("10.0.0.1:1".parse().unwrap(), "10.0.0.2:1".parse().unwrap());
            // The pinger's clock runs 10% fast: 100 local ms are ~91 true ms.
            let clock = Arc::new(Mutex::new(NodeClock::new(0, 0.1).unwrap()));
            let disk = Arc::new(Mutex::new(SimDisk::new()));
            let got = Arc::new(Mutex::new(Vec::new()));
            let synced = Arc::new(Mutex::new(0));
            let env = |name: &str, addr, clock| ActorEnv {
                name: name.into(),
                addr,
                clock,
                disk: Some(disk.clone()),
                fsync: Duration::from_millis(2),
                rec: rec.clone(),
                agent: false,
            };
            let counter_env = ActorEnv {
                disk: None,
                ..env(
                    "counter",
                    b,
                    SkewedClock::with_origin(
                        rec.origin(),
                        Arc::new(Mutex::new(NodeClock::new(0, 0.0).unwrap())),
                    ),
                )
            };
            let g = got.clone();
            handle
                .create_node()
                .name("counter")
                .ip(b.ip())
                .build()
                .spawn(run_actor(Counter(g), counter_env));
            let pinger = Pinger {
                peer: b,
                disk: disk.clone(),
                sent: 0,
                synced: synced.clone(),
            };
            let penv = env("pinger", a, SkewedClock::with_origin(rec.origin(), clock));
            handle
                .create_node()
                .name("pinger")
                .ip(a.ip())
                .build()
                .spawn(run_actor(pinger, penv));
            madsim::time::sleep(Duration::from_millis(1_000)).await;
            let bytes = disk.lock().unwrap().read("count").to_vec();
            let got = got.lock().unwrap().clone();
            let synced = *synced.lock().unwrap();
            (got, synced, bytes, rec.message_counts().0)
        })
        .unwrap();
        // ~1000 / 91 pings, in order, each synced before it left.
        assert!((10..=11).contains(&got.len()), "{got:?}");
        assert_eq!(got, (1..=got.len() as u64).collect::<Vec<_>>());
        assert!(synced >= *got.last().unwrap());
        assert_eq!(u64::from_le_bytes(disk_bytes.try_into().unwrap()), synced);
        assert!(sent >= got.len() as u64);
    }
}
