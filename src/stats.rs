//! Counters the node reports about its own activity (on `/status`): the
//! miner's hash rate and the blocks fetched from peers.
//!
//! Writers (the miner's sampling task, the peer client) and readers (the
//! HTTP handlers) share one [`Stats`] behind an `Arc`; every counter is a
//! relaxed atomic, since each is read on its own.

use std::sync::atomic::{AtomicU64, Ordering};

/// The node's activity counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// Blocks fetched from peers while syncing, since start.
    blocks_fetched: AtomicU64,
    /// The miner's last measured hashes per second (0 when not mining).
    hashrate: AtomicU64,
}

impl Stats {
    /// Counts blocks fetched from a peer.
    pub fn count_fetched(&self, blocks: u64) {
        self.blocks_fetched.fetch_add(blocks, Ordering::Relaxed);
    }

    /// Blocks fetched from peers since start.
    pub fn blocks_fetched(&self) -> u64 {
        self.blocks_fetched.load(Ordering::Relaxed)
    }

    /// Records the miner's latest hash rate.
    pub fn set_hashrate(&self, hashes_per_second: u64) {
        self.hashrate.store(hashes_per_second, Ordering::Relaxed);
    }

    /// The miner's latest hash rate.
    pub fn hashrate(&self) -> u64 {
        self.hashrate.load(Ordering::Relaxed)
    }
}
