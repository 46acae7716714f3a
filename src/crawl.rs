//! The network as this node can see it, for the explorer's Network view: a
//! bounded crawl of the peer graph from this node, through reads every node
//! serves (`/status`, `/peers`, `/blocks/{index}/seen`). It maps each node
//! it reaches with its height, tip and peer links, and when it first saw
//! the block this node's tip was at the crawl's start, so a block can be
//! watched travelling.
//!
//! It is no port scanner for whoever asks: it visits only nodes that a node
//! already mapped lists as a peer that is up and passed its handshake (a
//! node of this software), and only addresses the address manager would
//! keep from that node (no link-local address, no loopback named by a
//! remote node); an address is mapped only if it answers as a node of this
//! network, and the map says of the others only that they were not
//! reached, never how (refused, timed out, something else answered).
//!
//! Bounded: at most [`MAX_NODES`] nodes, [`MAX_ASKED`] addresses asked and
//! [`CRAWL_TIME`] a crawl, at most [`MAX_PER_HOST`] addresses asked at one
//! remote host ([`MAX_NODES`] at this machine's, where a one-machine
//! devnet lives); one crawl at a time, its map served to every asker for
//! [`FRESH_FOR`], so a page open in many tabs costs the network one crawl.
//!
//! It changes nothing: no handshake, no peer added, no block taken. Whom
//! the node talks to is [`crate::gossip`]'s.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

use crate::block::BlockHash;
use crate::chain::Network;
use crate::client::PeerClient;
use crate::clock::unix_now_ms;
use crate::events::BlockRef;
use crate::gossip::Gossip;
use crate::peers::addrman::fit_to_keep;
use crate::peers::{Identity, PeerState, PeerUrl};
use crate::protocol::{SMALL_ANSWER_BYTES, Status, route};
use crate::state::ChainState;
use crate::tree::{SeenAt, Sighting};

/// Most nodes a crawl maps (this one included).
pub const MAX_NODES: usize = 64;
/// Longest a crawl runs; nodes not reached by then are left out.
pub const CRAWL_TIME: Duration = Duration::from_secs(3);
/// How long a map is served before the next ask crawls again.
pub const FRESH_FOR: Duration = Duration::from_secs(2);
/// Addresses a crawl asks at most, mapped or not.
pub const MAX_ASKED: usize = 2 * MAX_NODES;
/// Nodes asked at once.
const AT_ONCE: usize = 8;
/// Addresses at one host (other than this machine) a crawl asks at most, so
/// that nodes listing many ports of one machine cannot turn every crawl
/// into a flood of requests to it.
pub const MAX_PER_HOST: usize = 16;
/// The most bytes read of a node's `/peers`.
const PEER_LIST_BYTES: u64 = 512 * 1024;

/// What `GET /network` answers.
#[derive(Debug, Clone, Serialize)]
pub struct NetworkMap {
    /// When the crawl started, in ms since the epoch, and how long it took.
    pub crawled_at_ms: u64,
    pub took_ms: u64,
    /// The block whose travel is timed: this node's tip when the crawl
    /// started.
    pub followed: BlockRef,
    /// Every node reached, this one first.
    pub nodes: Vec<MappedNode>,
    /// Addresses listed by a node reached that did not answer as a node of
    /// this network (how, is not said).
    pub unreached: Vec<Unreached>,
    /// Whether the crawl stopped at [`MAX_NODES`] or [`CRAWL_TIME`] with
    /// addresses left to try.
    pub incomplete: bool,
}

/// A node on the map.
#[derive(Debug, Clone, Serialize)]
pub struct MappedNode {
    /// The URL it was reached at (for this node, the one it gives peers).
    pub url: String,
    /// Other URLs that reached the same node (the same node id).
    pub aliases: Vec<String>,
    pub this_node: bool,
    pub node_id: Option<String>,
    pub height: u64,
    pub tip: BlockHash,
    pub chainwork: Option<String>,
    /// How many blocks it is behind the highest node reached.
    pub behind: u64,
    /// Its peers as it lists them, each URL rewritten to the one the node
    /// it names is mapped under, when that node was reached.
    pub peers: Vec<Link>,
    /// Whether it mines.
    pub mining: Option<bool>,
    /// When it first saw the followed block (absent: it has not, or does
    /// not say).
    pub seen_followed: Option<Sighting>,
}

/// One of a node's peers.
#[derive(Debug, Clone, Serialize)]
pub struct Link {
    pub url: String,
    /// `up`, `new`, `backing off`, `banned`, as the node says.
    pub state: String,
}

/// An address that was tried and not mapped.
#[derive(Debug, Clone, Serialize)]
pub struct Unreached {
    pub url: String,
}

/// A peer of another node as its `/peers` lists it (only what is read).
#[derive(Debug, Deserialize)]
struct Listed {
    url: String,
    state: String,
    /// `jbc` for a node of this software (what its handshake found).
    #[serde(default)]
    kind: Option<String>,
}

/// The crawler: one per node, shared by the handlers.
pub struct Crawler {
    state: ChainState,
    gossip: Gossip,
    /// Whether this node mines.
    mining: bool,
    last: Mutex<Option<(Instant, Arc<NetworkMap>)>>,
}

/// What asking one node gave: nothing, when it did not answer as a node of
/// this network.
struct Visit {
    url: PeerUrl,
    answer: Option<(Status, Vec<Listed>, Option<Sighting>)>,
}

impl Crawler {
    pub fn new(state: ChainState, gossip: Gossip, mining: bool) -> Crawler {
        Crawler {
            state,
            gossip,
            mining,
            last: Mutex::new(None),
        }
    }

    /// The map: the last one while it is fresh, else a new crawl (callers
    /// that ask during a crawl wait for it and share it).
    pub async fn map(&self) -> Arc<NetworkMap> {
        let mut last = self.last.lock().await;
        if let Some((at, map)) = &*last
            && at.elapsed() < FRESH_FOR
        {
            return Arc::clone(map);
        }
        let map = Arc::new(self.crawl().await);
        *last = Some((Instant::now(), Arc::clone(&map)));
        map
    }

    async fn crawl(&self) -> NetworkMap {
        let started = Instant::now();
        let crawled_at_ms = unix_now_ms();
        let deadline = tokio::time::Instant::now() + CRAWL_TIME;
        let client = self.gossip.client().clone();
        let tip = self.state.tip();
        let followed = BlockRef::from(&tip);
        let own_url = client.own_url().unwrap_or("this node").to_string();
        let own_id = self.gossip.node_id().to_string();

        let here = self.this_node(&own_url, &own_id, &followed);
        let mut nodes: Vec<MappedNode> = vec![here];
        // Which mapped node a URL reached, by index into `nodes`.
        let mut reached: HashMap<String, usize> = HashMap::from([(own_url.clone(), 0)]);
        let mut by_id: HashMap<String, usize> = HashMap::from([(own_id, 0)]);
        let mut tried: HashSet<String> = HashSet::from([own_url]);
        let mut per_host: HashMap<String, usize> = HashMap::new();
        let mut queue: VecDeque<PeerUrl> = VecDeque::new();
        for view in self.gossip.book().views() {
            let live =
                view.state == PeerState::Up && matches!(view.identity, Some(Identity::Jbc { .. }));
            if live && tried.insert(view.url.to_string()) {
                queue.push_back(view.url);
            }
        }
        let mut asked = 0;
        let mut unreached = Vec::new();
        let mut visits: JoinSet<Visit> = JoinSet::new();
        let mut incomplete = false;
        loop {
            while visits.len() < AT_ONCE
                && nodes.len() + visits.len() < MAX_NODES
                && asked < MAX_ASKED
                && let Some(url) = queue.pop_front()
            {
                asked += 1;
                let network = self.state.network().clone();
                visits.spawn(visit(client.clone(), url, followed.clone(), network));
            }
            let next = match tokio::time::timeout_at(deadline, visits.join_next()).await {
                Ok(Some(Ok(visit))) => visit,
                Ok(Some(Err(_))) => continue, // a visit panicked: leave it out
                Ok(None) => break,
                Err(_) => {
                    incomplete = true;
                    break;
                }
            };
            let Some((status, listed, seen)) = next.answer else {
                unreached.push(Unreached {
                    url: next.url.to_string(),
                });
                continue;
            };
            let id = status.node_id.as_ref().map(ToString::to_string);
            if let Some(known) = id.as_ref().and_then(|id| by_id.get(id)) {
                nodes[*known].aliases.push(next.url.to_string());
                reached.insert(next.url.to_string(), *known);
                continue;
            }
            for url in worth_following(&listed, &next.url) {
                let host = url
                    .ip()
                    .map(|ip| ip.to_string())
                    .or_else(|| url.host_name());
                let at_host = per_host.entry(host.unwrap_or_default()).or_default();
                let this_machine = url.ip().is_some_and(|ip| ip.is_loopback());
                let most = if this_machine {
                    MAX_NODES
                } else {
                    MAX_PER_HOST
                };
                if *at_host < most && tried.insert(url.to_string()) {
                    *at_host += 1;
                    queue.push_back(url);
                }
            }
            if let Some(id) = &id {
                by_id.insert(id.clone(), nodes.len());
            }
            reached.insert(next.url.to_string(), nodes.len());
            nodes.push(MappedNode {
                url: next.url.to_string(),
                aliases: Vec::new(),
                this_node: false,
                node_id: id,
                height: status.height,
                tip: status.tip,
                chainwork: status.chainwork,
                behind: 0,
                peers: listed
                    .into_iter()
                    .map(|peer| Link {
                        url: peer.url,
                        state: peer.state,
                    })
                    .collect(),
                mining: status.mining,
                seen_followed: seen,
            });
            if nodes.len() >= MAX_NODES || (asked >= MAX_ASKED && visits.is_empty()) {
                incomplete |= !queue.is_empty() || !visits.is_empty();
                break;
            }
        }
        visits.abort_all();
        finish(&mut nodes, &reached);
        NetworkMap {
            crawled_at_ms,
            took_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            followed,
            nodes,
            unreached,
            incomplete,
        }
    }

    /// This node as the map shows it, from its own state and book.
    fn this_node(&self, url: &str, id: &str, followed: &BlockRef) -> MappedNode {
        let (tip, work) = self.state.tip_and_work();
        let seen = self
            .state
            .seen_at(followed.index)
            .and_then(|seen| sighting_of(seen, &followed.hash));
        MappedNode {
            url: url.to_string(),
            aliases: Vec::new(),
            this_node: true,
            node_id: Some(id.to_string()),
            height: tip.index,
            tip: tip.hash,
            chainwork: Some(work.to_string()),
            behind: 0,
            peers: (self.gossip.book().views())
                .into_iter()
                .map(|view| Link {
                    url: view.url.to_string(),
                    state: view.state.to_string(),
                })
                .collect(),
            mining: Some(self.mining),
            seen_followed: seen,
        }
    }
}

/// Asks one node for its status, its peers, and when it first saw the
/// followed block; nothing more once it does not answer as a node of
/// `network`.
async fn visit(client: PeerClient, url: PeerUrl, followed: BlockRef, network: Network) -> Visit {
    let answer = async {
        let status = client.status(&url, false).await.ok()??;
        if status.genesis != network.genesis.hash || status.node_id.is_none() {
            return None;
        }
        let listed: Vec<Listed> = client
            .small_json(&url, route::PEERS, PEER_LIST_BYTES)
            .await
            .ok()?
            .unwrap_or_default();
        // A node too old to say when it saw a block is mapped all the same.
        let seen = client
            .small_json::<SeenAt>(
                &url,
                &format!("{}/{}/seen", route::BLOCKS, followed.index),
                SMALL_ANSWER_BYTES,
            )
            .await
            .ok()
            .flatten()
            .and_then(|seen| sighting_of(seen, &followed.hash));
        Some((status, listed, seen))
    }
    .await;
    Visit { url, answer }
}

/// The peers `lister` listed that the crawl may ask: nodes of this
/// software that are up (they passed its handshake and answer it), at
/// well-formed URLs the address manager would keep from it (so a node
/// cannot steer the crawl to a link-local address, or from afar to this
/// machine's loopback).
fn worth_following(listed: &[Listed], lister: &PeerUrl) -> Vec<PeerUrl> {
    listed
        .iter()
        .filter(|peer| peer.state == PeerState::Up.as_str() && peer.kind.as_deref() == Some("jbc"))
        .filter_map(|peer| PeerUrl::parse(&peer.url).ok())
        .filter(|url| fit_to_keep(url, lister.ip()).is_ok())
        .collect()
}

/// The sighting of the block with `hash` among those a node saw at a height.
fn sighting_of(seen: SeenAt, hash: &BlockHash) -> Option<Sighting> {
    seen.blocks
        .into_iter()
        .find(|block| block.hash == *hash)
        .and_then(|block| block.seen)
}

/// Fills in what needs every node: how far behind each is, and links named
/// by the URL their node is mapped under.
fn finish(nodes: &mut [MappedNode], reached: &HashMap<String, usize>) {
    let highest = nodes.iter().map(|node| node.height).max().unwrap_or(0);
    let urls: Vec<String> = nodes.iter().map(|node| node.url.clone()).collect();
    for node in nodes.iter_mut() {
        node.behind = highest - node.height;
        for link in &mut node.peers {
            if let Some(&at) = reached.get(&link.url) {
                link.url = urls[at].clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(url: &str, height: u64, peers: &[&str]) -> MappedNode {
        MappedNode {
            url: url.into(),
            aliases: Vec::new(),
            this_node: false,
            node_id: None,
            height,
            tip: BlockHash([0; 32]),
            chainwork: None,
            behind: 0,
            peers: peers
                .iter()
                .map(|url| Link {
                    url: url.to_string(),
                    state: "up".into(),
                })
                .collect(),
            mining: None,
            seen_followed: None,
        }
    }

    #[test]
    fn only_live_nodes_at_addresses_the_address_manager_would_keep_are_followed() {
        let listed = |urls: &[&str]| -> Vec<Listed> {
            urls.iter()
                .map(|url| Listed {
                    url: url.to_string(),
                    state: "up".into(),
                    kind: Some("jbc".into()),
                })
                .collect()
        };
        let shown =
            |urls: Vec<PeerUrl>| -> Vec<String> { urls.iter().map(ToString::to_string).collect() };
        let candidates = listed(&[
            "http://127.0.0.1:5002",
            "http://169.254.169.254:80",
            "http://[fe80::1]:5001",
            "http://0.0.0.0:5003",
            "not a url",
            "http://10.1.2.3:5001",
            "http://203.0.113.7:5001",
        ]);
        let local = PeerUrl::parse("http://127.0.0.1:5001").unwrap();
        assert_eq!(
            shown(worth_following(&candidates, &local)),
            [
                "http://127.0.0.1:5002",
                "http://10.1.2.3:5001",
                "http://203.0.113.7:5001"
            ]
        );
        // Only peers the lister reports up, of this software: not one it
        // merely heard of, nor one that failed its handshake.
        let mut others = listed(&["http://127.0.0.1:5007", "http://127.0.0.1:5008"]);
        others[0].state = "new".into();
        others[1].kind = None;
        others.extend(listed(&["http://127.0.0.1:5009"]));
        assert_eq!(
            shown(worth_following(&others, &local)),
            ["http://127.0.0.1:5009"]
        );
        // A node on the internet cannot send the crawl to this machine's
        // loopback or to a private network.
        let remote = PeerUrl::parse("http://203.0.113.9:5001").unwrap();
        assert_eq!(
            shown(worth_following(&candidates, &remote)),
            ["http://203.0.113.7:5001"]
        );
    }

    #[test]
    fn links_name_the_url_a_node_is_mapped_under_and_heights_say_how_far_behind() {
        let mut nodes = vec![
            node("http://127.0.0.1:5001", 10, &["http://127.0.0.1:5002"]),
            node("http://127.0.0.1:5002", 7, &["http://localhost:5001"]),
        ];
        let reached = HashMap::from([
            ("http://127.0.0.1:5001".to_string(), 0),
            ("http://localhost:5001".to_string(), 0),
            ("http://127.0.0.1:5002".to_string(), 1),
        ]);
        finish(&mut nodes, &reached);
        assert_eq!(nodes[1].peers[0].url, "http://127.0.0.1:5001");
        assert_eq!(nodes[0].peers[0].url, "http://127.0.0.1:5002");
        assert_eq!((nodes[0].behind, nodes[1].behind), (0, 3));
    }
}
