//! Histories as other tools wrote them, each held to its published verdict: Knossos's test
//! data (EDN vectors and lists, comments, nemesis entries; tests/data/knossos, EPL) and
//! porcupine's key-value histories (a missing key reads as ""; tests/data/porcupine-kv, MIT).
//! The checks go through `tenure check`'s own entry point, so format detection, the model
//! options and the "nothing to check" rule are the command's.

use std::path::{Path, PathBuf};
use tenure::scenarios::check::{check_text, CheckOptions, ModelName};
use tenure::sim::lin::Verdict;

fn data(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(dir)
}

/// Every `.edn` file under `dir`, sorted.
fn edn_files(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            all.extend(edn_files(&p));
        } else if p.extension().is_some_and(|x| x == "edn") {
            all.push(p);
        }
    }
    all.sort();
    all
}

fn verdict(path: &Path, opts: &CheckOptions) -> Result<Verdict, String> {
    let text = std::fs::read_to_string(path).unwrap();
    let r = check_text(&text, opts)?;
    Ok(r.linearizability.expect("a model check").verdict)
}

#[test]
fn knossos_histories_get_their_published_verdicts() {
    let root = data("knossos");
    let (mut good, mut bad, mut nothing) = (0, 0, 0);
    let mut wrong = Vec::new();
    for path in edn_files(&root) {
        let rel = path.strip_prefix(&root).unwrap().display().to_string();
        // The multi-register history starts with x = 0 and y = 0, as its first line says.
        let (model, initial) = if rel.starts_with("mutex") {
            (ModelName::Mutex, None)
        } else if rel.starts_with("multi-register") {
            (ModelName::MultiRegister, Some("0".to_string()))
        } else {
            (ModelName::Register, None)
        };
        let opts = CheckOptions {
            model: Some(model),
            initial,
            ..CheckOptions::default()
        };
        let expected = if rel.contains("/good/") {
            Verdict::Linearizable
        } else {
            Verdict::NotLinearizable
        };
        match verdict(&path, &opts) {
            Ok(v) if v == expected => {
                if v == Verdict::Linearizable {
                    good += 1
                } else {
                    bad += 1
                }
            }
            Ok(v) => wrong.push(format!("{rel}: {v:?}, published {expected:?}")),
            // Nothing checked is no pass: a good history of only failed calls or only nemesis
            // entries.
            Err(e) if e.starts_with("nothing to check") && expected == Verdict::Linearizable => {
                nothing += 1
            }
            Err(e) => wrong.push(format!("{rel}: {e}")),
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!((good, bad, nothing), (110, 8, 4));
}

#[test]
fn porcupine_key_value_histories_get_their_published_verdicts() {
    let opts = CheckOptions {
        model: Some(ModelName::Kv),
        initial: Some(String::new()),
        ..CheckOptions::default()
    };
    for clients in ["c01", "c10", "c50"] {
        for (kind, expected) in [
            ("ok", Verdict::Linearizable),
            ("bad", Verdict::NotLinearizable),
        ] {
            let path = data("porcupine-kv").join(format!("{clients}-{kind}.txt"));
            assert_eq!(verdict(&path, &opts), Ok(expected), "{}", path.display());
        }
    }
    // Without the convention a never-written key reads as no value, and the ok histories
    // (which read "" from such keys) are rightly refused.
    let plain = CheckOptions {
        model: Some(ModelName::Kv),
        ..CheckOptions::default()
    };
    let ok = data("porcupine-kv").join("c10-ok.txt");
    assert_eq!(verdict(&ok, &plain), Ok(Verdict::NotLinearizable));
}
