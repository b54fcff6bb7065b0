//! Errors: the server's own (`HttpError`) and the API's (`ApiError`), with the
//! one table that maps the model's errors to HTTP statuses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use halyard_cluster_model::port::{ModelError, TxError};

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("no listen address configured")]
    NoListenAddress,
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("metrics registry: {0}")]
    Metrics(String),
    #[error("server: {0}")]
    Serve(std::io::Error),
}

/// One row of the mapping: HTTP status and a stable, machine-readable code.
pub fn status_of(e: &ModelError) -> (StatusCode, &'static str) {
    match e {
        ModelError::NoSuchObject { .. } => (StatusCode::NOT_FOUND, "no-such-object"),
        ModelError::NoSuchClass { .. } => (StatusCode::NOT_FOUND, "no-such-class"),
        ModelError::NoSuchOperation { .. } => (StatusCode::NOT_FOUND, "no-such-operation"),
        ModelError::NoSuchAttribute { .. } => (StatusCode::BAD_REQUEST, "no-such-attribute"),
        ModelError::NotWritable { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "not-writable"),
        ModelError::InvalidValue { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-value"),
        ModelError::Inconsistent { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "inconsistent"),
        ModelError::NoCreation { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "no-creation"),
        ModelError::AlreadyExists { .. } => (StatusCode::CONFLICT, "already-exists"),
        ModelError::AccessDenied { .. } => (StatusCode::FORBIDDEN, "access-denied"),
        ModelError::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
        ModelError::CommitFailed { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "commit-failed"),
        ModelError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        ModelError::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
    }
}

/// An error answer of the API. Rendered as XML or JSON by the negotiation
/// layer, which knows what the client accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// For a refused transaction: the position of the refused change.
    pub change: Option<usize>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            change: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "credentials required (HTTP basic or bearer token)",
        )
    }

    pub fn bad_credentials() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unknown user, wrong password or unknown token",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-value", message)
    }

    pub fn timeout() -> Self {
        Self::from(ModelError::Timeout)
    }
}

impl From<ModelError> for ApiError {
    fn from(e: ModelError) -> Self {
        let (status, code) = status_of(&e);
        ApiError::new(status, code, e.to_string())
    }
}

impl From<TxError> for ApiError {
    fn from(e: TxError) -> Self {
        let mut a = ApiError::from(e.error.clone());
        a.message = e.to_string();
        a.change = Some(e.index);
        a
    }
}

impl ApiError {
    /// The answer with `Retry-After` (whole seconds, at least one).
    pub fn into_response_after(self, wait: std::time::Duration) -> Response {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut r = self.into_response();
        r.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(secs.max(1)),
        );
        r
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = self.status.into_response();
        r.extensions_mut().insert(self);
        r
    }
}
