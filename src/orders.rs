//! Blocks the operator asked the node to mine now (`POST /mine`, `jbc mine
//! N`): how many are owed, for a development network whose nodes do not
//! mine all the time.
//!
//! This module only counts. The mining loop ([`crate::node`]) mines while
//! blocks are owed (or always, with `--mine`) and reports each block it
//! mined and saved; the API takes the orders and `/status` shows what is
//! owed.

use tokio::sync::watch;

/// Most blocks one order may ask for.
pub const MAX_ORDER: u64 = 1_000;

/// Blocks ordered and mined since the node started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    ordered: u64,
    mined: u64,
}

impl Counts {
    fn owed(&self) -> u64 {
        self.ordered - self.mined
    }
}

/// The orders to mine, shared by the API and the mining loop.
#[derive(Debug)]
pub struct MineOrders {
    counts: watch::Sender<Counts>,
}

impl Default for MineOrders {
    fn default() -> MineOrders {
        MineOrders {
            counts: watch::Sender::new(Counts::default()),
        }
    }
}

impl MineOrders {
    /// Orders `blocks` more; what is owed now, these included.
    pub fn order(&self, blocks: u64) -> u64 {
        let mut owed = 0;
        self.counts.send_modify(|counts| {
            counts.ordered = counts.ordered.saturating_add(blocks);
            owed = counts.owed();
        });
        owed
    }

    /// Blocks ordered and not mined yet.
    pub fn owed(&self) -> u64 {
        self.counts.borrow().owed()
    }

    /// The node mined and saved a block: it pays one owed block, if any.
    pub fn mined_one(&self) {
        self.counts.send_if_modified(|counts| {
            let owed = counts.owed() > 0;
            if owed {
                counts.mined += 1;
            }
            owed
        });
    }

    /// Returns once a block is owed.
    pub async fn wanted(&self) {
        let mut counts = self.counts.subscribe();
        // The sender lives in `self`, so the channel cannot close here.
        let _ = counts.wait_for(|counts| counts.owed() > 0).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_add_up_and_each_mined_block_pays_one() {
        let orders = MineOrders::default();
        orders.mined_one();
        assert_eq!(
            orders.owed(),
            0,
            "a block mined with nothing owed pays nothing ahead"
        );
        assert_eq!(orders.order(2), 2);
        assert_eq!(orders.order(3), 5);
        for left in (0..5).rev() {
            orders.mined_one();
            assert_eq!(orders.owed(), left);
        }
        orders.mined_one();
        assert_eq!(orders.owed(), 0);
    }

    #[tokio::test]
    async fn wanted_waits_for_an_order() {
        let orders = std::sync::Arc::new(MineOrders::default());
        let waiting = tokio::spawn({
            let orders = std::sync::Arc::clone(&orders);
            async move { orders.wanted().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        orders.order(1);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("an order wakes the miner")
            .unwrap();
    }
}
