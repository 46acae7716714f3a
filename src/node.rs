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

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use reqwest::Url;

use crate::api::AppState;
use crate::block::Block;
use crate::chain::{Chain, ChainError, Network, check_block, check_next};
use crate::config::Config;
use crate::miner::{Miner, Template};
use crate::peers::PeerBook;
use crate::store::{Store, StoreError};
use crate::sync::{PeerClient, start_announcer, start_sync_task, sync_with_all};

/// How often the miner's hash rate is measured (for `/status`).
const HASHRATE_SAMPLE_INTERVAL: Duration = Duration::from_secs(2);
/// Every how many samples the hash rate is logged.
const HASHRATE_LOG_EVERY: u32 = 5;
/// How long the miner waits after a block could not be saved.
const MINE_RETRY_DELAY: Duration = Duration::from_secs(1);
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
    /// Announces every new tip (the miner restarts on it, peers hear of it).
    tip: watch::Sender<Tip>,
    /// Blocks fetched from peers while syncing, for `/status`.
    blocks_fetched: AtomicU64,
    /// The miner's last measured hashes per second, for `/status`.
    hashrate: AtomicU64,
}

struct State {
    chain: Arc<Chain>,
    /// `/blockchain.json` for the current chain, built on first request.
    json: Option<Bytes>,
}

/// The last block of the chain, and how it got there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tip {
    pub block: Block,
    pub source: Source,
}

/// Where a change to the chain came from; announcements skip the peer a
/// block came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Loaded from chaindata at startup.
    Loaded,
    /// Mined by this node.
    Mined,
    /// Announced by a peer (its URL, when it said).
    Announced(Option<Url>),
    /// Fetched from a peer while syncing.
    Synced(Url),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Loaded => f.write_str("chaindata"),
            Source::Mined => f.write_str("this node"),
            Source::Announced(Some(peer)) => write!(f, "announced by {peer}"),
            Source::Announced(None) => f.write_str("announced"),
            Source::Synced(peer) => write!(f, "synced from {peer}"),
        }
    }
}

impl Source {
    /// Whether the change came from `peer`, which need not hear of it again.
    pub fn is_from(&self, peer: &Url) -> bool {
        match self {
            Source::Announced(Some(url)) | Source::Synced(url) => url == peer,
            _ => false,
        }
    }
}

/// What [`Node::add_block`] did with a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// It extended the tip and is saved.
    Accepted,
    /// The chain already holds it.
    Known,
    /// It is valid on its own but is not on our tip: it is ahead of it (a
    /// peer has blocks we lack) or on another branch.
    NotOnTip { ahead: bool },
}

/// What [`Node::adopt_branch`] did.
#[derive(Debug)]
pub enum Adoption {
    /// The branch made a longer chain and replaced ours from the fork on;
    /// these blocks left the chain.
    Switched { orphaned: Vec<Block> },
    /// The branch would not make a longer chain; nothing changed.
    NotLonger,
}

/// Why a block or branch was not taken.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
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
        let (tip, _) = watch::channel(Tip {
            block: chain.tip().clone(),
            source: Source::Loaded,
        });
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
                blocks_fetched: AtomicU64::new(0),
                hashrate: AtomicU64::new(0),
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

    /// A snapshot of the chain. Drop it soon: while it is held, the next
    /// change copies the chain instead of extending it in place.
    pub fn chain(&self) -> Arc<Chain> {
        Arc::clone(&self.state().chain)
    }

    /// The current tip block.
    pub fn tip(&self) -> Block {
        self.shared.tip.borrow().block.clone()
    }

    /// Watches the tip.
    pub fn subscribe(&self) -> watch::Receiver<Tip> {
        self.shared.tip.subscribe()
    }

    /// Counts blocks fetched from peers while syncing.
    pub fn count_fetched(&self, blocks: u64) {
        self.shared
            .blocks_fetched
            .fetch_add(blocks, Ordering::Relaxed);
    }

    /// Blocks fetched from peers while syncing, since start.
    pub fn blocks_fetched(&self) -> u64 {
        self.shared.blocks_fetched.load(Ordering::Relaxed)
    }

    /// The miner's last measured hash rate (0 when not mining).
    pub fn hashrate(&self) -> u64 {
        self.shared.hashrate.load(Ordering::Relaxed)
    }

    fn set_hashrate(&self, rate: u64) {
        self.shared.hashrate.store(rate, Ordering::Relaxed);
    }

    /// The cached `/blockchain.json`, if the chain has not changed since it
    /// was built: cheap enough for the async runtime.
    pub fn cached_chain_json(&self) -> Option<Bytes> {
        self.state().json.clone()
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

    /// Adds one block if it extends the tip: checked, written to disk, then
    /// served and announced. Blocking (writes a file).
    pub fn add_block(&self, block: Block, source: Source) -> Result<Added, AddError> {
        let _writer = self.shared.writer.lock().expect("writer lock");
        let difficulty = self.shared.network.difficulty;
        let tip = {
            let state = self.state();
            if state.chain.by_hash(&block.hash) == Some(&block) {
                return Ok(Added::Known);
            }
            state.chain.tip().clone()
        };
        if block.prev_hash != tip.hash.to_string() {
            if block.index == 0 {
                return Err(ChainError::WrongGenesis {
                    expected: self.shared.network.genesis.hash,
                    got: block.hash,
                }
                .into());
            }
            check_block(&block, difficulty)?;
            return Ok(Added::NotOnTip {
                ahead: block.index > tip.index,
            });
        }
        check_next(&tip, &block, difficulty)?;
        self.shared.store.append(&block)?;
        {
            let mut state = self.state();
            Arc::make_mut(&mut state.chain)
                .push(block.clone(), difficulty)
                .expect("checked above against the same tip");
            state.json = None;
        }
        match &source {
            Source::Mined => {
                info!(index = block.index, hash = %block.hash, nonce = block.nonce, "mined block")
            }
            _ => info!(index = block.index, hash = %block.hash, from = %source, "accepted block"),
        }
        self.shared.tip.send_replace(Tip { block, source });
        Ok(Added::Accepted)
    }

    /// Replaces the chain with `candidate` if it is longer, rewriting only
    /// the block files after the fork.
    pub async fn adopt(&self, candidate: Chain, source: Source) -> Result<Adoption, AddError> {
        let fork = self.chain().fork_point(&candidate);
        let incoming = candidate.blocks()[fork as usize..].to_vec();
        drop(candidate);
        self.adopt_branch(fork, incoming, source).await
    }

    /// Replaces the blocks from index `fork` on with `incoming` if that makes
    /// a longer valid chain. Only the new blocks are validated, against our
    /// block `fork - 1`, so the cost grows with the branch, not the chain.
    pub async fn adopt_branch(
        &self,
        fork: u64,
        incoming: Vec<Block>,
        source: Source,
    ) -> Result<Adoption, AddError> {
        let node = self.clone();
        tokio::task::spawn_blocking(move || node.adopt_branch_blocking(fork, incoming, source))
            .await
            .expect("adoption does not panic")
    }

    fn adopt_branch_blocking(
        &self,
        fork: u64,
        incoming: Vec<Block>,
        source: Source,
    ) -> Result<Adoption, AddError> {
        let _writer = self.shared.writer.lock().expect("writer lock");
        let difficulty = self.shared.network.difficulty;
        let (outgoing, base) = {
            let state = self.state();
            let chain = &state.chain;
            if fork + (incoming.len() as u64) <= chain.len() {
                return Ok(Adoption::NotLonger);
            }
            // A branch starts right after a block we hold, and never
            // replaces the genesis block.
            if fork == 0 || fork > chain.len() {
                return Err(ChainError::BadIndex {
                    expected: chain.len(),
                    got: fork,
                }
                .into());
            }
            let base = chain.blocks()[fork as usize - 1].clone();
            (chain.blocks()[fork as usize..].to_vec(), base)
        };
        let mut prev = &base;
        for block in &incoming {
            check_next(prev, block, difficulty)?;
            prev = block;
        }
        self.shared.store.switch(&outgoing, &incoming)?;
        let tip = incoming.last().expect("longer, so not empty").clone();
        {
            let mut state = self.state();
            Arc::make_mut(&mut state.chain).replace_tail(fork, incoming);
            state.json = None;
        }
        info!(
            blocks = tip.index + 1,
            tip = %tip.hash,
            fork,
            replaced = outgoing.len(),
            from = %source,
            "adopted a longer chain"
        );
        for block in &outgoing {
            info!(index = block.index, hash = %block.hash, data = %block.data, "orphaned block");
        }
        self.shared.tip.send_replace(Tip { block: tip, source });
        Ok(Adoption::Switched { orphaned: outgoing })
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
/// load the chain, serve it, sync with peers, then mine if configured, and
/// keep announcing new tips and syncing periodically.
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
        height = tip.index,
        tip = %tip.hash,
        chaindata = %node.chaindata().display(),
        difficulty = config.network.difficulty,
        "loaded chain"
    );

    let address = listener.local_addr()?;
    if !address.ip().is_loopback() {
        warn!(%address, "listening on a non-loopback address: anyone who can reach it can use this node");
    }
    let own_ip = if address.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        address.ip()
    };
    let own_url = format!("http://{}", SocketAddr::new(own_ip, address.port()));
    let (peers, mut new_peers) = PeerBook::open(
        config.peers.clone(),
        PeerBook::path_beside(&config.chaindata),
        address,
    );
    let client = PeerClient::new(&config.peer, Some(own_url));
    let sync = start_sync_task(
        node.clone(),
        client.clone(),
        peers.clone(),
        config.sync_interval,
        shutdown.clone(),
    );

    let state = AppState {
        node: node.clone(),
        peers: peers.clone(),
        sync,
    };
    info!("listening on http://{address}");
    let server = tokio::spawn(
        axum::serve(listener, crate::api::app(state))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future(),
    );

    let startup_peers = peers.list();
    if !startup_peers.is_empty() {
        tokio::select! {
            _ = sync_with_all(&node, &client, &startup_peers, false) => {}
            _ = shutdown.cancelled() => {}
        }
    }
    for peer in startup_peers {
        start_announcer(&node, client.clone(), peer, shutdown.clone());
    }
    {
        let (node, client, shutdown) = (node.clone(), client.clone(), shutdown.clone());
        tokio::spawn(async move {
            while let Some(peer) = tokio::select! {
                peer = new_peers.recv() => peer,
                _ = shutdown.cancelled() => None,
            } {
                start_announcer(&node, client.clone(), peer, shutdown.clone());
            }
        });
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
/// new tip and measures the hash rate.
fn start_miner(
    node: &Node,
    threads: usize,
    data: String,
    shutdown: &CancellationToken,
) -> Arc<Miner> {
    let submitter = node.clone();
    let miner = Arc::new(Miner::start(threads, move |block| {
        match submitter.add_block(block, Source::Mined) {
            Ok(Added::Accepted) => true,
            Ok(other) => {
                debug!(?other, "mined block dropped: the tip moved on");
                true
            }
            Err(error) => {
                // Most likely the disk (full, read-only): the block is not
                // served since it is not saved. Back off, then mine on.
                warn!(%error, "mined block not saved; retrying in {MINE_RETRY_DELAY:?}");
                std::thread::sleep(MINE_RETRY_DELAY);
                false
            }
        }
    }));
    info!(threads, data = %data, "mining");

    let (node, difficulty) = (node.clone(), node.network().difficulty);
    let (task_miner, shutdown) = (Arc::clone(&miner), shutdown.clone());
    tokio::spawn(async move {
        let mut tips = node.subscribe();
        let mut report = tokio::time::interval(HASHRATE_SAMPLE_INTERVAL);
        report.tick().await;
        let mut samples = 0u32;
        let (mut last_hashes, mut last_time) = (task_miner.hashes(), Instant::now());
        loop {
            let tip = tips.borrow_and_update().block.clone();
            let now = chrono::Utc::now().timestamp().max(0) as u128;
            task_miner.set_job(Template::next(&tip, data.clone(), now, difficulty));
            loop {
                tokio::select! {
                    changed = tips.changed() => {
                        if changed.is_err() { return; }
                        break;
                    }
                    _ = report.tick() => {
                        let (hashes, now) = (task_miner.hashes(), Instant::now());
                        let rate = (hashes - last_hashes) as f64 / (now - last_time).as_secs_f64();
                        node.set_hashrate(rate as u64);
                        samples += 1;
                        if samples.is_multiple_of(HASHRATE_LOG_EVERY) {
                            info!(hashrate = format!("{:.2} MH/s", rate / 1e6), height = tip.index, "mining");
                        }
                        (last_hashes, last_time) = (hashes, now);
                    }
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    });
    miner
}
