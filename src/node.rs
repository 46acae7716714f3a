//! The daemon: wires the chain state, the HTTP server, the gossip tasks
//! and the miner together, tells the operator what it is doing, and stops
//! them all on shutdown.
//!
//! It owns no chain logic of its own: the chain lives in
//! [`crate::state`], the conversation with peers in [`crate::gossip`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::api::{AppState, ServerLimits};
use crate::block::Block;
use crate::chain::Network;
use crate::client::PeerClient;
use crate::config::{Config, ConfigSource};
use crate::gossip::Gossip;
use crate::human::{count_in_words, duration_in_words, rate_in_words};
use crate::miner::{Miner, Template, expected_hashes};
use crate::peers::PeerBook;
use crate::pow::{self, Kind, U256};
use crate::protocol::NodeId;
use crate::state::{Added, ChainState, Source};
use crate::stats::Stats;
use crate::store::{StoreError, runs};

/// How often the miner's hash rate is measured (for `/status`).
const HASHRATE_SAMPLE_INTERVAL: Duration = Duration::from_secs(2);
/// How often the hash rate is logged.
const HASHRATE_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// How soon after a template is made new data items may replace it.
const TEMPLATE_REFRESH: Duration = Duration::from_millis(250);
/// How often the pool of data items is saved while it changes.
const POOL_SAVE_INTERVAL: Duration = Duration::from_secs(2);
/// How long the miner waits after a block could not be saved.
const MINE_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Why the node stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("server: {0}")]
    Server(#[from] std::io::Error),
    #[error("stopped after a storage failure: {0}")]
    Stopped(String),
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
    );
    let stats = Arc::new(Stats::default());
    let client = PeerClient::new(
        &config.peer,
        &config.network,
        Some(own_url),
        Arc::clone(&stats),
    );
    let gossip = Gossip::new(
        state.clone(),
        client,
        book.clone(),
        node_id,
        shutdown.clone(),
    );

    let app_state = AppState::new(
        state.clone(),
        gossip.clone(),
        Arc::clone(&stats),
        config.mine,
        shutdown.clone(),
    );
    tokio::spawn(crate::peers::watch_peers(
        book.clone(),
        state.events().clone(),
        shutdown.clone(),
    ));
    let limits = ServerLimits::from_system();
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
    gossip.start().await;

    let data = (config.data.clone())
        .unwrap_or_else(|| format!("Mined by node on port {}", address.port()));
    let miner = (config.mine && !shutdown.is_cancelled())
        .then(|| start_miner(&state, &stats, config.threads, data, &shutdown));
    if !config.mine {
        info!("not mining (--mine, or mine = true in the config, turns it on)");
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
            count_in_words(expected_hashes(network.difficulty))
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
            count_in_words(expected_hashes(network.difficulty))
        ),
    }
}

/// Starts the miner threads and a task that gives them a new job on every
/// new tip, saves what they find, and measures the hash rate.
///
/// A found block goes through a channel to this task, which saves it on
/// the blocking pool: the nice-19 miner threads never hold the lock that
/// the server and the sync need while a file is synced to disk.
fn start_miner(
    state: &ChainState,
    stats: &Arc<Stats>,
    threads: usize,
    data: String,
    shutdown: &CancellationToken,
) -> Arc<Miner> {
    let (found, mut found_blocks) = tokio::sync::mpsc::unbounded_channel::<Block>();
    let miner = Arc::new(Miner::start(threads, move |block| {
        // The job is done either way; the task sets the next one.
        let _ = found.send(block);
        true
    }));
    info!(
        threads,
        "mining on {threads} thread(s); blocks carry {data:?}"
    );

    let (state, stats) = (state.clone(), Arc::clone(stats));
    let network = state.network().clone();
    let (task_miner, shutdown) = (Arc::clone(&miner), shutdown.clone());
    tokio::spawn(async move {
        let mut tips = state.subscribe();
        let mut sample = tokio::time::interval(HASHRATE_SAMPLE_INTERVAL);
        sample.tick().await;
        let mut last_logged: Option<Instant> = None;
        let (mut last_hashes, mut last_time) = (task_miner.hashes(), Instant::now());
        loop {
            let tip = tips.borrow_and_update().block.clone();
            // What the rules ask of the next block (a newer tip than the
            // one seen means the loop comes round again at once).
            let cursor = state.tip_cursor();
            let target = cursor.next_target(&network);
            let now = crate::clock::timestamp_now();
            let timestamp = now.max(cursor.min_next_timestamp(&network).unwrap_or(0));
            // The waiting data items that fit, oldest first; else the note.
            let template_data = state.template_data(&tip, &data);
            let with_items = template_data != data;
            task_miner.set_job(Template::with_target(
                &tip,
                template_data,
                timestamp,
                target,
            ));
            let made = Instant::now();
            let mut refresh_at: Option<tokio::time::Instant> = None;
            loop {
                tokio::select! {
                    changed = tips.changed() => {
                        if changed.is_err() { return; }
                        break;
                    }
                    // Items that arrive while a block is mined go into a new
                    // template, at most every TEMPLATE_REFRESH.
                    _ = state.pool().arrived(), if refresh_at.is_none() => {
                        refresh_at = Some(tokio::time::Instant::from_std(made + TEMPLATE_REFRESH));
                    }
                    _ = tokio::time::sleep_until(refresh_at.unwrap_or_else(tokio::time::Instant::now)), if refresh_at.is_some() => {
                        if with_items || !state.pool().is_empty() {
                            break;
                        }
                        refresh_at = None;
                    }
                    Some(block) = found_blocks.recv() => {
                        let saver = state.clone();
                        let added = tokio::task::spawn_blocking(move || saver.add_block(block, Source::Mined))
                            .await
                            .expect("saving does not panic");
                        match added {
                            // The new tip starts the next job.
                            Ok(Added::Accepted) => {}
                            Ok(other) => {
                                debug!(?other, "mined block dropped: the tip moved on");
                                break;
                            }
                            Err(error) => {
                                // Most likely the disk (full, read-only): the
                                // block is not served since it is not saved.
                                warn!(%error, "mined block not saved; mining again in {MINE_RETRY_DELAY:?}");
                                tokio::time::sleep(MINE_RETRY_DELAY).await;
                                break;
                            }
                        }
                    }
                    _ = sample.tick() => {
                        let (hashes, now) = (task_miner.hashes(), Instant::now());
                        let rate = (hashes - last_hashes) as f64 / (now - last_time).as_secs_f64();
                        stats.set_hashrate(rate as u64);
                        (last_hashes, last_time) = (hashes, now);
                        if last_logged.is_none_or(|at| at.elapsed() >= HASHRATE_LOG_INTERVAL) {
                            log_hashrate(rate, &network, &target, tip.index, last_logged.is_none());
                            last_logged = Some(now);
                        }
                    }
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    });
    miner
}

/// The miner's hash rate, and what it means for the time between blocks.
fn log_hashrate(rate: f64, network: &Network, target: &U256, height: u64, first: bool) {
    let difficulty = match network.kind {
        Kind::Fixed => network.difficulty.to_string(),
        Kind::Adaptive { .. } => format!("{:.2}", pow::difficulty_of(target)),
    };
    let per_block = pow::expected_hashes(target) / rate.max(1.0);
    let expectation = format!(
        "this node alone would find a block every {} on average at difficulty {difficulty}",
        duration_in_words(per_block)
    );
    if first {
        info!(
            hashrate = rate as u64,
            "mining at {}: {expectation} (every node mining shortens it)",
            rate_in_words(rate)
        );
    } else {
        info!(
            hashrate = rate as u64,
            height,
            "mining at {}, height {height}; {expectation}",
            rate_in_words(rate)
        );
    }
}
