//! Mutual TLS: a cluster whose agents and client hold certificates of the cluster's CA works;
//! a client of another CA, or in plaintext, is refused; `generate` does not overwrite.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tenure_core::agency::{Agency, AgencyApi};
use tenure_core::{Key, StoreClient};
use tenure_server::client::ClientOptions;
use tenure_server::tls::{generate, Security, Tls};
use tenure_server::{LocalCluster, TcpClient};

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp(tag: &str) -> TempDir {
    TempDir(std::env::temp_dir().join(format!(
        "tenure-tls-{tag}-{}-{}",
        std::process::id(),
        std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos()
    )))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_holders_of_the_clusters_certificates_get_in() {
    let dir = temp("cluster");
    let certs = dir.0.join("certs");
    generate(&certs, 3).unwrap();
    let e = generate(&certs, 3).unwrap_err();
    assert!(e.to_string().contains("not overwritten"), "{e}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(certs.join("client.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "a private key readable by others: {mode:o}"
        );
    }
    let cluster = LocalCluster::start(3, &dir.0, "tls", 0, Some(&certs))
        .await
        .unwrap();
    assert!(cluster.url().contains("tls="), "{}", cluster.url());
    let client = cluster.client();
    let until = Instant::now() + Duration::from_secs(10);
    while client.health(false).await.is_err() {
        assert!(Instant::now() < until, "no leader over TLS within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let agency = AgencyApi::new(Arc::new(client.clone()));
    let k = Key::parse("/secret").unwrap();
    agency
        .write_key(&k, serde_json::json!(1), None, None)
        .await
        .unwrap();
    let opened = tenure_server::open(&cluster.url()).unwrap();
    assert_eq!(
        AgencyApi::new(Arc::new(opened)).read_key(&k).await.unwrap(),
        serde_json::json!(1)
    );
    // Another CA's client, and a plaintext one: no answer from any agent.
    let rogue = dir.0.join("rogue");
    generate(&rogue, 1).unwrap();
    let options = ClientOptions {
        request_timeout: Duration::from_millis(300),
        max_attempts: 3,
        ..ClientOptions::default()
    };
    for security in [
        Security::Tls(Tls::from_dir(&rogue, "client").unwrap()),
        Security::Plaintext,
    ] {
        let c = TcpClient::new(cluster.peers.clone(), "tls", options).with_security(security);
        assert!(c.health(false).await.is_err());
        assert!(AgencyApi::new(Arc::new(c)).read_key(&k).await.is_err());
    }
    cluster.stop().await;
}
