//! The built-in KV clients' workload: reads, writes and compares-and-sets of the registers.

use super::*;
use crate::history::Completion;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tenure_core::agency::Agency;

/// One client's mixed workload until `until` (true time): unique durability writes under
/// `/w/<process>/`, and reads, writes and compare-and-sets of the registers `/r/<k>`.
pub(crate) async fn workload(p: Process, registers: usize, pause: Duration, until: Duration) {
    let mut n = 0u64;
    let mut seen: BTreeMap<usize, Value> = BTreeMap::new();
    while p.rec.true_now() < until {
        let r = (madsim::rand::random::<u64>() % registers.max(1) as u64) as usize;
        let reg = key(&format!("/r/{r}"));
        let unique = json!(p.id * 1_000_000 + n);
        match madsim::rand::random::<u64>() % 10 {
            0..=2 => {
                let k = key(&format!("/w/{}/{n}", p.id));
                let v = json!(n);
                p.op("write", &k, v.clone(), async {
                    p.agency
                        .write_key(&k, v.clone(), None, None)
                        .await
                        .map(|_| v)
                })
                .await;
            }
            3..=5 => {
                let (res, v) = p
                    .op("read", &reg, Value::Null, p.agency.read_key(&reg))
                    .await;
                if res == Completion::Ok {
                    seen.insert(r, v);
                }
            }
            6..=7 => {
                p.op("write", &reg, unique.clone(), async {
                    p.agency
                        .write_key(&reg, unique.clone(), None, None)
                        .await
                        .map(|_| unique.clone())
                })
                .await;
            }
            _ => match seen.get(&r).cloned() {
                Some(old) if !old.is_null() => {
                    let arg = json!([old.clone(), unique.clone()]);
                    p.op("cas", &reg, arg, async {
                        p.agency
                            .write_key_if_equal_to(&reg, unique.clone(), old.clone(), None)
                            .await
                            .map(|_| unique.clone())
                    })
                    .await;
                }
                _ => {
                    let (res, v) = p
                        .op("read", &reg, Value::Null, p.agency.read_key(&reg))
                        .await;
                    if res == Completion::Ok {
                        seen.insert(r, v);
                    }
                }
            },
        }
        n += 1;
        madsim::time::sleep(pause).await;
    }
}
