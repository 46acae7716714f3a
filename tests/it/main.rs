//! The integration tests that run real `jbc` processes on 127.0.0.1, in
//! one binary (one link instead of twelve), a module per theme. The browser
//! tests (`tests/explorer.rs`, `tests/forks.rs`) and the network namespace
//! tests (`tests/netns.rs`) have harnesses of their own, apart.

#[path = "../common/mod.rs"]
mod common;

mod adaptive;
mod assemble;
mod cli;
mod data;
mod exposed;
mod first_hour;
mod fuzz;
mod hostile;
mod links;
mod network;
mod node;
mod observe;
mod peers;
mod signed;
