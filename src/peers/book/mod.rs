//! The peer book: who the node's peers are and what it knows of each, kept
//! in `peers.json` beside the chaindata folder with the operator's bans.
//!
//! Bitcoin Core's connection manager is the model. The book holds the
//! peers the node talks to now: configured and added ones (at most
//! [`MAX_PEERS`], never evicted), the outbound peers it chose from the
//! addresses it learned ([`PeerSlots::outbound`]) and the inbound peers that
//! sync from it ([`PeerSlots::inbound`]). Inbound slots are shared by network
//! group ([`crate::netgroup`]): one group holds at most
//! [`evict::inbound_per_group`] of them, and when the slots are full a newcomer
//! takes the place of a failing inbound peer, else of the youngest peer of
//! the group holding the most, so an address with a hundred ports holds
//! its group's share and honest nodes can always join. Inbound peers are
//! not saved: they come back by themselves. The addresses the node could
//! connect to are the [`super::AddrMan`]'s.
//!
//! Judging a peer is [`super::score`]'s: a peer that reaches the threshold
//! is discouraged for a while, in memory (a learned or inbound one leaves
//! the book and is not taken back meanwhile; a configured or added one is
//! left alone meanwhile). Only the operator bans, for a time, and only the
//! operator's bans are saved. Each peer's health, per kind of contact, is
//! [`super::health`]'s; a peer that does not answer is retried after
//! growing pauses. Only peers that passed a handshake get in (see
//! [`crate::handshake`]); this module keeps the records, it does not talk
//! to anyone.

mod evict;
mod file;
#[cfg(test)]
mod tests;
mod view;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::PeerUrl;
use super::health::{Change, Contact, Failure, Health, Healths, retry_delay};
use super::score::{Discouragement, Judged, Misbehaviour, Scores};
use crate::clock::unix_now;
use crate::fsio::{FileError, SaveOnChange};
use crate::setting::Setting;
use file::{Saved, read_saved};

pub use view::{PeerState, PeerView};

/// Most configured and added peers a node keeps.
pub const MAX_PEERS: usize = 64;

pub const OUTBOUND_PEERS: Setting<usize> = Setting {
    key: "outbound_peers",
    help: "outbound peers the node chooses from the addresses it learns, besides configured and added ones",
    default: 8,
    range: Some(0..=64),
    unit: "a whole number",
};
pub const MAX_INBOUND: Setting<usize> = Setting {
    key: "max_inbound",
    help: "most inbound peers: nodes that sync from this one and hear its blocks, an eighth of them at most per network group",
    default: 64,
    range: Some(0..=1024),
    unit: "a whole number",
};
pub const BAN_SECONDS: Setting<u64> = Setting {
    key: "ban_seconds",
    help: "how long an operator's ban lasts when it does not say (jbc peers ban --for), and how long a peer the operator removed is not taken back",
    default: 86_400,
    range: Some(1..=365 * 86_400),
    unit: "a whole number of seconds",
};

/// How many peers of the kinds the node chooses itself it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerSlots {
    /// Outbound peers chosen from learned addresses.
    pub outbound: usize,
    /// Inbound peers.
    pub inbound: usize,
}

impl Default for PeerSlots {
    fn default() -> PeerSlots {
        PeerSlots {
            outbound: OUTBOUND_PEERS.default,
            inbound: MAX_INBOUND.default,
        }
    }
}

/// Most bans remembered; the oldest make way.
const MAX_BANS: usize = 1024;
/// Most strangers whose handshake attempt is remembered, so that none is
/// tried twice within the removal window however often it is named.
const MAX_ATTEMPTS_REMEMBERED: usize = 4096;

/// How a peer came into the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// In the node's config: never evicted.
    Config,
    /// Added by the operator with `POST /peers`: never evicted.
    Added,
    /// An outbound peer the node chose from the addresses it learned: may
    /// make way for a newcomer, and is replaced when it fails.
    Learned,
    /// A node that syncs from this one, reached back at the address its
    /// request came from: hears our blocks, is synced from only when it
    /// shows it is ahead, and is not saved.
    Inbound,
}

impl Origin {
    /// Whether the operator named it (config or `POST /peers`): such a peer
    /// is never evicted, and a discouragement leaves it in the book.
    pub fn by_operator(self) -> bool {
        matches!(self, Origin::Config | Origin::Added)
    }
}

/// What the handshake found at a peer's URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Identity {
    /// A node of this software, with its id for this run and its version.
    Jbc { node_id: String, version: String },
    /// A node of the original Python implementation: no `/status`, and it
    /// learns blocks only through `POST /mined`.
    Original,
}

/// One peer's record, as saved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub url: PeerUrl,
    pub origin: Origin,
    /// What its last handshake found.
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// When it last answered usefully (seconds since the epoch).
    #[serde(default)]
    pub last_success: Option<u64>,
    /// Syncs that failed in a row.
    #[serde(default)]
    pub failures: u32,
    /// When the current run of failures began (seconds since the epoch).
    #[serde(default)]
    pub failing_since: Option<u64>,
    /// Its tip's index when it last said.
    #[serde(default)]
    pub height: Option<u64>,
    #[serde(skip)]
    runtime: Runtime,
}

/// What is known of a peer only while the node runs.
#[derive(Debug, Clone)]
struct Runtime {
    health: Healths,
    /// The URL turned out to be this node itself.
    itself: bool,
    /// When the next sync is due after a failure.
    retry_at: Option<Instant>,
    /// When it came into the book (in this run): the youngest of a crowded
    /// group makes way first.
    admitted: Instant,
}

impl Default for Runtime {
    fn default() -> Runtime {
        Runtime {
            health: Healths::default(),
            itself: false,
            retry_at: None,
            admitted: Instant::now(),
        }
    }
}

/// A ban by the operator, as saved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ban {
    /// Until when (seconds since the epoch).
    pub until: u64,
    /// Why.
    pub reason: String,
    /// Set by the operator (`jbc peers ban`). Earlier versions banned by
    /// themselves and saved those bans too; they are forgotten at start.
    #[serde(default)]
    pub by_operator: bool,
}

/// How many peers of each direction the node has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Directions {
    /// Peers it syncs from: configured, added and chosen.
    pub outbound: usize,
    /// Of those, the ones it chose from learned addresses.
    pub chosen: usize,
    /// Nodes that sync from it.
    pub inbound: usize,
}

/// Why a peer could not be put in the book.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error("banned by the operator until {until} (seconds since the epoch): {reason}")]
    Banned { until: u64, reason: String },
    #[error("discouraged for another {seconds} s (it misbehaved: {reason})")]
    Discouraged { seconds: u64, reason: String },
    #[error("the operator removed it; only the operator can add it again")]
    Removed,
    #[error("the book has no room: {limit} {what} peers, none of which could make way")]
    Full { what: &'static str, limit: usize },
    #[error(
        "its network group ({group}) holds {limit} inbound peers already, its share of the slots"
    )]
    GroupFull { group: String, limit: usize },
    #[error("cannot save the peer list to {}: {}", .0.path.display(), .0.source)]
    Save(#[from] FileError),
}

/// What [`PeerBook::admit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    /// A new peer; `evicted` made way for it.
    New { evicted: Option<PeerUrl> },
    /// It was in the book already (its record is updated).
    Known,
    /// It was in the book as a peer the node found (`from`), and is now of
    /// the origin asked for: the operator's word, or the node's own choice,
    /// makes it one the node keeps.
    Promoted { from: Origin },
    /// It is a node already in the book under another URL (the same node
    /// id: `localhost:P` and `127.0.0.1:P`, or one server behind many
    /// ports): one node takes one place.
    Alias { of: PeerUrl },
}

/// What a judgement of a peer did to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Its points went up, short of the threshold.
    Scored { points: u32 },
    /// It is discouraged now, for `seconds`; `left`: it left the book.
    Discouraged { seconds: u64, left: bool },
    /// Nothing more: it was discouraged already, or banned.
    Nothing,
}

/// Shared handle to the peer book.
#[derive(Clone)]
pub struct PeerBook {
    inner: Arc<Inner>,
}

struct Inner {
    book: Mutex<Book>,
    /// `peers.json`: saved at once when who is in the book or banned
    /// changes, and by [`PeerBook::flush`] when only last-seen figures did.
    file: SaveOnChange,
    /// How long an operator's ban lasts unless the operator says, and how
    /// long a peer the operator removed is not taken back.
    ban_time: Duration,
    /// The pause between syncs with a healthy peer, and the first pause
    /// after a failure.
    sync_interval: Duration,
    /// How many outbound and inbound peers are kept.
    limits: PeerSlots,
    /// The operator cut this node off (`jbc isolate`): every peer is left
    /// alone until `jbc rejoin` (in memory: a restart rejoins).
    isolated: std::sync::atomic::AtomicBool,
}

struct Book {
    records: Vec<Record>,
    /// The operator's bans.
    bans: BTreeMap<PeerUrl, Ban>,
    /// Misbehaviour points and discouragements, in memory.
    scores: Scores,
    /// Strangers whose handshake was attempted, and when.
    attempts: HashMap<PeerUrl, Instant>,
    /// Peers the operator removed, and when: not taken back as inbound or
    /// chosen peers within the ban time (the operator's word stands).
    removed: HashMap<PeerUrl, Instant>,
}

impl PeerBook {
    /// The configured peers plus those and the operator's bans saved at
    /// `path`.
    pub fn open(
        configured: Vec<PeerUrl>,
        path: PathBuf,
        ban_time: Duration,
        sync_interval: Duration,
        limits: PeerSlots,
    ) -> PeerBook {
        let saved: Saved = read_saved(&path);
        let now = unix_now();
        let mut records: Vec<Record> = configured
            .iter()
            .map(|url| Record::new(url.clone(), Origin::Config))
            .collect();
        for mut record in saved.peers {
            if let Some(existing) = records.iter_mut().find(|r| r.url == record.url) {
                // Configured still, with what was learned of it.
                record.origin = Origin::Config;
                *existing = record;
            } else {
                let kept = records.iter().filter(|r| r.origin == record.origin).count();
                let room = match record.origin {
                    Origin::Config | Origin::Inbound => false,
                    Origin::Added => kept < MAX_PEERS,
                    Origin::Learned => kept < limits.outbound,
                };
                if room {
                    records.push(record);
                }
            }
        }
        let (bans, automatic): (BTreeMap<_, _>, BTreeMap<_, _>) = saved
            .banned
            .into_iter()
            .filter(|(_, ban)| ban.until > now)
            .partition(|(_, ban)| ban.by_operator);
        let file = SaveOnChange::new(path);
        if !automatic.is_empty() {
            let urls: Vec<String> = automatic.keys().map(ToString::to_string).collect();
            info!(
                "forgot {} ban(s) an earlier version imposed by itself ({}): only the operator's bans last now",
                automatic.len(),
                urls.join(", ")
            );
            file.mark_changed();
        }
        PeerBook {
            inner: Arc::new(Inner {
                book: Mutex::new(Book {
                    records,
                    bans,
                    scores: Scores::default(),
                    attempts: HashMap::new(),
                    removed: HashMap::new(),
                }),
                file,
                ban_time,
                sync_interval,
                limits,
                isolated: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// The file the book is saved in, for a chaindata folder.
    pub fn path_beside(chaindata: &Path) -> PathBuf {
        chaindata.with_file_name("peers.json")
    }

    /// The peers the node talks to: in the book, not itself.
    pub fn urls(&self) -> Vec<PeerUrl> {
        self.book()
            .records
            .iter()
            .filter(|r| !r.runtime.itself)
            .map(|r| r.url.clone())
            .collect()
    }

    /// Whether `url` is a peer the node talks to (in the book, not itself).
    pub fn talks_to(&self, url: &PeerUrl) -> bool {
        self.book().record(url).is_some_and(|r| !r.runtime.itself)
    }

    /// How many peers the node talks to.
    pub fn count(&self) -> usize {
        self.book()
            .records
            .iter()
            .filter(|r| !r.runtime.itself)
            .count()
    }

    /// How many peers of each kind the node talks to: outbound (the ones
    /// it syncs from: configured, added and chosen) and inbound.
    pub fn directions(&self) -> Directions {
        let book = self.book();
        let mut directions = Directions::default();
        for record in book.records.iter().filter(|r| !r.runtime.itself) {
            match record.origin {
                Origin::Inbound => directions.inbound += 1,
                Origin::Learned => {
                    directions.outbound += 1;
                    directions.chosen += 1;
                }
                Origin::Config | Origin::Added => directions.outbound += 1,
            }
        }
        directions
    }

    /// The chosen outbound peers.
    pub fn chosen(&self) -> Vec<PeerUrl> {
        self.book()
            .records
            .iter()
            .filter(|r| r.origin == Origin::Learned && !r.runtime.itself)
            .map(|r| r.url.clone())
            .collect()
    }

    /// Peers of this node that answered their last sync and are nodes of
    /// this software: what can be told to others who ask for addresses.
    pub fn working_jbc(&self) -> Vec<PeerUrl> {
        self.book()
            .records
            .iter()
            .filter(|r| {
                !r.runtime.itself
                    && r.failures == 0
                    && r.runtime.health.sync == Health::Up
                    && matches!(r.identity, Some(Identity::Jbc { .. }))
            })
            .map(|r| r.url.clone())
            .collect()
    }

    /// How many failures in a row the last contacts of `url` had, by the
    /// kind of contact.
    pub fn failures_in_a_row(&self, url: &PeerUrl, contact: Contact) -> u32 {
        self.book()
            .record(url)
            .map_or(0, |r| r.runtime.health.failures(contact))
    }

    /// How the last sync with `url` failed, if it did.
    pub fn sync_failure(&self, url: &PeerUrl) -> Option<Failure> {
        self.book()
            .record(url)
            .and_then(|r| r.runtime.health.sync_failure())
    }

    /// Whether `url` is in the book (itself included).
    pub fn contains(&self, url: &PeerUrl) -> bool {
        self.book().record(url).is_some()
    }

    /// How `url` came into the book, if it is there.
    pub fn origin(&self, url: &PeerUrl) -> Option<Origin> {
        self.book().record(url).map(|r| r.origin)
    }

    /// What the last handshake with `url` found.
    pub fn identity(&self, url: &PeerUrl) -> Option<Identity> {
        self.book().record(url).and_then(|r| r.identity.clone())
    }

    /// The operator's ban on `url`, if it is banned now.
    pub fn ban(&self, url: &PeerUrl) -> Option<Ban> {
        let now = unix_now();
        self.book()
            .bans
            .get(url)
            .filter(|ban| ban.until > now)
            .cloned()
    }

    /// The discouragement of `url`, if one is in force.
    pub fn discouraged(&self, url: &PeerUrl) -> Option<Discouragement> {
        self.book().scores.discouraged(url, Instant::now()).cloned()
    }

    /// Cuts the node off from every peer (true), or ends that (false);
    /// whether that changed anything.
    pub fn set_isolated(&self, isolated: bool) -> bool {
        self.inner
            .isolated
            .swap(isolated, std::sync::atomic::Ordering::SeqCst)
            != isolated
    }

    /// Whether the operator cut the node off from its peers.
    pub fn is_isolated(&self) -> bool {
        self.inner
            .isolated
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Why the node leaves `url` alone now, if it does: its operator cut
    /// it off from every peer, banned `url`, or `url` is discouraged; with
    /// the time left (an isolation has no end of its own: an hour, then it
    /// is looked at again, unless `jbc rejoin` wakes the peer's task first).
    pub fn left_alone(&self, url: &PeerUrl) -> Option<(Duration, String)> {
        if self.is_isolated() {
            return Some((
                Duration::from_secs(3600),
                "this node is isolated by its operator (jbc rejoin ends it)".to_string(),
            ));
        }
        if let Some(ban) = self.ban(url) {
            let left = Duration::from_secs(ban.until.saturating_sub(unix_now()));
            return Some((left, format!("banned by the operator: {}", ban.reason)));
        }
        self.discouraged(url).map(|d| {
            (
                d.until.saturating_duration_since(Instant::now()),
                format!("discouraged: {}", d.reason),
            )
        })
    }

    /// Notes an attempt to handshake with a stranger; false if it was
    /// attempted within `window` already (so a URL named over and over is
    /// asked once in that time; remembered at most for the ban time).
    pub fn first_attempt(&self, url: &PeerUrl, window: Duration) -> bool {
        let mut book = self.book();
        let now = Instant::now();
        let ban_time = self.inner.ban_time;
        book.attempts
            .retain(|_, at| now.duration_since(*at) < ban_time);
        if book
            .attempts
            .get(url)
            .is_some_and(|at| now.duration_since(*at) < window)
        {
            return false;
        }
        if book.attempts.len() >= MAX_ATTEMPTS_REMEMBERED
            && let Some(oldest) = book
                .attempts
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(url, _)| url.clone())
        {
            book.attempts.remove(&oldest);
        }
        book.attempts.insert(url.clone(), now);
        true
    }

    /// Makes inbound peer `url` one of the node's chosen outbound peers
    /// too (it syncs from it from now on), if there is room; false if not.
    pub fn choose_inbound(&self, url: &PeerUrl) -> bool {
        let chosen = {
            let mut book = self.book();
            let chosen = book
                .records
                .iter()
                .filter(|r| r.origin == Origin::Learned)
                .count();
            match book.record_mut(url) {
                Some(record)
                    if record.origin == Origin::Inbound && chosen < self.inner.limits.outbound =>
                {
                    record.origin = Origin::Learned;
                    true
                }
                _ => false,
            }
        };
        if chosen {
            self.save_logged();
        }
        chosen
    }

    /// How many chosen and inbound peers the book keeps.
    pub fn limits(&self) -> PeerSlots {
        self.inner.limits
    }

    /// The ban time: how long a peer the operator removed is not taken
    /// back, and the default length of the operator's bans.
    pub fn ban_time(&self) -> Duration {
        self.inner.ban_time
    }

    /// Puts a peer that passed its handshake in the book (or updates what
    /// is known of it), making room by evicting a peer of its kind if
    /// needed, and saves the book.
    pub fn admit(
        &self,
        url: &PeerUrl,
        origin: Origin,
        identity: Identity,
    ) -> Result<Admitted, BookError> {
        let admitted = {
            let mut book = self.book();
            let now = Instant::now();
            // The operator's word lifts a ban, a discouragement and a
            // removal; only a peer the node found itself is refused.
            let ban_time = self.inner.ban_time;
            if origin == Origin::Added {
                book.bans.remove(url);
                book.removed.remove(url);
                book.scores.forget(url);
            } else if let Some(ban) = book.bans.get(url).filter(|ban| ban.until > unix_now()) {
                return Err(BookError::Banned {
                    until: ban.until,
                    reason: ban.reason.clone(),
                });
            } else if matches!(origin, Origin::Learned | Origin::Inbound) {
                if book
                    .removed
                    .get(url)
                    .is_some_and(|at| at.elapsed() < ban_time)
                {
                    return Err(BookError::Removed);
                }
                if let Some(discouraged) = book.scores.discouraged(url, now) {
                    return Err(BookError::Discouraged {
                        seconds: discouraged.until.saturating_duration_since(now).as_secs(),
                        reason: discouraged.reason.clone(),
                    });
                }
            }
            let alias = match &identity {
                Identity::Jbc { node_id, .. } => book
                    .records
                    .iter()
                    .find(|r| {
                        &r.url != url
                            && matches!(&r.identity, Some(Identity::Jbc { node_id: other, .. }) if other == node_id)
                    })
                    .map(|r| r.url.clone()),
                Identity::Original => None,
            };
            if let Some(of) = alias {
                return Ok(Admitted::Alias { of });
            }
            if let Some(record) = book.record_mut(url) {
                record.identity = Some(identity);
                // The operator's word, or the node's own choice, makes an
                // inbound peer one it keeps.
                let upgrade = match origin {
                    Origin::Added => matches!(record.origin, Origin::Learned | Origin::Inbound),
                    Origin::Learned => record.origin == Origin::Inbound,
                    Origin::Config | Origin::Inbound => false,
                };
                if upgrade {
                    let from = std::mem::replace(&mut record.origin, origin);
                    Admitted::Promoted { from }
                } else {
                    Admitted::Known
                }
            } else {
                let evicted = book.make_room(url, origin, self.inner.limits)?;
                let mut record = Record::new(url.clone(), origin);
                record.identity = Some(identity);
                book.records.push(record);
                Admitted::New { evicted }
            }
        };
        self.save()?;
        Ok(admitted)
    }

    /// Notes what the latest handshake with `url` found, and saves the book
    /// if that changed.
    pub fn set_identity(&self, url: &PeerUrl, identity: Identity) {
        let changed = {
            let mut book = self.book();
            match book.record_mut(url) {
                Some(record) if record.identity.as_ref() != Some(&identity) => {
                    record.identity = Some(identity);
                    true
                }
                _ => false,
            }
        };
        if changed {
            self.save_logged();
        }
    }

    /// Bans `url` for `time` at the operator's word (saved): it is not
    /// contacted, nor taken back, until then. A configured peer stays in
    /// the book (the config names it) and is left alone.
    pub fn ban_by_operator(
        &self,
        url: &PeerUrl,
        time: Duration,
        reason: &str,
    ) -> Result<Ban, BookError> {
        let ban = {
            let mut book = self.book();
            let ban = Ban {
                until: unix_now().saturating_add(time.as_secs()),
                reason: reason.chars().take(300).collect(),
                by_operator: true,
            };
            book.records
                .retain(|r| &r.url != url || r.origin == Origin::Config);
            if !book.bans.contains_key(url)
                && book.bans.len() >= MAX_BANS
                && let Some(oldest) = book
                    .bans
                    .iter()
                    .min_by_key(|(_, ban)| ban.until)
                    .map(|(url, _)| url.clone())
            {
                book.bans.remove(&oldest);
            }
            book.bans.insert(url.clone(), ban.clone());
            ban
        };
        self.save()?;
        Ok(ban)
    }

    /// Lifts the operator's ban on `url`, and forgets its misbehaviour
    /// (a discouragement ends); false if there was neither.
    pub fn unban(&self, url: &PeerUrl) -> Result<bool, BookError> {
        let (banned, discouraged) = {
            let mut book = self.book();
            let discouraged = book.scores.discouraged(url, Instant::now()).is_some();
            book.scores.forget(url);
            (book.bans.remove(url).is_some(), discouraged)
        };
        if banned {
            self.save()?;
        }
        Ok(banned || discouraged)
    }

    /// Takes a peer out of the book at the operator's word; false if it
    /// was not there. It is not taken back as an inbound or chosen peer
    /// within the ban time.
    pub fn remove(&self, url: &PeerUrl) -> Result<bool, BookError> {
        let removed = {
            let mut book = self.book();
            let removed = book.drop_record(url);
            if removed {
                let ban_time = self.inner.ban_time;
                book.removed.retain(|_, at| at.elapsed() < ban_time);
                if book.removed.len() < MAX_ATTEMPTS_REMEMBERED {
                    book.removed.insert(url.clone(), Instant::now());
                }
            }
            removed
        };
        if removed {
            self.save()?;
        }
        Ok(removed)
    }

    /// Whether the operator removed `url` within the ban time.
    pub fn removed_by_operator(&self, url: &PeerUrl) -> bool {
        let ban_time = self.inner.ban_time;
        self.book()
            .removed
            .get(url)
            .is_some_and(|at| at.elapsed() < ban_time)
    }

    /// Takes a peer the node found itself out of the book (it failed); false
    /// if it was not there.
    pub fn drop_peer(&self, url: &PeerUrl) -> Result<bool, BookError> {
        let removed = self.book().drop_record(url);
        if removed {
            self.save()?;
        }
        Ok(removed)
    }

    /// Notes that `url` leads to this node itself. A configured URL stays
    /// (the config names it) but is never contacted; any other goes.
    pub fn mark_itself(&self, url: &PeerUrl) {
        let mut book = self.book();
        if let Some(record) = book.record_mut(url) {
            record.runtime.itself = true;
        }
        let before = book.records.len();
        book.records
            .retain(|r| &r.url != url || r.origin == Origin::Config);
        if book.records.len() < before {
            drop(book);
            self.save_logged();
        }
    }

    /// Notes a usable answer from `url`.
    pub fn record_success(&self, url: &PeerUrl, contact: Contact, height: Option<u64>) -> Change {
        let mut book = self.book();
        self.inner.file.mark_changed();
        let Some(record) = book.record_mut(url) else {
            return Change::StillUp;
        };
        if contact == Contact::Sync {
            record.failures = 0;
            record.failing_since = None;
            record.runtime.retry_at = None;
            record.last_success = Some(unix_now());
            if height.is_some() {
                record.height = height;
            }
        }
        record.runtime.health.succeeded(contact)
    }

    /// Notes a failed contact with `url`; `failure` names the way it failed
    /// (a new way is news, the same one again is not). A failed sync also
    /// pushes the next one back.
    pub fn record_failure(&self, url: &PeerUrl, contact: Contact, failure: Failure) -> Change {
        let sync_interval = self.inner.sync_interval;
        let mut book = self.book();
        self.inner.file.mark_changed();
        let Some(record) = book.record_mut(url) else {
            return Change::StillFailing { failures: 1 };
        };
        if contact == Contact::Sync {
            record.failures += 1;
            record.failing_since.get_or_insert_with(unix_now);
            record.runtime.retry_at =
                Some(Instant::now() + retry_delay(sync_interval, record.failures));
        }
        record.runtime.health.failed(contact, failure)
    }

    /// Whether the last sync with `url` failed.
    pub fn is_failing(&self, url: &PeerUrl) -> bool {
        self.book().record(url).is_some_and(|r| r.failures > 0)
    }

    /// How long to wait before the next sync with `url`: the sync interval
    /// while it answers, growing pauses while it does not.
    pub fn next_sync_in(&self, url: &PeerUrl) -> Duration {
        let book = self.book();
        let retry = book
            .record(url)
            .and_then(|r| r.runtime.retry_at)
            .map(|at| at.saturating_duration_since(Instant::now()));
        retry.unwrap_or(self.inner.sync_interval)
    }

    /// Counts `offence` (told in `reason`) against `url`. At the threshold
    /// it is discouraged; a peer the node found itself then leaves the
    /// book (and is not taken back while it lasts), one the operator named
    /// stays and is left alone meanwhile.
    pub fn judge(&self, url: &PeerUrl, offence: Misbehaviour, reason: &str) -> Verdict {
        let verdict = {
            let mut book = self.book();
            if book.bans.contains_key(url) {
                return Verdict::Nothing;
            }
            let now = Instant::now();
            match book.scores.judge(url, offence, reason, now) {
                Judged::Scored { points } => Verdict::Scored { points },
                Judged::AlreadyDiscouraged => Verdict::Nothing,
                Judged::Discouraged { until } => {
                    let before = book.records.len();
                    book.records
                        .retain(|r| &r.url != url || r.origin.by_operator());
                    Verdict::Discouraged {
                        seconds: until.saturating_duration_since(now).as_secs(),
                        left: book.records.len() < before,
                    }
                }
            }
        };
        if matches!(verdict, Verdict::Discouraged { left: true, .. }) {
            self.save_logged();
        }
        verdict
    }

    /// Saves the book if last-seen figures changed since the last save.
    pub fn flush(&self) {
        if let Err(error) = self.inner.file.flush(|| self.render()) {
            warn!("{}", BookError::from(error));
        }
    }

    fn save_logged(&self) {
        if let Err(error) = self.save() {
            warn!("{error}");
        }
    }

    /// Writes the book as it is now.
    fn save(&self) -> Result<(), BookError> {
        Ok(self.inner.file.save(|| self.render())?)
    }

    /// The file's bytes for the book as it is now.
    fn render(&self) -> Vec<u8> {
        let book = self.book();
        file::render(&book.records, &book.bans)
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.inner.book.lock().expect("peer book lock")
    }
}

impl Record {
    fn new(url: PeerUrl, origin: Origin) -> Record {
        Record {
            url,
            origin,
            identity: None,
            last_success: None,
            failures: 0,
            failing_since: None,
            height: None,
            runtime: Runtime::default(),
        }
    }

    /// Whether it fails now, by either kind of contact.
    fn failing(&self) -> bool {
        self.failures > 0 || self.runtime.health.failures(Contact::Announce) > 0
    }
}

impl Book {
    /// Takes `url`'s record out; false if there was none.
    fn drop_record(&mut self, url: &PeerUrl) -> bool {
        let before = self.records.len();
        self.records.retain(|r| &r.url != url);
        self.records.len() < before
    }

    fn record(&self, url: &PeerUrl) -> Option<&Record> {
        self.records.iter().find(|r| &r.url == url)
    }

    fn record_mut(&mut self, url: &PeerUrl) -> Option<&mut Record> {
        self.records.iter_mut().find(|r| &r.url == url)
    }
}
