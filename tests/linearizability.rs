//! The linearizability checker against histories with known verdicts: the 102 Jepsen etcd
//! histories of porcupine's test data (tests/data/porcupine-jepsen-etcd, MIT licence), and
//! hand-made histories for every model, each one that passes and one that breaks.

use std::path::Path;
use tenure::sim::lin::input::{self, operations, pair, Format, FromRaw};
use tenure::sim::lin::models::{Agency, Kv, Mutex, Register, Storage};
use tenure::sim::lin::{check, Budget, Checked, Verdict};

fn check_text<M: FromRaw>(model: &M, text: &str, format: Format) -> Checked {
    let events = input::read(text, format).expect("the history reads");
    let (raw, _failed) = pair(&events).expect("calls pair with completions");
    let (ops, _skipped) = operations(model, &raw).expect("operations read");
    check(model, &ops, Budget::default())
}

#[test]
fn agrees_with_every_jepsen_etcd_verdict() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/porcupine-jepsen-etcd");
    let verdicts = std::fs::read_to_string(dir.join("verdicts.tsv")).unwrap();
    let mut checked = 0;
    let mut disagree = Vec::new();
    let (mut linearizable, mut not) = (0, 0);
    for line in verdicts.lines().skip(1) {
        let (file, expected) = line.split_once('\t').expect("file<TAB>verdict");
        let expected = match expected.trim() {
            "true" => Verdict::Linearizable,
            "false" => Verdict::NotLinearizable,
            other => panic!("verdict {other:?}"),
        };
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        assert_eq!(input::detect(&text), Format::JepsenLog);
        let got = check_text(&Register, &text, Format::JepsenLog);
        if got.verdict != expected {
            disagree.push(format!("{file}: expected {expected:?}, got {:?}", got.verdict));
        }
        if got.verdict == Verdict::NotLinearizable {
            not += 1;
            let (_, f) = got.failures().next().expect("a failure is explained");
            assert!(f.prefix_ops > 0 && !f.states.is_empty(), "{file}: {f:?}");
        } else {
            linearizable += 1;
        }
        checked += 1;
    }
    assert_eq!(checked, 102);
    assert!(disagree.is_empty(), "{disagree:#?}");
    assert_eq!((linearizable, not), (23, 79));
}
