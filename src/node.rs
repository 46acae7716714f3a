//! The node: one chain in memory, always equal to what the chaindata folder
//! holds, and the tasks around it (HTTP server, startup sync, miner).
//!
//! [`Node`] is a cheap `Clone` handle. Every change to the chain (a mined
//! block, a peer's longer chain) goes through one writer lock, is written
//! to disk first and only then becomes visible, so nothing is served that
//! a crash could take back. Readers take a snapshot under a short lock that
//! is never held across I/O or `.await`.
//!
//! [`run`] wires the parts together and stops them on shutdown.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::block::{Block, BlockHash};
use crate::chain::{Chain, ChainError, Network, check_next};
use crate::config::Config;
use crate::miner::{Miner, Template};
use crate::store::{Store, StoreError};
use crate::sync::{PeerClient, sync_with_peers};

/// How often the miner's hash rate is logged.
const HASHRATE_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// How long open connections may delay shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Handle to the node's chain.
#[derive(Clone)]
pub struct Node {
    shared: Arc<Shared>,
}

struct Shared {
    /// Genesis and difficulty every chain must match.
    network: Network,
    /// The chaindata folder; the only place blocks are persisted.
    store: Store,
    /// The chain and what is derived from it.
    state: Mutex<State>,
    /// Held for the whole of a change (check, write, publish) so that each
    /// change is checked against the chain it really extends.
    writer: Mutex<()>,
    /// Announces every new tip (the miner restarts on it).
    tip: watch::Sender<Tip>,
}

struct State {
    chain: Arc<Chain>,
    /// `/blockchain.json` for the current chain, built on first request.
    json: Option<Bytes>,
}

/// The last block of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tip {
    pub index: u64,
    pub hash: BlockHash,
}

impl Tip {
    fn of(chain: &Chain) -> Tip {
        Tip {
            index: chain.tip().index,
            hash: chain.tip().hash,
        }
    }
}

/// What [`Node::adopt`] did.
#[derive(Debug)]
pub enum Adoption {
    /// The chain was longer and replaced ours; these blocks left the chain.
    Switched { orphaned: Vec<Block> },
    /// The chain was not longer; nothing changed.
    NotLonger,
}

/// Why a mined block was not added.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The chain moved on while the block was mined.
    #[error("stale: the tip is no longer block {0}'s parent")]
    Stale(u64),
    #[error(transparent)]
    Invalid(#[from] ChainError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Node {
    /// Loads the chain from `chaindata` (blocking: reads every block file).
    pub fn open(network: Network, chaindata: &Path) -> Result<Node, StoreError> {
        let store = Store::open(chaindata)?;
        let loaded = store.load(&network)?;
        for aside in &loaded.set_aside {
            warn!(
                file = %aside.from.display(),
                moved_to = %aside.to.display(),
                "block file set aside: {}",
                aside.reason
            );
        }
        let chain = loaded.chain;
        let (tip, _) = watch::channel(Tip::of(&chain));
        Ok(Node {
            shared: Arc::new(Shared {
                network,
                store,
                state: Mutex::new(State {
                    chain: Arc::new(chain),
                    json: None,
                }),
                writer: Mutex::new(()),
                tip,
            }),
        })
    }

    /// The network this node belongs to.
    pub fn network(&self) -> &Network {
        &self.shared.network
    }

    /// The chaindata folder.
    pub fn chaindata(&self) -> &Path {
        self.shared.store.dir()
    }

    /// A snapshot of the chain.
    pub fn chain(&self) -> Arc<Chain> {
        Arc::clone(&self.state().chain)
    }

    /// The current tip.
    pub fn tip(&self) -> Tip {
        self.shared.tip.borrow().clone()
    }

    /// Watches the tip.
    pub fn subscribe(&self) -> watch::Receiver<Tip> {
        self.shared.tip.subscribe()
    }

    /// The chain as `/blockchain.json`, cached until the chain changes. Can
    /// take milliseconds for a long chain: call it off the async runtime.
    pub fn chain_json(&self) -> Bytes {
        let snapshot = {
            let state = self.state();
            if let Some(json) = &state.json {
                return json.clone();
            }
            Arc::clone(&state.chain)
        };
        let json = Bytes::from(snapshot.to_json());
        let mut state = self.state();
        // While we hold the snapshot any change makes a new Arc, so pointer
        // equality means the JSON is still the chain's.
        if Arc::ptr_eq(&state.chain, &snapshot) {
            state.json = Some(json.clone());
        }
        json
    }

    /// Adds a block this node mined on its tip: checked, written to disk,
    /// then served. Blocking.
    pub fn submit_mined(&self, block: Block) -> Result<(), SubmitError> {
        let _writer = self.shared.writer.lock().expect("writer lock");
        let tip = self.chain().tip().clone();
        if block.prev_hash != tip.hash.to_string() {
            return Err(SubmitError::Stale(block.index));
        }
        check_next(&tip, &block, self.shared.network.difficulty)?;
        self.shared.store.append(&block)?;
        {
            let mut state = self.state();
            Arc::make_mut(&mut state.chain)
                .push(block.clone(), self.shared.network.difficulty)
                .expect("checked above against the same tip");
            state.json = None;
        }
        info!(index = block.index, hash = %block.hash, nonce = block.nonce, "mined block");
        self.shared.tip.send_replace(Tip {
            index: block.index,
            hash: block.hash,
        });
        Ok(())
    }

    /// Replaces the chain with `candidate` if it is longer, rewriting only
    /// the block files that differ.
    pub async fn adopt(&self, candidate: Chain) -> Result<Adoption, StoreError> {
        let node = self.clone();
        tokio::task::spawn_blocking(move || node.adopt_blocking(candidate))
            .await
            .expect("adoption does not panic")
    }

    fn adopt_blocking(&self, candidate: Chain) -> Result<Adoption, StoreError> {
        let _writer = self.shared.writer.lock().expect("writer lock");
        let current = self.chain();
        if !current.should_switch_to(&candidate) {
            return Ok(Adoption::NotLonger);
        }
        let orphaned = self.shared.store.switch(&current, &candidate)?;
        let tip = Tip::of(&candidate);
        {
            let mut state = self.state();
            state.chain = Arc::new(candidate);
            state.json = None;
        }
        info!(
            blocks = tip.index + 1,
            tip = %tip.hash,
            replaced = orphaned.len(),
            "adopted a longer chain"
        );
        for block in &orphaned {
            info!(index = block.index, hash = %block.hash, data = %block.data, "orphaned block");
        }
        self.shared.tip.send_replace(tip);
        Ok(Adoption::Switched { orphaned })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().expect("state lock")
    }
}

/// Why the node stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("server: {0}")]
    Server(#[from] std::io::Error),
}

/// Runs a node on an already-bound listener until `shutdown` is cancelled:
/// load the chain, serve it, sync with peers, then mine if configured.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), NodeError> {
    let network = config.network.clone();
    let chaindata: PathBuf = config.chaindata.clone();
    let node = tokio::task::spawn_blocking(move || Node::open(network, &chaindata))
        .await
        .expect("loading does not panic")?;
    let tip = node.tip();
    info!(
        blocks = tip.index + 1,
        tip = %tip.hash,
        chaindata = %node.chaindata().display(),
        difficulty = config.network.difficulty,
        "loaded chain"
    );

    let address = listener.local_addr()?;
    if !address.ip().is_loopback() {
        warn!(%address, "listening on a non-loopback address: anyone who can reach it can use this node");
    }
    info!("listening on http://{address}");
    let server = tokio::spawn(
        axum::serve(listener, crate::api::app(node.clone()))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future(),
    );

    if !config.peers.is_empty() {
        let client = PeerClient::new(&config.peer);
        tokio::select! {
            _ = sync_with_peers(&node, &client, &config.peers) => {}
            _ = shutdown.cancelled() => {}
        }
    }

    let data = (config.data.clone())
        .unwrap_or_else(|| format!("Mined by node on port {}", address.port()));
    let miner = (config.mine && !shutdown.is_cancelled())
        .then(|| start_miner(&node, config.threads, data, &shutdown));

    shutdown.cancelled().await;
    info!("shutting down");
    if let Some(miner) = miner {
        tokio::task::spawn_blocking(move || miner.stop())
            .await
            .expect("stopping the miner does not panic");
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(joined) => joined.expect("the server task does not panic")?,
        Err(_) => warn!("open connections did not close in time; stopping anyway"),
    }
    info!("stopped");
    Ok(())
}

/// Starts the miner threads and a task that gives them a new job on every
/// new tip and logs the hash rate.
fn start_miner(
    node: &Node,
    threads: usize,
    data: String,
    shutdown: &CancellationToken,
) -> Arc<Miner> {
    let submitter = node.clone();
    let miner = Arc::new(Miner::start(threads, move |block| {
        match submitter.submit_mined(block) {
            Ok(()) => {}
            Err(error @ SubmitError::Stale(_)) => debug!(%error, "mined block dropped"),
            Err(error) => warn!(%error, "mined block not saved"),
        }
    }));
    info!(threads, data = %data, "mining");

    let (node, difficulty) = (node.clone(), node.network().difficulty);
    let (task_miner, shutdown) = (Arc::clone(&miner), shutdown.clone());
    tokio::spawn(async move {
        let mut tips = node.subscribe();
        let mut report = tokio::time::interval(HASHRATE_LOG_INTERVAL);
        report.tick().await;
        let (mut last_hashes, mut last_time) = (task_miner.hashes(), Instant::now());
        loop {
            let tip = tips.borrow_and_update().clone();
            task_miner.set_job(Template {
                index: tip.index + 1,
                prev_hash: tip.hash.to_string(),
                data: data.clone(),
                timestamp: chrono::Utc::now().timestamp().max(0) as u128,
                difficulty,
            });
            loop {
                tokio::select! {
                    changed = tips.changed() => {
                        if changed.is_err() { return; }
                        break;
                    }
                    _ = report.tick() => {
                        let (hashes, now) = (task_miner.hashes(), Instant::now());
                        let rate = (hashes - last_hashes) as f64 / (now - last_time).as_secs_f64();
                        info!(hashrate = format!("{:.2} MH/s", rate / 1e6), height = tip.index, "mining");
                        (last_hashes, last_time) = (hashes, now);
                    }
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    });
    miner
}
