//! An agency lock on a real tenure cluster, from an ordinary tokio program.
//!
//! `real-lock [tenure://host:port,...] [--seconds N]`: takes the agency lock `/locks/job`,
//! keeps it (the library renews it at TTL/2), and every 100 ms, while it believes it holds
//! the lock, writes to a resource with its fencing token: a transaction that stores the token
//! only if the lock key is still this grant's (`if_created_at`), so a write from a holder that
//! lost the lock is refused by the agency itself. Without an address it starts its own
//! 3-agent cluster on 127.0.0.1 (data in a temporary directory) and, half way, kills the
//! leader and starts it again from its data: the lock and the writes go on. Prints what it
//! does; exit 0 when every write it believed it could make was accepted, 1 if one was
//! refused, 2 on bad arguments.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tenure_core::agency::{Agency, AgencyApi, AgencyError, Lock, WriteCondition};
use tenure_core::{Key, StoreClient};
use tenure_server::{LocalCluster, TcpClient};

struct Args {
    url: Option<String>,
    seconds: u64,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        url: None,
        seconds: 6,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--seconds" => {
                a.seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|s| (1..=3600).contains(s))
                    .ok_or("--seconds: a whole number from 1 to 3600")?
            }
            u if u.starts_with("tenure://") => a.url = Some(u.to_string()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("real-lock: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    rt.block_on(run(a))
}

async fn run(a: Args) -> ExitCode {
    let mut own = None;
    let client = match &a.url {
        Some(u) => match tenure_server::open(u) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("real-lock: {e}");
                return ExitCode::from(2);
            }
        },
        None => {
            let c = LocalCluster::temporary(3)
                .await
                .expect("a local cluster starts");
            println!("started    {}", c.url());
            let client = c.client();
            own = Some(c);
            client
        }
    };
    let leader = wait_for_leader(&client).await;
    println!("leader     agent {leader}");
    let store: Arc<dyn StoreClient> = Arc::new(client.clone());
    let agency = AgencyApi::new(store.clone());
    let lock_key = Key::parse("/locks/job").expect("a valid key");
    let lock = Lock::new(
        Arc::new(agency.clone()),
        store.clock(),
        lock_key.clone(),
        &format!("real-lock-{}", std::process::id()),
        Duration::from_secs(2),
    )
    .expect("valid lock settings");
    let token = loop {
        match lock.lock().await {
            Ok(t) => break t,
            Err(e) => {
                println!("waiting    {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    println!("locked     fencing token {token}");
    let resource = Key::parse("/resource/job").expect("a valid key");
    let start = Instant::now();
    let (mut written, mut refused, mut killed) = (0u64, 0u64, false);
    while start.elapsed() < Duration::from_secs(a.seconds) {
        if let (Some(c), false) = (own.as_mut(), killed) {
            if start.elapsed() >= Duration::from_secs(a.seconds) / 2 {
                let l = wait_for_leader(&client).await;
                c.kill(l);
                println!("killed     the leader, agent {l}");
                c.restart(l).await.expect("the agent restarts on its data");
                println!("restarted  agent {l} from its data directory");
                killed = true;
            }
        }
        let Some(token) = lock.fencing_token() else {
            println!("lost       the lock (its renewals failed): stopping writes");
            break;
        };
        // The agency refuses the write unless the lock key is still this grant's.
        let fence = WriteCondition::new().if_created_at(&lock_key, token);
        match agency
            .write_key(
                &resource,
                serde_json::json!({"token": token, "n": written}),
                None,
                Some(fence),
            )
            .await
        {
            Ok(_) => written += 1,
            Err(AgencyError::ConditionFailed { .. }) => {
                refused += 1;
                println!("refused    a write under token {token}: the grant is gone");
            }
            Err(e) => println!("retrying   {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = lock.unlock().await;
    println!("done       {written} fenced writes accepted, {refused} refused");
    if let Some(c) = own {
        c.stop().await;
    }
    if refused == 0 && written > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn wait_for_leader(c: &TcpClient) -> u64 {
    loop {
        if let Ok(Some(l)) = c.health(false).await {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
