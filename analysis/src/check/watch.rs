//! S16 for watches and change callbacks: every change under the watched key, in revision
//! order, with no gap and no duplicate, against the agents' own record of changes.

use super::*;
use crate::history::{Event, History};
use std::collections::BTreeMap;
use tenure_core::rule;
use tenure_core::Key;

/// S16 for watches: each watcher, from each start revision, receives every change the agents
/// applied under the watched key after it, in revision order, with no gap and no duplicate,
/// each with the version the agents left (changes as the agents recorded them, `Change`).
pub fn watch_order(h: &History) -> Vec<Violation> {
    // The committed changes, by revision (every agent records its own applies).
    let mut truth: BTreeMap<u64, (&str, u64, usize)> = BTreeMap::new();
    for (i, r) in h.records.iter().enumerate() {
        if let Event::Change {
            key,
            revision,
            version,
            ..
        } = &r.event
        {
            truth
                .entry(*revision)
                .or_insert((key.as_str(), *version, i));
        }
    }
    // Per watcher and stream: where it started, and the last revision it received.
    let mut watches: BTreeMap<(u64, &str), (&str, u64, u64)> = BTreeMap::new();
    let mut out = Vec::new();
    let report = |out: &mut Vec<Violation>, records: Vec<usize>, message: String| {
        out.push(Violation {
            rule: rule::S16,
            records,
            message,
        })
    };
    for (i, r) in h.records.iter().enumerate() {
        match &r.event {
            Event::WatchStart {
                process,
                stream,
                key,
                from,
            } => {
                watches.insert((*process, stream), (key.as_str(), *from, *from));
            }
            Event::Watched {
                process,
                stream,
                key,
                revision,
                version,
            } => {
                let Some((watched, from, last)) = watches.get_mut(&(*process, stream.as_str()))
                else {
                    report(
                        &mut out,
                        vec![i],
                        format!("watcher {process}'s {stream} received {key}@{revision} before it started ({})", at(r)),
                    );
                    continue;
                };
                if *revision <= *last {
                    report(
                        &mut out,
                        vec![i],
                        format!(
                            "watcher {process}'s {stream} received {key}@{revision} after revision {last}: {} ({})",
                            if revision == last { "a duplicate" } else { "out of order" },
                            at(r)
                        ),
                    );
                    continue;
                }
                let watched_key = Key::parse(watched).ok();
                let missed: Vec<u64> = truth
                    .range(*last + 1..*revision)
                    .filter(|(_, (k, _, _))| {
                        let k = Key::parse(k).ok();
                        matches!((&k, &watched_key), (Some(k), Some(w)) if k.starts_with(w))
                    })
                    .map(|(rev, _)| *rev)
                    .collect();
                if let Some(first) = missed.first() {
                    let (k, _, j) = truth[first];
                    report(
                        &mut out,
                        vec![truth[first].2, i],
                        format!(
                            "watcher {process}'s {stream} (of {watched} after revision {from}) missed {} change(s), first {k}@{first} (record {j}), and received {key}@{revision} next ({})",
                            missed.len(),
                            at(r)
                        ),
                    );
                }
                match truth.get(revision) {
                    Some((k, v, j)) if (*k, *v) != (key.as_str(), *version) => report(
                        &mut out,
                        vec![*j, i],
                        format!(
                            "watcher {process}'s {stream} received {key}@{revision} at version {version}, but the agents applied {k} at version {v} there ({})",
                            at(r)
                        ),
                    ),
                    None => report(
                        &mut out,
                        vec![i],
                        format!(
                            "watcher {process}'s {stream} received {key}@{revision}, a change no agent applied ({})",
                            at(r)
                        ),
                    ),
                    _ => {}
                }
                *last = *revision;
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::*;

    #[test]
    fn watchers_get_every_change_in_order_once() {
        let change = |t, agent, key: &str, revision, version| {
            rec(
                t,
                &format!("agent-{agent}"),
                Event::Change {
                    agent,
                    key: key.into(),
                    revision,
                    version,
                },
            )
        };
        let got = |t, key: &str, revision, version| {
            rec(
                t,
                "watcher-1",
                Event::Watched {
                    process: 9,
                    stream: "watch".into(),
                    key: key.into(),
                    revision,
                    version,
                },
            )
        };
        let start = |t, from| {
            rec(
                t,
                "watcher-1",
                Event::WatchStart {
                    process: 9,
                    stream: "watch".into(),
                    key: "/r".into(),
                    from,
                },
            )
        };
        // Changes at 4 (before the start), 6, 7, 9; two agents record each.
        let mut truth = Vec::new();
        for agent in [1, 2] {
            truth.extend([
                change(1, agent, "/r/0", 4, 1),
                change(2, agent, "/r/1", 6, 1),
                change(3, agent, "/r/0", 7, 2),
                change(4, agent, "/r/0", 9, 0),
            ]);
        }
        let h = |seen: Vec<Record>| {
            let mut records = truth.clone();
            records.push(start(5, 5));
            records.extend(seen);
            History { records }
        };
        let good = h(vec![
            got(6, "/r/1", 6, 1),
            got(7, "/r/0", 7, 2),
            got(8, "/r/0", 9, 0),
        ]);
        assert!(rules(&good).is_empty(), "{:?}", all(&good));
        // A restart (as after `Compacted`) may skip what lies before its new start.
        let restarted = h(vec![
            got(6, "/r/1", 6, 1),
            start(7, 8),
            got(8, "/r/0", 9, 0),
        ]);
        assert!(rules(&restarted).is_empty(), "{:?}", all(&restarted));
        for (what, seen) in [
            ("a gap", vec![got(6, "/r/1", 6, 1), got(8, "/r/0", 9, 0)]),
            (
                "a duplicate",
                vec![
                    got(6, "/r/1", 6, 1),
                    got(7, "/r/0", 7, 2),
                    got(7, "/r/0", 7, 2),
                ],
            ),
            (
                "out of order",
                vec![got(6, "/r/0", 7, 2), got(7, "/r/1", 6, 1)],
            ),
            ("a wrong version", vec![got(6, "/r/1", 6, 3)]),
            (
                "a change nobody applied",
                vec![got(6, "/r/1", 6, 1), got(7, "/r/2", 8, 1)],
            ),
        ] {
            let v = watch_order(&h(seen.clone()));
            let mut found = rules(&h(seen));
            found.dedup();
            assert_eq!(found, vec!["S16 watches"], "{what}: {v:?}");
        }
        // L5: the runner's failed catch-up check.
        let h = History {
            records: vec![rec(
                9,
                "runner",
                Event::Check {
                    name: "watchers".into(),
                    ok: false,
                    detail: "watchers [9] did not receive revision 12 within 5s".into(),
                },
            )],
        };
        assert_eq!(rules(&h), vec!["L5 watchers"]);
    }
}
