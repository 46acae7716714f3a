//! How a peer answers: per kind of contact, whether its last answer was
//! usable or how it has been failing, what a contact changed (what is
//! worth telling the operator), and the pause before a failing peer is
//! tried again.
//!
//! A failure here is only a fact about the contact (refused, timed out, an
//! answer we could not use); whether it says anything about the peer's
//! honesty is [`super::score`]'s business, and only for what the caller
//! judged.

use std::time::Duration;

/// The longest pause between two attempts to reach a failing peer.
const MAX_RETRY: Duration = Duration::from_secs(300);

/// The two ways the node contacts a peer, each with its own record: a peer
/// can serve its chain well and still refuse announcements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Contact {
    /// Asking for its status and blocks.
    Sync,
    /// Posting our new blocks to it.
    Announce,
}

impl Contact {
    /// The contact in words, before the peer's URL.
    pub fn in_words(self) -> &'static str {
        match self {
            Contact::Sync => "sync with",
            Contact::Announce => "announcing to",
        }
    }
}

/// The way a contact failed: a new way is news, the same one again is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Unreachable,
    TimedOut,
    HttpError,
    /// It answered an announcement with something other than 2xx.
    Refused,
    TooLarge,
    InvalidAnswer,
    InvalidChain,
    /// Its chain is not of our network (another genesis block, other
    /// rules): nothing it announces can be ours.
    OtherNetwork,
    /// Our own disk refused its blocks.
    NotSaved,
    /// It claimed more work than it served.
    Unfounded,
}

/// What the node last heard from a peer, by one kind of contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Health {
    /// Not asked yet.
    #[default]
    Unknown,
    /// Its last answer was usable.
    Up,
    /// Its last `failures` contacts failed, the last one this way.
    Failing { failure: Failure, failures: u32 },
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

/// A peer's health by both kinds of contact.
#[derive(Debug, Clone, Copy, Default)]
pub struct Healths {
    pub sync: Health,
    pub announce: Health,
}

impl Healths {
    fn of(&mut self, contact: Contact) -> &mut Health {
        match contact {
            Contact::Sync => &mut self.sync,
            Contact::Announce => &mut self.announce,
        }
    }

    /// Notes a usable answer by `contact`.
    pub fn succeeded(&mut self, contact: Contact) -> Change {
        let health = self.of(contact);
        let change = match *health {
            Health::Unknown => Change::FirstAnswer,
            Health::Up => Change::StillUp,
            Health::Failing { failures, .. } => Change::Recovered { failures },
        };
        *health = Health::Up;
        change
    }

    /// Notes a failed contact. A failure the other kind of contact already
    /// reported the same way (a peer that is down fails both ways) is not
    /// news either.
    pub fn failed(&mut self, contact: Contact, failure: Failure) -> Change {
        let other = match contact {
            Contact::Sync => self.announce,
            Contact::Announce => self.sync,
        };
        let reported_elsewhere =
            matches!(other, Health::Failing { failure: elsewhere, .. } if elsewhere == failure);
        let health = self.of(contact);
        let (change, failures) = match *health {
            Health::Failing {
                failure: before,
                failures,
            } if before == failure => (
                Change::StillFailing {
                    failures: failures + 1,
                },
                failures + 1,
            ),
            Health::Failing { failures, .. } => (Change::Failing, failures + 1),
            Health::Unknown | Health::Up => (Change::Failing, 1),
        };
        *health = Health::Failing { failure, failures };
        match change {
            Change::Failing if reported_elsewhere => Change::StillFailing { failures },
            change => change,
        }
    }

    /// Failed contacts in a row, by `contact`.
    pub fn failures(&self, contact: Contact) -> u32 {
        match match contact {
            Contact::Sync => self.sync,
            Contact::Announce => self.announce,
        } {
            Health::Failing { failures, .. } => failures,
            _ => 0,
        }
    }

    /// How the last sync failed, if it did.
    pub fn sync_failure(&self) -> Option<Failure> {
        match self.sync {
            Health::Failing { failure, .. } => Some(failure),
            _ => None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut health = Healths::default();
        let sync = Contact::Sync;
        assert_eq!(health.failed(sync, Failure::Unreachable), Change::Failing);
        assert_eq!(
            health.failed(sync, Failure::Unreachable),
            Change::StillFailing { failures: 2 }
        );
        assert_eq!(health.failed(sync, Failure::TimedOut), Change::Failing);
        assert_eq!(health.sync_failure(), Some(Failure::TimedOut));
        assert_eq!(health.failures(sync), 3);
        assert_eq!(health.succeeded(sync), Change::Recovered { failures: 3 });
        assert_eq!(health.succeeded(sync), Change::StillUp);
        // A peer that is down is news once, whichever contact finds out first.
        assert_eq!(
            health.failed(Contact::Announce, Failure::Unreachable),
            Change::Failing
        );
        assert_eq!(
            health.failed(sync, Failure::Unreachable),
            Change::StillFailing { failures: 1 }
        );
    }
}
