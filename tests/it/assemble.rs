//! A network that assembles itself: forty nodes on 127.0.0.1 (each a
//! network group of its own, by port), each knowing only one address,
//! learn of each other, keep their outbound target, and carry a block to
//! every node by announcements (the sync interval is far too long for
//! polling to do it); a new node joins from one address, and a node
//! restarted while the seed is gone rejoins from the addresses it kept.

use std::time::{Duration, Instant};

use crate::common::{Jbc, PATIENCE, free_port, get, mine_chain, wait_for};
use serde_json::Value;

const DIFFICULTY: &str = "3";
/// Nodes besides the seed.
const NODES: usize = 39;
const TARGET: usize = 3;
const TARGET_TEXT: &str = "3";

async fn status(url: &str) -> Option<Value> {
    let body = get(&format!("{url}/status")).await.ok()?;
    serde_json::from_slice(&body).ok()
}

/// Starts a node on `port` that knows only `seed`.
fn start(dir: &std::path::Path, port: u16, seed: &str) -> Jbc {
    Jbc::start(
        dir,
        &[
            "--port",
            &port.to_string(),
            "--difficulty",
            DIFFICULTY,
            "--peers",
            seed,
            "--outbound-peers",
            TARGET_TEXT,
            // Far longer than the test: a block reaches a node by
            // announcement or not at all.
            "--sync-interval",
            "600",
        ],
    )
}

/// Waits until every node has chosen its outbound target.
async fn all_joined(nodes: &[&Jbc]) -> Duration {
    let started = Instant::now();
    for node in nodes {
        wait_for(
            &format!("{} to choose {TARGET} outbound peers", node.url),
            PATIENCE,
            || async {
                let status = status(&node.url).await?;
                (status["connections"]["chosen"].as_u64()? >= TARGET as u64).then_some(())
            },
        )
        .await;
    }
    started.elapsed()
}

/// Waits until every node serves a chain of `height`; how long it took.
async fn all_at(nodes: &[&Jbc], height: u64) -> Duration {
    let started = Instant::now();
    for node in nodes {
        wait_for(
            &format!("{} to reach height {height}", node.url),
            PATIENCE,
            || async {
                let status = status(&node.url).await?;
                (status["height"].as_u64()? >= height).then_some(())
            },
        )
        .await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow (40 nodes, 7 s): scripts/test runs it, --quick does not"]
async fn nodes_told_one_address_assemble_a_network_that_carries_every_block() {
    let tmp = tempfile::tempdir().unwrap();
    let seed = Jbc::builder()
        .flag("difficulty", DIFFICULTY)
        .peers(&[""])
        .flag("outbound-peers", TARGET_TEXT)
        .sync_interval(600.0)
        .start(&tmp.path().join("seed"));
    let mut nodes: Vec<Jbc> = (0..NODES)
        .map(|n| start(&tmp.path().join(format!("node{n}")), free_port(), &seed.url))
        .collect();
    let everyone = |nodes: &[Jbc]| -> Vec<String> {
        std::iter::once(seed.url.clone())
            .chain(nodes.iter().map(|n| n.url.clone()))
            .collect()
    };

    // Every node, the seed included, chooses its target from addresses it
    // learned, and knows more nodes than the one it was told.
    let all: Vec<&Jbc> = std::iter::once(&seed).chain(&nodes).collect();
    let joined = all_joined(&all).await;
    eprintln!("{} nodes joined in {joined:?}", all.len());
    for node in &nodes {
        let status = status(&node.url).await.unwrap();
        let known = status["connections"]["addresses_tried"].as_u64().unwrap()
            + status["connections"]["addresses_new"].as_u64().unwrap();
        assert!(known > TARGET as u64, "{}: {status}", node.url);
        node.wait_for_log("joined the network");
    }
    let metrics =
        String::from_utf8(get(&format!("{}/metrics", nodes[0].url)).await.unwrap()).unwrap();
    assert!(
        metrics.contains(&format!("jbc_connections{{direction=\"chosen\"}} {TARGET}")),
        "{metrics}"
    );
    assert!(
        metrics.contains("jbc_addresses{table=\"tried\"}"),
        "{metrics}"
    );
    let answer: Value =
        serde_json::from_slice(&get(&format!("{}/peers/addr", seed.url)).await.unwrap()).unwrap();
    let addresses = answer["addresses"].as_array().unwrap();
    assert!(
        addresses.len() >= TARGET && addresses.len() <= 100,
        "{answer}"
    );
    let urls = everyone(&nodes);
    for address in addresses {
        assert!(
            urls.contains(&address.as_str().unwrap().to_string()),
            "only nodes of this network: {address}"
        );
    }

    // Blocks posted to one node each reach every node by announcement,
    // hop by hop.
    let blocks = mine_chain(8, 3, "travels");
    let client = reqwest::Client::new();
    let mut travel = Vec::new();
    for (n, block) in blocks.iter().enumerate().skip(1).take(5) {
        let to = &nodes[(n * 5) % NODES];
        let response = client
            .post(format!("{}/mined", to.url))
            .header("content-type", "application/json")
            .body(block.to_json_line())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        travel.push(all_at(&all, block.index).await);
    }
    eprintln!("a block reached all {} nodes in {travel:?}", all.len());

    // A new node joins from one address, not the seed's.
    let newcomer = start(&tmp.path().join("newcomer"), free_port(), &nodes[4].url);
    all_joined(&[&newcomer]).await;
    assert_eq!(status(&newcomer.url).await.unwrap()["height"], 5);

    // The seed goes; a node restarted on its port, told only a dead
    // address, rejoins from the peers and addresses it kept, and hears the
    // next block.
    let restarted_port = nodes[0].port;
    let restarted_dir = tmp.path().join("node0");
    assert!(nodes.remove(0).terminate().success());
    assert!(seed.terminate().success());
    let restarted = start(
        &restarted_dir,
        restarted_port,
        &format!("http://127.0.0.1:{}", free_port()),
    );
    all_joined(&[&restarted]).await;
    let response = client
        .post(format!("{}/mined", nodes[3].url))
        .header("content-type", "application/json")
        .body(blocks[6].to_json_line())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let rest: Vec<&Jbc> = nodes.iter().chain([&newcomer, &restarted]).collect();
    all_at(&rest, 6).await;

    for node in nodes.into_iter().chain([newcomer, restarted]) {
        assert!(node.terminate().success());
    }
}
