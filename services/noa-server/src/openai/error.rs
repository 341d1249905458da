//! Errors in OpenAI's shape — `{"error": {"message", "type", "param", "code"}}` with the HTTP
//! status OpenAI uses — including for bodies axum rejects (bad JSON, wrong content type, too
//! large), so every client library parses our failures.

use crate::inference::GenerateError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<&'static str>,
    pub code: Option<&'static str>,
}

impl ApiError {
    pub fn invalid(message: impl Into<String>, param: Option<&'static str>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param,
            code: None,
        }
    }

    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
        }
    }

    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

impl From<GenerateError> for ApiError {
    fn from(error: GenerateError) -> ApiError {
        let message = error.to_string();
        match error {
            GenerateError::NoModel(_) => ApiError {
                code: Some("model_not_found"),
                ..ApiError::new(StatusCode::NOT_FOUND, "invalid_request_error", message)
            },
            GenerateError::PromptTooLong { .. } => ApiError {
                code: Some("context_length_exceeded"),
                ..ApiError::invalid(message, Some("messages"))
            },
            GenerateError::Busy => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message)
            }
            GenerateError::ModelFailed(_) | GenerateError::Internal(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
            }
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> ApiError {
        // OpenAI answers 400 for syntax and shape errors alike (axum says 422 for the latter).
        let (status, message) = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is too large".to_string(),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the body as JSON with Content-Type: application/json".to_string(),
            ),
            _ => (
                StatusCode::BAD_REQUEST,
                format!(
                    "the body is not valid JSON for this request: {}",
                    rejection.body_text()
                ),
            ),
        };
        ApiError::new(status, "invalid_request_error", message)
    }
}
