//! The first round of syncs at start-up: what the miner waits for, so a
//! node does not mine a fork of its own in the moment before its peers'
//! chains arrive (Bitcoin Core's miners wait out the initial block
//! download the same way). The wait is bounded, and a peer left alone
//! (banned, discouraged) or unreachable ends its part at once or at its
//! first failure: no peer can hold the miner back for long.

use std::time::Duration;

use tokio::sync::watch;

/// The start-up peers whose first sync has not ended yet.
#[derive(Debug, Clone)]
pub struct FirstRound {
    pending: watch::Receiver<usize>,
}

/// One start-up peer's part: dropped when its first sync ended (or its
/// task found it left alone, or stopped).
#[derive(Debug)]
pub(super) struct Part(watch::Sender<usize>);

impl Drop for Part {
    fn drop(&mut self) {
        self.0
            .send_modify(|pending| *pending = pending.saturating_sub(1));
    }
}

impl FirstRound {
    /// A round of `peers` start-up peers, and a part for each.
    pub(super) fn of(peers: usize) -> (FirstRound, Vec<Part>) {
        let (sender, pending) = watch::channel(peers);
        let parts = (0..peers).map(|_| Part(sender.clone())).collect();
        (FirstRound { pending }, parts)
    }

    /// How many start-up peers have not been synced with yet.
    pub fn pending(&self) -> usize {
        *self.pending.borrow()
    }

    /// Waits until every start-up peer's first sync ended, or `within`
    /// passed; true if they all ended.
    pub async fn ended(mut self, within: Duration) -> bool {
        tokio::time::timeout(within, self.pending.wait_for(|pending| *pending == 0))
            .await
            .is_ok_and(|waited| waited.is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_round_ends_when_every_part_is_dropped_or_the_time_is_up() {
        let (round, mut parts) = FirstRound::of(2);
        assert_eq!(round.pending(), 2);
        parts.pop();
        assert_eq!(round.pending(), 1);
        assert!(!round.clone().ended(Duration::from_millis(20)).await);
        parts.clear();
        assert!(round.ended(Duration::from_secs(5)).await);
        let (none, _) = FirstRound::of(0);
        assert!(none.ended(Duration::ZERO).await);
    }
}
