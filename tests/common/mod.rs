//! Helpers for tests that run real `jbc` processes on 127.0.0.1, each in its
//! own temporary folder, and talk HTTP to them. Every wait has a deadline and
//! every process is stopped, by the test or at the latest when dropped.
#![allow(dead_code)]

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jbc::DEFAULT_GENESIS_JSON;
use jbc::block::{Block, blocks_from_json};
use jbc::block_file_name;
use jbc::chain::Template;

pub mod browser;

/// The binary under test.
pub const JBC: &str = env!("CARGO_BIN_EXE_jbc");
/// The longest any single wait in these tests may take: long enough for a
/// machine whose cores are busy with other work (where the nice-19 miner
/// runs about 75 times slower than on an idle one).
pub const PATIENCE: Duration = Duration::from_secs(120);

/// A running `jbc` process.
pub struct Jbc {
    child: Child,
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    pub port: u16,
    /// The folder it runs in (its `chaindata/` is below it by default).
    pub dir: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
}

/// The nice level of a test node's miner: 5 above the suite's own (5 when
/// it runs at 0; 15 under `nice`). At the node's default (19), a miner
/// beside busy loops and the rest of the suite gets a few tens of kH/s, and
/// tests waiting for blocks at difficulty 5 starve on a busy CI machine; at
/// 5 it keeps millions (`jbc bench --miner-nice N` beside two busy loops:
/// 19 → 0.46, 10 → 1.1, 5 → 11 MH/s). Always below the servers' priority:
/// under `nice -n 10` a miner at 5 (as root may set) starved the nodes'
/// servers, and three fast miners never showed one tip.
pub fn test_miner_nice() -> String {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the parenthesised name; nice is field 19 overall.
    let own: i32 = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(19 - 3))
        .and_then(|nice| nice.parse().ok())
        .unwrap_or(0);
    (own.max(0) + 5).min(19).to_string()
}

/// A test node's flags, typed: `Jbc::builder().difficulty(3).peers(&[..])
/// .start(dir)`. A flag the builder has no method for goes through
/// [`Builder::flag`].
#[derive(Debug, Default, Clone)]
pub struct Builder {
    args: Vec<String>,
}

impl Builder {
    fn with(mut self, flag: &str, value: impl ToString) -> Builder {
        self.args.push(format!("--{flag}"));
        self.args.push(value.to_string());
        self
    }

    pub fn difficulty(self, digits: u32) -> Builder {
        self.with("difficulty", digits)
    }
    /// Peers' base URLs (none: an empty list).
    pub fn peers<S: AsRef<str>>(self, urls: &[S]) -> Builder {
        let list: Vec<&str> = urls.iter().map(AsRef::as_ref).collect();
        self.with("peers", list.join(","))
    }
    pub fn sync_interval(self, seconds: f64) -> Builder {
        self.with("sync-interval", seconds)
    }
    pub fn port(self, port: u16) -> Builder {
        self.with("port", port)
    }
    pub fn threads(self, threads: usize) -> Builder {
        self.with("threads", threads)
    }
    /// Any other flag, by its name without the dashes.
    pub fn flag(self, flag: &str, value: impl ToString) -> Builder {
        self.with(flag, value)
    }
    /// A flag without a value (`--no-mine`).
    pub fn switch(mut self, flag: &str) -> Builder {
        self.args.push(format!("--{flag}"));
        self
    }

    fn args(&self) -> Vec<&str> {
        self.args.iter().map(String::as_str).collect()
    }

    /// Starts the node in `dir` and waits until it listens.
    pub fn start(self, dir: &Path) -> Jbc {
        Jbc::start(dir, &self.args())
    }
}

impl Jbc {
    /// A node's flags, to start it with [`Builder::start`].
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// `GET /status`, parsed.
    pub async fn status(&self) -> serde_json::Value {
        let body = get(&format!("{}/status", self.url))
            .await
            .expect("/status answers");
        serde_json::from_slice(&body).expect("/status is JSON")
    }

    /// The height `/status` reports.
    pub async fn height(&self) -> u64 {
        self.status().await["height"]
            .as_u64()
            .expect("/status has a height")
    }

    /// `POST /mined` with `block`, as a peer announces it; `sender`: the
    /// `X-Jbc-Peer` it names, if any. The status code and the answer.
    pub async fn announce(&self, block: &Block, sender: Option<&str>) -> (u16, serde_json::Value) {
        let mut request = reqwest::Client::new()
            .post(format!("{}/mined", self.url))
            .header("content-type", "application/json")
            .body(block.to_json_line());
        if let Some(sender) = sender {
            request = request.header("x-jbc-peer", sender);
        }
        let response = request.send().await.expect("the node answers");
        let code = response.status().as_u16();
        let body = response.bytes().await.expect("the answer reads");
        (code, serde_json::from_slice(&body).unwrap_or_default())
    }

    /// What `GET /peers` says of `url`, if it lists it.
    pub async fn peer(&self, url: &str) -> Option<serde_json::Value> {
        peers(self).await.into_iter().find(|p| p["url"] == url)
    }

    /// Waits until `GET /peers` says `field` is `value` for `url`.
    pub async fn wait_for_peer(&self, url: &str, field: &str, value: &str) {
        let what = format!("{url} to show {field} {value:?} on {}", self.url);
        wait_for(&what, PATIENCE, || async {
            let view = self.peer(url).await?;
            (view[field] == value).then_some(())
        })
        .await
    }

    /// `POST /peers` with `url`, as the operator: the status code and the
    /// answer.
    pub async fn add_peer(&self, url: &str) -> (u16, serde_json::Value) {
        let response = self.as_operator(reqwest::Method::POST, url).await;
        let code = response.status().as_u16();
        let body = response.bytes().await.expect("the answer reads");
        (
            code,
            serde_json::from_slice(&body).expect("the answer is JSON"),
        )
    }

    /// `DELETE /peers` with `url`, as the operator: the status code.
    pub async fn remove_peer(&self, url: &str) -> u16 {
        self.as_operator(reqwest::Method::DELETE, url)
            .await
            .status()
            .as_u16()
    }

    async fn as_operator(&self, method: reqwest::Method, url: &str) -> reqwest::Response {
        reqwest::Client::new()
            .request(method, format!("{}/peers", self.url))
            .bearer_auth(self.operator_key())
            .header("content-type", "application/json")
            .body(serde_json::json!({ "url": url }).to_string())
            .send()
            .await
            .expect("the node answers")
    }

    /// Starts `jbc ARGS` in `dir` (listening on a free port unless ARGS
    /// say `--port`) and waits until it listens.
    pub fn start(dir: &Path, args: &[&str]) -> Jbc {
        let mut command = Command::new(JBC);
        if !args.contains(&"--port") {
            command.args(["--port", "0"]);
        }
        Jbc::start_command(command, dir, args)
    }

    /// Starts a node in `dir` whose chaindata holds `blocks` (no peers), as
    /// a peer for other nodes to sync from.
    pub fn serving(dir: &Path, blocks: &[Block], difficulty: u32) -> Jbc {
        Jbc::serving_on(dir, blocks, difficulty, 0)
    }

    /// Like [`Jbc::serving`], on `port`.
    pub fn serving_on(dir: &Path, blocks: &[Block], difficulty: u32, port: u16) -> Jbc {
        write_chaindata(&dir.join("chaindata"), blocks);
        Jbc::start(
            dir,
            &[
                "--port",
                &port.to_string(),
                "--difficulty",
                &difficulty.to_string(),
                "--peers",
                "",
            ],
        )
    }

    /// Like [`Jbc::start`] for another way of launching the node.
    /// The node logs at the default level unless `command` sets RUST_LOG.
    pub fn start_command(mut command: Command, dir: &Path, args: &[&str]) -> Jbc {
        std::fs::create_dir_all(dir).unwrap();
        command.args(args);
        if args.contains(&"--mine") && !args.contains(&"--miner-nice") {
            command.args(["--miner-nice", &test_miner_nice()]);
        }
        if !command.get_envs().any(|(name, _)| name == "RUST_LOG") {
            command.env("RUST_LOG", "info");
        }
        let mut child = command
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("jbc starts");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + PATIENCE;
        let port = loop {
            let found = logs.lock().unwrap().iter().find_map(|line| {
                let address = line.split("listening on http://").nth(1)?;
                address
                    .split_whitespace()
                    .next()?
                    .rsplit(':')
                    .next()?
                    .parse::<u16>()
                    .ok()
            });
            if let Some(port) = found {
                break port;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "jbc exited with {status} before listening:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
            assert!(Instant::now() < deadline, "jbc did not listen in time");
            std::thread::sleep(Duration::from_millis(20));
        };
        Jbc {
            child,
            url: format!("http://127.0.0.1:{port}"),
            port,
            dir: dir.to_path_buf(),
            logs,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Kills the node with SIGKILL, as a crash or power cut would.
    pub fn kill_hard(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The chaindata folder, when the node uses the default one.
    pub fn chaindata(&self) -> PathBuf {
        self.dir.join("chaindata")
    }

    /// The node's operator key, from the cookie it wrote at start (beside
    /// its default chaindata folder).
    pub fn operator_key(&self) -> String {
        jbc::read_cookie(&self.dir.join(jbc::COOKIE_FILE)).expect("the node wrote its cookie")
    }

    /// Everything the node has logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// `GET /blockchain.json`, parsed.
    pub async fn chain(&self) -> Vec<Block> {
        let body = get(&format!("{}/blockchain.json", self.url))
            .await
            .expect("the node answers");
        blocks_from_json(&body).expect("the node serves blocks")
    }

    /// Waits (bounded) until the served chain has at least `len` blocks,
    /// and returns it.
    pub async fn chain_of_at_least(&self, len: usize) -> Vec<Block> {
        wait_for(
            &format!("{} to serve {len} blocks", self.url),
            PATIENCE,
            || async {
                let chain = self.chain().await;
                (chain.len() >= len).then_some(chain)
            },
        )
        .await
    }

    /// Waits (bounded) until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !self.logs().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the node with SIGTERM; its exit status and everything it
    /// logged, to its last line.
    #[allow(dead_code)]
    pub fn terminate_with_logs(self) -> (ExitStatus, String) {
        let logs = Arc::clone(&self.logs);
        let status = self.terminate();
        // The reader thread may still be taking the last lines.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline
            && !logs
                .lock()
                .unwrap()
                .iter()
                .any(|line| line.contains("stopped"))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let logs = logs.lock().unwrap().join("\n");
        (status, logs)
    }

    /// Stops the node with SIGTERM and returns its exit status.
    pub fn terminate(mut self) -> ExitStatus {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "jbc ignored SIGTERM:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Jbc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A GET over HTTP with a short timeout; the body, or why not.
pub async fn get(url: &str) -> Result<Vec<u8>, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
    Ok(bytes.to_vec())
}

/// POSTs `body` (JSON) to `path` of `node`, as its operator: the status
/// and the answer (null when it is not JSON).
pub async fn post_as_operator(
    node: &Jbc,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", node.url))
        .bearer_auth(node.operator_key())
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// Polls `probe` until it gives a value, failing the test after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The built-in genesis block every test network shares.
pub fn genesis() -> Block {
    Block::from_json(DEFAULT_GENESIS_JSON.as_bytes()).unwrap()
}

/// A valid chain of `len` blocks at `difficulty`, mined the plain way.
pub fn mine_chain(len: usize, difficulty: u32, tag: &str) -> Vec<Block> {
    let mut blocks = vec![genesis()];
    while blocks.len() < len {
        let data = format!("{tag} {}", blocks.len());
        let next =
            Template::next(blocks.last().unwrap(), data, 1_700_000_000, difficulty).solve_plainly();
        blocks.push(next);
    }
    blocks
}

/// Writes `blocks` as block files into `chaindata`.
pub fn write_chaindata(chaindata: &Path, blocks: &[Block]) {
    std::fs::create_dir_all(chaindata).unwrap();
    for block in blocks {
        std::fs::write(
            chaindata.join(block_file_name(block.index)),
            block.to_json_line(),
        )
        .unwrap();
    }
}

/// The `*.json` files of a folder with their bytes, sorted by name.
pub fn block_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// A port nothing listens on, for a node that others must know before it
/// starts. It is below Linux's ephemeral range (32768 and up), so no
/// outgoing connection on the machine can take it meanwhile, and never
/// handed out twice by this test binary.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        ^ u64::from(std::process::id()) << 20;
    let mut given = GIVEN.lock().unwrap();
    for attempt in 0..10_000u64 {
        let candidate =
            20_000 + ((seed.wrapping_mul(6364136223846793005) >> 33) + attempt * 7919) % 12_000;
        let port = candidate as u16;
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free port between 20000 and 32000");
}

/// A peer that answers every request with `response` (raw HTTP bytes) and
/// closes the connection. Returns its base URL; it stops with the runtime.
pub async fn fake_peer(response: &'static [u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(response).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    url
}

/// A peer that accepts connections and never answers.
pub async fn silent_peer() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

/// Runs `jbc ARGS` in `dir` to completion (bounded) and returns its status
/// and log.
pub fn run_to_end(dir: &Path, args: &[&str]) -> (ExitStatus, String) {
    run_to_end_saying(dir, args, Stdio::null())
}

/// [`run_to_end`], with what it printed to stdout before its log.
#[allow(dead_code)]
pub fn run_to_end_printing(dir: &Path, args: &[&str]) -> (ExitStatus, String) {
    let out = tempfile::tempfile().unwrap();
    let (status, log) = run_to_end_saying(dir, args, out.try_clone().unwrap().into());
    let mut printed = String::new();
    let mut out = out;
    std::io::Seek::rewind(&mut out).unwrap();
    std::io::Read::read_to_string(&mut out, &mut printed).unwrap();
    (status, printed + &log)
}

fn run_to_end_saying(dir: &Path, args: &[&str], stdout: Stdio) -> (ExitStatus, String) {
    let mut child = Command::new(JBC)
        .args(args)
        .current_dir(dir)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("jbc did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

/// A request a [`Recorder`] received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// When it arrived.
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// Its `X-Jbc-Peer` header.
    pub peer_header: Option<String>,
    pub body: Vec<u8>,
}

/// A fake peer that records every request it gets. As a node it serves a
/// fixed list of blocks (checked by nobody: a liar can serve anything)
/// with `/status`, `/blocks` and `/blockchain.json`, under its own node id,
/// and takes announcements; as no node at all it answers 404 to
/// everything.
pub struct Recorder {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Recorder {
    /// A jbc node at height 0 of the test network (`Some(difficulty)`), or
    /// a listener that is no node (`None`).
    pub async fn start(as_jbc_node_at_difficulty: Option<u32>) -> Recorder {
        match as_jbc_node_at_difficulty {
            Some(difficulty) => Recorder::serving(vec![genesis()], difficulty).await,
            None => Recorder::listen(None).await,
        }
    }

    /// A jbc node serving `blocks` and claiming `difficulty`.
    pub async fn serving(blocks: Vec<Block>, difficulty: u32) -> Recorder {
        Recorder::listen(Some((blocks, difficulty))).await
    }

    /// A jbc node serving `blocks` whose `/status` claims `height`.
    #[allow(dead_code)]
    pub async fn claiming(blocks: Vec<Block>, difficulty: u32, height: u64) -> Recorder {
        Recorder::listen_as(Some((blocks, difficulty)), Some(height), None).await
    }

    /// A jbc node at height 0 of the test network at difficulty 3 whose
    /// `GET /peers` answers `peers` (JSON).
    pub async fn listing(peers: String) -> Recorder {
        Recorder::listen_as(Some((vec![genesis()], 3)), None, Some(peers)).await
    }

    async fn listen(chain: Option<(Vec<Block>, u32)>) -> Recorder {
        Recorder::listen_as(chain, None, None).await
    }

    async fn listen_as(
        chain: Option<(Vec<Block>, u32)>,
        claimed: Option<u64>,
        listing: Option<String>,
    ) -> Recorder {
        // Each recorder is its own node, with its own id.
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let node_id = format!(
            "recorder-{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        use axum::http::{HeaderMap, Method, StatusCode, Uri};
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let sink = Arc::clone(&requests);
        let chain = Arc::new(chain);
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: axum::body::Bytes| {
                let (sink, chain, node_id) = (Arc::clone(&sink), Arc::clone(&chain), node_id.clone());
                let listing = listing.clone();
                async move {
                    let path = uri.path().to_string();
                    sink.lock().unwrap().push(Recorded {
                        at: Instant::now(),
                        method: method.to_string(),
                        path: path.clone(),
                        peer_header: headers
                            .get("x-jbc-peer")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string),
                        body: body.to_vec(),
                    });
                    let Some((blocks, difficulty)) = chain.as_ref() else {
                        return (StatusCode::NOT_FOUND, "{}".to_string());
                    };
                    let ok = |json: String| (StatusCode::OK, json);
                    let tip = blocks.last().unwrap();
                    match path.as_str() {
                        "/status" => ok(serde_json::json!({
                            "height": claimed.unwrap_or(tip.index), "tip": tip.hash, "difficulty": difficulty,
                            "genesis": genesis().hash, "peers": 0, "hashrate": 0,
                            "blocks_fetched": 0, "node_id": node_id, "version": "test"
                        })
                        .to_string()),
                        "/mined" => ok(r#"{"status":"known"}"#.into()),
                        "/peers" if listing.is_some() => ok(listing.unwrap_or_default()),
                        "/blockchain.json" => ok(serde_json::to_string(blocks).unwrap()),
                        "/blocks" => {
                            let from = uri
                                .query()
                                .unwrap_or("")
                                .split('&')
                                .find_map(|kv| kv.strip_prefix("from="))
                                .and_then(|v| v.parse::<usize>().ok())
                                .unwrap_or(0);
                            ok(serde_json::to_string(&blocks[from.min(blocks.len())..]).unwrap())
                        }
                        other => match other
                            .strip_prefix("/blocks/")
                            .and_then(|i| i.parse::<usize>().ok())
                            .and_then(|i| blocks.get(i))
                        {
                            Some(block) => ok(serde_json::to_string(block).unwrap()),
                            None => (StatusCode::NOT_FOUND, "{}".into()),
                        },
                    }
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Recorder { url, requests }
    }

    /// The requests so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// The bodies of the announcements so far.
    pub fn announcements(&self) -> Vec<Vec<u8>> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == "/mined")
            .map(|r| r.body)
            .collect()
    }
}

/// `GET /peers`, parsed.
pub async fn peers(node: &Jbc) -> Vec<serde_json::Value> {
    let body = get(&format!("{}/peers", node.url)).await.unwrap();
    serde_json::from_slice(&body).unwrap()
}

/// The URLs of the peers a node talks to (not banned, not itself).
pub async fn peer_urls(node: &Jbc) -> Vec<String> {
    peers(node)
        .await
        .into_iter()
        .filter(|peer| peer["state"] != "banned" && peer["state"] != "itself")
        .map(|peer| peer["url"].as_str().unwrap().to_string())
        .collect()
}

/// A valid chain that starts with `blocks` and has `len` blocks in all.
pub fn extend_chain(blocks: &[Block], len: usize, difficulty: u32, tag: &str) -> Vec<Block> {
    let mut blocks = blocks.to_vec();
    while blocks.len() < len {
        let data = format!("{tag} {}", blocks.len());
        let next =
            Template::next(blocks.last().unwrap(), data, 1_700_000_000, difficulty).solve_plainly();
        blocks.push(next);
    }
    blocks
}

/// A running stand-in for the original Python node (`tests/original/node.py`).
pub struct Original {
    child: Child,
    pub url: String,
    pub dir: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Original {
    /// Starts it in `dir` with `blocks` as its block files, on a free port.
    pub fn start(dir: &Path, blocks: &[Block], difficulty: u32, peers: &[&str]) -> Original {
        Original::start_on(dir, blocks, difficulty, free_port(), peers)
    }

    /// Starts it on `port`; `args` are peer URLs and the stand-in's flags
    /// (`--master`, `--drop-every N`, ...: see `tests/original/node.py`).
    pub fn start_on(
        dir: &Path,
        blocks: &[Block],
        difficulty: u32,
        port: u16,
        args: &[&str],
    ) -> Original {
        let peers = args;
        let chaindata = dir.join("chaindata");
        std::fs::create_dir_all(&chaindata).unwrap();
        // Written last block first, so the folder's order is not the chain's.
        for block in blocks.iter().rev() {
            std::fs::write(
                chaindata.join(block_file_name(block.index)),
                block.to_json_line(),
            )
            .unwrap();
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/original/node.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(&chaindata)
            .arg(difficulty.to_string())
            .args(peers)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the original node");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + PATIENCE;
        while !logs
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("listening on"))
        {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the original node exited with {status}");
            }
            assert!(
                Instant::now() < deadline,
                "the original node did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Original {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
            logs,
        }
    }

    /// What it printed so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Its chain as it serves it, sorted by index. Like the original, the
    /// stand-in reads its block files while a `POST /mined` may be writing
    /// one (opened, truncated, not yet written), and then fails the
    /// request; such a read is tried again, a bounded number of times.
    pub async fn chain(&self) -> Vec<Block> {
        let url = format!("{}/blockchain.json", self.url);
        let mut failures = Vec::new();
        for _ in 0..20 {
            match get(&url).await {
                Ok(body) => match blocks_from_json(&body) {
                    Ok(mut blocks) => {
                        blocks.sort_by_key(|b| b.index);
                        return blocks;
                    }
                    Err(error) => failures.push(error.to_string()),
                },
                Err(error) => failures.push(error),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let logs = self.logs();
        let tail = &logs[logs.len().saturating_sub(12)..];
        panic!(
            "the original node did not serve its chain: {failures:?}; it printed last: {tail:#?}"
        );
    }

    /// Stops it.
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Original {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
