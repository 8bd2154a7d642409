//! The real service: `tenure agent` runs one agent, `tenure up` a local cluster in one
//! process, `tenure status` asks a cluster how it is. Real time, real sockets, real files:
//! nothing here is simulated (the madsim the binary links stays out of a tokio runtime).

use clap::Args as ClapArgs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tenure_core::agent::{AgentConfig, Request, Response};
use tenure_server::tls::{Security, Tls};
use tenure_server::AgentOptions;

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
    /// Mutual TLS with the certificates `tenure certs` made in this directory (its ca.pem,
    /// agent-ID.pem and agent-ID.key).
    #[arg(long, conflicts_with = "plaintext")]
    tls: Option<PathBuf>,
    /// No TLS: agents and clients in plaintext (said at start). One of --tls and
    /// --plaintext must be given.
    #[arg(long)]
    plaintext: bool,
}

impl AgentArgs {
    pub fn run(self) -> ExitCode {
        let peers = match parse_peers(&self.peers) {
            Ok(p) => p,
            Err(e) => return crate::usage(e),
        };
        let security = match (&self.tls, self.plaintext) {
            (Some(dir), _) => match Tls::from_dir(dir, &format!("agent-{}", self.id)) {
                Ok(t) => Security::Tls(t),
                Err(e) => return crate::usage(format!("--tls: {e}")),
            },
            (None, true) => Security::Plaintext,
            (None, false) => return crate::usage(
                "say how agents and clients connect: --tls DIR (see tenure certs) or --plaintext",
            ),
        };
        let opts = AgentOptions {
            id: self.id,
            cluster: self.cluster,
            peers,
            data: self.data,
            config: AgentConfig::default(),
            tick: Duration::from_millis(self.tick_ms),
            security,
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
    /// No TLS (said at start); by default the agents and clients use mutual TLS with
    /// certificates made in `DIR/certs`.
    #[arg(long)]
    plaintext: bool,
}

impl UpArgs {
    pub fn run(self) -> ExitCode {
        if !(1..=7).contains(&self.agents) {
            return crate::usage(format!("agents: {} is not 1 to 7", self.agents));
        }
        // Mutual TLS unless asked otherwise: certificates made once, in the data directory.
        let certs = (!self.plaintext).then(|| self.dir.join("certs"));
        if let Some(c) = &certs {
            if !c.join("ca.pem").exists() {
                if let Err(e) = tenure_server::tls::generate(c, self.agents as usize) {
                    return crate::usage(e);
                }
            }
        }
        logs();
        runtime().block_on(async {
            let n = self.agents as usize;
            let cluster = match tenure_server::LocalCluster::start(
                n,
                &self.dir,
                &self.cluster,
                self.port,
                certs.as_deref(),
            )
            .await
            {
                Ok(c) => c,
                Err(e) => return crate::usage(e),
            };
            println!(
                "cluster {} of {} agents, data in {}{}",
                self.cluster,
                self.agents,
                self.dir.display(),
                if certs.is_some() {
                    ", mutual TLS"
                } else {
                    ", plaintext as asked"
                }
            );
            println!("url      {}", cluster.url());
            println!("status   tenure status '{}'", cluster.url());
            match self.for_s {
                Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
                None => stopped().await,
            }
            cluster.stop().await;
            println!("stopped");
            ExitCode::SUCCESS
        })
    }
}

#[derive(ClapArgs)]
pub struct CertsArgs {
    /// Where to write them (created private if missing; existing files are not overwritten).
    #[arg(long, default_value = "tenure-certs")]
    dir: PathBuf,
    /// How many agents to make certificates for (agent-1 ... agent-N), besides the CA and a
    /// client.
    #[arg(long, default_value_t = 3)]
    agents: usize,
}

impl CertsArgs {
    pub fn run(self) -> ExitCode {
        if !(1..=100).contains(&self.agents) {
            return crate::usage(format!("--agents: {} is not 1 to 100", self.agents));
        }
        match tenure_server::tls::generate(&self.dir, self.agents) {
            Ok(files) => {
                for f in files {
                    println!("wrote    {}", f.display());
                }
                println!(
                    "use      tenure agent ... --tls {}   and   tenure://...?tls={}",
                    self.dir.display(),
                    self.dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => crate::usage(e),
        }
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
