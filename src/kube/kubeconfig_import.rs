//! Import of a cluster from a kubeconfig or from a token + CA + server, and the reachability
//! probe of every apiserver URL before anything is stored.
//!
//! Kuboard's convention is kept: the `server` field may hold several comma-separated URLs (one
//! per apiserver), which the balancer then serves. Only what can be stored and used by every
//! replica is accepted: inline data, never file paths (they name files on the administrator's
//! machine), no exec plugins or auth providers (they run programs or need a browser).
//!
//! The kubeconfig itself is read with kube's types (`kube::config::Kubeconfig`), the same the
//! agent will use for its in-cluster configuration; this file decides what of it is accepted.

use std::time::{Duration, Instant};

use ::kube::config::{AuthInfo, Cluster, Kubeconfig, KubeconfigError};
use base64::Engine;
use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Method, Request};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::clusters::cluster_registry::ClusterCredentials;
use crate::kube::apiserver_pool::error_chain;
use crate::kube::apiserver_url::{split_server_field, ApiserverUrl, UrlError};
use crate::kube::cluster_connection::{ClientIdentity, ClusterConnection, ConnectionError};
use crate::kube::endpoint_connector::{EndpointConnector, KillSwitch};

pub const MAX_ENDPOINTS: usize = 16;
const MAX_FIELD_BYTES: usize = 64 * 1024;

/// A cluster as read from an import request, not yet probed or stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedCluster {
    /// The kubeconfig context used, if the import was a kubeconfig.
    pub context: Option<String>,
    pub endpoints: Vec<ApiserverUrl>,
    pub credentials: ClusterCredentials,
}

/// Why an import request is refused. Each case has a stable code for the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("the kubeconfig is not valid YAML: {0}")]
    InvalidYaml(String),
    #[error("give either a kubeconfig, or server and token (with ca_certificate for https), not both")]
    AmbiguousInput,
    #[error("give a kubeconfig, or server and token")]
    NothingToImport,
    #[error("the kubeconfig has several contexts and no current-context: name one in \"context\"")]
    NoContext,
    #[error("the kubeconfig has no context named {0:?}")]
    ContextNotFound(String),
    #[error("the kubeconfig has no cluster named {0:?} (named by the context)")]
    ClusterNotFound(String),
    #[error("the kubeconfig has no user named {0:?} (named by the context)")]
    UserNotFound(String),
    #[error("no apiserver URL: the cluster's server field is empty")]
    NoServer,
    #[error("apiserver URL {url:?} {reason}")]
    InvalidServer { url: String, reason: UrlError },
    #[error("at most {MAX_ENDPOINTS} apiserver URLs")]
    TooManyServers,
    #[error("{field} names a file ({path:?}); uploaded kubeconfigs must carry the data inline (use {field}-data)")]
    FilePath { field: &'static str, path: String },
    #[error("the user authenticates with an exec plugin ({command:?}), which cannot run inside Kuboard; use a token or client certificate")]
    ExecPlugin { command: String },
    #[error("the user authenticates with an auth-provider, which cannot run inside Kuboard; use a token or client certificate")]
    AuthProvider,
    #[error("user name and password (basic auth) are not supported by Kubernetes since 1.19; use a token or client certificate")]
    BasicAuth,
    #[error("insecure-skip-tls-verify is not supported: give the cluster's CA certificate")]
    InsecureSkipVerify,
    #[error("proxy-url is not supported")]
    ProxyUrl,
    #[error("{url} is https but no CA certificate was given to verify it")]
    MissingCa { url: String },
    #[error("no credentials: give a token or a client certificate and key")]
    NoCredentials,
    #[error("a client certificate needs its key, and a key its certificate")]
    IncompleteClientCertificate,
    #[error("{field} is not valid base64")]
    InvalidBase64 { field: &'static str },
    #[error("{field} is not valid: {message}")]
    InvalidPem { field: &'static str, message: String },
    #[error("{field} is longer than 64 KiB")]
    TooLong { field: &'static str },
    #[error("the token is not a single line of printable characters")]
    InvalidToken,
    #[error("no apiserver answered: {}", describe(.0))]
    Unreachable(Vec<ProbeReport>),
    #[error("every apiserver that answered refused the credential: {}", describe(.0))]
    CredentialRejected(Vec<ProbeReport>),
}

impl ImportError {
    pub fn code(&self) -> &'static str {
        match self {
            ImportError::InvalidYaml(_) => "invalid_kubeconfig",
            ImportError::AmbiguousInput | ImportError::NothingToImport => "invalid_import_request",
            ImportError::NoContext | ImportError::ContextNotFound(_) => "kubeconfig_context",
            ImportError::ClusterNotFound(_) | ImportError::UserNotFound(_) => "invalid_kubeconfig",
            ImportError::NoServer | ImportError::InvalidServer { .. } | ImportError::TooManyServers => {
                "invalid_endpoints"
            }
            ImportError::FilePath { .. } => "kubeconfig_file_path",
            ImportError::ExecPlugin { .. } | ImportError::AuthProvider | ImportError::BasicAuth => {
                "unsupported_authentication"
            }
            ImportError::InsecureSkipVerify | ImportError::ProxyUrl => "unsupported_setting",
            ImportError::MissingCa { .. } => "missing_ca_certificate",
            ImportError::NoCredentials | ImportError::IncompleteClientCertificate => "missing_credentials",
            ImportError::InvalidBase64 { .. } | ImportError::InvalidPem { .. } | ImportError::TooLong { .. } => {
                "invalid_credentials_input"
            }
            ImportError::InvalidToken => "invalid_credentials_input",
            ImportError::Unreachable(_) => "cluster_unreachable",
            ImportError::CredentialRejected(_) => "credential_rejected",
        }
    }
}

fn describe(reports: &[ProbeReport]) -> String {
    reports
        .iter()
        .map(|report| match (&report.error, report.status) {
            (Some(error), _) => format!("{}: {error}", report.url),
            (None, Some(status)) => format!("{}: HTTP {status}", report.url),
            (None, None) => report.url.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Reads a kubeconfig (YAML or JSON; several YAML documents are merged as kubectl merges files)
/// with kube's own types, and picks `context`, else its current context, else its only context.
pub fn parse_kubeconfig(text: &str, context: Option<&str>) -> Result<ImportedCluster, ImportError> {
    let config = Kubeconfig::from_yaml(text).map_err(|error| match error {
        // The message and line, without the excerpt of the text that may hold a credential.
        KubeconfigError::Parse(error) => ImportError::InvalidYaml(error.without_snippet().to_string()),
        other => ImportError::InvalidYaml(other.to_string()),
    })?;
    let wanted = match (
        context,
        config.current_context.as_deref().filter(|name| !name.is_empty()),
    ) {
        (Some(name), _) | (None, Some(name)) => name.to_string(),
        (None, None) if config.contexts.len() == 1 => config.contexts[0].name.clone(),
        (None, None) => return Err(ImportError::NoContext),
    };
    let context = config
        .contexts
        .iter()
        .find(|candidate| candidate.name == wanted)
        .and_then(|named| named.context.as_ref())
        .ok_or_else(|| ImportError::ContextNotFound(wanted.clone()))?;
    let no_cluster = || ImportError::ClusterNotFound(context.cluster.clone());
    let cluster = config
        .clusters
        .iter()
        .find(|candidate| candidate.name == context.cluster)
        .ok_or_else(no_cluster)?
        .cluster
        .clone()
        .unwrap_or_default();
    // A context without a user names the user "" as kubectl reads it: only a user of that name fits.
    let user_name = context.user.clone().unwrap_or_default();
    let user = config
        .auth_infos
        .iter()
        .find(|candidate| candidate.name == user_name)
        .ok_or_else(|| ImportError::UserNotFound(user_name.clone()))?
        .auth_info
        .clone()
        .unwrap_or_default();
    check_supported(&cluster, &user)?;

    let endpoints = parse_servers(cluster.server.as_deref().unwrap_or(""))?;
    let credentials = ClusterCredentials {
        token: user
            .token
            .as_ref()
            .map(|token| check_token(token.expose_secret()))
            .transpose()?,
        client_certificate: user
            .client_certificate_data
            .as_deref()
            .map(|data| decode_pem_data("client-certificate-data", data))
            .transpose()?,
        client_key: user
            .client_key_data
            .as_ref()
            .map(|data| decode_pem_data("client-key-data", data.expose_secret()))
            .transpose()?,
        ca_certificate: cluster
            .certificate_authority_data
            .as_deref()
            .map(|data| decode_pem_data("certificate-authority-data", data))
            .transpose()?,
    };
    let imported = ImportedCluster {
        context: Some(wanted),
        endpoints,
        credentials,
    };
    check_complete(&imported)?;
    Ok(imported)
}

/// Refuses what cannot be stored and used by every replica: file paths, plugins that run programs
/// or need a browser, basic auth, skipped TLS verification, proxies.
fn check_supported(cluster: &Cluster, user: &AuthInfo) -> Result<(), ImportError> {
    if cluster.insecure_skip_tls_verify == Some(true) {
        return Err(ImportError::InsecureSkipVerify);
    }
    if cluster.proxy_url.as_deref().is_some_and(|url| !url.is_empty()) {
        return Err(ImportError::ProxyUrl);
    }
    let file_fields = [
        ("certificate-authority", &cluster.certificate_authority),
        ("client-certificate", &user.client_certificate),
        ("client-key", &user.client_key),
        ("tokenFile", &user.token_file),
    ];
    for (field, path) in file_fields {
        if let Some(path) = path.as_ref().filter(|path| !path.is_empty()) {
            return Err(ImportError::FilePath {
                field,
                path: path.clone(),
            });
        }
    }
    if let Some(exec) = &user.exec {
        let command = exec.command.clone().unwrap_or_default();
        return Err(ImportError::ExecPlugin { command });
    }
    if user.auth_provider.is_some() {
        return Err(ImportError::AuthProvider);
    }
    if user.username.is_some() || user.password.is_some() {
        return Err(ImportError::BasicAuth);
    }
    Ok(())
}

/// A token import: `server` (comma-separated URLs), `token`, and for https the CA certificate
/// (PEM, or base64 of PEM as kubeconfigs carry it).
pub fn parse_token_import(
    server: &str,
    token: &str,
    ca_certificate: Option<&str>,
) -> Result<ImportedCluster, ImportError> {
    let endpoints = parse_servers(server)?;
    let ca_certificate = ca_certificate
        .filter(|text| !text.trim().is_empty())
        .map(|text| {
            if text.contains("-----BEGIN") {
                check_pem("ca_certificate", text)
            } else {
                decode_pem_data("ca_certificate", text)
            }
        })
        .transpose()?;
    let imported = ImportedCluster {
        context: None,
        endpoints,
        credentials: ClusterCredentials {
            token: Some(check_token(token)?).filter(|token| !token.is_empty()),
            client_certificate: None,
            client_key: None,
            ca_certificate,
        },
    };
    check_complete(&imported)?;
    Ok(imported)
}

fn parse_servers(field: &str) -> Result<Vec<ApiserverUrl>, ImportError> {
    let urls = split_server_field(field);
    if urls.is_empty() {
        return Err(ImportError::NoServer);
    }
    if urls.len() > MAX_ENDPOINTS {
        return Err(ImportError::TooManyServers);
    }
    let mut endpoints: Vec<ApiserverUrl> = Vec::with_capacity(urls.len());
    for url in urls {
        let parsed = ApiserverUrl::parse(url).map_err(|reason| ImportError::InvalidServer {
            url: url.to_string(),
            reason,
        })?;
        // The same server twice would only count double in the balancer.
        if !endpoints.contains(&parsed) {
            endpoints.push(parsed);
        }
    }
    Ok(endpoints)
}

fn check_token(token: &str) -> Result<String, ImportError> {
    let token = token.trim();
    if token.len() > MAX_FIELD_BYTES {
        return Err(ImportError::TooLong { field: "token" });
    }
    if !token.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(ImportError::InvalidToken);
    }
    Ok(token.to_string())
}

fn decode_pem_data(field: &'static str, data: &str) -> Result<String, ImportError> {
    if data.len() > MAX_FIELD_BYTES * 2 {
        return Err(ImportError::TooLong { field });
    }
    let compact: String = data.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| ImportError::InvalidBase64 { field })?;
    let text = String::from_utf8(bytes).map_err(|_| ImportError::InvalidPem {
        field,
        message: "the decoded data is not PEM text".into(),
    })?;
    check_pem(field, &text)
}

fn check_pem(field: &'static str, text: &str) -> Result<String, ImportError> {
    if text.len() > MAX_FIELD_BYTES {
        return Err(ImportError::TooLong { field });
    }
    if !text.contains("-----BEGIN ") {
        return Err(ImportError::InvalidPem {
            field,
            message: "no PEM block (-----BEGIN ...) found".into(),
        });
    }
    Ok(text.to_string())
}

/// Checks what parsing alone cannot: a credential is there, a CA is there for https, and the PEM
/// blocks load (the TLS configuration is built once to prove it).
fn check_complete(imported: &ImportedCluster) -> Result<(), ImportError> {
    let credentials = &imported.credentials;
    if credentials.client_certificate.is_some() != credentials.client_key.is_some() {
        return Err(ImportError::IncompleteClientCertificate);
    }
    if credentials.token.is_none() && credentials.client_certificate.is_none() {
        return Err(ImportError::NoCredentials);
    }
    if credentials.ca_certificate.is_none() {
        if let Some(url) = imported.endpoints.iter().find(|url| url.https) {
            return Err(ImportError::MissingCa { url: url.to_string() });
        }
    }
    connection_of("import", imported)
        .tls_client_config()
        .map_err(|error| match error {
            ConnectionError::CaCertificate(message) => ImportError::InvalidPem {
                field: "certificate-authority-data",
                message,
            },
            ConnectionError::ClientIdentity(message) => ImportError::InvalidPem {
                field: "client-certificate-data / client-key-data",
                message,
            },
            other => ImportError::InvalidPem {
                field: "TLS settings",
                message: other.to_string(),
            },
        })?;
    Ok(())
}

fn connection_of(name: &str, imported: &ImportedCluster) -> ClusterConnection {
    let credentials = &imported.credentials;
    ClusterConnection {
        name: name.to_string(),
        endpoints: imported.endpoints.clone(),
        ca_certificate_pem: credentials.ca_certificate.clone(),
        token: credentials.token.clone(),
        client_identity: match (&credentials.client_certificate, &credentials.client_key) {
            (Some(certificate_pem), Some(key_pem)) => Some(ClientIdentity {
                certificate_pem: certificate_pem.clone(),
                key_pem: key_pem.clone(),
            }),
            _ => None,
        },
        via_agent: false,
    }
}

/// What probing one URL found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProbeReport {
    pub url: String,
    /// True when `/api` answered 200 with the credential.
    pub reachable: bool,
    /// The HTTP status `/api` answered, when it answered.
    pub status: Option<u16>,
    /// `gitVersion` of the apiserver.
    pub version: Option<String>,
    pub error: Option<String>,
    pub latency_ms: Option<u64>,
}

/// Probes `GET /version` and `GET /api` on every URL at once, with the import's credential, within `timeout`
/// each. Succeeds when at least one URL answered 200; the reports say how each one fared.
pub async fn probe(imported: &ImportedCluster, timeout: Duration) -> Result<Vec<ProbeReport>, ImportError> {
    let connection = connection_of("import-probe", imported);
    let tls = connection
        .tls_client_config()
        .map_err(|error| ImportError::InvalidPem {
            field: "TLS settings",
            message: error.to_string(),
        })?;
    let probes = connection.endpoints.iter().map(|url| {
        let connector = EndpointConnector {
            endpoint: url.clone(),
            tls: tls.clone(),
            kill_switch: std::sync::Arc::new(KillSwitch::default()),
            connect_timeout: timeout,
            tunnel: None,
        };
        probe_one(url.clone(), connector, connection.token.clone(), timeout)
    });
    let reports = futures::future::join_all(probes).await;
    if reports.iter().any(|report| report.reachable) {
        return Ok(reports);
    }
    if reports.iter().any(|report| report.status == Some(401)) {
        return Err(ImportError::CredentialRejected(reports));
    }
    Err(ImportError::Unreachable(reports))
}

async fn probe_one(
    url: ApiserverUrl,
    connector: EndpointConnector,
    token: Option<String>,
    timeout: Duration,
) -> ProbeReport {
    let label = url.to_string();
    let failed = |error: String| ProbeReport {
        url: label.clone(),
        reachable: false,
        status: None,
        version: None,
        error: Some(error),
        latency_ms: None,
    };
    let client: Client<EndpointConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let get = |path: &str| {
        let uri = url.join(path).map_err(|error| error.to_string())?;
        let mut builder = Request::builder().method(Method::GET).uri(uri);
        if let Some(token) = &token {
            builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = builder
            .body(Full::new(Bytes::new()))
            .map_err(|error| error.to_string())?;
        let client = client.clone();
        Ok::<_, String>(async move {
            let response = client.request(request).await.map_err(|error| error_chain(&error))?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), 64 * 1024)
                .collect()
                .await
                .map(|collected| collected.to_bytes())
                .unwrap_or_default();
            Ok::<_, String>((status, body))
        })
    };
    let started = Instant::now();
    // `/version` names the apiserver; `/api` (discovery, open to every authenticated user)
    // proves the credential, since some apiservers answer `/version` to anybody.
    let exchange = async {
        let (_, version_body) = get("/version")?.await?;
        let (status, _) = get("/api")?.await?;
        Ok::<_, String>((status, version_body))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => failed(format!("no answer within {} ms", timeout.as_millis())),
        Ok(Err(error)) => failed(error),
        Ok(Ok((status, version_body))) => {
            let version = serde_json::from_slice::<serde_json::Value>(&version_body)
                .ok()
                .and_then(|value| value.get("gitVersion").and_then(|v| v.as_str()).map(str::to_string));
            let error = match status {
                200 => None,
                401 => Some("the apiserver refused the credential (401 Unauthorized)".to_string()),
                other => Some(format!("/api answered HTTP {other}")),
            };
            ProbeReport {
                url: label.clone(),
                reachable: status == 200,
                status: Some(status),
                version,
                error,
                latency_ms: Some(started.elapsed().as_millis() as u64),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIUVmhXqUo=\n-----END CERTIFICATE-----\n";

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    fn kubeconfig(server: &str, cluster_extra: &str, user: &str, extra: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: \"{server}\"\n{cluster_extra}users:\n- name: u\n  user:\n{user}contexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\n{extra}"
        )
    }

    /// Each bad kubeconfig with the error code it must get.
    #[test]
    fn bad_kubeconfigs() {
        let ca_line = format!("    certificate-authority-data: {}\n", b64(CA));
        let token = "    token: abc\n";
        let cases: Vec<(&str, String, &str)> = vec![
            ("not yaml", "clusters: [\n  - {".into(), "invalid_kubeconfig"),
            ("a scalar", "just text".into(), "invalid_kubeconfig"),
            (
                "no contexts",
                "apiVersion: v1\nclusters: []\n".into(),
                "kubeconfig_context",
            ),
            (
                "missing current context",
                kubeconfig("https://a:6443", &ca_line, token, "current-context: other\n"),
                "kubeconfig_context",
            ),
            ("empty server", kubeconfig("", &ca_line, token, ""), "invalid_endpoints"),
            (
                "bad scheme",
                kubeconfig("tcp://a:6443", &ca_line, token, ""),
                "invalid_endpoints",
            ),
            (
                "one bad of two",
                kubeconfig("https://a:6443,https://b:x", &ca_line, token, ""),
                "invalid_endpoints",
            ),
            (
                "https without CA",
                kubeconfig("https://a:6443", "", token, ""),
                "missing_ca_certificate",
            ),
            (
                "CA file path",
                kubeconfig(
                    "https://a:6443",
                    "    certificate-authority: /etc/k/ca.crt\n",
                    token,
                    "",
                ),
                "kubeconfig_file_path",
            ),
            (
                "client cert file path",
                kubeconfig(
                    "https://a:6443",
                    &ca_line,
                    "    client-certificate: /home/me/.kube/me.crt\n    client-key: /home/me/.kube/me.key\n",
                    "",
                ),
                "kubeconfig_file_path",
            ),
            (
                "exec plugin",
                kubeconfig(
                    "https://a:6443",
                    &ca_line,
                    "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws\n",
                    "",
                ),
                "unsupported_authentication",
            ),
            (
                "basic auth",
                kubeconfig("https://a:6443", &ca_line, "    username: a\n    password: b\n", ""),
                "unsupported_authentication",
            ),
            (
                "no credentials",
                kubeconfig("https://a:6443", &ca_line, "    {}\n", ""),
                "missing_credentials",
            ),
            (
                "certificate without key",
                kubeconfig(
                    "https://a:6443",
                    &ca_line,
                    &format!("    client-certificate-data: {}\n", b64(CA)),
                    "",
                ),
                "missing_credentials",
            ),
            (
                "CA not base64",
                kubeconfig("https://a:6443", "    certificate-authority-data: '%%%'\n", token, ""),
                "invalid_credentials_input",
            ),
            (
                "CA not PEM",
                kubeconfig(
                    "https://a:6443",
                    &format!("    certificate-authority-data: {}\n", b64("hello")),
                    token,
                    "",
                ),
                "invalid_credentials_input",
            ),
            (
                "insecure",
                kubeconfig("https://a:6443", "    insecure-skip-tls-verify: true\n", token, ""),
                "unsupported_setting",
            ),
            (
                "context without a user",
                "clusters:\n- name: c\n  cluster:\n    server: https://a:6443\ncontexts:\n- name: ctx\n  context:\n    \
                 cluster: c\n"
                    .into(),
                "invalid_kubeconfig",
            ),
            (
                "context naming a missing cluster",
                kubeconfig("https://a:6443", &ca_line, token, "").replace("cluster: c", "cluster: gone"),
                "invalid_kubeconfig",
            ),
            (
                "proxy",
                kubeconfig("https://a:6443", "    proxy-url: http://proxy:3128\n", token, ""),
                "unsupported_setting",
            ),
        ];
        for (what, text, code) in cases {
            let error = parse_kubeconfig(&text, None).expect_err(what);
            assert_eq!(error.code(), code, "{what}: {error}");
            assert!(!error.to_string().is_empty());
        }
        // A named context that is absent.
        let text = kubeconfig("https://a:6443", &ca_line, token, "");
        assert_eq!(
            parse_kubeconfig(&text, Some("nope")).map_err(|e| e.code()),
            Err("kubeconfig_context")
        );
    }

    #[test]
    fn comma_separated_servers_and_the_only_context() {
        let text = kubeconfig(
            "https://10.0.0.1:6443, https://10.0.0.2:6443,https://10.0.0.1:6443",
            "",
            "    token: abc\n",
            "",
        )
        .replace(
            "    server:",
            &format!("    certificate-authority-data: {}\n    server:", b64(CA)),
        );
        // The fake CA text above is not a real certificate, so the TLS check refuses it; the
        // structure itself was read (endpoints deduplicated) before that.
        match parse_kubeconfig(&text, None) {
            Err(ImportError::InvalidPem { .. }) => {}
            other => panic!("expected the CA to be refused as a certificate, got {other:?}"),
        }
        assert_eq!(
            parse_servers("https://10.0.0.1:6443, https://10.0.0.2:6443,https://10.0.0.1:6443")
                .expect("valid")
                .len(),
            2
        );
    }

    fn real_ca() -> String {
        let key = rcgen::KeyPair::generate().expect("generate a key");
        rcgen::CertificateParams::new(vec!["apiserver".to_string()])
            .expect("certificate parameters")
            .self_signed(&key)
            .expect("self-sign")
            .pem()
    }

    /// A good kubeconfig in each accepted shape gives the context's servers and credential.
    #[test]
    fn good_kubeconfigs() {
        let ca = real_ca();
        let ca_line = format!("    certificate-authority-data: {}\n", b64(&ca));
        let check = |what: &str, text: &str, context: Option<&str>, expected_context: &str, servers: usize| {
            let imported = parse_kubeconfig(text, context).unwrap_or_else(|error| panic!("{what}: {error}"));
            assert_eq!(imported.context.as_deref(), Some(expected_context), "{what}");
            assert_eq!(imported.endpoints.len(), servers, "{what}");
            assert_eq!(imported.credentials.token.as_deref(), Some("abc"), "{what}");
            assert_eq!(
                imported.credentials.ca_certificate.as_deref(),
                Some(ca.as_str()),
                "{what}"
            );
        };
        let single = kubeconfig("https://10.0.0.1:6443", &ca_line, "    token: abc\n", "");
        check("the only context", &single, None, "ctx", 1);
        check("a named context", &single, Some("ctx"), "ctx", 1);
        let two = kubeconfig(
            "https://10.0.0.1:6443,https://10.0.0.2:6443",
            &ca_line,
            "    token: abc\n",
            "current-context: ctx\n",
        );
        check("comma-separated servers", &two, None, "ctx", 2);
        let json = serde_json::json!({
            "apiVersion": "v1",
            "clusters": [{"name": "c", "cluster": {"server": "https://a:6443", "certificate-authority-data": b64(&ca)}}],
            "users": [{"name": "u", "user": {"token": "abc"}}],
            "contexts": [{"name": "j", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "j",
        })
        .to_string();
        check("JSON", &json, None, "j", 1);
        // Two YAML documents are merged as kubectl merges two files: the first to name a thing wins.
        let split = format!(
            "{}---\nclusters:\n- name: c\n  cluster:\n    server: https://ignored:6443\n",
            kubeconfig("https://a:6443", &ca_line, "    token: abc\n", "")
        );
        check("two documents", &split, None, "ctx", 1);
    }

    /// The error for bad YAML names the problem, not the text around it (which may hold a token).
    #[test]
    fn a_yaml_error_does_not_echo_the_kubeconfig() {
        let text = "users:\n- name: u\n  user:\n    token: SECRET-TOKEN-VALUE\n    exec: [\n";
        let error = parse_kubeconfig(text, None).expect_err("bad YAML is refused");
        assert_eq!(error.code(), "invalid_kubeconfig");
        assert!(
            error.to_string().starts_with("the kubeconfig is not valid YAML: "),
            "{error}"
        );
        assert!(!error.to_string().contains("SECRET-TOKEN-VALUE"), "{error}");
    }

    /// Bad token imports with the code each must get.
    #[test]
    fn bad_token_imports() {
        let cases: Vec<(&str, &str, Option<&str>, &str)> = vec![
            ("", "abc", Some(CA), "invalid_endpoints"),
            ("https://a:6443", "", Some(CA), "missing_credentials"),
            ("https://a:6443", "two words", Some(CA), "invalid_credentials_input"),
            ("https://a:6443", "abc", None, "missing_ca_certificate"),
            (
                "https://a:6443",
                "abc",
                Some("not pem at all"),
                "invalid_credentials_input",
            ),
            ("http://a:8080", "abc", None, "ok"),
        ];
        for (server, token, ca, code) in cases {
            let result = parse_token_import(server, token, ca)
                .map(|_| "ok")
                .map_err(|e| e.code());
            let got = result.unwrap_or_else(|code| code);
            assert_eq!(got, code, "server={server:?} token={token:?} ca={ca:?}");
        }
    }
}
