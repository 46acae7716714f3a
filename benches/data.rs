//! Data into blocks, at speed: three nodes at difficulty 5, all mining
//! (one thread each), get 10 000 items posted round-robin over 10 s.
//! Prints the time until every item is in every node's chain, and the
//! latency of `POST /data` while the nodes mine (median, p99, max).
//!
//! Run with `cargo bench --bench data`.

mod common;

use common::{Node, free_port};

use std::collections::HashSet;
use std::time::{Duration, Instant};

use jbc::block::blocks_from_json;
use jbc::item::items_in;

const ITEMS: usize = 10_000;
const OVER: Duration = Duration::from_secs(10);

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let peers: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let nodes: Vec<Node> = ports
        .iter()
        .map(|&port| {
            let peers = peers.join(",");
            Node::start_quiet(
                &tmp.path().join(port.to_string()),
                port,
                &[
                    "--peers",
                    &peers,
                    "--difficulty",
                    "5",
                    "--mine",
                    "--threads",
                    "1",
                    "--sync-interval",
                    "1",
                ],
            )
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        for node in &nodes {
            while client.get(format!("{}/status", node.url)).send().await.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // Let the miners get going.
        tokio::time::sleep(Duration::from_secs(1)).await;

        let started = Instant::now();
        let mut latencies = Vec::with_capacity(ITEMS);
        let mut refused = 0;
        for n in 0..ITEMS {
            let due = started + OVER.mul_f64(n as f64 / ITEMS as f64);
            tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
            let sent = Instant::now();
            let response = client
                .post(format!("{}/data", nodes[n % 3].url))
                .header("content-type", "application/json")
                .body(format!(r#"{{"data": "bench item {n}"}}"#))
                .send()
                .await
                .unwrap();
            latencies.push(sent.elapsed());
            if response.status().as_u16() != 202 {
                refused += 1;
            }
            let _ = response.bytes().await;
        }
        let posted = started.elapsed();
        let everywhere = loop {
            let mut done = true;
            for node in &nodes {
                let body = client
                    .get(format!("{}/blockchain.json", node.url))
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                let carried: HashSet<String> = blocks_from_json(&body)
                    .unwrap()
                    .iter()
                    .flat_map(|b| items_in(&b.data).unwrap_or_default())
                    .collect();
                done &= (0..ITEMS).all(|n| carried.contains(&format!("bench item {n}")));
            }
            if done {
                break started.elapsed();
            }
            assert!(started.elapsed() < Duration::from_secs(300), "not every item got in");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        println!(
            "{ITEMS} items posted round-robin to 3 mining nodes (difficulty 5) in {:.1} s ({refused} refused)",
            posted.as_secs_f64()
        );
        println!(
            "every item in every node's chain {:.1} s after the first was posted",
            everywhere.as_secs_f64()
        );
        println!(
            "POST /data latency while mining: median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            at(0.5).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
            at(1.0).as_secs_f64() * 1e3
        );
    });
}
