//! Rules: what a check holds a history to, as one type for tenure's own rules (DESIGN.md's
//! S1..S17 and L1..L5) and the rules users write for their own services.
//!
//! A rule has an id (`S1`, `JOB1`), a title (`exclusivity`) and a kind: safety (must never
//! break), liveness (must come true within a bound) or warning (expected under some faults,
//! reported but not a failure). Its name is `id title`. Tools match a rule a user names by its
//! id or its whole name, never by prefix: `S1` is not `S10` ([`Rule::matches`]).
//!
//! Several built-in rules share an id where DESIGN.md states one invariant as several
//! conditions (S12's five, L3's two): `--rule S12` names them all.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;

/// What breaking a rule means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// Must never break: one breach is a failed seed.
    Safety,
    /// Must come true within a bound after the faults are lifted.
    Liveness,
    /// Expected under some faults (a paused holder acting late, a check the budget left
    /// undecided): reported, not a failure.
    Warning,
}

/// One rule. Built-in ones are the constants of this module; a user's come from
/// [`Rule::user`], which refuses an id tenure uses.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    id: Cow<'static, str>,
    title: Cow<'static, str>,
    kind: RuleKind,
}

/// Why [`Rule::user`] refused a rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("a rule id must be 1 to 32 letters, digits, '-' or '_' (got {0:?})")]
    BadId(String),
    #[error("rule {id}: its title must be 1 to 200 characters on one line")]
    BadTitle { id: String },
    #[error("rule id {0} is tenure's own ({1}); give your rule an id of its own")]
    Reserved(String, String),
}

impl Rule {
    /// A built-in rule (for this module's constants).
    pub const fn builtin(id: &'static str, title: &'static str, kind: RuleKind) -> Rule {
        Rule {
            id: Cow::Borrowed(id),
            title: Cow::Borrowed(title),
            kind,
        }
    }

    /// A user's rule: an id of letters, digits, `-` and `_` that is not one of tenure's, and a
    /// one-line title.
    pub fn user(
        id: impl Into<String>,
        title: impl Into<String>,
        kind: RuleKind,
    ) -> Result<Rule, RuleError> {
        let (id, title) = (id.into(), title.into());
        let id_ok = (1..=32).contains(&id.len())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !id_ok {
            return Err(RuleError::BadId(id));
        }
        if let Some(r) = BUILTIN.iter().find(|r| r.id.eq_ignore_ascii_case(&id)) {
            return Err(RuleError::Reserved(id, r.name()));
        }
        let title_ok = !title.trim().is_empty()
            && title.chars().count() <= 200
            && !title.chars().any(char::is_control);
        if !title_ok {
            return Err(RuleError::BadTitle { id });
        }
        Ok(Rule {
            id: Cow::Owned(id),
            title: Cow::Owned(title.trim().to_string()),
            kind,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn title(&self) -> &str {
        &self.title
    }

    pub fn kind(&self) -> RuleKind {
        self.kind
    }

    /// `id title`: how reports print it.
    pub fn name(&self) -> String {
        format!("{} {}", self.id, self.title)
    }

    /// Whether `given` (from a user: `--rule S1`) names this rule: its id or its whole name,
    /// exactly. Never a prefix: `S1` is not `S10`.
    pub fn matches(&self, given: &str) -> bool {
        let given = given.trim();
        given == self.id || given == self.name()
    }

    /// The built-in rule named `name` (its whole name).
    pub fn builtin_named(name: &str) -> Option<&'static Rule> {
        BUILTIN.iter().find(|r| r.name() == name)
    }

    /// The rule a name read back from a report stands for: a built-in one, or a user's
    /// (`id title`) of kind `kind`.
    pub fn from_name(name: &str, kind: RuleKind) -> Rule {
        if let Some(r) = Rule::builtin_named(name) {
            return r.clone();
        }
        let (id, title) = name.split_once(' ').unwrap_or((name, ""));
        Rule {
            id: Cow::Owned(id.to_string()),
            title: Cow::Owned(title.to_string()),
            kind,
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.id, self.title)
    }
}

/// A rule equals its name (`S1 exclusivity`): handy in tests and filters.
impl PartialEq<str> for Rule {
    fn eq(&self, name: &str) -> bool {
        name.split_once(' ')
            .is_some_and(|(id, title)| id == self.id && title == self.title)
    }
}

impl PartialEq<&str> for Rule {
    fn eq(&self, name: &&str) -> bool {
        self == *name
    }
}

/// A rule serializes as its name (`S1 exclusivity`), as reports always printed it.
impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

/// Read back: a built-in name is that rule; any other is a user's safety rule.
impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Rule, D::Error> {
        let name = String::deserialize(d)?;
        if name.trim().is_empty() {
            return Err(serde::de::Error::custom("a rule's name is empty"));
        }
        Ok(Rule::from_name(&name, RuleKind::Safety))
    }
}

use RuleKind::{Liveness, Safety, Warning};

pub const S1: Rule = Rule::builtin("S1", "exclusivity", Safety);
pub const S3: Rule = Rule::builtin("S3", "honest answers", Safety);
pub const S4: Rule = Rule::builtin("S4", "no early expiry", Safety);
pub const S5: Rule = Rule::builtin("S5", "extensions", Safety);
pub const S6: Rule = Rule::builtin("S6", "only the owner deletes", Safety);
pub const S7: Rule = Rule::builtin("S7", "grant to a dead lease", Safety);
pub const S8: Rule = Rule::builtin("S8", "lock-delay", Safety);
pub const S9: Rule = Rule::builtin("S9", "fencing tokens", Safety);
pub const S10: Rule = Rule::builtin("S10", "fencing", Safety);
pub const S11: Rule = Rule::builtin("S11", "action within belief", Warning);
pub const S12_ONE_LEADER: Rule = Rule::builtin("S12", "one leader per term", Safety);
pub const S12_STATE_MACHINE: Rule = Rule::builtin("S12", "state-machine safety", Safety);
pub const S12_COMPLETENESS: Rule = Rule::builtin("S12", "leader completeness", Safety);
pub const S12_TERM: Rule = Rule::builtin("S12", "term never goes back", Safety);
pub const S12_VOTE: Rule = Rule::builtin("S12", "vote never changes within a term", Safety);
pub const S13: Rule = Rule::builtin("S13", "linearizability", Safety);
pub const S13_UNKNOWN: Rule = Rule::builtin("S13", "linearizability unknown", Warning);
pub const S14: Rule = Rule::builtin("S14", "compare-and-set by version", Safety);
pub const S15: Rule = Rule::builtin("S15", "durability", Safety);
pub const S16: Rule = Rule::builtin("S16", "watches", Safety);
pub const S17: Rule = Rule::builtin("S17", "health", Safety);
pub const L1: Rule = Rule::builtin("L1", "liveness", Liveness);
pub const L2: Rule = Rule::builtin("L2", "acquirable", Liveness);
pub const L3_TEMP_KEYS: Rule = Rule::builtin("L3", "temp keys", Liveness);
pub const L3_ON_TIME: Rule = Rule::builtin("L3", "expiry on time", Liveness);
pub const L4: Rule = Rule::builtin("L4", "calls return", Liveness);
pub const L5: Rule = Rule::builtin("L5", "watchers", Liveness);
pub const L6: Rule = Rule::builtin("L6", "followers catch up", Liveness);
/// A user check (an `always` invariant, a model, an `eventually`) that panicked: reported as a
/// failure of that seed, naming the check.
pub const U0: Rule = Rule::builtin("U0", "user check panicked", Safety);

/// Every built-in rule.
pub const BUILTIN: &[Rule] = &[
    S1,
    S3,
    S4,
    S5,
    S6,
    S7,
    S8,
    S9,
    S10,
    S11,
    S12_ONE_LEADER,
    S12_STATE_MACHINE,
    S12_COMPLETENESS,
    S12_TERM,
    S12_VOTE,
    S13,
    S13_UNKNOWN,
    S14,
    S15,
    S16,
    S17,
    L1,
    L2,
    L3_TEMP_KEYS,
    L3_ON_TIME,
    L4,
    L5,
    L6,
    U0,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_matches_exactly_never_by_prefix() {
        assert!(S1.matches("S1"));
        assert!(S1.matches("S1 exclusivity"));
        assert!(!S10.matches("S1"));
        assert!(!S1.matches("S"));
        assert!(!S1.matches("S1 excl"));
        assert!(S12_VOTE.matches("S12"));
    }

    #[test]
    fn names_read_back_as_the_same_rule() {
        for r in BUILTIN {
            let json = serde_json::to_string(r).unwrap();
            let back: Rule = serde_json::from_str(&json).unwrap();
            assert_eq!(&back, r);
        }
        let u = Rule::user("JOB1", "each slot once", RuleKind::Safety).unwrap();
        let back: Rule = serde_json::from_str(&serde_json::to_string(&u).unwrap()).unwrap();
        assert_eq!(back, u);
    }

    #[test]
    fn user_rules_refuse_bad_and_reserved_ids() {
        assert!(matches!(
            Rule::user("S1", "mine", Safety),
            Err(RuleError::Reserved(..))
        ));
        assert!(matches!(
            Rule::user("s13", "mine", Safety),
            Err(RuleError::Reserved(..))
        ));
        assert!(matches!(
            Rule::user("", "x", Safety),
            Err(RuleError::BadId(_))
        ));
        assert!(matches!(
            Rule::user("A B", "x", Safety),
            Err(RuleError::BadId(_))
        ));
        assert!(matches!(
            Rule::user("A", " ", Safety),
            Err(RuleError::BadTitle { .. })
        ));
        assert!(matches!(
            Rule::user("A", "two\nlines", Safety),
            Err(RuleError::BadTitle { .. })
        ));
    }
}
