//! The HTTP routes of the protocol: each handler decodes the request, calls
//! the store, and encodes the answer.

mod batch;
mod bootstrap;
mod deltas;
mod mutate;
mod ndjson;
mod request;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::routing::{get, post};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::group_cache::{Authorizer, authorize};
use crate::state::SyncServer;

pub(crate) use mutate::mutate_route;

/// The routes of §4–7 under `base` (e.g. `/sync`).
pub(crate) fn routes(base: &str) -> axum::Router<SyncServer> {
    axum::Router::new()
        .route(&format!("{base}/bootstrap"), get(bootstrap::bootstrap))
        .route(&format!("{base}/batch"), post(batch::batch))
        .route(&format!("{base}/deltas"), get(deltas::deltas))
        .route(&format!("{base}/mutate"), post(mutate_route))
        .route(&format!("{base}/ws"), get(crate::live::ws_route))
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or(ApiError::MissingAuthorization)?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::MalformedAuthorization)?;
    let mut words = value.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(scheme), Some(token), None) if scheme.eq_ignore_ascii_case("bearer") => Ok(token),
        _ => Err(ApiError::MalformedAuthorization),
    }
}

/// Authenticates a request with the sync server's [`Auth`](crate::Auth), on
/// any router whose state gives the [`SyncServer`]: 401 with the protocol's
/// error body when the bearer token is missing or refused.
impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    SyncServer: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let token = bearer_token(parts)?;
        let server = SyncServer::from_ref(state);
        let shared = &server.shared;
        let node = Authorizer {
            auth: &shared.auth,
            store: &shared.store,
            groups: &shared.groups,
            fanout: &shared.fanout,
        };
        Ok(authorize(node, token).await?)
    }
}
