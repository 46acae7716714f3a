//! Catching up with one peer: find where its chain leaves ours, fetch only
//! the blocks after that point, check them, and hand them to the chain
//! state, which adopts them if they make a better chain.
//!
//! Incremental, in the manner of Bitcoin Core's headers-first sync: given
//! the peer's `/status`, if it is ahead, find the fork point by probing its
//! blocks at heights that step back exponentially from our tip and then
//! bisecting; fetch the blocks after the fork page by page, checking each
//! against the one before. Once the fetched part makes a better chain it is
//! committed, and from then on every page as it arrives, so a long catch-up
//! shows progress and a crash keeps what was committed. A peer without
//! these endpoints (the original Python node) is synced through its whole
//! `/blockchain.json`.
//!
//! Where the blocks come from is a [`BlockSource`]: the peer's HTTP
//! `/blocks` pages ([`HttpSource`]), or, for a linked peer, headers then
//! bodies over the live links (`crate::gossip`'s). The checks, the commits
//! and the verdicts are the same whichever it is.
//!
//! This module decides what to believe of one peer. When to sync and with
//! whom is [`crate::gossip`]'s business; the HTTP requests are
//! [`crate::client`]'s.

use std::fmt;
use std::time::{Duration, Instant};

use crate::block::{Block, BlockHash};
use crate::chain::{ChainError, Clock, Network, better_chain};
use crate::client::{FetchError, PeerClient};
use crate::handshake::{HandshakeError, starts_with_genesis};
use crate::human::{duration_in_words, switch_in_words};
use crate::peers::score::Misbehaviour;
use crate::peers::{Failure, PeerUrl};
use crate::pow::{Kind, Work};
use crate::protocol::{MAX_PAGE, Status};
use crate::setting::Setting;
use crate::state::{Adoption, ChainState, CommitError, Source};
use crate::stats::CatchUp;

/// The safety net for lost announcements: every peer is synced this often.
pub const SYNC_INTERVAL: Setting<f64> = Setting {
    key: "sync_interval",
    help: "seconds between syncs with all peers",
    default: 5.0,
    range: Some(0.05..=86_400.0),
    unit: "a number of seconds",
};

/// The most blocks one sync may fetch; a longer claim is caught up in steps.
const MAX_BLOCKS_PER_SYNC: u64 = 1_000_000;

/// What syncing with one peer came to.
#[derive(Debug)]
pub enum Outcome {
    /// Its chain was better; we now have it (up to `height`).
    Adopted {
        height: u64,
        fetched: u64,
        /// What an original peer served.
        served: Option<Served>,
    },
    /// Its chain is not better than ours (`longer`: though it has more
    /// blocks, it has less work).
    NotBetter {
        height: u64,
        longer: bool,
        served: Option<Served>,
    },
    /// It could not be used.
    Failed(SyncError),
}

impl Outcome {
    /// The peer's height, when it was learned.
    pub fn height(&self) -> Option<u64> {
        match self {
            Outcome::Adopted { height, .. } | Outcome::NotBetter { height, .. } => Some(*height),
            Outcome::Failed(_) => None,
        }
    }

    /// What an original peer served, as it was.
    pub fn served(&self) -> Option<&Served> {
        match self {
            Outcome::Adopted { served, .. } | Outcome::NotBetter { served, .. } => served.as_ref(),
            Outcome::Failed(_) => None,
        }
    }
}

/// What a peer without `/status` (an original node) served as its chain,
/// as it is: which block it has at each index, and the indices it lacks
/// below its highest. The original saves each block it is sent under its
/// index and can drop one after answering 200, so its chain can have holes;
/// its blocks up to the first hole are its chain, the rest are kept only to
/// know what it has.
#[derive(Debug, Clone)]
pub struct Served {
    /// Its blocks' hashes by index, ascending (one per index: the first).
    hashes: Vec<(u64, BlockHash)>,
    /// How many of its blocks run from 0 with no hole.
    contiguous: u64,
}

/// Holes named in a log line; the rest are counted.
const HOLES_SHOWN: usize = 5;

impl Served {
    /// From blocks sorted by index.
    fn of(blocks: &[Block]) -> Served {
        let mut hashes: Vec<(u64, BlockHash)> = Vec::with_capacity(blocks.len());
        for block in blocks {
            if hashes.last().is_none_or(|(index, _)| *index < block.index) {
                hashes.push((block.index, block.hash));
            }
        }
        let contiguous = hashes
            .iter()
            .enumerate()
            .take_while(|(position, (index, _))| *position as u64 == *index)
            .count() as u64;
        Served { hashes, contiguous }
    }

    /// Its highest index.
    pub fn height(&self) -> u64 {
        self.hashes.last().map_or(0, |(index, _)| *index)
    }

    /// The hash of its block at `index`, if it has one.
    pub fn hash_at(&self, index: u64) -> Option<&BlockHash> {
        self.hashes
            .binary_search_by_key(&index, |(index, _)| *index)
            .ok()
            .map(|position| &self.hashes[position].1)
    }

    /// The indices below its highest that it has no block for.
    pub fn holes(&self) -> impl Iterator<Item = u64> + '_ {
        let mut next = 0;
        self.hashes.iter().flat_map(move |&(index, _)| {
            let gap = next..index;
            next = index + 1;
            gap
        })
    }

    /// How many holes it has.
    pub fn hole_count(&self) -> u64 {
        self.height() + 1 - self.hashes.len() as u64
    }
}

impl fmt::Display for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.hole_count();
        if count == 0 {
            return write!(f, "height {}", self.height());
        }
        let shown: Vec<String> = self
            .holes()
            .take(HOLES_SHOWN)
            .map(|i| i.to_string())
            .collect();
        let more = if count > HOLES_SHOWN as u64 {
            ", ..."
        } else {
            ""
        };
        write!(
            f,
            "highest block {}, with holes at {}{more} ({count} block{} missing; its chain ends at block {})",
            self.height(),
            shown.join(", "),
            if count == 1 { "" } else { "s" },
            self.contiguous.saturating_sub(1)
        )
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Adopted {
                height,
                fetched,
                served,
            } => {
                write!(
                    f,
                    "adopted its chain, height {height} ({fetched} blocks fetched)"
                )?;
                match served {
                    Some(served) if served.hole_count() > 0 => write!(f, "; it served {served}"),
                    _ => Ok(()),
                }
            }
            Outcome::NotBetter {
                served: Some(served),
                ..
            } => write!(f, "{served}, not ahead of ours"),
            Outcome::NotBetter {
                height,
                longer: true,
                ..
            } => write!(
                f,
                "height {height}, longer than ours but with less work: ours is kept"
            ),
            Outcome::NotBetter { height, .. } => write!(f, "height {height}, not ahead of ours"),
            Outcome::Failed(error) => error.fmt(f),
        }
    }
}

/// Why a sync with a peer brought nothing: a failure (the network, our
/// disk, a race with our own chain) or a verdict on what the peer served.
/// Only [`SyncError::misbehaviour`] says which of them no honest node
/// causes.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// What it served breaks the chain's rules.
    #[error("invalid chain: {0}")]
    Invalid(ChainError),
    /// Its answer to the handshake's questions is not ours to take (another
    /// network, no node id).
    #[error("{0}")]
    Handshake(HandshakeError),
    #[error("it is on another network: {0}")]
    OtherNetwork(String),
    /// An original's whole chain outgrew what we read of one
    /// (`max_response_bytes`): our limit, not its fault.
    #[error("its whole chain is larger than the {limit}-byte limit for one (max_response_bytes)")]
    ChainTooLarge { limit: u64 },
    #[error("changed its chain while we read it; trying again")]
    Raced,
    #[error("could not save its blocks: {0}")]
    Save(String),
    /// It claimed a chain with more work than the blocks it then served
    /// carry: its work cannot have gone down.
    #[error(
        "claimed a chain with work {claimed} at height {height}, but the blocks it served (up to height {served}) carry only {served_work}"
    )]
    Unfounded {
        height: u64,
        claimed: Work,
        served: u64,
        served_work: Work,
    },
    /// Over a live link: a body did not match the header it sent for it
    /// (the header's hash is the body's, so the header lied).
    #[error("{0}")]
    BrokenPromise(String),
    /// Over a live link: headers that do not make a chain after ours.
    #[error("its headers {0}")]
    BadHeaders(String),
    /// Over a live link: it went, or the blocks did not come in time.
    #[error("over the live link: {0}")]
    Link(String),
}

impl SyncError {
    /// What this says against the peer, if anything: only what no honest
    /// node does. Blocks that are invalid in themselves (bad hash, too
    /// little work, too large) or break the rules of their place (an
    /// easier target than the rules give, a timestamp not after the
    /// median), an answer too large or not of this protocol, a claim its
    /// own blocks contradict. A broken link may be a reorganisation during
    /// the sync, a block ahead of our clock may be our clock's fault, a
    /// dead or slow peer is only unlucky, and a chain that turned out not
    /// better than ours (ours moved on meanwhile) is no error at all.
    pub fn misbehaviour(&self) -> Option<Misbehaviour> {
        match self {
            SyncError::Invalid(
                ChainError::Block(_)
                | ChainError::AboveTarget { .. }
                | ChainError::TimeTooEarly { .. }
                | ChainError::TimeNotSeconds { .. },
            ) => Some(Misbehaviour::InvalidBlock),
            SyncError::Fetch(FetchError::TooLarge { .. }) => Some(Misbehaviour::Oversized),
            SyncError::Fetch(FetchError::Parse(_)) => Some(Misbehaviour::Garbled),
            SyncError::Unfounded { .. } => Some(Misbehaviour::Unfounded),
            SyncError::BrokenPromise(_) => Some(Misbehaviour::InvalidBlock),
            SyncError::BadHeaders(_) => Some(Misbehaviour::Garbled),
            _ => None,
        }
    }

    /// The way the sync failed, to tell a repeated failure from a new one.
    pub fn failure(&self) -> Failure {
        match self {
            SyncError::Fetch(error) => error.failure(),
            SyncError::Invalid(_) => Failure::InvalidChain,
            SyncError::Handshake(_) | SyncError::OtherNetwork(_) => Failure::OtherNetwork,
            SyncError::ChainTooLarge { .. } => Failure::TooLarge,
            SyncError::Raced => Failure::InvalidChain,
            SyncError::Save(_) => Failure::NotSaved,
            SyncError::Unfounded { .. } => Failure::Unfounded,
            SyncError::BrokenPromise(_) => Failure::InvalidChain,
            SyncError::BadHeaders(_) => Failure::InvalidAnswer,
            SyncError::Link(_) => Failure::TimedOut,
        }
    }
}

impl From<CommitError> for SyncError {
    fn from(error: CommitError) -> SyncError {
        match error {
            // Our chain changed under the sync: the branch no longer links.
            CommitError::Invalid(ChainError::BadPrevHash { .. } | ChainError::BadIndex { .. }) => {
                SyncError::Raced
            }
            CommitError::Invalid(error) => SyncError::Invalid(error),
            CommitError::Store(error) => SyncError::Save(error.to_string()),
            CommitError::Stopped(reason) => SyncError::Save(reason),
            CommitError::Pool(error) => SyncError::Save(error.to_string()),
        }
    }
}

/// What a catch-up fetches from: where the peer's chain leaves ours, then
/// the blocks after that point, in order.
pub trait BlockSource: Send + Sync {
    /// The index of the first block after the prefix our chain shares
    /// with the peer's (at least 1: the genesis block is shared), looking
    /// no higher than `top` (the lower of the two heights).
    fn find_fork(
        &self,
        state: &ChainState,
        top: u64,
    ) -> impl Future<Output = Result<u64, SyncError>> + Send;

    /// Sends the peer's blocks from `from` to `to` (inclusive), in order,
    /// a page at a time, into `pages`; an empty page when it has no more.
    /// The catch-up drops the receiver when it has what it needs.
    fn fetch(
        &self,
        from: u64,
        to: u64,
        pages: tokio::sync::mpsc::Sender<Result<Vec<Block>, SyncError>>,
    ) -> impl Future<Output = ()> + Send + 'static;
}

/// A peer's blocks over HTTP: `/blocks/{index}/hash` probes and `/blocks`
/// pages.
pub struct HttpSource<'a> {
    pub client: &'a PeerClient,
    pub peer: &'a PeerUrl,
}

impl BlockSource for HttpSource<'_> {
    async fn find_fork(&self, state: &ChainState, top: u64) -> Result<u64, SyncError> {
        find_fork(state, self.client, self.peer, top).await
    }

    fn fetch(
        &self,
        from: u64,
        to: u64,
        pages: tokio::sync::mpsc::Sender<Result<Vec<Block>, SyncError>>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (client, peer) = (self.client.clone(), self.peer.clone());
        async move {
            let mut next = from;
            while next <= to {
                let page = client
                    .blocks(&peer, next, MAX_PAGE.min(to + 1 - next))
                    .await
                    .map_err(SyncError::from);
                let len = page.as_ref().map_or(0, Vec::len) as u64;
                if pages.send(page).await.is_err() || len == 0 {
                    return;
                }
                next += len;
            }
        }
    }
}

/// What the peer told before the sync.
#[derive(Debug)]
pub enum Told {
    /// Its `/status`.
    Status(Box<Status>),
    /// It has no `/status` (an original node): its whole chain is read,
    /// unless the handshake read it a moment ago (sorted by index).
    NoStatus { chain: Option<Vec<Block>> },
}

/// Catches up with one peer, from what it told.
pub async fn catch_up(
    state: &ChainState,
    client: &PeerClient,
    peer: &PeerUrl,
    told: Told,
) -> Outcome {
    let result = match told {
        Told::Status(status) => {
            let source = HttpSource { client, peer };
            catch_up_from(state, client, peer, &status, &source).await
        }
        Told::NoStatus { chain } => catch_up_whole_chain(state, client, peer, chain).await,
    };
    result.unwrap_or_else(Outcome::Failed)
}

/// Catches up with a peer whose `/status` is `status`, fetching from
/// `source`; `client` is for the progress shown on our `/status`.
pub async fn catch_up_with(
    state: &ChainState,
    client: &PeerClient,
    peer: &PeerUrl,
    status: &Status,
    source: &impl BlockSource,
) -> Outcome {
    (catch_up_from(state, client, peer, status, source).await).unwrap_or_else(Outcome::Failed)
}

async fn catch_up_from(
    state: &ChainState,
    client: &PeerClient,
    peer: &PeerUrl,
    status: &Status,
    source: &impl BlockSource,
) -> Result<Outcome, SyncError> {
    let (our_height, our_work) = {
        let (tip, work) = state.tip_and_work();
        (tip.index, work)
    };
    // The chain rule on what the peer says of its chain: its work (a node
    // older than work on /status: its height, the same in a fixed network).
    let ahead = match status.work() {
        Some(work) => better_chain(our_work, work),
        None => status.height > our_height,
    };
    if !ahead || status.height == 0 {
        return Ok(Outcome::NotBetter {
            height: status.height,
            longer: status.height > our_height,
            served: None,
        });
    }
    let mut fork = source
        .find_fork(state, status.height.min(our_height))
        .await?;
    let start_fork = fork;
    // What the fetched blocks must meet, block after block.
    let mut cursor = state.cursor_at(fork - 1).ok_or(SyncError::Raced)?;
    let mut progress = Progress::start(client, peer, status.height, our_height);

    // A task fetches pages ahead (a few at most), while this one checks
    // what has arrived and commits it all at once: the batch grows to what
    // the disk can take in the time a page takes to arrive.
    let last_wanted = status.height.min(fork + MAX_BLOCKS_PER_SYNC - 1);
    // Stopped short of its claimed tip on purpose: the rest is the next
    // sync's, and the claim is not judged by part of it (unless it ran out
    // of blocks first).
    let capped = last_wanted < status.height;
    let (pages, mut arrived) = tokio::sync::mpsc::channel(PAGES_AHEAD);
    let fetcher = tokio::spawn(source.fetch(fork, last_wanted, pages));
    let network = state.network();
    let clock = Clock::now();
    let mut pending: Vec<Block> = Vec::new();
    let (mut committed, mut replaced, mut fetched) = (0u64, 0usize, 0u64);
    let mut failure = None;
    let mut broken = None;
    // Our own chain grew past the branch meanwhile: no fault of the peer's.
    let mut outgrown = false;
    // It served no more blocks before the height it claimed.
    let mut ran_out = false;
    'fetching: while let Some(first) = arrived.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_PAGES_PER_COMMIT
            && let Ok(page) = arrived.try_recv()
        {
            batch.push(page);
        }
        let mut ended = false;
        for page in batch {
            let page = match page {
                Ok(page) => page,
                Err(error) => {
                    broken = Some(error);
                    ended = true;
                    break;
                }
            };
            ended |= page.is_empty();
            ran_out |= page.is_empty();
            fetched += page.len() as u64;
            for block in page {
                if let Err(error) = cursor.step(&block, network, clock) {
                    failure = Some(error);
                    ended = true;
                    break;
                }
                pending.push(block);
            }
            if ended {
                break;
            }
        }
        // Commit once the fetched part makes a better chain, then all that
        // arrives; until then (a fork deeper than a page), keep fetching.
        if !pending.is_empty() && (committed > 0 || better_chain(state.work(), cursor.work)) {
            let branch = std::mem::take(&mut pending);
            let count = branch.len() as u64;
            let adopted = state
                .adopt_branch(fork, branch, Source::Synced(peer.clone()))
                .await;
            match adopted {
                Ok(Adoption::Switched { orphaned }) => {
                    committed += count;
                    replaced += orphaned.len();
                    fork += count;
                    progress.committed(fork - 1);
                }
                // Our chain grew meanwhile past this branch: the next sync
                // looks again.
                Ok(Adoption::NotBetter) => {
                    outgrown = true;
                    break 'fetching;
                }
                Err(error) => {
                    fetcher.abort();
                    progress.finish();
                    return Err(error.into());
                }
            }
        }
        if ended || fork + pending.len() as u64 > last_wanted {
            break;
        }
    }
    fetcher.abort();
    progress.finish();
    let height = fork + pending.len() as u64 - 1;
    if committed > 0 {
        let tip = fork - 1;
        let took = progress.summary();
        tracing::info!(
            peer = %peer,
            height = tip,
            "{}{took}",
            switch_in_words(peer, committed, start_fork - 1, replaced as u64, tip)
        );
        if let Some(error) = failure.map(SyncError::Invalid).or(broken) {
            // What it served before is kept; what no honest node serves is
            // held against it all the same (an invalid block after valid
            // ones, a body that broke its header's promise).
            if error.misbehaviour().is_some() {
                return Err(error);
            }
            tracing::warn!(peer = %peer, "sync with {peer}: kept what came before a failure further on: {error}");
        }
        return Ok(Outcome::Adopted {
            height,
            fetched,
            served: None,
        });
    }
    match (failure, broken) {
        (Some(error), _) => Err(SyncError::Invalid(error)),
        (None, Some(error)) => Err(error),
        // It said its chain was better (that is why we asked), then served
        // blocks with less work than it said: an honest node's work never
        // goes down, so that claim was a lie. Not better for any other
        // reason (ours grew meanwhile, or we stopped short of its tip) is
        // a race, and costs nothing.
        (None, None) => match claimed_work(status, network) {
            Some(claimed) if !outgrown && (ran_out || !capped) && cursor.work < claimed => {
                Err(SyncError::Unfounded {
                    height: status.height,
                    claimed,
                    served: height,
                    served_work: cursor.work,
                })
            }
            _ => Ok(Outcome::NotBetter {
                height: status.height,
                longer: false,
                served: None,
            }),
        },
    }
}

/// The work a peer's `/status` claims for its chain: as it says, or, for
/// a node too old to say, in a fixed network, what its height is worth.
fn claimed_work(status: &Status, network: &Network) -> Option<Work> {
    status.work().or_else(|| {
        (network.kind == Kind::Fixed).then(|| {
            Work::times(
                Work::of(&network.pow_limit()),
                status.height.saturating_add(1),
            )
        })
    })
}

/// Pages fetched ahead of the one being checked and written.
const PAGES_AHEAD: usize = 4;
/// The most pages committed together.
const MAX_PAGES_PER_COMMIT: usize = 8;

/// How often a long catch-up logs its progress.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);
/// A catch-up of more blocks than this shows its progress.
const LONG_CATCH_UP: u64 = MAX_PAGE * 2;

/// The progress of a long catch-up: on `/status` while it runs, and a log
/// line every few seconds (height, blocks per second, share done, time
/// left), as Bitcoin Core's `UpdateTip` lines do.
struct Progress<'a> {
    client: &'a PeerClient,
    catch_up: Option<CatchUp>,
    logged: Instant,
}

impl<'a> Progress<'a> {
    fn start(client: &'a PeerClient, peer: &PeerUrl, target: u64, height: u64) -> Progress<'a> {
        let catch_up = (target.saturating_sub(height) > LONG_CATCH_UP).then(|| {
            tracing::info!(peer = %peer, "catching up with {peer}: {} blocks to fetch, from height {height} to {target}", target - height);
            CatchUp {
                peer: peer.to_string(),
                target,
                from: height,
                height,
                started: Instant::now(),
            }
        });
        if catch_up.is_some() {
            client.stats().set_catching_up(catch_up.clone());
        }
        Progress {
            client,
            catch_up,
            logged: Instant::now(),
        }
    }

    fn committed(&mut self, height: u64) {
        let Some(catch_up) = &mut self.catch_up else {
            return;
        };
        catch_up.height = height;
        self.client.stats().set_catching_up(Some(catch_up.clone()));
        if self.logged.elapsed() >= PROGRESS_INTERVAL {
            self.logged = Instant::now();
            let rate = catch_up.rate();
            let left = (catch_up.target.saturating_sub(height)) as f64 / rate.max(1.0);
            tracing::info!(
                height,
                "catching up with {}: height {height} of {} ({:.1} %), {rate:.0} blocks/s, about {} left",
                catch_up.peer,
                catch_up.target,
                height as f64 * 100.0 / catch_up.target.max(1) as f64,
                duration_in_words(left)
            );
        }
    }

    /// Ends the catch-up's entry on `/status`.
    fn finish(&self) {
        if self.catch_up.is_some() {
            self.client.stats().set_catching_up(None);
        }
    }

    /// For a long catch-up, its time and rate, to end the summary line.
    fn summary(&self) -> String {
        match &self.catch_up {
            Some(catch_up) => format!(
                " ({} blocks in {}, {:.0} blocks/s)",
                catch_up.height - catch_up.from,
                duration_in_words(catch_up.started.elapsed().as_secs_f64()),
                catch_up.rate()
            ),
            None => String::new(),
        }
    }
}

/// The length of the prefix our chain shares with the peer's (at least 1:
/// the genesis block), found with O(log n) block requests: probe heights
/// stepping back exponentially from `top`, then bisect.
async fn find_fork(
    state: &ChainState,
    client: &PeerClient,
    peer: &PeerUrl,
    top: u64,
) -> Result<u64, SyncError> {
    let matches = |index: u64| async move {
        let theirs = client.hash_at(peer, index).await?;
        Ok::<bool, SyncError>(state.hash_at(index) == Some(theirs))
    };
    let mut differs = top + 1; // lowest height known to differ
    let mut step = 1;
    let mut height = top;
    let same = loop {
        if matches(height).await? {
            break height;
        }
        if height == 0 {
            return Err(SyncError::OtherNetwork(
                "its block 0 is not our genesis block".into(),
            ));
        }
        differs = height;
        height = height.saturating_sub(step);
        step *= 2;
    };
    let (mut same, mut differs) = (same, differs);
    while differs - same > 1 {
        let middle = same + (differs - same) / 2;
        if matches(middle).await? {
            same = middle;
        } else {
            differs = middle;
        }
    }
    Ok(same + 1)
}

/// Syncs with a peer that only serves `/blockchain.json`: its blocks from
/// 0 up to the first hole are its chain; those after the prefix it shares
/// with ours are checked, and adopted only if all are valid (the chain is
/// one answer: invalid anywhere, it is refused whole, as the original node
/// refuses it). Holes are no fault: the original leaves them itself.
async fn catch_up_whole_chain(
    state: &ChainState,
    client: &PeerClient,
    peer: &PeerUrl,
    fetched: Option<Vec<Block>>,
) -> Result<Outcome, SyncError> {
    let mut blocks = match fetched {
        Some(blocks) => blocks,
        None => client
            .whole_chain(peer)
            .await
            .map_err(|error| match error {
                FetchError::TooLarge { limit } => SyncError::ChainTooLarge { limit },
                error => error.into(),
            })?,
    };
    starts_with_genesis(&blocks, state.network()).map_err(SyncError::OtherNetwork)?;
    let served = Served::of(&blocks);
    blocks.truncate(served.contiguous as usize);
    let fetched = blocks.len() as u64;
    let height = served.height();
    let fork = state.common_prefix(&blocks);
    // Our height and work, read together.
    let (ours, our_work) = {
        let (tip, work) = state.tip_and_work();
        (tip.index + 1, work)
    };
    let network = state.network().clone();
    // In a fixed network every block has the same work: a chain that is
    // not longer is not better, and not worth checking.
    if network.kind == Kind::Fixed && fetched <= ours || fetched == fork {
        return Ok(Outcome::NotBetter {
            height,
            longer: false,
            served: Some(served),
        });
    }
    let mut cursor = state.cursor_at(fork - 1).ok_or(SyncError::Raced)?;
    let (incoming, failure, work) = tokio::task::spawn_blocking(move || {
        let clock = Clock::now();
        let mut incoming: Vec<Block> = Vec::new();
        for block in blocks.into_iter().skip(fork as usize) {
            if let Err(error) = cursor.step(&block, &network, clock) {
                return (incoming, Some(error), cursor.work);
            }
            incoming.push(block);
        }
        (incoming, None, cursor.work)
    })
    .await
    .expect("validation does not panic");
    if let Some(error) = failure {
        return Err(SyncError::Invalid(error));
    }
    if !better_chain(our_work, work) {
        return Ok(Outcome::NotBetter {
            height,
            longer: fetched > ours,
            served: Some(served),
        });
    }
    let count = incoming.len();
    let tip = fork + count as u64 - 1;
    match state
        .adopt_branch(fork, incoming, Source::Synced(peer.clone()))
        .await?
    {
        Adoption::Switched { orphaned } => {
            tracing::info!(
                peer = %peer,
                height = tip,
                "{}",
                switch_in_words(peer, count as u64, fork - 1, orphaned.len() as u64, tip)
            );
            Ok(Outcome::Adopted {
                height,
                fetched,
                served: Some(served),
            })
        }
        Adoption::NotBetter => Ok(Outcome::NotBetter {
            height,
            longer: false,
            served: Some(served),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(index: u64) -> Block {
        Block::new(index, 1, String::new(), format!("block {index}"), 0)
    }

    #[test]
    fn a_served_chain_is_described_as_it_is() {
        let blocks: Vec<Block> = [0, 1, 2, 4, 6, 7].map(block).to_vec();
        let served = Served::of(&blocks);
        assert_eq!(served.height(), 7);
        assert_eq!(served.contiguous, 3);
        assert_eq!(served.holes().collect::<Vec<_>>(), [3, 5]);
        assert_eq!(served.hole_count(), 2);
        assert_eq!(served.hash_at(4), Some(&blocks[3].hash));
        assert_eq!(served.hash_at(5), None);
        assert_eq!(
            served.to_string(),
            "highest block 7, with holes at 3, 5 (2 blocks missing; its chain ends at block 2)"
        );
        let whole = Served::of(&blocks[..3]);
        assert_eq!(whole.to_string(), "height 2");
        assert_eq!(whole.hole_count(), 0);
    }
}
