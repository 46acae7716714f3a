//! Data into blocks, with real processes: an item travels from any node
//! into the chain (pool, relay, mining, confirmations), survives restarts,
//! returns to the pool when its block leaves the chain, and bad input gets
//! clear answers.

use std::collections::HashMap;
use std::process::Command;

use crate::common::*;
use jbc::block::Block;
use jbc::item::{ItemId, data_for, items_in};
use serde_json::Value;

/// `POST {node}/data` with `text`: the status and the answer.
pub(crate) async fn post_item(client: &reqwest::Client, node: &Jbc, text: &str) -> (u16, Value) {
    let response = client
        .post(format!("{}/data", node.url))
        .header("content-type", "application/json")
        .body(serde_json::json!({ "data": text }).to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap(),
    )
}

/// `GET {node}/data/{id}`, parsed (`Null` for a 404).
async fn item_status(node: &Jbc, id: &ItemId) -> Value {
    let body = get(&format!("{}/data/{id}", node.url)).await.unwrap();
    let answer: Value = serde_json::from_slice(&body).unwrap();
    if answer["error"].is_string() {
        Value::Null
    } else {
        answer
    }
}

/// Starts nodes that all know each other, mining as `mining` says.
fn network_of(dir: &std::path::Path, mining: &[bool]) -> Vec<Jbc> {
    let ports: Vec<u16> = mining.iter().map(|_| free_port()).collect();
    let peers: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let peers = peers.join(",");
    ports
        .iter()
        .zip(mining)
        .map(|(port, &mine)| {
            let port = port.to_string();
            let mut args = vec![
                "--port",
                &port,
                "--peers",
                &peers,
                "--difficulty",
                "4",
                "--sync-interval",
                "0.5",
            ];
            if mine {
                args.extend(["--mine", "--threads", "1"]);
            }
            Jbc::start(&dir.join(&port), &args)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_posted_to_one_node_is_mined_by_another_and_confirmed_on_all() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = network_of(tmp.path(), &[false, true, false]);
    let client = reqwest::Client::new();
    let (code, answer) = post_item(&client, &nodes[0], "pay bob 5").await;
    assert_eq!(code, 202, "{answer}");
    let id = ItemId::of("pay bob 5");
    assert_eq!(answer["id"], id.to_string());
    assert_eq!(answer["status"], "pending");
    // The same text again: 200, with where it is.
    let (code, again) = post_item(&client, &nodes[0], "pay bob 5").await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["id"], id.to_string());

    let confirmed = wait_for("the item confirmed on all three", PATIENCE, || async {
        let mut seen = Vec::new();
        for node in &nodes {
            let status = item_status(node, &id).await;
            if status["status"] != "confirmed" {
                return None;
            }
            seen.push((status["block"].clone(), status["hash"].clone()));
        }
        seen.windows(2)
            .all(|w| w[0] == w[1])
            .then(|| seen[0].clone())
    })
    .await;
    // The block that carries it was mined by B, and its data is the item.
    let block: Block = {
        let body = get(&format!(
            "{}/block/{}",
            nodes[0].url,
            confirmed.1.as_str().unwrap()
        ))
        .await
        .unwrap();
        Block::from_json(&body).unwrap()
    };
    assert_eq!(block.index, confirmed.0.as_u64().unwrap());
    assert!(
        items_in(&block.data)
            .unwrap()
            .contains(&"pay bob 5".to_string())
    );
    let status = item_status(&nodes[2], &id).await;
    assert!(status["confirmations"].as_u64().unwrap() >= 1, "{status}");
    for node in nodes {
        assert!(node.terminate().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow (three miners, 10 s): scripts/test runs it, --quick does not"]
async fn items_posted_at_once_to_three_miners_are_each_in_the_chain_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = network_of(tmp.path(), &[true, true, true]);
    let client = reqwest::Client::new();
    let posts: Vec<_> = (0..300)
        .map(|n| {
            let (client, url) = (client.clone(), nodes[n % 3].url.clone());
            tokio::spawn(async move {
                let response = client
                    .post(format!("{url}/data"))
                    .header("content-type", "application/json")
                    .body(serde_json::json!({ "data": format!("item {n}") }).to_string())
                    .send()
                    .await
                    .unwrap();
                response.status().as_u16()
            })
        })
        .collect();
    for post in posts {
        assert_eq!(post.await.unwrap(), 202);
    }
    let ids: Vec<ItemId> = (0..300).map(|n| ItemId::of(&format!("item {n}"))).collect();
    wait_for("all 300 confirmed on every node", PATIENCE, || async {
        for node in &nodes {
            for id in &ids {
                if item_status(node, id).await["status"] != "confirmed" {
                    return None;
                }
            }
        }
        Some(())
    })
    .await;
    // Each node's chain carries every item exactly once: a chain is read
    // whole (one snapshot), so a duplicate shows at once, and a block still
    // in a race between miners only delays the wait. The three need not
    // agree at one moment: at difficulty 4 their tips move every few
    // milliseconds, and waiting for that made this test flaky.
    let counts_in = |chain: &[jbc::block::Block]| {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for block in chain {
            for text in items_in(&block.data).unwrap_or_default() {
                *counts.entry(text).or_default() += 1;
            }
        }
        counts
    };
    for node in &nodes {
        wait_for("a chain with every item once", PATIENCE, || async {
            let counts = counts_in(&node.chain().await);
            if let Some((text, n)) = counts.iter().find(|(_, n)| **n > 1) {
                panic!("{text} is {n} times in the chain of {}", node.url);
            }
            (0..300)
                .all(|n| counts.contains_key(&format!("item {n}")))
                .then_some(())
        })
        .await;
    }
    // What is on disk has no item twice either.
    let dirs: Vec<_> = nodes.iter().map(|n| n.dir.clone()).collect();
    for node in nodes {
        assert!(node.terminate().success());
    }
    let node = Jbc::builder().difficulty(4).peers(&[""]).start(&dirs[0]);
    let counts = counts_in(&node.chain().await);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    assert!(
        counts.len() >= 300,
        "{} items in the chain on disk",
        counts.len()
    );
    assert!(node.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_waiting_items_and_a_reorg_returns_an_item_to_be_mined_again() {
    let tmp = tempfile::tempdir().unwrap();
    // Our node's chain carries the item in block 1; a peer's longer chain
    // does not.
    let genesis = genesis();
    let carrier = jbc::chain::Template::next(&genesis, data_for(&["returned"]), 1_700_000_000, 4)
        .solve_plainly();
    let dir = tmp.path().join("node");
    write_chaindata(&dir.join("chaindata"), &[genesis.clone(), carrier.clone()]);
    let longer = mine_chain(4, 4, "longer");
    let peer = Jbc::serving(&tmp.path().join("peer"), &longer, 4);

    let node = Jbc::builder().difficulty(4).peers(&[""]).start(&dir);
    let id = ItemId::of("returned");
    assert_eq!(item_status(&node, &id).await["status"], "confirmed");
    let client = reqwest::Client::new();
    assert_eq!(post_item(&client, &node, "still waiting").await.0, 202);
    // The peer's chain wins: block 1 leaves, and its item waits again.
    let added = client
        .post(format!("{}/peers", node.url))
        .bearer_auth(node.operator_key())
        .header("content-type", "application/json")
        .body(format!(r#"{{"url": "{}"}}"#, peer.url))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status().as_u16(), 201);
    node.chain_of_at_least(longer.len()).await;
    assert_eq!(item_status(&node, &id).await["status"], "pending");
    node.wait_for_log("1 data items of blocks that left the chain wait again");
    assert!(node.terminate().success());

    // Both items are still waiting after a restart, and mining puts them
    // in a block again.
    let node = Jbc::builder().difficulty(4).peers(&[""]).start(&dir);
    let pending: Vec<Value> =
        serde_json::from_slice(&get(&format!("{}/data", node.url)).await.unwrap()).unwrap();
    let waiting: Vec<&str> = pending.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(
        waiting,
        [ItemId::of("still waiting").to_string(), id.to_string()],
        "oldest first"
    );
    assert!(node.terminate().success());
    let node = Jbc::builder()
        .difficulty(4)
        .peers(&[""])
        .switch("mine")
        .threads(1)
        .start(&dir);
    let status = wait_for("the item mined again", PATIENCE, || async {
        let status = item_status(&node, &id).await;
        (status["status"] == "confirmed").then_some(status)
    })
    .await;
    assert!(status["block"].as_u64().unwrap() >= longer.len() as u64);
    assert_ne!(status["hash"], carrier.hash.to_string());
    assert!(node.terminate().success());
    assert!(peer.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_items_get_clear_answers_and_a_flood_loses_nothing_that_waits() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Jbc::builder()
        .difficulty(4)
        .peers(&[""])
        .flag("max-item-bytes", "100")
        .flag("pool-max-items", "50")
        .start(tmp.path());
    let client = reqwest::Client::new();
    for (body, code, words) in [
        (
            r#"{"data": 5}"#.to_string(),
            422,
            "its text is a JSON string, not a number",
        ),
        (
            r#"{"text": "x"}"#.to_string(),
            422,
            r#"a data item is posted as {"data": "its text"}"#,
        ),
        ("{not json".to_string(), 400, "not valid JSON"),
        (
            serde_json::json!({ "data": "x".repeat(101) }).to_string(),
            413,
            "the item is 101 bytes; items are at most 100 bytes",
        ),
    ] {
        let response = client
            .post(format!("{}/data", node.url))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), code, "{body}");
        let answer: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert!(
            answer["error"].as_str().unwrap().contains(words),
            "{answer}"
        );
    }
    let bad_id = get(&format!("{}/data/zz", node.url)).await.unwrap();
    assert!(String::from_utf8_lossy(&bad_id).contains("the 64 hex digits"));
    let unknown = get(&format!("{}/data/{}", node.url, ItemId::of("never")))
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&unknown).contains("is waiting or in the chain"));

    // A flood of 10 000 items against a pool of 50.
    let mut accepted = Vec::new();
    let mut full = 0;
    for n in 0..10_000 {
        let (code, answer) = post_item(&client, &node, &format!("flood {n}")).await;
        match code {
            202 => accepted.push(answer["id"].as_str().unwrap().to_string()),
            503 => {
                assert!(
                    answer["error"]
                        .as_str()
                        .unwrap()
                        .contains("the pool is full")
                );
                full += 1;
            }
            other => panic!("{other}: {answer}"),
        }
    }
    assert_eq!((accepted.len(), full), (50, 9_950));
    let pending: Vec<Value> =
        serde_json::from_slice(&get(&format!("{}/data", node.url)).await.unwrap()).unwrap();
    let waiting: Vec<String> = pending
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(waiting, accepted, "nothing that waited was lost");
    let rss = std::fs::read_to_string(format!("/proc/{}/status", node.pid())).unwrap();
    let rss: u64 = rss
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap();
    assert!(rss < 100 * 1024, "{rss} KiB");
    assert!(node.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jbc_data_add_and_get_talk_to_a_node() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Jbc::builder()
        .difficulty(4)
        .peers(&[""])
        .switch("mine")
        .threads(1)
        .start(tmp.path());
    let run = |args: &[&str]| {
        let output = Command::new(JBC).args(args).output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let id = ItemId::of("from the command line").to_string();
    let (code, out, err) = run(&["data", "add", "from the command line", "--node", &node.url]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), format!("{id} pending: it waits for a block"));
    wait_for("the item confirmed", PATIENCE, || async {
        let (_, out, _) = run(&["data", "get", &id, "--node", &node.url]);
        out.contains("confirmed in block").then_some(())
    })
    .await;
    let (code, _, err) = run(&["data", "get", "nope", "--node", &node.url]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains(
            "an item id is the 64 hex digits `jbc data add` printed, or its first 6 or more"
        ),
        "{err}"
    );
    assert!(node.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_waiting_when_a_peer_comes_up_is_offered_to_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let (url_a, url_b) = (
        format!("http://127.0.0.1:{port_a}"),
        format!("http://127.0.0.1:{port_b}"),
    );
    let common = ["--difficulty", "4", "--sync-interval", "0.5"];
    let port = port_a.to_string();
    let a = Jbc::start(
        &tmp.path().join("a"),
        &[&common[..], &["--port", &port, "--peers", &url_b]].concat(),
    );
    // B is not up yet: there is nobody to relay the item to.
    let client = reqwest::Client::new();
    let (code, _) = post_item(&client, &a, "waited for a miner").await;
    assert_eq!(code, 202);
    let port = port_b.to_string();
    let b = Jbc::start(
        &tmp.path().join("b"),
        &[
            &common[..],
            &[
                "--port",
                &port,
                "--peers",
                &url_a,
                "--mine",
                "--threads",
                "1",
            ],
        ]
        .concat(),
    );
    let id = ItemId::of("waited for a miner");
    wait_for("the item confirmed on both", PATIENCE, || async {
        let on_a = item_status(&a, &id).await;
        let on_b = item_status(&b, &id).await;
        (on_a["status"] == "confirmed" && on_b["status"] == "confirmed").then_some(())
    })
    .await;
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_item_answered_202_survives_kill_9_at_any_moment() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let args = [
        "--port",
        port.as_str(),
        "--difficulty",
        "3",
        "--peers",
        "",
        "--mine",
        "--threads",
        "1",
    ];
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    let mut taken: Vec<String> = Vec::new();
    for round in 0..3 {
        let node = Jbc::start(tmp.path(), &args);
        let url = node.url.clone();
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // Four clients post items as fast as the node takes them, until
        // the node is gone; each keeps what was answered 202.
        let posters: Vec<_> = (0..4)
            .map(|client_n| {
                let (client, url) = (client.clone(), url.clone());
                let answered = std::sync::Arc::clone(&answered);
                tokio::spawn(async move {
                    let mut accepted = Vec::new();
                    for n in 0..5000 {
                        let text = format!("round {round} client {client_n} item {n}");
                        let response = client
                            .post(format!("{url}/data"))
                            .header("content-type", "application/json")
                            .body(serde_json::json!({ "data": text }).to_string())
                            .send()
                            .await;
                        match response {
                            Ok(response) if response.status().as_u16() == 202 => {
                                accepted.push(text);
                                answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                    accepted
                })
            })
            .collect();
        // Killed while the posts go on, once some are answered, at a count
        // that varies by round.
        wait_for("items answered 202", PATIENCE, || async {
            let count = answered.load(std::sync::atomic::Ordering::Relaxed);
            (count >= 50 + 37 * round).then_some(())
        })
        .await;
        node.kill_hard();
        for poster in posters {
            taken.extend(poster.await.unwrap());
        }
    }
    assert!(taken.len() >= 150, "only {} items were taken", taken.len());
    let node = Jbc::start(tmp.path(), &args[..7]);
    for text in &taken {
        let status = item_status(&node, &ItemId::of(text)).await;
        assert!(
            status["status"] == "pending" || status["status"] == "confirmed",
            "{text:?} was answered 202 and is gone: {status}"
        );
    }
    eprintln!(
        "{} items answered 202 over 3 kill -9 rounds: all kept",
        taken.len()
    );
    assert!(node.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_a_reorg_returns_survive_kill_9_right_after_the_switch() {
    let tmp = tempfile::tempdir().unwrap();
    let texts: Vec<String> = (0..20).map(|n| format!("returned {n}")).collect();
    let ids: Vec<ItemId> = texts.iter().map(|t| ItemId::of(t)).collect();
    let genesis = genesis();
    let carrier =
        jbc::chain::Template::next(&genesis, data_for(&texts), 1_700_000_000, 4).solve_plainly();
    let longer = mine_chain(4, 4, "longer");
    // Not a node: it takes no item, so nothing comes back from it.
    let peer = Recorder::serving(longer.clone(), 4).await;
    for trial in 0..3 {
        // The node's chain carries the items in block 1 (they were never
        // in its pool file); the peer's longer chain does not.
        let dir = tmp.path().join(format!("node{trial}"));
        write_chaindata(&dir.join("chaindata"), &[genesis.clone(), carrier.clone()]);
        let node = Jbc::builder().difficulty(4).peers(&[""]).start(&dir);
        assert_eq!(item_status(&node, &ids[0]).await["status"], "confirmed");
        let (code, answer) =
            post_as_operator(&node, "/peers", serde_json::json!({ "url": peer.url })).await;
        assert_eq!(code, 201, "{answer}");
        // The switch is visible: kill -9 at once, before any save of the
        // pool could happen.
        node.chain_of_at_least(longer.len()).await;
        node.kill_hard();
        let node = Jbc::builder().difficulty(4).peers(&[""]).start(&dir);
        for id in &ids {
            assert_eq!(
                item_status(&node, id).await["status"],
                "pending",
                "trial {trial}, item {id}"
            );
        }
        assert!(node.terminate().success());
    }
}
