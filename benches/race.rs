//! The long case of honest nodes racing: three nodes on 127.0.0.1, peers of
//! each other, each mining at difficulty 4 (a block every few milliseconds
//! on one thread, so every sync races the syncing node's own miner), with
//! items posted to them in turn, for `JBC_BENCH_SECONDS` (180). Every 10 s
//! it prints the heights, how deep the three chains' common prefix lies
//! below the lowest tip, and the peers' judgements; at the end:
//! - offences judged and peers discouraged or banned (0 is right: a block
//!   race is no misbehaviour);
//! - switches of branch and blocks orphaned;
//! - after a restart without mining: whether the three hold one chain, and
//!   how many items taken are neither in it (once) nor waiting.
//!
//! Run with `cargo bench --bench race`. CI runs a 20-second version in
//! `tests/it/network.rs`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Jbc, free_port, get};
use jbc::item::{ItemId, items_in};
use serde_json::Value;

const DIFFICULTY: &str = "4";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn json(url: String) -> Value {
    serde_json::from_slice(&get(&url).await.expect("the node answers")).expect("JSON")
}

/// The figures of a node's `/metrics` this benchmark reads.
async fn figures(node: &Jbc) -> HashMap<String, f64> {
    let text = String::from_utf8(get(&format!("{}/metrics", node.url)).await.unwrap()).unwrap();
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The index below which the three chains agree, found by bisection.
async fn common_prefix(nodes: &[Jbc], lowest: u64) -> u64 {
    let same = |index: u64| async move {
        let mut hashes = Vec::new();
        for node in nodes {
            hashes.push(json(format!("{}/blocks/{index}", node.url)).await["hash"].clone());
        }
        hashes.windows(2).all(|w| w[0] == w[1])
    };
    let (mut low, mut high) = (0, lowest);
    while low < high {
        let middle = (low + high).div_ceil(2);
        if same(middle).await {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    low
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds = env_number("JBC_BENCH_SECONDS", 180);
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let peers: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let peers = peers.join(",");
    let start = |port: u16, mine: bool| {
        let port_text = port.to_string();
        let mut args = vec![
            "--port",
            &port_text,
            "--peers",
            &peers,
            "--difficulty",
            DIFFICULTY,
            "--sync-interval",
            "1",
        ];
        if mine {
            args.extend(["--mine", "--threads", "1"]);
        }
        Jbc::start(&dir.path().join(&port_text), &args)
    };
    let nodes: Vec<Jbc> = ports.iter().map(|&p| start(p, true)).collect();
    println!(
        "race: 3 nodes mining at difficulty {DIFFICULTY} for {seconds} s, items posted 20 a second"
    );

    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut taken = Vec::new();
    let mut next_report = Duration::from_secs(10);
    let mut widest = 0;
    while started.elapsed() < Duration::from_secs(seconds) {
        let n = taken.len();
        let text = format!("race item {n}");
        let answer = client
            .post(format!("{}/data", nodes[n % 3].url))
            .header("content-type", "application/json")
            .body(serde_json::json!({ "data": text }).to_string())
            .send()
            .await
            .unwrap();
        if answer.status().is_success() {
            taken.push(ItemId::of(&text));
        }
        if started.elapsed() >= next_report {
            next_report += Duration::from_secs(10);
            let mut heights = Vec::new();
            for node in &nodes {
                heights.push(
                    json(format!("{}/status", node.url)).await["height"]
                        .as_u64()
                        .unwrap(),
                );
            }
            let lowest = *heights.iter().min().unwrap();
            let depth = lowest - common_prefix(&nodes, lowest).await;
            widest = widest.max(depth);
            let mut judged = 0.0;
            for node in &nodes {
                judged += figures(node).await["jbc_misbehaviour_total"];
            }
            println!(
                "{:>4} s  heights {heights:?}  common prefix {depth} below the lowest tip  offences judged {judged}",
                started.elapsed().as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (mut judged, mut discouraged, mut banned, mut reorgs, mut orphaned) =
        (0.0, 0.0, 0, 0.0, 0.0);
    for node in &nodes {
        let figures = figures(node).await;
        judged += figures["jbc_misbehaviour_total"];
        discouraged += figures["jbc_discouraged_total"];
        reorgs += figures["jbc_reorgs_total"];
        orphaned += figures["jbc_orphaned_blocks_total"];
        let views = json(format!("{}/peers", node.url)).await;
        banned += (views.as_array().unwrap().iter())
            .filter(|view| view["state"] == "banned")
            .count();
    }
    let height = json(format!("{}/status", nodes[0].url)).await["height"]
        .as_u64()
        .unwrap();
    println!(
        "after {seconds} s: height {height}, {} items taken",
        taken.len()
    );
    println!("offences judged {judged}, peers discouraged {discouraged}, banned {banned}");
    println!("switches of branch {reorgs}, blocks orphaned {orphaned} (all three nodes)");
    println!("deepest the common prefix lay below the lowest tip: {widest} blocks");

    for node in nodes {
        node.terminate();
    }
    let nodes: Vec<Jbc> = ports.iter().map(|&p| start(p, false)).collect();
    let settled = Instant::now();
    let chain = loop {
        let mut chains = Vec::new();
        for node in &nodes {
            chains.push(node.chain().await);
        }
        if chains.windows(2).all(|w| w[0] == w[1]) {
            break Some(chains.pop().unwrap());
        }
        if settled.elapsed() > Duration::from_secs(120) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let Some(chain) = chain else {
        println!("restarted without mining: the three did NOT agree within 120 s");
        std::process::exit(1);
    };
    println!(
        "restarted without mining: one chain of {} blocks on all three after {:.1} s",
        chain.len(),
        settled.elapsed().as_secs_f64()
    );
    let mut in_chain: HashMap<ItemId, usize> = HashMap::new();
    for block in &chain {
        for text in items_in(&block.data).unwrap_or_default() {
            *in_chain.entry(ItemId::of(&text)).or_default() += 1;
        }
    }
    let twice = in_chain.values().filter(|&&count| count > 1).count();
    let mut lost = 0;
    for id in taken.iter().filter(|id| !in_chain.contains_key(id)) {
        let mut waits = false;
        for node in &nodes {
            waits |= json(format!("{}/data/{id}", node.url)).await["status"] == "pending";
        }
        lost += usize::from(!waits);
    }
    println!(
        "items: {} in the chain, {twice} of them twice, {lost} of {} lost",
        in_chain.len(),
        taken.len()
    );
    for node in nodes {
        node.terminate();
    }
}
