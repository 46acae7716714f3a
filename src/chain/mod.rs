//! A chain is an ordered list of blocks that starts at the network's genesis
//! block, where each block links to the one before by index and hash and
//! carries proof of work.
//!
//! This module owns validation and [`better_chain`], the one rule every
//! place that compares chains calls (start-up load, sync, announcements). It
//! does not read files or talk to peers.

mod blocks;

pub use blocks::{Chain, ChainJson, SEGMENT_BLOCKS, Segment};

use crate::block::{Block, BlockError, BlockHash};

/// The settings every node of one network must share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// Block 0 of every chain of this network.
    pub genesis: Block,
    /// How many leading zero hex digits a block's hash needs (the genesis
    /// block is exempt).
    pub difficulty: u32,
    /// The largest block, in bytes of its compact JSON; the same limit
    /// applies to block files, synced blocks, announcements and mining.
    pub max_block_bytes: u64,
    /// The largest data item a node takes, in bytes of UTF-8.
    pub max_item_bytes: u64,
}

/// The default largest block: 1 MiB of JSON.
pub const DEFAULT_MAX_BLOCK_BYTES: u64 = 1024 * 1024;
/// The default largest data item: 4 KiB.
pub const DEFAULT_MAX_ITEM_BYTES: u64 = 4096;

impl Network {
    /// A network with the default block size limit.
    pub fn new(genesis: Block, difficulty: u32) -> Network {
        Network {
            genesis,
            difficulty,
            max_block_bytes: DEFAULT_MAX_BLOCK_BYTES,
            max_item_bytes: DEFAULT_MAX_ITEM_BYTES,
        }
    }
}

/// The rule for choosing between chains, given their lengths (blocks, the
/// genesis included): a candidate wins only when it is longer, so that on a
/// tie every node keeps the chain it had first.
pub fn better_chain(current_len: u64, candidate_len: u64) -> bool {
    candidate_len > current_len
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

/// Checks that `next` may follow `prev`: index, link, size, hash and
/// proof of work.
pub fn check_next(prev: &Block, next: &Block, network: &Network) -> Result<(), ChainError> {
    let expected_index = prev.index + 1;
    if next.index != expected_index {
        return Err(ChainError::BadIndex {
            expected: expected_index,
            got: next.index,
        });
    }
    if next.prev_hash != prev.hash.to_string() {
        return Err(ChainError::BadPrevHash {
            index: next.index,
            expected: prev.hash,
            got: next.prev_hash.chars().take(80).collect(),
        });
    }
    check_block(next, network)
}

/// Checks a non-genesis block on its own: its size, its hash and its proof
/// of work. A block that fails here is invalid anywhere, whatever chain it
/// is offered for.
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
}

impl ChainError {
    /// The index of the block the error is about, where there is one.
    pub fn index(&self) -> Option<u64> {
        match self {
            ChainError::Empty => None,
            ChainError::WrongGenesis { .. } => Some(0),
            ChainError::BadIndex { expected, .. } => Some(*expected),
            ChainError::BadPrevHash { index, .. } => Some(*index),
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
    use crate::miner::Template;

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
    fn only_a_longer_chain_replaces_the_current_one() {
        let network = test_network();
        let ours = Chain::from_blocks(chain_of(&network, 4, "a"), &network).unwrap();
        let same_length = Chain::from_blocks(chain_of(&network, 4, "b"), &network).unwrap();
        let longer = Chain::from_blocks(chain_of(&network, 5, "b"), &network).unwrap();
        assert!(!better_chain(ours.len(), same_length.len()));
        assert!(better_chain(ours.len(), longer.len()));
        assert!(!better_chain(longer.len(), ours.len()));
        assert_eq!(ours.common_prefix(&longer.blocks()), 1);
        assert_eq!(same_length.common_prefix(&longer.blocks()), 4);
    }
}
