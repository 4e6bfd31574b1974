//! Errors of the runtime and their wire shapes (PROTOCOL §2–7).
//!
//! The sync router adds the request's id to every error body as
//! `requestId` (see `crate::request_id`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use stratasync_diesel::StoreError;

use crate::auth::{AuthorizeError, TokenError};

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldIssue {
    /// The field, as a path into the request (`requests[2].modelName`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Which part of a request failed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestPart {
    /// The query string.
    Query,
    /// The JSON body.
    Body,
}

/// The protocol's error codes: the `error` of a `409` body and the `code`
/// of a WebSocket error frame (PROTOCOL §6–8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    /// The cursor predates the retained log: bootstrap again.
    BootstrapRequired,
    /// The client's schema hash is not the server's.
    SchemaMismatch,
    /// A socket fell behind its outbox's bounds.
    SlowConsumer,
    /// More live actions arrived during a replay than it may buffer.
    BufferOverflow,
}

impl ErrorCode {
    /// The code on the wire.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BootstrapRequired => "BOOTSTRAP_REQUIRED",
            ErrorCode::SchemaMismatch => "SCHEMA_MISMATCH",
            ErrorCode::SlowConsumer => "SLOW_CONSUMER",
            ErrorCode::BufferOverflow => "BUFFER_OVERFLOW",
        }
    }
}

/// Everything a route can answer other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No `Authorization` header.
    #[error("Authorization header required")]
    MissingAuthorization,
    /// An `Authorization` header that is not `Bearer <token>`.
    #[error("Invalid authorization format")]
    MalformedAuthorization,
    /// The token was refused or could not be checked.
    #[error(transparent)]
    Authorize(#[from] AuthorizeError),
    /// The request does not have the protocol's shape.
    #[error("Validation failed")]
    Validation {
        /// Query or body.
        part: RequestPart,
        /// Every invalid field.
        issues: Vec<FieldIssue>,
    },
    /// The cursor predates the retained log.
    #[error("A fresh bootstrap is required before fetching deltas")]
    BootstrapRequired,
    /// The user already holds as many of something as a limit allows.
    #[error("Too many concurrent {what} for this user (limit {limit})")]
    TooMany {
        /// What (`bootstraps`, `sockets`).
        what: &'static str,
        /// The per-user limit.
        limit: usize,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bootstrap's `schemaHash` is not the server's, and the server
    /// refuses such clients.
    #[error(
        "The client's schema hash {client} does not match the server's {server}: \
         regenerate the client schema from the server's models"
    )]
    SchemaMismatch {
        /// The hash the client sent.
        client: String,
        /// The hash of the server's models.
        server: String,
    },
}

impl ApiError {
    /// A validation failure of one field.
    pub fn invalid(
        part: RequestPart,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ApiError::Validation {
            part,
            issues: vec![FieldIssue {
                field: field.into(),
                message: message.into(),
            }],
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            ApiError::MissingAuthorization | ApiError::MalformedAuthorization => (
                StatusCode::UNAUTHORIZED,
                json!({ "error": self.to_string() }),
            ),
            ApiError::Authorize(AuthorizeError::Token(token)) => {
                let message = match token {
                    TokenError::Invalid => "Invalid token",
                    TokenError::Expired => "Token expired",
                };
                (StatusCode::UNAUTHORIZED, json!({ "error": message }))
            }
            ApiError::Authorize(AuthorizeError::Groups(error))
                if error
                    .downcast_ref::<StoreError>()
                    .is_some_and(StoreError::is_unavailable) =>
            {
                tracing::warn!(%error, "resolving sync groups failed: the database is unavailable");
                return unavailable();
            }
            ApiError::Authorize(AuthorizeError::Groups(error)) => {
                tracing::error!(%error, "resolving sync groups failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({ "error": "Failed to resolve sync groups" }),
                )
            }
            ApiError::Validation { part, issues } => {
                let details: Vec<_> = issues
                    .iter()
                    .map(|issue| json!({ "field": issue.field, "message": issue.message }))
                    .collect();
                let source = match part {
                    RequestPart::Query => "query",
                    RequestPart::Body => "body",
                };
                (
                    StatusCode::BAD_REQUEST,
                    json!({
                        "error": self.to_string(),
                        "details": details,
                        "source": source,
                    }),
                )
            }
            ApiError::BootstrapRequired => (
                StatusCode::CONFLICT,
                json!({
                    "error": ErrorCode::BootstrapRequired.as_str(),
                    "message": self.to_string(),
                }),
            ),
            ApiError::TooMany { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                json!({ "error": self.to_string() }),
            ),
            ApiError::SchemaMismatch { client, server } => (
                StatusCode::CONFLICT,
                json!({
                    "error": ErrorCode::SchemaMismatch.as_str(),
                    "message": self.to_string(),
                    "clientSchemaHash": client,
                    "serverSchemaHash": server,
                }),
            ),
            ApiError::Store(error) if error.is_unavailable() => {
                tracing::warn!(%error, "the database is unavailable or at capacity");
                return unavailable();
            }
            ApiError::Store(error) => {
                tracing::error!(%error, "store failure");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({ "error": "Internal server error" }),
                )
            }
        };
        (status, axum::Json(body)).into_response()
    }
}

/// Seconds a client waits before retrying a request the database could not
/// serve (`Retry-After`).
pub(crate) const RETRY_AFTER_SECS: u32 = 1;

/// `503` with `Retry-After`: the database is unreachable, out of connections
/// or timed out, or the node is at capacity; the request can succeed when
/// retried as it is.
pub(crate) fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(RETRY_AFTER_SECS),
        )],
        axum::Json(json!({ "error": "Service temporarily unavailable" })),
    )
        .into_response()
}

/// Why a server could not be built or started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration is incomplete or invalid.
    #[error("{0}")]
    Config(String),
    /// A limit is out of range.
    #[error(transparent)]
    Limits(#[from] crate::limits::LimitsError),
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("server error: {0}")]
    Serve(#[from] std::io::Error),
    /// A user's sync groups could not be resolved (membership changes).
    #[error("Failed to resolve sync groups: {0}")]
    Groups(#[source] crate::auth::BoxError),
}
