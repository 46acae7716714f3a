//! The node end to end: real `jbc` processes on 127.0.0.1 with their own
//! chaindata folders, driven over HTTP.

use std::path::Path;
use std::process::Command;

use crate::common::*;
use jbc::chain::{Chain, Network};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_node_syncs_a_longer_chain_at_startup_and_writes_the_same_files() {
    let tmp = tempfile::tempdir().unwrap();
    let blocks = mine_chain(12, 3, "peer");
    let peer = Jbc::serving(&tmp.path().join("peer"), &blocks, 3);
    assert_eq!(peer.chain().await, blocks);

    let fresh = Jbc::builder()
        .difficulty(3)
        .peers(&[&peer.url])
        .start(&tmp.path().join("fresh"));
    let synced = fresh.chain_of_at_least(blocks.len()).await;
    assert_eq!(synced, blocks);
    assert_eq!(
        block_files(&fresh.chaindata()),
        block_files(&peer.chaindata())
    );
    assert!(
        fresh.logs().contains(&format!(
            "switched to the chain of {}: 11 new blocks after block 0, 0 of ours replaced",
            peer.url
        )),
        "{}",
        fresh.logs()
    );

    assert!(fresh.terminate().success());
    assert!(peer.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_that_are_down_slow_or_answer_garbage_do_not_stop_startup() {
    let tmp = tempfile::tempdir().unwrap();
    let blocks = mine_chain(6, 3, "good");
    let good = Jbc::serving(&tmp.path().join("good"), &blocks, 3);

    let down = format!("http://127.0.0.1:{}", free_port());
    let garbage =
        fake_peer(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot json!")
            .await;
    let html = fake_peer(
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 13\r\nConnection: close\r\n\r\n<html></html>",
    )
    .await;
    let silent = silent_peer().await;
    let peers = [down.as_str(), &garbage, &html, &silent, &good.url].join(",");

    let node = Jbc::builder()
        .difficulty(3)
        .peers(&[&peers])
        .flag("request-timeout-ms", "3000")
        .start(&tmp.path().join("node"));
    let synced = node.chain_of_at_least(blocks.len()).await;
    assert_eq!(synced, blocks);
    // Each peer's outcome is logged once known.
    for expected in [
        "unreachable",
        "invalid answer",
        "answered HTTP 404",
        "switched to the chain of",
        "timed out",
    ] {
        wait_for(&format!("{expected:?} in the log"), PATIENCE, || async {
            node.logs().contains(expected).then_some(())
        })
        .await;
    }
    // The good chain was adopted without waiting for the silent peer.
    let logs = node.logs();
    let position = |needle: &str| logs.find(needle).unwrap();
    assert!(
        position("switched to the chain of") < position("timed out"),
        "the silent peer held up the good one:\n{logs}"
    );
    assert!(node.terminate().success());
    assert!(good.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mining_node_grows_a_valid_chain_that_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("miner");
    let node = Jbc::builder()
        .switch("mine")
        .difficulty(4)
        .threads(1)
        .flag("miner-nice", "12")
        .start(&dir);
    let served = node.chain_of_at_least(10).await;
    let network = Network::new(genesis(), 4);
    let chain = Chain::from_blocks(served.clone(), &network).expect("every served block is valid");
    let data = format!("Mined by node on port {}", node.port);
    assert!(chain.blocks()[1..].iter().all(|b| b.data == data));
    assert!(node.logs().contains("mined block"));
    let hashrate = wait_for("a hash rate on /status", PATIENCE, || async {
        let body = get(&format!("{}/status", node.url)).await.ok()?;
        let status: serde_json::Value = serde_json::from_slice(&body).ok()?;
        status["hashrate"].as_u64().filter(|&rate| rate > 0)
    })
    .await;
    assert!(hashrate > 1000, "{hashrate} H/s");
    // Once the rate is known, the log says what it means for block times.
    node.wait_for_log("this node alone would find a block every");

    // Miner threads run at the nice level asked for, the server's at the
    // node's own: the one it inherited from this test (a suite run under
    // `nice` runs its nodes there too).
    let nice_of = |stat: &str| -> i32 {
        // Fields after the parenthesised name; nice is field 19 overall.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        fields[19 - 3].parse().unwrap()
    };
    let own_nice = nice_of(&std::fs::read_to_string("/proc/self/stat").unwrap());
    let tasks = std::fs::read_dir(format!("/proc/{}/task", node.pid())).unwrap();
    let mut miners = 0;
    for task in tasks {
        let dir = task.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap();
        let nice = nice_of(&std::fs::read_to_string(dir.join("stat")).unwrap());
        if comm.starts_with("miner-") {
            miners += 1;
            // Below the node's own level only with privilege.
            let expected = nice == 12 || (own_nice > 12 && nice == own_nice);
            assert!(expected, "{} runs at nice {nice}", comm.trim());
        } else if comm.starts_with("jbc-bulk") {
            // Download writers run 10 levels below the node (at most 19).
            assert_eq!(
                nice,
                (own_nice + 10).min(19),
                "{} runs at nice {nice}",
                comm.trim()
            );
        } else {
            assert_eq!(nice, own_nice, "{} runs at nice {nice}", comm.trim());
        }
    }
    assert_eq!(miners, 1, "--threads 1 starts one miner thread");

    let status = node.terminate();
    assert!(status.success(), "exit status {status}");

    let restarted = Jbc::builder().difficulty(4).start(&dir);
    let reloaded = restarted.chain().await;
    assert!(reloaded.len() >= served.len());
    assert_eq!(
        reloaded[..served.len()],
        served[..],
        "a served block was lost"
    );
    assert!(restarted.terminate().success());
}

#[test]
fn a_chaindata_of_another_network_is_refused_touching_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let chaindata = tmp.path().join("chaindata");
    let mut blocks = mine_chain(3, 2, "x");
    blocks[0] = jbc::block::Block::new(0, 1, String::new(), "another genesis".into(), 0);
    write_chaindata(&chaindata, &blocks);
    let before = block_files(&chaindata);

    let (status, stderr) = run_to_end(tmp.path(), &["--port", "0"]);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("belongs to another network"), "{stderr}");
    assert_eq!(block_files(&chaindata), before);
    let entries: Vec<String> = std::fs::read_dir(&chaindata)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "jbc.lock")
        .collect();
    assert_eq!(entries.len(), before.len(), "{entries:?}");
}

#[test]
fn help_explains_every_flag() {
    let output = Command::new(JBC).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--config",
        "--host",
        "--port",
        "--chaindata",
        "--peers",
        "--difficulty",
        "--genesis",
        "--mine",
        "--threads",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linknodes_makes_a_folder_whose_jbc_serves_on_its_port() {
    let parent = tempfile::tempdir().unwrap();
    let port = free_port();
    let linknodes = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/linknodes");
    let run_linknodes = || {
        let output = Command::new("bash")
            .arg(&linknodes)
            .arg(port.to_string())
            .arg(parent.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run_linknodes();
    let folder = parent.path().join(format!("jbc{port}"));
    let config = std::fs::read_to_string(folder.join("config/jbc.toml")).unwrap();
    assert!(config.contains(&format!("\nport = {port}\n")), "{config}");

    let mut command = Command::new(folder.join("jbc"));
    command.env("JBC_BIN", JBC);
    let node = Jbc::start_command(command, &folder, &["--peers", "", "--difficulty", "3"]);
    assert_eq!(node.port, port, "serves on the port linknodes gave it");
    assert_eq!(node.chain().await, vec![genesis()]);
    assert!(node.terminate().success());

    // Running it again keeps what the node has.
    let extra = mine_chain(2, 3, "kept");
    write_chaindata(&folder.join("chaindata"), &extra);
    std::fs::write(
        folder.join("config/jbc.toml"),
        format!("{config}\n# edited\n"),
    )
    .unwrap();
    run_linknodes();
    assert_eq!(block_files(&folder.join("chaindata")).len(), 2);
    assert!(
        std::fs::read_to_string(folder.join("config/jbc.toml"))
            .unwrap()
            .contains("# edited")
    );
}

#[test]
fn bench_says_what_it_does_and_ends_with_block_times_and_the_hash_rate() {
    let output = Command::new(JBC)
        .args(["bench", "--threads", "1", "--seconds", "0.3"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let last = stdout.lines().last().unwrap();
    let rate: f64 = last
        .strip_prefix("hashrate: ")
        .and_then(|rest| rest.strip_suffix(" H/s"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("last line is not `hashrate: N H/s`: {last:?}"));
    assert!(rate > 0.0);
    assert!(
        stdout.contains("sha256 compressions, one stream on one thread"),
        "{stdout}"
    );
    assert!(
        stdout.contains("plain path (one nonce at a time):"),
        "{stdout}"
    );
    // What it is doing, and what the rate means, for the person watching.
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("jbc bench: measuring the SHA-256 compression rate"),
        "{stderr}"
    );
    assert!(
        stderr.contains("jbc bench: mining a synthetic block"),
        "{stderr}"
    );
    let times: Vec<&str> = stderr
        .lines()
        .filter(|line| line.trim_start().starts_with("difficulty "))
        .collect();
    assert_eq!(times.len(), 5, "{stderr}");
    for (line, difficulty) in times.iter().zip(4..=8) {
        assert!(
            line.trim_start()
                .starts_with(&format!("difficulty {difficulty}: ")),
            "{line}"
        );
    }
}

/// Two ports in a row that are free now.
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let port = free_port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two free ports in a row");
}

/// A running `scripts/devnet`, stopped the way a person stops it (SIGTERM:
/// its trap stops every node) if the test ends early on a failed
/// assertion: its nodes run in sessions of their own, so nothing else
/// would reach them.
struct StopsOnDrop(std::process::Child);

impl Drop for StopsOnDrop {
    fn drop(&mut self) {
        if !matches!(self.0.try_wait(), Ok(None)) {
            return;
        }
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while matches!(self.0.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn devnet_starts_linked_nodes_merges_their_logs_and_ctrl_c_stops_every_one() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let base = free_port_pair();
    let mut command = Command::new("bash");
    // A shell that ran this suite in the background leaves SIGINT ignored,
    // and an ignored signal stays ignored in every child (bash cannot even
    // trap it). Ctrl-C in a terminal reaches a foreground devnet with the
    // default disposition: give it that.
    // Its own process group, as a terminal's foreground job: Ctrl-C below
    // goes to the whole group, as a terminal sends it.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            use nix::sys::signal::{SigHandler, Signal, signal};
            signal(Signal::SIGINT, SigHandler::SigDfl)
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let mut devnet = StopsOnDrop(
        command
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/devnet"))
            .args(["2", "--mine", "--difficulty", "4"])
            .args(["--control-port", &free_port().to_string()])
            .env("DEVNET_DIR", dir.path())
            .env("DEVNET_PORT", base.to_string())
            .env("JBC_BIN", JBC)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let readers: Vec<_> = [
        Box::new(devnet.0.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(devnet.0.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|stream| {
        let lines = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        })
    })
    .collect();
    let urls: Vec<String> = (0..2)
        .map(|n| format!("http://127.0.0.1:{}", base + n))
        .collect();

    // Both nodes mine on one chain: each sees blocks of the other.
    wait_for(
        "both devnet nodes to hold blocks of both",
        PATIENCE,
        || async {
            let mut chains = Vec::new();
            for url in &urls {
                let body = get(&format!("{url}/blockchain.json")).await.ok()?;
                chains.push(jbc::block::blocks_from_json(&body).ok()?);
            }
            let mined_by = |chain: &[jbc::block::Block], port: u16| {
                chain.iter().any(|b| b.data.ends_with(&port.to_string()))
            };
            chains
                .iter()
                .all(|chain| mined_by(chain, base) && mined_by(chain, base + 1))
                .then_some(())
        },
    )
    .await;
    let printed = lines.lock().unwrap().join("\n");
    let mut pids = Vec::new();
    for url in &urls {
        let port = url.rsplit(':').next().unwrap();
        assert!(
            printed.contains(&format!("explorer {url}/")),
            "the explorer URL of {url} is printed:\n{printed}"
        );
        assert!(
            printed.contains(&format!("[jbc{port}] ")) && printed.contains("listening on"),
            "each log line names its node:\n{printed}"
        );
        let pid: i32 = printed
            .split(&format!("jbc{port} (pid "))
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .and_then(|pid| pid.parse().ok())
            .unwrap_or_else(|| panic!("the pid of jbc{port} is printed:\n{printed}"));
        pids.push(pid);
    }

    // Said once both answer (the blocks above can come first).
    wait_for("devnet to say its nodes are up", PATIENCE, || async {
        (lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("devnet: 2 nodes up")))
        .then_some(())
    })
    .await;

    // A second devnet on the same ports is refused before starting any.
    let beside = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/devnet"))
        .args(["2", "--control-port", &free_port().to_string()])
        .env("DEVNET_DIR", dir.path().join("beside"))
        .env("DEVNET_PORT", base.to_string())
        .env("JBC_BIN", JBC)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&beside.stderr);
    assert_eq!(beside.status.code(), Some(1), "{said}");
    assert!(said.contains(&format!("port {base} is taken")), "{said}");
    assert!(!said.contains("nodes up"), "{said}");

    // Ctrl-C, to the whole group as a terminal sends it: every node stops
    // cleanly, nothing is left running, and no node is said to have died.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(devnet.0.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while devnet.0.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = devnet.0.kill();
            panic!(
                "devnet ignored Ctrl-C:\n{}",
                lines.lock().unwrap().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for reader in readers {
        reader.join().unwrap();
    }
    let printed = lines.lock().unwrap().join("\n");
    for (pid, url) in pids.iter().zip(&urls) {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "node {url} (pid {pid}) is still running after Ctrl-C"
        );
        let port = url.rsplit(':').next().unwrap();
        assert!(
            printed
                .lines()
                .any(|l| l.starts_with(&format!("[jbc{port}] ")) && l.ends_with("stopped")),
            "node {url} shut down cleanly:\n{printed}"
        );
    }
    assert!(printed.contains("devnet: stopped"), "{printed}");
    assert!(
        !printed.contains("exited"),
        "a Ctrl-C is no node's death:\n{printed}"
    );

    // The network's difficulty is in each node's config; a rerun with
    // another is refused with a sentence, before any node starts.
    for port in [base, base + 1] {
        let config =
            std::fs::read_to_string(dir.path().join(format!("jbc{port}/config/jbc.toml"))).unwrap();
        assert!(config.contains("\ndifficulty = 4\n"), "{config}");
    }
    let rerun = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/devnet"))
        .args(["2", "--difficulty", "5"])
        .args(["--control-port", &free_port().to_string()])
        .env("DEVNET_DIR", dir.path())
        .env("DEVNET_PORT", base.to_string())
        .env("JBC_BIN", JBC)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&rerun.stderr);
    assert_eq!(rerun.status.code(), Some(1), "{said}");
    assert!(
        said.contains("is a network of difficulty 4") && said.contains("run without --difficulty"),
        "{said}"
    );
    assert!(!said.contains("pid"), "no node started: {said}");
    let quarantine = dir.path().join(format!("jbc{base}/chaindata/quarantine"));
    assert!(!quarantine.exists(), "nothing was set aside");
}

#[tokio::test]
async fn the_nodes_of_a_devnet_killed_with_sigkill_stop_by_themselves() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let base = free_port_pair();
    let mut devnet = StopsOnDrop(
        Command::new(JBC)
            .args([
                "devnet",
                "1",
                "--difficulty",
                "4",
                "--port",
                &base.to_string(),
            ])
            .args(["--control-port", &free_port().to_string()])
            .arg("--dir")
            .arg(dir.path())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Its pid, from the line that starts it; then its control page's line.
    let mut lines = BufReader::new(devnet.0.stderr.take().unwrap()).lines();
    let mut pid = None;
    for line in lines.by_ref().map_while(Result::ok) {
        if let Some(rest) = line.split(&format!("jbc{base} (pid ")).nth(1) {
            pid = rest.split(')').next().and_then(|p| p.parse::<i32>().ok());
        }
        if line.contains("the control page") {
            break;
        }
    }
    let pid = pid.expect("the node's pid is printed");
    // Drain what the node still says, so its writes never block.
    std::thread::spawn(move || lines.for_each(drop));
    let url = format!("http://127.0.0.1:{base}/status");
    wait_for("the node to answer", PATIENCE, || async {
        get(&url).await.ok()
    })
    .await;

    // No trap runs on SIGKILL: the node sees its standard input close.
    devnet.0.kill().unwrap();
    devnet.0.wait().unwrap();
    wait_for("the node to stop by itself", PATIENCE, || async {
        (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    })
    .await;
    let chaindata = dir.path().join(format!("jbc{base}/chaindata/000000.json"));
    assert!(chaindata.exists(), "its chain is where it was");
}

#[tokio::test]
async fn a_node_whose_log_reader_is_gone_runs_on_and_stops_cleanly() {
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut node = Command::new(JBC)
        .args([
            "--port",
            &port.to_string(),
            "--peers",
            "",
            "--difficulty",
            "3",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    wait_for("the node to answer", PATIENCE, || async {
        get(&format!("{url}/status")).await.ok()
    })
    .await;
    // Whoever read its log is gone (a closed terminal, a devnet killed,
    // `jbc | head`): each log line now meets a closed pipe.
    drop(node.stdout.take());
    drop(node.stderr.take());
    let answer = reqwest::Client::new()
        .post(format!("{url}/data"))
        .header("content-type", "application/json")
        .body(jbc::data_request("logged as it arrives"))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "the node still answers");
    let pid = nix::unistd::Pid::from_raw(node.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = node.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the node did not stop"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(status.success(), "a clean stop, not a panic: {status}");
}
