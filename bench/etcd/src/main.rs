//! `tenure-bench-etcd --endpoints URL,... [--clients 16] [--seconds 5]`: the workload of
//! `tenure load` against etcd: puts, linearizable gets (etcd's default), and lock
//! acquire+release cycles (etcd's lock API under a lease each client holds), each by N
//! concurrent clients for the phase, with throughput and p50/p99 latency. Bounded in time
//! and count.

use std::time::{Duration, Instant};

fn main() {
    let mut endpoints = Vec::new();
    let (mut clients, mut seconds) = (16usize, 5u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--endpoints" => {
                endpoints = args.next().expect("--endpoints URL,...").split(',').map(String::from).collect()
            }
            "--clients" => clients = args.next().and_then(|s| s.parse().ok()).expect("--clients N"),
            "--seconds" => seconds = args.next().and_then(|s| s.parse().ok()).expect("--seconds N"),
            other => panic!("unknown argument {other:?}"),
        }
    }
    assert!(!endpoints.is_empty(), "--endpoints URL,... is required");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        println!("{clients} clients, {seconds} s a phase (etcd)");
        for phase in ["writes", "reads", "lock cycles"] {
            let start = Instant::now();
            let end = start + Duration::from_secs(seconds);
            let mut tasks = Vec::new();
            for c in 0..clients {
                let eps = endpoints.clone();
                tasks.push(tokio::spawn(async move {
                    let mut cl = etcd_client::Client::connect(eps, None).await.expect("etcd connects");
                    let key = format!("/load/kv/{c}");
                    cl.put(key.clone(), "0", None).await.expect("a first put");
                    let lease = cl.lease_grant(30, None).await.expect("a lease").id();
                    let (mut lat, mut errors) = (Vec::new(), 0usize);
                    for n in 0..1_000_000usize {
                        if Instant::now() >= end {
                            break;
                        }
                        let t = Instant::now();
                        let ok = match phase {
                            "writes" => cl.put(key.clone(), n.to_string(), None).await.is_ok(),
                            "reads" => cl.get(key.clone(), None).await.is_ok(),
                            _ => match cl
                                .lock(
                                    format!("/load/locks/{c}"),
                                    Some(etcd_client::LockOptions::new().with_lease(lease)),
                                )
                                .await
                            {
                                Ok(l) => cl.unlock(l.key().to_vec()).await.is_ok(),
                                Err(_) => false,
                            },
                        };
                        if ok {
                            lat.push(t.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                    (lat, errors)
                }));
            }
            let (mut all, mut errors) = (Vec::new(), 0);
            for t in tasks {
                let (l, e) = t.await.unwrap();
                all.extend(l);
                errors += e;
            }
            let took = start.elapsed().as_secs_f64();
            all.sort();
            let at = |q: f64| {
                all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
                    .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
            };
            println!(
                "{:<12} {:>9.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} ops, {} errors)",
                phase,
                all.len() as f64 / took,
                at(0.5),
                at(0.99),
                all.len(),
                errors
            );
        }
    });
}
