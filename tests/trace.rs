//! Tracing of a run: virtual time and node names on every line. In a test binary of its own:
//! tracing caches per-callsite interest process-wide, and other tests running untraced on
//! other threads at the same time would race with it.

use std::time::Duration;
use tenure::sim::{run, RunConfig};

#[test]
fn a_traced_run_names_nodes_and_virtual_time_and_keeps_its_digest() {
    use tenure::sim::trace::{parse_level, subscriber, Captured};
    let config = RunConfig {
        duration: Duration::from_secs(3),
        ..RunConfig::default()
    };
    let plain = run(&config, 9).unwrap();
    let out = Captured::default();
    let traced = tracing::subscriber::with_default(
        subscriber(parse_level("debug").unwrap(), out.clone()),
        || run(&config, 9).unwrap(),
    );
    assert_eq!(
        plain.digest, traced.digest,
        "tracing does not change the run"
    );
    let text = out.text();
    let role = text
        .lines()
        .find(|l| l.contains(r#""type":"role""#) && l.contains("name=\"agent-"))
        .unwrap_or_else(|| panic!("no role change traced:\n{}", &text[..text.len().min(2000)]));
    // "    0.153201s  INFO node{id=2 name=\"agent-1\"}: tenure: {...}"
    let time = role.split_whitespace().next().unwrap();
    assert!(
        time.ends_with('s') && time.trim_end_matches('s').parse::<f64>().is_ok(),
        "{role}"
    );
    assert!(role.contains("INFO"), "{role}");
    assert!(text
        .lines()
        .any(|l| l.contains("name=\"client-1\"") && l.contains(r#""type":"invoke""#)));
    assert!(parse_level("loud")
        .unwrap_err()
        .contains("unknown trace level"));
}
