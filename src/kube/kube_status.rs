//! Errors of the Kubernetes proxy as Kubernetes' own `Status` objects, so that kubectl and
//! client libraries show them as they show the apiserver's.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A `Status` failure with the HTTP code and `reason` Kubernetes uses for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeStatus {
    pub code: StatusCode,
    pub reason: &'static str,
    pub message: String,
}

impl KubeStatus {
    pub fn unauthorized(message: impl Into<String>) -> KubeStatus {
        KubeStatus {
            code: StatusCode::UNAUTHORIZED,
            reason: "Unauthorized",
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> KubeStatus {
        KubeStatus {
            code: StatusCode::FORBIDDEN,
            reason: "Forbidden",
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> KubeStatus {
        KubeStatus {
            code: StatusCode::NOT_FOUND,
            reason: "NotFound",
            message: message.into(),
        }
    }

    pub fn bad_gateway(message: impl Into<String>) -> KubeStatus {
        KubeStatus {
            code: StatusCode::BAD_GATEWAY,
            reason: "InternalError",
            message: message.into(),
        }
    }

    pub fn service_unavailable(message: impl Into<String>) -> KubeStatus {
        KubeStatus {
            code: StatusCode::SERVICE_UNAVAILABLE,
            reason: "ServiceUnavailable",
            message: message.into(),
        }
    }

    pub fn too_large(message: impl Into<String>) -> KubeStatus {
        KubeStatus {
            code: StatusCode::PAYLOAD_TOO_LARGE,
            reason: "RequestEntityTooLarge",
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> KubeStatus {
        KubeStatus {
            code: StatusCode::BAD_REQUEST,
            reason: "BadRequest",
            message: message.into(),
        }
    }

    pub fn body(&self) -> serde_json::Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        })
    }
}

impl IntoResponse for KubeStatus {
    fn into_response(self) -> Response {
        let mut response = (self.code, axum::Json(self.body())).into_response();
        if self.code == StatusCode::SERVICE_UNAVAILABLE {
            // Client libraries retry a 503 with Retry-After by themselves.
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
