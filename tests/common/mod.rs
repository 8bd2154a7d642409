//! The harness of the client-side suite: every test gets a fresh backend and a manual clock.
//! The suite is written against `StoreClient`, so another backend (the simulated cluster)
//! can be added to `run` and every test runs against it too.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use tenure::core::{Clock, ManualClock, MemBackend, StoreClient};

pub struct Env {
    pub clock: ManualClock,
    pub mem: MemBackend,
}

impl Env {
    /// A new client of the same store (another process, from the store's view).
    pub fn client(&self) -> Arc<dyn StoreClient> {
        self.mem.client()
    }
    pub fn shared_clock(&self) -> Arc<dyn Clock> {
        self.clock.shared()
    }
}

/// Runs `test` against a fresh `mem:` backend on a manual clock.
pub fn run<F, Fut>(test: F)
where
    F: FnOnce(Arc<Env>) -> Fut,
    Fut: Future<Output = ()>,
{
    let clock = ManualClock::new();
    let mem = tenure::core::open("mem:", clock.shared()).expect("mem: opens");
    let env = Arc::new(Env {
        clock: clock.clone(),
        mem,
    });
    clock.block_on(test(env));
}

pub fn key(s: &str) -> tenure::core::Key {
    tenure::core::Key::parse(s).unwrap()
}
