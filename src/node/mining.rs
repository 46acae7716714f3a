//! The node's mining: keeps the miner threads on the template of the
//! current tip (a new one on every new tip, and when data items arrive),
//! saves the blocks they find through the chain state, and measures and
//! reports the hash rate. A node started with `--mine` mines all the time;
//! any node mines the blocks its operator orders ([`MineOrders`]), then
//! idles.
//!
//! The hashing is [`crate::miner`]'s, what the next block holds is
//! [`ChainState::next_template`]'s; this is the loop between them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::block::Block;
use crate::chain::Network;
use crate::config::Config;
use crate::gossip::FirstRound;
use crate::human::{duration_in_words, rate_in_words};
use crate::miner::Miner;
use crate::orders::MineOrders;
use crate::pow::{Kind, Target};
use crate::state::{Added, ChainState, Source};
use crate::stats::Stats;

/// How often the miner's hash rate is measured (for `/status`).
const HASHRATE_SAMPLE_INTERVAL: Duration = Duration::from_secs(2);
/// How often the hash rate is logged.
const HASHRATE_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// How soon after a template is made new data items may replace it.
const TEMPLATE_REFRESH: Duration = Duration::from_millis(250);
/// How long the miner waits after a block could not be saved.
const MINE_RETRY_DELAY: Duration = Duration::from_secs(1);

/// What the miner is told besides the config.
pub(super) struct Brief {
    /// The text of its blocks.
    pub data: String,
    /// The blocks the operator ordered.
    pub orders: Arc<MineOrders>,
    /// The first round of syncs, waited for before the first block.
    pub first_round: FirstRound,
}

/// Starts the miner threads and a task that gives them a new job on every
/// new tip, saves what they find, and measures the hash rate. With
/// `always` the threads mine from the start; without, only while `orders`
/// owes blocks.
///
/// A found block goes through a channel to this task, which saves it on
/// the blocking pool: the low-priority miner threads never hold the lock that
/// the server and the sync need while a file is synced to disk.
pub(super) fn start(
    state: &ChainState,
    stats: &Arc<Stats>,
    config: &Config,
    brief: Brief,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) -> Arc<Miner> {
    let Brief {
        data,
        orders,
        first_round,
    } = brief;
    let (found, mut found_blocks) = tokio::sync::mpsc::unbounded_channel::<Block>();
    let threads = config.threads;
    let always = config.mine;
    let first_round_bound = config.peer_client.connect_timeout + config.peer_client.request_timeout;
    let miner = Arc::new(Miner::start(
        threads,
        Some(config.miner_nice),
        move |block| {
            // The job is done either way; the task sets the next one.
            let _ = found.send(block);
            true
        },
    ));
    if always {
        info!(
            threads,
            "mining on {threads} thread(s); blocks carry {data:?}"
        );
    }

    let (state, stats) = (state.clone(), Arc::clone(stats));
    let network = state.network().clone();
    let (task_miner, shutdown) = (Arc::clone(&miner), shutdown.clone());
    tasks.spawn(async move {
        let mut tips = state.subscribe();
        let mut sample = tokio::time::interval(HASHRATE_SAMPLE_INTERVAL);
        sample.tick().await;
        let mut last_logged: Option<Instant> = None;
        // Mined now, a block would start a fork of our own that the peers'
        // chains, a moment away, might not outweigh.
        let pending = first_round.pending();
        if pending > 0 {
            info!(
                "mining after the first sync with {pending} peer(s), or in {} at the latest",
                duration_in_words(first_round_bound.as_secs_f64())
            );
            tokio::select! {
                ended = first_round.ended(first_round_bound) => if !ended {
                    info!("mining: the first sync with every peer took too long to wait for");
                },
                _ = shutdown.cancelled() => return,
            }
        }
        let (mut last_hashes, mut last_time) = (task_miner.hashes(), Instant::now());
        loop {
            // A newer tip than the one seen means the loop comes round
            // again at once.
            tips.borrow_and_update();
            if !always && orders.owed() == 0 {
                task_miner.idle();
                stats.set_hashrate(0);
                tokio::select! {
                    _ = orders.wanted() => {}
                    _ = shutdown.cancelled() => return,
                }
                let owed = orders.owed();
                info!(threads, "mining {owed} block(s) as the operator asked, on {threads} thread(s); blocks carry {data:?}");
                (last_hashes, last_time) = (task_miner.hashes(), Instant::now());
                continue;
            }
            let template = state.next_template(&data, crate::clock::timestamp_now());
            let (height, target) = (template.index - 1, template.target);
            let with_items = template.data != data;
            task_miner.set_job(template);
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
                            Ok(Added::Accepted) => orders.mined_one(),
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
                            log_hashrate(rate, &network, &target, height, last_logged.is_none());
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
fn log_hashrate(rate: f64, network: &Network, target: &Target, height: u64, first: bool) {
    let difficulty = match network.kind {
        Kind::Fixed => network.difficulty.to_string(),
        Kind::Adaptive { .. } => format!("{:.2}", target.difficulty()),
    };
    let per_block = target.expected_hashes() / rate.max(1.0);
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
