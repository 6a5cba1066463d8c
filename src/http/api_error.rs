//! [`ApiError`]: the one error type of the REST API. The client gets a stable machine code, a
//! human message and the request id; internal details go only to the log, tagged with that id.

use std::fmt::Display;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kuboard_storage::StoreError;
use serde::Serialize;

use crate::auth::users::UserError;

tokio::task_local! {
    /// The id of the request being served, set by the request-context middleware.
    pub static REQUEST_ID: String;
}

/// The id of the request being served, or `unknown` outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "unknown".to_string())
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, machine-readable, snake_case.
    pub code: &'static str,
    /// For humans; never contains internal details or secrets.
    pub message: String,
    /// For the log only.
    internal: Option<String>,
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    pub request_id: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            internal: None,
        }
    }

    /// A fault of the server: the client learns only that something failed and the request id.
    pub fn internal(detail: impl Display) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "the server failed to handle the request; its log has the details under the request id".into(),
            internal: Some(detail.to_string()),
        }
    }

    pub fn unauthenticated() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "log in first: no valid session was presented",
        )
    }

    pub fn invalid_credentials() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "wrong user name or password",
        )
    }

    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this resource does not accept that method",
        )
    }

    fn with_internal(mut self, detail: impl Display) -> ApiError {
        self.internal = Some(detail.to_string());
        self
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::Unavailable(_)
            | StoreError::Timeout { .. }
            | StoreError::Interrupted(_)
            | StoreError::ShuttingDown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the store cannot serve requests right now (no leader or no quorum); retry shortly",
            )
            .with_internal(error),
            other => ApiError::internal(format!("store: {other}")),
        }
    }
}

impl From<UserError> for ApiError {
    fn from(error: UserError) -> ApiError {
        match error {
            UserError::Store(store_error) => ApiError::from(store_error),
            other => ApiError::internal(other),
        }
    }
}

impl From<crate::clusters::cluster_registry::ClusterError> for ApiError {
    fn from(error: crate::clusters::cluster_registry::ClusterError) -> ApiError {
        match error {
            crate::clusters::cluster_registry::ClusterError::Store(store_error) => ApiError::from(store_error),
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = current_request_id();
        match (&self.internal, self.status) {
            (Some(detail), status) if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE => {
                tracing::error!(%request_id, code = self.code, %detail, "request failed");
            }
            (Some(detail), _) => tracing::warn!(%request_id, code = self.code, %detail, "request refused"),
            (None, _) => tracing::debug!(%request_id, code = self.code, "request refused"),
        }
        let body = ErrorBody {
            code: self.code.to_string(),
            message: self.message,
            request_id,
        };
        (self.status, Json(body)).into_response()
    }
}
