//! The cluster registry: imported Kubernetes clusters with their apiserver endpoints and their
//! credentials, kept in the store with the credentials encrypted.
//!
//! # Layout
//!
//! - [`credential_cipher`]: AES-256-GCM with a key derived (HKDF-SHA256) from
//!   `KUBOARD_SSO_CLIENT_SECRET`; versioned sealed boxes with a random nonce each.
//! - [`credential_secret`]: where that secret comes from (the setting, or a file a single replica
//!   generates in its data directory).
//! - [`cluster_registry`]: records under `clusters/<name>`.
//!
//! Architecture Invariant: credentials leave this module only in sealed form or to the code that
//! connects to the cluster; no API response and no log line carries them (their `Debug` is redacted).

pub mod cluster_registry;
pub mod credential_cipher;
pub mod credential_secret;
