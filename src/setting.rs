//! One declaration per setting: its key, its default, the values it
//! allows and one line of help, written next to the module that uses it
//! (`pool::MAX_ITEMS`, `peers::OUTBOUND_PEERS`, …).
//!
//! The command line, the config file, `Config::resolve`, the components'
//! own defaults and the README's settings table all read the declaration,
//! so a default or a range is written once. This module owns the
//! declaration's shape and the checks of a value against it; which
//! settings exist and how they are merged is `config`'s.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;

/// One setting: `T` is its value, `D` its default: a `T`, or [`Unset`]
/// where the node works the value out (or does without) when it is not
/// given.
#[derive(Debug)]
pub struct Setting<T: 'static, D: 'static = T> {
    /// The config file's key; the flag is the same with `-` for `_`.
    pub key: &'static str,
    /// What the setting does, in one line.
    pub help: &'static str,
    /// The value when neither the file nor a flag sets it.
    pub default: D,
    /// The values allowed, for numbers.
    pub range: Option<RangeInclusive<T>>,
    /// What a value is, in words ("a whole number of bytes"), the start of
    /// the message that refuses one out of range.
    pub unit: &'static str,
}

/// A setting with no fixed default: the words say what happens unset.
#[derive(Debug, Clone, Copy)]
pub struct Unset(pub &'static str);

impl Display for Unset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// A number a setting may hold.
pub trait Number: FromStr + PartialOrd + Display + Copy + Send + Sync + 'static {
    /// The smallest value of the type.
    const MIN: Self;
    /// The largest value of the type: a range from above the smallest to
    /// here reads "at least".
    const MAX: Self;
}

macro_rules! numbers {
    ($($t:ty),*) => { $(impl Number for $t { const MIN: Self = <$t>::MIN; const MAX: Self = <$t>::MAX; })* };
}
numbers!(u8, u16, u32, u64, usize, f64);

/// Why a value is refused: the setting's key and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct Refused {
    pub key: &'static str,
    pub reason: String,
}

impl<T, D> Setting<T, D> {
    /// A refusal of this setting for `reason`.
    pub fn refuse(&self, reason: impl Into<String>) -> Refused {
        Refused {
            key: self.key,
            reason: reason.into(),
        }
    }
}

impl<T: Number, D> Setting<T, D> {
    /// What a value must be: "a whole number of bytes from 1 to 4096".
    pub fn expected(&self) -> String {
        match &self.range {
            Some(range) if *range.end() == T::MAX && *range.start() != T::MIN => {
                format!("{}, at least {}", self.unit, range.start())
            }
            Some(range) => format!("{} from {} to {}", self.unit, range.start(), range.end()),
            None => self.unit.to_string(),
        }
    }

    /// `value` if it is allowed, or why not (without the key).
    pub fn check(&self, value: T) -> Result<T, String> {
        match &self.range {
            Some(range) if !range.contains(&value) => {
                Err(format!("{value} is not {}", self.expected()))
            }
            _ => Ok(value),
        }
    }

    /// Parses a flag's text, or says what is expected.
    pub fn parse(&self, text: &str) -> Result<T, String> {
        let value = text
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not {}", self.expected()))?;
        self.check(value)
    }
}

impl<T: Number, D: Sync> Setting<T, D> {
    /// The flag parser clap calls.
    pub fn parser(&'static self) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync {
        move |text| self.parse(text)
    }
}

impl<T: Number> Setting<T> {
    /// The value set, or the default, checked.
    pub fn resolve(&self, set: Option<T>) -> Result<T, Refused> {
        self.check(set.unwrap_or(self.default))
            .map_err(|reason| self.refuse(reason))
    }
}

impl<T: Number> Setting<T, Unset> {
    /// The value set, checked, or none.
    pub fn resolve(&self, set: Option<T>) -> Result<Option<T>, Refused> {
        set.map(|value| self.check(value).map_err(|reason| self.refuse(reason)))
            .transpose()
    }
}

/// How a setting reads in `--help` and the README's table.
pub trait Described {
    fn key(&self) -> &'static str;
    fn help(&self) -> &'static str;
    /// The default, in the table's words (a value in backticks).
    fn default_text(&self) -> String;
    /// The values allowed, in words, or nothing.
    fn allowed(&self) -> Option<String>;

    /// The help line `jbc --help` shows.
    fn cli_help(&self) -> String {
        let default = self.default_text().replace('`', "");
        let mut help = self.help().to_string();
        if let Some(first) = help.get(..1) {
            help.replace_range(..1, &first.to_uppercase());
        }
        match self.allowed() {
            Some(allowed) => format!("{help}; {allowed} [default: {default}]"),
            None => format!("{help} [default: {default}]"),
        }
    }
}

/// How a default reads.
pub trait DefaultText {
    fn text(&self) -> String;
}

impl DefaultText for Unset {
    fn text(&self) -> String {
        self.0.to_string()
    }
}

macro_rules! shown {
    ($($t:ty),*) => { $(impl DefaultText for $t { fn text(&self) -> String { format!("`{self}`") } })* };
}
shown!(
    u8,
    u16,
    u32,
    u64,
    usize,
    f64,
    bool,
    &'static str,
    std::net::IpAddr
);

/// What a type's values are allowed to be, in words.
pub trait Allowed {
    fn allowed<D>(setting: &Setting<Self, D>) -> Option<String>
    where
        Self: Sized;
}

impl<T: Number> Allowed for T {
    fn allowed<D>(setting: &Setting<T, D>) -> Option<String> {
        setting.range.as_ref().map(|_| setting.expected())
    }
}

impl<T: Allowed, D: DefaultText> Described for Setting<T, D> {
    fn key(&self) -> &'static str {
        self.key
    }
    fn help(&self) -> &'static str {
        self.help
    }
    fn default_text(&self) -> String {
        self.default.text()
    }
    fn allowed(&self) -> Option<String> {
        T::allowed(self)
    }
}

/// A setting that is not a number: text, a path, an address, a list.
/// Its checks are its owner's (a peer URL parses as one, …).
pub type Text<D = Unset> = Setting<Words, D>;

/// The value type of a [`Text`] setting's declaration; the value itself
/// is whatever type its field in `Settings` has.
#[derive(Debug)]
pub enum Words {}

impl Allowed for Words {
    fn allowed<D>(_: &Setting<Words, D>) -> Option<String> {
        None
    }
}

/// Compares two strings in a const context (a key against its field's
/// name, when the crate compiles).
pub const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: Setting<u64> = Setting {
        key: "size",
        help: "how big",
        default: 4096,
        range: Some(1..=1024 * 1024),
        unit: "a whole number of bytes",
    };
    const MOST: Setting<u64, Unset> = Setting {
        key: "most",
        help: "how many",
        default: Unset("what the system allows"),
        range: Some(1024..=u64::MAX),
        unit: "a whole number of bytes",
    };

    #[test]
    fn a_value_is_the_default_or_checked_against_the_range() {
        assert_eq!(SIZE.resolve(None), Ok(4096));
        assert_eq!(SIZE.resolve(Some(7)), Ok(7));
        assert_eq!(
            SIZE.resolve(Some(0)).unwrap_err().to_string(),
            "size: 0 is not a whole number of bytes from 1 to 1048576"
        );
        assert_eq!(
            SIZE.parse("x").unwrap_err(),
            "\"x\" is not a whole number of bytes from 1 to 1048576"
        );
        assert_eq!(SIZE.parse(" 12 "), Ok(12));
        assert_eq!(MOST.resolve(None), Ok(None));
        assert_eq!(
            MOST.resolve(Some(1)).unwrap_err().reason,
            "1 is not a whole number of bytes, at least 1024"
        );
    }

    #[test]
    fn a_setting_describes_itself_for_help_and_the_readme() {
        assert_eq!(
            SIZE.cli_help(),
            "How big; a whole number of bytes from 1 to 1048576 [default: 4096]"
        );
        assert_eq!(MOST.default_text(), "what the system allows");
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("ab", "abc"));
    }
}
