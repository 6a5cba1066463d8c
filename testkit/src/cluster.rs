//! A fake cluster: one shared state, a CA, and N TLS apiserver instances serving it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context as _;

use crate::certs::{self, CertificateAuthority, CertifiedKey, Credential};
use crate::server::{FakeApiServer, InstanceConfig, TlsSettings};
use crate::store::{SharedState, StateConfig};

#[derive(Debug, Clone)]
pub struct FakeClusterOptions {
    pub instances: usize,
    pub state: StateConfig,
    /// Where the instances listen (each on a free port).
    pub bind_ip: IpAddr,
    /// Extra names or addresses the serving certificate covers (besides localhost and 127.0.0.1).
    pub server_names: Vec<String>,
}

impl Default for FakeClusterOptions {
    fn default() -> FakeClusterOptions {
        FakeClusterOptions {
            instances: 1,
            state: StateConfig::default(),
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            server_names: Vec::new(),
        }
    }
}

/// A running fake cluster.
pub struct FakeCluster {
    pub state: Arc<SharedState>,
    pub ca: CertificateAuthority,
    pub servers: Vec<FakeApiServer>,
    /// A client certificate of `kubernetes-admin` in `system:masters`.
    pub admin: CertifiedKey,
}

impl FakeCluster {
    /// `instances` TLS instances on 127.0.0.1 sharing one state.
    pub async fn start(instances: usize) -> anyhow::Result<FakeCluster> {
        FakeCluster::start_with(FakeClusterOptions {
            instances,
            ..FakeClusterOptions::default()
        })
        .await
    }

    pub async fn start_with(options: FakeClusterOptions) -> anyhow::Result<FakeCluster> {
        let state = SharedState::new(options.state.clone());
        let ca = CertificateAuthority::generate("fake-cluster-ca")?;
        let mut names: Vec<String> = options.server_names.clone();
        names.push(options.bind_ip.to_string());
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let serving = ca.issue_server(&names)?;
        let admin = ca.issue_client("kubernetes-admin", &["system:masters"])?;
        let tls = TlsSettings {
            server_cert_pem: serving.cert_pem.clone(),
            server_key_pem: serving.key_pem.clone(),
            client_ca_pem: Some(ca.cert_pem.clone()),
        };
        let mut servers = Vec::new();
        for index in 0..options.instances.max(1) {
            let config = InstanceConfig {
                name: format!("apiserver-{index}"),
                bind: SocketAddr::new(options.bind_ip, 0),
                tls: Some(tls.clone()),
            };
            servers.push(
                FakeApiServer::start(state.clone(), config)
                    .await
                    .with_context(|| format!("start instance {index}"))?,
            );
        }
        Ok(FakeCluster {
            state,
            ca,
            servers,
            admin,
        })
    }

    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(FakeApiServer::url).collect()
    }

    /// A credential for `user` in `groups` (a client certificate signed by the cluster CA).
    pub fn client_credential(&self, user: &str, groups: &[&str]) -> anyhow::Result<Credential> {
        Ok(Credential::ClientCertificate(self.ca.issue_client(user, groups)?))
    }

    /// A kubeconfig for instance `instance` with `credential`.
    pub fn kubeconfig(&self, instance: usize, credential: &Credential) -> String {
        certs::kubeconfig(&self.servers[instance].url(), &self.ca.cert_pem, credential, None)
    }

    /// A kubeconfig for instance `instance` as `kubernetes-admin`.
    pub fn admin_kubeconfig(&self, instance: usize) -> String {
        self.kubeconfig(instance, &Credential::ClientCertificate(self.admin.clone()))
    }

    /// Stops every instance.
    pub async fn stop(&self) {
        for server in &self.servers {
            server.stop().await;
        }
    }
}
