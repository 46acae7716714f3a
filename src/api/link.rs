//! The live links over HTTP: a peer of this software opens its link here
//! (`GET /link`, a WebSocket upgrade, handed to
//! [`crate::gossip::link`]), and anyone reads the links and the messages on
//! them (`GET /peers/links`).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::Response;

use super::extract::Sender;
use super::{ApiError, AppState};
use crate::block::{BlockHash, HashParseError};
use crate::gossip::link::LinksAnswer;

/// `GET /link`: a peer of this software opens its live link (a WebSocket
/// upgrade; [`crate::gossip::link`]). No web page may open one: a request
/// with an `Origin` is refused, as every browser sends one (cross-site
/// WebSocket hijacking), and the Host check applies as to every route.
pub(super) async fn link(
    State(app): State<AppState>,
    Sender { remote, .. }: Sender,
    headers: axum::http::HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    if headers.contains_key(header::ORIGIN) {
        return Err(ApiError::Forbidden(
            "peer links are not opened by web pages (this request has an Origin)".into(),
        ));
    }
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::BadRequest(format!(
            "GET /link is a WebSocket upgrade, for peers of this software: {rejection}"
        ))
    })?;
    let Some(remote) = remote else {
        return Err(ApiError::BadRequest(
            "a link needs the address it came from".into(),
        ));
    };
    let most = 2 * app.gossip.max_message_bytes();
    let buffer = crate::gossip::link::BUFFER_BYTES;
    Ok(upgrade
        .max_message_size(most)
        .max_frame_size(most)
        .read_buffer_size(buffer)
        .write_buffer_size(buffer)
        .max_write_buffer_size(most + buffer)
        .on_upgrade(move |socket| async move { app.gossip.accept_link(socket, remote).await }))
}

/// `GET /peers/links?after=N&block=H`: the live links, and the messages on
/// them after number `N` (all kept, when not given), about block `H` only
/// when given: what the explorer's Messages view and `jbc peers --watch`
/// show.
pub(super) async fn links(
    State(app): State<AppState>,
    query: Result<Query<LinksQuery>, QueryRejection>,
) -> Result<Json<LinksAnswer>, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        ApiError::BadRequest(format!(
            "/peers/links takes `after` (a message number) and `block` (a block hash): {rejection}"
        ))
    })?;
    let block = match query.block.as_deref() {
        None | Some("") => None,
        Some(hash) => Some(
            hash.parse::<BlockHash>()
                .map_err(|e: HashParseError| ApiError::BadRequest(format!("block: {e}")))?,
        ),
    };
    Ok(Json(app.gossip.links().answer(query.after, block.as_ref())))
}

/// The query of `GET /peers/links`.
#[derive(Debug, serde::Deserialize)]
pub(super) struct LinksQuery {
    after: Option<u64>,
    block: Option<String>,
}
