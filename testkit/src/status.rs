//! Kubernetes-style `Status` errors.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{json, Value};

/// An error the fake answers with, shaped like the apiserver's `metav1.Status`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    /// The machine-readable reason: `NotFound`, `AlreadyExists`, `Conflict`, `Forbidden`, `Invalid`,
    /// `Expired`, `Gone`, `BadRequest`, `Unauthorized`, `MethodNotAllowed`, `InternalError`, ...
    pub reason: String,
    pub message: String,
    /// `details` of the Status (name, group, kind), when the error is about one object.
    pub details: Option<Value>,
    /// `metadata.continue` of the Status, set on an expired continue token (Kubernetes hands out an
    /// inconsistent continuation there).
    pub continue_token: Option<String>,
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: None,
            continue_token: None,
        }
    }

    pub fn not_found(qualified_resource: &str, name: &str) -> ApiError {
        ApiError::new(404, "NotFound", format!("{qualified_resource} \"{name}\" not found"))
            .with_details(qualified_resource, name)
    }

    pub fn already_exists(qualified_resource: &str, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{qualified_resource} \"{name}\" already exists"),
        )
        .with_details(qualified_resource, name)
    }

    pub fn conflict(qualified_resource: &str, name: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {qualified_resource} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again"
            ),
        )
        .with_details(qualified_resource, name)
    }

    pub fn invalid(kind: &str, name: &str, message: &str) -> ApiError {
        ApiError::new(422, "Invalid", format!("{kind} \"{name}\" is invalid: {message}"))
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn expired(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message)
    }

    pub fn too_old_resource_version(requested: u64, oldest: u64) -> ApiError {
        ApiError::expired(format!("too old resource version: {requested} ({oldest})"))
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "InternalError", message)
    }

    fn with_details(mut self, qualified_resource: &str, name: &str) -> ApiError {
        let (kind, group) = qualified_resource.split_once('.').unwrap_or((qualified_resource, ""));
        self.details = Some(json!({"name": name, "group": group, "kind": kind}));
        self
    }

    /// The `Status` object as sent on the wire (also the `object` of a watch `ERROR` event).
    pub fn to_status(&self) -> Value {
        let mut metadata = json!({});
        if let Some(token) = &self.continue_token {
            metadata["continue"] = json!(token);
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": metadata,
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.to_status()).expect("a JSON value always serializes");
        (code, [(http::header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}
