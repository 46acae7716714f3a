//! What a contact with a peer showed, recorded in the book and told to
//! the operator once (a peer that starts failing, that comes back, that
//! flaps: see [`super::flaps`]), and judged when it showed what no honest
//! node does ([`crate::sync::SyncError::misbehaviour`]).

use tracing::{debug, info, warn};

use super::Gossip;
use super::flaps::{self, Say};
use crate::peers::score::Misbehaviour;
use crate::peers::{Change, Contact, Failure, Identity, PeerUrl, Verdict};
use crate::sync::{Outcome, SyncError};

impl Gossip {
    /// Records a sync's outcome and logs what is news. (An adoption has
    /// been told in words by the chain state already.)
    pub(super) fn report_sync(&self, peer: &PeerUrl, outcome: &Outcome) {
        let height = outcome.height();
        let change = self.inner.book.record_success(peer, Contact::Sync, height);
        if matches!(self.inner.book.identity(peer), Some(Identity::Jbc { .. })) {
            self.inner.addrman.answered(peer);
        }
        if !self.said_as_usual(peer, Contact::Sync, &change, None) {
            return;
        }
        match change {
            Change::FirstAnswer => {
                info!(
                    peer = %peer,
                    "peer {peer} is up, at height {}",
                    height.unwrap_or_default()
                );
                self.offer_waiting_items(peer);
            }
            Change::Recovered { failures } => {
                info!(
                    peer = %peer,
                    "peer {peer} is up again, at height {} (after {failures} failed contacts)",
                    height.unwrap_or_default()
                );
                self.offer_waiting_items(peer);
            }
            _ => {}
        }
        debug!(peer = %peer, "sync with {peer}: {outcome}");
    }

    /// Counts a contact with `peer` (`error`: it failed) towards telling
    /// whether it flaps; says what the flapping calls for, and returns
    /// whether the usual line for `change` is to be said.
    pub(super) fn said_as_usual(
        &self,
        peer: &PeerUrl,
        contact: Contact,
        change: &Change,
        error: Option<&dyn std::fmt::Display>,
    ) -> bool {
        let recovered = matches!(change, Change::Recovered { .. });
        let say = {
            let mut flaps = self.inner.flaps.lock().expect("flaps lock");
            flaps.entry((peer.clone(), contact)).or_default().contact(
                std::time::Instant::now(),
                error.is_some(),
                recovered,
            )
        };
        let what = contact.in_words();
        let minute = flaps::WINDOW.as_secs();
        match say {
            Say::AsUsual => return true,
            Say::StartsFlapping => warn!(
                peer = %peer,
                "{what} {peer} fails and works by turns: from now on summarised once every {minute} s"
            ),
            Say::Nothing => {}
            Say::Summary { failed, tried } => warn!(
                peer = %peer,
                "{what} {peer}: {failed} of {tried} contacts failed in the last {minute} s{}",
                error.map(|e| format!(" (the last: {e})")).unwrap_or_default()
            ),
            Say::Steady { tried } => info!(
                peer = %peer,
                "{what} {peer} is steady again: {tried} contacts in the last {minute} s, none failed"
            ),
        }
        false
    }

    /// Records a failed contact (`failure` is its kind, `error` says it in
    /// words) and logs it if it is news.
    pub(super) fn report_failure(
        &self,
        peer: &PeerUrl,
        contact: Contact,
        failure: Failure,
        error: &dyn std::fmt::Display,
    ) {
        let what = contact.in_words();
        let change = self.inner.book.record_failure(peer, contact, failure);
        self.replace_if_failing(peer, contact, error);
        if !self.said_as_usual(peer, contact, &change, Some(error)) {
            return;
        }
        match change {
            Change::StillFailing { failures } => {
                debug!(peer = %peer, failures, "{what} {peer} failed again: {error}")
            }
            _ => {
                let again = match contact {
                    Contact::Sync => format!(
                        "tried again in {}, then after growing pauses",
                        crate::human::duration_in_words(
                            self.inner.book.next_sync_in(peer).as_secs_f64()
                        )
                    ),
                    Contact::Announce => "each new block is offered again".to_string(),
                };
                warn!(
                    peer = %peer,
                    "{what} {peer} failed: {error} ({again}; logged again only when this changes)"
                )
            }
        }
    }

    /// Judges `peer` for what a sync with it showed, if it showed anything
    /// no honest node does; says once when that discourages it.
    pub(super) fn penalise(&self, peer: &PeerUrl, error: &SyncError) {
        if let Some(offence) = error.misbehaviour() {
            self.judge(peer, offence, &error.to_string());
        }
    }

    /// Judges `peer` for `offence` (`error`, in words); says once when
    /// that discourages it.
    pub(super) fn judge(&self, peer: &PeerUrl, offence: Misbehaviour, error: &str) {
        let stats = self.inner.client.stats();
        stats.count_misbehaviour();
        match self.inner.book.judge(peer, offence, error) {
            // Rare in an honest network: worth the operator's eye.
            Verdict::Scored { points } => {
                info!(peer = %peer, points, "{peer} misbehaved ({points} points, fading): {error}")
            }
            Verdict::Discouraged { seconds, left } => {
                stats.count_discouraged();
                let time = crate::human::duration_in_words(seconds as f64);
                // Left alone on every wire: its live link goes too.
                if let Some(link) = self.inner.links.get(peer) {
                    link.close(&format!("discouraged for {time}: {error}"));
                }
                if left {
                    warn!(peer = %peer, "discouraged {peer} for {time}, and dropped it: {error}");
                    self.stop_peer(peer);
                } else {
                    warn!(peer = %peer, "discouraged {peer} for {time}: {error} (a peer the operator named stays, left alone meanwhile)");
                }
            }
            Verdict::Nothing => {}
        }
    }
}
