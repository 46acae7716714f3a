//! The messages on this node's links, as a learner watches them: a bounded
//! list (the last [`KEPT`]) of who said what to whom, when, and how many
//! bytes it took, read by `GET /peers/links` (the explorer's Messages view
//! and `jbc peers --watch`).

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::block::BlockHash;
use crate::peers::PeerUrl;
pub use crate::protocol::{Direction, Logged};
use crate::wire::Message;

/// Messages kept; older ones are forgotten.
pub const KEPT: usize = 2000;
/// The most entries one answer carries.
pub const MOST_PER_ANSWER: usize = 500;

/// The bounded list.
#[derive(Default)]
pub struct MessageLog {
    inner: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    next: u64,
    entries: VecDeque<Logged>,
}

impl MessageLog {
    /// Notes `message` (`bytes` long) going `direction` on the link with
    /// `peer`.
    pub fn note(&self, direction: Direction, peer: &PeerUrl, message: &Message, bytes: usize) {
        let (block, index) = match message.block() {
            Some((hash, index)) => (Some(hash), index),
            None => (None, None),
        };
        let count = match message {
            Message::Inv { blocks, items } => Some(blocks.len() + items.len()),
            Message::GetItems { ids, .. } => Some(ids.len()),
            Message::Items { items, .. } => Some(items.len()),
            Message::GetData { blocks, .. } => Some(blocks.len()),
            Message::GetHeaders { locator } => Some(locator.len()),
            Message::Headers { headers } => Some(headers.len()),
            Message::Addr { addresses } => Some(addresses.len()),
            Message::CompactBlock(compact) => Some(compact.items.len()),
            _ => None,
        };
        let at_ms = u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis(),
        )
        .unwrap_or(u64::MAX);
        let mut kept = self.inner.lock().expect("message log lock");
        let seq = kept.next;
        kept.next += 1;
        if kept.entries.len() == KEPT {
            kept.entries.pop_front();
        }
        kept.entries.push_back(Logged {
            seq,
            at_ms,
            direction,
            peer: peer.to_string(),
            kind: message.kind().to_string(),
            bytes,
            block,
            index,
            count,
        });
    }

    /// The messages after `after` (all kept when None), about `block` only
    /// when given, oldest first, at most [`MOST_PER_ANSWER`]; and the
    /// number to ask after next time.
    pub fn since(&self, after: Option<u64>, block: Option<&BlockHash>) -> (Vec<Logged>, u64) {
        let kept = self.inner.lock().expect("message log lock");
        let mut found: Vec<Logged> = kept
            .entries
            .iter()
            .filter(|entry| after.is_none_or(|after| entry.seq > after))
            .filter(|entry| block.is_none_or(|block| entry.block.as_ref() == Some(block)))
            .cloned()
            .collect();
        // The newest, when more than an answer carries.
        let skip = found.len().saturating_sub(MOST_PER_ANSWER);
        found.drain(..skip);
        let last = found
            .last()
            .map_or(kept.next.saturating_sub(1), |entry| entry.seq);
        (found, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_bounded_and_read_from_where_one_left_off() {
        let log = MessageLog::default();
        let peer = PeerUrl::parse("http://127.0.0.1:5002").unwrap();
        for nonce in 0..(KEPT as u64 + 10) {
            log.note(Direction::Out, &peer, &Message::Ping { nonce }, 20);
        }
        let (all, last) = log.since(None, None);
        assert_eq!(all.len(), MOST_PER_ANSWER);
        assert_eq!(last, KEPT as u64 + 9);
        assert_eq!(all.last().unwrap().seq, last);
        log.note(Direction::In, &peer, &Message::Pong { nonce: 1 }, 20);
        let (new, next) = log.since(Some(last), None);
        assert_eq!(new.len(), 1);
        assert_eq!(
            (new[0].kind.as_str(), new[0].direction),
            ("pong", Direction::In)
        );
        assert_eq!(next, last + 1);
        let (none, same) = log.since(Some(next), None);
        assert!(none.is_empty());
        assert_eq!(same, next);
    }

    #[test]
    fn a_block_filter_keeps_only_that_blocks_messages() {
        let log = MessageLog::default();
        let peer = PeerUrl::parse("http://127.0.0.1:5002").unwrap();
        let (one, two) = (BlockHash([1; 32]), BlockHash([2; 32]));
        log.note(
            Direction::In,
            &peer,
            &Message::GetData {
                blocks: vec![one],
                whole: false,
            },
            90,
        );
        log.note(
            Direction::In,
            &peer,
            &Message::Inv {
                blocks: vec![two],
                items: vec![],
            },
            90,
        );
        log.note(Direction::In, &peer, &Message::Ping { nonce: 0 }, 20);
        let (found, _) = log.since(None, Some(&one));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].block, Some(one));
    }
}
