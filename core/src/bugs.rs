//! Planted bugs: switches that break the built-in actors on purpose, so a scenario can show
//! that the framework finds what it is meant to find. Every one is off unless a scenario (its
//! `bugs` setting) or the command line (`--bug NAME`) turns it on.
//!
//! The switches live here, in the system under test, because most of the mistakes do: the
//! agent ([`crate::agent::AgentConfig::bugs`]), Raft, the store and the client libraries
//! each read the set they are given. [`Bugs`] is a small `Copy` set so that configurations
//! holding it stay `Copy`.

use crate::rule::{self, Rule};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One planted bug, named in kebab case (`resource-skips-token-check`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// Followers answer reads (and `Health`) from their own state instead of redirecting to
    /// the leader.
    FollowersServeReads,
    /// A leader answers reads from its own state without confirming with a quorum that it is
    /// still the leader, and goes on answering them after it stepped down until it hears of
    /// another leader: cut off on the minority side, it serves stale values.
    DeposedLeaderServesReads,
    /// Agency time runs at the leader's clock rate, without the `1 - rho` margin: a leader
    /// whose clock runs fast expires leases before a slow holder's belief ends.
    NoDriftMargin,
    /// The holder times its belief from the response to its claim, lock or renewal instead
    /// of from the start of the call: a slow answer stretches the belief past the agency's
    /// expiry.
    HolderTimesFromResponse,
    /// The lock library forgets to ask for lock-delay: after a holder dies and its key
    /// expires, the next holder is granted the lock at once.
    NoLockDelay,
    /// Unlock removes the lock key without checking that this holder still holds it (neither
    /// its own belief nor the id in the key): a holder that lost the lock and unlocks late
    /// removes the next holder's grant.
    UnlockWithoutIdCheck,
    /// The agent persists its term but not its vote: restarted within a term, it can vote a
    /// second time in it, for another candidate.
    VoteNotPersisted,
    /// The leader acknowledges a write as soon as it appends it to its own log, with the
    /// outcome its own state predicts, before a quorum has it: cut off, it acknowledges
    /// writes that are then lost.
    AckBeforeCommit,
    /// The agent reads TTLs in whole seconds: one under a second is 0, taken for "no TTL",
    /// so a dead holder's temp key and session lease never expire.
    SubSecondTtlLost,
    /// A new leader recomputes agency time, and so every lease deadline, from its own clock:
    /// the time no leader counted (elections) and its clock's lead over the last leader's run
    /// every deadline down at once.
    NewLeaderUsesOwnClock,
    /// A watch that reconnects to another agent (the leader changed) resumes from that
    /// agent's current revision, dropping the changes made in between.
    WatchDropsEvents,
    /// The store binds a key to a lease without checking that the lease is still granted: a
    /// holder back from a pause past its session TTL takes a lock on its dead session.
    GrantWithoutLeaseCheck,
    /// The Storage library's compare-and-set guards the write with the value it read at the
    /// expected version instead of the version: when another writer has since stored an
    /// equal value (ABA), two compare-and-sets on one version both succeed.
    CasComparesValues,
    /// Every leader change resets each lease's TTL to full: a dead holder's session lives on
    /// as long as leaders keep changing (liveness only).
    TtlResetOnLeaderChange,
    /// The fenced resource accepts every write whatever its token: a holder paused past its
    /// lease writes late and the write lands.
    ResourceSkipsTokenCheck,
    /// hmetcd's `watch_with_cb`, back from an outage, resumes from the key's current revision
    /// instead of after the last change it delivered: the changes made while it was cut off
    /// never reach the callback.
    KvWatchSkipsOutage,
    /// hmetcd's `tas` reads the value, compares it in the client and then writes without a
    /// condition: a write by another client in between is overwritten.
    TasReadThenWrite,
    /// hmetcd's `get_range` leaves out its end key (etcd's half-open range instead of the
    /// seed's inclusive one).
    GetRangeExcludesEnd,
}

impl Bug {
    /// Every planted bug, in order.
    pub const ALL: &'static [Bug] = &[
        Bug::FollowersServeReads,
        Bug::DeposedLeaderServesReads,
        Bug::NoDriftMargin,
        Bug::HolderTimesFromResponse,
        Bug::NoLockDelay,
        Bug::UnlockWithoutIdCheck,
        Bug::VoteNotPersisted,
        Bug::AckBeforeCommit,
        Bug::SubSecondTtlLost,
        Bug::NewLeaderUsesOwnClock,
        Bug::WatchDropsEvents,
        Bug::GrantWithoutLeaseCheck,
        Bug::CasComparesValues,
        Bug::TtlResetOnLeaderChange,
        Bug::ResourceSkipsTokenCheck,
        Bug::KvWatchSkipsOutage,
        Bug::TasReadThenWrite,
        Bug::GetRangeExcludesEnd,
    ];

    /// Its kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Bug::FollowersServeReads => "followers-serve-reads",
            Bug::DeposedLeaderServesReads => "deposed-leader-serves-reads",
            Bug::NoDriftMargin => "no-drift-margin",
            Bug::HolderTimesFromResponse => "holder-times-from-response",
            Bug::NoLockDelay => "no-lock-delay",
            Bug::UnlockWithoutIdCheck => "unlock-without-id-check",
            Bug::VoteNotPersisted => "vote-not-persisted",
            Bug::AckBeforeCommit => "ack-before-commit",
            Bug::SubSecondTtlLost => "sub-second-ttl-lost",
            Bug::NewLeaderUsesOwnClock => "new-leader-uses-own-clock",
            Bug::WatchDropsEvents => "watch-drops-events",
            Bug::GrantWithoutLeaseCheck => "grant-without-lease-check",
            Bug::CasComparesValues => "cas-compares-values",
            Bug::TtlResetOnLeaderChange => "ttl-reset-on-leader-change",
            Bug::ResourceSkipsTokenCheck => "resource-skips-token-check",
            Bug::KvWatchSkipsOutage => "kv-watch-skips-outage",
            Bug::TasReadThenWrite => "tas-read-then-write",
            Bug::GetRangeExcludesEnd => "get-range-excludes-end",
        }
    }

    /// The rules it breaks, in DESIGN.md's names, the one a scenario shows first leading
    /// (a run may break the others too).
    pub fn rules(self) -> &'static [Rule] {
        match self {
            Bug::FollowersServeReads => const { &[rule::S13] },
            Bug::DeposedLeaderServesReads => const { &[rule::S13] },
            Bug::NoDriftMargin => const { &[rule::S1, rule::S4] },
            Bug::HolderTimesFromResponse => const { &[rule::S1, rule::S4] },
            Bug::NoLockDelay => const { &[rule::S8] },
            Bug::UnlockWithoutIdCheck => const { &[rule::S6, rule::S1] },
            Bug::VoteNotPersisted => const { &[rule::S12_VOTE, rule::S12_ONE_LEADER] },
            Bug::AckBeforeCommit => const { &[rule::S15, rule::S13] },
            Bug::SubSecondTtlLost => const { &[rule::L3_TEMP_KEYS] },
            Bug::NewLeaderUsesOwnClock => const { &[rule::S4, rule::S1] },
            Bug::WatchDropsEvents => const { &[rule::S16] },
            Bug::GrantWithoutLeaseCheck => const { &[rule::S7] },
            Bug::CasComparesValues => const { &[rule::S14] },
            Bug::TtlResetOnLeaderChange => const { &[rule::L3_ON_TIME] },
            Bug::ResourceSkipsTokenCheck => const { &[rule::S10] },
            Bug::KvWatchSkipsOutage => const { &[rule::S16] },
            Bug::TasReadThenWrite => const { &[rule::S13] },
            Bug::GetRangeExcludesEnd => const { &[rule::S13] },
        }
    }

    /// [`Bug::rules`] as one line (`S1 exclusivity or S4 no early expiry`).
    pub fn rule_names(self) -> String {
        self.rules()
            .iter()
            .map(Rule::name)
            .collect::<Vec<_>>()
            .join(" or ")
    }

    /// What it does.
    pub fn about(self) -> &'static str {
        match self {
            Bug::FollowersServeReads => "followers answer reads from their own state",
            Bug::DeposedLeaderServesReads => {
                "a leader answers reads without confirming it still leads (a deposed leader \
                 keeps serving)"
            }
            Bug::NoDriftMargin => {
                "no drift margin on the server side: agency time runs at the leader's clock rate"
            }
            Bug::HolderTimesFromResponse => {
                "the holder times its lease from the response instead of the start of the call"
            }
            Bug::NoLockDelay => "no lock-delay after an involuntary release",
            Bug::UnlockWithoutIdCheck => "unlock removes the key without checking the owner's id",
            Bug::VoteNotPersisted => "the vote is not persisted before it is granted",
            Bug::AckBeforeCommit => "a write is acknowledged before it commits",
            Bug::SubSecondTtlLost => "a TTL under one second becomes \"no TTL\"",
            Bug::NewLeaderUsesOwnClock => {
                "a new leader recomputes lease deadlines on its own clock"
            }
            Bug::WatchDropsEvents => "a watch drops events after a reconnect",
            Bug::GrantWithoutLeaseCheck => {
                "a lock is granted without checking that the holder's lease is alive"
            }
            Bug::CasComparesValues => "compare-and-set compares values instead of versions",
            Bug::TtlResetOnLeaderChange => "TTLs reset to full on every leader change",
            Bug::ResourceSkipsTokenCheck => {
                "the fenced resource skips the token check (a paused holder writes late)"
            }
            Bug::KvWatchSkipsOutage => {
                "an hmetcd callback watch resumes at the current revision after an outage"
            }
            Bug::TasReadThenWrite => "hmetcd tas compares in the client, then writes blindly",
            Bug::GetRangeExcludesEnd => "hmetcd get_range leaves out its end key",
        }
    }

    /// The bug named `name`, or an error that lists the names.
    pub fn parse(name: &str) -> Result<Bug, String> {
        Bug::ALL
            .iter()
            .copied()
            .find(|b| b.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
                format!(
                    "unknown bug {name:?}; the planted bugs are: {}",
                    names.join(", ")
                )
            })
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl std::fmt::Display for Bug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The bugs a run plants: a set, iterated in [`Bug::ALL`]'s order; serialized as the list of
/// names.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Bugs(u32);

impl Bugs {
    /// No bugs.
    pub const fn new() -> Bugs {
        Bugs(0)
    }

    /// Plants `bug`; true if it was not planted already.
    pub fn insert(&mut self, bug: Bug) -> bool {
        let fresh = !self.contains(bug);
        self.0 |= bug.bit();
        fresh
    }

    pub fn contains(&self, bug: Bug) -> bool {
        self.0 & bug.bit() != 0
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    pub fn len(&self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn iter(&self) -> impl Iterator<Item = Bug> + '_ {
        Bug::ALL.iter().copied().filter(|b| self.contains(*b))
    }
}

impl FromIterator<Bug> for Bugs {
    fn from_iter<I: IntoIterator<Item = Bug>>(iter: I) -> Bugs {
        let mut s = Bugs::new();
        for b in iter {
            s.insert(b);
        }
        s
    }
}

impl std::fmt::Debug for Bugs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for Bugs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Bugs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bugs, D::Error> {
        Ok(Vec::<Bug>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_parse_and_serde() {
        for b in Bug::ALL {
            assert_eq!(Bug::parse(b.name()), Ok(*b));
            assert_eq!(
                serde_json::to_string(b).unwrap(),
                format!("\"{}\"", b.name())
            );
        }
        let e = Bug::parse("nope").unwrap_err();
        assert!(e.contains("resource-skips-token-check"), "{e}");
    }

    #[test]
    fn the_set_holds_each_bug_once_in_order() {
        assert!(Bug::ALL.len() <= 32, "Bugs is a u32");
        let mut s = Bugs::new();
        assert!(s.is_empty());
        for b in Bug::ALL.iter().rev() {
            assert!(s.insert(*b));
            assert!(!s.insert(*b));
        }
        assert_eq!(s.len(), Bug::ALL.len());
        assert_eq!(s.iter().collect::<Vec<_>>(), Bug::ALL.to_vec());
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Bugs>(&json).unwrap(), s);
        let one: Bugs = [Bug::ResourceSkipsTokenCheck].into_iter().collect();
        assert_eq!(
            serde_json::to_string(&one).unwrap(),
            "[\"resource-skips-token-check\"]"
        );
        assert!(serde_json::from_str::<Bugs>("[\"nope\"]").is_err());
    }
}
