//! The HTTP interface: the router, its handlers, and the one error type that
//! maps every failure to a status and a JSON body `{"error": "..."}`.
//!
//! Handlers only read and translate; the chain's rules live in
//! [`crate::node`] and [`crate::chain`].

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tracing::error;

use crate::node::Node;

/// The node's HTTP routes.
pub fn app(node: Node) -> Router {
    Router::new()
        .route("/blockchain.json", get(blockchain_json))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(node)
}

/// `GET /blockchain.json`: the whole chain, from memory.
async fn blockchain_json(State(node): State<Node>) -> Result<Response, ApiError> {
    // Serialising a long chain is CPU work: keep it off the async workers.
    let json = tokio::task::spawn_blocking(move || node.chain_json())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no such endpoint")]
    NotFound,
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    /// Something failed on our side; the details go to the log only.
    #[error("internal error")]
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(detail) => {
                error!(%detail, "request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (status, axum::Json(json!({ "error": self.to_string() }))).into_response()
    }
}
