//! A thread's share of the CPU: the nice level the miner threads and the
//! threads that write bulk answers run at, below the server's, so that work
//! a node must do at once (a block announced, a status asked) gets a core
//! as soon as it wakes.
//!
//! It decides no levels; the miner and the server do.

/// Gives the calling thread nice level `nice`. Failing to (a lower level
/// than the process's needs privilege) is harmless: the thread runs at the
/// process's priority; the error says why, for the caller to report.
pub fn set_thread_nice(nice: u8) -> Result<(), String> {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let normal = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other);
    // The crate takes a normal thread's nice level only as a share of its
    // 0..=99 scale; the share it maps to `nice` is found with its own
    // mapping, so no rounding of ours can miss.
    let level = (0..=99u8)
        .filter_map(|share| ThreadPriorityValue::try_from(share).ok())
        .map(ThreadPriority::Crossplatform)
        .find(|level| level.to_posix(normal) == Ok(i32::from(nice)));
    match level {
        Some(level) => set_thread_priority_and_policy(thread_native_id(), level, normal)
            .map_err(|error| format!("{error:?}")),
        None => Err(format!("nice {nice} has no level on this system")),
    }
}

/// The calling process's nice level (0 where it cannot be read).
pub fn process_nice() -> i32 {
    // /proc/self/stat: "pid (comm) state ppid …"; the nice level is field
    // 19, the 17th after the command's closing parenthesis.
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let rest = &stat[stat.rfind(')')? + 1..];
            rest.split_whitespace().nth(16)?.parse().ok()
        })
        .unwrap_or(0)
}

/// `above` levels below the process's priority (a higher nice level), at
/// most 19.
pub fn nice_above_process(above: u8) -> u8 {
    (process_nice() + i32::from(above)).clamp(0, 19) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_nice_level_is_read_and_levels_stay_in_range() {
        let own = process_nice();
        assert!((-20..=19).contains(&own), "{own}");
        assert_eq!(i32::from(nice_above_process(0)), own.max(0));
        assert_eq!(nice_above_process(40), 19);
    }
}
