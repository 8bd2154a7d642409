//! Planted bugs: switches that break the built-in actors on purpose, so a scenario can show
//! that the framework finds what it is meant to find. Every one is off unless a scenario (its
//! `bugs` setting) or the command line (`--bug NAME`) turns it on.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One planted bug, named in kebab case (`resource-skips-token-check`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// The fenced resource accepts every write whatever its token: a holder paused past its
    /// lease writes late and the write lands.
    ResourceSkipsTokenCheck,
}

/// The bugs a run plants.
pub type Bugs = BTreeSet<Bug>;

impl Bug {
    /// Every planted bug, in order.
    pub const ALL: &'static [Bug] = &[Bug::ResourceSkipsTokenCheck];

    /// Its kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Bug::ResourceSkipsTokenCheck => "resource-skips-token-check",
        }
    }

    /// What it breaks, in the rules' names.
    pub fn invariant(self) -> &'static str {
        match self {
            Bug::ResourceSkipsTokenCheck => "S10 fencing",
        }
    }

    /// A built-in scenario that finds it.
    pub fn scenario(self) -> &'static str {
        match self {
            Bug::ResourceSkipsTokenCheck => "paused-holder-unfenced",
        }
    }

    /// What it does.
    pub fn about(self) -> &'static str {
        match self {
            Bug::ResourceSkipsTokenCheck => {
                "the fenced resource skips the token check (a paused holder writes late)"
            }
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
}

impl std::fmt::Display for Bug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
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
}
