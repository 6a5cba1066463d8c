//! Certificates for a fake cluster (a CA, server and client certificates, generated with rcgen) and
//! kubeconfig files that point kubectl at it.

use anyhow::Context as _;
use base64::Engine as _;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};

/// A certificate and its private key, PEM-encoded.
#[derive(Clone)]
pub struct CertifiedKey {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CertifiedKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key never reaches a log.
        formatter
            .debug_struct("CertifiedKey")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// A cluster CA that signs the server certificates of the instances and client certificates of users.
pub struct CertificateAuthority {
    certificate: rcgen::Certificate,
    key: KeyPair,
    pub cert_pem: String,
}

/// The OID of X.520 organizationName (O), used for a second group: rcgen keeps one value per attribute
/// type, so a second O is written under its OID spelled as a custom type.
const ORGANIZATION_OID: [u64; 4] = [2, 5, 4, 10];

impl CertificateAuthority {
    pub fn generate(common_name: &str) -> anyhow::Result<CertificateAuthority> {
        let key = KeyPair::generate().context("generate the CA key")?;
        let mut params = CertificateParams::new(Vec::<String>::new()).context("build the CA parameters")?;
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let certificate = params.self_signed(&key).context("sign the CA certificate")?;
        let cert_pem = certificate.pem();
        Ok(CertificateAuthority {
            certificate,
            key,
            cert_pem,
        })
    }

    /// A serving certificate for `names` (DNS names or IP addresses; `localhost` and `127.0.0.1` are
    /// always included).
    pub fn issue_server(&self, names: &[&str]) -> anyhow::Result<CertifiedKey> {
        let mut all: Vec<String> = vec!["localhost".into(), "127.0.0.1".into()];
        all.extend(
            names
                .iter()
                .map(|n| n.to_string())
                .filter(|n| n != "localhost" && n != "127.0.0.1"),
        );
        let mut params = CertificateParams::new(all).context("build the server certificate parameters")?;
        params.distinguished_name.push(DnType::CommonName, "kube-apiserver");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        self.sign(params)
    }

    /// A client certificate for `user` (its CN) in `groups` (its O values, at most two).
    pub fn issue_client(&self, user: &str, groups: &[&str]) -> anyhow::Result<CertifiedKey> {
        anyhow::ensure!(
            groups.len() <= 2,
            "a fake client certificate carries at most two groups"
        );
        let mut params =
            CertificateParams::new(Vec::<String>::new()).context("build the client certificate parameters")?;
        params.distinguished_name.push(DnType::CommonName, user);
        if let Some(first) = groups.first() {
            params.distinguished_name.push(DnType::OrganizationName, *first);
        }
        if let Some(second) = groups.get(1) {
            params
                .distinguished_name
                .push(DnType::CustomDnType(ORGANIZATION_OID.to_vec()), *second);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> anyhow::Result<CertifiedKey> {
        let key = KeyPair::generate().context("generate a key")?;
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .context("sign a certificate")?;
        Ok(CertifiedKey {
            cert_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// How a kubeconfig user authenticates.
#[derive(Debug, Clone)]
pub enum Credential {
    ClientCertificate(CertifiedKey),
    Token(String),
}

fn base64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A kubeconfig with one cluster (`fake`), one user and one current context. `server` is written as given
/// (Kuboard's import convention allows several comma-separated URLs there; kubectl does not).
pub fn kubeconfig(server: &str, ca_pem: &str, credential: &Credential, namespace: Option<&str>) -> String {
    let user = match credential {
        Credential::ClientCertificate(key) => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            base64(&key.cert_pem),
            base64(&key.key_pem)
        ),
        Credential::Token(token) => format!("    token: {token}\n"),
    };
    let namespace = namespace.map(|n| format!("    namespace: {n}\n")).unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {server}\n    \
         certificate-authority-data: {}\nusers:\n- name: fake-user\n  user:\n{user}contexts:\n- name: fake\n  \
         context:\n    cluster: fake\n    user: fake-user\n{namespace}current-context: fake\n",
        base64(ca_pem)
    )
}
