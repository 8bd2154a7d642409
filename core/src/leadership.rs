//! Seed 004: Juju's `leadership`: service leadership on top of leases.
//!
//! The leadership of service `s` is the lease named `s`, held by the leader unit. A claim is
//! guaranteed for at least `duration` from the start of the call; `check_leadership` returns a
//! [`Token`] whose preconditions guard a later transaction (the seed's `AssertOps`).

use crate::clock::Clock;
use crate::command::Revision;
use crate::lease::{Checker, Claimer, LeaseClient, LeaseError, LeaseManager, Token};
use std::sync::Arc;
use std::time::Duration;

/// The leadership family's errors.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LeadershipError {
    /// Another unit is leader.
    #[error("leadership claim denied")]
    ClaimDenied,
    /// The unit is not the leader.
    #[error("{unit:?} is not leader of {service:?}")]
    NotLeader { service: String, unit: String },
    #[error("bad input: {0}")]
    BadInput(String),
    #[error("the leadership manager is stopped")]
    Stopped,
    #[error(transparent)]
    Lease(LeaseError),
}

impl From<LeaseError> for LeadershipError {
    fn from(e: LeaseError) -> Self {
        match e {
            LeaseError::ClaimDenied => LeadershipError::ClaimDenied,
            LeaseError::BadInput(s) => LeadershipError::BadInput(s),
            LeaseError::Stopped => LeadershipError::Stopped,
            other => LeadershipError::Lease(other),
        }
    }
}

/// What a [`Manager`] needs; both are required.
#[derive(Clone, Default)]
pub struct ManagerConfig {
    pub client: Option<Arc<LeaseClient>>,
    pub clock: Option<Arc<dyn Clock>>,
}

impl ManagerConfig {
    /// Names the first missing resource.
    pub fn validate(&self) -> Result<(), LeadershipError> {
        if self.client.is_none() {
            return Err(LeadershipError::BadInput(
                "ManagerConfig.client: missing lease client".into(),
            ));
        }
        if self.clock.is_none() {
            return Err(LeadershipError::BadInput(
                "ManagerConfig.clock: missing clock".into(),
            ));
        }
        Ok(())
    }
}

/// Units claim service leadership; others check it or wait for its release.
///
/// The configured clock is the manager's: a claim's guarantee starts at its reading when the
/// call starts, and the lease expiries the manager knows are in its frame. [`Manager::stop`]
/// ends every claim, check and wait in flight with [`LeadershipError::Stopped`], and every
/// later call too.
pub struct Manager {
    leases: LeaseManager,
    clock: Arc<dyn Clock>,
}

impl Manager {
    pub fn new(config: ManagerConfig) -> Result<Manager, LeadershipError> {
        config.validate()?;
        let clock = config.clock.unwrap();
        let client = config.client.unwrap().with_clock(clock.clone());
        Ok(Manager {
            leases: LeaseManager::new(Arc::new(client)),
            clock,
        })
    }

    /// The clock the manager was configured with.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The leases behind the leadership (on the manager's clock).
    pub fn leases(&self) -> &LeaseManager {
        &self.leases
    }

    /// Stops the manager: claims, checks and waits in flight fail with `Stopped`, and so do
    /// later ones. Idempotent.
    pub fn stop(&self) {
        self.leases.stop();
    }

    /// Claims leadership of `service` for `unit`; guaranteed for at least `duration` from
    /// the start of the call. Returns the grant's fencing token.
    pub async fn claim_leadership(
        &self,
        service: &str,
        unit: &str,
        duration: Duration,
    ) -> Result<Revision, LeadershipError> {
        Ok(self.leases.claim(service, unit, duration).await?)
    }

    /// A token attesting that `unit` leads `service` now; `NotLeader` if it does not.
    pub async fn check_leadership(
        &self,
        service: &str,
        unit: &str,
    ) -> Result<Token, LeadershipError> {
        let token = self.leases.token(service, unit);
        match self.leases.unless_stopped(token.check()).await {
            Ok(()) => Ok(token),
            Err(LeaseError::NotHeld) => Err(LeadershipError::NotLeader {
                service: service.to_string(),
                unit: unit.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Blocks until `service` has no leader, or fails with `Stopped` if the manager stops.
    pub async fn block_until_leadership_released(
        &self,
        service: &str,
    ) -> Result<(), LeadershipError> {
        Ok(self.leases.wait_until_expired(service).await?)
    }
}
