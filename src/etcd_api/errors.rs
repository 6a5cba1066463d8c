//! The store's errors as etcd's gRPC errors: the same status codes and the same `etcdserver: …`
//! messages etcd 3.4 sends, so that etcdctl and the Go client recognise them (the Go client maps
//! errors back to its typed errors by their message) and operators read what they know.

use kuboard_storage::StoreError;
use tonic::{Code, Status};

pub(super) const EMPTY_KEY: &str = "etcdserver: key is not provided";
pub(super) const KEY_NOT_FOUND: &str = "etcdserver: key not found";
pub(super) const VALUE_PROVIDED: &str = "etcdserver: value is provided";
pub(super) const LEASE_PROVIDED: &str = "etcdserver: lease is provided";
pub(super) const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
pub(super) const FUTURE_REVISION: &str = "etcdserver: mvcc: required revision is a future revision";
pub(super) const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
pub(super) const LEASE_EXISTS: &str = "etcdserver: lease already exists";
pub(super) const LEASE_TTL_TOO_LARGE: &str = "etcdserver: too large lease TTL";
pub(super) const REQUEST_TOO_LARGE: &str = "etcdserver: request is too large";
pub(super) const NO_LEADER: &str = "etcdserver: no leader";
pub(super) const TIMEOUT: &str = "etcdserver: request timed out";
pub(super) const STOPPED: &str = "etcdserver: server stopped";

/// The gRPC status etcd would answer for `error`.
pub(super) fn status_of(error: &StoreError) -> Status {
    match error {
        StoreError::Compacted { .. } => Status::new(Code::OutOfRange, COMPACTED),
        StoreError::FutureRevision { .. } => Status::new(Code::OutOfRange, FUTURE_REVISION),
        StoreError::LeaseNotFound(_) => Status::new(Code::NotFound, LEASE_NOT_FOUND),
        StoreError::LeaseExists(_) => Status::new(Code::FailedPrecondition, LEASE_EXISTS),
        StoreError::InvalidArgument(message) => Status::new(Code::InvalidArgument, invalid_argument_message(message)),
        StoreError::Unavailable(reason) => {
            // etcd says only "no leader"; the store's reason helps the operator reading our log.
            tracing::debug!(%reason, "etcd API request refused: store unavailable");
            Status::new(Code::Unavailable, NO_LEADER)
        }
        // Both say the outcome is unknown, which etcd words as a timed-out request.
        StoreError::Timeout { .. } | StoreError::Interrupted(_) => Status::new(Code::Unavailable, TIMEOUT),
        StoreError::ShuttingDown => Status::new(Code::Unavailable, STOPPED),
        StoreError::Internal(detail) => {
            // The detail may name files or internals; it stays in the log.
            tracing::error!(%detail, "etcd API request failed inside the store");
            Status::new(
                Code::Internal,
                "etcdserver: internal error (see the kuboard server log)",
            )
        }
    }
}

/// The store words its argument errors as etcd does, without the `etcdserver: ` prefix, except for
/// the request size limit, which it explains in more detail than etcd.
fn invalid_argument_message(message: &str) -> String {
    if message.starts_with("request of about") {
        return REQUEST_TOO_LARGE.to_string();
    }
    if message.starts_with("etcdserver: ") {
        return message.to_string();
    }
    format!("etcdserver: {message}")
}

pub(super) fn empty_key() -> Status {
    Status::new(Code::InvalidArgument, EMPTY_KEY)
}

pub(super) fn invalid(message: impl Into<String>) -> Status {
    Status::new(Code::InvalidArgument, message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(error: StoreError, code: Code, message: &str) {
        let status = status_of(&error);
        assert_eq!(status.code(), code, "{error:?}");
        assert_eq!(status.message(), message, "{error:?}");
    }

    #[test]
    fn store_errors_read_as_etcd_errors() {
        check(
            StoreError::Compacted {
                requested: 1,
                compact_revision: 5,
            },
            Code::OutOfRange,
            COMPACTED,
        );
        check(
            StoreError::FutureRevision {
                requested: 9,
                current: 5,
            },
            Code::OutOfRange,
            FUTURE_REVISION,
        );
        check(StoreError::LeaseNotFound(7), Code::NotFound, LEASE_NOT_FOUND);
        check(StoreError::LeaseExists(7), Code::FailedPrecondition, LEASE_EXISTS);
        check(
            StoreError::InvalidArgument("duplicate key given in txn request".into()),
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request",
        );
        check(
            StoreError::InvalidArgument("request of about 2000000 bytes exceeds the limit of 1572864 bytes".into()),
            Code::InvalidArgument,
            REQUEST_TOO_LARGE,
        );
        check(
            StoreError::Unavailable("no quorum".into()),
            Code::Unavailable,
            NO_LEADER,
        );
        check(StoreError::Timeout { millis: 10 }, Code::Unavailable, TIMEOUT);
        check(
            StoreError::Interrupted("transport error".into()),
            Code::Unavailable,
            TIMEOUT,
        );
        check(StoreError::ShuttingDown, Code::Unavailable, STOPPED);
    }
}
