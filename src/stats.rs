//! Counters the node reports about its own activity (on `/status`): the
//! miner's hash rate, the blocks fetched from peers, a catch-up under way.
//!
//! Writers (the miner's sampling task, the peer client) and readers (the
//! HTTP handlers) share one [`Stats`] behind an `Arc`; every counter is a
//! relaxed atomic, since each is read on its own.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

/// The node's activity counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// Blocks fetched from peers while syncing, since start.
    blocks_fetched: AtomicU64,
    /// The miner's last measured hashes per second (0 when not mining).
    hashrate: AtomicU64,
    /// The catch-up under way, if one is.
    catching_up: Mutex<Option<CatchUp>>,
    /// Offences peers were judged for since start (what no honest node
    /// does), and the discouragements they came to.
    misbehaviour: AtomicU64,
    discouraged: AtomicU64,
}

/// A long catch-up with one peer, for `/status` and the progress log.
#[derive(Debug, Clone)]
pub struct CatchUp {
    pub peer: String,
    /// The peer's height when it began.
    pub target: u64,
    /// Our height when it began, and now.
    pub from: u64,
    pub height: u64,
    pub started: Instant,
}

/// A catch-up as `/status` shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct CatchUpView {
    pub peer: String,
    pub target: u64,
    pub height: u64,
    pub blocks_per_second: f64,
}

impl CatchUp {
    /// Blocks committed per second so far.
    pub fn rate(&self) -> f64 {
        (self.height - self.from) as f64 / self.started.elapsed().as_secs_f64().max(1e-3)
    }

    pub fn view(&self) -> CatchUpView {
        CatchUpView {
            peer: self.peer.clone(),
            target: self.target,
            height: self.height,
            blocks_per_second: (self.rate() * 10.0).round() / 10.0,
        }
    }
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

    /// Notes the catch-up under way (`None`: none).
    pub fn set_catching_up(&self, catch_up: Option<CatchUp>) {
        *self.catching_up.lock().expect("stats lock") = catch_up;
    }

    /// The catch-up under way.
    pub fn catching_up(&self) -> Option<CatchUp> {
        self.catching_up.lock().expect("stats lock").clone()
    }

    /// Counts an offence a peer was judged for.
    pub fn count_misbehaviour(&self) {
        self.misbehaviour.fetch_add(1, Ordering::Relaxed);
    }

    /// Offences peers were judged for since start.
    pub fn misbehaviour(&self) -> u64 {
        self.misbehaviour.load(Ordering::Relaxed)
    }

    /// Counts a peer discouraged.
    pub fn count_discouraged(&self) {
        self.discouraged.fetch_add(1, Ordering::Relaxed);
    }

    /// Peers discouraged since start.
    pub fn discouraged(&self) -> u64 {
        self.discouraged.load(Ordering::Relaxed)
    }
}
