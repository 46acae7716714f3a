//! A million blocks: what a long chain costs a node, measured with real
//! `jbc` processes at 1 000, 100 000 and 1 000 000 blocks.
//!
//! For each length it prints:
//! - start-up: the time from launch to listening, with a warm page cache,
//!   and the resident memory per block once `/blockchain.json` was served;
//! - accepting blocks at the tip through `POST /mined` (chaindata on a
//!   tmpfs, so the figure is the node's cost, not the disk's), alone and
//!   while 4 clients download `/blockchain.json` without pause;
//! - serving `/blockchain.json`: time to the first byte, throughput beside
//!   nginx sending the same bytes from a file (same client, same run), and
//!   the node's memory while 16 clients download it at once;
//! - an initial sync: a fresh node catching up the whole chain from a peer
//!   (on this disk), beside the disk's own limit for the same files written
//!   in batches of 500 (temporary files, one syncfs, renames, one folder
//!   sync), and the blocks it fetched (each once).
//!
//! Run with `cargo bench --bench scale`; `JBC_SCALE_SIZES=1000,100000`
//! picks the lengths, and `JBC_SCALE_ONLY=accept` measures only the
//! accepting of blocks (with `/status` latency beside the downloads). The chains are made once (difficulty 1, fast enough
//! to mine on one core) and kept in `target/scale/`. The tmpfs needs root;
//! nginx is found on `PATH` or in `/usr/sbin` (Debian's `nginx` package).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jbc::DEFAULT_GENESIS_JSON;
use jbc::block::{Block, PrevHash, header_prefix};
use jbc::block_file_name;
use jbc::{NonceHasher, state_meets_difficulty, state_to_hash};

const JBC: &str = env!("CARGO_BIN_EXE_jbc");
const DATA: &str = "Mined by node on port 5001";

fn main() {
    let sizes: Vec<usize> = std::env::var("JBC_SCALE_SIZES")
        .unwrap_or_else(|_| "1000,100000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/scale");
    std::fs::create_dir_all(&root).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for n in sizes {
        // Leftovers of an earlier run go first: ext4 allocates inodes
        // slowly for minutes after a mass deletion, which would tax the
        // disk figures below.
        for leftover in [format!("disk{n}"), format!("fresh{n}")] {
            let _ = std::fs::remove_dir_all(root.join(leftover));
        }
        let _ = std::fs::remove_file(root.join(format!("{n}/peers.json")));
        println!("\n== {n} blocks ==");
        let chain = mine(n);
        let folder = root.join(format!("{n}"));
        write_once(&folder.join("chaindata"), &chain);
        runtime.block_on(measure(n, &chain, &folder, &root));
    }
}

/// A valid chain of `n` blocks at difficulty 1, mined with the midstate.
fn mine(n: usize) -> Vec<Block> {
    let started = Instant::now();
    let mut blocks = vec![Block::from_json(DEFAULT_GENESIS_JSON.as_bytes()).unwrap()];
    while blocks.len() < n {
        let prev = blocks.last().unwrap();
        let index = prev.index + 1;
        let prev_hash = PrevHash::from(prev.hash);
        let prefix = header_prefix(index, &prev_hash, DATA, 1_700_000_000);
        let mut hasher = NonceHasher::new(prefix.as_bytes(), 0);
        while !state_meets_difficulty(&hasher.state(), 1) {
            hasher.advance();
        }
        let block = Block::new(index, 1_700_000_000, prev_hash, DATA.into(), hasher.nonce());
        debug_assert_eq!(block.hash, state_to_hash(&hasher.state()));
        blocks.push(block);
    }
    eprintln!(
        "(mined {n} blocks in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    blocks
}

/// Writes the chain's files once (kept for later runs).
fn write_once(chaindata: &Path, blocks: &[Block]) {
    let last = chaindata.join(block_file_name(blocks.len() as u64 - 1));
    if last.exists()
        && !chaindata
            .join(block_file_name(blocks.len() as u64))
            .exists()
    {
        return;
    }
    let _ = std::fs::remove_dir_all(chaindata);
    write_files(chaindata, blocks);
    Command::new("sync").status().unwrap();
}

fn write_files(chaindata: &Path, blocks: &[Block]) {
    std::fs::create_dir_all(chaindata).unwrap();
    std::thread::scope(|scope| {
        for part in blocks.chunks(blocks.len().div_ceil(4)) {
            scope.spawn(move || {
                for block in part {
                    std::fs::write(
                        chaindata.join(block_file_name(block.index)),
                        block.to_json_line(),
                    )
                    .unwrap();
                }
            });
        }
    });
}

/// A `jbc` process started for a measurement.
struct Node {
    child: Child,
    url: String,
    logs: Arc<Mutex<Vec<String>>>,
    /// Where it runs: its operator cookie is there.
    dir: std::path::PathBuf,
}

impl Node {
    /// The operator key the node wrote at start.
    fn operator_key(&self) -> String {
        jbc::read_cookie(&self.dir.join(jbc::COOKIE_FILE)).expect("the node wrote its cookie")
    }

    fn start(dir: &Path, args: &[&str]) -> (Node, Duration) {
        let started = Instant::now();
        let mut child = Command::new(JBC)
            .args(["--port", "0", "--difficulty", "1", "--peers", ""])
            .args(args)
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(port) = line
                    .split("listening on http://")
                    .nth(1)
                    .and_then(|a| a.rsplit(':').next())
                    .and_then(|p| p.trim().parse::<u16>().ok())
                {
                    let _ = port_tx.send(port);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let port = port_rx
            .recv_timeout(Duration::from_secs(600))
            .expect("the node listens");
        let took = started.elapsed();
        let node = Node {
            child,
            url: format!("http://127.0.0.1:{port}"),
            logs,
            dir: dir.to_path_buf(),
        };
        (node, took)
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    fn wait_for_log(&self, needle: &str, patience: Duration) -> bool {
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if self.logs.lock().unwrap().iter().any(|l| l.contains(needle)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

async fn measure(n: usize, chain: &[Block], folder: &Path, root: &Path) {
    let client = reqwest::Client::new();
    if std::env::var("JBC_SCALE_ONLY").as_deref() == Ok("accept") {
        accepting(n, chain, folder, root, &client).await;
        return;
    }
    // -- start-up, warm cache (a first start warms it)
    drop(Node::start(folder, &[]));
    let (node, took) = Node::start(folder, &[]);
    let rss_started = node.rss_kib();
    let body = download(&client, &format!("{}/blockchain.json", node.url)).await;
    assert_eq!(
        body.bytes as usize,
        serde_json::to_vec(chain).unwrap().len()
    );
    let rss_served = node.rss_kib();
    println!(
        "start-up: {:.2} s to listening; resident {} MB after start, {} MB once served ({:.0} bytes per block)",
        took.as_secs_f64(),
        rss_started / 1024,
        rss_served / 1024,
        rss_served as f64 * 1024.0 / n as f64
    );

    // -- serving, beside nginx
    let json_path = root.join(format!("www{n}/blockchain.json"));
    std::fs::create_dir_all(json_path.parent().unwrap()).unwrap();
    let mut bytes = Vec::new();
    let mut response = client
        .get(format!("{}/blockchain.json", node.url))
        .send()
        .await
        .unwrap();
    while let Some(chunk) = response.chunk().await.unwrap() {
        bytes.extend_from_slice(&chunk);
    }
    std::fs::write(&json_path, &bytes).unwrap();
    let rounds = (200_000_000 / bytes.len()).clamp(3, 2000);
    let ours = throughput(&client, &format!("{}/blockchain.json", node.url), rounds).await;
    println!(
        "serving /blockchain.json ({:.1} MB): first byte {:.2} ms, {:.0} MB/s over {rounds} downloads",
        bytes.len() as f64 / 1e6,
        ours.first_byte.as_secs_f64() * 1e3,
        ours.mb_per_s
    );
    match Nginx::start(json_path.parent().unwrap(), root) {
        Some(nginx) => {
            let theirs =
                throughput(&client, &format!("{}/blockchain.json", nginx.url), rounds).await;
            println!(
                "  nginx, the same bytes from a file: first byte {:.2} ms, {:.0} MB/s; jbc/nginx = {:.2}",
                theirs.first_byte.as_secs_f64() * 1e3,
                theirs.mb_per_s,
                ours.mb_per_s / theirs.mb_per_s
            );
        }
        None => println!("  nginx not found (apt-get install nginx): no comparison"),
    }
    let before = node.rss_kib();
    let peak = Arc::new(Mutex::new(before));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, pid) = (Arc::clone(&peak), Arc::clone(&sampling), node.child.id());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                let rss = rss_of(pid);
                let mut peak = peak.lock().unwrap();
                *peak = (*peak).max(rss);
                drop(peak);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let downloads: Vec<_> = (0..16)
        .map(|_| {
            let (client, url) = (client.clone(), format!("{}/blockchain.json", node.url));
            tokio::spawn(async move { download(&client, &url).await })
        })
        .collect();
    for download in downloads {
        download.await.unwrap();
    }
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = *peak.lock().unwrap();
    println!(
        "  16 downloads at once: resident {} MB before, peak {} MB during (+{} MB)",
        before / 1024,
        peak / 1024,
        peak.saturating_sub(before) / 1024
    );
    drop(node);

    accepting(n, chain, folder, root, &client).await;

    // -- an initial sync from a peer, on this disk, beside the disk's limit
    //    (both write into new folders; they are deleted only at the end)
    let limit = disk_limit(&root.join(format!("disk{n}")), chain);
    let (peer, _) = Node::start(folder, &[]);
    let fresh = root.join(format!("fresh{n}"));
    std::fs::create_dir_all(&fresh).unwrap();
    let started = Instant::now();
    let (node, _) = Node::start(&fresh, &["--peers", &peer.url]);
    let mut progress_seen = false;
    loop {
        let status: serde_json::Value =
            serde_json::from_slice(&download_bytes(&client, &format!("{}/status", node.url)).await)
                .unwrap();
        progress_seen |= !status["catching_up"].is_null();
        if status["height"].as_u64() == Some(n as u64 - 1) {
            let took = started.elapsed().as_secs_f64();
            let fetched = status["blocks_fetched"].as_u64().unwrap();
            println!(
                "initial sync, fresh node from a peer (this disk): {took:.1} s, {:.0} blocks/s; the disk's limit for the same files in batches of 500: {limit:.0} blocks/s; ratio {:.2}; blocks fetched {fetched} of {} (progress on /status: {progress_seen})",
                n as f64 / took,
                n as f64 / took / limit,
                n - 1
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        node.wait_for_log("blocks/s)", Duration::from_secs(5)) || n < 2000,
        "the catch-up's summary is logged"
    );
    drop(node);
    drop(peer);
    let _ = std::fs::remove_dir_all(&fresh);
    let _ = std::fs::remove_dir_all(root.join(format!("disk{n}")));
}

/// Accepting blocks at the tip, chaindata on a tmpfs: through sync (pages
/// of blocks from a peer) and through POST /mined (one block per request),
/// alone and while 4 clients download /blockchain.json; /status's latency
/// meanwhile.
async fn accepting(
    n: usize,
    chain: &[Block],
    folder: &Path,
    root: &Path,
    client: &reqwest::Client,
) {
    let client = client.clone();
    match Tmpfs::mount(&root.join("tmpfs"), n) {
        None => println!("accepting blocks: not measured (mounting a tmpfs needs root)"),
        Some(tmpfs) => {
            let extra = extend(chain, 6000);
            // The peer: the chain on disk, 4 000 blocks ahead. It takes no
            // inbound peers and chooses no outbound ones, so it never
            // announces its blocks to the node: the node learns them only
            // by syncing, as measured.
            let (peer, _) = Node::start(folder, &["--max-inbound", "0", "--outbound-peers", "0"]);
            post_all(&client, &peer.url, &extra[..2000]).await;
            write_files(&tmpfs.path.join("chaindata"), chain);
            // It syncs when told (an announcement), not on a timer, so the
            // second sync below is all measured.
            let (node, _) = Node::start(&tmpfs.path, &["--sync-interval", "3600"]);
            let started = Instant::now();
            let added = client
                .post(format!("{}/peers", node.url))
                .bearer_auth(node.operator_key())
                .header("content-type", "application/json")
                .body(format!(r#"{{"url": "{}"}}"#, peer.url))
                .send()
                .await
                .unwrap();
            assert_eq!(added.status().as_u16(), 201);
            wait_height(&client, &node.url, extra[1999].index).await;
            let synced_alone = 2000.0 / started.elapsed().as_secs_f64();
            post_all(&client, &peer.url, &extra[2000..4000]).await;
            let downloaders = Downloaders::start(&node.url);
            // An announcement of the peer's tip, naming it, starts the sync.
            let started = Instant::now();
            let answer = client
                .post(format!("{}/mined", node.url))
                .header("content-type", "application/json")
                .header("x-jbc-peer", &peer.url)
                .body(extra[3999].to_json_line())
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status().as_u16(), 202);
            wait_height(&client, &node.url, extra[3999].index).await;
            let synced_busy = 2000.0 / started.elapsed().as_secs_f64();
            let asking = StatusAsker::start(&node.url);
            let posted_busy = post_all(&client, &node.url, &extra[4000..5000]).await;
            let status_busy = asking.stop();
            let downloads = downloaders.stop();
            let asking = StatusAsker::start(&node.url);
            let posted_alone = post_all(&client, &node.url, &extra[5000..]).await;
            let status_alone = asking.stop();
            println!(
                "accepting blocks at the tip (tmpfs): through sync {synced_alone:.0} blocks/s, \
                 {synced_busy:.0} blocks/s while 4 clients download /blockchain.json; \
                 through POST /mined (one block per request) {posted_alone:.0} blocks/s, \
                 {posted_busy:.0} blocks/s beside the downloads ({downloads} downloads meanwhile)"
            );
            println!(
                "  /status meanwhile (asked every 10 ms): alone {status_alone}; beside the downloads {status_busy}"
            );
            drop(node);
            drop(peer);
            // The cached chain loses the blocks the peer took.
            for block in &extra[..4000] {
                let _ = std::fs::remove_file(
                    folder.join("chaindata").join(block_file_name(block.index)),
                );
            }
        }
    }
}

/// A client asking `/status` every 10 ms on its own thread, timing each
/// answer.
struct StatusAsker {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Duration>>,
}

impl StatusAsker {
    fn start(url: &str) -> StatusAsker {
        let stop = Arc::new(AtomicBool::new(false));
        let (url, flag) = (format!("{url}/status"), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let client = reqwest::Client::new();
            let mut times = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let started = Instant::now();
                runtime.block_on(download_bytes(&client, &url));
                times.push(started.elapsed());
                std::thread::sleep(Duration::from_millis(10));
            }
            times
        });
        StatusAsker { stop, thread }
    }

    /// Stops it: "p50 X ms, p99 Y ms, max Z ms over N answers".
    fn stop(self) -> String {
        self.stop.store(true, Ordering::Relaxed);
        let mut times = self.thread.join().unwrap();
        times.sort();
        if times.is_empty() {
            return "no answers".into();
        }
        let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} answers",
            at(0.5),
            at(0.99),
            at(1.0),
            times.len()
        )
    }
}

/// Waits until the node's height is `height`.
async fn wait_height(client: &reqwest::Client, url: &str, height: u64) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let status: serde_json::Value =
            serde_json::from_slice(&download_bytes(client, &format!("{url}/status")).await)
                .unwrap();
        if status["height"].as_u64() >= Some(height) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the node did not reach height {height}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Clients downloading `/blockchain.json` without pause, each on its own
/// thread (other clients, not the measuring one's runtime).
struct Downloaders {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<u64>>,
}

impl Downloaders {
    fn start(url: &str) -> Downloaders {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..4)
            .map(|_| {
                let (url, stop) = (format!("{url}/blockchain.json"), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    let client = reqwest::Client::new();
                    let mut downloads = 0;
                    while !stop.load(Ordering::Relaxed) {
                        runtime.block_on(download(&client, &url));
                        downloads += 1;
                    }
                    downloads
                })
            })
            .collect();
        Downloaders { stop, threads }
    }

    /// Stops them; how many downloads they made.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().map(|t| t.join().unwrap()).sum()
    }
}

fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// `extra` more blocks on the chain's tip.
fn extend(chain: &[Block], extra: usize) -> Vec<Block> {
    let mut blocks = vec![chain.last().unwrap().clone()];
    while blocks.len() <= extra {
        let prev = blocks.last().unwrap();
        let index = prev.index + 1;
        let prefix = header_prefix(index, &prev.hash.into(), DATA, 1_700_000_001);
        let mut hasher = NonceHasher::new(prefix.as_bytes(), 0);
        while !state_meets_difficulty(&hasher.state(), 1) {
            hasher.advance();
        }
        blocks.push(Block::new(
            index,
            1_700_000_001,
            prev.hash.to_string(),
            DATA.into(),
            hasher.nonce(),
        ));
    }
    blocks.split_off(1)
}

/// Posts each block in turn; blocks per second.
async fn post_all(client: &reqwest::Client, url: &str, blocks: &[Block]) -> f64 {
    let started = Instant::now();
    for block in blocks {
        let response = client
            .post(format!("{url}/mined"))
            .header("content-type", "application/json")
            .body(block.to_json_line())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }
    blocks.len() as f64 / started.elapsed().as_secs_f64()
}

struct Download {
    bytes: u64,
    first_byte: Duration,
}

async fn download(client: &reqwest::Client, url: &str) -> Download {
    let started = Instant::now();
    let mut response = client.get(url).send().await.unwrap();
    let mut first_byte = None;
    let mut bytes = 0u64;
    while let Some(chunk) = response.chunk().await.unwrap() {
        first_byte.get_or_insert_with(|| started.elapsed());
        bytes += chunk.len() as u64;
    }
    Download {
        bytes,
        first_byte: first_byte.unwrap_or_default(),
    }
}

async fn download_bytes(client: &reqwest::Client, url: &str) -> Vec<u8> {
    client
        .get(url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

struct Throughput {
    mb_per_s: f64,
    first_byte: Duration,
}

/// `rounds` downloads one after the other: MB/s, and the median time to
/// the first byte.
async fn throughput(client: &reqwest::Client, url: &str, rounds: usize) -> Throughput {
    download(client, url).await;
    let started = Instant::now();
    let mut bytes = 0;
    let mut first = Vec::new();
    for _ in 0..rounds {
        let d = download(client, url).await;
        bytes += d.bytes;
        first.push(d.first_byte);
    }
    first.sort();
    Throughput {
        mb_per_s: bytes as f64 / 1e6 / started.elapsed().as_secs_f64(),
        first_byte: first[first.len() / 2],
    }
}

/// The disk's own limit: the chain's files written in batches of 500, as
/// the node writes a page (temporary files, one syncfs, renames, one
/// folder sync). Blocks per second.
fn disk_limit(dir: &Path, blocks: &[Block]) -> f64 {
    std::fs::create_dir_all(dir).unwrap();
    let started = Instant::now();
    for batch in blocks.chunks(500) {
        let files: Vec<(String, Vec<u8>)> = batch
            .iter()
            .map(|block| (block_file_name(block.index), block.to_json_line()))
            .collect();
        jbc::write_all_atomic(dir, files.iter().map(|(n, b)| (n.clone(), b.as_slice()))).unwrap();
    }
    blocks.len() as f64 / started.elapsed().as_secs_f64()
}

/// nginx serving a folder on a free port.
struct Nginx {
    child: Child,
    url: String,
}

impl Nginx {
    fn start(www: &Path, root: &Path) -> Option<Nginx> {
        let binary = ["nginx", "/usr/sbin/nginx"]
            .into_iter()
            .find(|b| Command::new(b).arg("-v").output().is_ok())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let prefix = root.join("nginx");
        std::fs::create_dir_all(prefix.join("logs")).ok()?;
        let conf = prefix.join("nginx.conf");
        let mut file = std::fs::File::create(&conf).ok()?;
        write!(
            file,
            "daemon off; worker_processes 1; pid {pid};\n\
             error_log {log} error;\n\
             events {{ worker_connections 1024; }}\n\
             http {{ access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000;\n\
               client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp};\n\
               uwsgi_temp_path {tmp}; scgi_temp_path {tmp};\n\
               types {{ application/json json; }}\n\
               server {{ listen 127.0.0.1:{port}; root {www}; }} }}\n",
            pid = prefix.join("nginx.pid").display(),
            log = prefix.join("logs/error.log").display(),
            tmp = prefix.display(),
            www = www.display(),
        )
        .ok()?;
        let child = Command::new(binary)
            .args([
                "-p",
                &prefix.display().to_string(),
                "-c",
                &conf.display().to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Nginx {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tmpfs big enough for `n` block files, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, n: usize) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).ok()?;
        let _ = Command::new("umount")
            .arg(path)
            .stderr(Stdio::null())
            .status();
        let size = format!("size={}m", 64 + n * 5 / 1024);
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &size, "tmpfs"])
            .arg(path)
            .stderr(Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Tmpfs {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}
