//! What the benchmarks that start real `jbc` processes share: the binary,
//! a node that is killed when dropped, and a free port.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The `jbc` binary this build made.
pub const JBC: &str = env!("CARGO_BIN_EXE_jbc");

/// A `jbc` process and its base URL; killed (and reaped) when dropped, so
/// a benchmark that panics leaves no node behind.
pub struct Node {
    pub child: Child,
    pub url: String,
}

impl Node {
    /// Starts `jbc ARGS --port PORT` in `dir` (made if missing), logging
    /// warnings only, its log read and dropped so it never blocks on a
    /// full pipe.
    pub fn start_quiet(dir: &Path, port: u16, args: &[&str]) -> Node {
        std::fs::create_dir_all(dir).unwrap();
        let mut child = Command::new(JBC)
            .args(["--port", &port.to_string()])
            .args(args)
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || for _ in BufReader::new(stderr).lines() {});
        Node {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
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
