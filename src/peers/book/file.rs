//! `peers.json`: the peers the node keeps across a restart and the
//! operator's bans, written whole at each change, read back at start with
//! whatever of it can be read.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::{Ban, Origin, Record};
use crate::fsio::set_aside_damaged;
use crate::peers::PeerUrl;

/// The file: records and bans.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Saved {
    #[serde(default)]
    pub peers: Vec<Record>,
    #[serde(default)]
    pub banned: BTreeMap<PeerUrl, Ban>,
}

/// The file's shape, borrowed for writing.
#[derive(Serialize)]
struct SavedRef<'a> {
    peers: Vec<&'a Record>,
    banned: &'a BTreeMap<PeerUrl, Ban>,
}

/// The file's bytes for `records` (inbound peers are not saved: they come
/// back by themselves) and `bans`.
pub(super) fn render(records: &[Record], bans: &BTreeMap<PeerUrl, Ban>) -> Vec<u8> {
    let saved = SavedRef {
        peers: records
            .iter()
            .filter(|r| r.origin != Origin::Inbound)
            .collect(),
        banned: bans,
    };
    let mut json = serde_json::to_vec_pretty(&saved).expect("the book serialises");
    json.push(b'\n');
    json
}

/// The saved book: every record and ban in it that can be read. A file
/// with anything else in it (or none that parses) is moved aside with a
/// note, never overwritten by the next save, and the log says where. A
/// list of URLs (the file of earlier versions) is read as learned peers.
pub(super) fn read_saved(path: &Path) -> Saved {
    let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let (saved, damage) = match std::fs::read(path) {
        Ok(bytes) => parse_saved(&bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Saved::default(),
        Err(e) => (Saved::default(), Some(format!("cannot read it: {e}"))),
    };
    if let Some(reason) = damage {
        let kept = format!(
            "{} peers and {} bans kept",
            saved.peers.len(),
            saved.banned.len()
        );
        match set_aside_damaged(path, &reason) {
            Ok(aside) => warn!(
                file = %shown.display(),
                "peer book {}: {reason}; {kept}; the file as it was is in {}",
                shown.display(),
                aside.display()
            ),
            Err(error) => warn!(
                file = %shown.display(),
                "peer book {}: {reason}; {kept}; it could not be moved aside ({error})",
                shown.display()
            ),
        }
    }
    saved
}

/// What of a saved book can be read, and what was wrong with the rest.
pub(super) fn parse_saved(bytes: &[u8]) -> (Saved, Option<String>) {
    use serde_json::Value;
    let mut saved = Saved::default();
    let mut problems: Vec<String> = Vec::new();
    match serde_json::from_slice::<Value>(bytes) {
        Err(e) => problems.push(format!("not JSON: {e}")),
        Ok(Value::Array(urls)) => {
            for (position, text) in urls.iter().enumerate() {
                match text.as_str().map(PeerUrl::parse) {
                    Some(Ok(url)) => saved.peers.push(Record::new(url, Origin::Learned)),
                    Some(Err(e)) => problems.push(format!("URL {position}: {e}")),
                    None => problems.push(format!("URL {position} is not a string")),
                }
            }
        }
        Ok(Value::Object(mut fields)) => {
            match fields.remove("peers") {
                Some(Value::Array(records)) => {
                    for (position, record) in records.into_iter().enumerate() {
                        match serde_json::from_value::<Record>(record) {
                            Ok(record) => saved.peers.push(record),
                            Err(e) => problems.push(format!("peer {position}: {e}")),
                        }
                    }
                }
                Some(_) => problems.push("`peers` is not a list".into()),
                None => {}
            }
            match fields.remove("banned") {
                Some(Value::Object(bans)) => {
                    for (url, ban) in bans {
                        match (PeerUrl::parse(&url), serde_json::from_value::<Ban>(ban)) {
                            (Ok(url), Ok(ban)) => {
                                saved.banned.insert(url, ban);
                            }
                            (Err(e), _) => problems.push(format!("ban of {url:?}: {e}")),
                            (_, Err(e)) => problems.push(format!("ban of {url:?}: {e}")),
                        }
                    }
                }
                Some(_) => problems.push("`banned` is not an object".into()),
                None => {}
            }
        }
        Ok(_) => problems.push("a peer book is a JSON object with `peers` and `banned`".into()),
    }
    (saved, crate::human::first_of(&problems))
}
