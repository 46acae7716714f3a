//! The chain state: the node's one chain in memory, always equal to what the
//! chaindata folder holds, and the one path by which it changes.
//!
//! [`ChainState`] is a cheap `Clone` handle. Every change (a block this
//! node mined, one a peer announced, a branch synced from a peer) goes
//! through one commit path under one writer lock: checked against the chain
//! it really extends, compared with [`better_chain`], written to disk, and
//! only then made visible and published on the tip channel, so nothing is
//! served that a crash could take back. Readers take what they need under a
//! short lock that is never held across I/O or `.await`.
//!
//! It does not talk to peers or decide whom to believe ([`crate::sync`]),
//! and knows nothing of HTTP ([`crate::api`]).

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::block::{Block, BlockHash};
use crate::chain::{
    Chain, ChainError, ChainJson, Clock, Cursor, Network, Template, better_chain, check_block,
};
use crate::events::{BlockRef, Event, Events};
use crate::item::{IdPrefix, ItemId, data_for, items_in};
use crate::peers::PeerUrl;
use crate::pool::{Pool, PoolError, PoolLimits, Submitter};
use crate::pow::Work;
use crate::protocol::ItemStatus;
use crate::signed::{self, AuthorKey};
use crate::store::{SetAside, Store, StoreError};
mod log;
mod records;

use crate::tree::{Off, Records, SIDE_BLOCKS_KEPT, SideBlock};
use log::{Retarget, log_commit, log_retargets};
use records::{side_work, sighting_now};

/// Handle to the node's chain.
#[derive(Clone)]
pub struct ChainState {
    shared: Arc<Shared>,
}

struct Shared {
    /// Genesis and difficulty every chain must match.
    network: Network,
    /// The chaindata folder; the only place blocks are persisted.
    store: Store,
    /// Data items waiting for a block; commits take them out and put them
    /// back.
    pool: Pool,
    /// The chain and what is derived from it.
    current: Mutex<Current>,
    /// Held for the whole of a change (check, write, publish) so that each
    /// change is checked against the chain it really extends.
    writer: Mutex<()>,
    /// Publishes every new tip (the miner restarts on it, peers hear of it).
    tip: watch::Sender<Tip>,
    /// Set when the chaindata was left part-way through a switch of
    /// branches that could not be finished: memory and disk disagree until
    /// a restart, so nothing more is committed or served.
    failure: Mutex<Option<String>>,
    /// Cancelled with `failure`, so the daemon can stop.
    failed: CancellationToken,
    /// Where every change of tip and of the pool is told.
    events: Events,
    /// When and from where recent blocks were first seen, and the side
    /// branches known: what the block tree shows.
    records: Mutex<Records>,
    /// Switches of branch since start, and the blocks they took out.
    reorgs: AtomicU64,
    orphaned: AtomicU64,
}

struct Current {
    chain: Chain,
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
    Announced(Option<PeerUrl>),
    /// Fetched from a peer while syncing.
    Synced(PeerUrl),
}

impl Source {
    /// Whether the change came from `peer`, which need not hear of it again.
    pub fn is_from(&self, peer: &PeerUrl) -> bool {
        match self {
            Source::Announced(Some(url)) | Source::Synced(url) => url == peer,
            _ => false,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Loaded => f.write_str("chaindata"),
            Source::Mined => f.write_str("this node"),
            Source::Announced(Some(peer)) => write!(f, "{peer}"),
            Source::Announced(None) => f.write_str("a node that gave no address"),
            Source::Synced(peer) => write!(f, "{peer}"),
        }
    }
}

/// What [`ChainState::add_block`] did with a block.
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

/// What [`ChainState::submit`] did with an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// It is new: it waits for a block now.
    New,
    /// It was waiting already, or a block carries it.
    Known,
}

/// What [`ChainState::adopt_branch`] did.
#[derive(Debug)]
pub enum Adoption {
    /// The branch made a better chain and replaced ours from the fork on;
    /// these blocks left the chain.
    Switched { orphaned: Vec<Block> },
    /// The branch would not make a better chain; nothing changed.
    NotBetter,
}

/// Why a block or branch was not taken.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Invalid(#[from] ChainError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The chain state stopped taking changes after a storage failure.
    #[error("the node is stopping: {0}")]
    Stopped(String),
    /// The items a switch of branches puts back could not be made durable
    /// first, so the switch was not made.
    #[error("cannot keep the data items the switch puts back: {0}")]
    Pool(#[from] PoolError),
}

impl ChainState {
    /// Loads the chain from `chaindata` (blocking: reads every block file).
    /// Also returns the files set aside because they are not part of it.
    pub fn open(
        network: Network,
        chaindata: &Path,
        pool_limits: PoolLimits,
    ) -> Result<(ChainState, Vec<SetAside>), StoreError> {
        let store = Store::open(chaindata)?;
        let loaded = store.load(&network)?;
        let chain = loaded.chain;
        // Items saved as waiting that a block carries by now wait no more.
        let pool = Pool::open(Pool::path_beside(store.dir()), pool_limits);
        let confirmed: Vec<ItemId> = pool
            .pending()
            .iter()
            .map(|p| p.id)
            .filter(|id| chain.item_block(id).is_some())
            .collect();
        pool.remove(&confirmed);
        drop_refused_signatures(&pool, &network);
        let mut records = Records::default();
        let max_bytes = network.max_block_text_bytes();
        // Side blocks whose bodies are on disk: the ones that left the
        // chain, then the lost ones (the newest of each kept, up to the
        // bounds; a lost one's file the record no longer keeps goes).
        let orphans = (store
            .recent_orphans(SIDE_BLOCKS_KEPT, max_bytes)
            .into_iter())
        .map(|(block, file)| (block, file, Off::LeftTheChain));
        let lost = (store.side_blocks(max_bytes).into_iter())
            .map(|(block, file)| (block, file, Off::Lost));
        for (block, file, off) in orphans.chain(lost) {
            if chain.by_hash(&block.hash).is_some() {
                store.drop_side(&file);
                continue;
            }
            let work = side_work(&chain, &network, &block);
            for dropped in records.side.insert(SideBlock::of(&block, file, work, off)) {
                store.drop_side(&dropped.file);
            }
        }
        let (tip, _) = watch::channel(Tip {
            block: chain.tip().clone(),
            source: Source::Loaded,
        });
        let state = ChainState {
            shared: Arc::new(Shared {
                network,
                store,
                pool,
                current: Mutex::new(Current { chain }),
                writer: Mutex::new(()),
                tip,
                failure: Mutex::new(None),
                failed: CancellationToken::new(),
                events: Events::new(),
                records: Mutex::new(records),
                reorgs: AtomicU64::new(0),
                orphaned: AtomicU64::new(0),
            }),
        };
        Ok((state, loaded.set_aside))
    }

    /// The network this chain belongs to.
    pub fn network(&self) -> &Network {
        &self.shared.network
    }

    /// The chaindata folder.
    pub fn chaindata(&self) -> &Path {
        self.shared.store.dir()
    }

    /// The current tip block.
    pub fn tip(&self) -> Block {
        self.shared.tip.borrow().block.clone()
    }

    /// Watches the tip.
    pub fn subscribe(&self) -> watch::Receiver<Tip> {
        self.shared.tip.subscribe()
    }

    /// The number of blocks, the genesis included.
    pub fn len(&self) -> u64 {
        self.current().chain.len()
    }

    /// Always false: a chain holds at least its genesis block.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The work of the chain.
    pub fn work(&self) -> Work {
        self.current().chain.work()
    }

    /// The tip and the chain's work, read at one moment (apart, a chain
    /// that grew between the reads could look longer but lighter).
    pub fn tip_and_work(&self) -> (Block, Work) {
        let current = self.current();
        (current.chain.tip().clone(), current.chain.work())
    }

    /// The cursor on the tip: what the next block must meet.
    pub fn tip_cursor(&self) -> Cursor {
        self.current().chain.tip_cursor().clone()
    }

    /// The cursor on block `index`, to check a branch that leaves the chain
    /// after it.
    pub fn cursor_at(&self, index: u64) -> Option<Cursor> {
        self.current().chain.cursor_at(index)
    }

    /// The mean time between the last `span` blocks, in seconds, over
    /// the intervals that mean something: never the one after the genesis
    /// block (made when the network was, maybe years ago); those since
    /// `started` (this node's start) once there are [`SINCE_START`] of them,
    /// because an earlier interval may hold a gap while this node, maybe
    /// the only miner, was down; until then the earlier ones too, but not
    /// the one that spans `started`. None when no such interval is left.
    pub fn mean_block_seconds(&self, span: u64, started: i64) -> Option<f64> {
        /// Intervals since the start that make a mean on their own.
        const SINCE_START: u64 = 3;
        let current = self.current();
        let tip = current.chain.tip().index;
        let first = tip.saturating_sub(span).max(1);
        let mut previous = current.chain.get(first)?.epoch_seconds()?;
        // In i128: timestamps from files and peers can be anything an i64
        // holds, and their difference need not fit one.
        let (mut since, mut all) = ((0i128, 0u64), (0i128, 0u64));
        for index in first + 1..=tip {
            let at = current.chain.get(index)?.epoch_seconds()?;
            let interval = i128::from(at) - i128::from(previous);
            if started <= previous {
                since = (since.0 + interval, since.1 + 1);
            }
            if !(previous < started && started <= at) {
                all = (all.0 + interval, all.1 + 1);
            }
            previous = at;
        }
        let (total, intervals) = if since.1 >= SINCE_START { since } else { all };
        (intervals > 0).then(|| total as f64 / intervals as f64)
    }

    /// The block at `index`.
    pub fn block(&self, index: u64) -> Option<Block> {
        self.current().chain.get(index)
    }

    /// The hash of the block at `index`.
    pub fn hash_at(&self, index: u64) -> Option<BlockHash> {
        self.current().chain.hash_at(index)
    }

    /// The block with `hash`.
    pub fn block_by_hash(&self, hash: &BlockHash) -> Option<Block> {
        self.current().chain.by_hash(hash)
    }

    /// A `/blocks` page: a JSON array of up to `limit` blocks from `from`
    /// on, no larger than `max_bytes` plus one block.
    pub fn page_json(&self, from: u64, limit: u64, max_bytes: usize) -> Vec<u8> {
        self.current().chain.page_json(from, limit, max_bytes)
    }

    /// `/blockchain.json` as it is now, to stream: cheap (it shares the
    /// chain's full segments).
    pub fn chain_json(&self) -> ChainJson {
        self.current().chain.json_snapshot()
    }

    /// How many blocks at the start of `blocks` are the same as ours (at
    /// least 1 when `blocks` starts with our genesis block).
    pub fn common_prefix(&self, blocks: &[Block]) -> u64 {
        self.current().chain.common_prefix(blocks)
    }

    /// Adds one block if it extends the tip: checked, written to disk, then
    /// served and published. Blocking (writes a file).
    pub fn add_block(&self, block: Block, source: Source) -> Result<Added, CommitError> {
        let _writer = self.writer();
        let tip = {
            let current = self.current();
            if current.chain.by_hash(&block.hash).as_ref() == Some(&block) {
                return Ok(Added::Known);
            }
            current.chain.tip().clone()
        };
        if !block.prev_hash.links_to(&tip.hash) {
            if block.index == 0 {
                return Err(ChainError::WrongGenesis {
                    expected: self.shared.network.genesis.hash,
                    got: block.hash,
                }
                .into());
            }
            check_block(&block, &self.shared.network)?;
            let ahead = block.index > tip.index;
            // A block ahead of our tip is not a side block yet: the sync it
            // starts decides. Either way, this is when it was first seen.
            if ahead {
                let sighting = sighting_now(&source);
                self.records().sightings.record(block.hash, sighting);
            } else {
                self.remember_side(vec![(block, None)], &source);
            }
            return Ok(Added::NotOnTip { ahead });
        }
        match self.commit(tip.index + 1, vec![block], source)? {
            Adoption::Switched { .. } => Ok(Added::Accepted),
            Adoption::NotBetter => unreachable!("a block on the tip adds work"),
        }
    }

    /// Replaces the blocks from index `fork` on with `incoming` if that makes
    /// a better valid chain. Only the new blocks are validated, against our
    /// block `fork - 1`, so the cost grows with the branch, not the chain.
    pub async fn adopt_branch(
        &self,
        fork: u64,
        incoming: Vec<Block>,
        source: Source,
    ) -> Result<Adoption, CommitError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let _writer = state.writer();
            state.commit(fork, incoming, source)
        })
        .await
        .expect("adoption does not panic")
    }

    /// The pool of data items waiting for a block.
    pub fn pool(&self) -> &Pool {
        &self.shared.pool
    }

    /// Takes a data item: waiting in the pool, unless a block of the chain
    /// carries it already. A signed item whose signature a check refuses is
    /// not taken (the error says which check): a node never mines one.
    pub fn submit(&self, text: &str, from: Submitter) -> Result<(ItemId, Submitted), PoolError> {
        let id = ItemId::of(text);
        if self.current().chain.item_block(&id).is_some() || self.shared.pool.contains(&id) {
            return Ok((id, Submitted::Known));
        }
        if let Some(error) = signed::check(text, &self.shared.network.genesis.hash).error() {
            return Err(PoolError::Signature(error.clone()));
        }
        let (id, new) = self.shared.pool.add(text, from)?;
        if new {
            self.shared.events.publish(Event::DataAccepted { id });
        }
        Ok((
            id,
            if new {
                Submitted::New
            } else {
                Submitted::Known
            },
        ))
    }

    /// Where item `id` is.
    pub fn item(&self, id: &ItemId) -> ItemStatus {
        let current = self.current();
        if let Some(index) = current.chain.item_block(id) {
            let tip = current.chain.tip().index;
            return ItemStatus::Confirmed {
                block: index,
                hash: current.chain.hash_at(index).expect("within the chain"),
                confirmations: tip - index + 1,
            };
        }
        drop(current);
        if self.shared.pool.contains(id) {
            ItemStatus::Pending
        } else {
            ItemStatus::Unknown
        }
    }

    /// The text of item `id`, in the chain or waiting.
    pub fn item_text(&self, id: &ItemId) -> Option<String> {
        let current = self.current();
        if let Some(index) = current.chain.item_block(id) {
            let block = current.chain.get(index)?;
            drop(current);
            return (items_in(&block.data)?.into_iter()).find(|text| ItemId::of(text) == *id);
        }
        drop(current);
        self.shared.pool.text(id).map(|text| text.to_string())
    }

    /// The items that name `author` as signer (verified or not): waiting
    /// ones first, then those in blocks, the newest first; at most `limit`,
    /// and whether there are more. Each with its text and where it is.
    pub fn authored_by(
        &self,
        author: &AuthorKey,
        limit: usize,
    ) -> (Vec<(ItemId, String, ItemStatus)>, bool) {
        let mut found: Vec<(ItemId, String, ItemStatus)> = Vec::new();
        for waiting in self.shared.pool.pending().iter().rev() {
            if found.len() > limit {
                break;
            }
            if let Some(text) = self.shared.pool.text(&waiting.id)
                && signed::author_of(&text) == Some(*author)
            {
                found.push((waiting.id, text.to_string(), ItemStatus::Pending));
            }
        }
        let wanted = (limit + 1).saturating_sub(found.len());
        // The index names each item's block: read it once, under one lock.
        let current = self.current();
        let chain = &current.chain;
        let tip = chain.tip().index;
        for (index, id) in chain.authored_by(author, wanted) {
            let (Some(block), Some(hash)) = (chain.get(index), chain.hash_at(index)) else {
                continue;
            };
            let text = (items_in(&block.data).into_iter().flatten()).find(|t| ItemId::of(t) == id);
            if let Some(text) = text {
                let status = ItemStatus::Confirmed {
                    block: index,
                    hash,
                    confirmations: tip - index + 1,
                };
                found.push((id, text, status));
            }
        }
        drop(current);
        let more = found.len() > limit;
        found.truncate(limit);
        (found, more)
    }

    /// Up to `limit` ids of items, in the chain or waiting, that start
    /// with `prefix` (one means the prefix names an item).
    pub fn items_starting(&self, prefix: &IdPrefix, limit: usize) -> Vec<ItemId> {
        let mut ids: Vec<ItemId> = (self.current().chain.items_starting(prefix, limit))
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        for id in self.shared.pool.ids_starting(prefix, limit) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids.truncate(limit);
        ids
    }

    /// The next block to mine on the tip, all but its nonce (see
    /// [`Template::on`] for its target and timestamp): it carries the
    /// oldest waiting items that fit in a block, or `note` when none waits.
    pub fn next_template(&self, note: &str, now: u128) -> Template {
        let network = &self.shared.network;
        let current = self.current();
        let cursor = current.chain.tip_cursor();
        let room = (network.max_block_bytes as usize + 1)
            .saturating_sub(Block::widest_json_len(cursor.index + 1, "[]"));
        let items = self
            .shared
            .pool
            .select(room, |id| current.chain.item_block(id).is_some());
        let data = if items.is_empty() {
            note.to_string()
        } else {
            data_for(&items)
        };
        Template::on(cursor, data, now, network)
    }

    /// Why the chain state stopped taking changes, if it did.
    pub fn failure(&self) -> Option<String> {
        self.shared.failure.lock().expect("failure lock").clone()
    }

    /// Resolves when the chain state stops taking changes (see
    /// [`ChainState::failure`]).
    pub async fn failed(&self) {
        self.shared.failed.cancelled().await
    }

    /// The one commit path. The caller holds the writer lock.
    fn commit(
        &self,
        fork: u64,
        incoming: Vec<Block>,
        source: Source,
    ) -> Result<Adoption, CommitError> {
        if let Some(failure) = self.failure() {
            return Err(CommitError::Stopped(failure));
        }
        let network = &self.shared.network;
        let (base, mut cursor, current_work, current_len) = {
            let current = self.current();
            let chain = &current.chain;
            // A branch starts right after a block we hold, and never
            // replaces the genesis block.
            if fork == 0 || fork > chain.len() {
                return Err(ChainError::BadIndex {
                    expected: chain.len(),
                    got: fork,
                }
                .into());
            }
            if incoming.is_empty() {
                return Ok(Adoption::NotBetter);
            }
            let base = chain.get(fork - 1).expect("fork is within the chain");
            let cursor = chain.cursor_at(fork - 1).expect("fork is within the chain");
            (base, cursor, chain.work(), chain.len())
        };
        let clock = Clock::now();
        let mut retargets = Vec::new();
        let mut works = Vec::with_capacity(incoming.len());
        for block in &incoming {
            let before = (cursor.target, cursor.window_mean_seconds(network));
            cursor.step(block, network, clock)?;
            works.push(Work::of(&cursor.target));
            if cursor.target != before.0 {
                retargets.push(Retarget {
                    index: block.index,
                    old: before.0,
                    new: cursor.target,
                    mean_seconds: before.1,
                });
            }
        }
        if !better_chain(current_work, cursor.work) {
            if fork + incoming.len() as u64 > current_len {
                info!(
                    "refused the chain of {source}: {} blocks after block {}, more than our {}, but less work ({} against our {})",
                    incoming.len(),
                    base.index,
                    current_len - fork,
                    cursor.work,
                    current_work
                );
            }
            let lost = incoming.into_iter().zip(works.into_iter().map(Some));
            self.remember_side(lost.collect(), &source);
            return Ok(Adoption::NotBetter);
        }
        // The writer lock keeps the chain as it was read above.
        let (outgoing, outgoing_works): (Vec<Block>, Vec<Work>) = {
            let current = self.current();
            (fork..current_len)
                .map(|i| {
                    let block = current.chain.get(i).expect("within the chain");
                    (block, Work::of(&current.chain.target_at(i)))
                })
                .unzip()
        };
        let carried: Vec<ItemId> = incoming
            .iter()
            .flat_map(|block| items_in(&block.data).unwrap_or_default())
            .map(|text| ItemId::of(&text))
            .collect();
        // Items of blocks that leave the chain wait again, unless the new
        // branch carries them too (or a block below the fork does): on
        // disk before the switch, so a crash right after it loses none.
        let returned: Vec<String> = if outgoing.is_empty() {
            Vec::new()
        } else {
            let current = self.current();
            let carried: std::collections::HashSet<&ItemId> = carried.iter().collect();
            outgoing
                .iter()
                .flat_map(|block| items_in(&block.data).unwrap_or_default())
                .filter(|text| {
                    let id = ItemId::of(text);
                    !carried.contains(&id)
                        && current
                            .chain
                            .item_block(&id)
                            .is_none_or(|index| index >= fork)
                })
                .collect()
        };
        // Whoever mined them, no item with a refused signature waits here.
        let returned = admissible(returned, &network.genesis.hash);
        self.shared.pool.journal_returning(&returned)?;
        let written = if outgoing.is_empty() {
            self.shared.store.append_all(&incoming)
        } else {
            self.shared.store.switch(&outgoing, &incoming)
        };
        if let Err(error) = written {
            if matches!(error, StoreError::SwitchInterrupted { .. }) {
                tracing::error!("{error}");
                *self.shared.failure.lock().expect("failure lock") = Some(error.to_string());
                self.shared.failed.cancel();
            }
            return Err(error.into());
        }
        let tip = incoming.last().expect("better, so not empty").clone();
        log_commit(&base, &incoming, &outgoing, &source);
        log_retargets(&retargets, network, &source);
        let added = incoming.len() as u64;
        self.remember_commit(&incoming, &outgoing, outgoing_works, &source);
        {
            let mut current = self.current();
            current.chain.truncate(fork);
            for block in incoming {
                current.chain.push_trusted(block);
            }
        }
        self.shared.pool.remove(&carried);
        if !returned.is_empty() {
            info!(
                "{} data items of blocks that left the chain wait again",
                returned.len()
            );
            self.shared.pool.put_back(returned);
        }
        self.publish_commit(&base, &tip, added, &outgoing, &carried, &source);
        self.shared.tip.send_replace(Tip { block: tip, source });
        Ok(Adoption::Switched { orphaned: outgoing })
    }

    /// Tells listeners of a commit: a reorg or a longer tip, then the items
    /// that blocks carry now. Counts reorgs and orphans for the metrics.
    fn publish_commit(
        &self,
        base: &Block,
        tip: &Block,
        added: u64,
        outgoing: &[Block],
        carried: &[ItemId],
        source: &Source,
    ) {
        let events = &self.shared.events;
        if let Some(old_tip) = outgoing.last() {
            self.shared.reorgs.fetch_add(1, Ordering::Relaxed);
            self.shared
                .orphaned
                .fetch_add(outgoing.len() as u64, Ordering::Relaxed);
            events.publish(Event::Reorg {
                depth: outgoing.len() as u64,
                fork: base.index,
                old_tip: old_tip.into(),
                new_tip: tip.into(),
                source: source.to_string(),
            });
        } else {
            events.publish(Event::Tip {
                tip: BlockRef::from(tip),
                added,
                source: source.to_string(),
            });
        }
        let current = self.current();
        for id in carried {
            if let Some(block) = current.chain.item_block(id) {
                events.publish(Event::DataConfirmed { id: *id, block });
            }
        }
    }

    /// Where the node's changes are told.
    pub fn events(&self) -> &Events {
        &self.shared.events
    }

    /// Switches of branch since start.
    pub fn reorgs(&self) -> u64 {
        self.shared.reorgs.load(Ordering::Relaxed)
    }

    /// Blocks taken out of the chain by switches of branch since start.
    pub fn orphaned(&self) -> u64 {
        self.shared.orphaned.load(Ordering::Relaxed)
    }

    fn current(&self) -> MutexGuard<'_, Current> {
        self.shared.current.lock().expect("chain state lock")
    }

    fn writer(&self) -> MutexGuard<'_, ()> {
        self.shared.writer.lock().expect("writer lock")
    }
}

/// `texts` without the signed items whose signatures a check refuses (in
/// one batch: a reorganisation may return many).
fn admissible(texts: Vec<String>, genesis: &crate::block::BlockHash) -> Vec<String> {
    if texts.is_empty() {
        return texts;
    }
    let verdicts = signed::check_all(&texts, genesis);
    (texts.into_iter().zip(verdicts))
        .filter(|(_, verdict)| verdict.error().is_none())
        .map(|(text, _)| text)
        .collect()
}

/// Drops from a pool just opened the items whose signatures a check
/// refuses (a pool file of a version that did not check them, or edited by
/// hand): a node never mines one.
fn drop_refused_signatures(pool: &Pool, network: &Network) {
    let waiting: Vec<(ItemId, std::sync::Arc<str>)> = (pool.pending().iter())
        .filter_map(|item| Some((item.id, pool.text(&item.id)?)))
        .collect();
    let texts: Vec<&str> = waiting.iter().map(|(_, text)| &**text).collect();
    let verdicts = signed::check_all(&texts, &network.genesis.hash);
    let refused: Vec<ItemId> = (waiting.iter().zip(verdicts))
        .filter(|(_, verdict)| verdict.error().is_some())
        .map(|((id, _), _)| *id)
        .collect();
    if !refused.is_empty() {
        warn!(
            "{} waiting data items dropped: their signatures do not verify",
            refused.len()
        );
        pool.remove(&refused);
    }
}
