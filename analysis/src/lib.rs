//! tenure-analysis: what is read from a run, knowing nothing of the runtime that made it.
//!
//! The history's data ([`history`]), faults as data ([`faults`]: schedules, the swarm's
//! draw, validation, lifting), well-formedness ([`shape`]), the checkers ([`check`], one
//! family per file, typed rules), the linearizability checker ([`lin`]), a run's
//! [`report`], and what shows a run to a person: the HTML page ([`page`]) and the ShiViz log
//! ([`shiviz`]). It builds without madsim (it does not depend on it): `tenure check` and any
//! tool that reads histories need nothing of the simulator. tenure-sim re-exports every
//! module under the same names.

pub mod check;
pub mod coverage;
pub mod faults;
pub mod history;
pub mod lin;
pub mod page;
pub mod report;
pub mod shape;
pub mod shiviz;

pub use check::Violation;
pub use faults::{ClockFault, Fault, Schedule, Step, Swarm};
pub use history::History;
pub use report::{Counters, Report};
