//! The one error type of the HTTP interface, and the one place that maps
//! each failure to a status and a JSON body with an `error` field.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tracing::{error, warn};

use crate::block::ParseError;
use crate::gossip::{ReceiveError, Refusal};
use crate::peers::BookError;
use crate::pool::PoolError;

/// Every way a request can fail. Client errors (4xx) say in words what was
/// wrong and what is expected; they are not logged as the node's errors.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Not valid JSON, or a malformed parameter.
    #[error("{0}")]
    BadRequest(String),
    /// An operator action without the operator key (or with a wrong one).
    #[error("{0}")]
    Unauthorized(String),
    /// A request no client of its kind may make (a web page opening a
    /// peer link).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("the request took longer than {0} s")]
    Timeout(u64),
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    /// A body that is not sent as JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A Host header naming the node by a name it does not know.
    #[error("{0}")]
    MisdirectedHost(String),
    /// Well-formed JSON that is not a valid block.
    #[error("{0}")]
    InvalidBlock(String),
    /// Well-formed but unacceptable.
    #[error("{0}")]
    Unprocessable(String),
    /// A request within the body limit that is still too large for what
    /// it carries (a data item over the network's limit).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The node cannot do it now (the disk refused a write, it is stopping).
    #[error("{0}")]
    Unavailable(String),
    /// The node is full for now (the pool of data items): try again later.
    #[error("{0}")]
    Busy(String),
    /// A signed item whose signature a check refuses; `check` names it.
    #[error("{message}")]
    BadSignature {
        check: &'static str,
        message: String,
    },
    /// Something failed on our side; the details go to the log only.
    #[error("internal error")]
    Internal(String),
}

/// Malformed JSON is the client's syntax error (400); JSON that is not a
/// block is an invalid block (422).
impl From<ParseError> for ApiError {
    fn from(error: ParseError) -> ApiError {
        match &error {
            ParseError::Syntax(_) => ApiError::BadRequest(error.to_string()),
            _ => ApiError::InvalidBlock(error.to_string()),
        }
    }
}

/// An item too large for the network (413), a full pool (503), a refused
/// signature (400, with the check that failed).
impl From<PoolError> for ApiError {
    fn from(error: PoolError) -> ApiError {
        match error {
            PoolError::TooLarge { .. } => ApiError::PayloadTooLarge(error.to_string()),
            PoolError::Empty => ApiError::Unprocessable(error.to_string()),
            PoolError::Full { .. } | PoolError::Share { .. } => ApiError::Busy(error.to_string()),
            PoolError::Unsaved { .. } => ApiError::Unavailable(error.to_string()),
            PoolError::Signature(ref check) => ApiError::BadSignature {
                check: check.check(),
                message: error.to_string(),
            },
        }
    }
}

/// The peer book could not be saved: the node cannot do it now (503); a
/// ban or a full book is an answer about the peer (422).
impl From<BookError> for ApiError {
    fn from(error: BookError) -> ApiError {
        match error {
            BookError::Save(_) => ApiError::Unavailable(error.to_string()),
            BookError::Banned { .. }
            | BookError::Discouraged { .. }
            | BookError::Full { .. }
            | BookError::GroupFull { .. }
            | BookError::Removed => ApiError::Unprocessable(error.to_string()),
        }
    }
}

/// A peer not added: unreachable, another network, itself, banned, the
/// book full (422), or the book could not be saved (503).
impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        match refusal {
            Refusal::Book(error @ BookError::Save(_)) => error.into(),
            // The others keep the refusal's "not added: …".
            refusal => ApiError::Unprocessable(refusal.to_string()),
        }
    }
}

/// An announced block that breaks the rules or comes from a peer on
/// another network (422), or one the node cannot save now (503).
impl From<ReceiveError> for ApiError {
    fn from(error: ReceiveError) -> ApiError {
        match error {
            ReceiveError::Invalid { reason, .. } => ApiError::InvalidBlock(reason),
            error @ ReceiveError::OtherNetwork { .. } => ApiError::InvalidBlock(error.to_string()),
            error @ ReceiveError::Unavailable(_) => ApiError::Unavailable(error.to_string()),
        }
    }
}

/// Blocking work that panicked or was cancelled.
impl From<tokio::task::JoinError> for ApiError {
    fn from(error: tokio::task::JoinError) -> ApiError {
        ApiError::Internal(error.to_string())
    }
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::BadSignature { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MisdirectedHost(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooLarge(_) | ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::InvalidBlock(_) | ApiError::Unprocessable(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Unavailable(_) | ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body: Value = json!({ "error": self.to_string() });
        match &self {
            ApiError::InvalidBlock(_) => body["status"] = json!("rejected"),
            ApiError::BadSignature { check, .. } => body["check"] = json!(check),
            ApiError::Internal(detail) => error!(%detail, "request failed"),
            ApiError::Unavailable(detail) => warn!(%detail, "request refused"),
            _ => {}
        }
        let mut response = (status, Json(body)).into_response();
        if let ApiError::Unauthorized(_) = self {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"jbc operator\""),
            );
        }
        response
    }
}
