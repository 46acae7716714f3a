//! jbc: a node of the JackBlockChain, the blockchain of the blog series
//! *How to Build Your Own Blockchain*.
//!
//! A node keeps a chain of proof-of-work blocks in its own `chaindata/`
//! folder, adopts the valid chain with the most work its peers serve, mines
//! new blocks in the background and serves its chain over HTTP. Block files
//! and peers of the original Python node interoperate with it.
//!
//! # Layout
//!
//! - [`block`]: the block format, its hash and proof of work.
//! - [`pow`]: targets, retargets and work: the numbers of proof of work.
//! - [`item`]: data items carried in blocks: ids, encoding, room taken.
//! - [`chain`]: validating a chain, its targets and work, and the one rule
//!   for choosing between chains.
//! - [`store`]: the chaindata folder; crash-safe writes, nothing deleted.
//! - [`state`]: the chain in memory and the one path by which it changes.
//! - [`pool`]: data items waiting for a block.
//! - [`config`]: settings from the config file and flags.
//! - [`protocol`]: what nodes say to each other: endpoints, headers, shapes.
//! - [`peers`]: peer URLs, the peer list, its limits and its file.
//! - [`client`]: the HTTP client side: asking peers, announcing to them.
//! - [`sync`]: catching up with one peer.
//! - [`handshake`]: what a URL must answer to become a peer.
//! - [`gossip`]: who gets in, and each peer's task: syncing, announcing.
//! - [`miner`]: proof of work on OS threads, with a SHA-256 midstate.
//! - [`api`]: the HTTP router, handlers and their one error type.
//! - [`stats`]: counters the node reports about itself.
//! - [`events`]: what happens on the node, as a stream (`GET /events`).
//! - [`metrics`]: the node's figures for Prometheus (`GET /metrics`).
//! - [`human`]: figures in words for the log.
//! - [`init`]: `jbc init`, a new network with its own genesis block.
//! - [`node`]: the daemon: wiring, tasks and shutdown.
//!
//! Dependencies point down this list's layers: `node` wires everything;
//! `api` and `gossip` use `state`, `sync` and `client`; `state` uses
//! `store` and `chain`; nothing below imports anything above it.

pub mod api;
pub mod block;
pub mod chain;
pub mod client;
pub mod clock;
pub mod config;
pub mod events;
pub mod fsio;
pub mod gossip;
pub mod handshake;
pub mod human;
pub mod init;
pub mod item;
pub mod metrics;
pub mod miner;
pub mod node;
pub mod peers;
pub mod pool;
pub mod pow;
pub mod protocol;
pub mod state;
pub mod stats;
pub mod store;
pub mod sync;
