//! Signed data items, at speed:
//! - checking a block of 1 000 signed items (1 000 authors) on one core:
//!   one batch, against one signature at a time (target ≤ 30 ms);
//! - admission through `POST /data` on one node (not mining): 20 000
//!   signed items, signed beforehand, posted by 64 concurrent clients over
//!   kept-alive connections (target ≥ 5 000/s), and as many unsigned ones
//!   the same way for comparison.
//!
//! Run with `cargo bench --bench signed`.

mod common;

use common::{Node, free_port};

use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_consensus::SigningKey;
use jbc::block::BlockHash;
use jbc::item::{data_for, items_in};
use jbc::signed::{Authorship, Signed, check, check_all};

const BLOCK_ITEMS: usize = 1_000;
const POSTED: usize = 20_000;
const CLIENTS: usize = 64;

fn main() {
    block_check();
    admission();
}

fn signer(n: usize) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(n as u64).to_le_bytes());
    SigningKey::from(seed)
}

fn block_check() {
    let genesis = BlockHash([7; 32]);
    let items: Vec<String> = (0..BLOCK_ITEMS)
        .map(|n| Signed::sign(&signer(n), &genesis, &format!("pay bob {n}")).to_item())
        .collect();
    let data = data_for(&items);
    let mut batch = Vec::new();
    let mut alone = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        let verdicts = check_all(&items_in(&data).unwrap(), &genesis);
        batch.push(started.elapsed());
        assert!(
            verdicts
                .iter()
                .all(|v| matches!(v, Authorship::Verified(_)))
        );
        let started = Instant::now();
        for item in items_in(&data).unwrap() {
            assert!(matches!(check(&item, &genesis), Authorship::Verified(_)));
        }
        alone.push(started.elapsed());
    }
    batch.sort();
    alone.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "a block of {BLOCK_ITEMS} signed items ({} KB), one core: {:.1} ms in one batch \
         (median of 7; best {:.1}), {:.1} ms one by one; target ≤ 30 ms",
        data.len() / 1000,
        ms(batch[3]),
        ms(batch[0]),
        ms(alone[3]),
    );
}

fn admission() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let node = Node::start_quiet(
        tmp.path(),
        port,
        &[
            "--peers",
            "",
            "--difficulty",
            "4",
            "--pool-max-items",
            "100000",
        ],
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let status = loop {
            if let Ok(response) = client.get(format!("{}/status", node.url)).send().await {
                let body = response.bytes().await.unwrap();
                break serde_json::from_slice::<serde_json::Value>(&body).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let genesis: BlockHash = status["genesis"].as_str().unwrap().parse().unwrap();
        // Signed beforehand: a client's work, not the node's.
        let signed: Vec<String> = (0..POSTED)
            .map(|n| Signed::sign(&signer(n % 100), &genesis, &format!("signed {n}")).to_item())
            .collect();
        let plain: Vec<String> = (0..POSTED).map(|n| format!("plain item {n}")).collect();
        let signed_rate = post_all(&client, &node.url, signed).await;
        let plain_rate = post_all(&client, &node.url, plain).await;
        println!(
            "admission through POST /data, one node, {CLIENTS} clients: signed {signed_rate:.0} \
             items/s (target ≥ 5 000/s), unsigned {plain_rate:.0} items/s"
        );
    });
}

/// Posts `items` from [`CLIENTS`] concurrent clients; the rate taken (each
/// must answer 202).
async fn post_all(client: &reqwest::Client, url: &str, items: Vec<String>) -> f64 {
    let count = items.len();
    let items = Arc::new(std::sync::Mutex::new(items));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, url, items) = (client.clone(), url.to_string(), items.clone());
            tokio::spawn(async move {
                loop {
                    let Some(item) = items.lock().unwrap().pop() else {
                        break;
                    };
                    let response = client
                        .post(format!("{url}/data"))
                        .header("content-type", "application/json")
                        .body(serde_json::json!({ "data": item }).to_string())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status().as_u16(), 202, "{item}");
                    let _ = response.bytes().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    count as f64 / started.elapsed().as_secs_f64()
}
