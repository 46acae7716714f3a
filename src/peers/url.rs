//! What a peer's address may be, and how it is written.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use reqwest::Url;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::netgroup::NetGroup;

/// A peer's base URL: `http`, a host, an optional port and nothing after
/// it. Written without a trailing slash, as people type it
/// (`http://127.0.0.1:5002`).
///
/// `https` is refused when the URL is given, not accepted and left to fail
/// later: this node speaks plain HTTP to its peers (a TLS proxy in front of
/// a node is the way to encrypt).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
        match url.scheme() {
            "http" => {}
            "https" => {
                return Err(bad(
                    "https peers are not supported: nodes speak plain HTTP to each other \
                     (give the peer's http:// URL, or put a TLS proxy in front of it)",
                ));
            }
            _ => return Err(bad("a peer's URL starts with http://")),
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

    /// The URL of one of the peer's endpoints: `path` is one of
    /// [`crate::protocol::route`], maybe with more after it, like
    /// `"/blocks?from=3"` (a peer URL is a base URL, so its path is `/`).
    pub fn endpoint(&self, path: &str) -> Url {
        self.0
            .join(path)
            .expect("a relative path joins onto a base URL")
    }

    /// The host, when it is an IP address.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.0.host()? {
            url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            url::Host::Domain(_) => None,
        }
    }

    /// The network group of the node at this URL (see
    /// [`crate::netgroup`]): `localhost` is loopback, a name is itself.
    pub fn group(&self) -> NetGroup {
        let port = self.0.port_or_known_default().unwrap_or(80);
        match (self.ip(), self.host_name()) {
            (Some(ip), _) => NetGroup::of_node(ip, port),
            (None, Some(name)) if name == "localhost" => {
                NetGroup::LocalNode(std::net::Ipv4Addr::LOCALHOST.into(), port)
            }
            (None, name) => NetGroup::Name(name.unwrap_or_default()),
        }
    }

    /// Whether this URL's host is `remote`, the address a request came
    /// from (`localhost` is any loopback address): a node that names itself
    /// in a request is believed only at the address it sent from.
    pub fn is_at(&self, remote: IpAddr) -> bool {
        let remote = remote.to_canonical();
        match self.ip() {
            Some(ip) => ip.to_canonical() == remote,
            None => self.host_name().as_deref() == Some("localhost") && remote.is_loopback(),
        }
    }

    /// The host, when it is a name (lowercase, as URLs keep it).
    pub fn host_name(&self) -> Option<String> {
        match self.0.host()? {
            url::Host::Domain(name) => Some(name.to_string()),
            url::Host::Ipv4(_) | url::Host::Ipv6(_) => None,
        }
    }

    /// The URL a node that listens on all addresses (`0.0.0.0`) gave for
    /// itself, as seen from here: its host replaced by the address its
    /// connection came from. Other URLs are returned as they are.
    pub fn as_seen_from(&self, remote: IpAddr) -> PeerUrl {
        if !self.ip().is_some_and(|ip| ip.is_unspecified()) {
            return self.clone();
        }
        let mut url = self.0.clone();
        let host = match remote {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        match url.set_host(Some(&host)) {
            Ok(()) => PeerUrl(url),
            Err(_) => self.clone(),
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
        let https = PeerUrl::parse("https://127.0.0.1:5002").unwrap_err();
        assert!(
            https.to_string().contains("https peers are not supported"),
            "{https}"
        );
    }

    #[test]
    fn an_unspecified_host_is_seen_as_the_connection_s_address() {
        let remote: IpAddr = "10.20.0.2".parse().unwrap();
        assert_eq!(
            url("http://0.0.0.0:5001").as_seen_from(remote),
            url("http://10.20.0.2:5001")
        );
        assert_eq!(
            url("http://127.0.0.1:5001").as_seen_from(remote),
            url("http://127.0.0.1:5001")
        );
        assert_eq!(
            url("http://[::]:5001").as_seen_from("fd00::2".parse().unwrap()),
            url("http://[fd00::2]:5001")
        );
    }
}
