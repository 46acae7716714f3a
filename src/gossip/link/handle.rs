//! What each message a linked peer sends means for the node: blocks
//! rebuilt and taken (a block that comes before its parent waits for it,
//! and asks for it), items taken into the pool and relayed, what the peer
//! asks for answered, and what is invalid in itself held against it. The
//! conversation around it (the `hello`s, announcing, pinging, the bounds)
//! is [`super::session`]'s.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use tracing::debug;

use super::session::MOST_ANNOUNCED_AT_ONCE;
use super::{Gone, LinkPeer};
use crate::block::{Block, BlockHash};
use crate::gossip::{Gossip, ReceiveError};
use crate::item::ItemId;
use crate::peers::score::Misbehaviour;
use crate::peers::{Contact, PeerUrl};
use crate::pool::Submitter;
use crate::state::Submitted;
use crate::wire::{CompactBlock, Header, MAX_HEADERS, Message};

/// Hands `answer` to whoever awaits it in `slot` (an answer to our
/// `getheaders` or `getaddr`); one nobody asked for is passed over.
fn hand_over<T>(
    peer: &LinkPeer,
    slot: &std::sync::Mutex<Option<tokio::sync::oneshot::Sender<T>>>,
    answer: T,
    kind: &str,
) {
    match slot.lock().expect("answer lock").take() {
        Some(waiting) => {
            let _ = waiting.send(answer);
        }
        None => debug!(peer = %peer.url, "{kind} from {} nobody asked for: passed over", peer.url),
    }
}

/// The time a `getaddr` has to be answered.
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Compact blocks waiting for their missing items, per link.
const MOST_PENDING: usize = 16;

impl Gossip {
    /// What one message from `peer` calls for.
    pub(super) async fn on_message(
        &self,
        peer: &Arc<LinkPeer>,
        message: Message,
        pending: &mut HashMap<BlockHash, CompactBlock>,
        remote: Option<IpAddr>,
    ) -> Result<(), Gone> {
        let state = &self.inner.state;
        match message {
            Message::Hello(_) => {
                self.judge(&peer.url, Misbehaviour::Garbled, "a second hello");
                peer.close("a second hello");
                Err(Gone)
            }
            Message::Ping { nonce } => self.send(peer, &Message::Pong { nonce }),
            Message::Pong { .. } => {
                self.inner
                    .book
                    .record_success(&peer.url, Contact::Sync, None);
                Ok(())
            }
            Message::CompactBlock(compact) => {
                let hash = compact.header.hash;
                peer.mark_known(hash.0);
                peer.has(compact.header.index);
                self.inner.links.landed(&hash);
                if state.knows(&hash) {
                    return Ok(());
                }
                let pool = state.pool();
                let texts: Vec<Option<std::sync::Arc<str>>> =
                    compact.items.iter().map(|id| pool.text(id)).collect();
                let missing: Vec<ItemId> = (compact.items.iter().zip(&texts))
                    .filter(|(_, text)| text.is_none())
                    .map(|(id, _)| *id)
                    .collect();
                if missing.is_empty() {
                    let texts: Vec<std::sync::Arc<str>> = texts.into_iter().flatten().collect();
                    return self.rebuilt(peer, &compact, &texts, remote).await;
                }
                if pending.len() >= MOST_PENDING
                    && let Some(oldest) = pending.keys().next().copied()
                {
                    pending.remove(&oldest);
                }
                pending.insert(hash, compact);
                self.send(
                    peer,
                    &Message::GetItems {
                        block: Some(hash),
                        ids: missing,
                    },
                )
            }
            Message::Block(block) => {
                peer.mark_known(block.hash.0);
                peer.has(block.index);
                self.inner.links.landed(&block.hash);
                self.deliver(peer, block, remote).await
            }
            Message::GetData { blocks, whole } => {
                for hash in blocks {
                    if let Some(block) = state.block_by_hash(&hash) {
                        peer.mark_known(hash.0);
                        let message = match CompactBlock::of(&block).filter(|_| !whole) {
                            Some(compact) => Message::CompactBlock(compact),
                            None => Message::Block(block),
                        };
                        self.send(peer, &message)?;
                    }
                }
                Ok(())
            }
            Message::GetHeaders { locator } => {
                let headers = self.headers_after(&locator);
                self.send(peer, &Message::Headers { headers })
            }
            // What `GET /peers/addr` answers: the same list for a while,
            // so asking again and again maps nothing more of the book.
            Message::GetAddr => {
                let addresses = (self.addresses_for_others().iter())
                    .map(ToString::to_string)
                    .collect();
                self.send(peer, &Message::Addr { addresses })
            }
            Message::Addr { addresses } => {
                hand_over(peer, &peer.addr_wanted, addresses, "addresses");
                Ok(())
            }
            Message::Headers { headers } => {
                if let Some(last) = headers.last() {
                    peer.has(last.index());
                }
                hand_over(peer, &peer.headers_wanted, headers, "headers");
                Ok(())
            }
            Message::GetItems { block, ids } => {
                let in_block: HashMap<ItemId, String> = block
                    .and_then(|hash| state.block_by_hash(&hash))
                    .and_then(|block| crate::item::items_in(&block.data))
                    .unwrap_or_default()
                    .into_iter()
                    .map(|text| (ItemId::of(&text), text))
                    .collect();
                let pool = state.pool();
                let mut items = Vec::new();
                let mut bytes = 0;
                let most = self.max_message_bytes() / 2;
                for id in ids {
                    let text = match in_block.get(&id) {
                        Some(text) => text.clone(),
                        None => match pool.text(&id) {
                            Some(text) => text.to_string(),
                            None => continue,
                        },
                    };
                    peer.mark_known(id.0);
                    if bytes + text.len() > most && !items.is_empty() {
                        self.send(
                            peer,
                            &Message::Items {
                                block,
                                items: std::mem::take(&mut items),
                            },
                        )?;
                        bytes = 0;
                    }
                    bytes += text.len();
                    items.push(text);
                }
                if !items.is_empty() || block.is_some() {
                    self.send(peer, &Message::Items { block, items })?;
                }
                Ok(())
            }
            Message::Items {
                block: Some(hash),
                items,
            } => {
                let Some(compact) = pending.remove(&hash) else {
                    return Ok(());
                };
                let given: HashMap<ItemId, String> = items
                    .into_iter()
                    .map(|text| (ItemId::of(&text), text))
                    .collect();
                let pool = state.pool();
                let mut texts = Vec::with_capacity(compact.items.len());
                for id in &compact.items {
                    match given
                        .get(id)
                        .map(|t| Arc::<str>::from(t.as_str()))
                        .or_else(|| pool.text(id))
                    {
                        Some(text) => texts.push(text),
                        None => {
                            peer.close(&format!(
                                "it did not send item {id} of block {} it announced",
                                compact.header.index
                            ));
                            return Err(Gone);
                        }
                    }
                }
                self.rebuilt(peer, &compact, &texts, remote).await
            }
            Message::Items { block: None, items } => {
                let from = Submitter::of(remote, false);
                for text in items {
                    let id = ItemId::of(&text);
                    peer.mark_known(id.0);
                    self.inner.links.item_landed(&id);
                    let (state, submitted) = (state.clone(), text.clone());
                    let outcome =
                        tokio::task::spawn_blocking(move || state.submit(&submitted, from)).await;
                    match outcome {
                        Ok(Ok((_, Submitted::New))) => {
                            self.relay_item(text, Some(peer.url.clone()))
                        }
                        Ok(Ok((_, Submitted::Known))) => {}
                        Ok(Err(error)) => {
                            debug!(peer = %peer.url, "an item from {} not taken: {error}", peer.url)
                        }
                        Err(error) => debug!("taking an item failed: {error}"),
                    }
                }
                Ok(())
            }
            Message::Inv { blocks, items } => {
                let links = &self.inner.links;
                let mut highest = None;
                let wanted: Vec<BlockHash> = blocks
                    .into_iter()
                    .filter(|hash| {
                        peer.mark_known(hash.0);
                        match state.block_by_hash(hash) {
                            Some(known) => {
                                highest = highest.max(Some(known.index));
                                false
                            }
                            None => !state.knows(hash) && links.claim(hash),
                        }
                    })
                    .collect();
                // What the peer has, for `GET /peers` (it is not polled).
                if highest.is_some() {
                    self.inner
                        .book
                        .record_success(&peer.url, Contact::Sync, highest);
                }
                if !wanted.is_empty() {
                    self.send(
                        peer,
                        &Message::GetData {
                            blocks: wanted,
                            whole: false,
                        },
                    )?;
                }
                let pool = state.pool();
                let wanted: Vec<ItemId> = items
                    .into_iter()
                    .filter(|id| {
                        peer.mark_known(id.0);
                        !pool.contains(id)
                            && state.item(id) == crate::protocol::ItemStatus::Unknown
                            && links.claim_item(id)
                    })
                    .collect();
                if wanted.is_empty() {
                    return Ok(());
                }
                self.send(
                    peer,
                    &Message::GetItems {
                        block: None,
                        ids: wanted,
                    },
                )
            }
        }
    }

    /// The headers of our blocks after the first block of `locator` on our
    /// chain (none when none is, or it is our tip), as many as one message
    /// holds.
    fn headers_after(&self, locator: &[BlockHash]) -> Vec<Header> {
        let state = &self.inner.state;
        let Some(shared) = locator
            .iter()
            .find_map(|hash| state.block_by_hash(hash).map(|block| block.index))
        else {
            return Vec::new();
        };
        let most_bytes = self.max_message_bytes() / 2;
        let (mut headers, mut bytes) = (Vec::new(), 0);
        let mut index = shared + 1;
        while headers.len() < MAX_HEADERS
            && let Some(block) = state.block(index)
        {
            let header = Header::of(&block);
            bytes += header.header.json_len() + 32;
            if bytes > most_bytes {
                break;
            }
            headers.push(header);
            index += 1;
        }
        headers
    }

    /// A compact block with all its items: rebuilt and taken, or held
    /// against the peer when its items do not make what it announced.
    async fn rebuilt(
        &self,
        peer: &Arc<LinkPeer>,
        compact: &CompactBlock,
        texts: &[Arc<str>],
        remote: Option<IpAddr>,
    ) -> Result<(), Gone> {
        match compact.rebuild(texts) {
            Ok(block) => self.deliver(peer, block, remote).await,
            Err(mismatch) => {
                let reason = format!("compact block {}: {mismatch}", compact.header.index);
                self.judge(&peer.url, Misbehaviour::InvalidBlock, &reason);
                peer.close(&reason);
                Err(Gone)
            }
        }
    }

    /// Takes a whole block from `peer`, as an announced one (or hands it to
    /// the catch-up awaiting it); an invalid one is held against it.
    async fn deliver(
        &self,
        peer: &Arc<LinkPeer>,
        block: Block,
        remote: Option<IpAddr>,
    ) -> Result<(), Gone> {
        // A body a catch-up by headers awaits goes to it.
        let Some(block) = self.inner.links.to_catch_up(block, &peer.url) else {
            return Ok(());
        };
        let index = block.index;
        let hash = block.hash;
        if let Some(&parent) = block.prev_hash.block_hash()
            && !self.inner.state.knows(&parent)
        {
            let links = &self.inner.links;
            // Its parent is on its way from another peer: it waits for it
            // rather than start a catch-up. A few blocks ahead of our tip,
            // the parent is asked of the peer that sent it; further ahead,
            // a catch-up over HTTP fetches the run.
            let near = block.index
                <= self.inner.state.tip_cursor().index + MOST_ANNOUNCED_AT_ONCE as u64 + 1;
            if links.coming(&parent) {
                links.hold(block, &peer.url, remote);
                return Ok(());
            }
            if near && links.claim(&parent) {
                links.hold(block, &peer.url, remote);
                return self.send(
                    peer,
                    &Message::GetData {
                        blocks: vec![parent],
                        whole: false,
                    },
                );
            }
        }
        match self
            .receive_block(block, Some(peer.url.clone()), remote)
            .await
        {
            Ok(_) => {
                self.inner
                    .book
                    .record_success(&peer.url, Contact::Sync, Some(index));
                self.deliver_held(hash).await;
                Ok(())
            }
            Err(ReceiveError::Invalid { reason, offence }) => match offence {
                Some(offence) => {
                    let reason = format!("block {index}: {reason}");
                    self.judge(&peer.url, offence, &reason);
                    peer.close(&format!("it sent an invalid block: {reason}"));
                    Err(Gone)
                }
                None => {
                    debug!(peer = %peer.url, "block {index} from {} not taken: {reason}", peer.url);
                    Ok(())
                }
            },
            Err(error) => {
                debug!(peer = %peer.url, "block {index} from {} not taken: {error}", peer.url);
                Ok(())
            }
        }
    }
}

impl Gossip {
    /// Asks `peer` over its link for the nodes it knows (`getaddr`).
    pub(in crate::gossip) async fn addresses_over(
        &self,
        peer: &LinkPeer,
    ) -> Result<Vec<PeerUrl>, String> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        *peer.addr_wanted.lock().expect("addr lock") = Some(answer);
        self.send(peer, &Message::GetAddr)
            .map_err(|_| "its link went".to_string())?;
        tokio::select! {
            told = tokio::time::timeout(ANSWER_TIMEOUT, answered) => match told {
                Ok(Ok(addresses)) => Ok(addresses
                    .iter()
                    .filter_map(|text| PeerUrl::parse(text).ok())
                    .collect()),
                Ok(Err(_)) => Err("its link went".into()),
                Err(_) => Err(format!("no addr within {ANSWER_TIMEOUT:?}")),
            },
            _ = peer.closed.cancelled() => Err("its link went".into()),
        }
    }

    /// Takes the blocks held for `parent`, now taken, and theirs in turn.
    async fn deliver_held(&self, parent: BlockHash) {
        let mut taken = vec![parent];
        while let Some(parent) = taken.pop() {
            for held in self.inner.links.children_of(&parent) {
                let (index, hash) = (held.block.index, held.block.hash);
                match self
                    .receive_block(held.block, Some(held.from), held.remote)
                    .await
                {
                    Ok(_) => taken.push(hash),
                    Err(error) => debug!("held block {index} not taken: {error}"),
                }
            }
        }
    }
}
