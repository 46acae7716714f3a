//! How well an adaptive network keeps its block time: two nodes (one
//! mining thread each) on a network with `T` = 1 s and `W` = 20, started
//! far too easy (difficulty 3), mine for several minutes. Prints the mean
//! block time of every window, and how close the mean of the last 100
//! blocks comes to `T` (the goal: within ±30 %).
//!
//! Run with `cargo bench --bench adaptive`; `JBC_BENCH_MINUTES` (default
//! 8), `JBC_BENCH_SECONDS` (`T`, default 1) and `JBC_BENCH_WINDOW` (`W`,
//! default 20) change the run.

mod common;

use common::{JBC, Node};

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jbc::block::{Block, blocks_from_json};

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn start(dir: &std::path::Path, args: &[String]) -> Node {
    std::fs::create_dir_all(dir).unwrap();
    let mut child = Command::new(JBC)
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(address) = line.split("listening on http://").nth(1) {
                let _ = sender.send(address.trim().to_string());
            }
        }
    });
    let address = receiver
        .recv_timeout(Duration::from_secs(60))
        .expect("the node listens");
    Node {
        child,
        url: format!("http://{address}"),
    }
}

fn chain(runtime: &tokio::runtime::Runtime, node: &Node) -> Vec<Block> {
    let body = runtime.block_on(async {
        reqwest::get(format!("{}/blockchain.json", node.url))
            .await
            .expect("the node answers")
            .bytes()
            .await
            .expect("the chain")
    });
    blocks_from_json(&body).expect("blocks")
}

fn main() {
    let minutes = setting("JBC_BENCH_MINUTES", 8);
    let seconds = setting("JBC_BENCH_SECONDS", 1);
    let window = setting("JBC_BENCH_WINDOW", 20) as usize;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let network = [
        "--difficulty".to_string(),
        "3".into(),
        "--target-block-seconds".into(),
        seconds.to_string(),
        "--retarget-window".into(),
        window.to_string(),
        "--mine".into(),
        "--threads".into(),
        "1".into(),
        "--port".into(),
        "0".into(),
    ];
    let first = start(
        &tmp.path().join("a"),
        &[&network[..], &["--peers".into(), String::new()]].concat(),
    );
    let second = start(
        &tmp.path().join("b"),
        &[&network[..], &["--peers".into(), first.url.clone()]].concat(),
    );
    eprintln!(
        "adaptive bench: T = {seconds} s, W = {window}, two miners (one thread each), {minutes} minutes"
    );
    let started = Instant::now();
    let run = Duration::from_secs(minutes * 60);
    while started.elapsed() < run {
        std::thread::sleep(Duration::from_secs(30));
        let blocks = chain(&runtime, &first);
        eprintln!(
            "  {:>4.0} s: height {}",
            started.elapsed().as_secs_f64(),
            blocks.len() - 1
        );
    }
    let blocks = chain(&runtime, &first);
    drop(second);
    let n = blocks.len();
    let time = |a: usize, b: usize| {
        (blocks[b].timestamp as f64 - blocks[a].timestamp as f64) / (b - a) as f64
    };
    // Windows after the first (which starts at the genesis block's date).
    let windows: Vec<String> = (1..(n - 1) / window)
        .map(|w| format!("{:.2}", time(w * window, (w + 1) * window - 1)))
        .collect();
    println!("mean block time per window (s): {}", windows.join(" "));
    println!(
        "blocks: {}, in {:.0} s",
        n - 1,
        started.elapsed().as_secs_f64()
    );
    for last in [100, 200, 300] {
        if n > last + window {
            let mean = time(n - 1 - last, n - 1);
            println!(
                "mean of the last {last} blocks: {mean:.3} s against {seconds} s ({:+.1} %)",
                (mean / seconds as f64 - 1.0) * 100.0
            );
        }
    }
}
