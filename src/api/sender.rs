//! Who sent a request that relays something (`POST /mined`, `POST /data`):
//! the connection's address, and the node the `X-Jbc-Peer` header names,
//! read the same way for every such route.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use crate::peers::PeerUrl;
use crate::protocol::PEER_HEADER;

/// The sender of a request, as far as it can be told.
pub struct Sender {
    /// The address the connection came from (none when the server was not
    /// given connection info, as in tests that call the router directly).
    pub remote: Option<IpAddr>,
    /// The node the peer header names, with an unspecified host (a node
    /// that listens on all addresses) replaced by `remote`; none when the
    /// header is missing or not a peer URL.
    pub peer: Option<PeerUrl>,
}

impl<S: Send + Sync> FromRequestParts<S> for Sender {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Sender, Infallible> {
        let remote = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip());
        let peer = parts
            .headers
            .get(PEER_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| PeerUrl::parse(text).ok())
            .map(|url| match remote {
                Some(remote) => url.as_seen_from(remote),
                None => url,
            });
        Ok(Sender { remote, peer })
    }
}
