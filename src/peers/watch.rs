//! The peer watcher: tells the event hub of every change of a peer's
//! state (up, failing, banned, removed), as the explorer shows them.
//!
//! It reads the book; it changes nothing in it.

use std::collections::HashMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::PeerBook;
use crate::events::{Event, Events};

/// How often peer states are compared with the last look: bans also end by
/// the clock alone, so no change point could tell of every change.
const PEER_POLL: Duration = Duration::from_millis(500);

/// Publishes every change of a peer's state, until `shutdown`.
pub async fn watch_peers(book: PeerBook, events: Events, shutdown: CancellationToken) {
    let mut known = peer_states(&book);
    let mut poll = tokio::time::interval(PEER_POLL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = poll.tick() => {}
        }
        let now = peer_states(&book);
        for (url, state) in &now {
            let previous = known.get(url);
            if previous != Some(state) {
                events.publish(Event::Peer {
                    url: url.clone(),
                    state: state.clone(),
                    previous: previous.cloned(),
                });
            }
        }
        for (url, previous) in &known {
            if !now.contains_key(url) {
                events.publish(Event::Peer {
                    url: url.clone(),
                    state: "removed".into(),
                    previous: Some(previous.clone()),
                });
            }
        }
        known = now;
    }
}

fn peer_states(book: &PeerBook) -> HashMap<String, String> {
    book.views()
        .into_iter()
        .map(|view| (view.url.to_string(), view.state.to_string()))
        .collect()
}
