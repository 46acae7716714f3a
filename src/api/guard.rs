//! Who may use the node and how, for a node others can reach:
//!
//! - [`Operator`]: the proof that a request carries the operator key
//!   (`Authorization: Bearer KEY`), taken by every route that changes whom
//!   the node trusts; without it, 401 saying where the key is (its path
//!   only to a client on this machine);
//! - [`check_host`]: a request must name the node by an IP address,
//!   `localhost`, the host it advertises or a configured name, so a page
//!   whose name was rebound to the node's address (DNS rebinding) is
//!   refused (421);
//! - [`frame_and_script_policy`]: no page of another site may frame the
//!   node's, and the explorer runs only the node's own script.
//!
//! A request body's Content-Type is checked where bodies are read
//! ([`super::extract::RawBody`]): a page of another site cannot send
//! `application/json` without a preflight, and no preflight is granted.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::operator::OperatorKey;
use crate::setting::{Setting, Text, Unset};

pub const ALLOWED_HOSTS: Text = Setting {
    key: "allowed_hosts",
    help: "host names, comma-separated, requests may name besides IP addresses, localhost and the host of advertise (421 otherwise, against DNS rebinding)",
    default: Unset("none"),
    range: None,
    unit: "",
};
pub const ADVERTISE: Text = Setting {
    key: "advertise",
    help: "the base URL this node gives for itself in announcements",
    default: Unset("http://HOST:PORT, with the connection's address for 0.0.0.0"),
    range: None,
    unit: "",
};

pub const FRAME_ANCESTORS: Text = Setting {
    key: "frame_ancestors",
    help: "origins (http://HOST:PORT, comma-separated) whose pages may show the explorer in a frame, as jbc devnet's control page does (none otherwise, against clickjacking)",
    default: Unset("none"),
    range: None,
    unit: "",
};

/// What the guards check against.
#[derive(Clone, Debug)]
pub struct Access {
    /// The operator key.
    pub key: OperatorKey,
    /// Host names (lowercase) a request may name besides IP addresses and
    /// `localhost`: the advertised host and the configured ones.
    pub hosts: Arc<[String]>,
    /// Origins whose pages may frame the explorer (`frame_ancestors`).
    pub frame_ancestors: Arc<[String]>,
}

/// A request that carries the operator key.
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Operator, ApiError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim);
        // Where the key is, is told only to a client on this machine: to
        // anyone else the cookie's path would tell user and folder names.
        let local = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .is_none_or(|ConnectInfo(address)| address.ip().to_canonical().is_loopback());
        let cookie = if local {
            app.access.key.cookie().display().to_string()
        } else {
            "operator.cookie beside the node's chaindata folder, on its machine".to_string()
        };
        match presented {
            Some(key) if app.access.key.accepts(key) => Ok(Operator),
            Some(_) => Err(ApiError::Unauthorized(format!(
                "the operator key is wrong; this node's key is in {cookie} (it changes at each start)"
            ))),
            None => Err(ApiError::Unauthorized(format!(
                "this changes whom the node trusts, so it needs the operator key: send \
                 `Authorization: Bearer KEY` with the key from {cookie} (or use `jbc peers`, which reads it)"
            ))),
        }
    }
}

/// Refuses a request whose Host header names the node by a name it does
/// not know (421). A request without a Host header (HTTP/1.0 clients,
/// some peers) is let through: browsers always send one.
pub async fn check_host(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let named = request
        .headers()
        .get(header::HOST)
        .map(|value| value.to_str().map(host_of));
    match named {
        None => next.run(request).await,
        Some(Ok(host)) if is_allowed(&host, &app.access.hosts) => next.run(request).await,
        Some(host) => {
            let shown: String = host.unwrap_or_default().chars().take(80).collect();
            ApiError::MisdirectedHost(format!(
                "this node does not answer to the name {shown:?}: name it by its IP address, \
                 localhost, or a name in its allowed_hosts setting"
            ))
            .into_response()
        }
    }
}

/// While the operator keeps the node isolated (`jbc isolate`), a peer's
/// request gets 503 with why: one that names its sender (`X-Jbc-Peer`, as
/// every node of this software does when it syncs, announces or relays),
/// announces a block (`POST /mined`, as an original does), or opens a live
/// link. Nothing comes in from the network; the explorer, the operator and
/// other clients are answered as usual.
pub async fn refuse_peers_while_isolated(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if app.gossip.is_isolated() {
        let path = request.uri().path();
        let from_a_peer = request.headers().contains_key(crate::protocol::PEER_HEADER)
            || path == crate::protocol::route::MINED
            || path == crate::wire::LINK_ROUTE;
        if from_a_peer {
            return ApiError::Busy(
                "this node is isolated by its operator: it talks to no peer until `jbc rejoin`"
                    .to_string(),
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// The host part of a Host header, lowercase: `[::1]:5001` → `::1`,
/// `Node.Example:80` → `node.example`.
fn host_of(value: &str) -> String {
    let value = value.trim();
    let host = if let Some(rest) = value.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        value.rsplit_once(':').map_or(value, |(host, _port)| host)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn is_allowed(host: &str, names: &[String]) -> bool {
    host.parse::<IpAddr>().is_ok()
        || host == "localhost"
        || host.ends_with(".localhost")
        || names.iter().any(|name| name == host)
}

/// Adds to every answer: no framing by other sites (only by the origins
/// of `frame_ancestors`), and (for the explorer's HTML) a policy that runs
/// only the node's own script and style and talks only to the node.
pub async fn frame_and_script_policy(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let ancestors = &app.access.frame_ancestors;
    let headers = response.headers_mut();
    if ancestors.is_empty() {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let framers = if ancestors.is_empty() {
        "'none'".to_string()
    } else {
        ancestors.join(" ")
    };
    let policy = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; frame-ancestors {framers}; base-uri 'none'; form-action 'self'"
    );
    // Each origin was checked as the config was read: nothing in it
    // breaks a header.
    if let Ok(policy) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_known_by_address_localhost_or_name() {
        let names: Vec<String> = vec!["node.example".into()];
        for (header, allowed) in [
            ("127.0.0.1:5001", true),
            ("[::1]:5001", true),
            ("10.1.2.3", true),
            ("localhost:5001", true),
            ("LOCALHOST", true),
            ("app.localhost:80", true),
            ("node.example:5001", true),
            ("Node.Example.", true),
            ("evil.example:5001", false),
            ("node.example.evil.example", false),
            ("", false),
        ] {
            assert_eq!(is_allowed(&host_of(header), &names), allowed, "{header}");
        }
    }
}
