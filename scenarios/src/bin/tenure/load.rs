//! `tenure load`: a workload against a real cluster, measured: KV writes, linearizable reads
//! and lock acquire+release cycles, each by N concurrent clients for a while, with
//! throughput and p50/p99 latency. Without an address it starts its own 3-agent cluster on
//! 127.0.0.1 (fsync on, mutual TLS) in a temporary directory. Every loop is bounded in time
//! and in count.

use clap::Args as ClapArgs;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tenure_core::agency::{Agency, AgencyApi, Lock};
use tenure_core::{Key, StoreClient};

#[derive(ClapArgs)]
pub struct Args {
    /// The cluster (`tenure://...`); none: a local 3-agent cluster started for the run.
    url: Option<String>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds per phase (writes, reads, locks).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Prints the figures as JSON.
    #[arg(long)]
    json: bool,
    /// The cluster it starts speaks plaintext instead of mutual TLS (to compare with a
    /// plaintext etcd).
    #[arg(long)]
    plaintext: bool,
}

#[derive(serde::Serialize)]
struct Phase {
    name: &'static str,
    ops: usize,
    errors: usize,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// At most this many operations per client and phase, whatever the time.
const MAX_OPS: usize = 1_000_000;

impl Args {
    pub fn run(self) -> ExitCode {
        if !(1..=1024).contains(&self.clients) {
            return crate::usage(format!("--clients: {} is not 1 to 1024", self.clients));
        }
        if !(1..=3600).contains(&self.seconds) {
            return crate::usage(format!("--seconds: {} is not 1 to 3600", self.seconds));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime starts");
        rt.block_on(self.measure())
    }

    async fn measure(self) -> ExitCode {
        let dir = std::env::temp_dir().join(format!("tenure-load-{}", std::process::id()));
        let mut own = None;
        let client = match &self.url {
            Some(u) => match tenure_server::open(u) {
                Ok(c) => c,
                Err(e) => return crate::usage(e),
            },
            None => {
                let certs = dir.join("certs");
                if !self.plaintext {
                    if let Err(e) = tenure_server::tls::generate(&certs, 3) {
                        return crate::usage(e);
                    }
                }
                let certs = (!self.plaintext).then_some(certs.as_path());
                match tenure_server::LocalCluster::start(3, &dir, "load", 0, certs).await {
                    Ok(c) => {
                        let client = c.client();
                        own = Some(c);
                        client
                    }
                    Err(e) => return crate::usage(e),
                }
            }
        };
        let until = Instant::now() + Duration::from_secs(20);
        while client.health(false).await.is_err() {
            if Instant::now() > until {
                eprintln!("tenure: no healthy cluster within 20 s");
                return ExitCode::from(1);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let store: Arc<dyn StoreClient> = Arc::new(client);
        let mut phases = Vec::new();
        for name in ["writes", "reads", "lock cycles"] {
            phases.push(self.phase(name, &store).await);
        }
        if self.json {
            crate::print_json(&phases);
        } else {
            println!("{} clients, {} s a phase", self.clients, self.seconds);
            for p in &phases {
                println!(
                    "{:<12} {:>9.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} ops, {} errors)",
                    p.name, p.per_second, p.p50_ms, p.p99_ms, p.ops, p.errors
                );
            }
        }
        if let Some(c) = own {
            c.stop().await;
            let _ = std::fs::remove_dir_all(&dir);
        }
        ExitCode::SUCCESS
    }

    async fn phase(&self, name: &'static str, store: &Arc<dyn StoreClient>) -> Phase {
        let start = Instant::now();
        let end = start + Duration::from_secs(self.seconds);
        let mut tasks = Vec::new();
        for c in 0..self.clients {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let agency = AgencyApi::new(store.clone());
                let lock = Lock::new(
                    Arc::new(agency.clone()),
                    store.clock(),
                    Key::parse(&format!("/load/locks/{c}")).expect("a valid key"),
                    &format!("load-{c}"),
                    Duration::from_secs(10),
                )
                .expect("valid lock settings");
                let key = Key::parse(&format!("/load/kv/{c}")).expect("a valid key");
                let (mut lat, mut errors) = (Vec::new(), 0usize);
                for n in 0..MAX_OPS {
                    if Instant::now() >= end {
                        break;
                    }
                    let t = Instant::now();
                    let ok = match name {
                        "writes" => agency
                            .write_key(&key, serde_json::json!(n), None, None)
                            .await
                            .is_ok(),
                        "reads" => agency.read_key(&key).await.is_ok(),
                        _ => lock.lock().await.is_ok() && lock.unlock().await.is_ok(),
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
            if let Ok((l, e)) = t.await {
                all.extend(l);
                errors += e;
            }
        }
        let took = start.elapsed().as_secs_f64();
        all.sort();
        let at = |q: f64| {
            all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        Phase {
            name,
            ops: all.len(),
            errors,
            per_second: all.len() as f64 / took,
            p50_ms: at(0.50),
            p99_ms: at(0.99),
        }
    }
}
