//! The chain state's log prose: what a commit did, in words, for the
//! operator (one line for a new block, one for a switch of branches and the
//! blocks that left the chain, one per change of target).

use tracing::info;

use super::Source;
use crate::block::Block;
use crate::chain::Network;
use crate::human::switch_in_words;
use crate::item::items_in;
use crate::pow::{Kind, Target};

/// Orphaned blocks listed one by one in the log; more are summarised.
const ORPHANS_LISTED: usize = 10;

/// Tells the operator what a commit did, in words: one line for a single
/// new block, one for a switch of chains, and the blocks that left it.
pub(super) fn log_commit(base: &Block, incoming: &[Block], outgoing: &[Block], source: &Source) {
    let tip = incoming.last().expect("a commit adds blocks");
    match (incoming, source) {
        // A sync tells of its whole catch-up once, not of each batch.
        (_, Source::Synced(_)) => {}
        ([block], _) if outgoing.is_empty() => {
            let what = match source {
                Source::Mined => format!("mined block {}", block.index),
                _ => format!("accepted block {} from {source}", block.index),
            };
            info!(
                index = block.index,
                hash = %block.hash,
                "{what}: {}, {}",
                shorten(&block.data),
                interval(base, block)
            )
        }
        _ => info!(
            height = tip.index,
            tip = %tip.hash,
            "{}",
            switch_in_words(
                source,
                incoming.len() as u64,
                base.index,
                outgoing.len() as u64,
                tip.index
            )
        ),
    }
    for block in outgoing.iter().take(ORPHANS_LISTED) {
        info!(
            index = block.index,
            hash = %block.hash,
            "orphaned block {}: {} (kept in chaindata/orphaned/)",
            block.index,
            shorten(&block.data)
        );
    }
    if outgoing.len() > ORPHANS_LISTED {
        info!(
            "orphaned {} more blocks, up to block {} (kept in chaindata/orphaned/)",
            outgoing.len() - ORPHANS_LISTED,
            outgoing.last().map_or(0, |b| b.index)
        );
    }
}

/// A change of target at a retarget block.
pub(super) struct Retarget {
    pub index: u64,
    pub old: Target,
    pub new: Target,
    /// The mean time between the blocks of the window it measured.
    pub mean_seconds: Option<f64>,
}

/// Tells the operator of each change of target; a sync's batch tells of its
/// last only.
pub(super) fn log_retargets(retargets: &[Retarget], network: &Network, source: &Source) {
    let Kind::Adaptive {
        target_block_seconds,
        ..
    } = network.kind
    else {
        return;
    };
    let shown = match source {
        Source::Synced(_) => &retargets[retargets.len().saturating_sub(1)..],
        _ => retargets,
    };
    for retarget in shown {
        let mean = retarget
            .mean_seconds
            .map_or_else(|| "unknown".to_string(), |s| format!("{s:.2} s"));
        info!(
            index = retarget.index,
            "retarget at block {}: target {} → {} (difficulty {:.2} → {:.2}), the mean block time was {mean} against {target_block_seconds} s",
            retarget.index,
            short_target(&retarget.old),
            short_target(&retarget.new),
            retarget.old.difficulty(),
            retarget.new.difficulty(),
        );
    }
}

/// A target for a log line: its leading hex digits up to the first 8
/// significant ones, then the number of digits.
fn short_target(target: &Target) -> String {
    let hex = target.to_string();
    let zeros = hex.len() - hex.trim_start_matches('0').len();
    format!("{}…", &hex[..(zeros + 8).min(hex.len())])
}

/// A block's data for a log line: its items, or the note quoted, shortened
/// when long.
pub fn shorten(data: &str) -> String {
    if let Some(items) = items_in(data) {
        let shown: Vec<String> = items.iter().take(3).map(|item| quoted(item)).collect();
        let more = if items.len() > 3 { ", …" } else { "" };
        let plural = if items.len() == 1 { "" } else { "s" };
        return format!(
            "{} data item{plural} ({}{more})",
            items.len(),
            shown.join(", ")
        );
    }
    quoted(data)
}

/// Text quoted for a log line, shortened when long.
fn quoted(data: &str) -> String {
    const SHOWN: usize = 48;
    let mut shown: String = data.chars().take(SHOWN).collect();
    if data.chars().nth(SHOWN).is_some() {
        shown.push('…');
    }
    format!("{shown:?}")
}

/// "12 s after block 11": a block's interval as the chain records it, its
/// timestamp less its parent's, in whole seconds: the same figure on every
/// node, in every log and on the explorer's page.
fn interval(prev: &Block, block: &Block) -> String {
    if prev.index == 0 {
        return "the first block after the genesis block".to_string();
    }
    match (prev.epoch_seconds(), block.epoch_seconds()) {
        (Some(before), Some(after)) if after >= before => format!(
            "{} s after block {}",
            i128::from(after) - i128::from(before),
            prev.index
        ),
        _ => format!("after block {}", prev.index),
    }
}
