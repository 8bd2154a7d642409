//! tenure: deterministic simulation of distributed coordination primitives.
//!
//! This root crate re-exports the workspace: [`core`] (the system under test, sans-I/O),
//! [`sim`] (the simulated world on madsim) and [`scenarios`] (the scenario library and the
//! `tenure` program). Integration tests of the whole live in `tests/`.

pub use tenure_core as core;
pub use tenure_scenarios as scenarios;
pub use tenure_sim as sim;

/// The README's examples, compiled and run as doc tests so that they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
