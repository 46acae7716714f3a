//! The address manager: nodes this node could connect to, kept in
//! `addrs.json` beside the chaindata folder, in the manner of Bitcoin
//! Core's `addrman`.
//!
//! An address heard from someone (a peer's `GET /peers/addr` answer, or a
//! node that names itself when it syncs or announces) is a candidate in
//! the *new* table; one that passed a handshake and answered moves to the
//! *tried* table. Both tables are bounded and bucketed by keyed hashes: a
//! new address's bucket depends on the network group (IPv4 /16) of whoever
//! told us, so one source fills at most [`NEW_BUCKETS_PER_SOURCE_GROUP`]
//! buckets of the new table, however many addresses it makes up; a tried
//! address's bucket depends on its own group, so one group holds at most
//! [`TRIED_BUCKETS_PER_GROUP`] of the tried table. The key is secret and
//! random per node, so nobody can aim an address at a slot. When a tried
//! slot is taken, the old entry is tested before the newcomer may replace
//! it ([`AddrMan::collisions`], [`AddrMan::resolve`]): a node that answers
//! keeps its place (Heilman et al., "Eclipse Attacks on Bitcoin's
//! Peer-to-Peer Network", 2015).
//!
//! This module keeps records and chooses; it does not talk to anyone. The
//! peers the node talks to are the [`super::PeerBook`]'s.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::warn;

use super::PeerUrl;
use crate::clock::unix_now;
use crate::fsio::{SaveOnChange, set_aside_damaged};
use crate::netgroup::{NetGroup, is_private};

/// Buckets of the new table.
pub const NEW_BUCKETS: usize = 128;
/// Buckets of the tried table.
pub const TRIED_BUCKETS: usize = 32;
/// Addresses in one bucket.
pub const BUCKET_SIZE: usize = 16;
/// The new-table buckets the addresses one source group tells us can land in.
pub const NEW_BUCKETS_PER_SOURCE_GROUP: u64 = 16;
/// The tried-table buckets the addresses of one group can land in.
pub const TRIED_BUCKETS_PER_GROUP: u64 = 8;
/// Failed attempts after which a candidate that never answered is
/// worthless and gives its slot to any newcomer.
const MAX_FAILURES: u32 = 3;
/// A candidate not heard of for this long gives its slot to a newcomer.
const FORGET_AFTER_SECS: u64 = 30 * 24 * 3600;
/// A candidate whose last attempt failed is not tried again within this
/// time.
const RETRY_AFTER_SECS: u64 = 60;
/// Collisions in the tried table waiting for their test.
const MAX_COLLISIONS: usize = 16;
/// An address counts as good for others (`GET /peers/addr`) for this long
/// after it last answered.
const GOOD_FOR_SECS: u64 = 3 * 3600;

/// The network group of an address, as the tables key it (see
/// [`crate::netgroup`]).
pub fn network_group(url: &PeerUrl) -> String {
    url.group().to_string()
}

/// The network group of a source known by its IP address (see
/// [`crate::netgroup`]).
pub fn group_of_ip(ip: IpAddr) -> String {
    NetGroup::of_ip(ip).to_string()
}

/// Why an address heard from a peer is not kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unfit {
    #[error("a host name: only IP addresses travel (a name could lead anywhere)")]
    HostName,
    #[error("not an address a node can listen on")]
    Unroutable,
    #[error("a {what} address from a source outside it")]
    OutOfScope { what: &'static str },
}

/// Whether `url`, heard from `source`, may become a candidate: an IP
/// address a node can be reached at, never link-local, multicast or
/// unspecified, and a loopback or private address only when the source is
/// in that same scope (a node on the internet cannot tell us about our own
/// LAN). `localhost` is taken from a loopback source. A source known only
/// by a host name (`None`) counts as one on the internet.
pub fn fit_to_keep(url: &PeerUrl, source: Option<IpAddr>) -> Result<(), Unfit> {
    let source = source.map(|ip| ip.to_canonical());
    let from_loopback = source.is_some_and(|ip| ip.is_loopback());
    let from_private = source.is_some_and(is_private);
    let ip = match url.ip() {
        Some(ip) => ip.to_canonical(),
        None if url.host_name().as_deref() == Some("localhost") && from_loopback => {
            return Ok(());
        }
        None => return Err(Unfit::HostName),
    };
    if ip.is_unspecified() || ip.is_multicast() || is_link_local(ip) || is_broadcast(ip) {
        return Err(Unfit::Unroutable);
    }
    if ip.is_loopback() && !from_loopback {
        return Err(Unfit::OutOfScope { what: "loopback" });
    }
    if is_private(ip) && !(from_private || from_loopback) {
        return Err(Unfit::OutOfScope { what: "private" });
    }
    Ok(())
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => ip.is_link_local(),
        IpAddr::V6(ip) => (ip.segments()[0] & 0xffc0) == 0xfe80,
    }
}

fn is_broadcast(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(ip) if ip.is_broadcast())
}

/// One address, as saved.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    url: PeerUrl,
    /// The network group of whoever told us (its own, for one that named
    /// itself): where in the new table it goes.
    source_group: String,
    /// In the tried table (it answered).
    #[serde(default)]
    tried: bool,
    /// When it was last heard of (seconds since the epoch).
    #[serde(default)]
    heard: u64,
    /// When it was last tried.
    #[serde(default)]
    last_try: Option<u64>,
    /// When it last answered.
    #[serde(default)]
    last_success: Option<u64>,
    /// Attempts that failed since it last answered.
    #[serde(default)]
    failures: u32,
}

impl Entry {
    /// Worth less than any newcomer.
    fn is_terrible(&self, now: u64) -> bool {
        (self.last_success.is_none() && self.failures >= MAX_FAILURES)
            || now.saturating_sub(self.heard.max(self.last_success.unwrap_or(0)))
                > FORGET_AFTER_SECS
    }
}

/// The file.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    /// The bucketing key, hex.
    key: String,
    entries: Vec<Entry>,
}

/// How many addresses each table holds, for `/status` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct AddrCounts {
    pub new: usize,
    pub tried: usize,
}

/// A tried slot wanted by a newcomer: `old` is tested first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    pub newcomer: PeerUrl,
    pub old: PeerUrl,
}

/// The address manager: shared behind a lock (calls are short).
pub struct AddrMan {
    tables: Mutex<Tables>,
    file: SaveOnChange,
}

struct Tables {
    key: [u8; 32],
    entries: HashMap<PeerUrl, Entry>,
    /// `NEW_BUCKETS * BUCKET_SIZE` slots.
    new: Vec<Option<PeerUrl>>,
    /// `TRIED_BUCKETS * BUCKET_SIZE` slots.
    tried: Vec<Option<PeerUrl>>,
    collisions: Vec<Collision>,
}

impl AddrMan {
    /// The addresses saved at `path` (none if there is no file; a damaged
    /// one is moved aside with a note, and what of it could be read kept).
    pub fn open(path: PathBuf) -> AddrMan {
        let saved = read_saved(&path);
        let key = hex::decode(&saved.key)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .unwrap_or_else(random_key);
        let mut tables = Tables {
            key,
            entries: HashMap::new(),
            new: vec![None; NEW_BUCKETS * BUCKET_SIZE],
            tried: vec![None; TRIED_BUCKETS * BUCKET_SIZE],
            collisions: Vec::new(),
        };
        for entry in saved.entries {
            tables.restore(entry);
        }
        AddrMan {
            tables: Mutex::new(tables),
            file: SaveOnChange::new(path),
        }
    }

    /// The file the addresses are saved in, for a chaindata folder.
    pub fn path_beside(chaindata: &Path) -> PathBuf {
        chaindata.with_file_name("addrs.json")
    }

    /// Adds `url`, heard from a node in `source_group`, as a candidate;
    /// true if it is new here. A taken slot goes to it only if the entry
    /// there is worthless.
    pub fn add(&self, url: &PeerUrl, source_group: &str) -> bool {
        let now = unix_now();
        let mut tables = self.tables();
        if let Some(entry) = tables.entries.get_mut(url) {
            entry.heard = entry.heard.max(now);
            return false;
        }
        let entry = Entry {
            url: url.clone(),
            source_group: source_group.to_string(),
            tried: false,
            heard: now,
            last_try: None,
            last_success: None,
            failures: 0,
        };
        let slot = tables.new_slot(&entry);
        if let Some(there) = tables.new[slot].clone() {
            let worthless = tables.entries[&there].is_terrible(now);
            if !worthless {
                return false;
            }
            tables.entries.remove(&there);
        }
        tables.new[slot] = Some(url.clone());
        tables.entries.insert(url.clone(), entry);
        drop(tables);
        self.file.mark_changed();
        true
    }

    /// Notes an attempt to reach `url` (`answered`: it passed the
    /// handshake). An address that answers moves to the tried table, or,
    /// when its slot there is taken, waits for the old entry's test.
    pub fn attempted(&self, url: &PeerUrl, answered: bool) {
        let now = unix_now();
        let mut tables = self.tables();
        let Some(entry) = tables.entries.get_mut(url) else {
            return;
        };
        entry.last_try = Some(now);
        if !answered {
            entry.failures += 1;
            drop(tables);
            self.file.mark_changed();
            return;
        }
        entry.failures = 0;
        entry.last_success = Some(now);
        if !entry.tried {
            tables.promote(url);
        }
        drop(tables);
        self.file.mark_changed();
    }

    /// Notes that `url` answered (a peer that answered a sync): as
    /// [`AddrMan::attempted`] with success, adding it first if it is not
    /// known (a configured or added peer).
    pub fn answered(&self, url: &PeerUrl) {
        if !self.tables().entries.contains_key(url) {
            self.add(url, &network_group(url));
        }
        self.attempted(url, true);
    }

    /// Forgets `url` (it turned out to be this node, or a node known under
    /// another address).
    pub fn forget(&self, url: &PeerUrl) {
        {
            let mut guard = self.tables();
            let tables = &mut *guard;
            if tables.entries.remove(url).is_none() {
                return;
            }
            for slot in tables.new.iter_mut().chain(tables.tried.iter_mut()) {
                if slot.as_ref() == Some(url) {
                    *slot = None;
                }
            }
            tables
                .collisions
                .retain(|c| &c.newcomer != url && &c.old != url);
        }
        self.file.mark_changed();
    }

    /// Tried slots wanted by newcomers, whose old entries are to be tested.
    pub fn collisions(&self) -> Vec<Collision> {
        self.tables().collisions.clone()
    }

    /// Settles a collision once its old entry was tested: one that
    /// answered keeps its slot (the newcomer stays a candidate); one that
    /// did not goes back to the new table and the newcomer takes its place.
    pub fn resolve(&self, collision: &Collision, old_answered: bool) {
        let now = unix_now();
        let mut tables = self.tables();
        tables.collisions.retain(|c| c != collision);
        let Some(old) = tables.entries.get_mut(&collision.old) else {
            return;
        };
        old.last_try = Some(now);
        if old_answered {
            old.last_success = Some(now);
            old.failures = 0;
        } else {
            old.failures += 1;
            tables.demote(&collision.old);
            if tables.entries.contains_key(&collision.newcomer) {
                tables.promote(&collision.newcomer);
            }
        }
        drop(tables);
        self.file.mark_changed();
    }

    /// A candidate to connect to, at random: from the tried or the new
    /// table with even odds (the other when one has nothing to offer),
    /// never one `skip` rules out, one that failed within the last minute, or
    /// one in a network group `crowded` rules out.
    pub fn select(
        &self,
        skip: impl Fn(&PeerUrl) -> bool,
        crowded: impl Fn(&str) -> bool,
    ) -> Option<PeerUrl> {
        let now = unix_now();
        let tables = self.tables();
        let eligible = |slot: &Option<PeerUrl>| -> Option<PeerUrl> {
            let url = slot.as_ref()?;
            let entry = &tables.entries[url];
            let failed_lately = entry.failures > 0
                && entry
                    .last_try
                    .is_some_and(|at| now.saturating_sub(at) < RETRY_AFTER_SECS);
            (!failed_lately && !skip(url) && !crowded(&network_group(url))).then(|| url.clone())
        };
        let tried: Vec<PeerUrl> = tables.tried.iter().filter_map(eligible).collect();
        let new: Vec<PeerUrl> = tables.new.iter().filter_map(eligible).collect();
        let pick = |from: &[PeerUrl]| from.get(random_below(from.len() as u64) as usize).cloned();
        match (tried.is_empty(), new.is_empty()) {
            (true, true) => None,
            (false, true) => pick(&tried),
            (true, false) => pick(&new),
            (false, false) if random_below(2) == 0 => pick(&tried),
            (false, false) => pick(&new),
        }
    }

    /// Up to `max` addresses that answered within the last hours, in random
    /// order: what others may be told.
    pub fn good(&self, max: usize) -> Vec<PeerUrl> {
        let now = unix_now();
        let tables = self.tables();
        let mut good: Vec<PeerUrl> = tables
            .entries
            .values()
            .filter(|e| {
                e.last_success
                    .is_some_and(|at| now.saturating_sub(at) < GOOD_FOR_SECS)
            })
            .map(|e| e.url.clone())
            .collect();
        shuffle(&mut good);
        good.truncate(max);
        good
    }

    /// How many addresses each table holds.
    pub fn counts(&self) -> AddrCounts {
        let tables = self.tables();
        let tried = tables.entries.values().filter(|e| e.tried).count();
        AddrCounts {
            new: tables.entries.len() - tried,
            tried,
        }
    }

    /// Saves the tables if they changed since the last save.
    pub fn flush(&self) {
        if let Err(error) = self.file.flush(|| self.render()) {
            warn!(
                "cannot save the addresses to {}: {}",
                error.path.display(),
                error.source
            );
        }
    }

    fn render(&self) -> Vec<u8> {
        let tables = self.tables();
        let mut entries: Vec<&Entry> = tables.entries.values().collect();
        entries.sort_by(|a, b| a.url.cmp(&b.url));
        #[derive(Serialize)]
        struct SavedRef<'a> {
            key: String,
            entries: Vec<&'a Entry>,
        }
        let saved = SavedRef {
            key: hex::encode(tables.key),
            entries,
        };
        let mut json = serde_json::to_vec_pretty(&saved).expect("the tables serialise");
        json.push(b'\n');
        json
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().expect("address tables lock")
    }
}

impl Tables {
    fn hash(&self, parts: &[&[u8]]) -> u64 {
        let mut hasher = Sha256::new();
        hasher.update(self.key);
        for part in parts {
            hasher.update((part.len() as u32).to_le_bytes());
            hasher.update(part);
        }
        let digest = hasher.finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
    }

    fn new_slot(&self, entry: &Entry) -> usize {
        let group = network_group(&entry.url);
        let source = entry.source_group.as_bytes();
        let within = self.hash(&[b"new", group.as_bytes(), source]) % NEW_BUCKETS_PER_SOURCE_GROUP;
        let bucket =
            self.hash(&[b"new bucket", source, &within.to_le_bytes()]) % NEW_BUCKETS as u64;
        self.slot_in(b"new slot", bucket, &entry.url)
    }

    fn tried_slot(&self, url: &PeerUrl) -> usize {
        let group = network_group(url);
        let address = url.to_string();
        let within = self.hash(&[b"tried", address.as_bytes()]) % TRIED_BUCKETS_PER_GROUP;
        let bucket = self.hash(&[b"tried bucket", group.as_bytes(), &within.to_le_bytes()])
            % TRIED_BUCKETS as u64;
        self.slot_in(b"tried slot", bucket, url)
    }

    fn slot_in(&self, table: &[u8], bucket: u64, url: &PeerUrl) -> usize {
        let address = url.to_string();
        let position =
            self.hash(&[table, &bucket.to_le_bytes(), address.as_bytes()]) % BUCKET_SIZE as u64;
        (bucket as usize) * BUCKET_SIZE + position as usize
    }

    /// Puts a saved entry back where it belongs; dropped if its slot is
    /// taken (the file was written by another key, or edited).
    fn restore(&mut self, mut entry: Entry) {
        if self.entries.contains_key(&entry.url) {
            return;
        }
        if entry.tried {
            let slot = self.tried_slot(&entry.url);
            if self.tried[slot].is_none() {
                self.tried[slot] = Some(entry.url.clone());
                self.entries.insert(entry.url.clone(), entry);
                return;
            }
            entry.tried = false;
        }
        let slot = self.new_slot(&entry);
        if self.new[slot].is_none() {
            self.new[slot] = Some(entry.url.clone());
            self.entries.insert(entry.url.clone(), entry);
        }
    }

    /// Moves a new entry to the tried table, or notes the collision.
    fn promote(&mut self, url: &PeerUrl) {
        let slot = self.tried_slot(url);
        if let Some(old) = self.tried[slot].clone()
            && &old != url
        {
            let collision = Collision {
                newcomer: url.clone(),
                old,
            };
            if self.collisions.len() < MAX_COLLISIONS && !self.collisions.contains(&collision) {
                self.collisions.push(collision);
            }
            return;
        }
        if let Some(new_slot) = self.new.iter().position(|s| s.as_ref() == Some(url)) {
            self.new[new_slot] = None;
        }
        self.tried[slot] = Some(url.clone());
        self.entries
            .get_mut(url)
            .expect("promoted entries exist")
            .tried = true;
    }

    /// Moves a tried entry back to the new table (dropped if its slot
    /// there is taken).
    fn demote(&mut self, url: &PeerUrl) {
        if let Some(slot) = self.tried.iter().position(|s| s.as_ref() == Some(url)) {
            self.tried[slot] = None;
        }
        let Some(mut entry) = self.entries.remove(url) else {
            return;
        };
        entry.tried = false;
        self.restore(entry);
    }
}

fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("the OS has a source of randomness");
    key
}

/// A random number below `bound` (0 for a bound of 0).
fn random_below(bound: u64) -> u64 {
    if bound == 0 {
        return 0;
    }
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS has a source of randomness");
    // The bias of a modulus over 2^64 is far below what matters here.
    u64::from_le_bytes(bytes) % bound
}

/// Shuffles `items` (Fisher–Yates).
pub fn shuffle<T>(items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = random_below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// The saved tables: whatever of the file can be read. A file that does
/// not parse is moved aside with a note, never overwritten.
fn read_saved(path: &Path) -> Saved {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Saved::default(),
        Err(e) => {
            warn!(
                "addresses {}: cannot read it: {e}; starting with none",
                path.display()
            );
            return Saved::default();
        }
    };
    let (saved, damage) = parse_saved(&bytes);
    if let Some(reason) = damage {
        let kept = format!("{} addresses kept", saved.entries.len());
        match set_aside_damaged(path, &reason) {
            Ok(aside) => warn!(
                "addresses {}: {reason}; {kept}; the file as it was is in {}",
                path.display(),
                aside.display()
            ),
            Err(error) => warn!(
                "addresses {}: {reason}; {kept}; it could not be moved aside ({error})",
                path.display()
            ),
        }
    }
    saved
}

/// What of a saved file can be read, and what was wrong with the rest.
fn parse_saved(bytes: &[u8]) -> (Saved, Option<String>) {
    use serde_json::Value;
    let mut saved = Saved::default();
    let mut problems = Vec::new();
    match serde_json::from_slice::<Value>(bytes) {
        Err(e) => problems.push(format!("not JSON: {e}")),
        Ok(Value::Object(mut fields)) => {
            match fields.remove("key") {
                Some(Value::String(key)) => saved.key = key,
                _ => problems.push("`key` is not a string".to_string()),
            }
            match fields.remove("entries") {
                Some(Value::Array(entries)) => {
                    for (position, entry) in entries.into_iter().enumerate() {
                        match serde_json::from_value::<Entry>(entry) {
                            Ok(entry) => saved.entries.push(entry),
                            Err(e) => problems.push(format!("address {position}: {e}")),
                        }
                    }
                }
                _ => problems.push("`entries` is not a list".to_string()),
            }
        }
        Ok(_) => problems.push("an address file is a JSON object with `key` and `entries`".into()),
    }
    (saved, crate::human::first_of(&problems))
}

#[cfg(test)]
mod tests;
