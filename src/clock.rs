//! The wall clock, read one way everywhere: whole seconds since the Unix
//! epoch, as block timestamps, bans and pool entries count time.
//!
//! It does not say what a time means for a block (the chain's rules, in
//! [`crate::chain`], decide that) and never reads a monotonic clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch; 0 on a clock set before 1970.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// [`unix_now`] as a block timestamp.
pub fn timestamp_now() -> u128 {
    u128::from(unix_now())
}

/// Milliseconds since the epoch; 0 on a clock set before 1970.
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
