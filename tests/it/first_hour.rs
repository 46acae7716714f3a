//! The first hour of a new user, with real `jbc` processes: what the node
//! says at start-up, how quietly it waits for peers that are not up yet,
//! what its errors say, how flags reject bad values, and `jbc init`.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::*;
use jbc::block::Block;
use serde_json::Value;

/// Lines of `logs` at `level` that contain `needle`.
fn lines_with<'a>(logs: &'a str, level: &str, needle: &str) -> Vec<&'a str> {
    logs.lines()
        .filter(|line| line.contains(level) && line.contains(needle))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_says_which_config_which_folder_and_which_network() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bare");
    let node = Jbc::builder().difficulty(3).peers(&[""]).start(&dir);
    let logs = node.logs();
    let absolute = std::fs::canonicalize(&dir).unwrap();
    assert!(
        logs.contains(&format!(
            "no config file at {}/config/jbc.toml, so built-in defaults and flags apply",
            absolute.display()
        )),
        "{logs}"
    );
    assert!(
        logs.contains(&format!(
            "chaindata {}/chaindata: only the genesis block",
            absolute.display()
        )),
        "{logs}"
    );
    assert!(
        logs.contains(&format!(
            "network: genesis block {}, difficulty 3 (a block hash needs 3 leading zero hex digits: 4 thousand hashes on average)",
            genesis().hash
        )),
        "{logs}"
    );
    assert!(logs.contains("not mining"), "{logs}");
    assert!(node.terminate().success());

    // With a config file, the node names it; --no-mine overrides its
    // `mine = true`.
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::write(
        dir.join("config/jbc.toml"),
        "difficulty = 3\nmine = true\npeers = []\n",
    )
    .unwrap();
    let node = Jbc::builder().switch("no-mine").start(&dir);
    let logs = node.logs();
    assert!(
        logs.contains(&format!(
            "config: read {}/config/jbc.toml",
            absolute.display()
        )),
        "{logs}"
    );
    assert!(logs.contains("not mining"), "{logs}");
    assert!(!logs.contains("mining on"), "{logs}");
    assert!(node.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_is_not_up_yet_is_reported_once_and_again_when_it_comes_up() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let peer_url = format!("http://127.0.0.1:{port}");
    // Debug lines show each repeated failure; the test counts what the
    // default level (info and up) shows.
    let mut command = Command::new(JBC);
    command.env("RUST_LOG", "info,jbc::gossip=debug");
    let node = Jbc::start_command(
        command,
        &tmp.path().join("node"),
        &[
            "--port",
            "0",
            "--difficulty",
            "3",
            "--peers",
            &peer_url,
            "--sync-interval",
            "0.1",
        ],
    );
    wait_for("several failed syncs", PATIENCE, || async {
        (node.logs().matches("failed again").count() >= 3).then_some(())
    })
    .await;
    let blocks = mine_chain(4, 3, "peer");
    let peer = Jbc::serving_on(&tmp.path().join("peer"), &blocks, 3, port);
    node.chain_of_at_least(blocks.len()).await;
    node.wait_for_log(&format!("peer {peer_url} is up again, at height 3"));

    let logs = node.logs();
    let warned = lines_with(&logs, "WARN", &peer_url);
    assert_eq!(warned.len(), 1, "one warning while it was down:\n{logs}");
    assert!(warned[0].contains("unreachable"), "{}", warned[0]);
    assert_eq!(
        lines_with(&logs, "INFO", &format!("peer {peer_url} is up")).len(),
        1,
        "{logs}"
    );
    assert!(peer.terminate().success());
    assert!(node.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_block_file_is_reported_in_one_line_for_the_blocks_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let chaindata = tmp.path().join("chaindata");
    write_chaindata(&chaindata, &mine_chain(40, 2, "long"));
    std::fs::remove_file(chaindata.join("000005.json")).unwrap();
    let node = Jbc::builder().difficulty(2).peers(&[""]).start(tmp.path());
    let logs = node.logs();
    let set_aside = lines_with(&logs, "WARN", "set aside");
    assert_eq!(set_aside.len(), 1, "{logs}");
    assert!(
        set_aside[0].contains(&format!(
            "34 block files, blocks 6 to 39, set aside in {}: block 5 is missing or invalid, so the blocks after it cannot follow",
            chaindata.join("quarantine").display()
        )),
        "{}",
        set_aside[0]
    );
    assert_eq!(node.chain().await.len(), 5);
    assert!(node.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_error_says_in_words_what_was_wrong_and_what_is_expected() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Jbc::builder().difficulty(3).peers(&[""]).start(tmp.path());
    let client = reqwest::Client::new();
    let cases: Vec<(&str, &str, &str, u16, &str)> = vec![
        (
            "GET",
            "/blocks?from=",
            "",
            400,
            "`from` must be a whole number",
        ),
        (
            "GET",
            "/blocks?from=-3",
            "",
            400,
            "`from` must be a whole number",
        ),
        (
            "GET",
            "/blocks?limit=lots",
            "",
            400,
            "`limit` must be a whole number",
        ),
        ("GET", "/blocks?form=3", "", 400, "/blocks takes `from`"),
        (
            "GET",
            "/blocks/abc",
            "",
            400,
            "the index must be a whole number",
        ),
        (
            "GET",
            "/blocks/9",
            "",
            404,
            "there is no block 9 yet; the tip is block 0",
        ),
        ("GET", "/block/zz", "", 400, "64 lowercase hex digits"),
        (
            "POST",
            "/mined",
            "[]",
            422,
            "a block is a JSON object with index, prev_hash, data, timestamp, nonce and hash, not an array",
        ),
        (
            "POST",
            "/mined",
            r#"{"index": 1}"#,
            422,
            "this one has no prev_hash, data, timestamp, nonce, hash",
        ),
        ("POST", "/mined", "{not json", 400, "not valid JSON"),
        (
            "POST",
            "/peers",
            r#""x""#,
            422,
            r#"a peer is given as a JSON object like {"url": "http://127.0.0.1:5002"}, not a string"#,
        ),
        (
            "POST",
            "/peers",
            r#"{"url": "ftp://x"}"#,
            422,
            "a peer's URL starts with http://",
        ),
        ("POST", "/peers", "{", 400, "not valid JSON"),
        (
            "GET",
            "/nope",
            "",
            404,
            "there is no GET /nope; the endpoints are",
        ),
        (
            "DELETE",
            "/status",
            "",
            405,
            "DELETE is not allowed on /status",
        ),
    ];
    for (method, path, body, status, words) in cases {
        let response = client
            .request(method.parse().unwrap(), format!("{}{path}", node.url))
            .bearer_auth(node.operator_key())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        let answer: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(words), "{method} {path}: {error}");
        for internal in ["RawBlock", "struct", "deserialize", "Failed to", "NewPeer"] {
            assert!(
                !error.contains(internal),
                "{method} {path} leaks {internal:?}: {error}"
            );
        }
    }
    assert!(node.terminate().success());
}

#[test]
fn number_flags_and_settings_reject_bad_values_naming_the_setting() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, words) in [
        (
            &["bench", "--seconds", "-1"][..],
            "invalid value '-1' for '--seconds <SECONDS>': -1 is not a number of seconds",
        ),
        (
            &["--threads", "0"][..],
            "invalid value '0' for '--threads <THREADS>': 0 is not a whole number of threads",
        ),
        (&["--port", "70000"][..], "is not a port number"),
        (
            &["--difficulty", "65"][..],
            "is not a number of hex digits from 0 to 64",
        ),
        (
            &["--sync-interval", "0"][..],
            "is not a number of seconds from 0.05",
        ),
        (
            &["--request-timeout-ms", "-5"][..],
            "is not a whole number of milliseconds",
        ),
        (&["--mine=maybe"][..], "--mine"),
    ] {
        let output = Command::new(JBC)
            .args(args)
            .current_dir(tmp.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(words), "{args:?}: {stderr}");
    }
    // The same rule for the config file, named by its key.
    std::fs::create_dir_all(tmp.path().join("config")).unwrap();
    std::fs::write(tmp.path().join("config/jbc.toml"), "threads = 0\n").unwrap();
    let (status, stderr) = run_to_end(tmp.path(), &["--port", "0"]);
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("threads: 0 is not a whole number of threads from 1 to 1024"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jbc_init_makes_a_network_that_linknodes_folders_share() {
    let tmp = tempfile::tempdir().unwrap();
    let net = tmp.path().join("net");
    let output = Command::new(JBC)
        .args(["init", "net", "--difficulty", "3", "--data", "our network"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let genesis: Block =
        Block::from_json(&std::fs::read(net.join("config/genesis.json")).unwrap()).unwrap();
    assert_eq!(genesis.data, "our network");
    assert!(genesis.hash.meets_difficulty(3));
    assert!(
        stdout.contains(&genesis.hash.to_string()),
        "the hash is shown: {stdout}"
    );

    // A node folder made from the network's folder shares its genesis.
    let port = free_port();
    let linknodes = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/linknodes");
    let made = Command::new("bash")
        .arg(&linknodes)
        .arg(port.to_string())
        .current_dir(&net)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(made.status.success());
    let folder = net.join(format!("jbc{port}"));
    let mut command = Command::new(folder.join("jbc"));
    command.env("JBC_BIN", JBC);
    let second = Jbc::start_command(command, &folder, &["--peers", ""]);
    let first = Jbc::builder().peers(&[&second.url]).start(&net);
    for node in [&first, &second] {
        let status: Value =
            serde_json::from_slice(&get(&format!("{}/status", node.url)).await.unwrap()).unwrap();
        assert_eq!(status["genesis"], genesis.hash.to_string(), "{}", node.url);
        assert_eq!(status["difficulty"], 3);
        assert_eq!(node.chain().await, vec![genesis.clone()]);
    }
    assert!(first.terminate().success());
    assert!(second.terminate().success());
}
