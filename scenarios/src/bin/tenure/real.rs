//! The real service: `tenure agent` runs one agent, `tenure up` a local cluster in one
//! process, `tenure status` asks a cluster how it is. Real time, real sockets, real files:
//! nothing here is simulated (the madsim the binary links stays out of a tokio runtime).

use clap::Args as ClapArgs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tenure_core::agent::{AgentConfig, Request, Response};
use tenure_server::{AgentHandle, AgentOptions};

/// Logs to standard error (`RUST_LOG`-free: info and above from tenure).
fn logs() {
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_max_level(tracing::Level::INFO)
        .try_init();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}

fn parse_peers(s: &str) -> Result<Vec<SocketAddr>, String> {
    s.split(',')
        .map(|a| {
            a.trim()
                .parse::<SocketAddr>()
                .map_err(|_| format!("--peers: {a:?} is not host:port (an IP address and a port)"))
        })
        .collect()
}

/// Waits for SIGTERM or Ctrl-C.
async fn stopped() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM can be caught");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

#[derive(ClapArgs)]
pub struct AgentArgs {
    /// This agent's id, from 1: its place in `--peers`.
    #[arg(long)]
    id: u64,
    /// Every agent's address, agent 1 first, this one's included: `127.0.0.1:7001,...`.
    #[arg(long)]
    peers: String,
    /// The data directory (created private if missing).
    #[arg(long)]
    data: PathBuf,
    /// The cluster's id; clients and a data directory must name the same.
    #[arg(long, default_value = "tenure")]
    cluster: String,
    /// Local time between Raft ticks, in ms.
    #[arg(long, default_value_t = 10)]
    tick_ms: u64,
}

impl AgentArgs {
    pub fn run(self) -> ExitCode {
        let peers = match parse_peers(&self.peers) {
            Ok(p) => p,
            Err(e) => return crate::usage(e),
        };
        let opts = AgentOptions {
            id: self.id,
            cluster: self.cluster,
            peers,
            data: self.data,
            config: AgentConfig::default(),
            tick: Duration::from_millis(self.tick_ms),
        };
        logs();
        runtime().block_on(async {
            let agent = match tenure_server::start_agent(opts).await {
                Ok(a) => a,
                Err(e) => return crate::usage(e),
            };
            println!("agent {} listening on {}", self.id, agent.addr);
            stopped().await;
            agent.stop().await;
            println!("agent {} stopped", self.id);
            ExitCode::SUCCESS
        })
    }
}

#[derive(ClapArgs)]
pub struct UpArgs {
    /// How many agents (1 to 7).
    #[arg(default_value_t = 3)]
    agents: u64,
    /// The first agent's port on 127.0.0.1; the others follow it. 0: ports the OS chooses.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Where the agents keep their data (a directory per agent under it).
    #[arg(long, default_value = "tenure-data")]
    dir: PathBuf,
    /// The cluster's id.
    #[arg(long, default_value = "tenure")]
    cluster: String,
    /// Stop after this many seconds instead of at SIGTERM or Ctrl-C.
    #[arg(long)]
    for_s: Option<u64>,
}

impl UpArgs {
    pub fn run(self) -> ExitCode {
        if !(1..=7).contains(&self.agents) {
            return crate::usage(format!("agents: {} is not 1 to 7", self.agents));
        }
        logs();
        runtime().block_on(async {
            let mut listeners = Vec::new();
            for i in 0..self.agents {
                let port = if self.port == 0 {
                    0
                } else {
                    match self.port.checked_add(i as u16) {
                        Some(p) => p,
                        None => return crate::usage("--port: the ports run past 65535"),
                    }
                };
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                match tokio::net::TcpListener::bind(addr).await {
                    Ok(l) => listeners.push(l),
                    Err(e) => return crate::usage(format!("cannot listen on {addr}: {e}")),
                }
            }
            let peers: Vec<SocketAddr> = listeners
                .iter()
                .map(|l| l.local_addr().expect("a bound listener has an address"))
                .collect();
            let mut agents: Vec<AgentHandle> = Vec::new();
            for (i, l) in listeners.into_iter().enumerate() {
                let opts = AgentOptions {
                    id: i as u64 + 1,
                    cluster: self.cluster.clone(),
                    peers: peers.clone(),
                    data: self.dir.join(format!("agent-{}", i + 1)),
                    config: AgentConfig::default(),
                    tick: Duration::from_millis(10),
                };
                match tenure_server::agent::start_agent_on(opts, l).await {
                    Ok(a) => agents.push(a),
                    Err(e) => {
                        for a in agents {
                            a.stop().await;
                        }
                        return crate::usage(e);
                    }
                }
            }
            let list: Vec<String> = peers.iter().map(|a| a.to_string()).collect();
            println!(
                "cluster {} of {} agents, data in {}",
                self.cluster,
                self.agents,
                self.dir.display()
            );
            println!(
                "url      tenure://{}?cluster={}",
                list.join(","),
                self.cluster
            );
            println!(
                "status   tenure status tenure://{}?cluster={}",
                list.join(","),
                self.cluster
            );
            match self.for_s {
                Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
                None => stopped().await,
            }
            for a in agents {
                a.stop().await;
            }
            println!("stopped");
            ExitCode::SUCCESS
        })
    }
}

#[derive(ClapArgs)]
pub struct StatusArgs {
    /// The cluster: `tenure://host:port,...[?cluster=NAME]`.
    url: String,
}

impl StatusArgs {
    pub fn run(self) -> ExitCode {
        runtime().block_on(async {
            let client = match tenure_server::open(&self.url) {
                Ok(c) => c,
                Err(e) => return crate::usage(e),
            };
            let mut seen = Vec::new();
            for agent in 1..=client.agents().len() as u64 {
                seen.push(match client.ask_agent(agent, Request::Status).await {
                    Some(Response::Status(s)) => Some(s),
                    _ => None,
                });
            }
            let leader_commit = seen
                .iter()
                .flatten()
                .filter(|s| s.role == "leader")
                .map(|s| s.commit)
                .max();
            for (i, (addr, s)) in client.agents().iter().zip(&seen).enumerate() {
                let said = match s {
                    Some(s) => {
                        let lag = leader_commit
                            .map(|c| format!(", {} behind the leader", c.saturating_sub(s.applied)))
                            .unwrap_or_default();
                        let follows = match (s.role.as_str(), s.leader) {
                            ("leader", _) => String::new(),
                            (_, Some(l)) => format!(" of agent {l}"),
                            (_, None) => " (no leader known)".into(),
                        };
                        format!(
                            "{}{follows}, term {}, log {}, commit {}, applied {}{lag}",
                            s.role, s.term, s.last_index, s.commit, s.applied
                        )
                    }
                    None => "no answer".to_string(),
                };
                println!("agent {}  {addr}  {said}", i + 1);
            }
            match tenure_core::StoreClient::health(&client, false).await {
                Ok(Some(l)) => {
                    println!("healthy  agent {l} leads, every other agent redirects to it");
                    ExitCode::SUCCESS
                }
                Ok(None) => {
                    println!("healthy  no leader");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    println!("unhealthy  {e}");
                    ExitCode::from(1)
                }
            }
        })
    }
}
