//! Hosts for tests and benchmarks of nodes on several machines: network
//! namespaces joined by a bridge (veth pairs, addresses from 10.200.0.0/16
//! that the test assigns inside its own namespaces), and HTTP clients on
//! threads inside the namespace of the bridge or of a host. Only those
//! addresses are ever contacted.

use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{JBC, Jbc, PATIENCE};
use jbc::block::{Block, blocks_from_json};

/// Why this machine cannot run the test, if it cannot.
pub fn namespaces_unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not running as root".into());
    }
    let probe = format!("jbcprobe{}", std::process::id());
    match Command::new("ip").args(["netns", "add", &probe]).output() {
        Err(error) => Some(format!("cannot run ip: {error}")),
        Ok(output) if !output.status.success() => Some(format!(
            "ip netns add failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Ok(_) => {
            let _ = Command::new("ip").args(["netns", "del", &probe]).status();
            None
        }
    }
}

/// The test's namespaces, deleted (with their links) when dropped.
pub struct Net {
    /// The namespace holding the bridge and the test's client.
    pub switch: String,
    /// One namespace per host.
    pub hosts: Vec<String>,
    prefix: String,
    /// The network's difficulty, for every node started.
    difficulty: u32,
}

impl Net {
    /// `count` hosts on a bridge; `tag` tells this test's links from
    /// another's running at the same time.
    pub fn create(count: usize, tag: char, difficulty: u32) -> Result<Net, String> {
        let prefix = format!("jbc{}{tag}", std::process::id());
        let net = Net {
            switch: format!("{prefix}sw"),
            hosts: (0..count).map(|n| format!("{prefix}h{n}")).collect(),
            prefix,
            difficulty,
        };
        let ip = |args: &[&str]| -> Result<(), String> {
            let output = Command::new("ip")
                .args(args)
                .output()
                .map_err(|e| e.to_string())?;
            if output.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "ip {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&output.stderr).trim()
                ))
            }
        };
        ip(&["netns", "add", &net.switch])?;
        ip(&["-n", &net.switch, "link", "add", "br0", "type", "bridge"])?;
        ip(&[
            "-n",
            &net.switch,
            "addr",
            "add",
            "10.200.0.254/16",
            "dev",
            "br0",
        ])?;
        ip(&["-n", &net.switch, "link", "set", "br0", "up"])?;
        for (n, host) in net.hosts.iter().enumerate() {
            let port = net.port(n);
            ip(&["netns", "add", host])?;
            ip(&[
                "-n",
                &net.switch,
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                host,
            ])?;
            ip(&["-n", &net.switch, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &net.switch, "link", "set", &port, "up"])?;
            let address = format!("{}/16", Net::address(n));
            ip(&["-n", host, "addr", "add", &address, "dev", "eth0"])?;
            ip(&["-n", host, "link", "set", "eth0", "up"])?;
            ip(&["-n", host, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    /// The bridge port of host `n`.
    pub fn port(&self, n: usize) -> String {
        format!("{}p{n}", self.prefix)
    }

    /// Host `n`'s address: 10.200.0.1 to .250, then 10.200.1.1 and on
    /// (the bridge is 10.200.0.254).
    pub fn address(n: usize) -> String {
        format!("10.200.{}.{}", n / 250, n % 250 + 1)
    }

    pub fn url(n: usize) -> String {
        format!("http://{}:5001", Net::address(n))
    }

    /// Takes host `n`'s link down or up.
    pub fn link(&self, n: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        let status = Command::new("ip")
            .args(["-n", &self.switch, "link", "set", &self.port(n), state])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Starts host `n`'s node in `dir`, with every other host as a peer.
    pub fn start(&self, n: usize, dir: &std::path::Path, mine: bool) -> Jbc {
        let peers: Vec<String> = (0..self.hosts.len())
            .filter(|&p| p != n)
            .map(Net::url)
            .collect();
        self.start_with(n, dir, mine, &peers.join(","), &[])
    }

    /// Starts host `n`'s node in `dir` with `peers` and `more` arguments.
    pub fn start_with(
        &self,
        n: usize,
        dir: &std::path::Path,
        mine: bool,
        peers: &str,
        more: &[&str],
    ) -> Jbc {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.hosts[n], JBC]);
        let data = format!("mined on host {n}");
        let difficulty = self.difficulty.to_string();
        let mut args = vec![
            "--host",
            "0.0.0.0",
            "--port",
            "5001",
            "--difficulty",
            &difficulty,
            "--connect-timeout-ms",
            "500",
            "--request-timeout-ms",
            "3000",
            "--data",
            &data,
        ];
        args.extend(["--peers", peers]);
        if !more.contains(&"--sync-interval") {
            args.extend(["--sync-interval", "0.5"]);
        }
        args.extend(more);
        if mine {
            args.extend(["--mine", "--threads", "1"]);
        }
        Jbc::start_command(command, dir, &args)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for namespace in self.hosts.iter().chain([&self.switch]) {
            let _ = Command::new("ip")
                .args(["netns", "del", namespace])
                .status();
        }
    }
}

/// A request for the client thread: the URL, a JSON body to POST (a GET
/// without one), and where its answer goes.
struct Request {
    url: String,
    json: Option<String>,
    /// The operator key, for an operator route.
    bearer: Option<String>,
    reply: mpsc::Sender<Result<(u16, Vec<u8>), String>>,
}

/// An HTTP client on a thread inside one of the test's namespaces.
pub struct Client {
    requests: mpsc::Sender<Request>,
}

impl Client {
    pub fn start(namespace: &str) -> Client {
        let path = format!("/var/run/netns/{namespace}");
        let (requests, incoming) = mpsc::channel::<Request>();
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("the namespace exists");
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("the thread enters the namespace");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            for request in incoming {
                let answer = runtime.block_on(async {
                    let mut sent = match request.json {
                        None => http.get(&request.url),
                        Some(json) => http
                            .post(&request.url)
                            .header("content-type", "application/json")
                            .body(json),
                    };
                    if let Some(key) = request.bearer {
                        sent = sent.bearer_auth(key);
                    }
                    let response = sent.send().await.map_err(|e| e.to_string())?;
                    let code = response.status().as_u16();
                    let body = response.bytes().await.map_err(|e| e.to_string())?;
                    Ok((code, body.to_vec()))
                });
                let _ = request.reply.send(answer);
            }
        });
        Client { requests }
    }

    fn send(
        &self,
        url: &str,
        json: Option<String>,
        bearer: Option<String>,
    ) -> Result<(u16, Vec<u8>), String> {
        let (reply, answer) = mpsc::channel();
        let request = Request {
            url: url.to_string(),
            json,
            bearer,
            reply,
        };
        self.requests.send(request).unwrap();
        answer.recv().unwrap()
    }

    /// The body of a GET, whatever its status.
    pub fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        self.send(url, None, None).map(|(_, body)| body)
    }

    /// POSTs `json`: the status and the body.
    pub fn post(&self, url: &str, json: &serde_json::Value) -> Result<(u16, Vec<u8>), String> {
        self.send(url, Some(json.to_string()), None)
    }

    /// POSTs `json` as the node's operator (`key`): the status and the body.
    pub fn post_as_operator(
        &self,
        url: &str,
        json: &serde_json::Value,
        key: &str,
    ) -> Result<(u16, Vec<u8>), String> {
        self.send(url, Some(json.to_string()), Some(key.to_string()))
    }

    pub fn chain(&self, n: usize) -> Result<Vec<Block>, String> {
        let body = self.get(&format!("{}/blockchain.json", Net::url(n)))?;
        blocks_from_json(&body).map_err(|e| e.to_string())
    }

    /// The chains of hosts `0..count`, asked one after the other.
    pub fn chains(&self, count: usize) -> Result<Vec<Vec<Block>>, String> {
        (0..count).map(|n| self.chain(n)).collect()
    }

    /// Host `n`'s `/status`.
    pub fn status(&self, n: usize) -> Result<serde_json::Value, String> {
        let body = self.get(&format!("{}/status", Net::url(n)))?;
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    }
}

/// Polls `probe` until it gives a value, failing after PATIENCE.
pub fn wait<T>(what: &str, probe: impl FnMut() -> Option<T>) -> Result<T, String> {
    wait_up_to(what, PATIENCE, probe)
}

/// Polls `probe` until it gives a value, failing after `patience`.
pub fn wait_up_to<T>(
    what: &str,
    patience: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `work` on a thread of its own inside `namespace`, with a tokio
/// runtime of its own: every socket it makes is the namespace's.
pub fn in_namespace<T, F>(
    namespace: &str,
    work: impl FnOnce() -> F + Send + 'static,
) -> std::thread::JoinHandle<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = T>,
{
    let path = format!("/var/run/netns/{namespace}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("the namespace exists");
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("the thread enters the namespace");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(work())
    })
}
