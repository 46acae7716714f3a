//! The peers a node knows: those in its config, those added with
//! `POST /peers`, and nodes that announced a block to it.
//!
//! This module owns the list, its limits (a valid http/https base URL, never
//! the node itself, at most [`MAX_PEERS`]) and its file, `peers.json` beside
//! the chaindata folder, so the list survives restarts. It does not talk to
//! peers (see [`crate::sync`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use reqwest::Url;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::{is_own_address, parse_peer_url};

/// Most peers a node keeps; more would only multiply announcements.
pub const MAX_PEERS: usize = 64;

/// Shared handle to the peer list.
#[derive(Clone)]
pub struct PeerBook {
    inner: Arc<Inner>,
}

struct Inner {
    peers: Mutex<Vec<Url>>,
    /// Where the list is saved.
    path: PathBuf,
    /// This node's own address, never a peer.
    listen: SocketAddr,
    /// Tells the announcer about each peer added at run time.
    added: mpsc::UnboundedSender<Url>,
}

/// Why a peer was not added.
#[derive(Debug, thiserror::Error)]
pub enum PeerBookError {
    #[error("{0}")]
    BadUrl(String),
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
        configured: Vec<Url>,
        path: PathBuf,
        listen: SocketAddr,
    ) -> (PeerBook, mpsc::UnboundedReceiver<Url>) {
        let mut peers = configured;
        for url in read_saved(&path) {
            if !peers.contains(&url) && !is_own_address(&url, listen) && peers.len() < MAX_PEERS {
                peers.push(url);
            }
        }
        let (added, receiver) = mpsc::unbounded_channel();
        let book = PeerBook {
            inner: Arc::new(Inner {
                peers: Mutex::new(peers),
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
    pub fn list(&self) -> Vec<Url> {
        self.inner.peers.lock().expect("peers lock").clone()
    }

    /// Adds a peer and saves the list. Returns false if it was known already.
    /// Blocking (writes the file).
    pub fn add(&self, text: &str) -> Result<bool, PeerBookError> {
        let url = parse_peer_url(text.trim()).map_err(|e| PeerBookError::BadUrl(e.to_string()))?;
        if is_own_address(&url, self.inner.listen) {
            return Err(PeerBookError::Itself);
        }
        let snapshot = {
            let mut peers = self.inner.peers.lock().expect("peers lock");
            if peers.contains(&url) {
                return Ok(false);
            }
            if peers.len() >= MAX_PEERS {
                return Err(PeerBookError::Full);
            }
            peers.push(url.clone());
            peers.clone()
        };
        self.save(&snapshot)?;
        info!(peer = %url, "new peer");
        let _ = self.inner.added.send(url);
        Ok(true)
    }

    fn save(&self, peers: &[Url]) -> Result<(), PeerBookError> {
        let path = &self.inner.path;
        let list: Vec<&str> = peers.iter().map(Url::as_str).collect();
        let mut json = serde_json::to_vec_pretty(&list).expect("strings serialise");
        json.push(b'\n');
        let tmp = path.with_extension("json.tmp");
        let result = std::fs::write(&tmp, &json)
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, path));
        result.map_err(|source| PeerBookError::Save {
            path: path.clone(),
            source,
        })
    }
}

/// The saved list, or nothing (with a warning) if it cannot be read.
fn read_saved(path: &Path) -> Vec<Url> {
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
            .filter_map(|text| match parse_peer_url(text) {
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

    #[test]
    fn added_peers_are_checked_saved_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = PeerBook::path_beside(&dir.path().join("chaindata"));
        let listen: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        let configured = vec![Url::parse("http://127.0.0.1:5002").unwrap()];
        let (book, mut added) = PeerBook::open(configured.clone(), path.clone(), listen);
        assert!(book.add("http://127.0.0.1:5004").unwrap());
        assert!(!book.add("http://127.0.0.1:5004/").unwrap());
        assert_eq!(added.try_recv().unwrap().as_str(), "http://127.0.0.1:5004/");
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
}
