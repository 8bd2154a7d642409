//! A [`StoreClient`] whose connection to the agency the test breaks and mends at will: while
//! it is down every call fails as on a cut-off network (`Unavailable`, nothing sent); the
//! next `wait_events` can be made to answer `Compacted`; answers can be lost after the
//! command is carried out, or held back. Over `mem:` on a manual clock this gives exact, repeatable outages.

use async_trait::async_trait;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tenure::core::client::LeaseInfo;
use tenure::core::store::{Node, ReadResult};
use tenure::core::{
    ClientError, Clock, Command, Event, Key, LeaseId, Outcome, Revision, StoreClient,
};

#[derive(Clone)]
pub struct Flaky {
    inner: Arc<dyn StoreClient>,
    pub down: Arc<AtomicBool>,
    /// Answer the next `wait_events` with `Compacted` (the revision given).
    pub compact_next: Arc<Mutex<Option<Revision>>>,
    /// Carry out every submitted command but lose its answer (`Indeterminate`).
    pub lose_answers: Arc<AtomicBool>,
    /// Hold every call (sent nowhere) until this is unset, as a request whose answer is slow.
    pub hang: Arc<AtomicBool>,
}

impl Flaky {
    pub fn new(inner: Arc<dyn StoreClient>) -> Flaky {
        Flaky {
            inner,
            down: Arc::default(),
            compact_next: Arc::default(),
            lose_answers: Arc::default(),
            hang: Arc::default(),
        }
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    async fn check(&self) -> Result<(), ClientError> {
        let clock = self.inner.clock();
        while self.hang.load(Ordering::SeqCst) {
            clock.sleep(std::time::Duration::from_millis(10)).await;
        }
        if self.down.load(Ordering::SeqCst) {
            Err(ClientError::Unavailable("cut off by the test".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl StoreClient for Flaky {
    fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock()
    }
    async fn submit(&self, cmd: Command) -> Result<Outcome, ClientError> {
        self.check().await?;
        let out = self.inner.submit(cmd).await;
        if self.lose_answers.load(Ordering::SeqCst) {
            return Err(ClientError::Indeterminate("answer lost by the test".into()));
        }
        out
    }
    async fn read(&self, key: &Key) -> Result<ReadResult, ClientError> {
        self.check().await?;
        self.inner.read(key).await
    }
    async fn range(&self, start: &Key, end: &Key) -> Result<Vec<(Key, Node)>, ClientError> {
        self.check().await?;
        self.inner.range(start, end).await
    }
    async fn wait_events(&self, key: &Key, after: Revision) -> Result<Vec<Event>, ClientError> {
        self.check().await?;
        if let Some(compacted) = self.compact_next.lock().unwrap().take() {
            return Err(ClientError::Compacted { compacted });
        }
        // While waiting, a cut makes the wait fail too (as a connection would).
        let down = self.down.clone();
        let clock = self.inner.clock();
        let cut = async move {
            while !down.load(Ordering::SeqCst) {
                clock.sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        futures::pin_mut!(cut);
        let wait = self.inner.wait_events(key, after);
        futures::pin_mut!(wait);
        match futures::future::select(wait, cut).await {
            futures::future::Either::Left((r, _)) => r,
            futures::future::Either::Right(_) => {
                Err(ClientError::Unavailable("cut off by the test".into()))
            }
        }
    }
    async fn lease(&self, id: LeaseId) -> Result<Option<LeaseInfo>, ClientError> {
        self.check().await?;
        self.inner.lease(id).await
    }
}
