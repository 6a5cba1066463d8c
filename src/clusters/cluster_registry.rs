//! Cluster records under `clusters/<name>`, stored as JSON with the credentials sealed, bound to the
//! record's key and its endpoints: a box moved to another record, or a record whose endpoints were
//! changed in the store without resealing, does not open. Records sealed before the endpoints were
//! bound are resealed once at start ([`bind_endpoints_of_old_records`]).

use std::fmt;

use kuboard_storage::{PutRequest, StoreError};
use serde::{Deserialize, Serialize};

use crate::app_store::{AppStore, KeyExpectation};
use crate::clusters::credential_cipher::{CredentialCipher, OpenError, SealedBox};

const CLUSTERS_PREFIX: &str = "clusters/";

/// How Kuboard authenticates to a cluster's apiserver. Every field is secret except the CA.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterCredentials {
    pub token: Option<String>,
    /// PEM.
    pub client_certificate: Option<String>,
    /// PEM.
    pub client_key: Option<String>,
    /// PEM; verifies the apiserver.
    pub ca_certificate: Option<String>,
}

impl fmt::Debug for ClusterCredentials {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ClusterCredentials")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field(
                "client_certificate",
                &self.client_certificate.as_ref().map(|_| "<redacted>"),
            )
            .field("client_key", &self.client_key.as_ref().map(|_| "<redacted>"))
            .field("ca_certificate", &self.ca_certificate.as_ref().map(|_| "<present>"))
            .finish()
    }
}

/// What is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRecord {
    pub name: String,
    pub description: String,
    /// Apiserver URLs (`https://a:6443`), tried in order by the balancer.
    pub endpoints: Vec<String>,
    /// The sealed JSON of [`ClusterCredentials`].
    pub credentials: SealedBox,
    /// Which credential kinds are present, so listings need not open the box.
    pub has_token: bool,
    pub has_client_certificate: bool,
    pub has_ca_certificate: bool,
    pub created_at: u64,
    pub updated_at: u64,
    /// Present for a cluster reached through `kuboard agent`: its endpoints and credentials are
    /// the ones its agent reported (empty until the agent first connects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentRegistration>,
    /// The credentials are sealed bound to `endpoints` too (absent in records written before).
    #[serde(default)]
    pub endpoints_bound: bool,
}

/// What a replica checks an agent's token against. The token itself is shown once and not stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRegistration {
    /// [`crate::tunnel::protocol::token_digest`] of the current token.
    pub token_digest: String,
    /// When the current token was made (creation or rotation).
    pub token_created_at: u64,
}

#[derive(Debug, Clone)]
pub struct StoredCluster {
    pub record: ClusterRecord,
    pub mod_revision: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored cluster record {key} is not valid: {message}")]
    Corrupt { key: String, message: String },
    #[error("credentials of cluster {name}: {source}")]
    Open { name: String, source: OpenError },
}

pub fn cluster_key(name: &str) -> String {
    format!("{CLUSTERS_PREFIX}{name}")
}

/// Cluster names as Kubernetes names objects: `[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?`.
pub fn is_valid_cluster_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(|b| *b != b'-')
        && bytes.last().is_some_and(|b| *b != b'-')
}

/// What sealed credentials are bound to: the record's key and its endpoints, in order.
fn credentials_context(name: &str, endpoints: &[String]) -> Vec<u8> {
    serde_json::to_vec(&(cluster_key(name), endpoints)).expect("strings always serialize")
}

/// Builds a record for `name`, sealing `credentials` bound to its key and `endpoints`.
pub fn seal_record(
    cipher: &CredentialCipher,
    name: &str,
    description: String,
    endpoints: Vec<String>,
    credentials: &ClusterCredentials,
    created_at: u64,
    now: u64,
) -> ClusterRecord {
    let plaintext = serde_json::to_vec(credentials).expect("credentials always serialize");
    let sealed = cipher.seal(&credentials_context(name, &endpoints), &plaintext);
    ClusterRecord {
        name: name.to_string(),
        description,
        endpoints,
        credentials: sealed,
        has_token: credentials.token.is_some(),
        has_client_certificate: credentials.client_certificate.is_some(),
        has_ca_certificate: credentials.ca_certificate.is_some(),
        created_at,
        updated_at: now,
        agent: None,
        endpoints_bound: true,
    }
}

/// Opens the record's credentials (for the code that connects to the cluster).
/// A record sealed before its endpoints were bound does not open here (it is resealed at start).
pub fn open_credentials(cipher: &CredentialCipher, record: &ClusterRecord) -> Result<ClusterCredentials, ClusterError> {
    if !record.endpoints_bound {
        return Err(ClusterError::Open {
            name: record.name.clone(),
            source: OpenError::Rejected,
        });
    }
    open_bound_to(cipher, record, &credentials_context(&record.name, &record.endpoints))
}

fn open_bound_to(
    cipher: &CredentialCipher,
    record: &ClusterRecord,
    context: &[u8],
) -> Result<ClusterCredentials, ClusterError> {
    let plaintext = cipher
        .open(context, &record.credentials)
        .map_err(|source| ClusterError::Open {
            name: record.name.clone(),
            source,
        })?;
    serde_json::from_slice(&plaintext).map_err(|_| ClusterError::Open {
        name: record.name.clone(),
        source: OpenError::Malformed,
    })
}

fn decode(key: &[u8], value: &[u8]) -> Result<ClusterRecord, ClusterError> {
    serde_json::from_slice(value).map_err(|error| ClusterError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        message: error.to_string(),
    })
}

pub async fn get_cluster(store: &AppStore, name: &str) -> Result<Option<StoredCluster>, ClusterError> {
    if !is_valid_cluster_name(name) {
        return Ok(None);
    }
    match store.get(&cluster_key(name)).await? {
        None => Ok(None),
        Some(kv) => Ok(Some(StoredCluster {
            record: decode(&kv.key, &kv.value)?,
            mod_revision: kv.mod_revision,
        })),
    }
}

pub async fn list_clusters(store: &AppStore) -> Result<Vec<ClusterRecord>, ClusterError> {
    let mut clusters = Vec::new();
    for kv in store.list(CLUSTERS_PREFIX).await? {
        match decode(&kv.key, &kv.value) {
            Ok(record) => clusters.push(record),
            Err(error) => tracing::warn!(%error, "skipping a cluster record that is not valid"),
        }
    }
    Ok(clusters)
}

/// Writes `record` if the key is absent (`expected_mod_revision` `None`) or unchanged since it was
/// read at that revision. Returns false when the condition failed.
pub async fn write_cluster(
    store: &AppStore,
    record: &ClusterRecord,
    expected_mod_revision: Option<i64>,
) -> Result<bool, ClusterError> {
    let key = cluster_key(&record.name);
    let expected = match expected_mod_revision {
        None => KeyExpectation::Absent,
        Some(revision) => KeyExpectation::UnchangedSince(revision),
    };
    let value = serde_json::to_vec(record).expect("a cluster record always serializes");
    Ok(store.put_if(expected, PutRequest::new(key, value)).await?)
}

/// Reseals the credentials of records written before the endpoints were bound (bound to the key
/// only) so that they are bound to their endpoints too; a record changed meanwhile is left to the
/// next start. Returns how many were resealed.
pub async fn bind_endpoints_of_old_records(store: &AppStore, cipher: &CredentialCipher) -> Result<usize, ClusterError> {
    let mut resealed = 0;
    for kv in store.list(CLUSTERS_PREFIX).await? {
        let Ok(record) = decode(&kv.key, &kv.value) else {
            continue;
        };
        if record.endpoints_bound {
            continue;
        }
        let credentials = open_bound_to(cipher, &record, cluster_key(&record.name).as_bytes())?;
        let mut bound = seal_record(
            cipher,
            &record.name,
            record.description.clone(),
            record.endpoints.clone(),
            &credentials,
            record.created_at,
            record.updated_at,
        );
        bound.agent = record.agent.clone();
        if write_cluster(store, &bound, Some(kv.mod_revision)).await? {
            tracing::info!(cluster = %record.name, "cluster credentials resealed bound to its endpoints");
            resealed += 1;
        }
    }
    Ok(resealed)
}

pub async fn delete_cluster(store: &AppStore, name: &str) -> Result<bool, ClusterError> {
    if !is_valid_cluster_name(name) {
        return Ok(false);
    }
    Ok(store.delete_key(&cluster_key(name)).await?.deleted > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["prod", "a", "prod-1", &"a".repeat(63)] {
            assert!(is_valid_cluster_name(good), "{good}");
        }
        for bad in ["", "-a", "a-", "Prod", "a/b", "a.b", &"a".repeat(64)] {
            assert!(!is_valid_cluster_name(bad), "{bad}");
        }
    }

    /// Someone who can write the store but not read the key must not be able to point a cluster's
    /// credentials at a server of their choosing: the endpoints are bound into the sealed box.
    #[test]
    fn credentials_do_not_open_after_the_stored_endpoints_are_swapped() {
        let cipher = CredentialCipher::from_secret("s");
        let credentials = ClusterCredentials {
            token: Some("bearer-token-value".into()),
            ..ClusterCredentials::default()
        };
        let record = seal_record(
            &cipher,
            "prod",
            String::new(),
            vec!["https://a:6443".into(), "https://b:6443".into()],
            &credentials,
            1,
            1,
        );
        assert_eq!(open_credentials(&cipher, &record).expect("opens"), credentials);
        for endpoints in [
            vec!["https://attacker.example:6443".to_string()],
            vec!["https://a:6443".to_string()],
            vec!["https://b:6443".to_string(), "https://a:6443".to_string()],
            vec![
                "https://a:6443".to_string(),
                "https://b:6443".to_string(),
                "https://c:6443".to_string(),
            ],
        ] {
            let swapped = ClusterRecord {
                endpoints: endpoints.clone(),
                ..record.clone()
            };
            assert!(
                open_credentials(&cipher, &swapped).is_err(),
                "the credentials opened for {endpoints:?}"
            );
        }
    }

    #[tokio::test]
    async fn records_sealed_before_the_endpoints_were_bound_are_resealed_once() {
        let store = AppStore::new(
            std::sync::Arc::new(crate::store_backend::StoreBackend::Memory(
                crate::memory_store::MemoryStore::default(),
            )),
            std::sync::Arc::new(crate::metrics::Metrics::new(1)),
        );
        let cipher = CredentialCipher::from_secret("s");
        let credentials = ClusterCredentials {
            token: Some("bearer-token-value".into()),
            ..ClusterCredentials::default()
        };
        // As the previous format wrote it: bound to the key only, no `endpoints_bound` field.
        let mut old = seal_record(
            &cipher,
            "prod",
            String::new(),
            vec!["https://a:6443".into()],
            &credentials,
            1,
            1,
        );
        old.credentials = cipher.seal(
            cluster_key("prod").as_bytes(),
            &serde_json::to_vec(&credentials).expect("JSON"),
        );
        let mut json: serde_json::Value = serde_json::to_value(&old).expect("JSON");
        json.as_object_mut().expect("an object").remove("endpoints_bound");
        store
            .put(PutRequest::new(
                cluster_key("prod"),
                serde_json::to_vec(&json).expect("JSON"),
            ))
            .await
            .expect("stored");
        let stored = get_cluster(&store, "prod").await.expect("read").expect("present");
        assert!(!stored.record.endpoints_bound);
        assert!(open_credentials(&cipher, &stored.record).is_err(), "not opened unbound");

        assert_eq!(
            bind_endpoints_of_old_records(&store, &cipher).await.expect("resealed"),
            1
        );
        assert_eq!(
            bind_endpoints_of_old_records(&store, &cipher)
                .await
                .expect("nothing left"),
            0
        );
        let stored = get_cluster(&store, "prod").await.expect("read").expect("present");
        assert!(stored.record.endpoints_bound);
        assert_eq!(open_credentials(&cipher, &stored.record).expect("opens"), credentials);
        let swapped = ClusterRecord {
            endpoints: vec!["https://attacker.example:6443".into()],
            ..stored.record
        };
        assert!(open_credentials(&cipher, &swapped).is_err());
    }

    #[test]
    fn sealed_records_round_trip_and_hide_secrets() {
        let cipher = CredentialCipher::from_secret("s");
        let credentials = ClusterCredentials {
            token: Some("bearer-token-value".into()),
            client_certificate: None,
            client_key: Some("KEY-PEM".into()),
            ca_certificate: Some("CA-PEM".into()),
        };
        let record = seal_record(
            &cipher,
            "prod",
            "d".into(),
            vec!["https://a:6443".into()],
            &credentials,
            1,
            2,
        );
        let stored = serde_json::to_string(&record).expect("serializes");
        assert!(
            !stored.contains("bearer-token-value") && !stored.contains("KEY-PEM"),
            "{stored}"
        );
        assert!(!format!("{credentials:?}").contains("bearer-token-value"));
        assert_eq!(open_credentials(&cipher, &record).expect("opens"), credentials);
        let mut moved = record.clone();
        moved.name = "test".into();
        assert!(
            open_credentials(&cipher, &moved).is_err(),
            "a box moved to another record does not open"
        );
    }
}
