//! [`ApiServices`]: the settings and collaborators the REST API's handlers share, beyond the store.

use std::sync::Arc;
use std::time::Duration;

use crate::audit::AuditSink;
use crate::auth::throttle::ThrottleLimits;
use crate::clusters::credential_cipher::CredentialCipher;
use crate::config::{IpNetwork, Secret};

pub struct ApiServices {
    /// Lifetime of a session logged in with `"remember": true`.
    pub remember_ttl: Duration,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNetwork>,
    pub throttle: ThrottleLimits,
    /// The first-start admin password, which the password policy refuses as a new password.
    pub default_password: Secret,
    pub audit: Arc<dyn AuditSink>,
    /// Seals and opens cluster credentials.
    pub cipher: CredentialCipher,
}

impl ApiServices {
    /// Settings for handler tests: the defaults, a log-only audit sink and a fixed key.
    #[cfg(test)]
    pub fn for_tests() -> Arc<ApiServices> {
        Arc::new(ApiServices {
            remember_ttl: Duration::from_secs(7 * 24 * 3600),
            trusted_proxies: Vec::new(),
            throttle: ThrottleLimits {
                window_seconds: 300,
                max_failures_per_user: 10,
                max_failures_per_address: 50,
            },
            default_password: Secret::new(crate::config::DEFAULT_ADMIN_PASSWORD),
            audit: Arc::new(crate::audit::LogAuditSink),
            cipher: CredentialCipher::from_secret("handler tests"),
        })
    }
}

/// What one audited action was, as the handler knows it.
pub struct AuditRecord<'a> {
    pub username: &'a str,
    pub via_api: bool,
    pub verb: &'a str,
    pub resource: &'a str,
    pub name: Option<&'a str>,
    pub request_uri: &'a str,
    pub status_code: u16,
    pub allowed: bool,
    pub message: &'a str,
}

impl ApiServices {
    /// Hands one event to the audit sink.
    pub fn audit(
        &self,
        replica: u64,
        now: u64,
        client: &crate::http::client_address::ClientInfo,
        record: AuditRecord<'_>,
    ) {
        self.audit.record(crate::audit::AuditEvent {
            ts: now,
            audit_id: uuid::Uuid::new_v4().to_string(),
            replica,
            cluster: None,
            username: record.username.to_string(),
            client: if record.via_api { "api" } else { "ui" },
            source_ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            verb: record.verb.to_string(),
            resource: record.resource.to_string(),
            name: record.name.map(str::to_string),
            request_uri: record.request_uri.to_string(),
            status_code: record.status_code,
            decision: if record.allowed { "allow" } else { "deny" },
            message: record.message.to_string(),
        });
    }
}
