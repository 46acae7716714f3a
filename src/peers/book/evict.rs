//! Room in the book: when the peers of a kind are at their limit, who
//! makes way for a newcomer. Inbound slots are shared by network group
//! ([`crate::netgroup`]), as Bitcoin Core's inbound eviction protects
//! peers by netgroup: one group holds at most [`inbound_per_group`], and
//! a failing inbound peer makes way first, else the youngest of the group
//! holding the most, never for a group no bigger than the newcomer's would
//! be. A chosen outbound peer makes way when it fails longest or has been
//! silent longest; configured and added peers never do.

use std::collections::HashMap;

use super::{Book, BookError, MAX_PEERS, Origin, PeerSlots, Record};
use crate::netgroup::NetGroup;
use crate::peers::PeerUrl;

/// The most inbound peers one network group may hold: an eighth of the
/// slots (at least one).
pub fn inbound_per_group(inbound: usize) -> usize {
    (inbound / 8).max(1)
}

impl Book {
    /// Makes room for newcomer `url` of `origin`, evicting a peer of its
    /// kind if need be; the one evicted, or why there is no room.
    pub(super) fn make_room(
        &mut self,
        url: &PeerUrl,
        origin: Origin,
        limits: PeerSlots,
    ) -> Result<Option<PeerUrl>, BookError> {
        let (limit, what) = match origin {
            Origin::Config | Origin::Added => (MAX_PEERS, "configured and added"),
            Origin::Learned => (limits.outbound, "outbound"),
            Origin::Inbound => (limits.inbound, "inbound"),
        };
        let kind = |r: &&Record| match origin {
            Origin::Config | Origin::Added => r.origin.by_operator(),
            _ => r.origin == origin,
        };
        if origin == Origin::Inbound {
            let group = url.group();
            let share = inbound_per_group(limits.inbound);
            let in_group: Vec<&Record> = self
                .records
                .iter()
                .filter(kind)
                .filter(|r| r.url.group() == group)
                .collect();
            if in_group.len() >= share {
                // Its own group is at its share: a failing one of the group
                // makes way, else none.
                let victim = in_group
                    .iter()
                    .filter(|r| r.failing())
                    .min_by_key(|r| longest_failing(r))
                    .map(|r| r.url.clone());
                let Some(victim) = victim else {
                    return Err(BookError::GroupFull {
                        group: group.to_string(),
                        limit: share,
                    });
                };
                self.drop_record(&victim);
                return Ok(Some(victim));
            }
        }
        if self.records.iter().filter(kind).count() < limit {
            return Ok(None);
        }
        let victim = match origin {
            Origin::Config | Origin::Added => None,
            Origin::Learned => self.outbound_to_evict(),
            Origin::Inbound => self.inbound_to_evict(&url.group()),
        };
        let Some(victim) = victim else {
            return Err(BookError::Full { what, limit });
        };
        self.drop_record(&victim);
        Ok(Some(victim))
    }

    /// The chosen outbound peer to evict for a newcomer: the one failing
    /// longest, else the one silent longest.
    fn outbound_to_evict(&self) -> Option<PeerUrl> {
        self.records
            .iter()
            .filter(|r| r.origin == Origin::Learned)
            .min_by_key(|r| longest_failing(r))
            .map(|r| r.url.clone())
    }

    /// The inbound peer to evict for a newcomer of group `newcomer`, as
    /// Core's inbound eviction does: one that fails, else the youngest of
    /// the group holding the most inbound peers, when that group holds
    /// more than the newcomer's would (so no group grows at another's
    /// expense, and a node never churns through the honest nodes that
    /// sync from it for one crowd).
    fn inbound_to_evict(&self, newcomer: &NetGroup) -> Option<PeerUrl> {
        let inbound = || self.records.iter().filter(|r| r.origin == Origin::Inbound);
        if let Some(failing) = inbound()
            .filter(|r| r.failing())
            .min_by_key(|r| longest_failing(r))
        {
            return Some(failing.url.clone());
        }
        let mut groups: HashMap<NetGroup, Vec<&Record>> = HashMap::new();
        for record in inbound() {
            groups.entry(record.url.group()).or_default().push(record);
        }
        let newcomers = groups.get(newcomer).map_or(0, Vec::len);
        let (_, crowd) = groups
            .iter()
            .max_by_key(|(group, members)| (members.len(), *group))?;
        if crowd.len() <= newcomers + 1 {
            return None;
        }
        crowd
            .iter()
            .max_by_key(|r| r.runtime.admitted)
            .map(|r| r.url.clone())
    }
}

/// Sorts peers so the one failing longest comes first, then the one silent
/// longest.
fn longest_failing(record: &Record) -> (bool, u64, u64) {
    (
        record.failing_since.is_none(),
        record.failing_since.unwrap_or(u64::MAX),
        record.last_success.unwrap_or(0),
    )
}
