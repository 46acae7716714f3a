//! What the benchmarks that start real `jbc` processes share: the binary,
//! a node that is killed when dropped, and a free port.

#![allow(dead_code)]

use std::process::Child;

/// The `jbc` binary this build made.
pub const JBC: &str = env!("CARGO_BIN_EXE_jbc");

/// A `jbc` process and its base URL; killed (and reaped) when dropped, so
/// a benchmark that panics leaves no node behind.
pub struct Node {
    pub child: Child,
    pub url: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port on 127.0.0.1 free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
