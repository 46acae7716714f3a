//! Judging peers: the offences an honest node never commits, what each
//! costs, and the in-memory scores that fade, in the manner of Bitcoin
//! Core's `Misbehaving` and discouragement (since 0.20.1).
//!
//! Only what a peer could not have sent in good faith counts: a block that
//! breaks the rules, an answer larger or stranger than any this protocol
//! gives, a chain claimed with more work than the blocks it then served
//! carry. A peer that is slow, down, refuses us, or whose chain turns out
//! not better than ours because ours moved on meanwhile costs nothing: the
//! caller never brings those here (see [`crate::sync::SyncError`], where a
//! failure is told from a verdict).
//!
//! Points fade ([`FADE_EVERY`] takes one away), so a long-lived network
//! never collects them from rare accidents. At [`DISCOURAGE_AT`] a peer is
//! discouraged for [`DISCOURAGED_FOR`]: a peer the node found leaves the
//! book and is not taken back meanwhile; a configured or added one (the
//! operator's word) stays, and is left alone until then. Nothing here is
//! saved: a restart forgets every score. Bans, which last, are the
//! operator's alone ([`super::PeerBook::ban_by_operator`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::PeerUrl;

/// The points at which a peer is discouraged.
pub const DISCOURAGE_AT: u32 = 100;
/// How long a discouragement lasts.
pub const DISCOURAGED_FOR: Duration = Duration::from_secs(3600);
/// One point fades in this time: a hundred in an hour.
pub const FADE_EVERY: Duration = Duration::from_secs(36);
/// Peers whose score is remembered; past it, the lowest make way.
const MAX_REMEMBERED: usize = 4096;

/// Something no honest node sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// A block invalid in itself (hash, proof of work, size) or in its
    /// place (a target easier than the rules give, a timestamp not after
    /// the median).
    InvalidBlock,
    /// An answer larger than any this protocol gives for that request.
    Oversized,
    /// An answer that is not what this protocol gives (not JSON, the wrong
    /// shape, another block than the one asked for).
    Garbled,
    /// It claimed a chain with more work than the blocks it then served
    /// carry: an honest node's work never goes down.
    Unfounded,
}

impl Misbehaviour {
    /// What it costs.
    pub fn points(self) -> u32 {
        match self {
            Misbehaviour::InvalidBlock => 100,
            Misbehaviour::Oversized => 50,
            // A liar only wastes a download; and a node of an earlier
            // version could give a later tip's work with its height now
            // and then (it read the two apart): five in an hour discourage.
            Misbehaviour::Garbled | Misbehaviour::Unfounded => 20,
        }
    }
}

/// What a judgement came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    /// Its score is now `points` (not yet at [`DISCOURAGE_AT`]).
    Scored { points: u32 },
    /// It reached the threshold now: discouraged until `until`.
    Discouraged { until: Instant },
    /// It was discouraged already: nothing more to do.
    AlreadyDiscouraged,
}

/// A discouragement in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discouragement {
    pub until: Instant,
    /// The offence that reached the threshold, in words.
    pub reason: String,
}

#[derive(Debug, Clone)]
struct Score {
    /// Points as of `at`.
    points: f64,
    at: Instant,
    discouraged: Option<Discouragement>,
}

impl Score {
    fn points_at(&self, now: Instant) -> f64 {
        let faded = now.saturating_duration_since(self.at).as_secs_f64() / FADE_EVERY.as_secs_f64();
        (self.points - faded).max(0.0)
    }

    fn discouraged_at(&self, now: Instant) -> Option<&Discouragement> {
        self.discouraged.as_ref().filter(|d| d.until > now)
    }
}

/// Every peer's fading score, in memory.
#[derive(Debug, Default)]
pub struct Scores {
    by_url: HashMap<PeerUrl, Score>,
}

impl Scores {
    /// Counts `offence` (told in `reason`) against `url`.
    pub fn judge(
        &mut self,
        url: &PeerUrl,
        offence: Misbehaviour,
        reason: &str,
        now: Instant,
    ) -> Judged {
        if !self.by_url.contains_key(url) && self.by_url.len() >= MAX_REMEMBERED {
            self.make_room(now);
        }
        let score = self.by_url.entry(url.clone()).or_insert(Score {
            points: 0.0,
            at: now,
            discouraged: None,
        });
        if score.discouraged_at(now).is_some() {
            return Judged::AlreadyDiscouraged;
        }
        let points = score.points_at(now) + f64::from(offence.points());
        if points >= f64::from(DISCOURAGE_AT) {
            let until = now + DISCOURAGED_FOR;
            *score = Score {
                points: 0.0,
                at: now,
                discouraged: Some(Discouragement {
                    until,
                    reason: reason.chars().take(300).collect(),
                }),
            };
            return Judged::Discouraged { until };
        }
        score.points = points;
        score.at = now;
        Judged::Scored {
            points: points as u32,
        }
    }

    /// `url`'s points now (faded).
    pub fn points(&self, url: &PeerUrl, now: Instant) -> u32 {
        self.by_url
            .get(url)
            .map_or(0, |score| score.points_at(now) as u32)
    }

    /// The discouragement of `url`, if one is in force.
    pub fn discouraged(&self, url: &PeerUrl, now: Instant) -> Option<&Discouragement> {
        self.by_url.get(url)?.discouraged_at(now)
    }

    /// Every discouragement in force.
    pub fn discouragements(
        &self,
        now: Instant,
    ) -> impl Iterator<Item = (&PeerUrl, &Discouragement)> {
        self.by_url
            .iter()
            .filter_map(move |(url, score)| Some((url, score.discouraged_at(now)?)))
    }

    /// Forgets `url`'s score and discouragement (the operator's word).
    pub fn forget(&mut self, url: &PeerUrl) -> bool {
        self.by_url.remove(url).is_some()
    }

    /// Drops what has faded, then, if still full, the lowest score that is
    /// not a discouragement in force.
    fn make_room(&mut self, now: Instant) {
        self.by_url
            .retain(|_, score| score.discouraged_at(now).is_some() || score.points_at(now) > 0.0);
        if self.by_url.len() >= MAX_REMEMBERED
            && let Some(lowest) = self
                .by_url
                .iter()
                .min_by(|a, b| {
                    let key = |s: &Score| (s.discouraged_at(now).is_some(), s.points_at(now));
                    key(a.1).partial_cmp(&key(b.1)).expect("points are finite")
                })
                .map(|(url, _)| url.clone())
        {
            self.by_url.remove(&lowest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(port: u16) -> PeerUrl {
        PeerUrl::parse(&format!("http://127.0.0.1:{port}")).unwrap()
    }

    #[test]
    fn points_add_up_to_a_discouragement_that_lasts_its_time() {
        let mut scores = Scores::default();
        let peer = url(5002);
        let start = Instant::now();
        assert_eq!(
            scores.judge(&peer, Misbehaviour::Garbled, "junk", start),
            Judged::Scored { points: 20 }
        );
        assert_eq!(
            scores.judge(&peer, Misbehaviour::Unfounded, "a lie", start),
            Judged::Scored { points: 40 }
        );
        assert_eq!(
            scores.judge(&peer, Misbehaviour::Oversized, "too large", start),
            Judged::Scored { points: 90 }
        );
        let until = start + DISCOURAGED_FOR;
        assert_eq!(
            scores.judge(&peer, Misbehaviour::Garbled, "junk again", start),
            Judged::Discouraged { until }
        );
        assert_eq!(
            scores.discouraged(&peer, start).unwrap().reason,
            "junk again"
        );
        assert_eq!(
            scores.judge(&peer, Misbehaviour::InvalidBlock, "again", start),
            Judged::AlreadyDiscouraged,
            "judged once while it lasts"
        );
        assert!(scores.discouraged(&peer, until).is_none(), "it ends");
        assert_eq!(scores.points(&peer, until), 0, "and starts from nothing");
        assert!(scores.discouraged(&url(5003), start).is_none());
    }

    #[test]
    fn points_fade_so_rare_accidents_never_add_up() {
        let mut scores = Scores::default();
        let peer = url(5002);
        let mut now = Instant::now();
        // One garbled answer every 12 minutes, for a day: each has faded
        // by the next.
        for _ in 0..120 {
            let judged = scores.judge(&peer, Misbehaviour::Garbled, "junk", now);
            assert_eq!(judged, Judged::Scored { points: 20 });
            now += FADE_EVERY * 20;
        }
        assert_eq!(scores.points(&peer, now), 0);
        // Half faded after half the time.
        scores.judge(&peer, Misbehaviour::Oversized, "too large", now);
        assert_eq!(scores.points(&peer, now + FADE_EVERY * 25), 25);
    }

    #[test]
    fn the_operator_forgets_a_score_and_the_table_is_bounded() {
        let mut scores = Scores::default();
        let now = Instant::now();
        let peer = url(5002);
        scores.judge(&peer, Misbehaviour::InvalidBlock, "bad block", now);
        assert!(scores.discouraged(&peer, now).is_some());
        assert!(scores.forget(&peer));
        assert!(scores.discouraged(&peer, now).is_none());
        for n in 0..MAX_REMEMBERED as u16 + 10 {
            scores.judge(&url(10_000 + n), Misbehaviour::Garbled, "junk", now);
        }
        assert!(scores.by_url.len() <= MAX_REMEMBERED);
    }
}
