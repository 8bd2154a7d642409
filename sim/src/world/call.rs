//! Recorded calls: how an error ends one ([`CallError`]) and a call in flight ([`Call`]).

use super::context::Context;
use crate::history::{Completion, Event};
use serde_json::Value;

/// How an error ends a recorded call ([`Context::call`]): surely without effect (`fail`),
/// or unknown (`info`); and whether it means a read found nothing (a successful read of
/// "no value").
pub trait CallError: std::fmt::Display {
    /// The call surely had no effect (`fail`); otherwise it is unknown (`info`).
    fn definite(&self) -> bool;
    /// A read found nothing.
    fn absent(&self) -> bool {
        false
    }
}

impl CallError for tenure_core::agency::AgencyError {
    fn definite(&self) -> bool {
        use tenure_core::agency::AgencyError as E;
        matches!(
            self,
            E::ConditionFailed { .. }
                | E::AlreadyLocked
                | E::NotLocked
                | E::Client(tenure_core::ClientError::Unavailable(_))
        )
    }
    fn absent(&self) -> bool {
        matches!(self, tenure_core::agency::AgencyError::KeyNotFound { .. })
    }
}

impl CallError for tenure_core::storage::StorageError {
    fn definite(&self) -> bool {
        use tenure_core::storage::StorageError as E;
        matches!(
            self,
            E::AlreadyExists(_)
                | E::NotFound
                | E::WrongVersion { .. }
                | E::Client(tenure_core::ClientError::Unavailable(_))
        )
    }
    fn absent(&self) -> bool {
        matches!(self, tenure_core::storage::StorageError::NotFound)
    }
}

impl CallError for tenure_core::kv::KvError {
    fn definite(&self) -> bool {
        use tenure_core::kv::KvError as E;
        matches!(
            self,
            E::Invalid(_)
                | E::Closed
                | E::LockTimeout(_)
                | E::UnknownWatch
                | E::LockLost
                | E::Client(tenure_core::ClientError::Unavailable(_))
                | E::Client(tenure_core::ClientError::Compacted { .. })
                | E::Client(tenure_core::ClientError::Closed)
        )
    }
}

impl CallError for tenure_core::lease::LeaseError {
    fn definite(&self) -> bool {
        use tenure_core::lease::LeaseError as E;
        matches!(
            self,
            E::ClaimDenied
                | E::Invalid(_)
                | E::NotHeld
                | E::BadInput(_)
                | E::Stopped
                | E::Client(tenure_core::ClientError::Unavailable(_))
        )
    }
}

impl CallError for tenure_core::leadership::LeadershipError {
    fn definite(&self) -> bool {
        use tenure_core::leadership::LeadershipError as E;
        match self {
            E::ClaimDenied | E::NotLeader { .. } | E::BadInput(_) | E::Stopped => true,
            E::Lease(e) => e.definite(),
        }
    }
}

/// A recorded call in flight.
pub struct Call {
    pub(crate) ctx: Context,
    pub(crate) op: u64,
}

impl Call {
    pub(crate) fn end(self, result: Completion, value: Value) {
        let c = &self.ctx.0;
        *c.pending.lock().unwrap() = None;
        c.rec.record(
            &c.name,
            Event::Complete {
                process: c.id,
                op: self.op,
                result,
                value,
                local_us: self.ctx.now().as_micros() as u64,
            },
        );
    }

    /// It took effect, returning `value`.
    pub fn ok(self, value: Value) {
        self.end(Completion::Ok, value)
    }

    /// It surely had no effect.
    pub fn fail(self, why: Value) {
        self.end(Completion::Fail, why)
    }

    /// Unknown: it may have taken effect, any time after the call, or never.
    pub fn info(self, why: Value) {
        self.end(Completion::Info, why)
    }
}
