//! tenure's agency as a real service: the very [`AgentCore`](tenure_core::agent::AgentCore)
//! the simulator proves, driven over TCP and a data directory on tokio, and a client that
//! gives every seed family a [`StoreClient`](tenure_core::StoreClient) over it.
//!
//! The driver only sleeps, receives and calls: the core says when it must be woken
//! (`poll_timeout`), the driver feeds it time (`handle_timeout`), peer messages and client
//! requests, then carries out its output in order: persist and fsync, send, answer. Nothing
//! here decides anything the simulator does not test.
//!
//! - [`wire`]: the versioned, length-delimited frames agents and clients speak.
//! - [`disk`]: the data directory (hard state, CRC-framed log, snapshot), fsync before any
//!   acknowledgement, recovery from a torn tail, refusal of another cluster's directory.
//! - [`agent`]: one agent: listener, peer links with back-off and bounded queues, the loop.
//! - [`client`]: [`client::TcpClient`] and [`open`] for `tenure://host:port,...`.
//! - [`clock`]: a monotonic real clock implementing core's `Clock`.
//! - [`local`]: [`LocalCluster`], agents of one cluster in this process on 127.0.0.1.
//!
//! This crate must never be built as a simulation: it uses tokio's real runtime, sockets and
//! files, and reads the real clock.

pub mod agent;
pub mod client;
pub mod clock;
pub mod disk;
pub mod local;
pub mod tls;
pub mod wire;

pub use agent::{start_agent, AgentHandle, AgentOptions, StartError};
pub use client::{open, OpenError, TcpClient};
pub use clock::RealClock;
pub use local::LocalCluster;
