//! [`GroupCa`]: the certificate authority every replica of a group shares, made once by whichever
//! replica first needs it and kept in the store under [`GROUP_CA_KEY`]. Its private key is sealed
//! with the cluster-credential cipher (the key derived from `KUBOARD_SSO_CLIENT_SECRET`), bound to
//! the record's key; the certificate is public and goes into downloaded kubeconfigs.
//!
//! Creation is a compare-and-swap on an absent key: replicas racing at the first start all end up
//! with the one CA that won.

use std::fmt;

use kuboard_storage::{PutRequest, StoreError};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};

use crate::app_store::{AppStore, KeyExpectation};
use crate::clusters::credential_cipher::{CredentialCipher, OpenError, SealedBox};

/// Where the group CA is kept.
pub const GROUP_CA_KEY: &str = "tls/group-ca";
/// The CA's subject. The issuer of every serving certificate is written from these, so they must
/// not change while a CA made with them is in a store.
const CA_COMMON_NAME: &str = "Kuboard group CA";
const CA_ORGANIZATION: &str = "kuboard-rs";

/// What is stored: the certificate in clear, the PKCS#8 private key sealed.
#[derive(Clone, Serialize, Deserialize)]
struct GroupCaRecord {
    certificate_pem: String,
    key: SealedBox,
    created_at: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum GroupCaError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored group CA ({GROUP_CA_KEY}) is not valid: {0}")]
    Corrupt(String),
    #[error("the group CA's key ({GROUP_CA_KEY}): {0}")]
    Open(OpenError),
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The group CA, ready to issue serving certificates.
pub struct GroupCa {
    /// PEM of the certificate as stored (the one every replica presents in its chain).
    pub certificate_pem: String,
    certificate_der: CertificateDer<'static>,
    /// The CA as an issuer: its subject and key, rebuilt from [`ca_params`].
    issuer: rcgen::Certificate,
    key: KeyPair,
}

impl fmt::Debug for GroupCa {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("GroupCa")
            .field("certificate_pem", &self.certificate_pem)
            .finish_non_exhaustive()
    }
}

/// A serving certificate with its chain (leaf, then the CA) and its private key.
pub struct ServingCertificate {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CA_COMMON_NAME);
    name.push(DnType::OrganizationName, CA_ORGANIZATION);
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

impl GroupCa {
    /// Reads the group CA from the store, or makes one and stores it if there is none yet. Two
    /// replicas racing both return the CA that was stored first.
    pub async fn load_or_create(
        store: &AppStore,
        cipher: &CredentialCipher,
        now: u64,
    ) -> Result<GroupCa, GroupCaError> {
        if let Some(kv) = store.get(GROUP_CA_KEY).await? {
            return GroupCa::from_stored(cipher, &kv.value);
        }
        let key = KeyPair::generate()?;
        let certificate = ca_params().self_signed(&key)?;
        let record = GroupCaRecord {
            certificate_pem: certificate.pem(),
            key: cipher.seal(GROUP_CA_KEY.as_bytes(), key.serialized_der()),
            created_at: now,
        };
        let value = serde_json::to_vec(&record).expect("a group CA record always serializes");
        if store
            .put_if(KeyExpectation::Absent, PutRequest::new(GROUP_CA_KEY, value))
            .await?
        {
            tracing::info!(key = GROUP_CA_KEY, "group CA created for HTTPS");
            return GroupCa::from_record(cipher, record);
        }
        // Another replica stored one first: use that one.
        match store.get(GROUP_CA_KEY).await? {
            Some(kv) => GroupCa::from_stored(cipher, &kv.value),
            None => Err(GroupCaError::Corrupt("written by another replica, then deleted".into())),
        }
    }

    fn from_stored(cipher: &CredentialCipher, value: &[u8]) -> Result<GroupCa, GroupCaError> {
        let record: GroupCaRecord =
            serde_json::from_slice(value).map_err(|error| GroupCaError::Corrupt(error.to_string()))?;
        GroupCa::from_record(cipher, record)
    }

    fn from_record(cipher: &CredentialCipher, record: GroupCaRecord) -> Result<GroupCa, GroupCaError> {
        let key_der = cipher
            .open(GROUP_CA_KEY.as_bytes(), &record.key)
            .map_err(GroupCaError::Open)?;
        let key = KeyPair::try_from(key_der.as_slice())
            .map_err(|error| GroupCaError::Corrupt(format!("the sealed key is not a PKCS#8 key: {error}")))?;
        let certificate_der = CertificateDer::from_pem_slice(record.certificate_pem.as_bytes())
            .map_err(|error| GroupCaError::Corrupt(format!("the certificate is not PEM: {error}")))?;
        let issuer = ca_params().self_signed(&key)?;
        Ok(GroupCa {
            certificate_pem: record.certificate_pem,
            certificate_der,
            issuer,
            key,
        })
    }

    /// A serving certificate for `names` (DNS names and IP addresses; names that are neither are
    /// skipped), with a fresh key, signed by the group CA.
    pub fn issue_serving(&self, names: &[String]) -> Result<ServingCertificate, GroupCaError> {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "kuboard");
        params.subject_alt_names = subject_alt_names(names);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let leaf = params.signed_by(&key, &self.issuer, &self.key)?;
        Ok(ServingCertificate {
            chain: vec![leaf.der().clone(), self.certificate_der.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }
}

/// IP addresses as IP SANs, valid DNS names as DNS SANs, duplicates and anything else dropped.
fn subject_alt_names(names: &[String]) -> Vec<SanType> {
    let mut sans: Vec<SanType> = Vec::new();
    for name in names {
        let name = name.trim().trim_start_matches('[').trim_end_matches(']');
        let san = if let Ok(ip) = name.parse::<std::net::IpAddr>() {
            SanType::IpAddress(ip)
        } else if is_dns_name(name) {
            match name.to_ascii_lowercase().try_into() {
                Ok(dns) => SanType::DnsName(dns),
                Err(_) => continue,
            }
        } else {
            continue;
        };
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    sans
}

fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::memory_store::MemoryStore;
    use crate::metrics::Metrics;
    use crate::store_backend::StoreBackend;

    fn store() -> AppStore {
        AppStore::new(
            Arc::new(StoreBackend::Memory(MemoryStore::default())),
            Arc::new(Metrics::new(1)),
        )
    }

    #[tokio::test]
    async fn replicas_racing_at_the_first_start_share_one_ca_whose_key_is_sealed() {
        let store = store();
        let cipher = CredentialCipher::from_secret("group secret");
        let (first, second, third) = tokio::join!(
            GroupCa::load_or_create(&store, &cipher, 1),
            GroupCa::load_or_create(&store, &cipher, 2),
            GroupCa::load_or_create(&store, &cipher, 3),
        );
        let (first, second, third) = (first.expect("a CA"), second.expect("a CA"), third.expect("a CA"));
        assert_eq!(first.certificate_pem, second.certificate_pem);
        assert_eq!(first.certificate_pem, third.certificate_pem);

        let stored = store.get(GROUP_CA_KEY).await.expect("read").expect("stored");
        let text = String::from_utf8(stored.value).expect("JSON");
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        let record: GroupCaRecord = serde_json::from_str(&text).expect("a record");
        let key_der = first.key.serialize_der();
        assert!(
            !text.contains(&base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                &key_der
            )),
            "the key is not stored in clear"
        );
        assert!(!format!("{first:?}").contains("PRIVATE"));

        // Another secret cannot open the key: the replica says so instead of making a second CA.
        let other = CredentialCipher::from_secret("another secret");
        let error = GroupCa::load_or_create(&store, &other, 4)
            .await
            .expect_err("the key does not open with another secret");
        assert!(matches!(error, GroupCaError::Open(OpenError::Rejected)), "{error}");
        assert!((1..=3).contains(&record.created_at), "made by one of the three");
    }

    #[tokio::test]
    async fn serving_certificates_chain_to_the_stored_ca_with_the_names_asked_for() {
        use tokio_rustls::rustls::client::danger::ServerCertVerifier as _;
        let store = store();
        let cipher = CredentialCipher::from_secret("group secret");
        let made = GroupCa::load_or_create(&store, &cipher, 1).await.expect("a CA");
        // A replica that starts later rebuilds the issuer from the stored record.
        let loaded = GroupCa::load_or_create(&store, &cipher, 2).await.expect("the CA");
        let serving = loaded
            .issue_serving(&[
                "kuboard.example".into(),
                "10.1.2.3".into(),
                "[::1]".into(),
                "not a name".into(),
                "kuboard.example".into(),
            ])
            .expect("a serving certificate");
        assert_eq!(serving.chain.len(), 2);
        assert_eq!(serving.chain[1], made.certificate_der);

        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        roots.add(made.certificate_der.clone()).expect("the CA is a root");
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let verifier =
            tokio_rustls::rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("a verifier");
        let now = rustls_pki_types::UnixTime::now();
        for name in ["kuboard.example", "10.1.2.3", "::1"] {
            let server_name = rustls_pki_types::ServerName::try_from(name).expect("a server name");
            verifier
                .verify_server_cert(&serving.chain[0], &serving.chain[1..], &server_name, &[], now)
                .unwrap_or_else(|error| panic!("{name} is certified: {error}"));
        }
        let other = rustls_pki_types::ServerName::try_from("other.example").expect("a server name");
        assert!(verifier
            .verify_server_cert(&serving.chain[0], &serving.chain[1..], &other, &[], now)
            .is_err());
    }
}
