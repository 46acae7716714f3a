//! Keeping an original peer complete. The original Python node learns
//! blocks only through `POST /mined`, saves each under its index, and can
//! drop one after answering 200, so what it has is known only from what it
//! serves. After each sync with it, a [`Fill`] works out which of our blocks
//! it lacks (holes included, by index and hash); its peer task sends them
//! oldest first, paced, then each block this node mines as it comes, and
//! the next sync shows which landed. A block another node gave us waits for
//! that sync (that node may be sending it too: each block would go twice);
//! a block the original gave us is never sent back.
//!
//! This module owns the plan for one peer. The sending is the peer task's
//! ([`super::Gossip`]); what the peer served is [`crate::sync::Served`].

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::block::{Block, BlockHash};
use crate::state::ChainState;
use crate::sync::Served;

/// The least time between two blocks sent to an original: it validates each
/// on a scheduler that skips a job while one runs, so a burst loses blocks.
pub(super) const FILL_GAP: Duration = Duration::from_millis(20);
/// A block sent this recently may not be on the original's disk by the next
/// sync (it answers before it validates): it is not counted as lacking yet.
const LANDING_TIME: Duration = Duration::from_secs(3);
/// The most blocks planned from one sync; the rest come after the next.
const MAX_PLANNED: usize = 10_000;
/// A block sent this many times within [`RETRY_WINDOW`] and still lacking
/// waits for the window to pass: the peer drops it each time, or another
/// node with a rival block at that height overwrites it each time (two
/// nodes at a tie would otherwise take turns at its files for ever).
const TRIES_PER_WINDOW: u32 = 3;
const RETRY_WINDOW: Duration = Duration::from_secs(60);
/// Blocks the original gave us, remembered so as never to send them back.
const REMEMBERED_FROM_IT: usize = 10_000;

/// What to send one original peer, and when there is something.
#[derive(Default)]
pub(super) struct Fill {
    plan: Mutex<Plan>,
    wanted: Notify,
}

#[derive(Default)]
struct Plan {
    /// Nothing is sent before a sync has shown what it has, nor while one
    /// runs (a chain adopted from it must not go back to it).
    known: bool,
    /// Our blocks it lacked at the last sync, oldest first.
    lacking: VecDeque<u64>,
    /// Our blocks from this index on are new to it.
    next_new: u64,
    /// Blocks it gave us, by index.
    from_it: BTreeMap<u64, BlockHash>,
    /// Blocks sent lately, oldest first, and when.
    sent: VecDeque<(u64, Instant)>,
    /// Per index: the block last sent there, how often within the window,
    /// and when the window began.
    tries: HashMap<u64, (BlockHash, u32, Instant)>,
}

impl Fill {
    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().expect("fill lock")
    }

    /// A sync with the peer starts: nothing is sent until it ends.
    pub fn sync_started(&self) {
        self.plan().known = false;
    }

    /// A sync ended; with what the peer served, the plan is made again
    /// (without, it failed: the last plan goes on). Returns how many of our
    /// blocks it lacks. Blocking: walks our chain.
    pub fn sync_ended(&self, served: Option<&Served>, state: &ChainState) -> usize {
        let mut plan = self.plan();
        if let Some(served) = served {
            let now = Instant::now();
            while plan
                .sent
                .front()
                .is_some_and(|(_, at)| now.duration_since(*at) >= LANDING_TIME)
            {
                plan.sent.pop_front();
            }
            let landing: HashSet<u64> = plan.sent.iter().map(|(index, _)| *index).collect();
            let tip = state.tip().index;
            // What it serves is the truth from here on: a block it gave us
            // and lacks now (it dropped it) is sent like any other.
            plan.from_it = plan.from_it.split_off(&(tip + 1));
            plan.tries
                .retain(|_, (_, _, since)| now.duration_since(*since) < RETRY_WINDOW);
            let tries = &plan.tries;
            let lacking = (1..=tip)
                .filter(|index| {
                    let ours = state.hash_at(*index);
                    let tried_enough = tries.get(index).is_some_and(|(hash, count, _)| {
                        Some(hash) == ours.as_ref() && *count >= TRIES_PER_WINDOW
                    });
                    ours.as_ref() != served.hash_at(*index)
                        && !landing.contains(index)
                        && !tried_enough
                })
                .take(MAX_PLANNED)
                .collect();
            plan.lacking = lacking;
            plan.next_new = tip + 1;
        }
        plan.known = true;
        let lacking = plan.lacking.len();
        drop(plan);
        self.wanted.notify_one();
        lacking
    }

    /// The peer gave us this block (it announced it): it is not sent back
    /// as a new block (only if a later sync shows it lacks it).
    pub fn came_from_it(&self, index: u64, hash: BlockHash) {
        let mut plan = self.plan();
        plan.from_it.insert(index, hash);
        while plan.from_it.len() > REMEMBERED_FROM_IT {
            plan.from_it.pop_first();
        }
    }

    /// Our new blocks up to `index` are not sent as new: another node gave
    /// them to us, and it may be sending them to this peer too; the next
    /// sync shows whether the peer still lacks them.
    pub fn left_to_sync(&self, index: u64) {
        let mut plan = self.plan();
        plan.next_new = plan.next_new.max(index + 1);
    }

    /// Resolves when a sync has made a new plan.
    pub async fn wanted(&self) {
        self.wanted.notified().await
    }

    /// The next of our blocks to send, oldest first: what it lacked, then
    /// each new block. Counted as sent. A block sent [`TRIES_PER_WINDOW`]
    /// times within [`RETRY_WINDOW`] is passed over, whatever asks (a new
    /// tip, a failed send, a sync): a peer that refuses every block gets
    /// each at most that often; a sync after the window plans it again.
    pub fn next(&self, state: &ChainState) -> Option<Block> {
        let mut plan = self.plan();
        if !plan.known {
            return None;
        }
        let now = Instant::now();
        plan.tries
            .retain(|_, (_, _, since)| now.duration_since(*since) < RETRY_WINDOW);
        loop {
            let index = match plan.lacking.pop_front() {
                Some(index) => index,
                None if plan.next_new <= state.tip().index => {
                    plan.next_new += 1;
                    plan.next_new - 1
                }
                None => return None,
            };
            let Some(block) = state.block(index) else {
                continue;
            };
            if plan.from_it.get(&index) == Some(&block.hash) {
                continue;
            }
            let tried_enough = plan
                .tries
                .get(&index)
                .is_some_and(|(hash, count, _)| *hash == block.hash && *count >= TRIES_PER_WINDOW);
            if tried_enough {
                continue;
            }
            plan.sent.push_back((index, now));
            let tries = plan.tries.entry(index).or_insert((block.hash, 0, now));
            if tries.0 != block.hash {
                *tries = (block.hash, 0, now);
            }
            tries.1 += 1;
            if plan.sent.len() > MAX_PLANNED * 2 {
                plan.sent.pop_front();
            }
            return Some(block);
        }
    }

    /// A block from [`Fill::next`] did not reach the peer: it goes first
    /// next time.
    pub fn not_sent(&self, index: u64) {
        let mut plan = self.plan();
        if let Some(position) = plan.sent.iter().rposition(|(sent, _)| *sent == index) {
            plan.sent.remove(position);
        }
        plan.lacking.push_front(index);
    }
}
