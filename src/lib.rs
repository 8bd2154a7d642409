//! tenure: deterministic simulation of distributed coordination primitives.
//!
//! This root crate re-exports the workspace: [`core`] (the system under test, sans-I/O),
//! [`sim`] (the simulated world on madsim), [`server`] (the same agent as a real service over
//! TCP and disk, and its client: `tenure::server::open("tenure://...")`) and [`scenarios`]
//! (the scenario library and the `tenure` program). Integration tests of the whole live in `tests/`.

pub use tenure_core as core;
pub use tenure_scenarios as scenarios;
pub use tenure_server as server;
pub use tenure_sim as sim;

/// Testing your own service: build a [`world::World`] with your processes, actors, resources
/// and checks ([`world::Builder`]), run it by seed ([`world::World::run`]), and in
/// `cargo test` run many seeds with [`harness::assert_world`].
pub mod world {
    pub use tenure_core::rule::{Rule, RuleKind};
    pub use tenure_sim::history::{Completion, Event, History, Record};
    pub use tenure_sim::run::{Faults, Report, RunConfig};
    pub use tenure_sim::world::*;
}

pub use tenure_scenarios::{cli, harness};

/// The README's examples, compiled and run as doc tests so that they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
