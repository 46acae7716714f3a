//! What a chain's rules make of its blocks one after another: each block's
//! target, the work of the chain up to it, and what the next block must
//! meet (its target, the earliest timestamp it may carry).
//!
//! A [`Cursor`] stands on one block of a chain and knows all of that; it
//! moves forward one checked block at a time. A [`History`] is a chain's
//! record of its targets, one entry per retarget window, so that a cursor
//! can be placed on any block without walking the chain from the start
//! (a reorganisation validates the new branch from the fork point).
//!
//! The numbers themselves are [`crate::pow`]'s.

use super::{ChainError, Network, check_linked};
use crate::block::{Block, BlockHash};
use crate::pow::{self, Kind, Target, Work};

/// How many blocks' timestamps the median of past times is taken over.
pub const MEDIAN_SPAN: usize = 11;

/// The timestamps of the last [`MEDIAN_SPAN`] blocks, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Recent {
    timestamps: [u128; MEDIAN_SPAN],
    len: usize,
}

impl Recent {
    fn push(&mut self, timestamp: u128) {
        if self.len == MEDIAN_SPAN {
            self.timestamps.copy_within(1.., 0);
            self.timestamps[MEDIAN_SPAN - 1] = timestamp;
        } else {
            self.timestamps[self.len] = timestamp;
            self.len += 1;
        }
    }

    fn median(&self) -> Option<u128> {
        pow::median(self.timestamps[..self.len].iter().copied())
    }
}

/// A block of a chain, as the chain's rules see it: enough to check the
/// block that may follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The block's index.
    pub index: u64,
    /// The block's hash.
    pub hash: BlockHash,
    /// The block's timestamp.
    pub timestamp: u128,
    /// The block's target (the genesis block's is the network's limit).
    pub target: Target,
    /// The work of the chain up to and including this block.
    pub work: Work,
    /// The work of one block at `target`.
    block_work: Work,
    /// The timestamp of the first block of this block's retarget window:
    /// the next retarget measures the window from it.
    window_start: u128,
    /// This block's and the blocks before it's timestamps (adaptive
    /// networks only).
    recent: Recent,
}

/// When a block is checked, for the rule on timestamps ahead of the clock:
/// blocks read back from the node's own files were accepted before and are
/// not refused for the clock's sake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Arriving now: this many seconds since the epoch.
    Now(i64),
    /// Read back from chaindata.
    Stored,
}

impl Clock {
    /// The system clock.
    pub fn now() -> Clock {
        Clock::Now(i64::try_from(crate::clock::unix_now()).unwrap_or(i64::MAX))
    }
}

impl Cursor {
    /// The cursor on a network's genesis block.
    pub fn genesis(network: &Network) -> Cursor {
        let target = network.pow_limit();
        let block_work = Work::of(&target);
        let genesis = &network.genesis;
        let mut recent = Recent::default();
        recent.push(genesis.timestamp);
        Cursor {
            index: 0,
            hash: genesis.hash,
            timestamp: genesis.timestamp,
            target,
            work: block_work,
            block_work,
            window_start: genesis.timestamp,
            recent,
        }
    }

    /// The target the next block must meet.
    pub fn next_target(&self, network: &Network) -> Target {
        match network.kind {
            Kind::Fixed => self.target,
            Kind::Adaptive {
                target_block_seconds,
                retarget_window,
            } => {
                if !(self.index + 1).is_multiple_of(retarget_window) {
                    return self.target;
                }
                let span = signed(self.timestamp) - signed(self.window_start);
                self.target.retarget(
                    span,
                    target_block_seconds,
                    retarget_window,
                    network.pow_limit(),
                )
            }
        }
    }

    /// The earliest timestamp the next block may carry: one second after
    /// the median of the last 11 blocks' (adaptive networks; a fixed
    /// network has no rule on time).
    pub fn min_next_timestamp(&self, network: &Network) -> Option<u128> {
        match network.kind {
            Kind::Fixed => None,
            Kind::Adaptive { .. } => self.recent.median().map(|median| median + 1),
        }
    }

    /// The mean time between blocks over the last retarget window (up to
    /// this block), in seconds, when the window's first block is known.
    pub fn window_mean_seconds(&self, network: &Network) -> Option<f64> {
        let Kind::Adaptive {
            retarget_window, ..
        } = network.kind
        else {
            return None;
        };
        let blocks = self.index % retarget_window;
        (blocks > 0)
            .then(|| (signed(self.timestamp) - signed(self.window_start)) as f64 / blocks as f64)
    }

    /// Checks that `block` may follow this one: its index and link, its
    /// size, hash and proof of work against the target the rules give it,
    /// and (adaptive networks) its timestamp.
    pub fn check(&self, block: &Block, network: &Network, clock: Clock) -> Result<(), ChainError> {
        check_linked(self.index, &self.hash, block, network)?;
        self.check_rules(block.index, &block.hash, block.timestamp, network, clock)
    }

    /// The rules a block's place in the chain sets, for a block whose link,
    /// size and hash are checked already: its target, and its timestamp.
    pub fn check_rules(
        &self,
        index: u64,
        hash: &BlockHash,
        timestamp: u128,
        network: &Network,
        clock: Clock,
    ) -> Result<(), ChainError> {
        if network.kind == Kind::Fixed {
            // `check_block` checked the one target there is.
            return Ok(());
        }
        let target = self.next_target(network);
        if !target.is_met_by(hash) {
            return Err(ChainError::AboveTarget {
                index,
                hash: *hash,
                target: target.to_string(),
            });
        }
        let median = self.recent.median().unwrap_or(0);
        if timestamp <= median {
            return Err(ChainError::TimeTooEarly {
                index,
                timestamp,
                median,
            });
        }
        if timestamp > i64::MAX as u128 {
            return Err(ChainError::TimeNotSeconds { index, timestamp });
        }
        if let Clock::Now(now) = clock {
            let limit = i128::from(now) + i128::from(network.max_future_seconds);
            if timestamp as i128 > limit {
                return Err(ChainError::TimeTooFarAhead {
                    index,
                    ahead: timestamp as i128 - i128::from(now),
                    max: network.max_future_seconds,
                });
            }
        }
        Ok(())
    }

    /// Moves on to `block`, checked to follow this one.
    pub fn advance(&mut self, block: &Block, network: &Network) {
        self.advance_to(block.hash, block.timestamp, network);
    }

    /// Moves on to the next block, given its hash and timestamp.
    pub fn advance_to(&mut self, hash: BlockHash, timestamp: u128, network: &Network) {
        let target = self.next_target(network);
        if target != self.target {
            self.target = target;
            self.block_work = Work::of(&target);
        }
        self.index += 1;
        self.hash = hash;
        self.timestamp = timestamp;
        self.work = self.work.plus(self.block_work);
        if let Kind::Adaptive {
            retarget_window, ..
        } = network.kind
        {
            if self.index.is_multiple_of(retarget_window) {
                self.window_start = timestamp;
            }
            self.recent.push(timestamp);
        }
    }

    /// Checks `block` and moves on to it.
    pub fn step(
        &mut self,
        block: &Block,
        network: &Network,
        clock: Clock,
    ) -> Result<(), ChainError> {
        self.check(block, network, clock)?;
        self.advance(block, network);
        Ok(())
    }
}

/// A timestamp as a signed number of seconds, for differences (timestamps
/// past `i64::MAX` are refused by the rules; old blocks of a fixed network
/// never get here).
fn signed(timestamp: u128) -> i128 {
    i128::try_from(timestamp).unwrap_or(i128::MAX)
}

/// One retarget window of a chain: the target all its blocks share.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Window {
    target: Target,
    /// The work of the chain before the window's first block.
    work_before: Work,
    /// The timestamp of the window's first block.
    start: u128,
}

/// A chain's targets and work, kept as the chain grows and shrinks: one
/// entry per retarget window (a fixed network has one window, forever),
/// and the cursor on the tip.
#[derive(Debug, Clone)]
pub struct History {
    /// The retarget window in blocks (`u64::MAX`: a fixed network).
    window: u64,
    windows: Vec<Window>,
    tip: Cursor,
}

impl History {
    /// The history of a chain holding only the genesis block.
    pub fn genesis(network: &Network) -> History {
        let tip = Cursor::genesis(network);
        let window = match network.kind {
            Kind::Fixed => u64::MAX,
            Kind::Adaptive {
                retarget_window, ..
            } => retarget_window,
        };
        History {
            window,
            windows: vec![Window {
                target: tip.target,
                work_before: Work::default(),
                start: tip.timestamp,
            }],
            tip,
        }
    }

    /// The cursor on the tip.
    pub fn tip(&self) -> &Cursor {
        &self.tip
    }

    /// Records the next block, checked to follow the tip.
    pub fn push(&mut self, hash: BlockHash, timestamp: u128, network: &Network) {
        let work_before = self.tip.work;
        self.tip.advance_to(hash, timestamp, network);
        if self.tip.index.is_multiple_of(self.window) {
            self.windows.push(Window {
                target: self.tip.target,
                work_before,
                start: timestamp,
            });
        }
    }

    /// Checks the next block's target and timestamp (its link, size and
    /// hash are checked already) and records it.
    pub fn push_checked(
        &mut self,
        hash: BlockHash,
        timestamp: u128,
        network: &Network,
        clock: Clock,
    ) -> Result<(), ChainError> {
        self.tip
            .check_rules(self.tip.index + 1, &hash, timestamp, network, clock)?;
        self.push(hash, timestamp, network);
        Ok(())
    }

    /// The target of block `index` (within the chain).
    pub fn target_at(&self, index: u64) -> Target {
        self.windows[(index / self.window) as usize].target
    }

    /// The work of the chain up to and including block `index`.
    pub fn work_through(&self, index: u64) -> Work {
        let window = &self.windows[(index / self.window) as usize];
        let first = index / self.window * self.window;
        window
            .work_before
            .plus(Work::times(Work::of(&window.target), index - first + 1))
    }

    /// The cursor on block `index` (within the chain), given the block's
    /// hash and the timestamps of the blocks up to it (at least the last
    /// [`MEDIAN_SPAN`]; only the last ones are read).
    pub fn cursor_at(
        &self,
        index: u64,
        hash: BlockHash,
        mut timestamp_of: impl FnMut(u64) -> u128,
        network: &Network,
    ) -> Cursor {
        if index == self.tip.index {
            return self.tip.clone();
        }
        let window = &self.windows[(index / self.window) as usize];
        let target = window.target;
        let mut recent = Recent::default();
        if network.kind != Kind::Fixed {
            for i in index.saturating_sub(MEDIAN_SPAN as u64 - 1)..=index {
                recent.push(timestamp_of(i));
            }
        }
        Cursor {
            index,
            hash,
            timestamp: timestamp_of(index),
            target,
            work: self.work_through(index),
            block_work: Work::of(&target),
            window_start: window.start,
            recent,
        }
    }

    /// Forgets the blocks from `len` on; `tip` is the cursor on block
    /// `len - 1`, from [`History::cursor_at`].
    pub fn truncate(&mut self, len: u64, tip: Cursor) {
        debug_assert_eq!(tip.index + 1, len);
        let windows = (len - 1) / self.window + 1;
        self.windows.truncate(windows as usize);
        self.tip = tip;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::Template;
    use crate::chain::tests::test_network;
    use crate::pow::U256;

    fn adaptive(seconds: u64, window: u64) -> Network {
        crate::chain::tests::adaptive_network(seconds, window)
    }

    fn mine(network: &Network, gaps: &[u128]) -> Vec<Block> {
        crate::chain::tests::extend_timed(network, vec![network.genesis.clone()], gaps, "block")
    }

    #[test]
    fn a_fixed_network_s_work_is_its_length() {
        let network = test_network();
        let mut history = History::genesis(&network);
        let blocks = crate::chain::tests::chain_of(&network, 30, "w");
        for block in &blocks[1..] {
            history.push(block.hash, block.timestamp, &network);
        }
        assert_eq!(history.tip().work.0, U256::from(30 * 256u64));
        assert_eq!(history.work_through(9).0, U256::from(10 * 256u64));
        assert_eq!(history.windows.len(), 1);
    }

    #[test]
    fn targets_retarget_at_each_window_and_cursors_land_anywhere() {
        let network = adaptive(10, 4);
        // Blocks every 5 s: twice too fast, so the target halves at 4, 8.
        let blocks = mine(&network, &[5; 10]);
        let mut history = History::genesis(&network);
        for block in &blocks[1..] {
            history.push(block.hash, block.timestamp, &network);
        }
        let limit = network.pow_limit();
        assert_eq!(history.target_at(3), limit);
        // span = ts[3] - ts[0] = 15 against (4 - 1)·10 = 30.
        let half = limit.retarget(15, 10, 4, limit);
        assert_eq!(history.target_at(4), half);
        assert_eq!(history.target_at(8), half.retarget(15, 10, 4, limit));
        for index in 0..blocks.len() as u64 {
            let placed = history.cursor_at(
                index,
                blocks[index as usize].hash,
                |i| blocks[i as usize].timestamp,
                &network,
            );
            let mut walked = Cursor::genesis(&network);
            for block in &blocks[1..=index as usize] {
                walked.advance(block, &network);
            }
            assert_eq!(placed, walked, "block {index}");
        }
        let mut truncated = history.clone();
        let at_five = history.cursor_at(
            5,
            blocks[5].hash,
            |i| blocks[i as usize].timestamp,
            &network,
        );
        truncated.truncate(6, at_five.clone());
        assert_eq!(truncated.tip(), &at_five);
        assert_eq!(truncated.windows.len(), 2);
    }

    #[test]
    fn the_rules_name_the_block_and_the_reason() {
        let network = adaptive(10, 4);
        let blocks = mine(&network, &[5; 4]);
        let mut cursor = Cursor::genesis(&network);
        for block in &blocks[1..4] {
            cursor.advance(block, &network);
        }
        let prev = &blocks[3];
        let target = cursor.next_target(&network);
        assert!(target < network.pow_limit(), "block 4 is retargeted");
        // Not after the median of the blocks before.
        let early =
            Template::with_target(prev, "early".into(), prev.timestamp - 5, target).solve_plainly();
        assert!(matches!(
            cursor.check(&early, &network, Clock::Stored),
            Err(ChainError::TimeTooEarly { index: 4, .. })
        ));
        // Easier than the retargeted target.
        let easy = (0..)
            .map(|nonce| {
                Block::new(
                    4,
                    prev.timestamp + 5,
                    prev.hash.to_string(),
                    "easy".into(),
                    nonce,
                )
            })
            .find(|b| network.pow_limit().is_met_by(&b.hash) && !target.is_met_by(&b.hash))
            .unwrap();
        let error = cursor.check(&easy, &network, Clock::Stored).unwrap_err();
        assert!(
            matches!(error, ChainError::AboveTarget { index: 4, .. }),
            "{error}"
        );
        // Too far ahead of the clock: refused now, fine once stored.
        let ahead = Template::with_target(prev, "ahead".into(), prev.timestamp + 10_000, target)
            .solve_plainly();
        let now = Clock::Now(prev.timestamp as i64);
        assert!(matches!(
            cursor.check(&ahead, &network, now),
            Err(ChainError::TimeTooFarAhead {
                index: 4,
                ahead: 10_000,
                max: 7200
            })
        ));
        cursor.check(&ahead, &network, Clock::Stored).unwrap();
    }
}
