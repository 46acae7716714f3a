//! Network groups: what one operator can easily have many addresses in,
//! in the manner of Bitcoin Core's netgroups. Whatever the node shares out
//! (connections, inbound peer slots, the addresses it gives out, `/events`
//! streams, the pool) it shares by group, so that an attacker with a
//! thousand addresses in one block holds one group's share, not a thousand.
//!
//! - a public IPv4 address: its /16; a public IPv6 address: its /32;
//! - an address of a private network (10/8, 172.16/12, 192.168/16,
//!   100.64/10, fc00::/7): itself. Such an address is only ever heard from
//!   a source on that network (see [`crate::peers::addrman::fit_to_keep`]),
//!   so each machine of a LAN is a host of its own, and a little network on
//!   one's own machines works as it would across the internet;
//! - loopback: for connections and requests, each loopback address is a
//!   host of its own (their source ports tell nothing; a test can play two
//!   clients as 127.0.0.1 and 127.0.0.2), and, for a node's URL, each
//!   address and port: every node of a one-machine devnet is 127.0.0.1,
//!   and each is a host of its own. A process on this machine could do far
//!   worse than take slots, and no remote node can name a loopback address
//!   to us;
//! - a host name: itself.

use std::fmt;
use std::net::IpAddr;

/// A network group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NetGroup {
    /// A node on this machine, by its address and port.
    LocalNode(IpAddr, u16),
    /// One machine of a private network, or one loopback address.
    Host(IpAddr),
    /// A public IPv4 /16.
    V4([u8; 2]),
    /// A public IPv6 /32.
    V6([u16; 2]),
    /// A host name.
    Name(String),
}

impl NetGroup {
    /// The group of a connection or a request from `ip`.
    pub fn of_ip(ip: IpAddr) -> NetGroup {
        let ip = ip.to_canonical();
        if ip.is_loopback() || is_private(ip) {
            return NetGroup::Host(ip);
        }
        match ip {
            IpAddr::V4(ip) => {
                let [a, b, ..] = ip.octets();
                NetGroup::V4([a, b])
            }
            IpAddr::V6(ip) => {
                let s = ip.segments();
                NetGroup::V6([s[0], s[1]])
            }
        }
    }

    /// The group of a node listening at `ip`:`port`.
    pub fn of_node(ip: IpAddr, port: u16) -> NetGroup {
        let ip = ip.to_canonical();
        if ip.is_loopback() {
            NetGroup::LocalNode(ip, port)
        } else {
            NetGroup::of_ip(ip)
        }
    }
}

impl fmt::Display for NetGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetGroup::LocalNode(ip, port) => write!(f, "{}", std::net::SocketAddr::new(*ip, *port)),
            NetGroup::Host(ip) => write!(f, "{ip}"),
            NetGroup::V4([a, b]) => write!(f, "{a}.{b}"),
            NetGroup::V6([a, b]) => write!(f, "{a:x}:{b:x}"),
            NetGroup::Name(name) => f.write_str(name),
        }
    }
}

/// Whether `ip` belongs to a private network: RFC 1918, carrier-grade NAT
/// (100.64.0.0/10, a LAN by another name) or IPv6 unique local addresses.
pub fn is_private(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(ip) => {
            let [a, b, ..] = ip.octets();
            ip.is_private() || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(ip) => (ip.segments()[0] & 0xfe00) == 0xfc00,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(ip: &str) -> String {
        NetGroup::of_ip(ip.parse().unwrap()).to_string()
    }

    #[test]
    fn groups_are_what_one_operator_easily_has_many_addresses_in() {
        assert_eq!(group("203.0.113.7"), "203.0");
        assert_eq!(group("203.0.200.9"), "203.0");
        assert_eq!(group("198.51.100.1"), "198.51");
        assert_eq!(group("2001:db8:1:2::7"), "2001:db8");
        assert_eq!(
            group("::ffff:203.0.113.7"),
            "203.0",
            "a mapped IPv4 is IPv4"
        );
        assert_eq!(
            group("10.200.0.1"),
            "10.200.0.1",
            "a LAN machine is its own"
        );
        assert_eq!(group("192.168.1.20"), "192.168.1.20");
        assert_eq!(group("100.64.3.4"), "100.64.3.4");
        assert_eq!(group("fd00::1"), "fd00::1");
        assert_eq!(group("127.0.0.1"), "127.0.0.1");
        assert_eq!(group("127.5.6.7"), "127.5.6.7");
        assert_eq!(group("::1"), "::1");
        let local = NetGroup::of_node("127.0.0.1".parse().unwrap(), 5001);
        assert_eq!(local.to_string(), "127.0.0.1:5001");
        assert_ne!(local, NetGroup::of_node("127.0.0.1".parse().unwrap(), 5002));
        assert_eq!(
            NetGroup::of_node("203.0.113.7".parse().unwrap(), 5001),
            NetGroup::of_node("203.0.9.9".parse().unwrap(), 6001),
            "ports count only on loopback"
        );
    }
}
