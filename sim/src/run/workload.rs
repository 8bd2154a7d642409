//! The built-in KV clients' workload: reads, writes and compares-and-sets of the registers,
//! written against the public [`Context`] as a user's process would be.

use crate::history::Completion;
use crate::world::{CallError, Context};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tenure_core::agency::Agency;
use tenure_core::Key;

/// `fut` recorded as the call `f` on `k` with `v` (the workload makes one call at a time).
async fn recorded<F, E>(ctx: &Context, f: &str, k: Key, v: Value, fut: F) -> (Completion, Value)
where
    F: std::future::Future<Output = Result<Value, E>>,
    E: CallError,
{
    ctx.call(f, &k.to_string(), v, fut)
        .await
        .expect("the workload makes one call at a time")
}

fn key(path: &str) -> Key {
    Key::parse(path).expect("the workload's keys are valid")
}

/// One client's mixed workload while the run's fault phase lasts: unique durability writes
/// under `/w/<process>/`, and reads, writes and compare-and-sets of the registers `/r/<k>`.
pub(crate) async fn workload(ctx: Context, registers: usize, pause: Duration) {
    let agency = ctx.agency();
    let mut n = 0u64;
    let mut seen: BTreeMap<usize, Value> = BTreeMap::new();
    while ctx.workload_running() {
        let r = (ctx.random() % registers.max(1) as u64) as usize;
        let reg = key(&format!("/r/{r}"));
        let unique = json!(ctx.id() * 1_000_000 + n);
        match ctx.random() % 10 {
            0..=2 => {
                let k = key(&format!("/w/{}/{n}", ctx.id()));
                let v = json!(n);
                let write = async {
                    agency
                        .write_key(&k, v.clone(), None, None)
                        .await
                        .map(|_| v.clone())
                };
                recorded(&ctx, "write", k.clone(), v.clone(), write).await;
            }
            3..=5 => {
                let read = async { agency.read_key(&reg).await };
                let (res, v) = recorded(&ctx, "read", reg.clone(), Value::Null, read).await;
                if res == Completion::Ok {
                    seen.insert(r, v);
                }
            }
            6..=7 => {
                let write = async {
                    agency
                        .write_key(&reg, unique.clone(), None, None)
                        .await
                        .map(|_| unique.clone())
                };
                recorded(&ctx, "write", reg.clone(), unique.clone(), write).await;
            }
            _ => match seen.get(&r).cloned() {
                Some(old) if !old.is_null() => {
                    let arg = json!([old.clone(), unique.clone()]);
                    let cas = async {
                        agency
                            .write_key_if_equal_to(&reg, unique.clone(), old.clone(), None)
                            .await
                            .map(|_| unique.clone())
                    };
                    recorded(&ctx, "cas", reg.clone(), arg, cas).await;
                }
                _ => {
                    let read = async { agency.read_key(&reg).await };
                    let (res, v) = recorded(&ctx, "read", reg.clone(), Value::Null, read).await;
                    if res == Completion::Ok {
                        seen.insert(r, v);
                    }
                }
            },
        }
        n += 1;
        ctx.sleep(pause).await;
    }
}
