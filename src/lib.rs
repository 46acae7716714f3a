//! jbc: a node of the JackBlockChain, the blockchain of the blog series
//! *How to Build Your Own Blockchain*.
//!
//! A node keeps a chain of proof-of-work blocks in its own `chaindata/`
//! folder, adopts the longest valid chain its peers serve, mines new blocks
//! in the background and serves its chain over HTTP. Block files and peers
//! of the original Python node interoperate with it.
//!
//! # Layout
//!
//! - [`block`]: the block format, its hash and proof of work.
//! - [`chain`]: validating a chain and choosing between chains.
//! - [`store`]: the chaindata folder; crash-safe writes, nothing deleted.
//! - [`config`]: settings from the config file and flags.
//! - [`peers`]: the peer list, its limits and its file.
//! - [`sync`]: the HTTP client side: catching up with peers, announcing blocks.
//! - [`miner`]: proof of work on OS threads, with a SHA-256 midstate.
//! - [`api`]: the HTTP router, handlers and their one error type.
//! - [`node`]: the chain in memory, and wiring, tasks and shutdown.

pub mod api;
pub mod block;
pub mod chain;
pub mod config;
pub mod miner;
pub mod node;
pub mod peers;
pub mod store;
pub mod sync;
