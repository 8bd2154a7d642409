//! Where a run's processes are numbered: the one place that knows the order of the built-in
//! roles. Process numbers start at 1 (as in the history and in fault schedules); process `n`'s
//! node takes client address index `n - 1`; the runner comes after every built-in role, and a
//! user world's parts after the runner's address.

use super::RunConfig;
use std::ops::Range;

/// The process numbers of each built-in role, in the order they are numbered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub clients: Range<u64>,
    pub lockers: Range<u64>,
    pub leasers: Range<u64>,
    pub leaders: Range<u64>,
    pub members: Range<u64>,
    pub managers: Range<u64>,
    pub watchers: Range<u64>,
    pub callers: Range<u64>,
}

impl Layout {
    pub fn new(c: &RunConfig) -> Layout {
        let mut next = 1u64;
        let mut take = |n: usize| {
            let r = next..next.saturating_add(n as u64);
            next = r.end;
            r
        };
        Layout {
            clients: take(c.clients),
            lockers: take(c.lockers),
            leasers: take(c.leasers),
            leaders: take(c.leaders),
            members: take(c.members),
            managers: take(c.managers),
            watchers: take(c.watchers),
            callers: take(c.callers),
        }
    }

    /// Every built-in process.
    pub fn processes(&self) -> u64 {
        self.callers.end - 1
    }

    /// The client address index of the runner's node.
    pub fn runner_index(&self) -> usize {
        self.processes() as usize
    }

    /// The number of a user world's first part.
    pub fn first_part(&self) -> u64 {
        self.processes() + 1
    }
}

/// The client address index of process `process`'s node.
pub(crate) fn index(process: u64) -> usize {
    process as usize - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_numbered_one_after_another() {
        let c = RunConfig {
            clients: 2,
            lockers: 1,
            leasers: 0,
            leaders: 2,
            members: 1,
            managers: 1,
            watchers: 1,
            callers: 2,
            ..RunConfig::default()
        };
        let l = Layout::new(&c);
        assert_eq!(l.clients, 1..3);
        assert_eq!(l.lockers, 3..4);
        assert_eq!(l.leasers, 4..4);
        assert_eq!(l.leaders, 4..6);
        assert_eq!(l.members, 6..7);
        assert_eq!(l.managers, 7..8);
        assert_eq!(l.watchers, 8..9);
        assert_eq!(l.callers, 9..11);
        assert_eq!(l.processes(), c.processes() as u64);
        assert_eq!(l.runner_index(), 10);
        assert_eq!(l.first_part(), 11);
    }
}
