//! `jbc` as a client of a running node, as `bitcoin-cli` is of `bitcoind`:
//! real `jbc` processes asking a real node on 127.0.0.1.

use std::path::Path;

use crate::common::*;
use jbc::block::{Block, blocks_from_json};
use jbc::item::ItemId;

/// `jbc ARGS` run in `dir`: whether it succeeded, and what it printed
/// (stdout, then stderr).
fn jbc<S: AsRef<str>>(dir: &Path, args: &[S]) -> (bool, String) {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let (status, output) = run_to_end_printing(dir, &args);
    (status.success(), output)
}

async fn chain_of(node: &Jbc) -> Vec<Block> {
    let body = get(&format!("{}/blockchain.json", node.url)).await.unwrap();
    blocks_from_json(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_node_the_cli_says_none_answers_and_how_to_start_one() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let (ok, output) = jbc(tmp.path(), &["status", "--node", &port]);
    assert!(!ok);
    assert!(
        output.contains(&format!(
            "no node answers at http://127.0.0.1:{port} — is one running? start it with `jbc --port {port}`"
        )),
        "{output}"
    );
    let (ok, output) = jbc(tmp.path(), &["blocks", "--node", "host:port"]);
    assert!(!ok);
    assert!(
        output.contains("\"host:port\" is not a node's address: give HOST:PORT"),
        "{output}"
    );
    let (ok, output) = jbc(tmp.path(), &["completions", "bash"]);
    assert!(ok, "{output}");
    assert!(
        output.contains("_jbc()") && output.contains("mine") && output.contains("--node"),
        "{output}"
    );
}

/// A node that does not mine mines the blocks its operator orders, then
/// stops; the commands that read show them as the node serves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_orders_blocks_and_the_cli_reads_them_back() {
    let tmp = tempfile::tempdir().unwrap();
    let miner_nice = test_miner_nice();
    let node = Jbc::builder()
        .difficulty(3)
        .peers(&[""])
        .flag("miner-nice", &miner_nice)
        .flag("data", "ordered")
        .start(tmp.path());
    let url = node.url.clone();
    let with_node = |args: &[&str]| -> Vec<String> {
        let at = ["--node", url.as_str()];
        args.iter().chain(&at).map(|a| a.to_string()).collect()
    };

    // Without the cookie (another folder) the order is refused.
    let elsewhere = tempfile::tempdir().unwrap();
    let (ok, output) = jbc(elsewhere.path(), &with_node(&["mine", "2"]));
    assert!(!ok);
    assert!(
        output.contains("cannot read the operator key from") && output.contains("--cookie"),
        "{output}"
    );
    assert_eq!(node.status().await["blocks_owed"], 0);

    // From the node's folder, 3 blocks: the command returns once they are
    // mined, and the node mines no more.
    let (ok, output) = jbc(tmp.path(), &with_node(&["mine", "3"]));
    assert!(ok, "{output}");
    let chain = chain_of(&node).await;
    assert!(
        output.contains(&format!(
            "mined 3 block(s): height 3, tip {}",
            chain[3].hash
        )),
        "{output}"
    );
    assert!(chain[1..].iter().all(|b| b.data == "ordered"));
    wait_for("the idle miner's hash rate to read 0", PATIENCE, || async {
        (node.status().await["hashrate"] == 0).then_some(())
    })
    .await;
    assert_eq!(chain_of(&node).await.len(), 4, "it mined past its order");
    // The blocks came within seconds; the genesis block is from 2017 and
    // its interval is no part of the mean.
    let mean = node.status().await["mean_block_seconds"].as_f64().unwrap();
    assert!((0.0..60.0).contains(&mean), "mean block time {mean} s");

    let (ok, output) = jbc(tmp.path(), &with_node(&["status"]));
    assert!(ok, "{output}");
    assert!(
        output.contains(&format!("chain    height 3, tip {}", chain[3].hash)),
        "{output}"
    );
    assert!(output.contains("not mining"), "{output}");
    assert!(output.contains("peers    0 of 0 reachable"), "{output}");
    let (ok, output) = jbc(tmp.path(), &with_node(&["blocks", "--last", "2"]));
    assert!(ok, "{output}");
    let listed: Vec<&str> = output.lines().filter(|l| l.contains("ordered")).collect();
    assert_eq!(listed.len(), 2, "{output}");
    assert!(
        listed[0]
            .trim_start()
            .starts_with(&format!("2  {}", chain[2].hash))
    );
    assert!(
        listed[1]
            .trim_start()
            .starts_with(&format!("3  {}", chain[3].hash))
    );
    for which in ["2".to_string(), chain[2].hash.to_string()] {
        let (ok, output) = jbc(tmp.path(), &with_node(&["block", &which]));
        assert!(ok, "{output}");
        let printed = output.split("\n}").next().unwrap().to_string() + "\n}";
        assert_eq!(Block::from_json(printed.as_bytes()).unwrap(), chain[2]);
    }
    let (ok, output) = jbc(tmp.path(), &with_node(&["block", "two"]));
    assert!(!ok);
    assert!(output.contains("neither a block's index"), "{output}");

    // An item added with --wait returns once a block carries it.
    let text = "from the command line";
    let id = ItemId::of(text).to_string();
    let waiting = std::thread::spawn({
        let (dir, args) = (
            tmp.path().to_path_buf(),
            with_node(&["data", "add", text, "--wait", "--timeout", "60"]),
        );
        move || jbc(&dir, &args)
    });
    wait_for("the item to wait in the pool", PATIENCE, || async {
        (node.status().await["pending_items"] == 1).then_some(())
    })
    .await;
    let (ok, output) = jbc(tmp.path(), &with_node(&["data", "list"]));
    assert!(ok && output.contains(&id), "{output}");
    let (ok, output) = jbc(tmp.path(), &with_node(&["mine", "1"]));
    assert!(ok, "{output}");
    let (ok, output) = waiting.join().unwrap();
    assert!(ok, "{output}");
    let block = &chain_of(&node).await[4];
    let confirmed = format!(
        "{id} confirmed in block 4 ({}), 1 confirmation(s)",
        block.hash
    );
    assert!(output.contains(&confirmed), "{output}");

    // The first digits of an id do.
    let (ok, output) = jbc(tmp.path(), &with_node(&["data", "get", &id[..8]]));
    assert!(ok && output.contains(&confirmed), "{output}");
    let (ok, output) = jbc(tmp.path(), &with_node(&["data", "get", &id[..5]]));
    assert!(!ok);
    assert!(output.contains("or its first 6 or more"), "{output}");
    let unknown = ItemId::of("never sent").to_string();
    let (ok, output) = jbc(tmp.path(), &with_node(&["data", "get", &unknown[..10]]));
    assert!(!ok);
    assert!(
        output.contains(&format!(
            "no item {} is waiting or in the chain",
            &unknown[..10]
        )),
        "{output}"
    );

    // An empty item is refused with a sentence.
    let (ok, output) = jbc(tmp.path(), &with_node(&["data", "add", ""]));
    assert!(!ok && output.contains("the item is empty"), "{output}");

    // A peer is named as --node names a node: a port will do (this one's
    // own: the node, not the command, refuses it).
    let port = url.rsplit(':').next().unwrap();
    let (_, output) = jbc(tmp.path(), &with_node(&["peers", "add", port]));
    assert!(
        output.contains("it is this node itself") && !output.contains("relative URL"),
        "{output}"
    );

    // A reader that goes away (`jbc blocks | head -1`) ends the command
    // quietly, not with a panic.
    let mut reader_gone = std::process::Command::new(JBC)
        .args(with_node(&["blocks", "--last", "50"]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(reader_gone.stdout.take());
    let output = reader_gone.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && !said.contains("panicked"),
        "{:?}: {said}",
        output.status
    );
    assert!(node.terminate().success());
}
