//! A run's history as a ShiViz log (<https://bestchai.bitbucket.io/shiviz/>): every record
//! becomes an event of its node with a vector clock, and each delivered message merges the
//! clock its sending had, so ShiViz draws the space-time diagram of the run.
//!
//! The file starts with the line ShiViz parses each event with and an empty line (one
//! execution), then one line per event: `host {"host": n, ...} true-µs text`. A node's own
//! entry counts its events from 1, as ShiViz requires.

use crate::history::{Event, History};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The regular expression ShiViz reads each line with (its first line).
pub const PARSER: &str = r"(?<host>\S+) (?<clock>\{[^}]*\}) (?<us>\d+) (?<event>.*)";

/// The ShiViz log of `history`, or why there is none: a history recorded without its
/// messages would have no edges between nodes.
pub fn log(history: &History) -> Result<String, String> {
    log_window(history, 0..u64::MAX).map(|(text, _)| text)
}

/// The ShiViz log of the records of `history` in true time `window` (µs), and how many events
/// it has. Clocks count from the window's start: a message sent before it arrives as a local
/// event.
pub fn log_window(
    history: &History,
    window: std::ops::Range<u64>,
) -> Result<(String, usize), String> {
    let has_messages = history
        .records
        .iter()
        .any(|r| matches!(r.event, Event::Message { .. }));
    if !has_messages {
        return Err(
            "the history has no messages: a ShiViz log needs a run that records them".into(),
        );
    }
    let mut clocks: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    let mut sent: BTreeMap<u64, BTreeMap<&str, u64>> = BTreeMap::new();
    let mut out = String::new();
    out.push_str(PARSER);
    out.push_str("\n\n");
    let mut events = 0;
    for r in &history.records {
        if !window.contains(&r.t_us) {
            continue;
        }
        events += 1;
        let host = r.node.as_str();
        let mut clock = clocks.remove(host).unwrap_or_default();
        *clock.entry(host).or_default() += 1;
        let text = match &r.event {
            Event::Message {
                from,
                to,
                delivered,
                summary,
                id,
            } => {
                if *delivered {
                    if let Some(theirs) = sent.remove(id) {
                        for (h, n) in theirs {
                            let mine = clock.entry(h).or_default();
                            *mine = (*mine).max(n);
                        }
                    }
                    format!("receive {summary} from {from}")
                } else {
                    sent.insert(*id, clock.clone());
                    format!("send {summary} to {to}")
                }
            }
            event => serde_json::to_string(event).expect("records serialize"),
        };
        let _ = write!(out, "{host} {{");
        for (i, (h, n)) in clock.iter().enumerate() {
            let _ = write!(out, "{}\"{h}\": {n}", if i == 0 { "" } else { ", " });
        }
        // One event per line: the text never breaks it.
        let _ = writeln!(out, "}} {} {}", r.t_us, text.replace(['\n', '\r'], " "));
        clocks.insert(host, clock);
    }
    if events == 0 {
        return Err(format!(
            "no records between {} and {} us",
            window.start, window.end
        ));
    }
    Ok((out, events))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Record;

    fn msg(t_us: u64, node: &str, from: &str, to: &str, delivered: bool, id: u64) -> Record {
        Record {
            t_us,
            node: node.into(),
            event: Event::Message {
                from: from.into(),
                to: to.into(),
                delivered,
                summary: format!("m{id}"),
                id,
            },
        }
    }

    #[test]
    fn deliveries_merge_the_clock_of_their_sending() {
        let check = |t_us, node: &str| Record {
            t_us,
            node: node.into(),
            event: Event::Check {
                name: "x".into(),
                ok: true,
                detail: String::new(),
            },
        };
        let h = History {
            records: vec![
                check(0, "a"),
                msg(1, "a", "a", "10.0.0.2:1", false, 1),
                check(2, "b"),
                msg(3, "b", "10.0.0.1:1", "b", true, 1),
                msg(4, "b", "b", "10.0.0.1:1", false, 2),
                msg(5, "a", "10.0.0.2:1", "a", true, 2),
            ],
        };
        let text = log(&h).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], PARSER);
        assert_eq!(lines[1], "");
        let clocks: Vec<&str> = lines[2..]
            .iter()
            .map(|l| &l[l.find('{').unwrap()..=l.find('}').unwrap()])
            .collect();
        assert_eq!(
            clocks,
            [
                r#"{"a": 1}"#,
                r#"{"a": 2}"#,
                r#"{"b": 1}"#,
                r#"{"a": 2, "b": 2}"#,
                r#"{"a": 2, "b": 3}"#,
                r#"{"a": 3, "b": 3}"#,
            ]
        );
        assert!(lines[5].ends_with("receive m1 from 10.0.0.1:1"));
        // A window from the delivery of m1 on: it arrives as a local event.
        let (text, events) = log_window(&h, 3..10).unwrap();
        assert_eq!(events, 3);
        assert!(text
            .lines()
            .nth(2)
            .unwrap()
            .starts_with(r#"b {"b": 1} 3 receive m1"#));
        assert!(log_window(&h, 100..200).unwrap_err().contains("no records"));
        let e = log(&History {
            records: vec![check(0, "a")],
        })
        .unwrap_err();
        assert!(e.contains("no messages"), "{e}");
    }
}
