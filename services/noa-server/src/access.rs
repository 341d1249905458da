//! Who may talk to the server. Two checks run before every route, `/mcp` included:
//!
//! - **Origin**: a browser page may only call us from a loopback origin (or one given with
//!   `--allow-origin`), so a web page cannot drive a local server (DNS rebinding, CSRF). Requests
//!   without an `Origin` header (every non-browser client) pass.
//! - **Bearer token**: when one is configured (`NOA_TOKEN`, which init passes on from the
//!   VMM, or the file `/etc/noa/token`), every request but `GET /health` must carry
//!   `Authorization: Bearer TOKEN`.

use crate::openai::ApiError;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct Access {
    token: Option<String>,
    extra_origins: Vec<String>,
}

impl Access {
    /// The token from `NOA_TOKEN`, else from `token_file` if it exists; empty means none.
    pub fn load(token_file: &Path, extra_origins: Vec<String>) -> anyhow::Result<Access> {
        use anyhow::Context;
        let from_env = std::env::var("NOA_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty());
        let token = match from_env {
            Some(token) => Some(token.trim().to_string()),
            None => match std::fs::read_to_string(token_file) {
                Ok(text) => Some(text.trim().to_string()).filter(|t| !t.is_empty()),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
                Err(error) => {
                    return Err(error)
                        .with_context(|| format!("cannot read {}", token_file.display()));
                }
            },
        };
        Ok(Access {
            token,
            extra_origins,
        })
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        if self.extra_origins.iter().any(|o| o == origin) {
            return true;
        }
        let Some(rest) = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
        else {
            return false;
        };
        let host = if let Some(v6) = rest.strip_prefix('[') {
            v6.split_once(']').map_or("", |(host, _)| host)
        } else {
            rest.split(':').next().unwrap_or("")
        };
        matches!(host, "localhost" | "127.0.0.1" | "::1")
    }

    fn token_matches(&self, header: Option<&HeaderValue>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let given = header
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or("");
        constant_time_eq(given.trim().as_bytes(), token.as_bytes())
    }
}

/// Compares without returning early, so the time taken says nothing about the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut difference = u8::from(a.len() != b.len());
    for (i, byte) in b.iter().enumerate() {
        difference |= byte ^ a.get(i).copied().unwrap_or(0);
    }
    difference == 0
}

pub async fn guard(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        if !origin.to_str().is_ok_and(|o| access.origin_allowed(o)) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "invalid_request_error",
                "requests from this Origin are not allowed",
            )
            .into_response();
        }
    }
    let open = request.method() == Method::GET && request.uri().path() == "/health";
    if !open && !access.token_matches(request.headers().get(header::AUTHORIZATION)) {
        let mut response = ApiError {
            code: Some("invalid_api_key"),
            ..ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "a valid bearer token is required (Authorization: Bearer TOKEN)",
            )
        }
        .into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_origins_pass_and_others_do_not() {
        let access = Access {
            token: None,
            extra_origins: vec!["https://app.example".into()],
        };
        for good in [
            "http://localhost:3000",
            "http://127.0.0.1",
            "https://[::1]:8443",
            "https://app.example",
        ] {
            assert!(access.origin_allowed(good), "{good}");
        }
        for bad in [
            "http://evil.example",
            "null",
            "http://localhost.evil.example",
            "file://",
            "https://app.example:1",
        ] {
            assert!(!access.origin_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn the_token_must_match_exactly() {
        let access = Access {
            token: Some("s3cret".into()),
            extra_origins: vec![],
        };
        let header = |v: &'static str| HeaderValue::from_static(v);
        assert!(access.token_matches(Some(&header("Bearer s3cret"))));
        assert!(!access.token_matches(Some(&header("Bearer s3cre"))));
        assert!(!access.token_matches(Some(&header("Bearer s3cretx"))));
        assert!(!access.token_matches(Some(&header("s3cret"))));
        assert!(!access.token_matches(None));
        assert!(Access::default().token_matches(None));
    }
}
