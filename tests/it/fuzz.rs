//! Property-based fuzzing of everything that reads untrusted bytes: block
//! and chain JSON from peers and requests, validation, and block files on
//! disk. Each property runs a fixed budget of cases (`JBC_FUZZ_CASES`,
//! default 20 000; a fiftieth of it for the file-system one) so CI stays fast; run
//! it with a larger budget to search longer.

use jbc::DEFAULT_GENESIS_JSON;
use jbc::block::{Block, blocks_from_json};
use jbc::chain::Template;
use jbc::chain::{Chain, Network};
use jbc::{Store, block_file_name};
use proptest::prelude::*;
use serde_json::Value;

fn budget() -> u32 {
    std::env::var("JBC_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn network() -> Network {
    Network::new(
        Block::from_json(DEFAULT_GENESIS_JSON.as_bytes()).unwrap(),
        1,
    )
}

/// A small valid chain at difficulty 1, as JSON.
fn valid_chain() -> Vec<Block> {
    let mut blocks = vec![network().genesis];
    while blocks.len() < 6 {
        // A 20-digit timestamp and multi-byte data, the awkward cases.
        let data = format!("é {}", blocks.len());
        let next =
            Template::next(blocks.last().unwrap(), data, 20171025093021123456, 1).solve_plainly();
        blocks.push(next);
    }
    blocks
}

/// Edits to apply to a byte string.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Flip(at, byte)),
        (
            any::<usize>(),
            prop::collection::vec(
                prop_oneof![any::<u8>(), Just(b'"'), Just(b'['), Just(b'9'), Just(b'-')],
                1..8
            )
        )
            .prop_map(|(at, bytes)| Edit::Insert(at, bytes)),
        (any::<usize>(), 1usize..16).prop_map(|(at, len)| Edit::Delete(at, len)),
    ];
    prop::collection::vec(edit, 1..6)
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        let len = bytes.len().max(1);
        match edit {
            Edit::Flip(at, byte) if !bytes.is_empty() => bytes[at % len] = *byte,
            Edit::Flip(..) => {}
            Edit::Insert(at, new) => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, new.iter().copied());
            }
            Edit::Delete(at, n) if !bytes.is_empty() => {
                let at = at % len;
                let end = (at + n).min(bytes.len());
                bytes.drain(at..end);
            }
            Edit::Delete(..) => {}
        }
    }
    bytes
}

/// Any JSON value, a few levels deep, with the awkward numbers and strings.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,24}".prop_map(Value::String),
        "[ +_-]?[0-9_]{0,30}[ ]?".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: budget(), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = Block::from_json(&bytes);
        let _ = blocks_from_json(&bytes);
    }

    #[test]
    fn block_objects_with_any_field_values_parse_or_fail_cleanly(
        fields in prop::collection::btree_map(
            prop_oneof![Just("index".to_string()), Just("prev_hash".to_string()), Just("data".to_string()),
                        Just("timestamp".to_string()), Just("nonce".to_string()), Just("hash".to_string()), "[a-z]{1,6}"],
            json_value(),
            0..8,
        )
    ) {
        let object = Value::Object(fields.into_iter().collect());
        let bytes = serde_json::to_vec(&object).unwrap();
        if let Ok(block) = Block::from_json(&bytes) {
            // Whatever parses writes back in the network format and reads
            // back as the same block.
            let again = Block::from_json(&block.to_json_line()).unwrap();
            prop_assert_eq!(again, block);
        }
    }

    #[test]
    fn edited_chains_are_rejected_with_a_named_block_or_are_still_valid(edits in edits()) {
        let blocks = valid_chain();
        let json = apply(serde_json::to_vec(&blocks).unwrap(), &edits);
        if let Ok(parsed) = blocks_from_json(&json) {
            let count = parsed.len() as u64;
            match Chain::from_blocks(parsed.clone(), &network()) {
                Ok(chain) => {
                    // A chain that still validates is a real chain: every
                    // block's hash recomputes and links.
                    for pair in chain.blocks().windows(2) {
                        prop_assert!(pair[1].prev_hash.links_to(&pair[0].hash));
                        prop_assert_eq!(pair[1].compute_hash(), pair[1].hash);
                    }
                }
                Err(error) => {
                    if let Some(index) = error.index() {
                        prop_assert!(index <= count + 1, "{} names block {} of {}", error, index, count);
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: (budget() / 50).max(1), ..ProptestConfig::default() })]

    /// Damaged block files: loading never panics, never loses a file's
    /// bytes, and leaves a folder that loads again to the same chain.
    #[test]
    fn damaged_chaindata_loads_and_keeps_every_byte(damage in prop::collection::vec((0usize..6, edits()), 1..4)) {
        let dir = tempfile::tempdir().unwrap();
        let blocks = valid_chain();
        let mut written = Vec::new();
        for block in &blocks {
            written.push(block.to_json_line());
        }
        for (which, edits) in &damage {
            written[*which] = apply(written[*which].clone(), edits);
        }
        for (index, bytes) in written.iter().enumerate() {
            std::fs::write(dir.path().join(block_file_name(index as u64)), bytes).unwrap();
        }
        let loaded = Store::open(dir.path()).unwrap().load(&network());
        let chain = match loaded {
            Ok(loaded) => loaded.chain,
            // A damaged genesis file that still parses as another block 0
            // is another network's: refused, and nothing was touched.
            Err(error) => {
                prop_assert!(error.to_string().contains("another network"), "{}", error);
                for (index, bytes) in written.iter().enumerate() {
                    prop_assert_eq!(&std::fs::read(dir.path().join(block_file_name(index as u64))).unwrap(), bytes);
                }
                return Ok(());
            }
        };
        // Every original file's bytes are still somewhere in the folder.
        let mut kept = Vec::new();
        for sub in ["", "quarantine", "orphaned"] {
            if let Ok(entries) = std::fs::read_dir(dir.path().join(sub)) {
                for entry in entries {
                    let path = entry.unwrap().path();
                    if path.is_file() {
                        kept.push(std::fs::read(&path).unwrap());
                    }
                }
            }
        }
        for bytes in &written {
            prop_assert!(kept.contains(bytes), "lost a file's bytes");
        }
        let again = Store::open(dir.path()).unwrap().load(&network()).unwrap();
        prop_assert_eq!(again.chain.blocks(), chain.blocks());
        prop_assert!(again.set_aside.is_empty());
    }
}

/// JSON nested a million deep, where a block or a field is expected, is an
/// error, not a stack overflow.
#[test]
fn deeply_nested_json_is_an_error_not_a_crash() {
    let depth = 1_000_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    assert!(blocks_from_json(nested.as_bytes()).is_err());
    assert!(Block::from_json(nested.as_bytes()).is_err());
    let in_a_field = format!(
        r#"{{"index": {nested}, "prev_hash": "", "data": "", "timestamp": 1, "nonce": 1, "hash": "00"}}"#
    );
    let error = Block::from_json(in_a_field.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(
        error.len() < 200,
        "the error echoes the input: {} bytes",
        error.len()
    );
    assert!(blocks_from_json(format!("[{in_a_field}]").as_bytes()).is_err());
}
