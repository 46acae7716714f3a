//! Sync cost: how long a node whose chain is 10, 1 000 and 100 000 blocks
//! long takes to catch up the 10 blocks a peer has beyond it, incrementally (`/status`,
//! fork search, `/blocks` pages) and, for comparison, by fetching the whole
//! chain as the original node does. Both nodes are real: chaindata folders
//! on disk, the HTTP server on 127.0.0.1, the node's own sync code.
//!
//! Run with `cargo bench --bench sync`.

use std::path::Path;
use std::time::{Duration, Instant};

use std::sync::Arc;

use jbc::PeerClient;
use jbc::Stats;
use jbc::block::Block;
use jbc::block_file_name;
use jbc::chain::Network;
use jbc::chain::Template;
use jbc::protocol::NodeId;
use jbc::{Access, AppState, OperatorKey, ServerLimits, app, serve as serve_api};
use jbc::{AddrMan, PeerSlots};
use jbc::{ChainState, Source};
use jbc::{DEFAULT_GENESIS_JSON, PeerSettings};
use jbc::{Gossip, GossipSettings};
use jbc::{Outcome, Told, catch_up as sync_with};
use jbc::{PeerBook, PeerUrl};
use tokio_util::sync::CancellationToken;

const MISSING: usize = 10;

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let network = Network::new(
        Block::from_json(DEFAULT_GENESIS_JSON.as_bytes()).unwrap(),
        1,
    );
    println!("catching up {MISSING} blocks (median of runs, milliseconds)");
    println!(
        "{:>12} {:>14} {:>14} {:>6}",
        "our blocks", "incremental", "whole chain", "runs"
    );
    for (length, runs) in [(10, 15), (1_000, 15), (100_000, 3)] {
        let work = tempfile::tempdir().unwrap();
        let blocks = mine(&network, length + MISSING);
        let peer_dir = work.path().join("peer");
        write_blocks(&peer_dir, &blocks);
        let base_dir = work.path().join("base");
        write_blocks(&base_dir, &blocks[..length]);

        let (incremental, whole) = runtime.block_on(async {
            let shutdown = CancellationToken::new();
            let peer = serve(&network, &peer_dir, &shutdown).await;
            let mut incremental = Vec::new();
            let mut whole = Vec::new();
            for run in 0..runs {
                incremental.push(
                    catch_up(
                        &network,
                        &base_dir,
                        &work.path().join(format!("i{run}")),
                        &peer,
                        false,
                    )
                    .await,
                );
                whole.push(
                    catch_up(
                        &network,
                        &base_dir,
                        &work.path().join(format!("w{run}")),
                        &peer,
                        true,
                    )
                    .await,
                );
            }
            shutdown.cancel();
            (median(incremental), median(whole))
        });
        println!(
            "{length:>12} {:>14.2} {:>14.2} {runs:>6}",
            incremental.as_secs_f64() * 1e3,
            whole.as_secs_f64() * 1e3
        );
    }
}

/// A valid chain of `length` blocks at the network's difficulty.
fn mine(network: &Network, length: usize) -> Vec<Block> {
    let mut blocks = vec![network.genesis.clone()];
    while blocks.len() < length {
        let data = format!("bench block {}", blocks.len());
        let template = Template::next(
            blocks.last().unwrap(),
            data,
            1_700_000_000,
            network.difficulty,
        );
        blocks.push(template.solve_plainly());
    }
    blocks
}

fn write_blocks(dir: &Path, blocks: &[Block]) {
    std::fs::create_dir_all(dir).unwrap();
    for block in blocks {
        std::fs::write(dir.join(block_file_name(block.index)), block.to_json_line()).unwrap();
    }
}

/// Starts a node's HTTP server on its chaindata; returns its URL.
async fn serve(network: &Network, chaindata: &Path, shutdown: &CancellationToken) -> PeerUrl {
    let state = open(network, chaindata).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let book = PeerBook::open(
        Vec::new(),
        chaindata.with_file_name("peers.json"),
        Duration::from_secs(60),
        Duration::from_secs(3600),
        PeerSlots::default(),
    );
    let stats = Arc::new(Stats::default());
    let client = PeerClient::new(&settings(), network, None, Arc::clone(&stats));
    let gossip = Gossip::new(
        state.clone(),
        client,
        book,
        NodeId::random(),
        Arc::new(AddrMan::open(AddrMan::path_beside(chaindata))),
        GossipSettings {
            outbound_target: 0,
            links: true,
        },
        shutdown.clone(),
    );
    let access = Access {
        key: OperatorKey::create(OperatorKey::cookie_beside(chaindata), None).unwrap(),
        hosts: Vec::new().into(),
        frame_ancestors: Vec::new().into(),
    };
    let router = app(AppState::new(
        state,
        gossip,
        stats,
        false,
        access,
        shutdown.clone(),
    ));
    tokio::spawn(serve_api(
        listener,
        router,
        ServerLimits { connections: 64 },
        shutdown.clone(),
    ));
    PeerUrl::parse(&format!("http://{address}")).unwrap()
}

/// Opens the chain state of a chaindata folder.
async fn open(network: &Network, chaindata: &Path) -> ChainState {
    let (network, dir) = (network.clone(), chaindata.to_path_buf());
    tokio::task::spawn_blocking(move || ChainState::open(network, &dir, Default::default()))
        .await
        .unwrap()
        .unwrap()
        .0
}

/// Copies the lagging chaindata, opens a node on it (untimed), and times
/// one sync with the peer.
async fn catch_up(
    network: &Network,
    base: &Path,
    dir: &Path,
    peer: &PeerUrl,
    whole_chain: bool,
) -> Duration {
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir(base).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let node = open(network, dir).await;
    // Flush the copy's dirty metadata now, or the sync's first fsync would
    // pay for writing 100 000 new directory entries.
    std::process::Command::new("sync").status().unwrap();
    let stats = Arc::new(Stats::default());
    let client = PeerClient::new(&settings(), network, None, Arc::clone(&stats));
    let started = Instant::now();
    let outcome = if whole_chain {
        let chain = client.whole_chain(peer).await.unwrap();
        let fork = node.common_prefix(&chain);
        let branch = chain[fork as usize..].to_vec();
        node.adopt_branch(fork, branch, Source::Synced(peer.clone()))
            .await
            .unwrap();
        None
    } else {
        let told = match client.status(peer, false).await.unwrap() {
            Some(status) => Told::Status(Box::new(status)),
            None => Told::NoStatus { chain: None },
        };
        Some(sync_with(&node, &client, peer, told).await)
    };
    let elapsed = started.elapsed();
    if let Some(outcome) = outcome {
        assert!(
            matches!(outcome, Outcome::Adopted { fetched, .. } if fetched == MISSING as u64),
            "{outcome}"
        );
    }
    assert_eq!(
        stats.blocks_fetched(),
        if whole_chain {
            node.tip().index + 1
        } else {
            MISSING as u64
        }
    );
    elapsed
}

fn settings() -> PeerSettings {
    PeerSettings {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(60),
        max_response_bytes: 1 << 30,
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}
