//! A chain is an ordered list of blocks that starts at the network's genesis
//! block, where each block links to the one before by index and hash and
//! carries proof of work.
//!
//! This module owns validation (a block on its own here, a block in its
//! place in a chain in [`Cursor`]) and [`better_chain`], the one rule every
//! place that compares chains calls (start-up load, sync, reorganisations,
//! announcements): the most work wins. It does not read files or talk to
//! peers.

mod blocks;
mod cursor;
mod template;

pub(crate) use blocks::Carried;
pub use blocks::{Chain, ChainJson, SEGMENT_BLOCKS, Segment};
pub use cursor::{Clock, Cursor, History, MEDIAN_SPAN};
pub use template::Template;

use crate::block::{Block, BlockError, BlockHash};
use crate::pow::{Kind, Target, Work};
use crate::setting::{Setting, Text, Unset};

/// The settings every node of one network must share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// Block 0 of every chain of this network.
    pub genesis: Block,
    /// How many leading zero hex digits a block's hash needs (the genesis
    /// block is exempt): in an adaptive network, the least it needs.
    pub difficulty: u32,
    /// Whether targets stay at `difficulty` or adapt to the network.
    pub kind: Kind,
    /// How far ahead of a node's clock a block's timestamp may be (adaptive
    /// networks), in seconds.
    pub max_future_seconds: u64,
    /// The largest block, in bytes of its compact JSON; the same limit
    /// applies to block files, synced blocks, announcements and mining.
    pub max_block_bytes: u64,
    /// The largest data item a node takes, in bytes of UTF-8.
    pub max_item_bytes: u64,
}

/// Leading zero hex digits a block hash needs: a few seconds per block
/// for a small network of nodes sharing one machine.
pub const DIFFICULTY: Setting<u32> = Setting {
    key: "difficulty",
    help: "leading zero hex digits of a block hash; in an adaptive network the least (network setting)",
    default: 7,
    range: Some(0..=64),
    unit: "a number of hex digits",
};
/// With `retarget_window`, makes the network adaptive.
pub const TARGET_BLOCK_SECONDS: Setting<u64, Unset> = Setting {
    key: "target_block_seconds",
    help: "with retarget_window, makes the network adaptive: the seconds between blocks it aims for (network setting)",
    default: Unset("unset: a fixed network"),
    range: Some(1..=86_400),
    unit: "a whole number of seconds",
};
pub const RETARGET_WINDOW: Setting<u64, Unset> = Setting {
    key: "retarget_window",
    help: "blocks between retargets of an adaptive network (network setting)",
    default: Unset("unset"),
    range: Some(2..=100_000),
    unit: "a whole number of blocks",
};
/// Two hours, as in Bitcoin.
pub const MAX_FUTURE_SECONDS: Setting<u64> = Setting {
    key: "max_future_seconds",
    help: "how far ahead of this node's clock a block's timestamp may be (adaptive networks)",
    default: 7200,
    range: Some(0..=30 * 86_400),
    unit: "a whole number of seconds",
};
pub const GENESIS: Text = Setting {
    key: "genesis",
    help: "file holding the network's genesis block (network setting)",
    default: Unset("the built-in first block"),
    range: None,
    unit: "",
};
/// 1 MiB of JSON.
pub const MAX_BLOCK_BYTES: Setting<u64> = Setting {
    key: "max_block_bytes",
    help: "largest block, in bytes of its JSON (network setting)",
    default: 1024 * 1024,
    range: Some(1024..=64 * 1024 * 1024),
    unit: "a whole number of bytes",
};
impl Network {
    /// A network with the default block size limit.
    pub fn new(genesis: Block, difficulty: u32) -> Network {
        Network {
            genesis,
            difficulty,
            kind: Kind::Fixed,
            max_future_seconds: MAX_FUTURE_SECONDS.default,
            max_block_bytes: MAX_BLOCK_BYTES.default,
            max_item_bytes: crate::item::MAX_ITEM_BYTES.default,
        }
    }

    /// The most bytes a block may take as text from elsewhere (a block
    /// file, a request body, a peer's answer): its compact JSON is limited
    /// to `max_block_bytes`, and another program's JSON (the original
    /// writes spaces after `:` and `,`) may be up to about twice that.
    pub fn max_block_text_bytes(&self) -> u64 {
        self.max_block_bytes.saturating_mul(2) + 64 * 1024
    }

    /// The easiest target a block may have: `2^(256 - 4·difficulty) - 1`.
    pub fn pow_limit(&self) -> Target {
        Target::limit(self.difficulty)
    }
}

/// The rule for choosing between chains, given their work: a candidate
/// wins only when it has more, so that on a tie every node keeps the chain
/// it had first. In a fixed network every block has the same work, so this
/// is the longest chain.
pub fn better_chain(current: Work, candidate: Work) -> bool {
    candidate > current
}

/// Checks that `block` is exactly the network's genesis block.
pub fn check_genesis(block: &Block, network: &Network) -> Result<(), ChainError> {
    if *block == network.genesis {
        Ok(())
    } else {
        Err(ChainError::WrongGenesis {
            expected: network.genesis.hash,
            got: block.hash,
        })
    }
}

/// Checks that `next` links to the block `prev_index` with hash
/// `prev_hash`, and is valid on its own ([`check_block`]). The rules of its
/// place in the chain (an adaptive network's target, its timestamp) are
/// [`Cursor::check`]'s, which calls this first.
pub fn check_linked(
    prev_index: u64,
    prev_hash: &BlockHash,
    next: &Block,
    network: &Network,
) -> Result<(), ChainError> {
    let expected_index = prev_index + 1;
    if next.index != expected_index {
        return Err(ChainError::BadIndex {
            expected: expected_index,
            got: next.index,
        });
    }
    if !next.prev_hash.links_to(prev_hash) {
        return Err(ChainError::BadPrevHash {
            index: next.index,
            expected: *prev_hash,
            got: next.prev_hash.shown(),
        });
    }
    check_block(next, network)
}

/// Checks a non-genesis block on its own: its size, its hash and its proof
/// of work against the network's easiest target. A block that fails here
/// is invalid anywhere, whatever chain it is offered for.
pub fn check_block(block: &Block, network: &Network) -> Result<(), ChainError> {
    let bytes = block.json_len() as u64;
    if bytes > network.max_block_bytes {
        return Err(BlockError::TooLarge {
            index: block.index,
            bytes,
            max: network.max_block_bytes,
        }
        .into());
    }
    block.check_hash()?;
    if !block.hash.meets_difficulty(network.difficulty) {
        return Err(BlockError::BadProofOfWork {
            index: block.index,
            hash: block.hash,
            difficulty: network.difficulty,
        }
        .into());
    }
    Ok(())
}

/// Why a list of blocks is not a valid chain of this network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// There are no blocks at all.
    #[error("the chain is empty")]
    Empty,
    /// Block 0 is not this network's genesis block.
    #[error("block 0 is not this network's genesis block (expected {expected}, got {got})")]
    WrongGenesis { expected: BlockHash, got: BlockHash },
    /// A block's index does not follow the previous block's.
    #[error("block {got} found where block {expected} should be")]
    BadIndex { expected: u64, got: u64 },
    /// A block does not link to the previous block's hash.
    #[error("block {index}: prev_hash {got:?} is not the hash of block {} ({expected})", index - 1)]
    BadPrevHash {
        index: u64,
        expected: BlockHash,
        got: String,
    },
    /// The block itself is bad.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// Its hash is above the target the chain before it gives it (an
    /// adaptive network): it claims an easier target than the rules do.
    #[error("block {index}: hash {hash} is above its target {target}")]
    AboveTarget {
        index: u64,
        hash: BlockHash,
        target: String,
    },
    /// Its timestamp is not after the median of the 11 blocks before it.
    #[error(
        "block {index}: timestamp {timestamp} is not after {median}, the median time of the blocks before it"
    )]
    TimeTooEarly {
        index: u64,
        timestamp: u128,
        median: u128,
    },
    /// Its timestamp is not a number of seconds since the epoch.
    #[error("block {index}: timestamp {timestamp} is not seconds since the epoch")]
    TimeNotSeconds { index: u64, timestamp: u128 },
    /// Its timestamp is too far ahead of this node's clock: refused for now
    /// (the clocks may disagree), not held against the sender.
    #[error(
        "block {index}: timestamp is {ahead} s ahead of this node's clock, more than the {max} s allowed"
    )]
    TimeTooFarAhead { index: u64, ahead: i128, max: u64 },
}

impl ChainError {
    /// The index of the block the error is about, where there is one.
    pub fn index(&self) -> Option<u64> {
        match self {
            ChainError::Empty => None,
            ChainError::WrongGenesis { .. } => Some(0),
            ChainError::BadIndex { expected, .. } => Some(*expected),
            ChainError::BadPrevHash { index, .. }
            | ChainError::AboveTarget { index, .. }
            | ChainError::TimeTooEarly { index, .. }
            | ChainError::TimeNotSeconds { index, .. }
            | ChainError::TimeTooFarAhead { index, .. } => Some(*index),
            ChainError::Block(
                BlockError::BadHash { index, .. }
                | BlockError::BadProofOfWork { index, .. }
                | BlockError::TooLarge { index, .. },
            ) => Some(*index),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A network with an easy difficulty so tests mine in microseconds.
    pub(crate) fn test_network() -> Network {
        Network::new(
            Block::new(0, 1508895381, String::new(), "genesis".into(), 0),
            2,
        )
    }

    /// Mines the next block on `prev` the plain way.
    pub(crate) fn mine_on(prev: &Block, data: &str, difficulty: u32) -> Block {
        Template::next(prev, data.into(), 1_700_000_000, difficulty).solve_plainly()
    }

    /// A valid chain of `len` blocks whose data is tagged with `tag`.
    pub(crate) fn chain_of(network: &Network, len: usize, tag: &str) -> Vec<Block> {
        extend(network, vec![network.genesis.clone()], len, tag)
    }

    /// A chain of two full segments and a few blocks more, mined once for
    /// every test that needs a long one.
    pub(crate) fn long_chain() -> &'static [Block] {
        static CHAIN: std::sync::OnceLock<Vec<Block>> = std::sync::OnceLock::new();
        CHAIN.get_or_init(|| chain_of(&test_network(), SEGMENT_BLOCKS * 2 + 100, "long"))
    }

    /// `blocks` grown to `len` blocks whose data is tagged with `tag`.
    pub(crate) fn extend(
        network: &Network,
        mut blocks: Vec<Block>,
        len: usize,
        tag: &str,
    ) -> Vec<Block> {
        while blocks.len() < len {
            let next = mine_on(
                blocks.last().unwrap(),
                &format!("{tag} {}", blocks.len()),
                network.difficulty,
            );
            blocks.push(next);
        }
        blocks
    }

    /// An adaptive network aiming at a block every `seconds`, retargeted
    /// every `window` blocks, with the test network's easy limit.
    pub(crate) fn adaptive_network(seconds: u64, window: u64) -> Network {
        Network {
            kind: Kind::Adaptive {
                target_block_seconds: seconds,
                retarget_window: window,
            },
            ..test_network()
        }
    }

    /// `blocks` grown by one block per gap, each `gap` seconds after the one
    /// before, meeting the targets the rules give.
    pub(crate) fn extend_timed(
        network: &Network,
        mut blocks: Vec<Block>,
        gaps: &[u128],
        tag: &str,
    ) -> Vec<Block> {
        let mut cursor = Cursor::genesis(network);
        for block in &blocks[1..] {
            cursor.advance(block, network);
        }
        for gap in gaps {
            let prev = blocks.last().unwrap();
            let block = Template::with_target(
                prev,
                format!("{tag} {}", blocks.len()),
                prev.timestamp + gap,
                cursor.next_target(network),
            )
            .solve_plainly();
            cursor.step(&block, network, Clock::Stored).unwrap();
            blocks.push(block);
        }
        blocks
    }

    #[test]
    fn a_mined_chain_is_valid_and_indexed() {
        let network = test_network();
        let chain = Chain::from_blocks(chain_of(&network, 5, "a"), &network).unwrap();
        assert_eq!(chain.len(), 5);
        assert_eq!(chain.tip().index, 4);
        let third = chain.get(3).unwrap();
        assert_eq!(chain.by_hash(&third.hash), Some(third.clone()));
        assert_eq!(chain.by_hash(&BlockHash([7; 32])), None);
        assert_eq!(chain.get(5), None);
    }

    #[test]
    fn an_empty_chain_is_invalid() {
        assert_eq!(
            Chain::from_blocks(vec![], &test_network()).unwrap_err(),
            ChainError::Empty
        );
    }

    #[test]
    fn another_genesis_is_invalid() {
        let network = test_network();
        let mut blocks = chain_of(&network, 3, "a");
        blocks[0] = Block::new(0, 1508895381, String::new(), "other genesis".into(), 0);
        assert!(matches!(
            Chain::from_blocks(blocks, &network),
            Err(ChainError::WrongGenesis { .. })
        ));
    }

    #[test]
    fn a_skipped_or_repeated_index_is_invalid() {
        let network = test_network();
        let mut blocks = chain_of(&network, 4, "a");
        blocks.remove(2);
        assert_eq!(
            Chain::from_blocks(blocks, &network).unwrap_err(),
            ChainError::BadIndex {
                expected: 2,
                got: 3
            }
        );
        let mut blocks = chain_of(&network, 3, "a");
        blocks.push(blocks[2].clone());
        assert_eq!(
            Chain::from_blocks(blocks, &network).unwrap_err(),
            ChainError::BadIndex {
                expected: 3,
                got: 2
            }
        );
    }

    #[test]
    fn a_broken_link_is_invalid() {
        let network = test_network();
        let mut blocks = chain_of(&network, 3, "a");
        let other = chain_of(&network, 3, "b");
        blocks.push(mine_on(&other[2], "x", network.difficulty));
        let err = Chain::from_blocks(blocks, &network).unwrap_err();
        assert!(
            matches!(err, ChainError::BadPrevHash { index: 3, .. }),
            "{err}"
        );
        assert_eq!(err.index(), Some(3));
    }

    #[test]
    fn a_tampered_block_is_a_bad_hash() {
        let network = test_network();
        let mut blocks = chain_of(&network, 4, "a");
        blocks[2].data = "tampered".into();
        assert!(matches!(
            Chain::from_blocks(blocks, &network).unwrap_err(),
            ChainError::Block(BlockError::BadHash { index: 2, .. })
        ));
    }

    #[test]
    fn too_little_work_is_invalid() {
        let network = test_network();
        let mut blocks = chain_of(&network, 2, "a");
        let lazy = (0..)
            .map(|n| Block::new(2, 1, blocks[1].hash.to_string(), "lazy".into(), n))
            .find(|b| !b.hash.meets_difficulty(1))
            .unwrap();
        blocks.push(lazy);
        assert!(matches!(
            Chain::from_blocks(blocks, &network).unwrap_err(),
            ChainError::Block(BlockError::BadProofOfWork {
                index: 2,
                difficulty: 2,
                ..
            })
        ));
    }

    #[test]
    fn a_block_over_the_network_s_size_limit_is_invalid() {
        let network = Network {
            max_block_bytes: 300,
            ..test_network()
        };
        let mut blocks = chain_of(&network, 2, "a");
        blocks.push(mine_on(&blocks[1], &"x".repeat(200), network.difficulty));
        let bytes = blocks[2].json_len() as u64;
        assert!(bytes > 300, "{bytes}");
        assert_eq!(
            Chain::from_blocks(blocks, &network).unwrap_err(),
            ChainError::Block(BlockError::TooLarge {
                index: 2,
                bytes,
                max: 300
            })
        );
    }

    #[test]
    fn push_validates_against_the_tip() {
        let network = test_network();
        let mut chain = Chain::genesis(&network);
        let blocks = chain_of(&network, 3, "a");
        assert!(chain.push(blocks[2].clone(), &network).is_err());
        chain.push(blocks[1].clone(), &network).unwrap();
        chain.push(blocks[2].clone(), &network).unwrap();
        assert_eq!(chain.len(), 3);
    }

    #[test]
    fn in_a_fixed_network_only_a_longer_chain_replaces_the_current_one() {
        let network = test_network();
        let ours = Chain::from_blocks(chain_of(&network, 4, "a"), &network).unwrap();
        let same_length = Chain::from_blocks(chain_of(&network, 4, "b"), &network).unwrap();
        let longer = Chain::from_blocks(chain_of(&network, 5, "b"), &network).unwrap();
        assert!(!better_chain(ours.work(), same_length.work()));
        assert!(better_chain(ours.work(), longer.work()));
        assert!(!better_chain(longer.work(), ours.work()));
        assert_eq!(ours.work(), Work::times(Work::of(&network.pow_limit()), 4));
        assert_eq!(ours.common_prefix(&longer.blocks()), 1);
        assert_eq!(same_length.common_prefix(&longer.blocks()), 4);
    }

    #[test]
    fn a_shared_prefix_stops_at_a_hole() {
        let network = test_network();
        let ours = Chain::from_blocks(chain_of(&network, 6, "a"), &network).unwrap();
        let mut holed = ours.blocks();
        holed.remove(2);
        // Blocks 3, 4 and 5 are ours too, but not at their positions.
        assert_eq!(ours.common_prefix(&holed), 2);
        assert_eq!(ours.common_prefix(&ours.blocks()), 6);
    }
}
