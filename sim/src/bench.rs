//! Whole-run measurements for `tenure bench`: the raw madsim ping-pong every full-stack figure
//! is compared with, the same ping-pong over tenure's own network ([`crate::net`]), and peak
//! memory.

use madsim::net::Endpoint;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What one raw ping-pong run did.
#[derive(Clone, Copy, Debug)]
pub struct Raw {
    /// Messages delivered (pings and pongs).
    pub messages: u64,
    pub wall: Duration,
    pub virtual_time: Duration,
}

impl Raw {
    pub fn msgs_per_s(&self) -> f64 {
        self.messages as f64 / self.wall.as_secs_f64()
    }
}

/// Two madsim nodes bouncing `messages` datagrams over `Endpoint`, `window` in flight at
/// once, with nothing else on the network: no encoding, no actor runtime, no history. The
/// fastest any simulation of message passing over madsim's own network can go on this
/// machine.
pub fn raw_ping_pong(messages: u64, window: u64, seed: u64) -> Raw {
    let rounds = messages / 2;
    two_nodes(
        seed,
        rounds,
        |b| async move {
            let ep = Endpoint::bind(b).await.expect("pong binds");
            loop {
                let (payload, from) = ep.recv_from_raw(1).await.expect("pong receives");
                let _ = ep.send_to_raw(from, 1, payload).await;
            }
        },
        move |a, b| async move {
            let ep = Endpoint::bind(a).await.expect("ping binds");
            let mut sent = 0u64;
            for _ in 0..window.min(rounds) {
                let _ = ep.send_to_raw(b, 1, Box::new(sent)).await;
                sent += 1;
            }
            for _ in 0..rounds {
                let (payload, _) = ep.recv_from_raw(1).await.expect("ping receives");
                drop(payload);
                if sent < rounds {
                    let _ = ep.send_to_raw(b, 1, Box::new(sent)).await;
                    sent += 1;
                }
            }
        },
    )
}

/// The same ping-pong over tenure's network ([`crate::net::Socket`], what every run's actors
/// use): the fastest a run's messages can go, with nothing above the network.
pub fn net_ping_pong(messages: u64, window: u64, seed: u64) -> Raw {
    use crate::net::Socket;
    let rounds = messages / 2;
    two_nodes(
        seed,
        rounds,
        |b| async move {
            let s = Socket::bind(b).expect("pong binds");
            while let Some(d) = s.recv().await {
                s.send_to(d.from, 0, d.payload);
            }
        },
        move |a, b| async move {
            let s = Socket::bind(a).expect("ping binds");
            let mut sent = 0u64;
            for _ in 0..window.min(rounds) {
                s.send_to(b, 0, Box::new(sent));
                sent += 1;
            }
            for _ in 0..rounds {
                drop(s.recv().await.expect("ping receives"));
                if sent < rounds {
                    s.send_to(b, 0, Box::new(sent));
                    sent += 1;
                }
            }
        },
    )
}

/// Runs `pong(b)` on one node and `ping(a, b)` on another until the ping ends, timing the
/// whole seed in wall and virtual time (`rounds` round trips).
fn two_nodes<E, EF, P, PF>(seed: u64, rounds: u64, pong: E, ping: P) -> Raw
where
    E: FnOnce(SocketAddr) -> EF + Send + 'static,
    EF: std::future::Future<Output = ()> + Send + 'static,
    P: FnOnce(SocketAddr, SocketAddr) -> PF + Send + 'static,
    PF: std::future::Future<Output = ()> + Send + 'static,
{
    let start = Instant::now();
    let virtual_time = crate::run_seed(seed, None, move || async move {
        let handle = madsim::runtime::Handle::current();
        let a: SocketAddr = "10.9.0.1:1".parse().unwrap();
        let b: SocketAddr = "10.9.0.2:1".parse().unwrap();
        let origin = madsim::time::Instant::now();
        let echo = handle.create_node().name("pong").ip(b.ip()).build();
        echo.spawn(pong(b));
        let pinger = handle.create_node().name("ping").ip(a.ip()).build();
        pinger.spawn(ping(a, b)).await.expect("ping ends");
        madsim::time::Instant::now() - origin
    })
    .expect("the ping-pong runs");
    Raw {
        messages: rounds * 2,
        wall: start.elapsed(),
        virtual_time,
    }
}

/// The process's peak resident memory so far, in bytes (Linux; `None` elsewhere).
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Starts a new peak for [`peak_rss`] from the current resident size (Linux 4.0 and later;
/// `false` when the kernel refuses, and the peak then stays the process's).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_pong_delivers_every_message() {
        let r = raw_ping_pong(1_000, 8, 1);
        assert_eq!(r.messages, 1_000);
        assert!(r.virtual_time > Duration::ZERO);
        // Whichever node's task runs first (madsim picks), nothing is lost: a datagram for a
        // node that has not bound yet waits for its bind.
        for seed in 0..20 {
            assert_eq!(net_ping_pong(100, 8, seed).messages, 100);
        }
        let n = net_ping_pong(1_000, 8, 1);
        assert_eq!(n.messages, 1_000);
        // 500 round trips, 8 at a time, 2 - 20 ms each.
        assert!(n.virtual_time > Duration::from_millis(500 / 8 * 2), "{n:?}");
    }
}
