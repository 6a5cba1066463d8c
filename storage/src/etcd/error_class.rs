//! Sorting etcd-client's errors into the cases the store's callers tell apart.

use etcd_client as etcd;
use tonic::Code;

use crate::error::StoreError;

/// etcd's own deadline for a proposal with default settings (5 s + 2 election timeouts of 1 s), after
/// which it answers "request timed out".
const ETCD_SERVER_REQUEST_TIMEOUT_MILLIS: u64 = 7000;

pub(super) enum Classified {
    Compacted,
    FutureRevision,
    LeaseNotFound,
    LeaseExists,
    Other(StoreError),
}

/// Sort an etcd error into the cases callers tell apart, by etcd's stable error messages first
/// (several cases share a gRPC code) and by gRPC code otherwise.
pub(super) fn classify(error: &etcd::Error) -> Classified {
    let status = match error {
        etcd::Error::GRpcStatus(status) => status,
        etcd::Error::LeaseKeepAliveError(message) if message.contains("not found") => return Classified::LeaseNotFound,
        etcd::Error::TransportError(_) | etcd::Error::IoError(_) => {
            return Classified::Other(StoreError::Unavailable(error.to_string()))
        }
        etcd::Error::InvalidArgs(message) => return Classified::Other(StoreError::InvalidArgument(message.clone())),
        other => return Classified::Other(StoreError::Internal(other.to_string())),
    };
    let message = status.message();
    if message.contains("required revision has been compacted") {
        return Classified::Compacted;
    }
    if message.contains("required revision is a future revision") {
        return Classified::FutureRevision;
    }
    if message.contains("requested lease not found") {
        return Classified::LeaseNotFound;
    }
    if message.contains("lease already exists") {
        return Classified::LeaseExists;
    }
    if message.contains("request timed out") {
        // etcd gave up waiting for the proposal (for example, the leader died with it): it may or may
        // not have been applied, which is what `Timeout` says and `Unavailable` does not.
        return Classified::Other(StoreError::Timeout {
            millis: ETCD_SERVER_REQUEST_TIMEOUT_MILLIS,
        });
    }
    if is_auth_message(message) {
        return Classified::Other(StoreError::Internal(format!("etcd refused the request: {message}")));
    }
    if connection_broke(error) {
        return Classified::Other(StoreError::Interrupted(message.to_string()));
    }
    Classified::Other(match status.code() {
        Code::InvalidArgument | Code::OutOfRange | Code::ResourceExhausted => {
            StoreError::InvalidArgument(message.trim_start_matches("etcdserver: ").to_string())
        }
        Code::Unavailable | Code::Cancelled | Code::Aborted => StoreError::Unavailable(message.to_string()),
        Code::DeadlineExceeded => StoreError::Unavailable(format!("etcd deadline exceeded: {message}")),
        _ => StoreError::Internal(format!("etcd: {status}")),
    })
}

/// True when the request could not even be sent: no connection to a member could be opened. Such a
/// request is safe to send again whatever it does.
pub(super) fn never_sent(error: &etcd::Error) -> bool {
    match error {
        etcd::Error::GRpcStatus(status) => {
            status.code() == Code::Unavailable && status.message().contains("connect error")
        }
        _ => false,
    }
}

/// True when the connection broke while the request was in flight (the member died or closed it):
/// the request may have been applied.
pub(super) fn connection_broke(error: &etcd::Error) -> bool {
    match error {
        etcd::Error::GRpcStatus(status) => {
            status.code() == Code::Unknown && status.message().contains("transport error")
        }
        _ => false,
    }
}

/// True when the request failed because no member could serve it now.
pub(super) fn is_unavailable(error: &etcd::Error) -> bool {
    matches!(classify(error), Classified::Other(StoreError::Unavailable(_)))
}

fn is_auth_message(message: &str) -> bool {
    [
        "authentication failed",
        "permission denied",
        "invalid auth token",
        "user name is empty",
        "auth management",
    ]
    .iter()
    .any(|fragment| message.contains(fragment))
}

pub(super) fn is_auth_error(error: &etcd::Error) -> bool {
    match error {
        etcd::Error::GRpcStatus(status) => {
            is_auth_message(status.message()) || matches!(status.code(), Code::Unauthenticated | Code::PermissionDenied)
        }
        _ => false,
    }
}
