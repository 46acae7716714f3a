//! Figures in words, for people reading the log and command output:
//! hash rates, large counts, durations, and a switch of chains.

/// "25.1 MH/s".
pub fn rate_in_words(rate: f64) -> String {
    match rate {
        r if r >= 1e9 => format!("{:.1} GH/s", r / 1e9),
        r if r >= 1e6 => format!("{:.1} MH/s", r / 1e6),
        r if r >= 1e3 => format!("{:.1} kH/s", r / 1e3),
        r => format!("{r:.0} H/s"),
    }
}

/// "268 million".
pub fn count_in_words(count: f64) -> String {
    match count {
        c if c >= 1e12 => format!("{:.3e}", c),
        c if c >= 1e9 => format!("{:.0} billion", c / 1e9),
        c if c >= 1e6 => format!("{:.0} million", c / 1e6),
        c if c >= 1e3 => format!("{:.0} thousand", c / 1e3),
        c => format!("{c:.0}"),
    }
}

/// "11 s", "3.2 min", "5.0 h", "2.1 days", for a number of seconds.
pub fn duration_in_words(seconds: f64) -> String {
    match seconds {
        s if s < 0.001 => "under a millisecond".to_string(),
        s if s < 1.0 => format!("{:.0} ms", s * 1000.0),
        s if s < 100.0 => format!("{s:.1} s"),
        s if s < 6000.0 => format!("{:.1} min", s / 60.0),
        s if s < 3.0 * 86_400.0 => format!("{:.1} h", s / 3600.0),
        s if s < 3650.0 * 86_400.0 => format!("{:.1} days", s / 86_400.0),
        s => format!("{:.0} years", s / (365.25 * 86_400.0)),
    }
}

/// "switched to the chain of http://…: 3 new blocks after block 7, 2 of
/// ours replaced; the tip is block 10": the one sentence for a switch,
/// whether a sync or an announcement brought it.
pub fn switch_in_words(
    source: impl std::fmt::Display,
    new_blocks: u64,
    after: u64,
    replaced: u64,
    tip: u64,
) -> String {
    let plural = if new_blocks == 1 { "" } else { "s" };
    format!(
        "switched to the chain of {source}: {new_blocks} new block{plural} after block {after}, \
         {replaced} of ours replaced; the tip is block {tip}"
    )
}

/// The first of `problems`, saying how many more there are; none if there
/// are none.
pub fn first_of(problems: &[String]) -> Option<String> {
    let first = problems.first()?;
    Some(match problems.len() {
        1 => first.clone(),
        n => format!("{first} (and {} more)", n - 1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_as_words() {
        assert_eq!(rate_in_words(25_123_456.0), "25.1 MH/s");
        assert_eq!(rate_in_words(999.0), "999 H/s");
        assert_eq!(count_in_words(16f64.powi(7)), "268 million");
        assert_eq!(duration_in_words(10.7), "10.7 s");
        assert_eq!(duration_in_words(190.0), "3.2 min");
        assert_eq!(duration_in_words(0.0421), "42 ms");
        assert_eq!(duration_in_words(7.0 * 86_400.0), "7.0 days");
    }

    #[test]
    fn a_switch_reads_as_one_sentence() {
        assert_eq!(
            switch_in_words("http://127.0.0.1:5002", 1, 7, 0, 8),
            "switched to the chain of http://127.0.0.1:5002: 1 new block after block 7, \
             0 of ours replaced; the tip is block 8"
        );
        assert!(
            switch_in_words("a peer", 3, 7, 2, 10)
                .contains("3 new blocks after block 7, 2 of ours")
        );
    }
}
