//! The node's figures for Prometheus (`GET /metrics`), in the OpenMetrics
//! text format through the `prometheus-client` crate.
//!
//! Most figures already live somewhere (the chain's height in the state,
//! the hash rate in [`Stats`], peer states in the book), so they are read
//! at scrape time by a collector instead of being kept twice. Only the HTTP
//! request counts are kept here, by the router's middleware. It does not
//! serve anything itself: `api` calls [`Metrics::render`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::gossip::Gossip;
use crate::peers::{PeerBook, PeerState};
use crate::state::ChainState;
use crate::stats::Stats;

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The labels of an HTTP request count: the route as the router knows it
/// (`/blocks/:index`, not each index; `other` for no route), and the status.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

/// The registry and the counts kept here.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
}

impl Metrics {
    /// Metrics reading the node's chain, counters and peers at each scrape.
    pub fn new(state: ChainState, stats: Arc<Stats>, gossip: Gossip) -> Metrics {
        let book = gossip.book().clone();
        let mut registry = Registry::with_prefix("jbc");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            requests.clone(),
        );
        registry.register_collector(Box::new(NodeCollector {
            state,
            stats,
            book,
            gossip,
        }));
        Metrics { registry, requests }
    }

    /// Counts one answered request.
    pub fn count_request(&self, labels: RequestLabels) {
        self.requests.get_or_create(&labels).inc();
    }

    /// Every metric, as text.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String does not fail");
        text
    }
}

/// Reads the figures that live elsewhere.
struct NodeCollector {
    state: ChainState,
    stats: Arc<Stats>,
    book: PeerBook,
    /// The connections by direction and the addresses known.
    gossip: Gossip,
}

impl fmt::Debug for NodeCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeCollector")
    }
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let height = self.state.len().saturating_sub(1);
        gauge(&mut encoder, "height", "Index of the tip block", height)?;
        gauge(
            &mut encoder,
            "hashrate",
            "The miner's hashes per second (0 when not mining)",
            self.stats.hashrate(),
        )?;
        gauge(
            &mut encoder,
            "pending_data",
            "Data items waiting for a block",
            self.state.pool().len() as u64,
        )?;
        counter(
            &mut encoder,
            "blocks_fetched",
            "Blocks fetched from peers while syncing",
            self.stats.blocks_fetched(),
        )?;
        counter(
            &mut encoder,
            "reorgs",
            "Switches to another branch of the chain",
            self.state.reorgs(),
        )?;
        counter(
            &mut encoder,
            "orphaned_blocks",
            "Blocks taken out of the chain by switches of branch",
            self.state.orphaned(),
        )?;
        counter(
            &mut encoder,
            "misbehaviour",
            "Offences peers were judged for: what no honest node does (points that fade)",
            self.stats.misbehaviour(),
        )?;
        counter(
            &mut encoder,
            "discouraged",
            "Peers discouraged for misbehaving (in memory, for an hour)",
            self.stats.discouraged(),
        )?;

        // Every state a peer can be in is reported (as 0 when none is).
        let views = self.book.views();
        let mut by_state: BTreeMap<&str, u64> =
            PeerState::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        for view in &views {
            *by_state.entry(view.state.as_str()).or_default() += 1;
        }
        let mut family = encoder.encode_descriptor(
            "peers",
            "Peers in the address book, by state",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (state, count) in by_state {
            let labels = [("state", state.to_string())];
            ConstGauge::new(saturating_i64(count)).encode(family.encode_family(&labels)?)?;
        }
        let connections = self.gossip.connections();
        let mut family = encoder.encode_descriptor(
            "connections",
            "Peers by direction: outbound (configured, added and chosen), chosen (of those, the ones picked from learned addresses), inbound",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (direction, count) in [
            ("outbound", connections.outbound),
            ("chosen", connections.chosen),
            ("inbound", connections.inbound),
        ] {
            let labels = [("direction", direction.to_string())];
            ConstGauge::new(saturating_i64(count as u64)).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "addresses",
            "Addresses the node could connect to, by table: new (never reached) and tried (answered)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (table, count) in [
            ("new", connections.addresses_new),
            ("tried", connections.addresses_tried),
        ] {
            let labels = [("table", table.to_string())];
            ConstGauge::new(saturating_i64(count as u64)).encode(family.encode_family(&labels)?)?;
        }
        // How far behind the highest peer that is up we are: a node that
        // keeps up stays near 0.
        let best_peer = views
            .iter()
            .filter(|view| view.state == PeerState::Up)
            .filter_map(|view| view.height)
            .max()
            .unwrap_or(0);
        gauge(
            &mut encoder,
            "sync_lag",
            "Blocks the highest peer that is up has beyond our tip",
            best_peer.saturating_sub(height),
        )?;
        Ok(())
    }
}

/// A count as the gauge's i64, saturating: a peer may claim any height,
/// and a wrapped cast would report a negative lag.
fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstGauge::new(saturating_i64(value));
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}
