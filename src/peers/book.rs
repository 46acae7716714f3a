//! The address book: who the node's peers are, what it knows of each, and
//! whom it has banned, kept in `peers.json` beside the chaindata folder.
//!
//! Bitcoin Core's connection manager is the model. The book holds the
//! peers the node talks to now: configured and added ones (at most
//! [`MAX_PEERS`], never evicted), the outbound peers it chose from the
//! addresses it learned ([`Limits::outbound`]) and the inbound peers that
//! sync from it ([`Limits::inbound`]); when one of the last two kinds is
//! full, the one of its kind that has been failing longest (or been silent
//! longest) makes way for a newcomer, so honest nodes can always join.
//! Inbound peers are not saved: they come back by themselves. The
//! addresses the node could connect to are the [`super::AddrMan`]'s. Each peer has a misbehaviour score; at [`BAN_THRESHOLD`] it is
//! banned for the configured time. A peer that does not answer is retried
//! after exponentially growing pauses rather than at every sync. Only peers
//! that passed a handshake get in (see [`crate::handshake`]); this module
//! keeps the records, it does not talk to anyone.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::PeerUrl;
use crate::clock::unix_now;
use crate::fsio::{FileError, SaveOnChange, set_aside_damaged};

/// Most configured and added peers a node keeps.
pub const MAX_PEERS: usize = 64;

/// How many peers of the kinds the node chooses itself it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Outbound peers chosen from learned addresses.
    pub outbound: usize,
    /// Inbound peers.
    pub inbound: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            outbound: 8,
            inbound: 64,
        }
    }
}
/// The misbehaviour score at which a peer is banned.
pub const BAN_THRESHOLD: u32 = 100;
/// Most bans remembered; the oldest make way.
const MAX_BANS: usize = 1024;
/// Most strangers whose handshake attempt is remembered, so that none is
/// tried twice within the ban time however often it is named.
const MAX_ATTEMPTS_REMEMBERED: usize = 4096;
/// The longest pause between two attempts to reach a failing peer.
const MAX_RETRY: Duration = Duration::from_secs(300);

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
    /// A node that syncs from this one or announced a block to it, reached
    /// back at the URL it gave: hears our blocks, is synced from only when
    /// it shows it is ahead, and is not saved.
    Inbound,
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

/// The two ways the node contacts a peer, each with its own record: a peer
/// can serve its chain well and still refuse announcements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Contact {
    /// Asking for its status and blocks.
    Sync,
    /// Posting our new blocks to it.
    Announce,
}

/// What the node last heard from a peer, by one kind of contact.
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
    /// It fails as it did last time (or as the other kind of contact
    /// already reported).
    StillFailing { failures: u32 },
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
    /// Misbehaviour points; at [`BAN_THRESHOLD`] the peer is banned.
    #[serde(default)]
    pub score: u32,
    /// Its tip's index when it last said.
    #[serde(default)]
    pub height: Option<u64>,
    #[serde(skip)]
    runtime: Runtime,
}

/// What is known of a peer only while the node runs.
#[derive(Debug, Clone, Default)]
struct Runtime {
    sync: Health,
    announce: Health,
    /// The URL turned out to be this node itself.
    itself: bool,
    /// When the next sync is due after a failure.
    retry_at: Option<Instant>,
}

/// A ban, as saved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ban {
    /// Until when (seconds since the epoch).
    pub until: u64,
    /// Why.
    pub reason: String,
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

/// A peer as `GET /peers` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    pub url: PeerUrl,
    pub origin: Option<Origin>,
    /// `new` (not reached yet), `up`, `backing off`, `banned` or `itself`.
    pub state: &'static str,
    #[serde(flatten)]
    pub identity: Option<Identity>,
    pub height: Option<u64>,
    /// Seconds since the epoch.
    pub last_success: Option<u64>,
    pub failures: u32,
    pub score: u32,
    /// Seconds since the epoch, for a banned peer.
    pub banned_until: Option<u64>,
    pub ban_reason: Option<String>,
    /// Milliseconds until the next attempt, for a peer backing off.
    pub retry_in_ms: Option<u64>,
}

/// Why a peer could not be put in the book.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error("banned until {until} (seconds since the epoch): {reason}")]
    Banned { until: u64, reason: String },
    #[error("the operator removed it; only the operator can add it again")]
    Removed,
    #[error("the book has no room: {limit} {what} peers, none of which could make way")]
    Full { what: &'static str, limit: usize },
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

/// The file: records and bans.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    #[serde(default)]
    peers: Vec<Record>,
    #[serde(default)]
    banned: BTreeMap<PeerUrl, Ban>,
}

/// Shared handle to the address book.
#[derive(Clone)]
pub struct PeerBook {
    inner: Arc<Inner>,
}

struct Inner {
    book: Mutex<Book>,
    /// `peers.json`: saved at once when who is in the book or banned
    /// changes, and by [`PeerBook::flush`] when only last-seen figures did.
    file: SaveOnChange,
    /// How long a ban lasts.
    ban_time: Duration,
    /// The pause between syncs with a healthy peer, and the first pause
    /// after a failure.
    sync_interval: Duration,
    /// How many outbound and inbound peers are kept.
    limits: Limits,
}

struct Book {
    records: Vec<Record>,
    bans: BTreeMap<PeerUrl, Ban>,
    /// Strangers whose handshake was attempted, and when.
    attempts: HashMap<PeerUrl, Instant>,
    /// Peers the operator removed, and when: not taken back as inbound or
    /// chosen peers within the ban time (the operator's word stands).
    removed: HashMap<PeerUrl, Instant>,
}

impl PeerBook {
    /// The configured peers plus those and the bans saved at `path`.
    pub fn open(
        configured: Vec<PeerUrl>,
        path: PathBuf,
        ban_time: Duration,
        sync_interval: Duration,
        limits: Limits,
    ) -> PeerBook {
        let saved = read_saved(&path);
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
        let bans = saved
            .banned
            .into_iter()
            .filter(|(_, ban)| ban.until > now)
            .collect();
        PeerBook {
            inner: Arc::new(Inner {
                book: Mutex::new(Book {
                    records,
                    bans,
                    attempts: HashMap::new(),
                    removed: HashMap::new(),
                }),
                file: SaveOnChange::new(path),
                ban_time,
                sync_interval,
                limits,
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

    /// The chosen outbound peers that answer (their last sync worked),
    /// with their network groups.
    pub fn working_chosen(&self) -> Vec<PeerUrl> {
        self.book()
            .records
            .iter()
            .filter(|r| r.origin == Origin::Learned && r.failures == 0 && !r.runtime.itself)
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
                    && r.runtime.sync == Health::Up
                    && matches!(r.identity, Some(Identity::Jbc { .. }))
            })
            .map(|r| r.url.clone())
            .collect()
    }

    /// How many failures in a row the last contacts of `url` had, by the
    /// kind of contact.
    pub fn failures_in_a_row(&self, url: &PeerUrl, contact: Contact) -> u32 {
        let book = self.book();
        match book.record(url).map(|r| match contact {
            Contact::Sync => r.runtime.sync,
            Contact::Announce => r.runtime.announce,
        }) {
            Some(Health::Failing { failures, .. }) => failures,
            _ => 0,
        }
    }

    /// Every peer and ban, for `GET /peers`.
    pub fn views(&self) -> Vec<PeerView> {
        let book = self.book();
        let now = Instant::now();
        let unix = unix_now();
        let mut views: Vec<PeerView> = book
            .records
            .iter()
            .map(|record| {
                let ban = book.bans.get(&record.url).filter(|ban| ban.until > unix);
                let retry_in = record
                    .runtime
                    .retry_at
                    .and_then(|at| at.checked_duration_since(now));
                let state = if record.runtime.itself {
                    "itself"
                } else if ban.is_some() {
                    "banned"
                } else if record.failures > 0 {
                    "backing off"
                } else if record.runtime.sync == Health::Up {
                    "up"
                } else {
                    "new"
                };
                PeerView {
                    url: record.url.clone(),
                    origin: Some(record.origin),
                    state,
                    identity: record.identity.clone(),
                    height: record.height,
                    last_success: record.last_success,
                    failures: record.failures,
                    score: record.score,
                    banned_until: ban.map(|ban| ban.until),
                    ban_reason: ban.map(|ban| ban.reason.clone()),
                    retry_in_ms: retry_in.map(|d| d.as_millis() as u64),
                }
            })
            .collect();
        for (url, ban) in &book.bans {
            if ban.until > unix && !book.records.iter().any(|r| &r.url == url) {
                views.push(PeerView {
                    url: url.clone(),
                    origin: None,
                    state: "banned",
                    identity: None,
                    height: None,
                    last_success: None,
                    failures: 0,
                    score: BAN_THRESHOLD,
                    banned_until: Some(ban.until),
                    ban_reason: Some(ban.reason.clone()),
                    retry_in_ms: None,
                });
            }
        }
        views
    }

    /// Whether `url` is in the book (itself included).
    pub fn contains(&self, url: &PeerUrl) -> bool {
        self.book().records.iter().any(|r| &r.url == url)
    }

    /// How `url` came into the book, if it is there.
    pub fn origin(&self, url: &PeerUrl) -> Option<Origin> {
        self.book().record(url).map(|r| r.origin)
    }

    /// What the last handshake with `url` found.
    pub fn identity(&self, url: &PeerUrl) -> Option<Identity> {
        self.book().record(url).and_then(|r| r.identity.clone())
    }

    /// The ban on `url`, if it is banned now.
    pub fn ban(&self, url: &PeerUrl) -> Option<Ban> {
        let now = unix_now();
        self.book()
            .bans
            .get(url)
            .filter(|ban| ban.until > now)
            .cloned()
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
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// The ban time: how long a stranger named in an announcement is not
    /// asked again.
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
            // The operator's word lifts a ban and a removal; only a peer
            // the node found itself is refused.
            let ban_time = self.inner.ban_time;
            if origin == Origin::Added {
                book.bans.remove(url);
                book.removed.remove(url);
            } else if matches!(origin, Origin::Learned | Origin::Inbound)
                && book
                    .removed
                    .get(url)
                    .is_some_and(|at| at.elapsed() < ban_time)
            {
                return Err(BookError::Removed);
            } else if let Some(ban) = book.bans.get(url).filter(|ban| ban.until > unix_now()) {
                return Err(BookError::Banned {
                    until: ban.until,
                    reason: ban.reason.clone(),
                });
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
                let limit = match origin {
                    Origin::Config | Origin::Added => MAX_PEERS,
                    Origin::Learned => self.inner.limits.outbound,
                    Origin::Inbound => self.inner.limits.inbound,
                };
                let kept = |o: Origin| match origin {
                    Origin::Config | Origin::Added => matches!(o, Origin::Config | Origin::Added),
                    _ => o == origin,
                };
                let full = book.records.iter().filter(|r| kept(r.origin)).count() >= limit;
                let evicted = if full {
                    let victim = match origin {
                        Origin::Learned | Origin::Inbound => book.eviction_candidate(origin),
                        Origin::Config | Origin::Added => None,
                    };
                    let Some(victim) = victim else {
                        let what = match origin {
                            Origin::Config | Origin::Added => "configured and added",
                            Origin::Learned => "outbound",
                            Origin::Inbound => "inbound",
                        };
                        return Err(BookError::Full { what, limit });
                    };
                    book.records.retain(|r| r.url != victim);
                    Some(victim)
                } else {
                    None
                };
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

    /// Lifts the ban on `url`; false if it was not banned.
    pub fn unban(&self, url: &PeerUrl) -> Result<bool, BookError> {
        let lifted = self.book().bans.remove(url).is_some();
        if lifted {
            self.save()?;
        }
        Ok(lifted)
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
        let health = record.runtime.health_mut(contact);
        let change = match *health {
            Health::Unknown => Change::FirstAnswer,
            Health::Up => Change::StillUp,
            Health::Failing { failures, .. } => Change::Recovered { failures },
        };
        *health = Health::Up;
        change
    }

    /// Notes a failed contact with `url`; `kind` names the way it failed (a
    /// new kind is news, the same one again is not). A failed sync also
    /// pushes the next one back.
    ///
    /// A failure the other kind of contact already reported (a peer that
    /// is down fails both ways) is not news either.
    pub fn record_failure(&self, url: &PeerUrl, contact: Contact, kind: &'static str) -> Change {
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
        let other = match contact {
            Contact::Sync => record.runtime.announce,
            Contact::Announce => record.runtime.sync,
        };
        let reported_elsewhere =
            matches!(other, Health::Failing { kind: elsewhere, .. } if elsewhere == kind);
        let health = record.runtime.health_mut(contact);
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
        *health = Health::Failing { kind, failures };
        match change {
            Change::Failing if reported_elsewhere => Change::StillFailing { failures },
            change => change,
        }
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

    /// Adds `points` to `url`'s misbehaviour score; at the threshold the
    /// peer is banned (and, unless configured, leaves the book). Returns
    /// the ban when this call imposed it.
    pub fn misbehaved(&self, url: &PeerUrl, points: u32, reason: &str) -> Option<Ban> {
        let ban = {
            let mut book = self.book();
            if book.bans.get(url).is_some_and(|ban| ban.until > unix_now()) {
                return None;
            }
            let record = book.record_mut(url)?;
            record.score = record.score.saturating_add(points);
            if record.score < BAN_THRESHOLD {
                self.inner.file.mark_changed();
                return None;
            }
            record.score = 0;
            let ban = Ban {
                until: unix_now() + self.inner.ban_time.as_secs(),
                reason: reason.chars().take(300).collect(),
            };
            book.records
                .retain(|r| &r.url != url || r.origin == Origin::Config);
            if book.bans.len() >= MAX_BANS
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
        self.save_logged();
        Some(ban)
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
        let peers: Vec<&Record> = book
            .records
            .iter()
            .filter(|r| r.origin != Origin::Inbound)
            .collect();
        let saved = SavedRef {
            peers,
            banned: &book.bans,
        };
        let mut json = serde_json::to_vec_pretty(&saved).expect("the book serialises");
        json.push(b'\n');
        json
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.inner.book.lock().expect("peer book lock")
    }
}

/// The file's shape, borrowed for writing.
#[derive(Serialize)]
struct SavedRef<'a> {
    peers: Vec<&'a Record>,
    banned: &'a BTreeMap<PeerUrl, Ban>,
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
            score: 0,
            height: None,
            runtime: Runtime::default(),
        }
    }
}

impl Runtime {
    fn announce_failing(&self) -> bool {
        matches!(self.announce, Health::Failing { .. })
    }

    fn health_mut(&mut self, contact: Contact) -> &mut Health {
        match contact {
            Contact::Sync => &mut self.sync,
            Contact::Announce => &mut self.announce,
        }
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

    /// The peer of `origin` to evict for a newcomer of its kind: the one
    /// failing longest, else the one silent longest. An inbound peer makes
    /// way only when it fails: a full node refuses newcomers rather than
    /// churn through the nodes that sync from it.
    fn eviction_candidate(&self, origin: Origin) -> Option<PeerUrl> {
        self.records
            .iter()
            .filter(|r| r.origin == origin)
            .filter(|r| origin != Origin::Inbound || r.failures > 0 || r.runtime.announce_failing())
            .min_by_key(|r| {
                (
                    r.failing_since.is_none(),
                    r.failing_since.unwrap_or(u64::MAX),
                    r.last_success.unwrap_or(0),
                )
            })
            .map(|r| r.url.clone())
    }
}

/// The pause after `failures` failed syncs in a row: the sync interval,
/// doubling with each failure, at most [`MAX_RETRY`] (and at most 64 sync
/// intervals, so a test network with a short interval retries soon).
pub fn retry_delay(sync_interval: Duration, failures: u32) -> Duration {
    let cap = MAX_RETRY.min(sync_interval * 64).max(sync_interval);
    let doubled = sync_interval.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    doubled.min(cap)
}

/// The saved book: every record and ban in it that can be read. A file
/// with anything else in it (or none that parses) is moved aside with a
/// note, never overwritten by the next save, and the log says where. A
/// list of URLs (the file of earlier versions) is read as learned peers.
fn read_saved(path: &Path) -> Saved {
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
fn parse_saved(bytes: &[u8]) -> (Saved, Option<String>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> PeerUrl {
        PeerUrl::parse(text).unwrap()
    }

    fn jbc(id: &str) -> Identity {
        Identity::Jbc {
            node_id: id.into(),
            version: "jbc/test".into(),
        }
    }

    fn book(dir: &Path, configured: &[&str]) -> PeerBook {
        PeerBook::open(
            configured.iter().map(|u| url(u)).collect(),
            dir.join("peers.json"),
            Duration::from_secs(86_400),
            Duration::from_secs(5),
            Limits {
                outbound: MAX_PEERS,
                inbound: 4,
            },
        )
    }

    #[test]
    fn a_book_with_a_bad_record_keeps_the_good_ones_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peers.json");
        let file = r#"{"peers": [
            {"url": "http://127.0.0.1:5004", "origin": "added"},
            {"url": "not a url", "origin": "added"},
            {"url": "http://127.0.0.1:5005", "origin": "learned", "failures": -1}
        ], "banned": {"http://127.0.0.1:5006": {"until": 99999999999, "reason": "junk"}}}"#;
        std::fs::write(&path, file).unwrap();
        let peers = book(dir.path(), &[]);
        assert_eq!(peers.urls(), [url("http://127.0.0.1:5004")]);
        assert_eq!(
            peers.origin(&url("http://127.0.0.1:5004")),
            Some(Origin::Added)
        );
        assert!(peers.ban(&url("http://127.0.0.1:5006")).is_some());
        let aside = dir.path().join("peers.json.damaged");
        assert_eq!(
            std::fs::read_to_string(&aside).unwrap(),
            file,
            "kept as it was"
        );
        let note = std::fs::read_to_string(dir.path().join("peers.json.damaged.reason")).unwrap();
        assert!(
            note.contains("peer 1") && note.contains("(and 1 more)"),
            "{note}"
        );
        // A second damaged file does not replace the first one set aside.
        std::fs::write(&path, "{not json").unwrap();
        assert!(book(dir.path(), &[]).urls().is_empty());
        assert_eq!(std::fs::read_to_string(&aside).unwrap(), file);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("peers.json.damaged.1")).unwrap(),
            "{not json"
        );
    }

    #[test]
    fn admitted_peers_and_bans_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let peers = book(dir.path(), &["http://127.0.0.1:5002"]);
        let added = url("http://127.0.0.1:5004");
        assert_eq!(
            peers.admit(&added, Origin::Added, jbc("a")).unwrap(),
            Admitted::New { evicted: None }
        );
        assert_eq!(
            peers.admit(&added, Origin::Added, jbc("a")).unwrap(),
            Admitted::Known
        );
        let bad = url("http://127.0.0.1:5005");
        peers.admit(&bad, Origin::Learned, jbc("b")).unwrap();
        assert!(peers.misbehaved(&bad, 60, "junk").is_none());
        let ban = peers.misbehaved(&bad, 60, "an invalid block").unwrap();
        assert_eq!(ban.reason, "an invalid block");
        assert!(
            !peers.contains(&bad),
            "a banned learned peer leaves the book"
        );
        assert!(matches!(
            peers.admit(&bad, Origin::Learned, jbc("b")),
            Err(BookError::Banned { .. })
        ));

        let reopened = book(dir.path(), &["http://127.0.0.1:5002"]);
        assert_eq!(reopened.urls(), peers.urls());
        assert_eq!(reopened.origin(&added), Some(Origin::Added));
        assert_eq!(reopened.identity(&added), Some(jbc("a")));
        assert!(reopened.ban(&bad).is_some(), "the ban is kept");

        assert!(reopened.unban(&bad).unwrap());
        assert!(!reopened.unban(&bad).unwrap(), "lifted once");
        assert!(reopened.ban(&bad).is_none());
        reopened.admit(&bad, Origin::Learned, jbc("b")).unwrap();
        reopened.misbehaved(&bad, 200, "again");
        assert!(reopened.ban(&bad).is_some());
        assert!(
            reopened.admit(&bad, Origin::Added, jbc("b")).is_ok(),
            "the operator adding a banned peer lifts its ban"
        );
        assert!(reopened.ban(&bad).is_none());
        assert!(
            book(dir.path(), &[]).ban(&bad).is_none(),
            "and the lift is saved"
        );
    }

    #[test]
    fn a_full_book_evicts_the_learned_peer_failing_longest_never_a_configured_one() {
        let dir = tempfile::tempdir().unwrap();
        let peers = book(dir.path(), &["http://127.0.0.1:5002"]);
        for port in 0..MAX_PEERS {
            let learned = url(&format!("http://127.0.0.1:{}", 6000 + port));
            peers
                .admit(&learned, Origin::Learned, jbc(&format!("learned {port}")))
                .unwrap();
        }
        let failing = url("http://127.0.0.1:6010");
        peers.record_failure(&failing, Contact::Sync, "unreachable");
        let newcomer = url("http://127.0.0.1:7000");
        assert_eq!(
            peers.admit(&newcomer, Origin::Learned, jbc("n")).unwrap(),
            Admitted::New {
                evicted: Some(failing.clone())
            }
        );
        assert!(peers.contains(&newcomer) && !peers.contains(&failing));
        assert_eq!(peers.count(), MAX_PEERS + 1);
        assert!(peers.contains(&url("http://127.0.0.1:5002")));

        // A book of configured and added peers only has no room to make.
        let dir = tempfile::tempdir().unwrap();
        let peers = book(dir.path(), &[]);
        for port in 0..MAX_PEERS {
            let added = url(&format!("http://127.0.0.1:{}", 6000 + port));
            peers
                .admit(&added, Origin::Added, jbc(&format!("added {port}")))
                .unwrap();
        }
        assert!(matches!(
            peers.admit(&newcomer, Origin::Added, jbc("n")),
            Err(BookError::Full { .. })
        ));
        // Chosen and inbound peers have their own room.
        assert!(peers.admit(&newcomer, Origin::Learned, jbc("n")).is_ok());
        for port in 0..4 {
            let inbound = url(&format!("http://127.0.0.1:{}", 8000 + port));
            peers
                .admit(&inbound, Origin::Inbound, jbc(&format!("inbound {port}")))
                .unwrap();
        }
        let failing = url("http://127.0.0.1:8002");
        peers.record_failure(&failing, Contact::Announce, "unreachable");
        peers.record_failure(&failing, Contact::Sync, "unreachable");
        assert_eq!(
            peers
                .admit(&url("http://127.0.0.1:8009"), Origin::Inbound, jbc("late"))
                .unwrap(),
            Admitted::New {
                evicted: Some(failing)
            }
        );
        assert!(
            matches!(
                peers.admit(&url("http://127.0.0.1:8010"), Origin::Inbound, jbc("later")),
                Err(BookError::Full {
                    what: "inbound",
                    ..
                })
            ),
            "an inbound peer that answers is never evicted for a newcomer"
        );
        assert_eq!(
            peers.directions(),
            Directions {
                outbound: MAX_PEERS + 1,
                chosen: 1,
                inbound: 4
            }
        );
        assert!(
            !std::fs::read_to_string(dir.path().join("peers.json"))
                .unwrap()
                .contains("inbound"),
            "inbound peers are not saved"
        );
    }

    #[test]
    fn a_second_url_of_a_node_in_the_book_is_an_alias() {
        let dir = tempfile::tempdir().unwrap();
        let peers = book(dir.path(), &[]);
        let first = url("http://127.0.0.1:5004");
        peers.admit(&first, Origin::Added, jbc("one node")).unwrap();
        assert_eq!(
            peers
                .admit(
                    &url("http://localhost:5004"),
                    Origin::Added,
                    jbc("one node")
                )
                .unwrap(),
            Admitted::Alias { of: first.clone() }
        );
        assert_eq!(peers.urls(), std::slice::from_ref(&first));
        // Its own URL again is the same record, not an alias.
        assert_eq!(
            peers.admit(&first, Origin::Added, jbc("one node")).unwrap(),
            Admitted::Known
        );
    }

    #[test]
    fn the_operator_adding_an_inbound_peer_promotes_it_whoever_came_first() {
        let dir = tempfile::tempdir().unwrap();
        let peers = book(dir.path(), &[]);
        let other = url("http://127.0.0.1:5006");
        peers.admit(&other, Origin::Inbound, jbc("other")).unwrap();
        assert_eq!(
            peers.admit(&other, Origin::Added, jbc("other")).unwrap(),
            Admitted::Promoted {
                from: Origin::Inbound
            }
        );
        assert_eq!(peers.origin(&other), Some(Origin::Added));
        // Added is as kept as it gets: neither word demotes it.
        for origin in [Origin::Added, Origin::Learned, Origin::Inbound] {
            assert_eq!(
                peers.admit(&other, origin, jbc("other")).unwrap(),
                Admitted::Known
            );
        }
        assert_eq!(peers.origin(&other), Some(Origin::Added));
    }

    #[test]
    fn concurrent_saves_lose_no_entry() {
        let dir = tempfile::tempdir().unwrap();
        let peers = book(dir.path(), &[]);
        std::thread::scope(|scope| {
            for thread in 0..8 {
                let peers = peers.clone();
                scope.spawn(move || {
                    for n in 0..8 {
                        let added = url(&format!("http://127.0.0.1:{}", 6000 + thread * 8 + n));
                        let id = jbc(&format!("{thread} {n}"));
                        peers.admit(&added, Origin::Added, id).unwrap();
                    }
                });
            }
        });
        let reopened = book(dir.path(), &[]);
        assert_eq!(reopened.count(), 64);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name != "peers.json")
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_stranger_is_tried_once() {
        let dir = tempfile::tempdir().unwrap();
        let peers = book(dir.path(), &[]);
        let stranger = url("http://127.0.0.1:9999");
        let day = Duration::from_secs(86_400);
        assert!(peers.first_attempt(&stranger, day));
        assert!(!peers.first_attempt(&stranger, day));
        assert!(
            peers.first_attempt(&stranger, Duration::ZERO),
            "a shorter window has passed"
        );
    }

    #[test]
    fn failures_back_off_exponentially_up_to_a_cap() {
        let interval = Duration::from_secs(5);
        let delays: Vec<u64> = (1..=9)
            .map(|n| retry_delay(interval, n).as_secs())
            .collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        let fast = Duration::from_millis(100);
        assert_eq!(retry_delay(fast, 30), Duration::from_millis(6400));
    }

    #[test]
    fn a_failure_is_news_once_until_it_changes_or_the_peer_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let peer = url("http://127.0.0.1:5002");
        let peers = book(dir.path(), &["http://127.0.0.1:5002"]);
        let sync = Contact::Sync;
        assert_eq!(
            peers.record_failure(&peer, sync, "unreachable"),
            Change::Failing
        );
        assert_eq!(
            peers.record_failure(&peer, sync, "unreachable"),
            Change::StillFailing { failures: 2 }
        );
        assert_eq!(
            peers.record_failure(&peer, sync, "timed out"),
            Change::Failing
        );
        assert!(peers.next_sync_in(&peer) > Duration::from_secs(10));
        assert_eq!(
            peers.record_success(&peer, sync, Some(3)),
            Change::Recovered { failures: 3 }
        );
        assert_eq!(peers.next_sync_in(&peer), Duration::from_secs(5));
        assert_eq!(peers.record_success(&peer, sync, None), Change::StillUp);
        // A peer that is down is news once, whichever contact finds out first.
        assert_eq!(
            peers.record_failure(&peer, Contact::Announce, "unreachable"),
            Change::Failing
        );
        assert_eq!(
            peers.record_failure(&peer, sync, "unreachable"),
            Change::StillFailing { failures: 1 }
        );
    }

    #[test]
    fn the_file_of_earlier_versions_is_read_as_learned_peers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("peers.json"),
            r#"["http://127.0.0.1:5004/", "nonsense"]"#,
        )
        .unwrap();
        let peers = book(dir.path(), &[]);
        assert_eq!(peers.urls(), [url("http://127.0.0.1:5004")]);
        assert_eq!(
            peers.origin(&url("http://127.0.0.1:5004")),
            Some(Origin::Learned)
        );
    }
}
