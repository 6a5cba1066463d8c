//! The kubeconfig a user downloads to reach a cluster through Kuboard's proxy with their own
//! Kuboard identity: one cluster (`{base}/k8s-api/{cluster}`, with the group CA when replicas serve
//! the group's own certificate), one user with a bearer token, one context.
//!
//! kubectl sends a bearer token only over TLS, so the address is always an `https://` one:
//! `KUBOARD_ENDPOINT` when it is https, else the same host on the HTTPS port
//! (`KUBOARD_SERVER_HTTPS_PORT`). When there is none, [`kubeconfig_target`] says why instead.

use base64::Engine as _;
use serde_json::json;

use crate::tls::https_port::HttpsAvailability;

/// Where the kubeconfig points kubectl, and the CA it trusts there (PEM) if not the system's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigTarget {
    /// `https://host[:port]`, no trailing slash.
    pub base_url: String,
    pub ca_pem: Option<String>,
}

/// Why no kubeconfig that works can be handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetRefusal {
    /// Neither `KUBOARD_ENDPOINT` nor a usable Host header names Kuboard.
    NoAddress,
    /// Only plain HTTP is on offer; the message says why and what to set.
    NeedsHttps(String),
    /// The HTTPS port's certificate is not made yet (the store does not answer yet).
    HttpsStarting,
}

/// What the download knows of this replica.
pub struct ServedAddresses<'a> {
    /// `KUBOARD_ENDPOINT`.
    pub endpoint: Option<&'a str>,
    /// The request's Host header.
    pub host: Option<&'a str>,
    /// The web port itself serves TLS (`KUBOARD_TLS_CERT`).
    pub web_tls: bool,
    pub https_port: u16,
    pub https: HttpsAvailability,
}

/// The address and CA of a kubeconfig that works, or why there is none.
pub fn kubeconfig_target(served: &ServedAddresses<'_>) -> Result<KubeconfigTarget, TargetRefusal> {
    let host = served
        .host
        .filter(|host| !host.is_empty() && !host.contains(['/', ' ', '@', '\\']));
    // `https://` + the host of `base` (kept with brackets) + the HTTPS port unless it is 443.
    let on_https_port = |authority: &str| {
        let host = host_of_authority(authority);
        match served.https_port {
            443 => format!("https://{host}"),
            port => format!("https://{host}:{port}"),
        }
    };
    let (base_url, plain) = match served.endpoint.map(|endpoint| endpoint.trim_end_matches('/')) {
        Some(endpoint) if endpoint.starts_with("https://") => {
            return match &served.https {
                HttpsAvailability::Serving { group_ca_pem } => Ok(KubeconfigTarget {
                    base_url: endpoint.to_string(),
                    ca_pem: group_ca_pem.clone(),
                }),
                HttpsAvailability::Starting => Err(TargetRefusal::HttpsStarting),
                // TLS ends in front of the replicas, with a certificate clients already trust.
                HttpsAvailability::Off(_) => Ok(KubeconfigTarget {
                    base_url: endpoint.to_string(),
                    ca_pem: None,
                }),
            };
        }
        Some(endpoint) => {
            let authority = endpoint.trim_start_matches("http://");
            (
                on_https_port(authority.split('/').next().unwrap_or(authority)),
                format!("KUBOARD_ENDPOINT ({endpoint}) is plain HTTP"),
            )
        }
        None => {
            let host = host.ok_or(TargetRefusal::NoAddress)?;
            if served.web_tls {
                return Ok(KubeconfigTarget {
                    base_url: format!("https://{host}"),
                    ca_pem: None,
                });
            }
            (
                on_https_port(host),
                format!("Kuboard is reached over plain HTTP ({host})"),
            )
        }
    };
    match &served.https {
        HttpsAvailability::Serving { group_ca_pem } => Ok(KubeconfigTarget {
            base_url,
            ca_pem: group_ca_pem.clone(),
        }),
        HttpsAvailability::Starting => Err(TargetRefusal::HttpsStarting),
        HttpsAvailability::Off(reason) => Err(TargetRefusal::NeedsHttps(format!(
            "{plain} and {reason}; kubectl sends credentials only over HTTPS, so a kubeconfig naming a plain \
             HTTP address would not work. Turn the HTTPS port on (KUBOARD_SERVER_HTTPS_PORT) or set an https:// \
             KUBOARD_ENDPOINT."
        ))),
    }
}

/// `host` of `host:port`, `[v6]` of `[v6]:port`.
fn host_of_authority(authority: &str) -> &str {
    if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        }
    } else {
        authority.split(':').next().unwrap_or(authority)
    }
}

/// The kubeconfig text for `username` on `cluster` at `target`; `token` is the user's access key or
/// session token.
pub fn user_kubeconfig(target: &KubeconfigTarget, cluster: &str, username: &str, token: &str) -> String {
    let user = format!("kuboard-{username}");
    let context = format!("kuboard-{cluster}");
    let mut cluster_entry = json!({"server": format!("{}/k8s-api/{cluster}", target.base_url.trim_end_matches('/'))});
    if let Some(ca) = &target.ca_pem {
        cluster_entry["certificate-authority-data"] =
            base64::engine::general_purpose::STANDARD.encode(ca.as_bytes()).into();
    }
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": cluster_entry}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
        "current-context": context,
    });
    serde_norway::to_string(&config).expect("a JSON value always serializes to YAML")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::kubeconfig_import::parse_kubeconfig;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn served(endpoint: Option<&'static str>, web_tls: bool, https: HttpsAvailability) -> ServedAddresses<'static> {
        ServedAddresses {
            endpoint,
            host: Some("10.0.0.5:80"),
            web_tls,
            https_port: 443,
            https,
        }
    }

    fn group() -> HttpsAvailability {
        HttpsAvailability::Serving {
            group_ca_pem: Some(CA.into()),
        }
    }

    #[test]
    fn a_downloaded_kubeconfig_reads_back_with_its_ca() {
        let key = rcgen::KeyPair::generate().expect("a key");
        let ca = rcgen::CertificateParams::new(Vec::<String>::new())
            .expect("parameters")
            .self_signed(&key)
            .expect("a certificate")
            .pem();
        let target = KubeconfigTarget {
            base_url: "https://kuboard.example:8443/".into(),
            ca_pem: Some(ca.clone()),
        };
        let text = user_kubeconfig(&target, "prod", "alice", "kbak_0123_secret");
        let imported = parse_kubeconfig(&text, None).expect("the generated kubeconfig is valid");
        assert_eq!(imported.context.as_deref(), Some("kuboard-prod"));
        assert_eq!(
            imported.endpoints[0].to_string(),
            "https://kuboard.example:8443/k8s-api/prod"
        );
        assert_eq!(imported.credentials.token.as_deref(), Some("kbak_0123_secret"));
        assert_eq!(imported.credentials.ca_certificate.as_deref(), Some(ca.as_str()));
    }

    #[test]
    fn the_address_is_always_https_or_refused_with_the_reason() {
        let ok = |base: &str, ca: Option<&str>| {
            Ok(KubeconfigTarget {
                base_url: base.into(),
                ca_pem: ca.map(str::to_string),
            })
        };
        let off = || HttpsAvailability::Off("the HTTPS port is off (KUBOARD_SERVER_HTTPS_PORT=off)".into());
        // The install guide's http://<lb>:80: the same host on the HTTPS port, with the group CA.
        assert_eq!(
            kubeconfig_target(&served(Some("http://lb.example:80"), false, group())),
            ok("https://lb.example", Some(CA))
        );
        let mut other_port = served(Some("http://[fd00::1]"), false, group());
        other_port.https_port = 8443;
        assert_eq!(kubeconfig_target(&other_port), ok("https://[fd00::1]:8443", Some(CA)));
        // No endpoint: the Host header's host on the HTTPS port.
        assert_eq!(
            kubeconfig_target(&served(None, false, group())),
            ok("https://10.0.0.5", Some(CA))
        );
        // An https endpoint is used as given; with HTTPS off here, TLS ends in front (system trust).
        assert_eq!(
            kubeconfig_target(&served(Some("https://k.example/"), false, group())),
            ok("https://k.example", Some(CA))
        );
        assert_eq!(
            kubeconfig_target(&served(Some("https://k.example"), false, off())),
            ok("https://k.example", None)
        );
        // Operator certificates on the web port: the address the page was reached at.
        assert_eq!(
            kubeconfig_target(&served(None, true, off())),
            ok("https://10.0.0.5:80", None)
        );
        // Only plain HTTP: refused, saying why.
        match kubeconfig_target(&served(Some("http://lb.example"), false, off())) {
            Err(TargetRefusal::NeedsHttps(message)) => assert!(
                message.starts_with("KUBOARD_ENDPOINT (http://lb.example) is plain HTTP and the HTTPS port is off")
                    && message.contains("kubectl sends credentials only over HTTPS"),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            kubeconfig_target(&served(None, false, off())),
            Err(TargetRefusal::NeedsHttps(_))
        ));
        assert_eq!(
            kubeconfig_target(&served(None, false, HttpsAvailability::Starting)),
            Err(TargetRefusal::HttpsStarting)
        );
        let mut no_host = served(None, false, group());
        no_host.host = Some("a b");
        assert_eq!(kubeconfig_target(&no_host), Err(TargetRefusal::NoAddress));
    }
}
