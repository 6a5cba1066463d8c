//! `EtcdStore` on an etcd that demands TLS client certificates and password authentication.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use kuboard_storage::conformance;
use kuboard_storage::etcd::{EtcdConnectError, EtcdStore, EtcdStoreConfig};
use kuboard_storage::testing::{EtcdClientTls, EtcdCluster, EtcdClusterOptions};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

const ROOT_PASSWORD: &str = "root-Pa55-for-tests";

struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate whose common name is not an
/// etcd user (so that etcd cannot take the certificate as the identity and needs the password).
fn make_pki(directory: &Path) -> anyhow::Result<Pki> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params.distinguished_name.push(DnType::CommonName, "kuboard test CA");
    let ca = ca_params.self_signed(&ca_key)?;

    let server_key = KeyPair::generate()?;
    let mut server_params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
    server_params.distinguished_name.push(DnType::CommonName, "etcd");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let server = server_params.signed_by(&server_key, &ca, &ca_key)?;

    let client_key = KeyPair::generate()?;
    let mut client_params = CertificateParams::new(Vec::<String>::new())?;
    client_params
        .distinguished_name
        .push(DnType::CommonName, "kuboard-client");
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &ca, &ca_key)?;

    let write = |name: &str, pem: String| -> anyhow::Result<PathBuf> {
        let path = directory.join(name);
        std::fs::write(&path, pem).with_context(|| format!("write {}", path.display()))?;
        Ok(path)
    };
    Ok(Pki {
        ca: write("ca.pem", ca.pem())?,
        server_cert: write("server.pem", server.pem())?,
        server_key: write("server-key.pem", server_key.serialize_pem())?,
        client_cert: write("client.pem", client.pem())?,
        client_key: write("client-key.pem", client_key.serialize_pem())?,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_connects_with_client_certificates_and_a_password() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_test_writer()
        .try_init();
    let directory = tempfile::tempdir()?;
    let pki = make_pki(directory.path())?;
    let tls = EtcdClientTls {
        cert_file: pki.server_cert.clone(),
        key_file: pki.server_key.clone(),
        trusted_ca_file: pki.ca.clone(),
    };
    let cluster = EtcdCluster::start_with(EtcdClusterOptions {
        members: 1,
        client_tls: Some(tls),
    })
    .await?;
    let endpoints = cluster.client_endpoints();
    assert!(endpoints[0].starts_with("https://"));

    tracing::info!("enable authentication with a root user");
    let admin_tls = etcd_client::TlsOptions::new()
        .ca_certificate(etcd_client::Certificate::from_pem(std::fs::read(&pki.ca)?))
        .identity(etcd_client::Identity::from_pem(
            std::fs::read(&pki.client_cert)?,
            std::fs::read(&pki.client_key)?,
        ));
    let mut admin =
        etcd_client::Client::connect(&endpoints, Some(etcd_client::ConnectOptions::new().with_tls(admin_tls))).await?;
    admin.user_add("root", ROOT_PASSWORD, None).await?;
    admin.role_add("root").await?;
    admin.user_grant_role("root", "root").await?;
    admin.auth_enable().await?;

    let config = |password: Option<&str>, with_client_cert: bool| EtcdStoreConfig {
        ca_cert: Some(pki.ca.clone()),
        client_cert: with_client_cert.then(|| pki.client_cert.clone()),
        client_key: with_client_cert.then(|| pki.client_key.clone()),
        username: password.map(|_| "root".to_string()),
        password: password.map(str::to_string),
        connect_timeout: Duration::from_secs(2),
        ..EtcdStoreConfig::new(endpoints.clone())
    };

    tracing::info!("certificates and the right password: the store works");
    let store = EtcdStore::connect(config(Some(ROOT_PASSWORD), true)).await?;
    for check in [
        "range_single_key",
        "txn_branches",
        "watch_replays_then_live",
        "lease_grant_and_attach",
        "status_sanity",
    ] {
        conformance::run_check(&store, check).await;
    }

    tracing::info!("a wrong password is refused, without echoing it");
    let error = EtcdStore::connect(config(Some("wrong-password-123"), true))
        .await
        .expect_err("wrong password");
    tracing::info!(%error, "wrong password");
    assert!(matches!(error, EtcdConnectError::Authentication { .. }), "{error:?}");
    assert!(!error.to_string().contains("wrong-password-123"), "{error}");

    tracing::info!("no password: the certificate's name is no etcd user, so requests are refused");
    let error = EtcdStore::connect(config(None, true))
        .await
        .expect_err("no credentials");
    tracing::info!(%error, "no password");
    assert!(matches!(error, EtcdConnectError::Authentication { .. }), "{error:?}");

    tracing::info!("no client certificate: the TLS handshake fails within the connect timeout");
    let started = Instant::now();
    let error = EtcdStore::connect(config(Some(ROOT_PASSWORD), false))
        .await
        .expect_err("no client certificate");
    tracing::info!(%error, elapsed = ?started.elapsed(), "no client certificate");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(error, EtcdConnectError::Unreachable { .. }), "{error:?}");
    Ok(())
}
