//! Keys of the agency store: paths such as `/arango/Plan/x`, held as their segments.
//!
//! A key is a list of non-empty segments. Parsed from a path, a segment never contains `/`;
//! the flat families (hmetcd, Storage) keep a user's whole key, slashes included, as one
//! segment under their own namespace, so range scans compare the user's strings byte by byte.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A path in the agency tree. The empty key (no segments) is the root.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Deserialize)]
#[serde(try_from = "String")]
pub struct Key {
    segments: Vec<String>,
}

/// Why a key, a name or a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key {0:?} must start with '/'")]
    NotAbsolute(String),
    #[error("key {0:?} has an empty segment (two '/' in a row, or a trailing '/')")]
    EmptySegment(String),
    #[error("key segment must not be empty")]
    EmptyName,
    #[error("{what} {value:?} is invalid: {why}")]
    InvalidName {
        what: &'static str,
        value: String,
        why: &'static str,
    },
}

impl Key {
    /// The root of the tree: reading it returns the whole store.
    pub fn root() -> Key {
        Key::default()
    }

    /// Parses a path: `/a/b/c`. `/` alone is the root. No empty segment is allowed.
    pub fn parse(path: &str) -> Result<Key, KeyError> {
        if !path.starts_with('/') {
            return Err(KeyError::NotAbsolute(path.to_string()));
        }
        if path == "/" {
            return Ok(Key::root());
        }
        let mut segments = Vec::new();
        for segment in path[1..].split('/') {
            if segment.is_empty() {
                return Err(KeyError::EmptySegment(path.to_string()));
            }
            segments.push(segment.to_string());
        }
        Ok(Key { segments })
    }

    /// Builds a key from segments (as the agency's `[]string` keys). Segments may contain
    /// `/`; none may be empty.
    pub fn from_segments<S: AsRef<str>>(segments: &[S]) -> Result<Key, KeyError> {
        let mut out = Vec::with_capacity(segments.len());
        for s in segments {
            if s.as_ref().is_empty() {
                return Err(KeyError::EmptyName);
            }
            out.push(s.as_ref().to_string());
        }
        Ok(Key { segments: out })
    }

    /// This key with one more segment; the segment must not be empty.
    pub fn child(&self, segment: &str) -> Result<Key, KeyError> {
        if segment.is_empty() {
            return Err(KeyError::EmptyName);
        }
        let mut segments = self.segments.clone();
        segments.push(segment.to_string());
        Ok(Key { segments })
    }

    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    pub fn len(&self) -> usize {
        self.segments.len()
    }

    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.is_root()
    }

    /// The key one level up; the root has none.
    pub fn parent(&self) -> Option<Key> {
        if self.segments.is_empty() {
            None
        } else {
            Some(Key {
                segments: self.segments[..self.segments.len() - 1].to_vec(),
            })
        }
    }

    /// The first `n` segments.
    pub fn prefix(&self, n: usize) -> Key {
        Key {
            segments: self.segments[..n.min(self.segments.len())].to_vec(),
        }
    }

    /// True when `self` is `other` or lies under it.
    pub fn starts_with(&self, other: &Key) -> bool {
        self.segments.len() >= other.segments.len()
            && self.segments[..other.segments.len()] == other.segments[..]
    }

    /// True when one key lies under the other (or they are equal): a change to one can
    /// change what a reader of the other sees.
    pub fn is_related(&self, other: &Key) -> bool {
        self.starts_with(other) || other.starts_with(self)
    }

    /// The segments of `self` below `ancestor`, if `self` lies under it.
    pub fn strip_prefix(&self, ancestor: &Key) -> Option<&[String]> {
        if self.starts_with(ancestor) {
            Some(&self.segments[ancestor.segments.len()..])
        } else {
            None
        }
    }
}

/// A key compares, orders and hashes as its segments do (the derives above see only them), so
/// maps keyed by `Key` can be searched by a slice of segments: an ancestor without a new key.
impl std::borrow::Borrow<[String]> for Key {
    fn borrow(&self) -> &[String] {
        &self.segments
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() {
            return f.write_str("/");
        }
        for s in &self.segments {
            f.write_str("/")?;
            if !s.contains(['/', '%']) {
                f.write_str(s)?;
                continue;
            }
            // A segment holding '/' or '%' (from a flat family's key) is escaped so that
            // the printed path parses back to the same key.
            for c in s.chars() {
                match c {
                    '/' => f.write_str("%2F")?,
                    '%' => f.write_str("%25")?,
                    c => fmt::Write::write_char(f, c)?,
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({self})")
    }
}

/// As its path (the `Display` form), written straight into the serializer: a snapshot writes
/// every key of the store.
impl Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl From<Key> for String {
    fn from(k: Key) -> String {
        k.to_string()
    }
}

impl TryFrom<String> for Key {
    type Error = KeyError;
    fn try_from(s: String) -> Result<Key, KeyError> {
        let key = Key::parse(&s)?;
        let segments = key
            .segments
            .into_iter()
            .map(|s| unescape(&s))
            .collect::<Vec<_>>();
        Ok(Key { segments })
    }
}

impl std::str::FromStr for Key {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Key, KeyError> {
        Key::try_from(s.to_string())
    }
}

fn unescape(s: &str) -> String {
    s.replace("%2F", "/").replace("%25", "%")
}

/// Juju's `ValidateString`: a lease or holder name must be non-empty and hold no whitespace
/// and none of `.#$`.
pub fn validate_string(what: &'static str, s: &str) -> Result<(), KeyError> {
    let why = if s.is_empty() {
        "must not be empty"
    } else if s.chars().any(char::is_whitespace) {
        "must not contain whitespace"
    } else if s.chars().any(|c| matches!(c, '.' | '#' | '$')) {
        "must not contain any of '.', '#', '$'"
    } else {
        return Ok(());
    };
    Err(KeyError::InvalidName {
        what,
        value: s.to_string(),
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_of_keys_is_searched_by_segments() {
        let keys = ["/", "/a", "/a/b", "/a/b/c", "/a/bc", "/b", "/a b"];
        let mut map = std::collections::BTreeMap::new();
        for k in keys {
            map.insert(Key::parse(k).unwrap(), k);
        }
        for k in keys {
            let key = Key::parse(k).unwrap();
            assert_eq!(map.get(key.segments()), Some(&k));
            for n in 0..key.len() {
                let by_slice = map.get(&key.segments()[..n]);
                assert_eq!(by_slice, map.get(&key.prefix(n)));
            }
        }
        // Ordered as their segments are, so `Borrow` agrees with `Ord`.
        let mut sorted: Vec<Key> = keys.iter().map(|k| Key::parse(k).unwrap()).collect();
        sorted.sort();
        let segs: Vec<&[String]> = sorted.iter().map(|k| k.segments()).collect();
        assert!(segs.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn parses_paths() {
        let k = Key::parse("/a/b/c").unwrap();
        assert_eq!(k.segments(), &["a", "b", "c"]);
        assert_eq!(k.to_string(), "/a/b/c");
        assert!(Key::parse("/").unwrap().is_root());
        assert_eq!(
            Key::parse("a/b"),
            Err(KeyError::NotAbsolute("a/b".to_string()))
        );
        assert!(matches!(
            Key::parse("/a//b"),
            Err(KeyError::EmptySegment(_))
        ));
        assert!(matches!(Key::parse("/a/"), Err(KeyError::EmptySegment(_))));
        assert!(matches!(Key::parse(""), Err(KeyError::NotAbsolute(_))));
    }

    #[test]
    fn relations() {
        let a = Key::parse("/a").unwrap();
        let ab = Key::parse("/a/b").unwrap();
        let ac = Key::parse("/a/c").unwrap();
        assert!(ab.starts_with(&a));
        assert!(!a.starts_with(&ab));
        assert!(a.is_related(&ab) && ab.is_related(&a));
        assert!(!ab.is_related(&ac));
        assert_eq!(ab.parent(), Some(a.clone()));
        assert_eq!(ab.strip_prefix(&a).unwrap(), &["b".to_string()]);
        assert!(Key::root().is_related(&ab));
    }

    #[test]
    fn flat_segments_round_trip_through_text() {
        let k = Key::from_segments(&["kv", "/x/y%z"]).unwrap();
        let text = k.to_string();
        assert_eq!(text, "/kv/%2Fx%2Fy%25z");
        let back: Key = text.parse().unwrap();
        assert_eq!(back, k);
        let json = serde_json::to_string(&k).unwrap();
        let back: Key = serde_json::from_str(&json).unwrap();
        assert_eq!(back, k);
        assert_eq!(Key::from_segments(&["a", ""]), Err(KeyError::EmptyName));
    }

    #[test]
    fn validate_string_rules() {
        assert!(validate_string("holder", "unit-0").is_ok());
        for bad in ["", "a b", "a\tb", "a.b", "a#b", "a$b"] {
            assert!(validate_string("holder", bad).is_err(), "{bad:?}");
        }
        let e = validate_string("lease", "a.b").unwrap_err();
        assert!(e.to_string().contains("lease \"a.b\""));
    }
}
