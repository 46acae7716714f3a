//! A block of the JackBlockChain: six fields, a SHA-256 hash over their
//! concatenation, and proof of work as leading zero hex digits.
//!
//! This module owns the block format, exactly as the original Python node
//! reads and writes it, so that its block files and its peers interoperate
//! with ours:
//!
//! - `hash` is the lowercase hex SHA-256 of the UTF-8 string
//!   `decimal(index) + prev_hash + data + decimal(timestamp) + decimal(nonce)`;
//! - every value is written as a JSON string; on input `index`, `timestamp`
//!   and `nonce` may be numbers or decimal strings, normalised as Python's
//!   `int()` would, and unknown keys are ignored.
//!
//! It does not know about chains (see [`crate::chain`]) or files (see
//! [`crate::store`]).

use std::fmt;
use std::str::FromStr;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// A SHA-256 block hash, shown and serialised as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockHash(pub [u8; 32]);

impl BlockHash {
    /// Whether the hash begins with `difficulty` zero hex digits (the
    /// original's `NUM_ZEROS` check, done on bytes rather than on hex text).
    pub fn meets_difficulty(&self, difficulty: u32) -> bool {
        leading_zero_nibbles(&self.0) >= difficulty
    }
}

/// How many hex digits at the start of `bytes` are `0`.
pub fn leading_zero_nibbles(bytes: &[u8]) -> u32 {
    let mut count = 0;
    for &byte in bytes {
        if byte == 0 {
            count += 2;
        } else {
            return count + u32::from(byte < 0x10);
        }
    }
    count
}

impl fmt::Display for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not a [`BlockHash`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a block hash (64 lowercase hex digits): {0:?}")]
pub struct HashParseError(String);

impl FromStr for BlockHash {
    type Err = HashParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Only lowercase: the original compares hex strings, so an uppercase
        // hash never matches there and must not match here either.
        let is_lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if s.len() != 64 || !s.bytes().all(is_lower_hex) {
            let shown: String = s.chars().take(80).collect();
            return Err(HashParseError(shown));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| HashParseError(s.to_owned()))?;
        Ok(BlockHash(bytes))
    }
}

impl<'de> Deserialize<'de> for BlockHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for BlockHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A block's `prev_hash` field: the link to its parent, kept exactly as
/// written because it is hashed as text.
///
/// A well-formed link is the parent's hash in 64 lowercase hex digits and is
/// held as a [`BlockHash`], so following a link compares 32 bytes. Anything
/// else (the genesis block's `""`, or whatever a file or a peer wrote) is
/// kept as its text: it still hashes and serialises as it came, and links to
/// no block.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PrevHash(Link);

/// The two shapes of a `prev_hash`; private so that a text that is a
/// well-formed hash is always held as a hash and equality stays simple.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Link {
    Block(BlockHash),
    Text(Box<str>),
}

impl PrevHash {
    /// The genesis block's `prev_hash`: empty.
    pub fn none() -> PrevHash {
        PrevHash(Link::Text("".into()))
    }

    /// The parent's hash, if the field is a well-formed hash.
    pub fn block_hash(&self) -> Option<&BlockHash> {
        match &self.0 {
            Link::Block(hash) => Some(hash),
            Link::Text(_) => None,
        }
    }

    /// Whether this links to the block with `hash`.
    pub fn links_to(&self, hash: &BlockHash) -> bool {
        self.block_hash() == Some(hash)
    }

    /// The field's text cut to 80 characters, for messages about a bad link.
    pub fn shown(&self) -> String {
        match &self.0 {
            Link::Block(hash) => hash.to_string(),
            Link::Text(text) => text.chars().take(80).collect(),
        }
    }
}

impl From<BlockHash> for PrevHash {
    fn from(hash: BlockHash) -> PrevHash {
        PrevHash(Link::Block(hash))
    }
}

impl From<&str> for PrevHash {
    fn from(text: &str) -> PrevHash {
        match text.parse() {
            Ok(hash) => PrevHash(Link::Block(hash)),
            Err(_) => PrevHash(Link::Text(text.into())),
        }
    }
}

impl From<String> for PrevHash {
    fn from(text: String) -> PrevHash {
        PrevHash::from(text.as_str())
    }
}

impl fmt::Display for PrevHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Link::Block(hash) => fmt::Display::fmt(hash, f),
            Link::Text(text) => f.write_str(text),
        }
    }
}

impl fmt::Debug for PrevHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Link::Block(hash) => fmt::Display::fmt(hash, f),
            Link::Text(text) => fmt::Debug::fmt(text, f),
        }
    }
}

impl<'de> Deserialize<'de> for PrevHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(PrevHash::from(text.as_str()))
    }
}

impl Serialize for PrevHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One block, as stored in a chaindata file and sent between nodes.
///
/// `hash` is the hash the block claims; [`Block::check_hash`] says whether it
/// is the real one. Blocks are compared on every field.
#[derive(Clone, PartialEq, Eq)]
pub struct Block {
    /// Position in the chain; the genesis block is 0.
    pub index: u64,
    /// Seconds since the epoch for blocks mined here; the original's later
    /// version wrote a 20-digit `yyyymmddHHMMSSffffff` number, which does not
    /// fit a `u64`, so both styles are kept as they were written.
    pub timestamp: u128,
    /// The previous block's hash; empty for the genesis block.
    pub prev_hash: PrevHash,
    /// Free text carried by the block.
    pub data: String,
    /// The proof-of-work counter the miner varied.
    pub nonce: u64,
    /// The hash the block claims to have.
    pub hash: BlockHash,
}

impl Block {
    /// Builds a block and computes its hash.
    pub fn new(
        index: u64,
        timestamp: u128,
        prev_hash: impl Into<PrevHash>,
        data: String,
        nonce: u64,
    ) -> Block {
        let prev_hash = prev_hash.into();
        let hash = header_hash(&header_prefix(index, &prev_hash, &data, timestamp), nonce);
        Block {
            index,
            timestamp,
            prev_hash,
            data,
            nonce,
            hash,
        }
    }

    /// The hash this block's fields really have.
    pub fn compute_hash(&self) -> BlockHash {
        header_hash(
            &header_prefix(self.index, &self.prev_hash, &self.data, self.timestamp),
            self.nonce,
        )
    }

    /// Checks that the claimed hash is the real one.
    pub fn check_hash(&self) -> Result<(), BlockError> {
        let computed = self.compute_hash();
        if computed == self.hash {
            Ok(())
        } else {
            Err(BlockError::BadHash {
                index: self.index,
                claimed: self.hash,
                computed,
            })
        }
    }

    /// The block's time in seconds since the epoch: its timestamp as it is,
    /// or the original's later `yyyymmddHHMMSSffffff` form (UTC) converted.
    /// `None` for a value that is neither.
    pub fn epoch_seconds(&self) -> Option<i64> {
        const TWENTY_DIGITS: std::ops::Range<u128> = 10u128.pow(19)..10u128.pow(20);
        if TWENTY_DIGITS.contains(&self.timestamp) {
            let text = self.timestamp.to_string();
            chrono::NaiveDateTime::parse_from_str(&text[..14], "%Y%m%d%H%M%S")
                .ok()
                .map(|time| time.and_utc().timestamp())
        } else {
            i64::try_from(self.timestamp).ok()
        }
    }

    /// Parses one block from JSON text in the network format.
    pub fn from_json(json: &[u8]) -> Result<Block, ParseError> {
        let raw: RawBlock = serde_json::from_slice(json)
            .map_err(|error| ParseError::from_json(error, json, block_shape))?;
        raw.into_block()
    }

    /// The size of the largest block at `index` that carries `data`: its
    /// JSON with the widest timestamp and nonce there are, so whatever a
    /// miner puts in them, a block with that data is no larger.
    pub fn widest_json_len(index: u64, data: &str) -> usize {
        Block::new(
            index,
            u128::from(u64::MAX),
            BlockHash([0; 32]),
            data.to_string(),
            u64::MAX,
        )
        .json_len()
    }

    /// The length of the block's compact JSON (without the newline): its
    /// size, as the network's block size limit counts it.
    pub fn json_len(&self) -> usize {
        /// Counts bytes without keeping them.
        struct Counter(usize);
        impl std::io::Write for Counter {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0 += bytes.len();
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut counter = Counter(0);
        serde_json::to_writer(&mut counter, self).expect("a block always serialises");
        counter.0
    }

    /// The block as compact JSON in the network format, with a final newline
    /// (the form written to chaindata files).
    pub fn to_json_line(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(self).expect("a block always serialises");
        bytes.push(b'\n');
        bytes
    }
}

/// Parses a JSON array of blocks, as `/blockchain.json` serves it.
pub fn blocks_from_json(json: &[u8]) -> Result<Vec<Block>, ParseError> {
    let raws: Vec<RawBlock> = serde_json::from_slice(json)
        .map_err(|error| ParseError::from_json(error, json, chain_shape))?;
    raws.into_iter()
        .enumerate()
        .map(|(position, raw)| {
            raw.into_block().map_err(|error| ParseError::InArray {
                position,
                error: Box::new(error),
            })
        })
        .collect()
}

/// The part of a block's hashed string that does not change while a nonce is
/// searched: `decimal(index) + prev_hash + data + decimal(timestamp)`.
pub fn header_prefix(index: u64, prev_hash: &PrevHash, data: &str, timestamp: u128) -> String {
    format!("{index}{prev_hash}{data}{timestamp}")
}

/// The hash of a header prefix followed by a nonce, computed the plain way.
pub fn header_hash(prefix: &str, nonce: u64) -> BlockHash {
    let mut hasher = Sha256::new();
    hasher.update(prefix.as_bytes());
    hasher.update(nonce.to_string().as_bytes());
    BlockHash(hasher.finalize().into())
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "block {} ({})", self.index, self.hash)
    }
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Block")
            .field("index", &self.index)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

impl Serialize for Block {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// Writes any displayable value as a JSON string, as the original does.
        struct AsString<T>(T);
        impl<T: fmt::Display> Serialize for AsString<T> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(&self.0)
            }
        }
        let mut block = serializer.serialize_struct("Block", 6)?;
        block.serialize_field("index", &AsString(self.index))?;
        block.serialize_field("prev_hash", &self.prev_hash)?;
        block.serialize_field("data", &self.data)?;
        block.serialize_field("timestamp", &AsString(self.timestamp))?;
        block.serialize_field("nonce", &AsString(self.nonce))?;
        block.serialize_field("hash", &self.hash)?;
        block.end()
    }
}

/// A block as it appears in JSON, before its fields are checked. The numeric
/// fields are kept as raw JSON so a 20-digit timestamp written as a number is
/// read exactly rather than rounded through `f64`.
#[derive(Deserialize)]
struct RawBlock {
    index: Box<RawValue>,
    timestamp: Box<RawValue>,
    prev_hash: PrevHash,
    data: String,
    nonce: Box<RawValue>,
    hash: String,
}

impl RawBlock {
    fn into_block(self) -> Result<Block, ParseError> {
        let index = narrow("index", parse_integer("index", &self.index)?)?;
        let timestamp = parse_integer("timestamp", &self.timestamp)?;
        let nonce = narrow("nonce", parse_integer("nonce", &self.nonce)?)?;
        let hash = self
            .hash
            .parse()
            .map_err(|error: HashParseError| ParseError::Field {
                field: "hash",
                reason: error.to_string(),
            })?;
        Ok(Block {
            index,
            timestamp,
            prev_hash: self.prev_hash,
            data: self.data,
            nonce,
            hash,
        })
    }
}

fn narrow(field: &'static str, value: u128) -> Result<u64, ParseError> {
    u64::try_from(value).map_err(|_| ParseError::Field {
        field,
        reason: format!("{value} is too large"),
    })
}

/// Reads an integer field that may be a JSON number or a decimal string.
fn parse_integer(field: &'static str, raw: &RawValue) -> Result<u128, ParseError> {
    let text = raw.get();
    let result = if text.starts_with('"') {
        let string: String = serde_json::from_str(text).expect("raw JSON string re-parses");
        python_int(&string)
    } else if text.starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'])
        && !text.contains(['.', 'e', 'E'])
    {
        python_int(text)
    } else {
        Err(format!(
            "expected an integer or a decimal string, got {}",
            text.chars().take(40).collect::<String>()
        ))
    };
    result.map_err(|reason| ParseError::Field { field, reason })
}

/// Parses a non-negative integer the way Python's `int()` parses a string:
/// surrounding white space, a sign, leading zeros and single underscores
/// between digits are all accepted (`" +0_07 "` is 7).
pub fn python_int(text: &str) -> Result<u128, String> {
    let trimmed = text.trim();
    let (negative, digits) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let shown = || text.chars().take(40).collect::<String>();
    let well_formed = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    if !well_formed {
        return Err(format!("{:?} is not a decimal integer", shown()));
    }
    let mut value: u128 = 0;
    for digit in digits.bytes().filter(u8::is_ascii_digit) {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u128::from(digit - b'0')))
            .ok_or_else(|| format!("{:?} is too large", shown()))?;
    }
    if negative && value != 0 {
        return Err(format!("{:?} is negative", shown()));
    }
    Ok(value)
}

/// What a block looks like, for error messages.
pub const BLOCK_SHAPE: &str =
    "a block is a JSON object with index, prev_hash, data, timestamp, nonce and hash";

/// Why bytes could not be read as a block (or a list of blocks). Every
/// message is in words a person sending the bytes can act on, never a
/// parser's internal names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON at all.
    #[error("not valid JSON: {0}")]
    Syntax(String),
    /// JSON, but not shaped like a block (or a list of blocks).
    #[error("{0}")]
    Shape(String),
    /// A field is present but its value is not acceptable.
    #[error("bad {field}: {reason}")]
    Field { field: &'static str, reason: String },
    /// One element of an array of blocks is bad.
    #[error("element {position} of the array: {error}")]
    InArray {
        position: usize,
        error: Box<ParseError>,
    },
}

impl ParseError {
    /// Turns serde's error for `json` into one in words: its own message
    /// for a syntax error (it names the line and column), and for JSON of
    /// the wrong shape a description made by `shape` (on the error path
    /// only, so the happy path parses once).
    pub fn from_json(
        error: serde_json::Error,
        json: &[u8],
        shape: fn(&[u8]) -> ParseError,
    ) -> ParseError {
        if error.is_data() {
            shape(json)
        } else {
            ParseError::Syntax(error.to_string())
        }
    }
}

/// Says how valid JSON differs from a block.
fn block_shape(json: &[u8]) -> ParseError {
    match serde_json::from_slice::<serde_json::Value>(json) {
        Ok(value) => ParseError::Shape(describe_block(&value)),
        Err(error) => ParseError::Syntax(error.to_string()),
    }
}

/// Says how valid JSON differs from an array of blocks, naming the first
/// element that is not a block. The elements are kept as raw text, so a
/// large answer is not expanded into a tree.
fn chain_shape(json: &[u8]) -> ParseError {
    let elements: Vec<Box<RawValue>> = match serde_json::from_slice(json) {
        Ok(elements) => elements,
        Err(error) if error.is_data() => {
            let found = serde_json::from_slice::<serde_json::Value>(json)
                .map_or("something else", |value| json_kind(&value));
            return ParseError::Shape(format!("a chain is a JSON array of blocks, not {found}"));
        }
        Err(error) => return ParseError::Syntax(error.to_string()),
    };
    let bad = elements.iter().enumerate().find_map(|(position, element)| {
        serde_json::from_str::<RawBlock>(element.get())
            .err()
            .map(|_| (position, block_shape(element.get().as_bytes())))
    });
    match bad {
        Some((position, error)) => ParseError::InArray {
            position,
            error: Box::new(error),
        },
        None => ParseError::Shape("a chain is a JSON array of blocks".into()),
    }
}

/// What is wrong with a JSON value that should be a block, in words.
fn describe_block(value: &serde_json::Value) -> String {
    let serde_json::Value::Object(fields) = value else {
        return format!("{BLOCK_SHAPE}, not {}", json_kind(value));
    };
    let missing: Vec<&str> = ["index", "prev_hash", "data", "timestamp", "nonce", "hash"]
        .into_iter()
        .filter(|name| !fields.contains_key(*name))
        .collect();
    if !missing.is_empty() {
        return format!("{BLOCK_SHAPE}; this one has no {}", missing.join(", "));
    }
    for name in ["prev_hash", "data", "hash"] {
        if !fields[name].is_string() {
            return format!("{name} must be a string, not {}", json_kind(&fields[name]));
        }
    }
    for name in ["index", "timestamp", "nonce"] {
        if !(fields[name].is_string() || fields[name].is_number()) {
            return format!(
                "{name} must be a whole number or a string of digits, not {}",
                json_kind(&fields[name])
            );
        }
    }
    BLOCK_SHAPE.to_string()
}

/// "an array", "a number", … for messages.
pub fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "true or false",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Why a single block is not acceptable on its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The claimed hash is not the hash of the block's fields.
    #[error("block {index}: hash {claimed} does not match its contents (computed {computed})")]
    BadHash {
        index: u64,
        claimed: BlockHash,
        computed: BlockHash,
    },
    /// The hash does not start with enough zeros.
    #[error("block {index}: hash {hash} does not meet difficulty {difficulty}")]
    BadProofOfWork {
        index: u64,
        hash: BlockHash,
        difficulty: u32,
    },
    /// The block's JSON is larger than the network allows.
    #[error("block {index}: {bytes} bytes of JSON, more than the network's limit of {max}")]
    TooLarge { index: u64, bytes: u64, max: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR: &str = r#"{"index":"0","prev_hash":"","data":"First block data","timestamp":"1508895381","nonce":"550","hash":"00007827a6d5ba487ebae6392f97655a1d530b84de727a79a65de5622a2efa8b"}"#;

    #[test]
    fn the_vector_hashes_and_meets_difficulty_four() {
        let block = Block::from_json(VECTOR.as_bytes()).unwrap();
        assert_eq!(block.index, 0);
        assert_eq!(block.nonce, 550);
        assert_eq!(block.compute_hash(), block.hash);
        assert!(block.hash.meets_difficulty(4));
        assert!(!block.hash.meets_difficulty(5));
        block.check_hash().unwrap();
    }

    #[test]
    fn output_writes_every_value_as_a_string_and_round_trips() {
        let block = Block::from_json(VECTOR.as_bytes()).unwrap();
        let json = String::from_utf8(block.to_json_line()).unwrap();
        assert_eq!(json.trim_end(), VECTOR);
        assert_eq!(Block::from_json(json.as_bytes()).unwrap(), block);
    }

    #[test]
    fn numbers_and_python_style_strings_normalise() {
        let json = r#"{"index": 0, "prev_hash": "", "data": "First block data",
            "timestamp": " 1508895381 ", "nonce": "0_550", "extra": [1, 2],
            "hash": "00007827a6d5ba487ebae6392f97655a1d530b84de727a79a65de5622a2efa8b"}"#;
        let block = Block::from_json(json.as_bytes()).unwrap();
        assert_eq!(block.timestamp, 1508895381);
        assert_eq!(block.nonce, 550);
        block.check_hash().unwrap();
        assert_eq!(python_int("007"), Ok(7));
        assert_eq!(python_int("+7"), Ok(7));
        assert_eq!(python_int("-0"), Ok(0));
        assert!(python_int("-1").is_err());
        assert!(python_int("1__0").is_err());
        assert!(python_int("_1").is_err());
        assert!(python_int("").is_err());
        assert!(python_int("0x10").is_err());
        assert!(python_int("1".repeat(60).as_str()).is_err());
    }

    #[test]
    fn twenty_digit_timestamps_load_exactly_as_numbers_and_strings() {
        let stamp: u128 = 20171025093021123456;
        assert!(stamp > u128::from(u64::MAX));
        let block = Block::new(1, stamp, "ab", "x".into(), 3);
        let as_number = format!(
            r#"{{"index":1,"prev_hash":"ab","data":"x","timestamp":{stamp},"nonce":3,"hash":"{}"}}"#,
            block.hash
        );
        let as_string = String::from_utf8(block.to_json_line()).unwrap();
        assert!(as_string.contains(r#""timestamp":"20171025093021123456""#));
        for json in [as_number, as_string] {
            let parsed = Block::from_json(json.as_bytes()).unwrap();
            assert_eq!(parsed, block);
            parsed.check_hash().unwrap();
        }
        // The hashed string carries the timestamp's decimal digits verbatim.
        let plain = Sha256::digest(format!("1abx{stamp}3").as_bytes());
        assert_eq!(block.hash.0, <[u8; 32]>::from(plain));
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (
                r#"{"index":"-1","prev_hash":"","data":"","timestamp":"1","nonce":"1","hash":"00"}"#,
                "index",
            ),
            (
                r#"{"index":"1","prev_hash":"","data":"","timestamp":1.5,"nonce":"1","hash":"00"}"#,
                "timestamp",
            ),
            (
                r#"{"index":"1","prev_hash":"","data":"","timestamp":"1","nonce":"99999999999999999999","hash":"00"}"#,
                "nonce",
            ),
            (
                r#"{"index":"1","prev_hash":"","data":"","timestamp":"1","nonce":"1","hash":"00"}"#,
                "hash",
            ),
        ];
        for (json, field) in cases {
            match Block::from_json(json.as_bytes()) {
                Err(ParseError::Field { field: got, .. }) => assert_eq!(got, field, "{json}"),
                other => panic!("{json}: expected a bad {field}, got {other:?}"),
            }
        }
        let uppercase = VECTOR.replace("00007827a6d5", "00007827A6D5");
        assert!(matches!(
            Block::from_json(uppercase.as_bytes()),
            Err(ParseError::Field { field: "hash", .. })
        ));
        for not_a_block in [
            "",
            "[]",
            "{}",
            "nul",
            r#"{"index":"0"}"#,
            &"[".repeat(10_000),
        ] {
            assert!(matches!(
                Block::from_json(not_a_block.as_bytes()),
                Err(ParseError::Syntax(_) | ParseError::Shape(_))
            ));
        }
    }

    #[test]
    fn both_timestamp_styles_convert_to_epoch_seconds() {
        let at = |timestamp| Block::new(1, timestamp, String::new(), String::new(), 0);
        assert_eq!(at(1508895381).epoch_seconds(), Some(1508895381));
        assert_eq!(
            at(20171025093021123456).epoch_seconds(),
            Some(1508923821),
            "2017-10-25 09:30:21 UTC"
        );
        assert_eq!(at(99999999999999999999).epoch_seconds(), None);
    }

    #[test]
    fn a_changed_field_is_a_hash_mismatch_naming_the_block() {
        let mut block = Block::from_json(VECTOR.as_bytes()).unwrap();
        block.data = "Second block data".into();
        assert!(matches!(
            block.check_hash(),
            Err(BlockError::BadHash { index: 0, .. })
        ));
    }

    #[test]
    fn display_and_debug_are_short() {
        let block = Block::from_json(VECTOR.as_bytes()).unwrap();
        assert_eq!(
            block.to_string(),
            "block 0 (00007827a6d5ba487ebae6392f97655a1d530b84de727a79a65de5622a2efa8b)"
        );
        assert!(!format!("{block:?}").contains("First block data"));
    }

    #[test]
    fn leading_zero_nibbles_counts_hex_digits() {
        assert_eq!(leading_zero_nibbles(&[0, 0, 0x0f]), 5);
        assert_eq!(leading_zero_nibbles(&[0x10]), 0);
        assert_eq!(leading_zero_nibbles(&[0; 32]), 64);
    }

    #[test]
    fn errors_say_in_words_what_a_block_is() {
        let message = |json: &str| Block::from_json(json.as_bytes()).unwrap_err().to_string();
        assert_eq!(
            message("[]"),
            "a block is a JSON object with index, prev_hash, data, timestamp, nonce and hash, not an array"
        );
        assert_eq!(
            message(r#"{"index": "1", "data": "x"}"#),
            format!("{BLOCK_SHAPE}; this one has no prev_hash, timestamp, nonce, hash")
        );
        assert_eq!(
            message(&VECTOR.replace(r#""data":"First block data""#, r#""data":7"#)),
            "data must be a string, not a number"
        );
        assert_eq!(
            message(&VECTOR.replace(r#""nonce":"550""#, r#""nonce":[1]"#)),
            "bad nonce: expected an integer or a decimal string, got [1]"
        );
        assert!(message("{not json").starts_with("not valid JSON: key must be a string at line 1"));
        let chain = |json: &str| blocks_from_json(json.as_bytes()).unwrap_err().to_string();
        assert_eq!(
            chain(r#"{"chain": []}"#),
            "a chain is a JSON array of blocks, not an object"
        );
        assert_eq!(
            chain(&format!("[{VECTOR}, 5]")),
            format!("element 1 of the array: {BLOCK_SHAPE}, not a number")
        );
        for message in [message("[]"), chain("[1]"), chain("{}")] {
            assert!(!message.contains("RawBlock"), "{message}");
            assert!(!message.contains("struct"), "{message}");
        }
    }

    #[test]
    fn arrays_name_the_bad_element() {
        let json = format!(
            "[{VECTOR}, {}]",
            VECTOR.replace(r#""nonce":"550""#, r#""nonce":"x""#)
        );
        match blocks_from_json(json.as_bytes()) {
            Err(ParseError::InArray { position: 1, .. }) => {}
            other => panic!("expected element 1 to be named, got {other:?}"),
        }
    }

    #[test]
    fn a_prev_hash_keeps_its_text_and_links_only_when_well_formed() {
        let parent = BlockHash([0xab; 32]);
        let lower = parent.to_string();
        let upper = lower.to_uppercase();
        for (text, links) in [
            (lower.as_str(), true),
            (upper.as_str(), false),
            ("", false),
            ("xyz", false),
        ] {
            let json = format!(
                r#"{{"index":"1","prev_hash":"{text}","data":"d","timestamp":"1","nonce":"1","hash":"{lower}"}}"#
            );
            let block = Block::from_json(json.as_bytes()).unwrap();
            assert_eq!(block.prev_hash.links_to(&parent), links, "{text:?}");
            assert_eq!(block.prev_hash.to_string(), text);
            assert_eq!(block.compute_hash(), header_hash(&format!("1{text}d1"), 1));
            assert_eq!(Block::from_json(&block.to_json_line()).unwrap(), block);
        }
        assert_eq!(PrevHash::from(lower.as_str()), PrevHash::from(parent));
        assert_eq!(PrevHash::none().to_string(), "");
    }
}
