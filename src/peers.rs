//! The peers a node knows: those in its config, those added with
//! `POST /peers`, and nodes that announced a block to it.
//!
//! This module owns [`PeerUrl`] (what a peer's address may be, and how it is
//! written), the [`PeerBook`] with its limits (never the node itself, at
//! most [`MAX_PEERS`]) and its file, `peers.json` beside the chaindata
//! folder, and what the node last heard from each peer, so that a peer that
//! stays down is reported once rather than at every sync. It does not talk
//! to peers (see [`crate::client`]).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use reqwest::Url;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// Most peers a node keeps; more would only multiply announcements.
pub const MAX_PEERS: usize = 64;

/// A peer's base URL: `http` or `https`, a host, an optional port and
/// nothing after it. Written without a trailing slash, as people type it
/// (`http://127.0.0.1:5002`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PeerUrl(Url);

/// Why a text is not a peer's base URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("peer {url:?}: {reason}")]
pub struct PeerUrlError {
    url: String,
    reason: String,
}

impl PeerUrl {
    /// Parses and normalises a base URL.
    pub fn parse(text: &str) -> Result<PeerUrl, PeerUrlError> {
        let text = text.trim();
        let bad = |reason: &str| PeerUrlError {
            url: text.chars().take(200).collect(),
            reason: reason.to_owned(),
        };
        let url = Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("only http and https peers are supported"));
        }
        if url.host().is_none() {
            return Err(bad("no host"));
        }
        if url.path() != "/"
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
        {
            return Err(bad("give the base URL only, like http://127.0.0.1:5002"));
        }
        Ok(PeerUrl(url))
    }

    /// The URL of one of the peer's endpoints: `path` is relative, like
    /// `"status"` or `"blocks?from=3"`.
    pub fn endpoint(&self, path: &str) -> Url {
        self.0
            .join(path)
            .expect("a relative path joins onto a base URL")
    }

    /// Whether this URL points at a node listening on `listen`.
    pub fn is_own_address(&self, listen: SocketAddr) -> bool {
        if self.0.port_or_known_default() != Some(listen.port()) {
            return false;
        }
        let same_ip = |ip: IpAddr| {
            ip == listen.ip()
                || (ip.is_loopback() && listen.ip().is_loopback())
                || listen.ip().is_unspecified()
        };
        match self.0.host() {
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => same_ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => same_ip(IpAddr::V6(ip)),
            None => false,
        }
    }
}

impl fmt::Display for PeerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str().trim_end_matches('/'))
    }
}

impl fmt::Debug for PeerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for PeerUrl {
    type Err = PeerUrlError;

    fn from_str(text: &str) -> Result<PeerUrl, PeerUrlError> {
        PeerUrl::parse(text)
    }
}

impl Serialize for PeerUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PeerUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PeerUrl, D::Error> {
        let text = String::deserialize(deserializer)?;
        PeerUrl::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Shared handle to the peer list.
#[derive(Clone)]
pub struct PeerBook {
    inner: Arc<Inner>,
}

struct Inner {
    book: Mutex<Book>,
    /// Where the list is saved.
    path: PathBuf,
    /// This node's own address, never a peer.
    listen: SocketAddr,
    /// Tells the announcers about each peer added at run time.
    added: mpsc::UnboundedSender<PeerUrl>,
}

#[derive(Default)]
struct Book {
    /// The peers, in the order they were added.
    peers: Vec<PeerUrl>,
    /// What the node last heard from each peer, by kind of contact.
    health: HashMap<(PeerUrl, Contact), Health>,
}

/// The two ways the node contacts a peer, each with its own record: a peer
/// can serve its chain well and still refuse announcements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Contact {
    /// Asking for its status and blocks.
    Sync,
    /// Posting our new blocks to it.
    Announce,
}

/// What the node last heard from a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Health {
    /// Not asked yet.
    #[default]
    Unknown,
    /// Its last answer was usable.
    Up,
    /// Its last `failures` contacts failed, the last one this way.
    Failing { kind: &'static str, failures: u32 },
}

/// How a contact changed what the node knows of a peer: what is worth
/// telling the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The first answer from this peer since start.
    FirstAnswer,
    /// It answers again after `failures` failed contacts.
    Recovered { failures: u32 },
    /// It answered before, as it does now.
    StillUp,
    /// It starts failing, or fails in a new way.
    Failing,
    /// It fails as it did last time.
    StillFailing { failures: u32 },
}

/// Why a peer was not added.
#[derive(Debug, thiserror::Error)]
pub enum PeerBookError {
    #[error(transparent)]
    BadUrl(#[from] PeerUrlError),
    #[error("that is this node's own address")]
    Itself,
    #[error("this node already has the most peers it keeps ({MAX_PEERS})")]
    Full,
    #[error("cannot save the peer list to {}: {source}", path.display())]
    Save {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl PeerBook {
    /// The configured peers plus those saved at `path`; the receiver yields
    /// each peer added later.
    pub fn open(
        configured: Vec<PeerUrl>,
        path: PathBuf,
        listen: SocketAddr,
    ) -> (PeerBook, mpsc::UnboundedReceiver<PeerUrl>) {
        let mut peers = configured;
        for url in read_saved(&path) {
            if !peers.contains(&url) && !url.is_own_address(listen) && peers.len() < MAX_PEERS {
                peers.push(url);
            }
        }
        let (added, receiver) = mpsc::unbounded_channel();
        let book = PeerBook {
            inner: Arc::new(Inner {
                book: Mutex::new(Book {
                    peers,
                    health: HashMap::new(),
                }),
                path,
                listen,
                added,
            }),
        };
        (book, receiver)
    }

    /// The file the list is saved in, for a chaindata folder.
    pub fn path_beside(chaindata: &Path) -> PathBuf {
        chaindata.with_file_name("peers.json")
    }

    /// The peers, in the order they were added.
    pub fn list(&self) -> Vec<PeerUrl> {
        self.book().peers.clone()
    }

    /// Adds a peer and saves the list. Returns false if it was known already.
    /// Blocking (writes the file).
    pub fn add(&self, text: &str) -> Result<bool, PeerBookError> {
        let url = PeerUrl::parse(text)?;
        if url.is_own_address(self.inner.listen) {
            return Err(PeerBookError::Itself);
        }
        let snapshot = {
            let mut book = self.book();
            if book.peers.contains(&url) {
                return Ok(false);
            }
            if book.peers.len() >= MAX_PEERS {
                return Err(PeerBookError::Full);
            }
            book.peers.push(url.clone());
            book.peers.clone()
        };
        self.save(&snapshot)?;
        info!(peer = %url, "new peer {url}");
        let _ = self.inner.added.send(url);
        Ok(true)
    }

    /// Notes a usable answer from `peer`.
    pub fn record_success(&self, peer: &PeerUrl, contact: Contact) -> Change {
        let mut book = self.book();
        let health = book.health.entry((peer.clone(), contact)).or_default();
        let change = match *health {
            Health::Unknown => Change::FirstAnswer,
            Health::Up => Change::StillUp,
            Health::Failing { failures, .. } => Change::Recovered { failures },
        };
        *health = Health::Up;
        change
    }

    /// Notes a failed contact with `peer`; `kind` names the way it failed
    /// (a new kind is news, the same one again is not).
    ///
    /// A failure the other kind of contact already reported (a peer that
    /// is down fails both ways) is not news either.
    pub fn record_failure(&self, peer: &PeerUrl, contact: Contact, kind: &'static str) -> Change {
        let mut book = self.book();
        let other = match contact {
            Contact::Sync => Contact::Announce,
            Contact::Announce => Contact::Sync,
        };
        let reported_elsewhere = matches!(
            book.health.get(&(peer.clone(), other)),
            Some(Health::Failing { kind: elsewhere, .. }) if *elsewhere == kind
        );
        let health = book.health.entry((peer.clone(), contact)).or_default();
        let (change, failures) = match *health {
            Health::Failing {
                kind: before,
                failures,
            } if before == kind => (
                Change::StillFailing {
                    failures: failures + 1,
                },
                failures + 1,
            ),
            Health::Failing { failures, .. } => (Change::Failing, failures + 1),
            Health::Unknown | Health::Up => (Change::Failing, 1),
        };
        let change = match change {
            Change::Failing if reported_elsewhere => Change::StillFailing { failures },
            change => change,
        };
        *health = Health::Failing { kind, failures };
        change
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.inner.book.lock().expect("peer book lock")
    }

    fn save(&self, peers: &[PeerUrl]) -> Result<(), PeerBookError> {
        let path = &self.inner.path;
        let mut json = serde_json::to_vec_pretty(peers).expect("URLs serialise");
        json.push(b'\n');
        crate::store::replace_file(path, &json).map_err(|source| PeerBookError::Save {
            path: path.clone(),
            source,
        })
    }
}

/// The saved list, or nothing (with a warning) if it cannot be read.
fn read_saved(path: &Path) -> Vec<PeerUrl> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            warn!(file = %path.display(), "cannot read the saved peer list: {e}");
            return Vec::new();
        }
    };
    match serde_json::from_slice::<Vec<String>>(&bytes) {
        Ok(list) => list
            .iter()
            .filter_map(|text| match PeerUrl::parse(text) {
                Ok(url) => Some(url),
                Err(e) => {
                    warn!(file = %path.display(), "skipping a saved peer: {e}");
                    None
                }
            })
            .collect(),
        Err(e) => {
            warn!(file = %path.display(), "ignoring the saved peer list: {e}");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> PeerUrl {
        PeerUrl::parse(text).unwrap()
    }

    #[test]
    fn peer_urls_are_checked_and_written_as_people_type_them() {
        assert_eq!(
            url("http://127.0.0.1:5002/").to_string(),
            "http://127.0.0.1:5002"
        );
        assert_eq!(
            url(" http://Example.COM ").to_string(),
            "http://example.com"
        );
        assert_eq!(
            url("http://127.0.0.1:5002")
                .endpoint("blocks?from=3")
                .as_str(),
            "http://127.0.0.1:5002/blocks?from=3"
        );
        for bad in [
            "ftp://127.0.0.1:5001",
            "127.0.0.1:5001",
            "http://127.0.0.1:5001/blockchain.json",
            "http://user@127.0.0.1:5001",
            "http://127.0.0.1:5001/?x=1",
            "",
        ] {
            assert!(PeerUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn added_peers_are_checked_saved_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = PeerBook::path_beside(&dir.path().join("chaindata"));
        let listen: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        let configured = vec![url("http://127.0.0.1:5002")];
        let (book, mut added) = PeerBook::open(configured.clone(), path.clone(), listen);
        assert!(book.add("http://127.0.0.1:5004").unwrap());
        assert!(!book.add("http://127.0.0.1:5004/").unwrap());
        assert_eq!(added.try_recv().unwrap(), url("http://127.0.0.1:5004"));
        assert!(matches!(
            book.add("http://localhost:5001"),
            Err(PeerBookError::Itself)
        ));
        assert!(matches!(
            book.add("gopher://x"),
            Err(PeerBookError::BadUrl(_))
        ));
        assert!(matches!(
            book.add("not a url"),
            Err(PeerBookError::BadUrl(_))
        ));

        let (reloaded, _) = PeerBook::open(configured, path, listen);
        assert_eq!(reloaded.list(), book.list());
        assert_eq!(reloaded.list().len(), 2);
    }

    #[test]
    fn the_list_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let listen: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        let (book, _added) = PeerBook::open(Vec::new(), dir.path().join("peers.json"), listen);
        for port in 0..MAX_PEERS {
            book.add(&format!("http://127.0.0.1:{}", 6000 + port))
                .unwrap();
        }
        assert!(matches!(
            book.add("http://127.0.0.1:7999"),
            Err(PeerBookError::Full)
        ));
    }

    #[test]
    fn a_failure_is_news_once_until_it_changes_or_the_peer_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let listen: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        let peer = url("http://127.0.0.1:5002");
        let (book, _added) =
            PeerBook::open(vec![peer.clone()], dir.path().join("peers.json"), listen);
        let sync = Contact::Sync;
        assert_eq!(
            book.record_failure(&peer, sync, "unreachable"),
            Change::Failing
        );
        assert_eq!(
            book.record_failure(&peer, sync, "unreachable"),
            Change::StillFailing { failures: 2 }
        );
        assert_eq!(
            book.record_failure(&peer, sync, "timed out"),
            Change::Failing
        );
        assert_eq!(
            book.record_success(&peer, sync),
            Change::Recovered { failures: 3 }
        );
        assert_eq!(book.record_success(&peer, sync), Change::StillUp);
        // Announcements are recorded apart from syncs, but a peer that is
        // down is news once, whichever contact finds out first.
        assert_eq!(
            book.record_failure(&peer, Contact::Announce, "unreachable"),
            Change::Failing
        );
        assert_eq!(
            book.record_failure(&peer, sync, "unreachable"),
            Change::StillFailing { failures: 1 }
        );
        assert_eq!(
            book.record_success(&peer, sync),
            Change::Recovered { failures: 1 }
        );
        let other = url("http://127.0.0.1:5003");
        assert_eq!(book.record_success(&other, sync), Change::FirstAnswer);
    }
}
