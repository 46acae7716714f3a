//! The pool of data items waiting for a block, Bitcoin's mempool in this
//! node's terms.
//!
//! Items wait in the order they arrived; a new block template takes them
//! oldest first, as many as fit. The pool is bounded by count and by bytes
//! (a full pool refuses new items rather than drop waiting ones), and it
//! is saved beside the chaindata folder (`pool.json`, written whole, like
//! Bitcoin's `mempool.dat`) every few seconds while it changes and when the
//! node stops, then loaded at the next start. A new item is also appended
//! to `pool.journal` and on disk before [`Pool::add`] returns, so an item
//! the node said it took survives a crash; each save of `pool.json` empties
//! the journal.
//!
//! The pool does not know the chain: the chain state ([`crate::state`])
//! takes items out as blocks carrying them are committed and puts them back
//! when such blocks leave the chain in a reorganisation.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tracing::warn;

use crate::clock::unix_now;
use crate::fsio::{Journal, SaveOnChange, set_aside_damaged};
use crate::item::{IdPrefix, ItemId, room_taken};
use crate::netgroup::NetGroup;
use crate::setting::Setting;

/// How the pool is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    /// The most items waiting.
    pub max_items: usize,
    /// The most bytes of item text waiting.
    pub max_bytes: usize,
    /// The largest item, in bytes of UTF-8 (a network setting).
    pub max_item_bytes: usize,
}

pub const POOL_MAX_ITEMS: Setting<u64> = Setting {
    key: "pool_max_items",
    help: "most data items waiting for a block",
    default: 10_000,
    range: Some(1..=10_000_000),
    unit: "a whole number of items",
};
pub const POOL_MAX_BYTES: Setting<u64> = Setting {
    key: "pool_max_bytes",
    help: "most bytes of data items waiting, counted as stored (JSON strings, escapes included)",
    default: 16 * 1024 * 1024,
    range: Some(1024..=16 * 1024 * 1024 * 1024),
    unit: "a whole number of bytes",
};

impl Default for PoolLimits {
    fn default() -> PoolLimits {
        PoolLimits {
            max_items: POOL_MAX_ITEMS.default as usize,
            max_bytes: POOL_MAX_BYTES.default as usize,
            max_item_bytes: crate::item::MAX_ITEM_BYTES.default as usize,
        }
    }
}

/// Why an item was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("the item is empty: an item is some text, at least one character")]
    Empty,
    #[error("the item is {bytes} bytes; items are at most {max} bytes of UTF-8")]
    TooLarge { bytes: usize, max: usize },
    #[error(
        "the pool is full ({items} items, {bytes} bytes waiting; at most {max_items} items and \
         {max_bytes} bytes): try again once blocks have taken some"
    )]
    Full {
        items: usize,
        bytes: usize,
        max_items: usize,
        max_bytes: usize,
    },
    #[error(
        "your network group ({group}) has {items} items ({bytes} bytes) waiting, its share of a \
         pool more than half full: try again once blocks have taken some"
    )]
    Share {
        group: NetGroup,
        items: usize,
        bytes: usize,
    },
    #[error("the item's signature is refused: {0}")]
    Signature(crate::signed::SignedError),
    #[error("the item cannot be saved, so it is not taken: {reason}")]
    Unsaved { reason: String },
}

/// Who submitted an item, for the share of a busy pool one submitter may
/// hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitter {
    /// The operator (the request carried the operator key), or a client on
    /// this machine (a loopback address: a one-machine devnet, where every
    /// node and user is 127.0.0.1): no share applies.
    Trusted,
    /// A client or a relaying peer at this address.
    Remote(IpAddr),
}

impl Submitter {
    /// The submitter of a request from `remote` (none: not over a socket,
    /// as in tests that call the router directly), `operator` when it
    /// carried the operator key.
    pub fn of(remote: Option<IpAddr>, operator: bool) -> Submitter {
        match remote {
            Some(ip) if !operator && !ip.is_loopback() => Submitter::Remote(ip),
            _ => Submitter::Trusted,
        }
    }
}

/// Past this share of its limits (items or bytes) the pool is busy, and
/// one network group of remote submitters may hold at most [`SHARE`] of
/// them.
const HIGH_WATER: f64 = 0.5;
/// What one remote submitter may hold of a busy pool's limits.
const SHARE: f64 = 1.0 / 8.0;

/// A waiting item as `GET /data` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PendingView {
    pub id: ItemId,
    /// Bytes of UTF-8.
    pub size: usize,
    /// Seconds since it arrived.
    pub age: u64,
}

/// An item as the pool file keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Saved {
    data: String,
    /// When it arrived (seconds since the epoch).
    received: u64,
}

#[derive(Debug)]
struct Waiting {
    text: Arc<str>,
    received: u64,
    /// Its place in the arrival order.
    seq: u64,
    /// The bytes it adds to a block's JSON.
    room: usize,
    /// Its size as stored (a JSON string, escapes included): what the
    /// pool's byte limit counts.
    stored: usize,
    /// The network group of who sent it, when a share applies to them.
    from: Option<NetGroup>,
}

#[derive(Debug, Default)]
struct Items {
    by_id: HashMap<ItemId, Waiting>,
    /// Arrival order: sequence number → id.
    order: BTreeMap<u64, ItemId>,
    bytes: usize,
    next_seq: u64,
    /// Items and bytes waiting, by the network group of remote submitters.
    by_submitter: HashMap<NetGroup, (usize, usize)>,
}

/// The shared pool.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    items: Mutex<Items>,
    limits: PoolLimits,
    /// `pool.json`, saved by [`Pool::flush`] when the items changed.
    file: SaveOnChange,
    /// `pool.journal`: each new item, durable before it is answered for;
    /// or why it could not be opened.
    journal: Result<Journal, String>,
    /// Wakes whoever builds block templates when items arrive.
    arrived: Notify,
}

impl Pool {
    /// The pool saved at `path`, or an empty one.
    pub fn open(path: PathBuf, limits: PoolLimits) -> Pool {
        let journal_path = path.with_extension("journal");
        let mut saved = read_saved(&path);
        match Journal::read_lines(&journal_path) {
            Ok(lines) => saved.extend(lines.iter().filter_map(|line| {
                serde_json::from_slice::<Saved>(line)
                    .inspect_err(|e| {
                        warn!(file = %journal_path.display(), "skipping a journal line that is not an item: {e}")
                    })
                    .ok()
            })),
            Err(error) => warn!(file = %journal_path.display(), "cannot read the pool's journal: {error}"),
        }
        let journal = Journal::open(journal_path).map_err(|error| error.to_string());
        if let Err(error) = &journal {
            warn!(
                "new data items will be refused until the node can write its pool journal: {error}"
            );
        }
        let pool = Pool {
            inner: Arc::new(Inner {
                items: Mutex::new(Items::default()),
                limits,
                file: SaveOnChange::new(path),
                journal,
                arrived: Notify::new(),
            }),
        };
        let mut items = pool.items();
        for saved in saved {
            let _ = Pool::insert(&mut items, &limits, saved.data.into(), saved.received, None);
        }
        if items.next_seq > 0 {
            // What the journal held goes into the next pool.json.
            pool.inner.file.mark_changed();
        }
        drop(items);
        pool
    }

    /// The file the pool is saved in, for a chaindata folder.
    pub fn path_beside(chaindata: &Path) -> PathBuf {
        chaindata.with_file_name("pool.json")
    }

    /// Takes a new item. Returns its id, and whether it was new (an item
    /// already waiting is taken once). A new item is on disk when this
    /// returns; one that cannot be saved is not taken. Blocking (a sync,
    /// shared with the items that arrive meanwhile).
    pub fn add(&self, text: &str, submitter: Submitter) -> Result<(ItemId, bool), PoolError> {
        let limits = &self.inner.limits;
        if text.is_empty() {
            return Err(PoolError::Empty);
        }
        if text.len() > limits.max_item_bytes {
            return Err(PoolError::TooLarge {
                bytes: text.len(),
                max: limits.max_item_bytes,
            });
        }
        let received = unix_now();
        let from = match submitter {
            Submitter::Remote(ip) => Some(NetGroup::of_ip(ip)),
            Submitter::Trusted => None,
        };
        let added = Pool::insert(&mut self.items(), limits, text.into(), received, from)?;
        if added.1 {
            self.inner.file.mark_changed();
            let line = serde_json::to_vec(&Saved {
                data: text.to_string(),
                received,
            })
            .expect("an item serialises");
            let saved = match &self.inner.journal {
                Ok(journal) => journal.append(&line).map_err(|e| e.to_string()),
                Err(error) => Err(error.clone()),
            };
            if let Err(reason) = saved {
                self.remove([&added.0]);
                return Err(PoolError::Unsaved { reason });
            }
            self.inner.arrived.notify_waiters();
        }
        Ok(added)
    }

    fn insert(
        items: &mut Items,
        limits: &PoolLimits,
        text: Arc<str>,
        received: u64,
        from: Option<NetGroup>,
    ) -> Result<(ItemId, bool), PoolError> {
        let id = ItemId::of(&text);
        if items.by_id.contains_key(&id) {
            return Ok((id, false));
        }
        let stored = serde_json::to_string(&*text)
            .expect("a string serialises")
            .len();
        if let Some(group) = &from {
            let (held_items, held_bytes) =
                items.by_submitter.get(group).copied().unwrap_or_default();
            let busy = items.by_id.len() as f64 >= limits.max_items as f64 * HIGH_WATER
                || items.bytes as f64 >= limits.max_bytes as f64 * HIGH_WATER;
            let over_share = held_items as f64 >= limits.max_items as f64 * SHARE
                || (held_bytes + stored) as f64 > limits.max_bytes as f64 * SHARE;
            if busy && over_share {
                return Err(PoolError::Share {
                    group: group.clone(),
                    items: held_items,
                    bytes: held_bytes,
                });
            }
        }
        if items.by_id.len() >= limits.max_items || items.bytes + stored > limits.max_bytes {
            return Err(PoolError::Full {
                items: items.by_id.len(),
                bytes: items.bytes,
                max_items: limits.max_items,
                max_bytes: limits.max_bytes,
            });
        }
        let seq = items.next_seq;
        items.next_seq += 1;
        items.bytes += stored;
        if let Some(group) = &from {
            let held = items.by_submitter.entry(group.clone()).or_default();
            held.0 += 1;
            held.1 += stored;
        }
        items.order.insert(seq, id);
        let room = room_taken(&text);
        items.by_id.insert(
            id,
            Waiting {
                text,
                received,
                seq,
                room,
                stored,
                from,
            },
        );
        Ok((id, true))
    }

    /// Whether item `id` is waiting.
    pub fn contains(&self, id: &ItemId) -> bool {
        self.items().by_id.contains_key(id)
    }

    /// Up to `limit` waiting items whose ids start with `prefix`.
    pub fn ids_starting(&self, prefix: &IdPrefix, limit: usize) -> Vec<ItemId> {
        (self.items().by_id.keys())
            .filter(|id| prefix.matches(id))
            .take(limit)
            .copied()
            .collect()
    }

    /// The text of waiting item `id`.
    pub fn text(&self, id: &ItemId) -> Option<Arc<str>> {
        self.items()
            .by_id
            .get(id)
            .map(|waiting| Arc::clone(&waiting.text))
    }

    /// How many items are waiting.
    pub fn len(&self) -> usize {
        self.items().by_id.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The waiting items, oldest first.
    pub fn pending(&self) -> Vec<PendingView> {
        let items = self.items();
        let now = unix_now();
        items
            .order
            .values()
            .map(|id| {
                let waiting = &items.by_id[id];
                PendingView {
                    id: *id,
                    size: waiting.text.len(),
                    age: now.saturating_sub(waiting.received),
                }
            })
            .collect()
    }

    /// The oldest waiting items that fit in `room` bytes of a block's JSON
    /// (and none that `skip` says is in the chain already), oldest first.
    pub fn select(&self, room: usize, skip: impl Fn(&ItemId) -> bool) -> Vec<Arc<str>> {
        let items = self.items();
        let mut chosen = Vec::new();
        let mut used = 0;
        for id in items.order.values() {
            let waiting = &items.by_id[id];
            if skip(id) {
                continue;
            }
            if used + waiting.room > room {
                break;
            }
            used += waiting.room;
            chosen.push(Arc::clone(&waiting.text));
        }
        chosen
    }

    /// Takes out the items a committed block carries.
    pub fn remove<'a>(&self, ids: impl IntoIterator<Item = &'a ItemId>) {
        let mut items = self.items();
        let mut changed = false;
        for id in ids {
            if let Some(waiting) = items.by_id.remove(id) {
                items.order.remove(&waiting.seq);
                items.bytes -= waiting.stored;
                if let Some(group) = &waiting.from
                    && let Some(held) = items.by_submitter.get_mut(group)
                {
                    held.0 -= 1;
                    held.1 -= waiting.stored;
                    if held.0 == 0 {
                        items.by_submitter.remove(group);
                    }
                }
                changed = true;
            }
        }
        if changed {
            self.inner.file.mark_changed();
        }
    }

    /// Writes `texts`, items a switch of branches is about to put back, to
    /// the journal, durably, before the switch happens: an item the node
    /// took (a 202) must survive a crash right after the switch, when it is
    /// in no block of the chain and not yet in `pool.json`. Items that end
    /// up in the chain after all are dropped from the pool at the next
    /// start. Blocking (a sync).
    pub fn journal_returning(&self, texts: &[String]) -> Result<(), PoolError> {
        if texts.is_empty() {
            return Ok(());
        }
        let received = unix_now();
        let mut lines = Vec::new();
        for text in texts {
            if !lines.is_empty() {
                lines.push(b'\n');
            }
            let saved = Saved {
                data: text.clone(),
                received,
            };
            lines.extend(serde_json::to_vec(&saved).expect("an item serialises"));
        }
        let saved = match &self.inner.journal {
            Ok(journal) => journal.append(&lines).map_err(|e| e.to_string()),
            Err(error) => Err(error.clone()),
        };
        saved.map_err(|reason| PoolError::Unsaved { reason })
    }

    /// Puts back the items of blocks that left the chain (they wait again,
    /// as if they had just arrived; a full pool keeps what it has).
    pub fn put_back(&self, texts: Vec<String>) {
        if texts.is_empty() {
            return;
        }
        let limits = self.inner.limits;
        let mut items = self.items();
        for text in texts {
            if let Err(error) = Pool::insert(&mut items, &limits, text.into(), unix_now(), None) {
                warn!("an item of a block that left the chain could not wait again: {error}");
            }
        }
        drop(items);
        self.inner.file.mark_changed();
        self.inner.arrived.notify_waiters();
    }

    /// Resolves when items arrive.
    pub async fn arrived(&self) {
        self.inner.arrived.notified().await
    }

    /// Saves the pool if it changed since the last save.
    pub fn flush(&self) {
        let render = || {
            let items = self.items();
            let saved: Vec<Saved> = items
                .order
                .values()
                .map(|id| {
                    let waiting = &items.by_id[id];
                    Saved {
                        data: waiting.text.to_string(),
                        received: waiting.received,
                    }
                })
                .collect();
            serde_json::to_vec(&saved).expect("items serialise")
        };
        let saved = match &self.inner.journal {
            Ok(journal) => journal.compact(|| self.inner.file.flush(render)),
            Err(_) => self.inner.file.flush(render),
        };
        if let Err(error) = saved {
            warn!(file = %self.inner.file.path().display(), "cannot save the pool: {error}");
        }
    }

    fn items(&self) -> MutexGuard<'_, Items> {
        self.inner.items.lock().expect("pool lock")
    }
}

/// The saved pool: every item in it that can be read. A file with
/// anything else in it is moved aside with a note, never overwritten by the
/// next save, and the log says where.
fn read_saved(path: &Path) -> Vec<Saved> {
    let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let (saved, damage) = match std::fs::read(path) {
        Ok(bytes) => parse_saved(&bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => (Vec::new(), Some(format!("cannot read it: {e}"))),
    };
    if let Some(reason) = damage {
        let kept = saved.len();
        match set_aside_damaged(path, &reason) {
            Ok(aside) => warn!(
                file = %shown.display(),
                "saved pool {}: {reason}; {kept} items kept; the file as it was is in {}",
                shown.display(),
                aside.display()
            ),
            Err(error) => warn!(
                file = %shown.display(),
                "saved pool {}: {reason}; {kept} items kept; it could not be moved aside ({error})",
                shown.display()
            ),
        }
    }
    saved
}

/// What of a saved pool can be read, and what was wrong with the rest.
fn parse_saved(bytes: &[u8]) -> (Vec<Saved>, Option<String>) {
    let elements = match serde_json::from_slice::<Vec<serde_json::Value>>(bytes) {
        Ok(elements) => elements,
        Err(e) => return (Vec::new(), Some(format!("not a JSON list of items: {e}"))),
    };
    let mut saved = Vec::new();
    let mut problems = Vec::new();
    for (position, element) in elements.into_iter().enumerate() {
        match serde_json::from_value::<Saved>(element) {
            Ok(item) => saved.push(item),
            Err(e) => problems.push(format!("item {position}: {e}")),
        }
    }
    (saved, crate::human::first_of(&problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> PoolLimits {
        PoolLimits {
            max_items: 3,
            max_bytes: 100,
            max_item_bytes: 40,
        }
    }

    #[test]
    fn items_wait_in_order_bounded_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::open(dir.path().join("pool.json"), limits());
        let (first, new) = pool.add("first", Submitter::Trusted).unwrap();
        assert!(new);
        assert_eq!(
            pool.add("first", Submitter::Trusted).unwrap(),
            (first, false)
        );
        pool.add("second", Submitter::Trusted).unwrap();
        pool.add("third", Submitter::Trusted).unwrap();
        assert!(matches!(
            pool.add("fourth", Submitter::Trusted),
            Err(PoolError::Full { .. })
        ));
        assert!(matches!(
            pool.add(&"x".repeat(41), Submitter::Trusted),
            Err(PoolError::TooLarge { bytes: 41, max: 40 })
        ));
        let order: Vec<ItemId> = pool.pending().iter().map(|p| p.id).collect();
        assert_eq!(order[0], first);
        pool.flush();

        let reopened = Pool::open(dir.path().join("pool.json"), limits());
        let again: Vec<ItemId> = reopened.pending().iter().map(|p| p.id).collect();
        assert_eq!(again, order);
    }

    #[test]
    fn an_item_taken_survives_a_crash_before_any_save() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pool.json");
        let pool = Pool::open(path.clone(), limits());
        let (first, _) = pool.add("first", Submitter::Trusted).unwrap();
        let (second, _) = pool.add("second", Submitter::Trusted).unwrap();
        // No flush: as after kill -9, only the journal has them.
        assert!(!path.exists());
        let journal = dir.path().join("pool.journal");
        // A crash in the middle of a third line leaves it cut short.
        let mut bytes = std::fs::read(&journal).unwrap();
        bytes.extend_from_slice(br#"{"data":"thi"#);
        std::fs::write(&journal, bytes).unwrap();
        drop(pool);

        let reopened = Pool::open(path.clone(), limits());
        let ids: Vec<ItemId> = reopened.pending().iter().map(|p| p.id).collect();
        assert_eq!(ids, [first, second]);
        // A save covers them and empties the journal; they stay.
        reopened.flush();
        assert_eq!(std::fs::metadata(&journal).unwrap().len(), 0);
        let (third, _) = reopened.add("third", Submitter::Trusted).unwrap();
        drop(reopened);
        let again: Vec<ItemId> = Pool::open(path, limits())
            .pending()
            .iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(again, [first, second, third]);
    }

    #[test]
    fn a_pool_file_with_a_bad_item_keeps_the_good_ones_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pool.json");
        let file = r#"[{"data":"good","received":1},{"data":5,"received":1},{"data":"also good","received":2}]"#;
        std::fs::write(&path, file).unwrap();
        let pool = Pool::open(path.clone(), limits());
        assert_eq!(pool.len(), 2);
        assert!(pool.contains(&ItemId::of("also good")));
        let aside = dir.path().join("pool.json.damaged");
        assert_eq!(std::fs::read_to_string(&aside).unwrap(), file);
        let note = std::fs::read_to_string(dir.path().join("pool.json.damaged.reason")).unwrap();
        assert!(note.contains("item 1"), "{note}");
        pool.flush();
        assert_eq!(
            Pool::open(path, limits()).len(),
            2,
            "the good items are saved again"
        );
        assert_eq!(
            std::fs::read_to_string(&aside).unwrap(),
            file,
            "the old file stays"
        );
    }

    #[test]
    fn one_remote_submitter_holds_at_most_its_share_of_a_busy_pool() {
        let dir = tempfile::tempdir().unwrap();
        let limits = PoolLimits {
            max_items: 16,
            max_bytes: 1 << 20,
            max_item_bytes: 40,
        };
        let pool = Pool::open(dir.path().join("pool.json"), limits);
        // Addresses only compared, never contacted (TEST-NET-1 and -2);
        // `near` is in `a`'s /16, so shares `a`'s share.
        let (a, b): (IpAddr, IpAddr) = (
            "192.0.2.1".parse().unwrap(),
            "198.51.100.2".parse().unwrap(),
        );
        let near: IpAddr = "192.0.99.3".parse().unwrap();
        // Below half full, anyone may add.
        for n in 0..7 {
            pool.add(&format!("a {n}"), Submitter::Remote(a)).unwrap();
        }
        pool.add("trusted 0", Submitter::Trusted).unwrap();
        // Half full now: `a` holds 7 of 16, more than its eighth.
        match pool.add("a 7", Submitter::Remote(a)) {
            Err(PoolError::Share {
                group, items: 7, ..
            }) => assert_eq!(group, NetGroup::of_ip(a)),
            other => panic!("expected a share refusal, got {other:?}"),
        }
        assert!(matches!(
            pool.add("near 0", Submitter::Remote(near)),
            Err(PoolError::Share { items: 7, .. })
        ));
        pool.add("b 0", Submitter::Remote(b)).unwrap();
        pool.add("b 1", Submitter::Remote(b)).unwrap();
        assert!(matches!(
            pool.add("b 2", Submitter::Remote(b)),
            Err(PoolError::Share { .. })
        ));
        pool.add("trusted 1", Submitter::Trusted).unwrap();
        // Once blocks take `a`'s items, its share is free again.
        let taken: Vec<ItemId> = (0..7).map(|n| ItemId::of(&format!("a {n}"))).collect();
        pool.remove(&taken);
        pool.add("a 7", Submitter::Remote(a)).unwrap();
        assert_eq!(
            Submitter::of(Some("127.0.0.1".parse().unwrap()), false),
            Submitter::Trusted
        );
        assert_eq!(Submitter::of(Some(a), true), Submitter::Trusted);
        assert_eq!(Submitter::of(Some(a), false), Submitter::Remote(a));
    }

    #[test]
    fn the_byte_limit_counts_items_as_stored() {
        let dir = tempfile::tempdir().unwrap();
        let limits = PoolLimits {
            max_items: 100,
            max_bytes: 100,
            max_item_bytes: 40,
        };
        let pool = Pool::open(dir.path().join("pool.json"), limits);
        // 10 bytes of text, 62 bytes stored (each control character is
        // written \u0001).
        let escaped = "\u{1}".repeat(10);
        pool.add(&escaped, Submitter::Trusted).unwrap();
        assert!(matches!(
            pool.add(&"\u{2}".repeat(10), Submitter::Trusted),
            Err(PoolError::Full { bytes: 62, .. })
        ));
        pool.add("short", Submitter::Trusted).unwrap();
    }

    #[test]
    fn an_item_that_cannot_be_saved_is_not_taken() {
        let dir = tempfile::tempdir().unwrap();
        // The journal's name taken by a folder: it cannot be opened.
        std::fs::create_dir(dir.path().join("pool.journal")).unwrap();
        let pool = Pool::open(dir.path().join("pool.json"), limits());
        match pool.add("unsaved", Submitter::Trusted) {
            Err(PoolError::Unsaved { reason }) => {
                assert!(reason.contains("pool.journal"), "{reason}")
            }
            other => panic!("expected Unsaved, got {other:?}"),
        }
        assert!(pool.is_empty());
    }

    #[test]
    fn a_template_takes_the_oldest_that_fit_and_commits_take_them_out() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::open(dir.path().join("pool.json"), limits());
        for text in ["aaaa", "bbbb", "cccc"] {
            pool.add(text, Submitter::Trusted).unwrap();
        }
        let room = room_taken("aaaa") * 2;
        let chosen: Vec<String> = pool
            .select(room, |_| false)
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert_eq!(chosen, ["aaaa", "bbbb"]);
        let skip_a = ItemId::of("aaaa");
        let chosen: Vec<String> = pool
            .select(room, |id| *id == skip_a)
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert_eq!(chosen, ["bbbb", "cccc"]);
        pool.remove(&[ItemId::of("aaaa"), ItemId::of("bbbb")]);
        assert_eq!(pool.len(), 1);
        pool.put_back(vec!["aaaa".into()]);
        let order: Vec<ItemId> = pool.pending().iter().map(|p| p.id).collect();
        assert_eq!(order, [ItemId::of("cccc"), ItemId::of("aaaa")]);
    }
}
