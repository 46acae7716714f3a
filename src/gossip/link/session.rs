//! One link's conversation, the same whichever side opened it: `hello`
//! both ways, then blocks announced once each (compact when they carry
//! items), items announced by id, pings while quiet; and what each message
//! the peer sends means for the node.
//!
//! On a link the sender of a message is known for sure (it is the other
//! end), so what is invalid in itself is held against it, as Bitcoin Core
//! holds an invalid block against the peer that relayed it: an invalid
//! block, a compact block whose items do not make the header it
//! announced, a frame that is not a message, one over the size bound. The
//! rest (an unknown type, a flood, silence, a slow reader) only closes the
//! link, with the reason in the close frame and the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tracing::{debug, info};

use super::socket::{DialError, Frame, FrameSink, Frames, dial};
use super::{
    Counters, Direction, Gone, HELLO_TIMEOUT, LINK_RETRY, LinkPeer, MESSAGE_BURST,
    MESSAGES_PER_SECOND, NO_LINKS_RETRY, Opened, PING_INTERVAL, SEND_QUEUE, SILENCE_TIMEOUT,
    WRITE_TIMEOUT,
};
use crate::block::{Block, BlockHash};
use crate::gossip::Gossip;
use crate::handshake::{HandshakeError, check_status};
use crate::item::ItemId;
use crate::peers::score::Misbehaviour;
use crate::peers::{Contact, PeerUrl};
use crate::wire::{CompactBlock, Hello, MAX_IDS, Message};

/// Blocks announced at once when the tip moved by several: the run back
/// to the last block the peer knows, at most this long (a longer gap is
/// the peer's to catch up with, over HTTP).
pub(super) const MOST_ANNOUNCED_AT_ONCE: usize = 16;
/// How long new items wait to be announced together, in one `inv`:
/// items posted one by one would each cost an `inv` on every link, with
/// its frame and packet, more than the item itself (Bitcoin Core trickles
/// its announcements every 2 to 5 seconds on average).
const ITEM_TRICKLE: std::time::Duration = std::time::Duration::from_millis(250);
/// Links a new tip goes to whole, on average (Bitcoin Core asks three
/// peers for compact blocks in high-bandwidth mode).
const PUSHED_TO: usize = 3;

/// Messages a peer may send: a bucket refilled at
/// [`MESSAGES_PER_SECOND`], holding [`MESSAGE_BURST`].
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new() -> Bucket {
        Bucket {
            tokens: MESSAGE_BURST,
            at: Instant::now(),
        }
    }

    /// Takes one message's token; false when there is none.
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * MESSAGES_PER_SECOND;
        self.tokens = (self.tokens + refill).min(MESSAGE_BURST);
        self.at = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// Why the conversation ended, for the log.
enum Ended {
    /// This node closed it (or would have), for this reason.
    Closed(String),
    /// The peer closed it, saying this (if anything).
    ByPeer(Option<String>),
}

impl Gossip {
    /// Opens a link to `peer` in the background, if one may be opened now
    /// (links on, none up or being opened, its retry time come).
    pub(in crate::gossip) fn link_to(&self, peer: &PeerUrl) {
        let links = &self.inner.links;
        if !links.start_opening(peer) {
            return;
        }
        let (gossip, peer) = (self.clone(), peer.clone());
        self.spawn(async move {
            let links = &gossip.inner.links;
            let max = gossip.max_message_bytes();
            let retry = match dial(&peer, HELLO_TIMEOUT, 2 * max).await {
                Ok((sink, frames)) => {
                    gossip
                        .converse(sink, frames, Opened::Outbound, peer.ip(), Some(&peer))
                        .await;
                    // Up a while, then gone: the peer's task syncs once
                    // over HTTP, and links again soon.
                    std::time::Duration::from_secs(1)
                }
                Err(error @ DialError::NoLinks(_)) => {
                    debug!(peer = %peer, "no live link with {peer}: {error}");
                    NO_LINKS_RETRY
                }
                Err(error) => {
                    debug!(peer = %peer, "opening a live link with {peer} failed: {error}");
                    LINK_RETRY
                }
            };
            links.opened_or_failed(&peer, retry);
        });
    }

    /// Holds a link a peer opened (`GET /link`, upgraded) until it ends.
    pub async fn accept_link(&self, socket: axum::extract::ws::WebSocket, remote: IpAddr) {
        let (sink, frames) = super::from_axum(socket);
        self.converse(sink, frames, Opened::Inbound, Some(remote), None)
            .await;
    }

    /// The largest message read: a whole block of the largest size, with
    /// room for its envelope.
    pub fn max_message_bytes(&self) -> usize {
        usize::try_from(self.inner.state.network().max_block_text_bytes())
            .unwrap_or(usize::MAX)
            .saturating_add(64 * 1024)
    }

    /// The conversation on one link, from the `hello`s to the close.
    /// `dialled`: the URL this node opened it to (outbound).
    async fn converse(
        &self,
        mut sink: FrameSink,
        mut frames: Frames,
        opened: Opened,
        remote: Option<IpAddr>,
        dialled: Option<&PeerUrl>,
    ) {
        let links = &self.inner.links;
        let Some(status) = links.status() else {
            let _ = sink
                .send(Frame::Close(Some("the node is starting".into())))
                .await;
            return;
        };
        let hello = Message::Hello(Hello {
            url: self.inner.client.own_url().map(str::to_string),
            status: Box::new(status),
        });
        let hello_text = hello.encode();
        let (queue, outgoing) = mpsc::channel(SEND_QUEUE);
        queue
            .try_send(Frame::Text(hello_text.clone()))
            .expect("an empty queue has room");
        let closed = self.inner.shutdown.child_token();
        let queued_bytes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let writer = tokio::spawn(write_frames(
            sink,
            outgoing,
            Arc::clone(&queued_bytes),
            closed.clone(),
        ));

        let theirs = match self.read_hello(&mut frames, opened, remote, dialled).await {
            Ok(theirs) => theirs,
            Err(reason) => {
                debug!(?remote, "a live link was not taken: {reason}");
                let _ = queue.try_send(Frame::Close(Some(reason)));
                drop(queue);
                let _ = tokio::time::timeout(WRITE_TIMEOUT, writer).await;
                return;
            }
        };
        let (url, their_hello, their_id, hello_bytes) = theirs;
        let opener = match opened {
            Opened::Outbound => self.inner.node_id.clone(),
            Opened::Inbound => their_id,
        };
        let peer = Arc::new(LinkPeer {
            url: url.clone(),
            opened,
            opener,
            since: Instant::now(),
            queue,
            queued_bytes,
            known: Default::default(),
            closed,
            close_reason: Default::default(),
            counters: Counters::default(),
            height: Default::default(),
            headers_wanted: Default::default(),
            addr_wanted: Default::default(),
        });
        if let Err(refused) = links.register(Arc::clone(&peer)) {
            debug!(peer = %url, "a live link with {url} was not taken: {refused}");
            let _ = peer.queue.try_send(Frame::Close(Some(refused.to_string())));
            drop(peer);
            let _ = tokio::time::timeout(WRITE_TIMEOUT, writer).await;
            return;
        }
        self.note(&peer, Direction::Out, &hello, hello_text.len());
        self.note(&peer, Direction::In, &their_hello, hello_bytes);
        let by = match opened {
            Opened::Outbound => "opened by this node",
            Opened::Inbound => "opened by it",
        };
        info!(peer = %url, "live link with {url} up ({by})");

        let ended = self.after_hello(&peer, &their_hello, remote).await;
        let ended = match ended {
            Ok(()) => self.talk(&peer, &mut frames, remote).await,
            Err(Gone) => Ended::Closed(peer.close_reason().unwrap_or_default()),
        };
        links.deregister(&peer);
        let reason = match &ended {
            Ended::Closed(reason) => peer.close_reason().unwrap_or_else(|| reason.clone()),
            Ended::ByPeer(reason) => reason.clone().unwrap_or_default(),
        };
        match &ended {
            Ended::Closed(_) => {
                info!(peer = %url, "live link with {url} closed: {reason}");
                let _ = peer.queue.try_send(Frame::Close(Some(reason)));
            }
            Ended::ByPeer(_) if reason.is_empty() => {
                info!(peer = %url, "live link with {url} closed by it")
            }
            Ended::ByPeer(_) => info!(peer = %url, "live link with {url} closed by it: {reason}"),
        }
        peer.closed.cancel();
        drop(peer);
        let _ = tokio::time::timeout(WRITE_TIMEOUT, writer).await;
    }

    /// The peer's `hello`, checked as a handshake checks a `/status`: its
    /// URL, its message and its node id; `Err` with the reason to close.
    async fn read_hello(
        &self,
        frames: &mut Frames,
        opened: Opened,
        remote: Option<IpAddr>,
        dialled: Option<&PeerUrl>,
    ) -> Result<(PeerUrl, Message, crate::protocol::NodeId, usize), String> {
        let first = tokio::time::timeout(HELLO_TIMEOUT, frames.next())
            .await
            .map_err(|_| format!("no hello within {HELLO_TIMEOUT:?}"))?;
        let text = match first {
            Some(Ok(Frame::Text(text))) => text,
            Some(Ok(Frame::Close(reason))) => {
                return Err(format!(
                    "closed before its hello: {}",
                    reason.unwrap_or_default()
                ));
            }
            Some(Ok(_)) => return Err("the first message is not a hello".into()),
            Some(Err(error)) => return Err(error.to_string()),
            None => return Err("closed before its hello".into()),
        };
        let message = Message::decode(&text).map_err(|e| e.to_string())?;
        let Message::Hello(hello) = &message else {
            return Err(format!(
                "the first message is a {}, not a hello",
                message.kind()
            ));
        };
        let network = self.inner.state.network();
        match check_status(&hello.status, network, &self.inner.node_id) {
            Ok(_) => {}
            Err(HandshakeError::Itself) => return Err("it is this node itself".into()),
            Err(error) => return Err(error.to_string()),
        }
        let their_id = (hello.status.node_id.clone()).ok_or("its hello has no node id")?;
        let url = match (opened, dialled) {
            (Opened::Outbound, Some(url)) => url.clone(),
            _ => {
                let named = hello
                    .url
                    .as_deref()
                    .ok_or("its hello names no URL to reach it at")?;
                let url = PeerUrl::parse(named).map_err(|e| e.to_string())?;
                // A node listening on all addresses names 0.0.0.0: it is
                // at the address its link came from.
                let url = match remote {
                    Some(remote) => url.as_seen_from(remote),
                    None => url,
                };
                if !remote.is_some_and(|remote| url.is_at(remote)) {
                    return Err(format!(
                        "the URL it names ({url}) is not at the address the link came from"
                    ));
                }
                url
            }
        };
        // Banned by the operator or discouraged: not talked to, on any
        // wire, until then.
        if let Some((left, why)) = self.inner.book.left_alone(&url) {
            return Err(format!(
                "{url} is left alone for {}: {why}",
                crate::human::duration_in_words(left.as_secs_f64())
            ));
        }
        Ok((url, message, their_id, text.len()))
    }

    /// What the `hello`s call for: a peer that opened the link is taken as
    /// an inbound peer (as one naming itself in a sync is), it is told of
    /// our tip, a peer ahead is synced from, and the peer is offered our
    /// waiting items.
    async fn after_hello(
        &self,
        peer: &Arc<LinkPeer>,
        hello: &Message,
        remote: Option<IpAddr>,
    ) -> Result<(), Gone> {
        let Message::Hello(hello) = hello else {
            return Ok(());
        };
        if peer.opened == Opened::Inbound
            && let Some(remote) = remote
        {
            self.introduced(peer.url.clone(), remote);
        }
        let ours = self.inner.state.tip_cursor();
        peer.has(hello.status.height);
        (self.inner.book).record_success(&peer.url, Contact::Sync, Some(hello.status.height));
        peer.mark_known(hello.status.tip.0);
        // Our tip, when it is not theirs, as a handshake announces it: a
        // tie between two branches shows on both sides (each keeps its
        // own, and knows the other's as lost).
        if ours.hash != hello.status.tip && ours.index > 0 {
            peer.mark_known(ours.hash.0);
            self.send(
                peer,
                &Message::Inv {
                    blocks: vec![ours.hash],
                    items: Vec::new(),
                },
            )?;
        }
        if hello.status.work().is_some_and(|theirs| theirs > ours.work) {
            self.request_sync(Some(&peer.url));
        }
        let waiting: Vec<ItemId> = self
            .inner
            .state
            .pool()
            .pending()
            .iter()
            .map(|p| p.id)
            .collect();
        for chunk in waiting.chunks(MAX_IDS) {
            chunk.iter().for_each(|id| {
                peer.mark_known(id.0);
            });
            self.send(
                peer,
                &Message::Inv {
                    blocks: Vec::new(),
                    items: chunk.to_vec(),
                },
            )?;
        }
        Ok(())
    }

    /// Reads, announces and pings until the link ends.
    async fn talk(
        &self,
        peer: &Arc<LinkPeer>,
        frames: &mut Frames,
        remote: Option<IpAddr>,
    ) -> Ended {
        let mut tips = self.inner.state.subscribe();
        tips.borrow_and_update();
        let mut items = self.inner.items.subscribe();
        let mut ping = tokio::time::interval(PING_INTERVAL / 4);
        ping.tick().await;
        let mut bucket = Bucket::new();
        let mut heard = tokio::time::Instant::now();
        let mut pending: HashMap<BlockHash, CompactBlock> = HashMap::new();
        let max_bytes = self.max_message_bytes();
        let mut nonce = 0u64;
        // Items not announced yet, and when they will be.
        let mut unannounced: Vec<ItemId> = Vec::new();
        let mut trickle: Option<tokio::time::Instant> = None;
        loop {
            let sent = tokio::select! {
                _ = peer.closed.cancelled() => {
                    let reason = peer.close_reason().unwrap_or_else(|| if self.inner.shutdown.is_cancelled() {
                        "the node stops".into()
                    } else {
                        format!("writing to it failed, or took over {WRITE_TIMEOUT:?}")
                    });
                    return Ended::Closed(reason);
                }
                frame = tokio::time::timeout_at(heard + SILENCE_TIMEOUT, frames.next()) => {
                    heard = tokio::time::Instant::now();
                    let text = match frame {
                        Err(_) => return Ended::Closed(format!("silent for {SILENCE_TIMEOUT:?}")),
                        Ok(None) => return Ended::ByPeer(None),
                        Ok(Some(Ok(Frame::Close(reason)))) => return Ended::ByPeer(reason),
                        Ok(Some(Ok(Frame::Control))) => continue,
                        Ok(Some(Ok(Frame::Binary(bytes)))) => {
                            let reason = format!("a binary frame of {bytes} bytes: messages are JSON text");
                            self.judge(&peer.url, Misbehaviour::Garbled, &reason);
                            return Ended::Closed(reason);
                        }
                        Ok(Some(Err(error))) => {
                            let error = error.to_string();
                            if error.contains("too long") || error.contains("too big") {
                                let reason = format!("a message over {max_bytes} bytes: {error}");
                                self.judge(&peer.url, Misbehaviour::Oversized, &reason);
                                return Ended::Closed(reason);
                            }
                            return Ended::ByPeer(Some(error));
                        }
                        Ok(Some(Ok(Frame::Text(text)))) => text,
                    };
                    if !bucket.take() {
                        return Ended::Closed(format!(
                            "flooding: more than {MESSAGES_PER_SECOND} messages a second"
                        ));
                    }
                    if text.len() > max_bytes {
                        let reason = format!("a message of {} bytes, over {max_bytes}", text.len());
                        self.judge(&peer.url, Misbehaviour::Oversized, &reason);
                        return Ended::Closed(reason);
                    }
                    let message = match Message::decode(&text) {
                        Ok(message) => message,
                        Err(error) => {
                            let reason = error.to_string();
                            if error.is_garbled() {
                                self.judge(&peer.url, Misbehaviour::Garbled, &reason);
                            }
                            return Ended::Closed(reason);
                        }
                    };
                    self.note(peer, Direction::In, &message, text.len());
                    self.on_message(peer, message, &mut pending, remote).await
                }
                changed = tips.changed() => {
                    if changed.is_err() {
                        return Ended::Closed("the node stops".into());
                    }
                    let tip = tips.borrow_and_update().block.clone();
                    self.announce_over(peer, tip)
                }
                item = items.recv() => {
                    let mut next = item;
                    loop {
                        match next {
                            Ok(item) => if item.from.as_ref() != Some(&peer.url) {
                                let id = ItemId::of(&item.text);
                                if peer.mark_known(id.0) {
                                    unannounced.push(id);
                                }
                            } else {
                                peer.mark_known(ItemId::of(&item.text).0);
                            },
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                                debug!(peer = %peer.url, missed, "items for {} fell behind; {missed} not offered", peer.url);
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                                return Ended::Closed("the node stops".into());
                            }
                        }
                        if unannounced.len() >= MAX_IDS {
                            break;
                        }
                        match items.try_recv() {
                            Err(tokio::sync::broadcast::error::TryRecvError::Empty) => break,
                            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => {
                                next = Err(tokio::sync::broadcast::error::RecvError::Lagged(n))
                            }
                            Err(tokio::sync::broadcast::error::TryRecvError::Closed) => {
                                next = Err(tokio::sync::broadcast::error::RecvError::Closed)
                            }
                            Ok(item) => next = Ok(item),
                        }
                    }
                    if unannounced.len() >= MAX_IDS {
                        trickle = None;
                        self.announce_items(peer, &mut unannounced)
                    } else {
                        if !unannounced.is_empty() && trickle.is_none() {
                            trickle = Some(tokio::time::Instant::now() + ITEM_TRICKLE);
                        }
                        Ok(())
                    }
                }
                _ = tokio::time::sleep_until(trickle.unwrap_or_else(tokio::time::Instant::now)), if trickle.is_some() => {
                    trickle = None;
                    self.announce_items(peer, &mut unannounced)
                }
                _ = ping.tick() => {
                    if heard.elapsed() < PING_INTERVAL {
                        continue;
                    }
                    nonce += 1;
                    self.send(peer, &Message::Ping { nonce })
                }
            };
            if sent.is_err() {
                return Ended::Closed(peer.close_reason().unwrap_or_default());
            }
        }
    }

    /// Announces `ids` to `peer` in one `inv`, and forgets them.
    fn announce_items(&self, peer: &LinkPeer, ids: &mut Vec<ItemId>) -> Result<(), Gone> {
        if ids.is_empty() {
            return Ok(());
        }
        let items = std::mem::take(ids);
        self.send(
            peer,
            &Message::Inv {
                blocks: Vec::new(),
                items,
            },
        )
    }

    /// Encodes, notes and queues `message` for `peer`.
    pub(super) fn send(&self, peer: &LinkPeer, message: &Message) -> Result<(), Gone> {
        let text = message.encode();
        self.note(peer, Direction::Out, message, text.len());
        peer.queue(Frame::Text(text))
    }

    /// Counts and logs a message.
    fn note(&self, peer: &LinkPeer, direction: Direction, message: &Message, bytes: usize) {
        let (count, total) = match direction {
            Direction::In => (&peer.counters.received, &peer.counters.received_bytes),
            Direction::Out => (&peer.counters.sent, &peer.counters.sent_bytes),
        };
        count.fetch_add(1, Ordering::Relaxed);
        total.fetch_add(bytes as u64, Ordering::Relaxed);
        self.inner
            .links
            .log
            .note(direction, &peer.url, message, bytes);
    }

    /// Tells `peer` of our new tip and of the blocks before it it does not
    /// know, by hash (oldest first, at most [`MOST_ANNOUNCED_AT_ONCE`]):
    /// the body goes only to a peer that asks, so each node receives it
    /// about once, however many of its peers have it. A new tip alone
    /// goes whole to [`PUSHED_TO`] of the links, on average, in a node of
    /// more links (BIP 152's high-bandwidth mode): it saves those peers a
    /// round trip, and the block outruns its announcements.
    fn announce_over(&self, peer: &LinkPeer, tip: Block) -> Result<(), Gone> {
        let state = &self.inner.state;
        let mut run = Vec::new();
        let mut next = Some(tip);
        while let Some(block) = next.take() {
            if block.index == 0 || peer.knows(&block.hash.0) || run.len() == MOST_ANNOUNCED_AT_ONCE
            {
                break;
            }
            next = block
                .prev_hash
                .block_hash()
                .and_then(|parent| state.block_by_hash(parent));
            run.push(block);
        }
        if run.is_empty() {
            return Ok(());
        }
        if let [block] = &run[..]
            && self.pushed_to(peer, &block.hash)
        {
            peer.mark_known(block.hash.0);
            let block = run.pop().expect("one block");
            let message = match CompactBlock::of(&block) {
                Some(compact) => Message::CompactBlock(compact),
                None => Message::Block(block),
            };
            return self.send(peer, &message);
        }
        let blocks: Vec<BlockHash> = run.iter().rev().map(|block| block.hash).collect();
        blocks.iter().for_each(|hash| {
            peer.mark_known(hash.0);
        });
        self.send(
            peer,
            &Message::Inv {
                blocks,
                items: Vec::new(),
            },
        )
    }

    /// Whether block `hash` goes whole to `peer`: each link's chance is
    /// [`PUSHED_TO`] in the number of links, drawn from the hash and the
    /// peer's URL, so the links agree without asking one another. A node
    /// of [`PUSHED_TO`] links or fewer pushes nothing: in a network that
    /// small a block is a hop or two from anywhere, a round trip on one
    /// machine or a LAN is under a millisecond, and announce-then-fetch is
    /// the exchange a learner comes to watch.
    fn pushed_to(&self, peer: &LinkPeer, hash: &BlockHash) -> bool {
        use std::hash::{Hash, Hasher};
        let links = self.inner.links.count();
        if links <= PUSHED_TO {
            return false;
        }
        let mut draw = std::collections::hash_map::DefaultHasher::new();
        (hash, &peer.url).hash(&mut draw);
        draw.finish() % (links as u64) < PUSHED_TO as u64
    }
}

/// Writes queued frames until the queue closes or a write fails or takes
/// longer than [`WRITE_TIMEOUT`] (then `closed` ends the link); a close
/// frame is the last.
async fn write_frames(
    mut sink: FrameSink,
    mut outgoing: mpsc::Receiver<Frame>,
    queued_bytes: Arc<std::sync::atomic::AtomicUsize>,
    closed: tokio_util::sync::CancellationToken,
) {
    while let Some(frame) = outgoing.recv().await {
        let last = matches!(frame, Frame::Close(_));
        // Frames queued past the count (the hello, a refusal) count as none.
        let written = frame.bytes();
        let _ = queued_bytes.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |queued| {
            Some(queued.saturating_sub(written))
        });
        match tokio::time::timeout(WRITE_TIMEOUT, sink.send(frame)).await {
            Ok(Ok(())) if !last => {}
            Ok(Ok(())) => break,
            _ => {
                closed.cancel();
                break;
            }
        }
    }
    let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.close()).await;
}
