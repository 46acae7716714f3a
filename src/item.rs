//! A data item: a piece of text a user asks the network to put in a block.
//!
//! An item is known by its id, the lowercase hex SHA-256 of its UTF-8
//! bytes. A block that carries items has as its `data` the compact JSON
//! array of their strings in the order they were included
//! (`["pay bob 5","hello"]`); a block whose data does not parse as a JSON
//! array of strings is a plain note, as every block of the original's is.
//! The six fields and the hash do not change, so original nodes load,
//! check and sync such blocks like any other.
//!
//! This module owns that encoding and the arithmetic of how much room an
//! item takes in a block. Where items wait is [`crate::pool`]'s business.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::setting::Setting;

/// An item's id: the SHA-256 of its text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemId(pub [u8; 32]);

impl ItemId {
    /// The id of `text`.
    pub fn of(text: &str) -> ItemId {
        ItemId(Sha256::digest(text.as_bytes()).into())
    }
}

impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a text is not an item id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an item id is 64 lowercase hex digits (the SHA-256 of the item's text)")]
pub struct ItemIdError;

impl FromStr for ItemId {
    type Err = ItemIdError;

    fn from_str(text: &str) -> Result<ItemId, ItemIdError> {
        let is_lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if text.len() != 64 || !text.bytes().all(is_lower_hex) {
            return Err(ItemIdError);
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| ItemIdError)?;
        Ok(ItemId(bytes))
    }
}

/// The first hex digits of an item id, as a person types them
/// (`04ba3384d4`): enough, once long enough, to find one item among those a
/// node knows, as a short commit hash finds one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPrefix(String);

/// Why a text is not an id or the start of one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "an item id is the 64 hex digits `jbc data add` printed, or its first {} or more",
    IdPrefix::MIN_DIGITS
)]
pub struct IdPrefixError;

impl IdPrefix {
    /// The fewest digits taken: fewer would match too much to be useful.
    pub const MIN_DIGITS: usize = 6;

    /// The ids it covers, lowest to highest.
    pub fn range(&self) -> std::ops::RangeInclusive<ItemId> {
        let padded = |digit: char| {
            let mut text = self.0.clone();
            text.extend(std::iter::repeat_n(digit, 64 - text.len()));
            text.parse::<ItemId>().expect("64 lowercase hex digits")
        };
        padded('0')..=padded('f')
    }

    /// Whether `id` starts with it.
    pub fn matches(&self, id: &ItemId) -> bool {
        self.range().contains(id)
    }
}

impl fmt::Display for IdPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for IdPrefix {
    type Err = IdPrefixError;

    /// Upper-case digits are taken as lower-case ones.
    fn from_str(text: &str) -> Result<IdPrefix, IdPrefixError> {
        let text = text.trim().to_ascii_lowercase();
        let digits = IdPrefix::MIN_DIGITS..=64;
        if !digits.contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(IdPrefixError);
        }
        Ok(IdPrefix(text))
    }
}

impl Serialize for ItemId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ItemId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ItemId, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The items a block's data carries, or `None` for a plain note.
pub fn items_in(data: &str) -> Option<Vec<String>> {
    // Cheap test first: nearly every plain note fails it.
    if !(data.starts_with('[') && data.ends_with(']')) {
        return None;
    }
    serde_json::from_str::<Vec<String>>(data).ok()
}

/// A block's data for `items`, in this order: their compact JSON array.
pub fn data_for<S: AsRef<str>>(items: &[S]) -> String {
    let texts: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    serde_json::to_string(&texts).expect("strings serialise")
}

/// How many bytes `text` adds to a block's JSON as one item of its data
/// (its comma included): the text is written as a JSON string inside the
/// array, and the array as a JSON string inside the block, so it is
/// escaped twice. A block with items is as long as the same block with an
/// empty list (`[]`) plus their room, less one (the first has no comma).
pub fn room_taken(text: &str) -> usize {
    escaped_len(&serde_json::to_string(text).expect("a string serialises")) + 1
}

/// The largest data item a node takes, in bytes of UTF-8 (a network
/// setting): 4 KiB, or less when a block could not hold one.
pub const MAX_ITEM_BYTES: Setting<u64> = Setting {
    key: "max_item_bytes",
    help: "largest data item, in bytes of UTF-8 (network setting; at most what a block holds)",
    default: 4096,
    range: Some(1..=1024 * 1024),
    unit: "a whole number of bytes",
};

/// Bytes of a block's JSON besides its items, with room to spare.
const BLOCK_BESIDES_ITEMS: u64 = 1024;
/// Bytes of a block's JSON one byte of an item takes at worst: written as
/// a JSON string inside the JSON string of the block's data, escaped
/// twice, with room to spare.
const WORST_BYTES_PER_ITEM_BYTE: u64 = 12;

/// The largest block an item of `item_bytes` could need.
pub fn block_bytes_needed(item_bytes: u64) -> u64 {
    item_bytes
        .saturating_mul(WORST_BYTES_PER_ITEM_BYTE)
        .saturating_add(BLOCK_BESIDES_ITEMS)
}

/// The largest item every block of `max_block_bytes` holds (at least 1).
pub fn largest_item_held(max_block_bytes: u64) -> u64 {
    (max_block_bytes.saturating_sub(BLOCK_BESIDES_ITEMS) / WORST_BYTES_PER_ITEM_BYTE).max(1)
}

/// The length of `text` written inside a JSON string, without the quotes.
fn escaped_len(text: &str) -> usize {
    serde_json::to_string(text)
        .expect("a string serialises")
        .len()
        - 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_prefix_covers_exactly_the_ids_that_start_with_it() {
        let id = ItemId::of("hello");
        let text = id.to_string();
        for digits in [6, 7, 33, 64] {
            let prefix: IdPrefix = text[..digits].to_uppercase().parse().unwrap();
            assert!(prefix.matches(&id), "{digits} digits");
            assert!(!prefix.matches(&ItemId::of("another")));
        }
        let mut next = id.0;
        next[2] ^= 0x01;
        let prefix: IdPrefix = text[..6].parse().unwrap();
        assert!(!prefix.matches(&ItemId(next)));
        for bad in ["", "04ba3", "04ba33zz", &"0".repeat(65), "04ba3384…"] {
            assert_eq!(bad.parse::<IdPrefix>(), Err(IdPrefixError), "{bad:?}");
        }
    }
    use crate::block::Block;

    #[test]
    fn ids_are_the_sha256_of_the_text() {
        let id = ItemId::of("hello");
        assert_eq!(
            id.to_string(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(id.to_string().parse::<ItemId>(), Ok(id));
        assert!("2CF2".parse::<ItemId>().is_err());
    }

    #[test]
    fn a_block_carries_items_as_a_json_array_of_strings() {
        let data = data_for(&["pay bob 5", "hello"]);
        assert_eq!(data, r#"["pay bob 5","hello"]"#);
        assert_eq!(
            items_in(&data),
            Some(vec!["pay bob 5".to_string(), "hello".to_string()])
        );
        for note in ["Mined by node on port 5001", "[1, 2]", "[\"a\"", "[]x", ""] {
            assert_eq!(items_in(note), None, "{note}");
        }
        assert_eq!(items_in("[]"), Some(vec![]));
    }

    #[test]
    fn the_room_an_item_takes_is_exact() {
        let base = Block::new(7, 1_700_000_000, "ab".repeat(32), data_for::<&str>(&[]), 99);
        let items = ["plain", "with \"quotes\" and \\ and \n", "é ☃ 🚀", "\u{1}"];
        for n in 0..=items.len() {
            let block = Block::new(7, 1_700_000_000, "ab".repeat(32), data_for(&items[..n]), 99);
            let predicted = base.json_len()
                + items[..n].iter().map(|t| room_taken(t)).sum::<usize>()
                - usize::from(n > 0);
            assert_eq!(block.json_len(), predicted, "{n} items");
        }
    }
}
