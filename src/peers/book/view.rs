//! The book as `GET /peers` shows it: each peer with where it stands, the
//! operator's bans and the discouragements, also of URLs no longer in it.

use std::time::Instant;

use serde::Serialize;

use super::{Identity, Origin, PeerBook};
use crate::clock::unix_now;
use crate::peers::PeerUrl;
use crate::peers::health::Health;

/// Where a peer stands, as `GET /peers` and the events tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PeerState {
    /// Not reached yet.
    #[serde(rename = "new")]
    New,
    /// Its last sync worked.
    #[serde(rename = "up")]
    Up,
    /// Its last syncs failed: retried after growing pauses.
    #[serde(rename = "backing off")]
    BackingOff,
    /// It misbehaved: left alone for a while (in memory).
    #[serde(rename = "discouraged")]
    Discouraged,
    /// The operator banned it.
    #[serde(rename = "banned")]
    Banned,
    /// The URL leads to this node itself.
    #[serde(rename = "itself")]
    Itself,
}

impl std::fmt::Display for PeerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PeerState {
    /// Every state, for the metrics.
    pub const ALL: [PeerState; 6] = [
        PeerState::New,
        PeerState::Up,
        PeerState::BackingOff,
        PeerState::Discouraged,
        PeerState::Banned,
        PeerState::Itself,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::New => "new",
            PeerState::Up => "up",
            PeerState::BackingOff => "backing off",
            PeerState::Discouraged => "discouraged",
            PeerState::Banned => "banned",
            PeerState::Itself => "itself",
        }
    }
}

/// A peer as `GET /peers` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    pub url: PeerUrl,
    pub origin: Option<Origin>,
    pub state: PeerState,
    #[serde(flatten)]
    pub identity: Option<Identity>,
    pub height: Option<u64>,
    /// Seconds since the epoch.
    pub last_success: Option<u64>,
    pub failures: u32,
    /// Misbehaviour points now (they fade; at 100 it is discouraged).
    pub score: u32,
    /// Seconds since the epoch, for a peer the operator banned.
    pub banned_until: Option<u64>,
    pub ban_reason: Option<String>,
    /// Seconds since the epoch, for a discouraged peer, and why.
    pub discouraged_until: Option<u64>,
    pub discouraged_reason: Option<String>,
    /// Milliseconds until the next attempt, for a peer backing off.
    pub retry_in_ms: Option<u64>,
}

impl PeerBook {
    /// Every peer, ban and discouragement, for `GET /peers`.
    pub fn views(&self) -> Vec<PeerView> {
        let book = self.book();
        let now = Instant::now();
        let unix = unix_now();
        let unix_at = |at: Instant| unix + at.saturating_duration_since(now).as_secs();
        let blank = |url: &PeerUrl, state: PeerState| PeerView {
            url: url.clone(),
            origin: None,
            state,
            identity: None,
            height: None,
            last_success: None,
            failures: 0,
            score: book.scores.points(url, now),
            banned_until: None,
            ban_reason: None,
            discouraged_until: None,
            discouraged_reason: None,
            retry_in_ms: None,
        };
        let mut views: Vec<PeerView> = Vec::new();
        for record in &book.records {
            let ban = book.bans.get(&record.url).filter(|ban| ban.until > unix);
            let discouraged = book.scores.discouraged(&record.url, now);
            let retry_in = record
                .runtime
                .retry_at
                .and_then(|at| at.checked_duration_since(now));
            let state = if record.runtime.itself {
                PeerState::Itself
            } else if ban.is_some() {
                PeerState::Banned
            } else if discouraged.is_some() {
                PeerState::Discouraged
            } else if record.failures > 0 {
                PeerState::BackingOff
            } else if record.runtime.health.sync == Health::Up {
                PeerState::Up
            } else {
                PeerState::New
            };
            views.push(PeerView {
                origin: Some(record.origin),
                identity: record.identity.clone(),
                height: record.height,
                last_success: record.last_success,
                failures: record.failures,
                banned_until: ban.map(|ban| ban.until),
                ban_reason: ban.map(|ban| ban.reason.clone()),
                discouraged_until: discouraged.map(|d| unix_at(d.until)),
                discouraged_reason: discouraged.map(|d| d.reason.clone()),
                retry_in_ms: retry_in.map(|d| d.as_millis() as u64),
                ..blank(&record.url, state)
            });
        }
        for (url, ban) in &book.bans {
            if ban.until > unix && book.record(url).is_none() {
                views.push(PeerView {
                    banned_until: Some(ban.until),
                    ban_reason: Some(ban.reason.clone()),
                    ..blank(url, PeerState::Banned)
                });
            }
        }
        for (url, discouragement) in book.scores.discouragements(now) {
            if book.record(url).is_none() && !book.bans.contains_key(url) {
                views.push(PeerView {
                    discouraged_until: Some(unix_at(discouragement.until)),
                    discouraged_reason: Some(discouragement.reason.clone()),
                    ..blank(url, PeerState::Discouraged)
                });
            }
        }
        views
    }
}
