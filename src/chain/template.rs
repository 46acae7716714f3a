//! The next block to mine, all but its nonce: what the chain's rules ask
//! of it (its target, the earliest timestamp it may carry) written down
//! once, for the node's miner, `jbc init` and the tests that build chains.
//!
//! Which data it carries is the chain state's choice (see
//! [`crate::state::ChainState::next_template`]); finding its nonce is
//! [`crate::miner`]'s.

use super::{Cursor, Network};
use crate::block::{Block, PrevHash};
use crate::pow::Target;

/// What to mine: the next block on a tip, all but its nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub index: u64,
    pub prev_hash: PrevHash,
    pub data: String,
    pub timestamp: u128,
    /// The hash must be at most this.
    pub target: Target,
}

impl Template {
    /// The block the rules allow after the one `cursor` stands on: the
    /// target they ask for, and `now` or, when the median of past times
    /// is later, the earliest timestamp they allow.
    pub fn on(cursor: &Cursor, data: String, now: u128, network: &Network) -> Template {
        Template {
            index: cursor.index + 1,
            prev_hash: cursor.hash.into(),
            data,
            timestamp: now.max(cursor.min_next_timestamp(network).unwrap_or(0)),
            target: cursor.next_target(network),
        }
    }

    /// The template for the block after `prev` in a fixed network of
    /// `difficulty`.
    pub fn next(prev: &Block, data: String, timestamp: u128, difficulty: u32) -> Template {
        Template::with_target(prev, data, timestamp, Target::limit(difficulty))
    }

    /// The template for the block after `prev`, whose hash must be at most
    /// `target`, at exactly `timestamp` (tests use it to break the rules).
    pub fn with_target(prev: &Block, data: String, timestamp: u128, target: Target) -> Template {
        Template {
            index: prev.index + 1,
            prev_hash: prev.hash.into(),
            data,
            timestamp,
            target,
        }
    }

    /// Solves the template the plain way, one full hash per nonce from 0: the
    /// reference the fast path is checked against, and quick enough at low
    /// difficulty to build test chains.
    pub fn solve_plainly(&self) -> Block {
        (0..)
            .map(|nonce| self.block(nonce))
            .find(|block| self.target.is_met_by(&block.hash))
            .expect("some nonce meets a target tests use")
    }

    /// The block for `nonce`.
    pub fn block(&self, nonce: u64) -> Block {
        Block::new(
            self.index,
            self.timestamp,
            self.prev_hash.clone(),
            self.data.clone(),
            nonce,
        )
    }
}
