//! The messages of a live peer link: what two nodes of this software say to
//! each other over one long-lived WebSocket, each a small JSON object in a
//! text frame with a `type` (so `websocat` shows them as they are).
//!
//! The conversation follows Bitcoin's: a `hello` once each way (what
//! `GET /status` answers), `ping`/`pong` for liveness instead of polling,
//! new blocks and data items announced by hash (`inv`), and fetched by
//! whoever lacks them: a block with `getdata`, answered with a compact
//! block (BIP 152: its header and the ids of its items, which the receiver
//! rebuilds from its pool, asking with `getitems` for the ones it lacks)
//! or, when its data is a plain note, the whole `block`; items with
//! `getitems`, answered with `items`. A node behind catches up by
//! headers: `getheaders` with a locator of its chain, answered with
//! `headers` from the fork point on (each a block's fields with an empty
//! `data`, and its size), then asks for the bodies, whole, with `getdata`.
//! A node asks the peer it chose for the nodes it knows with `getaddr`,
//! answered with `addr`.
//!
//! This module owns the shapes and their parsing, with the reason a
//! message is refused; what a message means for the node is
//! [`crate::gossip`]'s business.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::block::{Block, BlockHash};
use crate::item::ItemId;
use crate::protocol::Status;

/// The route a node opens a link on (a WebSocket upgrade).
pub const LINK_ROUTE: &str = "/link";
/// The most ids an `inv` or `getitems` carries.
pub const MAX_IDS: usize = 1024;
/// The most hashes a `getdata` carries.
pub const MAX_BLOCKS_ASKED: usize = 16;
/// The most headers a `headers` carries (Bitcoin Core's number).
pub const MAX_HEADERS: usize = 2000;
/// The most addresses an `addr` carries.
pub const MAX_ADDR: usize = crate::protocol::MAX_ADDRESSES;
/// The most hashes in a `getheaders` locator (a chain of 2^64 blocks
/// needs about 75).
pub const MAX_LOCATOR: usize = 101;

/// One message on a link.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Who the sender is, once, first: its URL (when it has one) and what
    /// its `/status` says.
    Hello(Hello),
    /// Are you there? Answered with a `pong` of the same nonce.
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    /// A new block, announced by its header and the ids of its items.
    CompactBlock(CompactBlock),
    /// Asks for blocks by hash: each answered as a compact block when it
    /// carries items, unless `whole` (a catch-up: its items are in no
    /// pool).
    GetData {
        blocks: Vec<BlockHash>,
        whole: bool,
    },
    /// A whole block: the answer to `getdata`, or the announcement of a
    /// block whose data is a plain note (its header is nearly all of it).
    Block(Block),
    /// Asks for items by id: those of `block` (a compact block being
    /// rebuilt), or waiting ones (after an `inv`).
    GetItems {
        block: Option<BlockHash>,
        ids: Vec<ItemId>,
    },
    /// Items' texts, answering a `getitems` (the ones the sender has).
    Items {
        block: Option<BlockHash>,
        items: Vec<String>,
    },
    /// New blocks and data items, by hash.
    Inv {
        blocks: Vec<BlockHash>,
        items: Vec<ItemId>,
    },
    /// Asks for the headers after the first block of `locator` (our chain's
    /// hashes from the tip back, 1, 2, 4, … blocks apart, down to the
    /// genesis block) on the receiver's chain.
    GetHeaders {
        locator: Vec<BlockHash>,
    },
    /// Headers of consecutive blocks, answering a `getheaders` (none: the
    /// sender has nothing after the locator's block).
    Headers {
        headers: Vec<Header>,
    },
    /// Asks for addresses of other nodes.
    GetAddr,
    /// Addresses of nodes the sender heard from lately, answering a
    /// `getaddr` (what `GET /peers/addr` answers).
    Addr {
        addresses: Vec<String>,
    },
}

/// A block's header as `headers` carries it: the block's fields with an
/// empty `data`, and its size. A header in this format cannot be checked
/// without its data (the hash covers it), so a catch-up checks each body
/// against the header it was promised.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Header {
    pub header: Block,
    pub size: usize,
}

impl Header {
    /// The header of `block`.
    pub fn of(block: &Block) -> Header {
        let mut header = block.clone();
        header.data = String::new();
        Header {
            header,
            size: block.json_len(),
        }
    }

    /// The header's block index and hash.
    pub fn index(&self) -> u64 {
        self.header.index
    }

    pub fn hash(&self) -> BlockHash {
        self.header.hash
    }

    /// Whether `block` is what the header promised: its fields and its
    /// size; the first that differs, in words, when not.
    pub fn promised(&self, block: &Block) -> Result<(), String> {
        let (h, b) = (&self.header, block);
        let differs = |field: &str, promised: String, got: String| {
            Err(format!(
                "its header of block {} promised {field} {promised}, its body has {got}",
                h.index
            ))
        };
        if h.hash != b.hash {
            return differs("hash", h.hash.to_string(), b.hash.to_string());
        }
        if h.index != b.index {
            return differs("index", h.index.to_string(), b.index.to_string());
        }
        if h.prev_hash != b.prev_hash {
            return differs(
                "prev_hash",
                h.prev_hash.to_string(),
                b.prev_hash.to_string(),
            );
        }
        if h.timestamp != b.timestamp {
            return differs(
                "timestamp",
                h.timestamp.to_string(),
                b.timestamp.to_string(),
            );
        }
        if h.nonce != b.nonce {
            return differs("nonce", h.nonce.to_string(), b.nonce.to_string());
        }
        if self.size != b.json_len() {
            return differs("size", self.size.to_string(), b.json_len().to_string());
        }
        Ok(())
    }
}

/// What a node says of itself when a link opens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// The URL it is reached at (the one it names in `X-Jbc-Peer`).
    #[serde(default)]
    pub url: Option<String>,
    pub status: Box<Status>,
}

/// A block as BIP 152 sends it: its header (the block's fields with an
/// empty `data`), the ids of the items its data carries, in order, and its
/// size (its JSON's length, as the block size limit counts it).
#[derive(Debug, Clone, PartialEq)]
pub struct CompactBlock {
    pub header: Block,
    pub items: Vec<ItemId>,
    pub size: usize,
}

impl CompactBlock {
    /// The compact form of `block`: None when its data is not a list of
    /// items written as this software writes one (then the block goes
    /// whole).
    pub fn of(block: &Block) -> Option<CompactBlock> {
        let texts = crate::item::items_in(&block.data)?;
        if crate::item::data_for(&texts) != block.data {
            return None;
        }
        let mut header = block.clone();
        header.data = String::new();
        Some(CompactBlock {
            header,
            items: texts.iter().map(|text| ItemId::of(text)).collect(),
            size: block.json_len(),
        })
    }

    /// The block the header promised, rebuilt from its items' texts (in
    /// order); an error when they do not make it.
    pub fn rebuild(&self, texts: &[impl AsRef<str>]) -> Result<Block, Mismatch> {
        let mut block = self.header.clone();
        block.data = crate::item::data_for(texts);
        if block.json_len() != self.size {
            return Err(Mismatch::Size {
                announced: self.size,
                rebuilt: block.json_len(),
            });
        }
        if block.compute_hash() != block.hash {
            return Err(Mismatch::Hash);
        }
        Ok(block)
    }
}

/// Why a compact block's items did not make the block it announced: the
/// sender's fault, since an item's id is the hash of its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("its items make a block of {rebuilt} bytes, not the {announced} it announced")]
    Size { announced: usize, rebuilt: usize },
    #[error("its items do not make a block of the hash it announced")]
    Hash,
}

/// Why a frame was not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("not a JSON object with a \"type\": {0}")]
    Garbled(String),
    #[error("unknown message type \"{0}\"")]
    UnknownType(String),
    #[error("a \"{kind}\" message of the wrong shape: {reason}")]
    Shape { kind: &'static str, reason: String },
    #[error("a \"{kind}\" message with {count} entries (at most {most})")]
    TooMany {
        kind: &'static str,
        count: usize,
        most: usize,
    },
}

impl WireError {
    /// Whether no honest node of this software sends it: a newer one may
    /// send types this one does not know, and is only closed on.
    pub fn is_garbled(&self) -> bool {
        !matches!(self, WireError::UnknownType(_))
    }
}

#[derive(Serialize, Deserialize)]
struct Nonce {
    nonce: u64,
}

#[derive(Serialize, Deserialize)]
struct Hashes {
    blocks: Vec<BlockHash>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    whole: bool,
}

#[derive(Serialize, Deserialize)]
struct Addresses {
    addresses: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Empty {}

#[derive(Serialize, Deserialize)]
struct Locator {
    locator: Vec<BlockHash>,
}

#[derive(Serialize)]
struct HeadersOut<'a> {
    headers: &'a [Header],
}

#[derive(Deserialize)]
struct HeadersIn<'a> {
    #[serde(borrow)]
    headers: Vec<HeaderIn<'a>>,
}

#[derive(Deserialize)]
struct HeaderIn<'a> {
    #[serde(borrow)]
    header: &'a RawValue,
    size: usize,
}

#[derive(Serialize, Deserialize)]
struct Ids {
    #[serde(default)]
    block: Option<BlockHash>,
    ids: Vec<ItemId>,
}

#[derive(Serialize, Deserialize)]
struct Texts {
    #[serde(default)]
    block: Option<BlockHash>,
    items: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Inventory {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    blocks: Vec<BlockHash>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    items: Vec<ItemId>,
}

#[derive(Serialize)]
struct CompactOut<'a> {
    header: &'a Block,
    items: &'a [ItemId],
    size: usize,
}

#[derive(Deserialize)]
struct CompactIn<'a> {
    #[serde(borrow)]
    header: &'a RawValue,
    items: Vec<ItemId>,
    size: usize,
}

#[derive(Deserialize)]
struct BlockIn<'a> {
    #[serde(borrow)]
    block: &'a RawValue,
}

#[derive(Deserialize)]
struct Tagged<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
}

impl Message {
    /// The message's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello(_) => "hello",
            Message::Ping { .. } => "ping",
            Message::Pong { .. } => "pong",
            Message::CompactBlock(_) => "cmpctblock",
            Message::GetData { .. } => "getdata",
            Message::Block(_) => "block",
            Message::GetItems { .. } => "getitems",
            Message::Items { .. } => "items",
            Message::Inv { .. } => "inv",
            Message::GetHeaders { .. } => "getheaders",
            Message::Headers { .. } => "headers",
            Message::GetAddr => "getaddr",
            Message::Addr { .. } => "addr",
        }
    }

    /// The block the message is about, when it is about one.
    pub fn block(&self) -> Option<(BlockHash, Option<u64>)> {
        match self {
            Message::CompactBlock(compact) => {
                Some((compact.header.hash, Some(compact.header.index)))
            }
            Message::Block(block) => Some((block.hash, Some(block.index))),
            Message::GetData { blocks, .. } | Message::Inv { blocks, .. } if blocks.len() == 1 => {
                Some((blocks[0], None))
            }
            Message::GetItems {
                block: Some(hash), ..
            }
            | Message::Items {
                block: Some(hash), ..
            } => Some((*hash, None)),
            _ => None,
        }
    }

    /// The message as the text of one frame.
    pub fn encode(&self) -> String {
        /// `{"type":KIND,` and the fields of `body`.
        fn tagged(kind: &str, body: &impl Serialize) -> String {
            let body = serde_json::to_string(body).expect("messages serialise");
            let rest = body.strip_prefix('{').unwrap_or(&body);
            if rest == "}" {
                format!(r#"{{"type":"{kind}"}}"#)
            } else {
                format!(r#"{{"type":"{kind}",{rest}"#)
            }
        }
        let kind = self.kind();
        match self {
            Message::Hello(hello) => tagged(kind, hello),
            Message::Ping { nonce } | Message::Pong { nonce } => {
                tagged(kind, &Nonce { nonce: *nonce })
            }
            Message::CompactBlock(compact) => tagged(
                kind,
                &CompactOut {
                    header: &compact.header,
                    items: &compact.items,
                    size: compact.size,
                },
            ),
            Message::GetData { blocks, whole } => tagged(
                kind,
                &Hashes {
                    blocks: blocks.clone(),
                    whole: *whole,
                },
            ),
            Message::GetHeaders { locator } => tagged(
                kind,
                &Locator {
                    locator: locator.clone(),
                },
            ),
            Message::Headers { headers } => tagged(kind, &HeadersOut { headers }),
            Message::GetAddr => tagged(kind, &Empty {}),
            Message::Addr { addresses } => tagged(
                kind,
                &Addresses {
                    addresses: addresses.clone(),
                },
            ),
            Message::Block(block) => {
                let block = serde_json::to_string(block).expect("a block serialises");
                format!(r#"{{"type":"{kind}","block":{block}}}"#)
            }
            Message::GetItems { block, ids } => tagged(
                kind,
                &Ids {
                    block: *block,
                    ids: ids.clone(),
                },
            ),
            Message::Items { block, items } => tagged(
                kind,
                &Texts {
                    block: *block,
                    items: items.clone(),
                },
            ),
            Message::Inv { blocks, items } => tagged(
                kind,
                &Inventory {
                    blocks: blocks.clone(),
                    items: items.clone(),
                },
            ),
        }
    }

    /// Parses one frame's text.
    pub fn decode(text: &str) -> Result<Message, WireError> {
        let Tagged { kind } =
            serde_json::from_str(text).map_err(|e| WireError::Garbled(e.to_string()))?;
        /// The body of a message of type `kind`.
        fn body<'a, T: Deserialize<'a>>(kind: &'static str, text: &'a str) -> Result<T, WireError> {
            serde_json::from_str(text).map_err(|e| WireError::Shape {
                kind,
                reason: e.to_string(),
            })
        }
        /// At most `most` entries.
        fn bounded<T>(kind: &'static str, list: Vec<T>, most: usize) -> Result<Vec<T>, WireError> {
            match list.len() {
                count if count > most => Err(WireError::TooMany { kind, count, most }),
                _ => Ok(list),
            }
        }
        fn block_of(kind: &'static str, raw: &RawValue) -> Result<Block, WireError> {
            Block::from_json(raw.get().as_bytes()).map_err(|e| WireError::Shape {
                kind,
                reason: e.to_string(),
            })
        }
        Ok(match kind.as_ref() {
            "hello" => Message::Hello(body("hello", text)?),
            "ping" => Message::Ping {
                nonce: body::<Nonce>("ping", text)?.nonce,
            },
            "pong" => Message::Pong {
                nonce: body::<Nonce>("pong", text)?.nonce,
            },
            "cmpctblock" => {
                let kind = "cmpctblock";
                let CompactIn {
                    header,
                    items,
                    size,
                } = body(kind, text)?;
                let header = block_of(kind, header)?;
                if !header.data.is_empty() {
                    return Err(WireError::Shape {
                        kind,
                        reason: "a header's data is empty".into(),
                    });
                }
                Message::CompactBlock(CompactBlock {
                    header,
                    items,
                    size,
                })
            }
            "getdata" => {
                let Hashes { blocks, whole } = body("getdata", text)?;
                Message::GetData {
                    blocks: bounded("getdata", blocks, MAX_BLOCKS_ASKED)?,
                    whole,
                }
            }
            "getheaders" => Message::GetHeaders {
                locator: bounded(
                    "getheaders",
                    body::<Locator>("getheaders", text)?.locator,
                    MAX_LOCATOR,
                )?,
            },
            "getaddr" => {
                body::<Empty>("getaddr", text)?;
                Message::GetAddr
            }
            "addr" => Message::Addr {
                addresses: bounded("addr", body::<Addresses>("addr", text)?.addresses, MAX_ADDR)?,
            },
            "headers" => {
                let kind = "headers";
                let HeadersIn { headers } = body(kind, text)?;
                let headers = bounded(kind, headers, MAX_HEADERS)?;
                let mut read = Vec::with_capacity(headers.len());
                for HeaderIn { header, size } in headers {
                    let header = block_of(kind, header)?;
                    if !header.data.is_empty() {
                        return Err(WireError::Shape {
                            kind,
                            reason: "a header's data is empty".into(),
                        });
                    }
                    read.push(Header { header, size });
                }
                Message::Headers { headers: read }
            }
            "block" => Message::Block(block_of("block", body::<BlockIn>("block", text)?.block)?),
            "getitems" => {
                let Ids { block, ids } = body("getitems", text)?;
                Message::GetItems {
                    block,
                    ids: bounded("getitems", ids, MAX_IDS)?,
                }
            }
            "items" => {
                let Texts { block, items } = body("items", text)?;
                Message::Items { block, items }
            }
            "inv" => {
                let Inventory { blocks, items } = body("inv", text)?;
                Message::Inv {
                    blocks: bounded("inv", blocks, MAX_BLOCKS_ASKED)?,
                    items: bounded("inv", items, MAX_IDS)?,
                }
            }
            other => return Err(WireError::UnknownType(other.chars().take(64).collect())),
        })
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())?;
        if let Some((hash, index)) = self.block() {
            match index {
                Some(index) => write!(f, " {index} {}", short(&hash))?,
                None => write!(f, " {}", short(&hash))?,
            }
        }
        Ok(())
    }
}

/// The first digits of a hash, as the log shows it.
fn short(hash: &BlockHash) -> String {
    hash.to_string().chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_with(data: &str) -> Block {
        Block::new(3, 1_700_000_000, BlockHash([7; 32]), data.to_string(), 42)
    }

    #[test]
    fn every_message_reads_back_as_it_was_written() {
        let items = vec!["pay bob 5".to_string(), "hello \"you\"".to_string()];
        let block = block_with(&crate::item::data_for(&items));
        let messages = vec![
            Message::Ping { nonce: 7 },
            Message::Pong { nonce: u64::MAX },
            Message::CompactBlock(CompactBlock::of(&block).expect("items")),
            Message::GetData {
                blocks: vec![block.hash],
                whole: false,
            },
            Message::GetData {
                blocks: vec![block.hash, block.hash],
                whole: true,
            },
            Message::GetHeaders {
                locator: vec![block.hash, BlockHash([0; 32])],
            },
            Message::Headers {
                headers: vec![Header::of(&block), Header::of(&block_with("x"))],
            },
            Message::Headers { headers: vec![] },
            Message::GetAddr,
            Message::Addr {
                addresses: vec!["http://127.0.0.1:5002".into()],
            },
            Message::Block(block.clone()),
            Message::GetItems {
                block: Some(block.hash),
                ids: vec![ItemId::of("a")],
            },
            Message::Items {
                block: None,
                items: items.clone(),
            },
            Message::Inv {
                blocks: vec![],
                items: vec![ItemId::of("a"), ItemId::of("b")],
            },
            Message::Inv {
                blocks: vec![block.hash],
                items: vec![],
            },
        ];
        for message in messages {
            let text = message.encode();
            assert!(
                text.starts_with(&format!(r#"{{"type":"{}""#, message.kind())),
                "{text}"
            );
            assert_eq!(Message::decode(&text), Ok(message), "{text}");
        }
    }

    #[test]
    fn a_compact_block_rebuilds_only_from_its_own_items() {
        let items = ["one", "two"];
        let block = block_with(&crate::item::data_for(&items));
        let compact = CompactBlock::of(&block).expect("items");
        assert_eq!(compact.items, vec![ItemId::of("one"), ItemId::of("two")]);
        assert_eq!(compact.rebuild(&items), Ok(block.clone()));
        assert_eq!(compact.rebuild(&["two", "one"]), Err(Mismatch::Hash));
        assert!(matches!(
            compact.rebuild(&["one"]),
            Err(Mismatch::Size { .. })
        ));
        // A plain note, or a list written otherwise, goes whole.
        assert_eq!(
            CompactBlock::of(&block_with("Mined by node on port 5001")),
            None
        );
        assert_eq!(CompactBlock::of(&block_with(r#"["one", "two"]"#)), None);
    }

    #[test]
    fn a_body_is_checked_against_every_field_its_header_promised() {
        let block = block_with(&crate::item::data_for(&["one"]));
        let header = Header::of(&block);
        assert_eq!(header.promised(&block), Ok(()));
        let mut lying = header.clone();
        lying.header.timestamp += 1;
        let said = lying.promised(&block).unwrap_err();
        assert!(said.contains("promised timestamp 1700000001"), "{said}");
        let mut lying = header.clone();
        lying.size += 1;
        assert!(lying.promised(&block).unwrap_err().contains("size"));
        let other = block_with("another");
        assert!(header.promised(&other).unwrap_err().contains("hash"));
    }

    #[test]
    fn frames_that_are_not_messages_say_why() {
        let garbled = Message::decode("not json").unwrap_err();
        assert!(garbled.is_garbled());
        let unknown = Message::decode(r#"{"type":"sendcmpct"}"#).unwrap_err();
        assert_eq!(unknown, WireError::UnknownType("sendcmpct".into()));
        assert!(!unknown.is_garbled());
        assert!(matches!(
            Message::decode(r#"{"type":"ping"}"#),
            Err(WireError::Shape { kind: "ping", .. })
        ));
        let ids: Vec<String> = (0..=MAX_IDS)
            .map(|i| ItemId::of(&i.to_string()).to_string())
            .collect();
        let inv = format!(
            r#"{{"type":"inv","items":{}}}"#,
            serde_json::to_string(&ids).unwrap()
        );
        assert!(matches!(
            Message::decode(&inv),
            Err(WireError::TooMany { kind: "inv", .. })
        ));
        let with_data = r#"{"type":"cmpctblock","header":{"index":"1","prev_hash":"","data":"x","timestamp":"1","nonce":"1","hash":"00"},"items":[],"size":1}"#;
        assert!(Message::decode(with_data).is_err());
    }
}
