//! The simulated network every actor, client and manager talks over: a madsim simulator
//! plugin (madsim's own extension point, the one its `NetSim` and `FsSim` use), on madsim's
//! virtual clock, random generator and node lifecycle.
//!
//! Why not madsim's `Endpoint`: every datagram there costs three timers (a hold of at least
//! 1 ms before it leaves, the link latency, a hold of at least 1 ms before the receiver gets
//! it), two wake-ups of the receiver, a task or a pending future per send, five SipHash map
//! lookups and, on every send, the destination formatted into a `String` for a virtual-server
//! lookup: about half of a run's wall time (BENCHMARKS.md, issue 8). Here a datagram is put in
//! the destination's mailbox at send time with the instant it is due; the mailbox is ordered
//! by that instant (then by sending order, so ties are deterministic) and its owner sleeps
//! until the earliest one. A send arms at most one timer (none when an earlier one is already
//! armed on that mailbox) and wakes nobody; the owner wakes once per distinct due instant and
//! takes everything due. Sending never waits.
//!
//! Faults, as madsim's network had them: a clogged directed link (between nodes) and packet
//! loss drop a datagram when it is sent; latency is drawn per datagram from a range (default
//! 1 - 10 ms one way, madsim's default, without the 1 ms holds its `Endpoint` added at each
//! end); a directed link can be slowed by an extra delay drawn per datagram. A
//! killed node's sockets close and what waited in them is gone; a datagram already under way
//! from it still arrives. A paused node's datagrams wait in its mailboxes. A datagram may be
//! taken up to 1 ms after it is due: madsim's timers wait at least 1 ms, so an owner that
//! wakes just before a datagram is due sleeps on to that floor.

use madsim::rand::{GlobalRng, RngCore};
use madsim::task::NodeId;
use madsim::time::{Duration, Instant};
use rustc_hash::{FxHashMap, FxHashSet};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// What travels: any value that may cross threads (the message itself, or its encoding).
pub type Payload = Box<dyn std::any::Any + Send + Sync>;

/// A datagram as received: the payload, its sender, and the message id the sender gave it
/// when the run records messages (0 otherwise), which pairs its delivery with its sending.
pub struct Datagram {
    pub payload: Payload,
    pub from: SocketAddr,
    pub id: u64,
}

pub use tenure_analysis::faults::DEFAULT_LATENCY_MS;

const DEFAULT_LATENCY: (Duration, Duration) = (
    Duration::from_millis(DEFAULT_LATENCY_MS.0),
    Duration::from_millis(DEFAULT_LATENCY_MS.1),
);

/// The network of one run (one madsim runtime).
pub struct Net {
    /// The run's time, read without going through `Instant::now()` (see
    /// [`crate::clock::VirtualNow`]).
    time: madsim::time::TimeHandle,
    state: Mutex<State>,
}

struct State {
    /// madsim's generator (the run's seed).
    rng: GlobalRng,
    /// Sending order, the tie-break between datagrams due at the same instant.
    seq: u64,
    loss: f64,
    latency: (Duration, Duration),
    /// Node of each address registered with [`Net::set_ip`], and back.
    node_ip: FxHashMap<NodeId, IpAddr>,
    ip_node: FxHashMap<IpAddr, NodeId>,
    sockets: FxHashMap<SocketAddr, Arc<Mailbox>>,
    /// Datagrams under way to an address nobody has bound (yet), by due instant.
    parked: FxHashMap<SocketAddr, BinaryHeap<Reverse<Entry>>>,
    clogged: FxHashSet<(NodeId, NodeId)>,
    /// Extra one-way delay of a directed link, `[min, max]` ms.
    delays: FxHashMap<(NodeId, NodeId), (u64, u64)>,
    stats: NetStats,
}

/// What the network did with the datagrams handed to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Taken by the network (not dropped at sending).
    pub sent: u64,
    /// Dropped at sending: clogged link or loss.
    pub dropped: u64,
    /// Taken, then due at an address nobody had bound by then (a node down or not yet up),
    /// counted when noticed: at the next send to, or bind of, that address, or a kill.
    pub undeliverable: u64,
}

struct Mailbox {
    node: NodeId,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Entry>>,
    /// The owner's waker, once it has waited.
    waker: Option<Waker>,
    /// Deadlines of the timers armed for this mailbox and not yet passed, ascending.
    armed: Vec<Instant>,
    closed: bool,
}

struct Entry {
    at: Instant,
    seq: u64,
    from: SocketAddr,
    id: u64,
    payload: Payload,
}

impl From<Entry> for Datagram {
    fn from(e: Entry) -> Datagram {
        Datagram {
            payload: e.payload,
            from: e.from,
            id: e.id,
        }
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl madsim::plugin::Simulator for Net {
    fn new(rand: &GlobalRng, time: &madsim::time::TimeHandle, _config: &madsim::Config) -> Self {
        Net {
            time: time.clone(),
            state: Mutex::new(State {
                rng: rand.clone(),
                seq: 0,
                loss: 0.0,
                latency: DEFAULT_LATENCY,
                node_ip: FxHashMap::default(),
                ip_node: FxHashMap::default(),
                sockets: FxHashMap::default(),
                parked: FxHashMap::default(),
                clogged: FxHashSet::default(),
                delays: FxHashMap::default(),
                stats: NetStats::default(),
            }),
        }
    }

    /// A killed node: its sockets close and what waited in them is dropped.
    fn reset_node(&self, id: NodeId) {
        let mut closed = Vec::new();
        self.state.lock().unwrap().sockets.retain(|_, m| {
            if m.node == id {
                closed.push(m.clone());
            }
            m.node != id
        });
        for m in closed {
            close(&self.state, &m);
        }
    }
}

impl Net {
    /// The network of the current run.
    pub fn current() -> Arc<Net> {
        madsim::plugin::simulator::<Net>()
    }

    /// Registers node `id`'s address (a socket bound there to an unspecified address takes
    /// it; links and clogs are between nodes).
    pub fn set_ip(&self, id: NodeId, ip: IpAddr) {
        let mut s = self.state.lock().unwrap();
        if let Some(old) = s.node_ip.insert(id, ip) {
            s.ip_node.remove(&old);
        }
        s.ip_node.insert(ip, id);
    }

    /// Drops every datagram `from -> to` sent from now on, until [`Net::unclog_link`].
    pub fn clog_link(&self, from: NodeId, to: NodeId) {
        self.state.lock().unwrap().clogged.insert((from, to));
    }

    pub fn unclog_link(&self, from: NodeId, to: NodeId) {
        self.state.lock().unwrap().clogged.remove(&(from, to));
    }

    /// The chance that a datagram is lost, in `[0, 1]`.
    pub fn set_loss(&self, rate: f64) {
        self.state.lock().unwrap().loss = rate.clamp(0.0, 1.0);
    }

    /// One-way latency drawn from `[min, max)` (exactly `min` when `max <= min`).
    pub fn set_latency(&self, min: Duration, max: Duration) {
        self.state.lock().unwrap().latency = (min, max);
    }

    /// Sets (or with `max_ms == 0` clears) an extra delay on the directed link `from -> to`,
    /// drawn per datagram from `[min_ms, max_ms]` on top of the latency.
    pub fn set_delay(&self, from: NodeId, to: NodeId, min_ms: u64, max_ms: u64) {
        let mut s = self.state.lock().unwrap();
        if max_ms == 0 {
            s.delays.remove(&(from, to));
        } else {
            s.delays.insert((from, to), (min_ms.min(max_ms), max_ms));
        }
    }

    /// Removes every extra link delay.
    pub fn clear_delays(&self) {
        self.state.lock().unwrap().delays.clear();
    }

    pub fn stats(&self) -> NetStats {
        self.state.lock().unwrap().stats
    }

    /// Binds `addr` on the current node (an unspecified IP takes the node's address, port 0 a
    /// free port). A node's address is the one registered with [`Net::set_ip`], or else the
    /// one its first bind names.
    pub fn bind(self: &Arc<Net>, addr: SocketAddr) -> std::io::Result<Socket> {
        use std::io::{Error, ErrorKind};
        let node = madsim::plugin::node();
        let mut s = self.state.lock().unwrap();
        let mut addr = addr;
        if addr.ip().is_unspecified() {
            let ip = s.node_ip.get(&node).copied().ok_or_else(|| {
                Error::new(ErrorKind::AddrNotAvailable, "this node has no address")
            })?;
            addr.set_ip(ip);
        }
        match s.ip_node.get(&addr.ip()) {
            Some(n) if *n == node => {}
            None if !s.node_ip.contains_key(&node) => {
                // The node's first bind names its address.
                s.node_ip.insert(node, addr.ip());
                s.ip_node.insert(addr.ip(), node);
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::AddrNotAvailable,
                    format!("{} is not this node's address", addr.ip()),
                ))
            }
        }
        if addr.port() == 0 {
            let port = (1..=u16::MAX)
                .find(|p| !s.sockets.contains_key(&SocketAddr::new(addr.ip(), *p)))
                .ok_or_else(|| Error::new(ErrorKind::AddrInUse, "no free port"))?;
            addr.set_port(port);
        }
        if s.sockets.contains_key(&addr) {
            return Err(Error::new(
                ErrorKind::AddrInUse,
                format!("{addr} is already bound"),
            ));
        }
        // What is under way to the address and not yet due arrives here.
        let mut queue = Queue::default();
        if let Some(parked) = s.parked.remove(&addr) {
            let now = self.time.now_instant();
            let before = parked.len();
            queue.heap = parked.into_iter().filter(|e| e.0.at >= now).collect();
            s.stats.undeliverable += (before - queue.heap.len()) as u64;
        }
        let mailbox = Arc::new(Mailbox {
            node,
            queue: Mutex::new(queue),
        });
        s.sockets.insert(addr, mailbox.clone());
        Ok(Socket(Arc::new(Bound {
            net: self.clone(),
            node,
            addr,
            mailbox,
        })))
    }

    /// Puts `payload` in `to`'s mailbox, due after the latency (and the link's extra delay),
    /// unless the link is clogged or the datagram is lost. When nobody is bound at `to` (its
    /// node is down, or has not bound yet: at the start of a run every node's first task
    /// races the others), the datagram waits for a bind until it is due, and is lost if none
    /// comes by then.
    fn send(&self, src: (NodeId, SocketAddr), to: SocketAddr, id: u64, payload: Payload) {
        let (mailbox, entry, now) = {
            let mut s = self.state.lock().unwrap();
            let mailbox = s.sockets.get(&to).cloned();
            let dst = match &mailbox {
                Some(m) => Some(m.node),
                None => s.ip_node.get(&to.ip()).copied(),
            };
            // Links are between nodes: an address no node has named yet has none.
            let link = dst.map(|d| (src.0, d));
            let lost = s.loss > 0.0 && (s.draw(1 << 53) as f64) < s.loss * (1u64 << 53) as f64;
            if lost || link.is_some_and(|l| s.clogged.contains(&l)) {
                s.stats.dropped += 1;
                return;
            }
            let (lo, hi) = s.latency;
            let mut delay = lo;
            if hi > lo {
                delay += Duration::from_nanos(s.draw((hi - lo).as_nanos() as u64));
            }
            if let Some(&(lo, hi)) = link.and_then(|l| s.delays.get(&l)) {
                delay += Duration::from_millis(lo + s.draw(hi - lo + 1));
            }
            s.seq += 1;
            s.stats.sent += 1;
            let now = self.time.now_instant();
            let entry = Entry {
                at: now + delay,
                seq: s.seq,
                from: src.1,
                id,
                payload,
            };
            let Some(mailbox) = mailbox else {
                let parked = s.parked.entry(to).or_default();
                let mut expired = 0;
                while parked.peek().is_some_and(|e| e.0.at < now) {
                    parked.pop();
                    expired += 1;
                }
                parked.push(Reverse(entry));
                s.stats.undeliverable += expired;
                return;
            };
            (mailbox, entry, now)
        };
        let at = entry.at;
        let mut q = mailbox.queue.lock().unwrap();
        if q.closed {
            return;
        }
        let q = &mut *q;
        q.heap.push(Reverse(entry));
        // The owner sleeps until its earliest armed deadline; arm one for this datagram if
        // none comes before it.
        if let Some(waker) = &q.waker {
            arm(&self.time, now, &mut q.armed, at, waker);
        }
    }
}

/// Closes `mailbox`: what waited in it is lost.
fn close(state: &Mutex<State>, mailbox: &Mailbox) {
    let (heap, waker) = {
        let mut q = mailbox.queue.lock().unwrap();
        q.closed = true;
        (std::mem::take(&mut q.heap), q.waker.take())
    };
    state.lock().unwrap().stats.undeliverable += heap.len() as u64;
    // Dropped outside the locks: a payload may hold anything.
    drop(heap);
    drop(waker);
}

impl State {
    /// A draw in `[0, n)` from the run's generator.
    fn draw(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n
    }
}

/// Makes sure a timer wakes `waker` by `at` (`now`: the time; `armed`: the deadlines of the
/// timers already armed for it, ascending).
fn arm(
    time: &madsim::time::TimeHandle,
    now: Instant,
    armed: &mut Vec<Instant>,
    at: Instant,
    waker: &Waker,
) {
    armed.retain(|d| *d > now);
    if armed.first().is_some_and(|d| *d <= at) {
        return;
    }
    if at <= now {
        waker.wake_by_ref();
        return;
    }
    let mut sleep = time.sleep_until(at);
    let deadline = sleep.deadline();
    // Registers the timer (madsim adds one per pending poll); the sleep itself can go.
    let _ = std::future::Future::poll(
        std::pin::Pin::new(&mut sleep),
        &mut Context::from_waker(waker),
    );
    let i = armed.partition_point(|d| *d < deadline);
    armed.insert(i, deadline);
}

/// A bound address: receives what is sent to it, sends from it. Closed when the last clone
/// is dropped (or its node is killed).
#[derive(Clone)]
pub struct Socket(Arc<Bound>);

struct Bound {
    net: Arc<Net>,
    node: NodeId,
    addr: SocketAddr,
    mailbox: Arc<Mailbox>,
}

impl Drop for Bound {
    fn drop(&mut self) {
        let mut s = self.net.state.lock().unwrap();
        // A restarted node may have bound the address again: leave that one.
        if s.sockets
            .get(&self.addr)
            .is_some_and(|m| Arc::ptr_eq(m, &self.mailbox))
        {
            s.sockets.remove(&self.addr);
        }
        drop(s);
        close(&self.net.state, &self.mailbox);
    }
}

impl Socket {
    /// Binds `addr` on the current node (see [`Net::bind`]).
    pub fn bind(addr: SocketAddr) -> std::io::Result<Socket> {
        Net::current().bind(addr)
    }

    /// Binds a free port of the current node's address (a client's socket).
    pub fn bind_any() -> std::io::Result<Socket> {
        Socket::bind(SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// Sends `payload` to `to` now (see [`Net`] for what may drop it); `id` travels with it.
    pub fn send_to(&self, to: SocketAddr, id: u64, payload: Payload) {
        self.0.net.send((self.0.node, self.0.addr), to, id, payload);
    }

    /// The next datagram due, if any, without waiting.
    pub fn try_recv(&self) -> Option<Datagram> {
        let mut q = self.0.mailbox.queue.lock().unwrap();
        let at = q.heap.peek()?.0.at;
        if at <= self.0.net.time.now_instant() {
            return q.heap.pop().map(|e| e.0.into());
        }
        None
    }

    /// Moves up to `max` datagrams due now into `out`, in due order (one lock and one
    /// reading of the time for all of them); how many it moved.
    pub fn take_due(&self, max: usize, out: &mut std::collections::VecDeque<Datagram>) -> usize {
        let mut q = self.0.mailbox.queue.lock().unwrap();
        if q.heap.is_empty() {
            return 0;
        }
        let now = self.0.net.time.now_instant();
        let mut n = 0;
        while n < max && q.heap.peek().is_some_and(|e| e.0.at <= now) {
            out.extend(q.heap.pop().map(|e| Datagram::from(e.0)));
            n += 1;
        }
        n
    }

    /// The next datagram due; `Ready(None)` once the socket is closed (its node killed).
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Datagram>> {
        let mut q = self.0.mailbox.queue.lock().unwrap();
        let q = &mut *q;
        let next = q.heap.peek().map(|e| e.0.at);
        let now = self.0.net.time.now_instant();
        if next.is_some_and(|at| at <= now) {
            return Poll::Ready(q.heap.pop().map(|e| e.0.into()));
        }
        if q.closed {
            return Poll::Ready(None);
        }
        if !q.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            q.waker = Some(cx.waker().clone());
            // Timers armed for another waker would wake the wrong task.
            q.armed.clear();
        }
        if let Some(at) = next {
            arm(&self.0.net.time, now, &mut q.armed, at, cx.waker());
        }
        Poll::Pending
    }

    /// Waits for the next datagram; `None` once the socket is closed.
    pub async fn recv(&self) -> Option<Datagram> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(ip: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, ip], port))
    }

    /// Runs `f` on a node with address 10.0.0.`ip`.
    fn on_node<F, Fut>(ip: u8, f: F) -> madsim::task::JoinHandle<Fut::Output>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future + Send + 'static,
        Fut::Output: Send,
    {
        let node = madsim::runtime::Handle::current()
            .create_node()
            .ip(IpAddr::from([10, 0, 0, ip]))
            .build();
        Net::current().set_ip(node.id(), IpAddr::from([10, 0, 0, ip]));
        node.spawn(f())
    }

    #[test]
    fn datagrams_arrive_after_the_latency_in_due_order() {
        let got = crate::run_seed(1, None, || async {
            let rx = on_node(2, || async {
                let s = Socket::bind(addr(2, 1)).unwrap();
                let mut got = Vec::new();
                while got.len() < 50 {
                    let d = s.recv().await.unwrap();
                    let (v, sent) = *d.payload.downcast::<(u32, Instant)>().unwrap();
                    got.push((v, d.from, d.id, Instant::now() - sent));
                }
                got
            });
            on_node(1, || async {
                let s = Socket::bind(addr(1, 7)).unwrap();
                for i in 0..50u32 {
                    s.send_to(
                        addr(2, 1),
                        u64::from(i) + 100,
                        Box::new((i, Instant::now())),
                    );
                }
                // Nobody there (yet): it waits for a bind that never comes.
                s.send_to(addr(3, 1), 0, Box::new(0u32));
            });
            let got = rx.await.unwrap();
            (got, Net::current().stats())
        })
        .unwrap();
        let (got, stats) = got;
        assert_eq!(
            stats,
            NetStats {
                sent: 51,
                dropped: 0,
                undeliverable: 0
            }
        );
        for (v, from, id, after) in &got {
            assert_eq!(*from, addr(1, 7));
            assert_eq!(*id, u64::from(*v) + 100);
            // Up to madsim's 1 ms timer floor late.
            let late = DEFAULT_LATENCY.1 + Duration::from_millis(1);
            assert!(*after >= DEFAULT_LATENCY.0 && *after <= late, "{after:?}");
        }
        // Reordered by their latencies, each taken once.
        let mut vs: Vec<u32> = got.iter().map(|g| g.0).collect();
        assert_ne!(vs, (0..50).collect::<Vec<_>>());
        vs.sort();
        assert_eq!(vs, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn clogs_loss_delays_and_kills_drop_or_hold_datagrams() {
        let r = crate::run_seed(2, None, || async {
            let net = Net::current();
            let handle = madsim::runtime::Handle::current();
            let b = handle.create_node().ip(IpAddr::from([10, 0, 0, 2])).build();
            net.set_ip(b.id(), IpAddr::from([10, 0, 0, 2]));
            let a = handle.create_node().ip(IpAddr::from([10, 0, 0, 1])).build();
            net.set_ip(a.id(), IpAddr::from([10, 0, 0, 1]));
            let count = Arc::new(Mutex::new(Vec::new()));
            let c = count.clone();
            b.spawn(async move {
                let s = Socket::bind(addr(2, 1)).unwrap();
                let start = Instant::now();
                while let Some(d) = s.recv().await {
                    let v = *d.payload.downcast::<u32>().unwrap();
                    c.lock().unwrap().push((v, Instant::now() - start));
                }
            });
            let sender = a.spawn(async move {
                let s = Socket::bind(addr(1, 1)).unwrap();
                // Bound twice: refused.
                assert!(Socket::bind(addr(1, 1)).is_err());
                // Not this node's address: refused.
                assert!(Socket::bind(addr(2, 9)).is_err());
                s
            });
            let s = sender.await.unwrap();
            let send = |v: u32| {
                let s = s.clone();
                a.spawn(async move { s.send_to(addr(2, 1), 0, Box::new(v)) })
            };
            net.clog_link(a.id(), b.id());
            send(1).await.unwrap();
            net.unclog_link(a.id(), b.id());
            net.set_loss(1.0);
            send(2).await.unwrap();
            net.set_loss(0.0);
            net.set_delay(a.id(), b.id(), 500, 500);
            send(3).await.unwrap();
            madsim::time::sleep(Duration::from_secs(1)).await;
            net.clear_delays();
            send(4).await.unwrap();
            madsim::time::sleep(Duration::from_secs(1)).await;
            // Held while the receiver's node is killed: gone.
            send(5).await.unwrap();
            handle.kill(b.id());
            madsim::time::sleep(Duration::from_secs(1)).await;
            let got = count.lock().unwrap().clone();
            // Under way to an address not bound yet: taken if it is bound before the
            // datagram is due, lost if not.
            let c = handle.create_node().build();
            net.set_ip(c.id(), IpAddr::from([10, 0, 0, 3]));
            let s2 = s.clone();
            a.spawn(async move {
                s2.send_to(addr(3, 1), 0, Box::new(7u32));
                s2.send_to(addr(3, 2), 0, Box::new(8u32));
            })
            .await
            .unwrap();
            let early = c
                .spawn(async move {
                    let s = Socket::bind(addr(3, 1)).unwrap();
                    *s.recv().await.unwrap().payload.downcast::<u32>().unwrap()
                })
                .await
                .unwrap();
            madsim::time::sleep(Duration::from_secs(1)).await;
            let late = c
                .spawn(async move {
                    let s = Socket::bind(addr(3, 2)).unwrap();
                    s.try_recv().is_none()
                })
                .await
                .unwrap();
            (got, early, late, net.stats())
        })
        .unwrap();
        let (got, early, late, stats) = r;
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![3, 4]);
        // The extra delay came on top of the latency.
        assert!(got[0].1 >= Duration::from_millis(503), "{:?}", got[0].1);
        assert_eq!((early, late), (7, true));
        assert_eq!(
            stats,
            NetStats {
                sent: 5,
                dropped: 2,
                undeliverable: 2
            }
        );
    }
}
