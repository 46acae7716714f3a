//! The connections the server holds, by network group, and whom to drop
//! when they are too many, as Bitcoin Core's inbound eviction does: the
//! server never refuses a newcomer for want of room; it drops the youngest
//! connection of the group holding the most. One address (or a thousand in
//! one /16) that opens every connection it can therefore holds at most
//! what is left after everyone else, and a client of any other group is
//! always let in.
//!
//! This module keeps the table; closing a connection is its task's (it
//! watches the token it was given).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;

use crate::netgroup::NetGroup;

/// Every open connection, by group.
#[derive(Debug)]
pub struct Connections {
    table: Mutex<Table>,
    /// The most held at once.
    limit: usize,
}

#[derive(Debug, Default)]
struct Table {
    /// Connections in the order they opened (ids grow).
    open: HashMap<u64, Open>,
    next: u64,
    per_group: HashMap<NetGroup, usize>,
    /// Dropped for a newcomer, since start.
    evicted: u64,
}

#[derive(Debug)]
struct Open {
    group: NetGroup,
    /// Cancelled when it is evicted.
    evict: CancellationToken,
}

/// One connection's place in the table; given back when dropped.
#[derive(Debug)]
pub struct Place {
    connections: Arc<Connections>,
    id: u64,
    /// Cancelled when the connection is to be dropped for a newcomer.
    pub evicted: CancellationToken,
}

impl Connections {
    pub fn new(limit: usize) -> Arc<Connections> {
        Arc::new(Connections {
            table: Mutex::new(Table::default()),
            limit: limit.max(1),
        })
    }

    /// Takes a place for a connection from `remote`; when that makes one
    /// too many, the youngest connection of the group holding the most is
    /// told to go (the newcomer's own group included: a flood evicts
    /// itself).
    pub fn open(self: &Arc<Self>, remote: IpAddr) -> Place {
        let group = NetGroup::of_ip(remote);
        let mut table = self.table();
        let id = table.next;
        table.next += 1;
        let evict = CancellationToken::new();
        *table.per_group.entry(group.clone()).or_default() += 1;
        table.open.insert(
            id,
            Open {
                group,
                evict: evict.clone(),
            },
        );
        if table.open.len() > self.limit {
            table.evict_one();
        }
        Place {
            connections: Arc::clone(self),
            id,
            evicted: evict,
        }
    }

    /// Connections open now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.table().open.len()
    }

    /// Connections dropped for newcomers since start.
    pub fn evicted(&self) -> u64 {
        self.table().evicted
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().expect("connections lock")
    }
}

impl Table {
    /// Drops the youngest connection of the group holding the most (ties:
    /// the group whose youngest is younger).
    fn evict_one(&mut self) {
        let mut youngest: HashMap<&NetGroup, u64> = HashMap::new();
        for (id, open) in &self.open {
            let entry = youngest.entry(&open.group).or_insert(*id);
            *entry = (*entry).max(*id);
        }
        let Some((_, &victim)) = youngest
            .iter()
            .max_by_key(|(group, id)| (self.per_group.get(**group).copied().unwrap_or(0), **id))
        else {
            return;
        };
        if let Some(open) = self.open.remove(&victim) {
            self.forget(&open.group);
            self.evicted += 1;
            open.evict.cancel();
        }
    }

    fn forget(&mut self, group: &NetGroup) {
        if let Some(count) = self.per_group.get_mut(group) {
            *count -= 1;
            if *count == 0 {
                self.per_group.remove(group);
            }
        }
    }
}

impl Place {
    /// The table it is in.
    pub fn connections(&self) -> &Connections {
        &self.connections
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut table = self.connections.table();
        if let Some(open) = table.open.remove(&self.id) {
            table.forget(&open.group);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_flood_from_one_group_evicts_itself_and_others_always_get_in() {
        let connections = Connections::new(10);
        // Addresses only compared, never contacted (TEST-NET-2 and -3):
        // a hundred addresses of one /16.
        let flood: Vec<Place> = (0..100)
            .map(|n| connections.open(ip(&format!("198.51.{n}.7"))))
            .collect();
        assert_eq!(connections.len(), 10);
        // Past the limit, each newcomer of the biggest group is its
        // youngest: the flood evicts its own newest.
        assert!(flood[..10].iter().all(|p| !p.evicted.is_cancelled()));
        assert!(flood[10..].iter().all(|p| p.evicted.is_cancelled()));
        let honest = connections.open(ip("203.0.113.9"));
        assert!(!honest.evicted.is_cancelled());
        assert!(
            flood[9].evicted.is_cancelled(),
            "the flood's youngest made way"
        );
        // More of the flood never displaces the honest one.
        let more: Vec<Place> = (0..50)
            .map(|_| connections.open(ip("198.51.0.1")))
            .collect();
        assert!(!honest.evicted.is_cancelled());
        assert!(more.iter().all(|p| p.evicted.is_cancelled()));
        assert_eq!(connections.len(), 10);
        drop(more);
        drop(flood);
        assert_eq!(connections.len(), 1);
        assert_eq!(connections.evicted(), 90 + 1 + 50);
    }

    #[test]
    fn the_group_holding_the_most_gives_way_first() {
        let connections = Connections::new(6);
        let a: Vec<Place> = (0..3)
            .map(|_| connections.open(ip("198.51.100.1")))
            .collect();
        let b: Vec<Place> = (0..2)
            .map(|_| connections.open(ip("203.0.113.1")))
            .collect();
        let c = connections.open(ip("192.0.2.1"));
        let d = connections.open(ip("127.0.0.1"));
        assert!(
            a[2].evicted.is_cancelled(),
            "the youngest of the biggest group"
        );
        assert!(!a[0].evicted.is_cancelled() && !a[1].evicted.is_cancelled());
        assert!(b.iter().chain([&c, &d]).all(|p| !p.evicted.is_cancelled()));
    }
}
