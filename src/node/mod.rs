//! The daemon: wires the chain state, the HTTP server, the gossip tasks
//! and the miner together, tells the operator what it is doing, and stops
//! them all on shutdown.
//!
//! It owns no chain logic of its own: the chain lives in
//! [`crate::state`], the conversation with peers in [`crate::gossip`], the
//! loop that keeps the miner on the tip in `mining`.

mod mining;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::api::{Access, AppState, ServerLimits};
use crate::client::PeerClient;
use crate::config::{Config, ConfigSource};
use crate::gossip::{Gossip, GossipSettings};
use crate::human::count_in_words;
use crate::operator::OperatorKey;
use crate::peers::{AddrMan, PeerBook, PeerSlots, PeerUrl};
use crate::pow::Kind;
use crate::protocol::NodeId;
use crate::state::ChainState;
use crate::stats::Stats;
use crate::store::{StoreError, runs};

/// How often the pool of data items is saved while it changes.
const POOL_SAVE_INTERVAL: Duration = Duration::from_secs(2);

/// Why the node stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("server: {0}")]
    Server(#[from] std::io::Error),
    #[error("stopped after a storage failure: {0}")]
    Stopped(String),
    #[error("cannot write the operator key: {0}")]
    Cookie(crate::fsio::FileError),
}

/// Runs a node on an already-bound listener until `shutdown` is cancelled:
/// load the chain, serve it, sync with peers, then mine if configured, and
/// keep announcing new tips and syncing periodically.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), NodeError> {
    log_config(&config);
    let network = config.network.clone();
    let chaindata: PathBuf = config.chaindata.clone();
    let pool_limits = config.pool;
    let (state, set_aside) =
        tokio::task::spawn_blocking(move || ChainState::open(network, &chaindata, pool_limits))
            .await
            .expect("loading does not panic")?;
    for run in runs(&set_aside) {
        warn!("{run}");
    }
    let tip = state.tip();
    let blocks = match tip.index {
        0 => "only the genesis block".to_string(),
        height => format!("{} blocks, the tip is block {height}", height + 1),
    };
    info!(
        height = tip.index,
        tip = %tip.hash,
        "chaindata {}: {blocks}",
        state.chaindata().display()
    );

    let address = listener.local_addr()?;
    if !address.ip().is_loopback() {
        warn!(%address, "listening on a non-loopback address: anyone who can reach it can use this node");
    }
    // The URL peers reach us at: given, or our address (a node that listens
    // on all addresses says 0.0.0.0, and each receiver puts in the address
    // the announcement came from).
    let own_url = config
        .advertise
        .as_ref()
        .map_or_else(|| format!("http://{address}"), ToString::to_string);
    let node_id = NodeId::random();
    info!(%node_id, "node id {node_id} (random for each run; peers that answer with it are this node itself)");
    let book = PeerBook::open(
        config.peers.clone(),
        PeerBook::path_beside(&config.chaindata),
        config.ban_time,
        config.sync_interval,
        PeerSlots {
            outbound: config.outbound_peers,
            inbound: config.max_inbound,
        },
    );
    let addrman = Arc::new(AddrMan::open(AddrMan::path_beside(&config.chaindata)));
    let stats = Arc::new(Stats::default());
    let client = PeerClient::new(
        &config.peer_client,
        &config.network,
        Some(own_url),
        Arc::clone(&stats),
    );
    let gossip = Gossip::new(
        state.clone(),
        client,
        book.clone(),
        node_id,
        addrman,
        GossipSettings {
            outbound_target: config.outbound_peers,
            links: config.links,
        },
        shutdown.clone(),
    );

    let key = OperatorKey::create(
        OperatorKey::cookie_beside(&config.chaindata),
        config.operator_key.clone(),
    )
    .map_err(NodeError::Cookie)?;
    info!(
        cookie = %key.cookie().display(),
        "operator key in {} (peer changes need it: jbc peers reads it)",
        key.cookie().display()
    );
    let mut hosts = config.allowed_hosts.clone();
    hosts.extend(config.advertise.as_ref().and_then(PeerUrl::host_name));
    let access = Access {
        key,
        hosts: hosts.into(),
        frame_ancestors: config.frame_ancestors.clone().into(),
    };
    let app_state = AppState::new(
        state.clone(),
        gossip.clone(),
        Arc::clone(&stats),
        config.mine,
        access,
        shutdown.clone(),
    );
    let orders = Arc::clone(&app_state.orders);
    let hello = app_state.clone();
    gossip
        .links()
        .say_status_with(Box::new(move || hello.status()));
    // The node's own tasks, waited for at shutdown.
    let tasks = TaskTracker::new();
    tasks.spawn(crate::peers::watch_peers(
        book.clone(),
        state.events().clone(),
        shutdown.clone(),
    ));
    let limits = ServerLimits::from_system(config.max_connections);
    info!("listening on http://{address}");
    info!("the explorer page: http://{address}/ (events: /events, metrics: /metrics)");
    debug!(connections = limits.connections, "server limits");
    let server = tokio::spawn(crate::api::serve(
        listener,
        crate::api::app(app_state),
        limits,
        shutdown.clone(),
    ));

    let startup_peers = book.urls();
    if startup_peers.is_empty() {
        info!("no peers: this node is on its own until one is added (POST /peers)");
    } else {
        let list: Vec<String> = startup_peers.iter().map(ToString::to_string).collect();
        info!("peers: {}; syncing with them", list.join(", "));
    }
    let first_round = gossip.start();

    let data = (config.data.clone())
        .unwrap_or_else(|| format!("Mined by node on port {}", address.port()));
    let miner = (!shutdown.is_cancelled()).then(|| {
        mining::start(
            &state,
            &stats,
            &config,
            mining::Brief {
                data,
                orders,
                first_round,
            },
            &shutdown,
            &tasks,
        )
    });
    if !config.mine {
        info!(
            "not mining (--mine, or mine = true in the config, turns it on; jbc mine N mines N blocks now)"
        );
    }

    // The pool is saved every few seconds while it changes, and at the end.
    let pool = state.pool().clone();
    let mut save = tokio::time::interval(POOL_SAVE_INTERVAL);
    let failure = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break None,
            _ = state.failed() => break state.failure(),
            _ = save.tick() => {
                let pool = pool.clone();
                let _ = tokio::task::spawn_blocking(move || pool.flush()).await;
            }
        }
    };
    info!("shutting down");
    shutdown.cancel();
    if let Some(miner) = miner {
        tokio::task::spawn_blocking(move || miner.stop())
            .await
            .expect("stopping the miner does not panic");
    }
    server.await.expect("the server task does not panic");
    gossip.stopped().await;
    tasks.close();
    tasks.wait().await;
    book.flush();
    pool.flush();
    info!("stopped");
    match failure {
        Some(failure) => Err(NodeError::Stopped(failure)),
        None => Ok(()),
    }
}

/// Says where the settings came from and what network they describe.
fn log_config(config: &Config) {
    let absolute = |path: &std::path::Path| {
        std::path::absolute(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .display()
            .to_string()
    };
    match &config.source {
        ConfigSource::File(path) => info!("config: read {}", absolute(path)),
        ConfigSource::DefaultMissing(path) => info!(
            "config: no config file at {}, so built-in defaults and flags apply \
             (jbc --help lists them; jbc init makes a network with its own config)",
            absolute(path)
        ),
    }
    let network = &config.network;
    match network.kind {
        Kind::Fixed => info!(
            genesis = %network.genesis.hash,
            difficulty = network.difficulty,
            "network: genesis block {}, difficulty {} (a block hash needs {} leading zero hex digits: {} hashes on average)",
            network.genesis.hash,
            network.difficulty,
            network.difficulty,
            count_in_words(network.pow_limit().expected_hashes())
        ),
        Kind::Adaptive {
            target_block_seconds,
            retarget_window,
        } => info!(
            genesis = %network.genesis.hash,
            difficulty = network.difficulty,
            "network: genesis block {}, adaptive: a block every {target_block_seconds} s on average, the target retargeted every {retarget_window} blocks, never easier than difficulty {} ({} hashes on average); the chain with the most work wins",
            network.genesis.hash,
            network.difficulty,
            count_in_words(network.pow_limit().expected_hashes())
        ),
    }
}
