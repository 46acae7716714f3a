//! Proof of work as a target, and the arithmetic of work.
//!
//! A block meets its target when its hash, read as a 256-bit big-endian
//! number, is at most the target. The easiest target a network allows is
//! `pow_limit = 2^(256 - 4·difficulty) - 1`: in a *fixed* network (the
//! original's kind) every block's target is that, which is the same as
//! asking for `difficulty` leading zero hex digits. In an *adaptive*
//! network the target is retargeted every `retarget_window` blocks from how
//! long the last window took, so blocks come about every
//! `target_block_seconds` whatever the network's hash rate (see
//! [`Target::retarget`]).
//!
//! A block's work is `floor(2^256 / (target + 1))`, the number of hashes it
//! takes on average; the chain with the most work wins. This module owns
//! the numbers; which chain wins is [`crate::chain::better_chain`].

use std::fmt;

pub use ruint::aliases::U256;

use crate::block::BlockHash;

/// How a network sets its blocks' targets (a network setting: every node
/// of a network must agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Every block's target is the network's `pow_limit`.
    Fixed,
    /// Targets adapt every `retarget_window` blocks so that blocks come
    /// every `target_block_seconds` on average.
    Adaptive {
        target_block_seconds: u64,
        retarget_window: u64,
    },
}

impl Kind {
    /// `fixed` or `adaptive`.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Fixed => "fixed",
            Kind::Adaptive { .. } => "adaptive",
        }
    }

    /// The target block time and retarget window, as `/status` carries
    /// them (none for a fixed network).
    pub fn timing(&self) -> (Option<u64>, Option<u64>) {
        match *self {
            Kind::Fixed => (None, None),
            Kind::Adaptive {
                target_block_seconds,
                retarget_window,
            } => (Some(target_block_seconds), Some(retarget_window)),
        }
    }
}

/// A block's target: its hash, read as a 256-bit big-endian number, must be
/// at most this. The easier the target, the larger the number.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target(pub U256);

impl Target {
    /// The easiest target a network of `difficulty` allows:
    /// `2^(256 - 4·difficulty) - 1`, `difficulty` leading zero hex digits.
    pub fn limit(difficulty: u32) -> Target {
        if difficulty >= 64 {
            Target(U256::ZERO)
        } else {
            Target(U256::MAX >> (4 * difficulty as usize))
        }
    }

    /// Whether `hash` meets the target.
    pub fn is_met_by(&self, hash: &BlockHash) -> bool {
        U256::from_be_bytes(hash.0) <= self.0
    }

    /// The target as the 8 big-endian words of a SHA-256 state, for the
    /// miner.
    pub fn words(&self) -> [u32; 8] {
        let bytes: [u8; 32] = self.0.to_be_bytes();
        let mut words = [0u32; 8];
        for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(4)) {
            *word = u32::from_be_bytes(chunk.try_into().expect("4 bytes"));
        }
        words
    }

    /// The target of a retarget block: this one (the previous target)
    /// scaled by how long the last window took (`span` seconds from its
    /// first block to its last) against how long it should have,
    /// `(W - 1)·T`, the span clamped to a quarter and four times that, and
    /// never easier than `limit`:
    ///
    /// `span = clamp(ts[i-1] - ts[i-W], (W-1)·T/4, (W-1)·T·4)`,
    /// `target_i = min(limit, floor(target_{i-1} · span / ((W-1)·T)))`.
    pub fn retarget(self, span: i128, seconds: u64, window: u64, limit: Target) -> Target {
        let expected = u128::from(window.saturating_sub(1).max(1)) * u128::from(seconds);
        let span = span.clamp((expected / 4) as i128, (expected * 4) as i128) as u128;
        let expected = U256::from(expected);
        let span = U256::from(span);
        // floor(previous · span / expected), without overflowing 256 bits.
        let (quotient, remainder) = self.0.div_rem(expected);
        let scaled = quotient
            .checked_mul(span)
            .and_then(|high| high.checked_add(remainder * span / expected));
        match scaled {
            Some(target) if target <= limit.0 => Target(target),
            _ => limit,
        }
    }

    /// How many hashes it takes on average to meet the target, as a float.
    pub fn expected_hashes(&self) -> f64 {
        16f64.powf(self.difficulty())
    }

    /// The difficulty the target is worth, as a number of leading zero hex
    /// digits (so adaptive networks compare with fixed ones): `log16` of the
    /// hashes a block takes on average.
    pub fn difficulty(&self) -> f64 {
        let work = Work::of(self).0;
        let bits = 256 - work.leading_zeros();
        if bits == 0 {
            return 0.0;
        }
        // The top 64 bits, as a float, times 2 to the rest.
        let shift = bits.saturating_sub(64);
        let top = (work >> shift).as_limbs()[0] as f64;
        (top.log2() + shift as f64) / 4.0
    }
}

/// 64 hex digits, as `/status` and the errors show a target.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0.to_be_bytes::<32>()))
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The median of up to 11 timestamps: the element at position `len / 2`
/// (integer division, from 0) of the sorted list.
pub fn median(timestamps: impl IntoIterator<Item = u128>) -> Option<u128> {
    let mut sorted: Vec<u128> = timestamps.into_iter().collect();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied()
}

/// An amount of work: how many hashes it takes on average to make the
/// blocks. Shown as hex, like Bitcoin Core's `chainwork`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Work(pub U256);

impl Work {
    /// A block's work: `floor(2^256 / (target + 1))`.
    pub fn of(target: &Target) -> Work {
        let target = &target.0;
        if *target == U256::MAX {
            return Work(U256::from(1u8));
        }
        // 2^256 / (t + 1) = (2^256 - (t + 1)) / (t + 1) + 1, and
        // 2^256 - (t + 1) is !t.
        Work(((!*target) / (*target + U256::from(1u8))).saturating_add(U256::from(1u8)))
    }

    /// This much work and `other` more (saturating: 2^256 hashes is more
    /// than any chain holds).
    pub fn plus(self, other: Work) -> Work {
        Work(self.0.saturating_add(other.0))
    }

    /// Reads work written as [`Work`]'s `Display` writes it (`0x…` hex).
    pub fn parse(text: &str) -> Option<Work> {
        let digits = text.strip_prefix("0x")?;
        if digits.is_empty() || digits.len() > 64 {
            return None;
        }
        U256::from_str_radix(digits, 16).ok().map(Work)
    }

    /// `count` blocks of `per_block` work each.
    pub fn times(per_block: Work, count: u64) -> Work {
        Work(per_block.0.saturating_mul(U256::from(count)))
    }
}

impl fmt::Display for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Debug for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_difficulty_zero_hex_digits() {
        assert_eq!(Target::limit(0).0, U256::MAX);
        let limit = Target::limit(4);
        let mut meets = [0xffu8; 32];
        meets[..2].fill(0);
        assert!(limit.is_met_by(&BlockHash(meets)));
        meets[1] = 0x01;
        assert!(!limit.is_met_by(&BlockHash(meets)));
        assert_eq!(Target::limit(64).0, U256::ZERO);
    }

    #[test]
    fn work_is_the_hashes_a_block_takes_on_average() {
        // A fixed network of difficulty d: 16^d hashes per block.
        for d in 0..=10u32 {
            assert_eq!(
                Work::of(&Target::limit(d)).0,
                U256::from(16u64.pow(d)),
                "{d}"
            );
        }
        assert_eq!(Work::of(&Target(U256::ZERO)).0, U256::MAX, "saturates");
        assert!((Target::limit(7).difficulty() - 7.0).abs() < 1e-9);
        let work = Work::of(&Target::limit(5)).plus(Work(U256::from(3u8)));
        assert_eq!(work.to_string(), "0x100003");
        assert_eq!(Work::parse(&work.to_string()), Some(work));
        assert_eq!(Work::parse("100003"), None);
        assert_eq!(Work::parse("0x"), None);
        assert_eq!(Work::parse(&format!("0x{}", "f".repeat(65))), None);
        assert!((Target(Target::limit(6).0 / U256::from(4u8)).difficulty() - 6.5).abs() < 1e-3);
    }

    #[test]
    fn retargets_follow_the_formula_and_its_clamps() {
        let limit = Target::limit(1);
        let start = Target(limit.0 / U256::from(16u8));
        let retarget = |previous: Target, span, seconds, window, limit| {
            previous.retarget(span, seconds, window, limit).0
        };
        // On time: unchanged.
        assert_eq!(retarget(start, 19 * 10, 10, 20, limit), start.0);
        // Twice as slow: twice as easy.
        assert_eq!(
            retarget(start, 2 * 19 * 10, 10, 20, limit),
            start.0 * U256::from(2u8)
        );
        // Far too fast: at most 4 times harder (the span is clamped).
        assert_eq!(
            retarget(start, 1, 10, 20, limit),
            start.0 * U256::from(47u8) / U256::from(190u8)
        );
        // Far too slow: at most 4 times easier, never past the limit.
        assert_eq!(
            retarget(start, 1_000_000, 10, 20, limit),
            start.0 * U256::from(4u8)
        );
        assert_eq!(retarget(limit, 1_000_000, 10, 20, limit), limit.0);
        let easiest = Target(U256::MAX);
        assert_eq!(retarget(easiest, 1_000_000, 10, 20, easiest), U256::MAX);
    }

    #[test]
    fn the_median_is_the_middle_of_the_sorted_list() {
        assert_eq!(median([5, 1, 3]), Some(3));
        assert_eq!(median([4, 1]), Some(4), "position len / 2");
        assert_eq!(median([]), None);
    }
}
