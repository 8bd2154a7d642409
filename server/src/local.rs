//! A local cluster of real agents in this process, on 127.0.0.1: what `tenure up` starts,
//! and what tests and examples run against. Each agent keeps its data in its own directory
//! under one; a temporary cluster removes that directory when dropped. Dropping a cluster
//! ends its agents (as a crash: what they synced stays).

use crate::agent::{start_agent_on, AgentHandle, AgentOptions, StartError};
use crate::client::{ClientOptions, TcpClient};
use crate::tls::{Security, Tls};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tenure_core::agent::AgentConfig;
use tokio::net::TcpListener;

/// Agents of one cluster, running in this process.
pub struct LocalCluster {
    pub peers: Vec<SocketAddr>,
    pub cluster: String,
    dir: PathBuf,
    agents: Vec<Option<AgentHandle>>,
    temporary: bool,
    /// The directory of the cluster's certificates (`tls::generate`'s files), or plaintext.
    certs: Option<PathBuf>,
}

impl LocalCluster {
    /// Starts `n` agents of `cluster` on 127.0.0.1, at `first_port` and the ports after it
    /// (0: ports the OS chooses), with their data under `dir`.
    pub async fn start(
        n: usize,
        dir: &Path,
        cluster: &str,
        first_port: u16,
        certs: Option<&Path>,
    ) -> Result<LocalCluster, StartError> {
        let mut listeners = Vec::new();
        for i in 0..n {
            let port = if first_port == 0 {
                0
            } else {
                first_port
                    .checked_add(i as u16)
                    .ok_or_else(|| StartError::BadOptions("the ports run past 65535".into()))?
            };
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            listeners.push(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?,
            );
        }
        let peers: Vec<SocketAddr> = listeners
            .iter()
            .map(|l| l.local_addr().expect("a bound listener has an address"))
            .collect();
        let mut c = LocalCluster {
            peers,
            cluster: cluster.to_string(),
            dir: dir.to_path_buf(),
            agents: Vec::new(),
            temporary: false,
            certs: certs.map(Path::to_path_buf),
        };
        for (i, l) in listeners.into_iter().enumerate() {
            let a = start_agent_on(c.options(i as u64 + 1)?, l).await?;
            c.agents.push(Some(a));
        }
        Ok(c)
    }

    /// `n` agents with their data in a fresh temporary directory, removed when the cluster
    /// is dropped; plaintext (for tests and examples on loopback).
    pub async fn temporary(n: usize) -> Result<LocalCluster, StartError> {
        let dir = std::env::temp_dir().join(format!(
            "tenure-local-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let mut c = LocalCluster::start(n, &dir, "local", 0, None).await?;
        c.temporary = true;
        Ok(c)
    }

    fn security(&self, who: &str) -> Result<Security, StartError> {
        match &self.certs {
            None => Ok(Security::Plaintext),
            Some(dir) => Tls::from_dir(dir, who)
                .map(Security::Tls)
                .map_err(|e| StartError::BadOptions(e.to_string())),
        }
    }

    fn options(&self, id: u64) -> Result<AgentOptions, StartError> {
        Ok(AgentOptions {
            id,
            cluster: self.cluster.clone(),
            peers: self.peers.clone(),
            data: self.dir.join(format!("agent-{id}")),
            config: AgentConfig::default(),
            tick: Duration::from_millis(10),
            security: self.security(&format!("agent-{id}"))?,
        })
    }

    /// The `tenure://` address of the cluster.
    pub fn url(&self) -> String {
        let list: Vec<String> = self.peers.iter().map(|a| a.to_string()).collect();
        let sec = match &self.certs {
            None => "&plaintext".to_string(),
            Some(dir) => format!("&tls={}", dir.display()),
        };
        format!("tenure://{}?cluster={}{sec}", list.join(","), self.cluster)
    }

    /// A client of the cluster.
    pub fn client(&self) -> TcpClient {
        let security = self.security("client").unwrap_or(Security::Plaintext);
        TcpClient::new(self.peers.clone(), &self.cluster, ClientOptions::default())
            .with_security(security)
    }

    /// Ends agent `id` (from 1) at once, as a crash would.
    pub fn kill(&mut self, id: u64) {
        if let Some(a) = self.agents.get_mut(id as usize - 1).and_then(Option::take) {
            a.kill();
        }
    }

    /// Starts agent `id` again on its address and data directory (killing it first if it
    /// runs).
    pub async fn restart(&mut self, id: u64) -> Result<(), StartError> {
        self.kill(id);
        let addr = self.peers[id as usize - 1];
        // A killed agent's tasks end at their next step: its port is free a moment later.
        let mut tries = 0;
        let l = loop {
            match TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(source) => return Err(StartError::Bind { addr, source }),
            }
        };
        let a = start_agent_on(self.options(id)?, l).await?;
        self.agents[id as usize - 1] = Some(a);
        Ok(())
    }

    /// Stops every agent cleanly.
    pub async fn stop(mut self) {
        for a in self.agents.iter_mut().filter_map(Option::take) {
            a.stop().await;
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for a in self.agents.iter_mut().filter_map(Option::take) {
            a.kill();
        }
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
