//! How a log line reads: the message once, then only the fields that add
//! to it. The node's messages are sentences that already name the peer,
//! the block or the figure they are about; the same values repeated as
//! `peer=… index=… hash=…` after them doubled a line's length without
//! telling anything. A field whose value the message does not contain is
//! still written, as `name=value`.
//!
//! This owns only the formatting of an event's fields; which events there
//! are, and at what level, is each module's business.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// The field formatter of the node's log (`fmt().fmt_fields(MessageFirst)`).
#[derive(Debug, Clone, Copy, Default)]
pub struct MessageFirst;

/// An event's fields, as text.
#[derive(Default)]
struct Fields {
    message: String,
    others: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.keep(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.keep(field, format!("{value:?}"));
    }
}

impl Fields {
    fn keep(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => self.message = value,
            name => self.others.push((name, value)),
        }
    }

    /// The line: the message, then each field it does not already say.
    fn line(&self) -> String {
        let mut line = self.message.clone();
        for (name, value) in &self.others {
            if !says(&self.message, value) {
                if !line.is_empty() {
                    line.push(' ');
                }
                let _ = write!(line, "{name}={value}");
            }
        }
        line
    }
}

/// Whether `message` says `value` as a word of its own (`7` in "height 7",
/// not in "block 17").
fn says(message: &str, value: &str) -> bool {
    let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    !value.is_empty()
        && message.match_indices(value).any(|(at, _)| {
            !word(message[..at].chars().next_back())
                && !word(message[at + value.len()..].chars().next())
        })
}

impl<'writer> FormatFields<'writer> for MessageFirst {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut collected = Fields::default();
        fields.record(&mut collected);
        writer.write_str(&collected.line())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(message: &str, others: &[(&'static str, &str)]) -> String {
        Fields {
            message: message.into(),
            others: others.iter().map(|(n, v)| (*n, v.to_string())).collect(),
        }
        .line()
    }

    #[test]
    fn a_field_the_message_says_is_not_said_again() {
        assert_eq!(
            line(
                "peer http://127.0.0.1:5002 is up, at height 7",
                &[("peer", "http://127.0.0.1:5002"), ("height", "7")]
            ),
            "peer http://127.0.0.1:5002 is up, at height 7"
        );
        assert_eq!(
            line("mining on 2 thread(s)", &[("threads", "2"), ("nice", "19")]),
            "mining on 2 thread(s) nice=19"
        );
        assert_eq!(line("", &[("detail", "x")]), "detail=x");
        assert_eq!(
            line("accepted block 17", &[("index", "17"), ("peers", "1")]),
            "accepted block 17 peers=1"
        );
    }
}
