//! Catching up over the live links, headers first: the peer is asked for
//! the headers after the last block of ours it has (`getheaders` with a
//! locator, as Bitcoin Core's), then the bodies are asked for, whole and a
//! window at a time, of every linked peer known to have them; each body
//! is checked against the header it was promised on arrival, and handed
//! on in order to the catch-up of [`crate::sync`], which checks and
//! commits them as it does the pages of an HTTP catch-up.
//!
//! This module owns the fetching and the promise check; what is believed
//! and committed is [`crate::sync`]'s, which peer is synced and when is
//! the peer task's.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::{Body, IN_FLIGHT_FOR, LinkPeer};
use crate::block::{Block, BlockHash};
use crate::gossip::Gossip;
use crate::peers::score::Misbehaviour;
use crate::protocol::MAX_PAGE;
use crate::state::ChainState;
use crate::sync::{BlockSource, SyncError};
use crate::wire::{Header, MAX_BLOCKS_ASKED, MAX_HEADERS, MAX_LOCATOR, Message};

/// The longest catch-up done over the links; a longer one takes the HTTP
/// `/blocks` pages, which come a thousand blocks a request.
pub const MOST_OVER_LINKS: u64 = MAX_HEADERS as u64;
/// Bodies asked for and not yet handed on, at most.
const WINDOW: usize = 64;
/// The time a `headers` answer has to come.
const HEADERS_TIMEOUT: Duration = Duration::from_secs(10);
/// The time the next body in order may take, asked of every peer that has
/// it in turn, before the catch-up gives up.
const STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A catch-up's blocks from a linked peer's headers and its links' bodies.
pub struct LinkSource {
    gossip: Gossip,
    peer: Arc<LinkPeer>,
    /// The headers after the fork, as [`BlockSource::find_fork`] got them.
    headers: Arc<Mutex<Vec<Header>>>,
}

impl LinkSource {
    pub fn new(gossip: &Gossip, peer: Arc<LinkPeer>) -> LinkSource {
        LinkSource {
            gossip: gossip.clone(),
            peer,
            headers: Arc::default(),
        }
    }
}

/// Our chain's hashes from `top` down: the ten blocks below it one by one,
/// then steps doubling, then the genesis block (Bitcoin Core's locator).
fn locator(state: &ChainState, top: u64) -> Vec<BlockHash> {
    let mut hashes = Vec::new();
    let (mut index, mut step) = (top, 1u64);
    loop {
        if let Some(hash) = state.hash_at(index) {
            hashes.push(hash);
        }
        if index == 0 || hashes.len() == MAX_LOCATOR - 1 {
            break;
        }
        if hashes.len() >= 10 {
            step = step.saturating_mul(2);
        }
        index = index.saturating_sub(step);
    }
    if index != 0
        && let Some(genesis) = state.hash_at(0)
    {
        hashes.push(genesis);
    }
    hashes
}

/// Asks `peer` for the headers after `locator`'s first block it has.
async fn ask_headers(
    gossip: &Gossip,
    peer: &LinkPeer,
    locator: Vec<BlockHash>,
) -> Result<Vec<Header>, SyncError> {
    let (answer, answered) = oneshot::channel();
    *peer.headers_wanted.lock().expect("headers lock") = Some(answer);
    gossip
        .send(peer, &Message::GetHeaders { locator })
        .map_err(|_| SyncError::Link("it went".into()))?;
    tokio::select! {
        headers = tokio::time::timeout(HEADERS_TIMEOUT, answered) => match headers {
            Ok(Ok(headers)) => Ok(headers),
            Ok(Err(_)) => Err(SyncError::Link("it went".into())),
            Err(_) => Err(SyncError::Link(format!("no headers within {HEADERS_TIMEOUT:?}"))),
        },
        _ = peer.closed.cancelled() => Err(SyncError::Link("it went".into())),
    }
}

/// Checks that `headers` make one run of blocks, each on the one before
/// and the first on `parent` (at `parent_index`).
fn check_run(headers: &[Header], parent: BlockHash, parent_index: u64) -> Result<(), SyncError> {
    let (mut parent, mut parent_index) = (parent, parent_index);
    for header in headers {
        if header.index() != parent_index + 1 || !header.header.prev_hash.links_to(&parent) {
            return Err(SyncError::BadHeaders(format!(
                "do not make a chain: block {} does not follow block {parent_index}",
                header.index()
            )));
        }
        (parent, parent_index) = (header.hash(), header.index());
    }
    Ok(())
}

impl BlockSource for LinkSource {
    async fn find_fork(&self, state: &ChainState, top: u64) -> Result<u64, SyncError> {
        let headers = ask_headers(&self.gossip, &self.peer, locator(state, top)).await?;
        let Some(first) = headers.first() else {
            // Nothing after the tip we share: the fetch finds nothing.
            return Ok(top + 1);
        };
        let parent_index = first
            .index()
            .checked_sub(1)
            .ok_or_else(|| SyncError::BadHeaders("start at the genesis block".into()))?;
        let parent = match first.header.prev_hash.block_hash() {
            Some(parent) if state.hash_at(parent_index) == Some(*parent) => *parent,
            // Our chain moved since the locator was made.
            Some(parent) if state.knows(parent) => return Err(SyncError::Raced),
            _ => {
                return Err(SyncError::BadHeaders(format!(
                    "start at block {}, which follows no block of ours",
                    first.index()
                )));
            }
        };
        check_run(&headers, parent, parent_index)?;
        let fork = first.index();
        if let Some(last) = headers.last() {
            self.peer.has(last.index());
        }
        *self.headers.lock().expect("headers lock") = headers;
        Ok(fork)
    }

    fn fetch(
        &self,
        from: u64,
        to: u64,
        pages: mpsc::Sender<Result<Vec<Block>, SyncError>>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let headers: VecDeque<Header> = std::mem::take(&mut *self.headers.lock().expect("lock"))
            .into_iter()
            .filter(|header| header.index() >= from)
            .collect();
        let fetch = Fetch {
            gossip: self.gossip.clone(),
            peer: Arc::clone(&self.peer),
            headers,
            next: from,
            last: None,
            to,
            arrived: HashMap::new(),
            asked: HashMap::new(),
            registered: HashSet::new(),
            bodies: None,
        };
        async move {
            let mut fetch = fetch;
            if let Err(error) = fetch.run(&pages).await {
                let _ = pages.send(Err(error)).await;
            }
            fetch.unregister();
        }
    }
}

/// One fetch of bodies, from the header of block `next` on.
struct Fetch {
    gossip: Gossip,
    /// The peer synced from: its headers are the promises.
    peer: Arc<LinkPeer>,
    /// Headers whose bodies are not handed on yet, in order from `next`.
    headers: VecDeque<Header>,
    next: u64,
    /// The hash of block `next - 1`, once one was handed on.
    last: Option<BlockHash>,
    to: u64,
    /// Bodies come, by index, not yet handed on.
    arrived: HashMap<u64, Block>,
    /// Bodies asked for: when, and of whom (None: by someone else).
    asked: HashMap<BlockHash, (Instant, Option<Arc<LinkPeer>>)>,
    /// The hashes noted in the links' `expected` and not come yet.
    registered: HashSet<BlockHash>,
    /// Where the bodies come.
    bodies: Option<mpsc::Sender<Body>>,
}

impl Fetch {
    async fn run(
        &mut self,
        pages: &mpsc::Sender<Result<Vec<Block>, SyncError>>,
    ) -> Result<(), SyncError> {
        let (bodies, mut arriving) = mpsc::channel::<Body>(WINDOW * 2);
        self.bodies = Some(bodies.clone());
        let mut progress = Instant::now();
        loop {
            // Hand on what came, in order.
            let mut page = Vec::new();
            while let Some(block) = self.arrived.remove(&self.next) {
                self.headers.pop_front();
                self.next += 1;
                self.last = Some(block.hash);
                page.push(block);
                if page.len() as u64 == MAX_PAGE {
                    break;
                }
            }
            if !page.is_empty() && pages.send(Ok(page)).await.is_err() {
                return Ok(());
            }
            if self.next > self.to {
                return Ok(());
            }
            if self.headers.is_empty() {
                // The next headers, after the last block handed on (or
                // ours the fork is on).
                let last = self
                    .last
                    .or_else(|| self.gossip.inner.state.hash_at(self.next - 1));
                let Some(last) = last else {
                    return Err(SyncError::Raced);
                };
                let more = ask_headers(&self.gossip, &self.peer, vec![last]).await?;
                if more.is_empty() {
                    let _ = pages.send(Ok(Vec::new())).await;
                    return Ok(());
                }
                check_run(&more, last, self.next - 1)?;
                self.headers.extend(more);
                progress = Instant::now();
            }
            self.ask(&bodies)?;
            tokio::select! {
                body = arriving.recv() => {
                    let Some(body) = body else { return Ok(()) };
                    if self.took(body)? {
                        progress = Instant::now();
                    }
                }
                _ = tokio::time::sleep(IN_FLIGHT_FOR / 4) => {}
                _ = self.peer.closed.cancelled() => return Err(SyncError::Link("it went".into())),
            }
            if progress.elapsed() > STALL_TIMEOUT {
                return Err(SyncError::Link(format!(
                    "no peer sent block {} within {STALL_TIMEOUT:?}",
                    self.next
                )));
            }
        }
    }

    /// Asks for the bodies in the window not asked for yet, or asked of a
    /// peer that has not sent them in [`IN_FLIGHT_FOR`] (then of another).
    fn ask(&mut self, bodies: &mpsc::Sender<Body>) -> Result<(), SyncError> {
        let links = &self.gossip.inner.links;
        let mut asks: HashMap<crate::peers::PeerUrl, (Arc<LinkPeer>, Vec<BlockHash>)> =
            HashMap::new();
        let all = links.all();
        for header in self.headers.iter().take(WINDOW) {
            let (index, hash) = (header.index(), header.hash());
            if self.arrived.contains_key(&index) {
                continue;
            }
            let before = match self.asked.get(&hash) {
                Some((at, _)) if at.elapsed() < IN_FLIGHT_FOR => continue,
                Some((_, of)) => of.as_ref().map(|of| of.url.clone()),
                None => None,
            };
            if self.registered.insert(hash) {
                links.expect(hash, bodies);
            }
            // Asked for already (by another catch-up, or as an announced
            // block): it comes here too.
            if !links.claim(&hash) {
                self.asked.insert(hash, (Instant::now(), None));
                continue;
            }
            // Every linked peer known to have it, the promiser always; in
            // turn by height, another than the one that did not send it.
            let mut having: Vec<&Arc<LinkPeer>> = all
                .iter()
                .filter(|p| Arc::ptr_eq(p, &self.peer) || p.height() >= index)
                .collect();
            if having.is_empty() {
                having.push(&self.peer);
            }
            if let Some(before) = &before
                && having.len() > 1
            {
                having.retain(|p| &p.url != before);
            }
            let of = Arc::clone(having[index as usize % having.len()]);
            self.asked
                .insert(hash, (Instant::now(), Some(Arc::clone(&of))));
            asks.entry(of.url.clone())
                .or_insert_with(|| (of, Vec::new()))
                .1
                .push(hash);
        }
        for (of, hashes) in asks.into_values() {
            for chunk in hashes.chunks(MAX_BLOCKS_ASKED) {
                let message = Message::GetData {
                    blocks: chunk.to_vec(),
                    whole: true,
                };
                // A peer gone is asked no more; another is asked in turn.
                if self.gossip.send(&of, &message).is_err() && Arc::ptr_eq(&of, &self.peer) {
                    return Err(SyncError::Link("it went".into()));
                }
            }
        }
        Ok(())
    }

    /// Takes a body that came: false when it is not one awaited (again, or
    /// invalid in itself: its sender is judged, and another is asked).
    fn took(&mut self, body: Body) -> Result<bool, SyncError> {
        let Body { block, from } = body;
        let Some(header) = self.headers.iter().find(|h| h.hash() == block.hash) else {
            return Ok(false);
        };
        if self.arrived.contains_key(&header.index()) {
            return Ok(false);
        }
        if let Err(error) = block.check_hash() {
            let reason = format!("block {}: {error}", block.index);
            self.gossip
                .judge(&from, Misbehaviour::InvalidBlock, &reason);
            if let Some(sender) = self.gossip.inner.links.get(&from) {
                sender.close(&format!("it sent an invalid block: {reason}"));
            }
            self.asked.remove(&block.hash);
            return Ok(false);
        }
        header.promised(&block).map_err(SyncError::BrokenPromise)?;
        let links = &self.gossip.inner.links;
        links.landed(&block.hash);
        if self.registered.remove(&block.hash)
            && let Some(bodies) = &self.bodies
        {
            links.unexpect(&block.hash, bodies);
        }
        self.arrived.insert(block.index, block);
        Ok(true)
    }

    /// Takes this fetch's hashes out of the links' `expected`.
    fn unregister(&mut self) {
        let Some(bodies) = self.bodies.take() else {
            return;
        };
        for hash in self.registered.drain() {
            self.gossip.inner.links.unexpect(&hash, &bodies);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(from: &Block, count: u64) -> Vec<Header> {
        let mut parent = from.clone();
        (0..count)
            .map(|i| {
                let block = Block::new(
                    parent.index + 1,
                    1_700_000_000 + i as u128,
                    parent.hash,
                    String::new(),
                    7,
                );
                parent = block.clone();
                Header::of(&block)
            })
            .collect()
    }

    #[test]
    fn headers_must_make_one_run_on_the_block_they_follow() {
        let genesis = Block::new(0, 0, crate::block::PrevHash::none(), String::new(), 0);
        let headers = run(&genesis, 5);
        assert!(check_run(&headers, genesis.hash, 0).is_ok());
        // On another block, out of order, or with one missing: refused.
        assert!(check_run(&headers, BlockHash([9; 32]), 0).is_err());
        assert!(check_run(&headers[1..], genesis.hash, 0).is_err());
        let mut swapped = headers.clone();
        swapped.swap(2, 3);
        let error = check_run(&swapped, genesis.hash, 0).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("block 4 does not follow block 2"),
            "{error}"
        );
    }
}
