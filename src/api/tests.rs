//! The router in-process (`app(state).oneshot(request)`, as axum's testing
//! example does): the route table against the README and the router, and
//! the shape of answers that need no running node.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::{Access, AppState, ROUTES, app};
use crate::chain::tests::test_network;
use crate::client::PeerClient;
use crate::client::PeerSettings;
use crate::gossip::{Gossip, GossipSettings};
use crate::operator::OperatorKey;
use crate::peers::{AddrMan, PeerBook, PeerSlots};
use crate::protocol::NodeId;
use crate::state::ChainState;
use crate::stats::Stats;

/// A node's router on a fresh chaindata folder in `dir`, with no peer.
fn router(dir: &std::path::Path) -> axum::Router {
    let network = test_network();
    let chaindata = dir.join("chaindata");
    let (state, _) = ChainState::open(network.clone(), &chaindata, Default::default()).unwrap();
    let stats = Arc::new(Stats::default());
    let settings = PeerSettings {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(1),
        max_response_bytes: 1 << 20,
    };
    let client = PeerClient::new(&settings, &network, None, Arc::clone(&stats));
    let book = PeerBook::open(
        Vec::new(),
        PeerBook::path_beside(&chaindata),
        Duration::from_secs(60),
        Duration::from_secs(60),
        PeerSlots::default(),
    );
    let shutdown = CancellationToken::new();
    let gossip = Gossip::new(
        state.clone(),
        client,
        book,
        NodeId::random(),
        Arc::new(AddrMan::open(AddrMan::path_beside(&chaindata))),
        GossipSettings {
            outbound_target: 0,
            links: true,
        },
        shutdown.clone(),
    );
    let access = Access {
        key: OperatorKey::create(OperatorKey::cookie_beside(&chaindata), None).unwrap(),
        hosts: Vec::new().into(),
        frame_ancestors: Vec::new().into(),
    };
    app(AppState::new(state, gossip, stats, false, access, shutdown))
}

/// A path of `route` to ask: parameters filled in, the query left out.
fn path_of(route: &str) -> String {
    let path = route.split_once(' ').unwrap().1;
    let path = path.split('?').next().unwrap();
    path.replace("{index}", "0")
        .replace("{hash}", &test_network().genesis.hash.to_string())
        .replace("{id}", "00")
}

#[test]
fn the_route_table_is_the_readme_s() {
    let readme = include_str!("../../README.md");
    let mut documented: Vec<&str> = readme
        .lines()
        .filter_map(|line| {
            line.strip_prefix("| `")?
                .split_once("` |")
                .map(|(route, _)| route)
        })
        .filter(|route| {
            ["GET ", "POST ", "DELETE "]
                .iter()
                .any(|m| route.starts_with(m))
        })
        .collect();
    documented.sort_unstable();
    documented.dedup();
    let mut table = ROUTES.to_vec();
    table.sort_unstable();
    assert_eq!(documented, table);
}

#[tokio::test]
async fn every_route_in_the_table_is_routed_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let app = router(dir.path());
    for route in ROUTES {
        let method: Method = route.split(' ').next().unwrap().parse().unwrap();
        let request = Request::builder()
            .method(method)
            .uri(path_of(route))
            .body(Body::empty())
            .unwrap();
        let answer = app.clone().oneshot(request).await.unwrap();
        let status = answer.status();
        // A stream (`/events`) never ends: what came in a moment will do.
        let body = tokio::time::timeout(
            Duration::from_millis(200),
            axum::body::to_bytes(answer.into_body(), 1 << 20),
        )
        .await
        .map(Result::unwrap)
        .unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("the endpoints are") && status != StatusCode::METHOD_NOT_ALLOWED,
            "{route}: {status} {text}"
        );
    }
    // Anything else is a 404 that lists them all.
    let request = Request::get("/nope").body(Body::empty()).unwrap();
    let answer = app.oneshot(request).await.unwrap();
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    let body = axum::body::to_bytes(answer.into_body(), 1 << 20)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&body);
    for route in ROUTES {
        assert!(text.contains(route), "{route} is not listed: {text}");
    }
}
