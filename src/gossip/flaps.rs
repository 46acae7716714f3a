//! Telling the operator about a peer that fails and works by turns. A peer
//! that goes down is news once, and so is its coming back; a peer that
//! does both every few seconds (an original whose server answers 500 now
//! and then) would fill the log with pairs of lines. Once it has come back
//! [`RECOVERIES`] times within a [`WINDOW`], it is said to flap, and from
//! then on its contacts are summarised once a window until a whole window
//! passes without a failure.
//!
//! This module only decides what to say; [`super::Gossip`] says it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The span recoveries are counted over, and a summary covers.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Recoveries within a window that make a peer a flapping one.
const RECOVERIES: usize = 3;

/// One peer's recent record for one kind of contact.
#[derive(Debug, Default)]
pub struct Flaps {
    recoveries: VecDeque<Instant>,
    /// Set while it flaps: when the current summary window began.
    summary_since: Option<Instant>,
    failed: u32,
    tried: u32,
}

/// What to tell the operator about one contact.
#[derive(Debug, PartialEq, Eq)]
pub enum Say {
    /// The usual line for the change (failing, or working again).
    AsUsual,
    /// It started flapping: say so once.
    StartsFlapping,
    /// Nothing: it flaps, and this is in the next summary.
    Nothing,
    /// A window is over: `failed` of `tried` contacts failed in it.
    Summary { failed: u32, tried: u32 },
    /// A whole window passed without a failure: it is steady again.
    Steady { tried: u32 },
}

impl Flaps {
    /// A contact at `now`: `failed`, and whether it `recovered` (worked
    /// after failing).
    pub fn contact(&mut self, now: Instant, failed: bool, recovered: bool) -> Say {
        let Some(since) = self.summary_since else {
            if !recovered {
                return Say::AsUsual;
            }
            self.recoveries.push_back(now);
            while self
                .recoveries
                .front()
                .is_some_and(|at| now.duration_since(*at) > WINDOW)
            {
                self.recoveries.pop_front();
            }
            if self.recoveries.len() < RECOVERIES {
                return Say::AsUsual;
            }
            self.recoveries.clear();
            self.summary_since = Some(now);
            (self.failed, self.tried) = (0, 0);
            return Say::StartsFlapping;
        };
        self.tried += 1;
        self.failed += u32::from(failed);
        if now.duration_since(since) < WINDOW {
            return Say::Nothing;
        }
        let (failed, tried) = (self.failed, self.tried);
        (self.failed, self.tried) = (0, 0);
        if failed == 0 {
            self.summary_since = None;
            Say::Steady { tried }
        } else {
            self.summary_since = Some(now);
            Say::Summary { failed, tried }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flapping_peer_is_summarised_once_a_window_until_it_is_steady() {
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let mut flaps = Flaps::default();
        // Down and up twice: the usual lines.
        assert_eq!(flaps.contact(at(0), true, false), Say::AsUsual);
        assert_eq!(flaps.contact(at(1), false, true), Say::AsUsual);
        assert_eq!(flaps.contact(at(2), true, false), Say::AsUsual);
        assert_eq!(flaps.contact(at(3), false, true), Say::AsUsual);
        assert_eq!(flaps.contact(at(4), true, false), Say::AsUsual);
        // The third recovery within a minute: it flaps.
        assert_eq!(flaps.contact(at(5), false, true), Say::StartsFlapping);
        for second in 6..65 {
            assert_eq!(
                flaps.contact(at(second), second % 3 == 0, false),
                Say::Nothing
            );
        }
        assert_eq!(
            flaps.contact(at(66), false, false),
            Say::Summary {
                failed: 20,
                tried: 60
            }
        );
        for second in 67..126 {
            assert_eq!(flaps.contact(at(second), false, false), Say::Nothing);
        }
        assert_eq!(
            flaps.contact(at(127), false, false),
            Say::Steady { tried: 60 }
        );
        // Steady again: a failure is news as before.
        assert_eq!(flaps.contact(at(128), true, false), Say::AsUsual);
    }

    #[test]
    fn recoveries_far_apart_are_no_flapping() {
        let start = Instant::now();
        let mut flaps = Flaps::default();
        for n in 0..10 {
            let at = start + Duration::from_secs(n * 40);
            assert_eq!(flaps.contact(at, false, true), Say::AsUsual);
        }
    }
}
