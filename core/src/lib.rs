//! tenure-core: the system under test, sans-I/O.
//!
//! The agency store ([`store`]), the log entries it applies ([`command`]), and the five API
//! families of the seed documents ([`agency`], [`kv`], [`storage`], [`lease`],
//! [`leadership`]), with an in-process backend ([`mem`]). Nothing here reads a clock, opens a
//! socket or spawns a thread: time and task spawning come in through [`clock::Clock`].

pub mod agency;
pub mod agent;
pub mod buggify;
pub mod bugs;
pub mod client;
pub mod clock;
pub mod command;
pub mod key;
pub mod kv;
pub mod leadership;
pub mod lease;
pub mod mem;
pub mod raft;
pub mod records;
pub mod rng;
pub mod rule;
pub mod storage;
pub mod store;

pub use bugs::{Bug, Bugs};
pub use client::{ClientError, StoreClient};
pub use clock::{Clock, ManualClock};
pub use command::*;
pub use key::{validate_string, Key, KeyError};
pub use mem::{open, MemBackend, OpenError};
pub use rule::{Rule, RuleKind};
pub use serde_json::Value;
pub use store::Store;
