//! The large case of a network that assembles itself: `JBC_BENCH_NODES`
//! (100) nodes, each on a host of its own (a network namespace on one
//! bridge, as `tests/netns.rs` makes them), each told only the seed's
//! address, two of them mining. It prints:
//! - the time until every node has chosen its outbound target (8);
//! - per block (at least `JBC_BENCH_BLOCKS`, 50), the delay from the
//!   miner's "mined block" line to each node's first line showing the block
//!   (accepted by announcement, or a sync reaching its height): p50, p99,
//!   max, and the orphan rate;
//! - bytes received (the host's `eth0`) and HTTP requests answered, per node
//!   per block, beside the mean block's size;
//! - resident memory and CPU of a node that does not mine;
//! - once the miners stop, what an idle node receives and spends;
//! - the same join time after 30 nodes are stopped and started again.
//!
//! Run with `cargo bench --bench network` as root (it says so and stops
//! otherwise); `JBC_BENCH_LINKS=false` runs the nodes without live links
//! (polling and posting over HTTP), for the figures before them. CI runs
//! the 12-node version in `tests/netns.rs`.

#[path = "../tests/common/mod.rs"]
mod common;
// Shared with the tests, which use the parts this benchmark does not.
#[path = "../tests/netns/net.rs"]
#[allow(dead_code)]
mod net;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::DateTime;
use common::Jbc;
use net::{Client, Net, namespaces_unavailable, wait_up_to};

/// How long the benchmark waits for anything: a hundred nodes on two cores
/// are slow to start.
const PATIENCE: Duration = Duration::from_secs(600);

fn wait<T>(what: &str, probe: impl FnMut() -> Option<T>) -> Result<T, String> {
    wait_up_to(what, PATIENCE, probe)
}

/// Hard enough for a block every second or so from two miners, on a
/// machine that also runs a hundred nodes.
const DIFFICULTY: u32 = 6;
const TARGET: u64 = 8;
/// Nodes stopped and started again.
const RESTARTED: usize = 30;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if let Some(reason) = namespaces_unavailable() {
        eprintln!("network bench: skipped, network namespaces cannot be made here: {reason}");
        return;
    }
    if let Err(error) = run() {
        eprintln!("network bench failed: {error}");
        std::process::exit(1);
    }
}

/// The bytes host `n`'s link received so far.
/// What every host received so far: what its bridge port sent it (a veth
/// pair's two ends count the same bytes), read with one `ip` for all
/// hosts: a process per host at the end of a window was a burst of CPU
/// that delayed the window's last block on two cores.
fn rx_bytes_all(net: &Net) -> Vec<u64> {
    let output = Command::new("ip")
        .args(["-n", &net.switch, "-s", "-j", "link", "show"])
        .output()
        .expect("ip runs");
    let links: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap_or_default();
    let sent: HashMap<&str, u64> = links
        .iter()
        .filter_map(|link| {
            Some((
                link["ifname"].as_str()?,
                link["stats64"]["tx"]["bytes"].as_u64()?,
            ))
        })
        .collect();
    (0..net.hosts.len())
        .map(|n| sent.get(net.port(n).as_str()).copied().unwrap_or(0))
        .collect()
}

/// The HTTP requests node `n` answered so far (its metrics).
fn requests(client: &Client, n: usize) -> u64 {
    let Ok(body) = client.get(&format!("{}/metrics", Net::url(n))) else {
        return 0;
    };
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|line| line.starts_with("jbc_http_requests_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The HTTP requests node `n` answered so far, by method and route.
fn requests_by_route(client: &Client, n: usize) -> HashMap<String, u64> {
    let Ok(body) = client.get(&format!("{}/metrics", Net::url(n))) else {
        return HashMap::new();
    };
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|line| line.starts_with("jbc_http_requests_total"))
        .filter_map(|line| {
            let method = line.split("method=\"").nth(1)?.split('"').next()?;
            let route = line.split("route=\"").nth(1)?.split('"').next()?;
            let count = line.rsplit(' ').next()?.parse::<f64>().ok()? as u64;
            Some((format!("{method} {route}"), count))
        })
        .fold(HashMap::new(), |mut by, (route, count)| {
            *by.entry(route).or_default() += count;
            by
        })
}

/// How many live links node `n` has up.
fn links_up(client: &Client, n: usize) -> usize {
    client
        .get(&format!(
            "{}/peers/links?after={}",
            Net::url(n),
            u64::MAX - 1
        ))
        .ok()
        .and_then(|body| serde_json::from_slice::<serde_json::Value>(&body).ok())
        .and_then(|answer| answer["links"].as_array().map(Vec::len))
        .unwrap_or(0)
}

/// Waits until every host in `hosts` has its target of chosen outbound
/// peers up (answering its syncs).
fn all_joined(client: &Client, hosts: &[usize]) -> Result<Duration, String> {
    let started = Instant::now();
    for &n in hosts {
        wait(
            &format!("host {n} to have {TARGET} chosen outbound peers up"),
            || {
                let body = client.get(&format!("{}/peers", Net::url(n))).ok()?;
                let peers: Vec<serde_json::Value> = serde_json::from_slice(&body).ok()?;
                let up = peers
                    .iter()
                    .filter(|p| p["origin"] == "learned" && p["state"] == "up")
                    .count() as u64;
                (up >= TARGET).then_some(())
            },
        )?;
    }
    Ok(started.elapsed())
}

/// A log line's time, in microseconds since the epoch.
fn line_time(line: &str) -> Option<i64> {
    let stamp = line.split_whitespace().next()?;
    Some(DateTime::parse_from_rfc3339(stamp).ok()?.timestamp_micros())
}

/// The value of a `key=` field of a log line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Resident KiB and CPU jiffies of a process.
fn rss_and_cpu(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let jiffies = fields
        .get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    (rss, jiffies)
}

/// The kernel's neighbour (ARP) table is one for all namespaces, with a hard
/// limit (`gc_thresh3`, 1024 by default) that a hundred hosts on one bridge
/// pass ("neighbor table overflow!" in the kernel log, and hosts that stop
/// answering). Raised while the benchmark runs, and put back after.
struct NeighbourLimits {
    saved: Vec<(String, String)>,
}

impl NeighbourLimits {
    fn raise(hosts: usize) -> NeighbourLimits {
        let want = (hosts * hosts * 2).max(1024);
        let mut saved = Vec::new();
        for (name, value) in [
            ("gc_thresh1", want / 4),
            ("gc_thresh2", want / 2),
            ("gc_thresh3", want),
        ] {
            let path = format!("/proc/sys/net/ipv4/neigh/default/{name}");
            if let Ok(old) = std::fs::read_to_string(&path) {
                let old = old.trim().to_string();
                if old.parse::<usize>().is_ok_and(|old| old < value)
                    && std::fs::write(&path, value.to_string()).is_ok()
                {
                    saved.push((path, old));
                }
            }
        }
        if !saved.is_empty() {
            println!(
                "(the kernel's neighbour table limit is raised to {want} entries while this runs)"
            );
        }
        NeighbourLimits { saved }
    }
}

impl Drop for NeighbourLimits {
    fn drop(&mut self) {
        for (path, old) in self.saved.iter().rev() {
            let _ = std::fs::write(path, old);
        }
    }
}

/// The items of the large block: 100 of 1 000 bytes.
const ITEMS: usize = 100;
const ITEM_BYTES: usize = 1000;

fn run() -> Result<(), String> {
    let count = env_number("JBC_BENCH_NODES", 100).clamp(12, 1000);
    let blocks = env_number("JBC_BENCH_BLOCKS", 50) as u64;
    let _limits = NeighbourLimits::raise(count);
    let net = Net::create(count, 'b', DIFFICULTY)?;
    let client = Client::start(&net.switch);
    let tmp = tempfile::tempdir().unwrap();
    // JBC_BENCH_KEEP=1 keeps the nodes' folders (and logs) to read after.
    let tmp_path = match std::env::var("JBC_BENCH_KEEP").is_ok() {
        true => tmp.keep(),
        false => tmp.path().to_path_buf(),
    };
    println!("nodes' folders: {}", tmp_path.display());
    let dir = |n: usize| tmp_path.join(format!("host{n}"));
    let target = TARGET.to_string();
    // The miners at the node's default priority: a hundred nodes on two
    // cores must not wait for them.
    let links = format!(
        "--links={}",
        std::env::var("JBC_BENCH_LINKS").unwrap_or_else(|_| "true".into())
    );
    println!("{count} nodes, {links}");
    let more = [
        "--outbound-peers",
        &target,
        "--sync-interval",
        "5",
        "--miner-nice",
        "19",
        &links,
    ];
    let seed = Net::url(0);
    let miners = [1, count / 2];
    let start = |n: usize| {
        let peers = if n == 0 { String::new() } else { seed.clone() };
        net.start_with(n, &dir(n), miners.contains(&n), &peers, &more)
    };

    let launched = Instant::now();
    let mut nodes: Vec<Option<Jbc>> = (0..count).map(|n| Some(start(n))).collect();
    let everyone: Vec<usize> = (0..count).collect();
    let started_in = launched.elapsed();
    let joined = all_joined(&client, &everyone)?;
    println!(
        "{count} nodes started in {:.1} s; every node had {TARGET} chosen outbound peers up {:.1} s after the last started",
        started_in.as_secs_f64(),
        joined.as_secs_f64()
    );

    // Blocks: from the height now to `blocks` more.
    let from = client.status(0)?["height"].as_u64().unwrap_or(0);
    let rx_before: Vec<u64> = rx_bytes_all(&net);
    let others: Vec<usize> = (1..count).filter(|n| !miners.contains(n)).collect();
    let routes_before: Vec<HashMap<String, u64>> = others
        .iter()
        .map(|&n| requests_by_route(&client, n))
        .collect();
    let requests_before: Vec<u64> = everyone.iter().map(|&n| requests(&client, n)).collect();
    let cpu_probe: Vec<usize> = (2..count)
        .filter(|n| !miners.contains(n))
        .take(10)
        .collect();
    let cpu_before: Vec<(u64, u64)> = cpu_probe
        .iter()
        .map(|&n| rss_and_cpu(nodes[n].as_ref().unwrap().pid()))
        .collect();
    let window = Instant::now();
    let until = from + blocks;
    wait(&format!("{blocks} blocks"), || {
        (client.status(0).ok()?["height"].as_u64()? >= until).then_some(())
    })?;
    let seconds = window.elapsed().as_secs_f64();
    let cpu_after: Vec<(u64, u64)> = cpu_probe
        .iter()
        .map(|&n| rss_and_cpu(nodes[n].as_ref().unwrap().pid()))
        .collect();
    let rx: Vec<u64> = everyone
        .iter()
        .zip(rx_bytes_all(&net))
        .map(|(&n, now)| now - rx_before[n])
        .collect();
    let served: Vec<u64> = everyone
        .iter()
        .map(|&n| requests(&client, n).saturating_sub(requests_before[n]))
        .collect();
    let made = client.status(0)?["height"].as_u64().unwrap_or(until) - from;
    let mut routes: HashMap<String, u64> = HashMap::new();
    for (&n, before) in others.iter().zip(&routes_before) {
        for (route, count) in requests_by_route(&client, n) {
            *routes.entry(route.clone()).or_default() +=
                count.saturating_sub(before.get(&route).copied().unwrap_or(0));
        }
    }
    let mut routes: Vec<(String, u64)> = routes.into_iter().filter(|(_, c)| *c > 0).collect();
    routes.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    let links: usize = others.iter().map(|&n| links_up(&client, n)).sum();
    println!(
        "live links per node: {:.1}; HTTP requests per node per block, by route (the seed and miners aside): {}",
        links as f64 / others.len() as f64,
        routes
            .iter()
            .map(|(route, c)| format!(
                "{route} {:.2}",
                *c as f64 / others.len() as f64 / made.max(1) as f64
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // The chain all agree on (the seed's), and when each block was mined.
    let chain = client.chain(0)?;
    let in_range: Vec<&jbc::block::Block> = chain
        .iter()
        .filter(|b| b.index > from && b.index <= until)
        .collect();
    let hashes: HashMap<String, u64> = in_range
        .iter()
        .map(|b| (b.hash.to_string(), b.index))
        .collect();
    let block_bytes = in_range
        .iter()
        .map(|b| b.to_json_line().len())
        .sum::<usize>() as f64
        / in_range.len().max(1) as f64;
    let mut mined_at: HashMap<u64, i64> = HashMap::new();
    let mut mined_total = 0usize;
    for &m in &miners {
        for line in nodes[m].as_ref().unwrap().logs().lines() {
            if line.contains("mined block ") {
                let index: u64 = field(line, "index")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if index > from && index <= until {
                    mined_total += 1;
                }
                if let (Some(time), Some(hash)) = (line_time(line), field(line, "hash"))
                    && let Some(&index) = hashes.get(hash)
                {
                    mined_at.insert(index, time);
                }
            }
        }
    }
    // Each node's first sight of each block of the chain.
    let mut delays_ms = Vec::new();
    let mut unseen = 0;
    for (n, node) in nodes.iter().enumerate() {
        if miners.contains(&n) {
            continue;
        }
        let logs = node.as_ref().unwrap().logs();
        let mut first: HashMap<u64, i64> = HashMap::new();
        let mut heights: Vec<(i64, u64)> = Vec::new();
        for line in logs.lines() {
            let Some(time) = line_time(line) else {
                continue;
            };
            if let Some(&index) = field(line, "hash").and_then(|h| hashes.get(h)) {
                first.entry(index).or_insert(time);
            } else if let Some(height) = field(line, "height").and_then(|v| v.parse::<u64>().ok()) {
                heights.push((time, height));
            }
        }
        for (&index, &mined) in &mined_at {
            let by_sync = heights
                .iter()
                .filter(|(time, height)| *height >= index && *time >= mined)
                .map(|(time, _)| *time)
                .min();
            match (first.get(&index).copied(), by_sync) {
                (None, None) => unseen += 1,
                (a, b) => {
                    let seen = a.into_iter().chain(b).min().unwrap();
                    delays_ms.push((seen - mined) as f64 / 1000.0);
                }
            }
        }
    }
    delays_ms.sort_by(f64::total_cmp);
    if std::env::var("JBC_BENCH_KEEP").is_ok() {
        for (n, node) in nodes.iter().enumerate() {
            let logs = node.as_ref().unwrap().logs();
            let _ = std::fs::write(tmp_path.join(format!("host{n}.log")), logs);
        }
    }
    let orphaned = mined_total.saturating_sub(in_range.len());
    println!(
        "{made} blocks in {seconds:.1} s; from the miner's log line to each of the other {} nodes ({} sightings, {unseen} not logged): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        count - miners.len(),
        delays_ms.len(),
        percentile(&delays_ms, 0.5),
        percentile(&delays_ms, 0.99),
        delays_ms.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "orphan rate: {orphaned} of {mined_total} mined blocks ({:.1} %)",
        100.0 * orphaned as f64 / mined_total.max(1) as f64
    );
    let per_block = |values: &[u64]| {
        values.iter().sum::<u64>() as f64 / values.len() as f64 / made.max(1) as f64
    };
    println!(
        "per node per block: {:.0} bytes received ({:.1} × the mean block of {block_bytes:.0} bytes of JSON), {:.1} HTTP requests answered",
        per_block(&rx),
        per_block(&rx) / block_bytes,
        per_block(&served)
    );
    let rss_mib =
        cpu_after.iter().map(|(rss, _)| *rss).sum::<u64>() as f64 / cpu_after.len() as f64 / 1024.0;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let cpu = cpu_before
        .iter()
        .zip(&cpu_after)
        .map(|((_, a), (_, b))| (b - a) as f64 / ticks / seconds)
        .sum::<f64>()
        / cpu_after.len() as f64;
    println!(
        "a node that does not mine: {rss_mib:.1} MiB resident, {:.1} % of a core",
        cpu * 100.0
    );

    // 100 KB of items, posted at one node: they cross the network to the
    // pools, then a block carries them. What each node receives from the
    // first post until every node has confirmed the items.
    let poster = others[0];
    let texts: Vec<String> = (0..ITEMS)
        .map(|i| format!("bench item {i:03} {}", "x".repeat(ITEM_BYTES - 15)))
        .collect();
    let ids: Vec<String> = texts
        .iter()
        .map(|text| jbc::item::ItemId::of(text).to_string())
        .collect();
    let rx_before: Vec<u64> = rx_bytes_all(&net);
    let height_before = client.status(0)?["height"].as_u64().unwrap_or(0);
    for text in &texts {
        let (code, body) = client.post(
            &format!("{}/data", Net::url(poster)),
            &serde_json::json!({ "data": text }),
        )?;
        if code != 202 {
            return Err(format!(
                "posting an item: HTTP {code}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
    }
    let confirmed = |n: usize, id: &str| {
        client
            .get(&format!("{}/data/{id}", Net::url(n)))
            .ok()
            .and_then(|body| serde_json::from_slice::<serde_json::Value>(&body).ok())
            .is_some_and(|answer| answer["status"] == "confirmed")
    };
    wait("the items confirmed on every node", || {
        everyone
            .iter()
            .all(|&n| confirmed(n, &ids[0]) && confirmed(n, &ids[ITEMS - 1]))
            .then_some(())
    })?;
    let item_rx: Vec<u64> = everyone
        .iter()
        .zip(rx_bytes_all(&net))
        .map(|(&n, now)| now - rx_before[n])
        .collect();
    let meanwhile = client.status(0)?["height"].as_u64().unwrap_or(0) - height_before;
    let received = item_rx.iter().sum::<u64>() as f64 / item_rx.len() as f64;
    let ordinary = per_block(&rx) * meanwhile as f64;
    println!(
        "{} KB of items ({ITEMS} of {ITEM_BYTES} B) posted at one node, then mined: a node received {:.1} KB until it had them confirmed; {meanwhile} blocks were made meanwhile (about {:.1} KB of it at the figure above), so about {:.1} KB for the items and their block",
        ITEMS * ITEM_BYTES / 1000,
        received / 1000.0,
        ordinary / 1000.0,
        (received - ordinary) / 1000.0
    );

    // 30 nodes stop and start again, told only the seed.
    let restarted: Vec<usize> = (2..count)
        .filter(|n| !miners.contains(n))
        .take(RESTARTED)
        .collect();
    for &n in &restarted {
        if !nodes[n].take().unwrap().terminate().success() {
            return Err(format!("host {n}'s node did not stop cleanly"));
        }
    }
    let relaunched = Instant::now();
    for &n in &restarted {
        nodes[n] = Some(start(n));
    }
    let rejoined = all_joined(&client, &restarted)?;
    println!(
        "{RESTARTED} nodes stopped and started again: all had {TARGET} chosen outbound peers up {:.1} s after the last started ({:.1} s after the first)",
        rejoined.as_secs_f64(),
        relaunched.elapsed().as_secs_f64()
    );
    // Idle: the miners stop; what the others receive and spend meanwhile,
    // measured on nodes that had neither miner as a peer (a node that
    // lost a peer retries it and looks for another: not idleness).
    let miner_urls: Vec<String> = miners.iter().map(|&m| Net::url(m)).collect();
    let idle: Vec<usize> = (2..count)
        .filter(|n| !miners.contains(n))
        .filter(|&n| {
            client
                .get(&format!("{}/peers", Net::url(n)))
                .ok()
                .and_then(|body| serde_json::from_slice::<Vec<serde_json::Value>>(&body).ok())
                .is_some_and(|peers| {
                    !peers
                        .iter()
                        .any(|p| miner_urls.iter().any(|m| p["url"] == m.as_str()))
                })
        })
        .take(10)
        .collect();
    for &m in &miners {
        if !nodes[m].take().unwrap().terminate().success() {
            return Err(format!("miner {m} did not stop cleanly"));
        }
    }
    // A minute for the stir of their going (links down, the lost peers
    // replaced) to settle.
    std::thread::sleep(Duration::from_secs(60));
    let rx_idle: Vec<u64> = {
        let all = rx_bytes_all(&net);
        idle.iter().map(|&n| all[n]).collect()
    };
    let cpu_idle: Vec<(u64, u64)> = idle
        .iter()
        .map(|&n| rss_and_cpu(nodes[n].as_ref().unwrap().pid()))
        .collect();
    let idle_for = Duration::from_secs(60);
    std::thread::sleep(idle_for);
    let rx_now = rx_bytes_all(&net);
    let received: f64 = idle
        .iter()
        .zip(&rx_idle)
        .map(|(&n, before)| (rx_now[n] - before) as f64)
        .sum::<f64>()
        / idle.len() as f64
        / idle_for.as_secs_f64();
    let (rss_idle, spent) =
        idle.iter()
            .zip(&cpu_idle)
            .fold((0u64, 0u64), |(rss, cpu), (&n, (_, before))| {
                let (now_rss, now_cpu) = rss_and_cpu(nodes[n].as_ref().unwrap().pid());
                (rss + now_rss, cpu + (now_cpu - before))
            });
    println!(
        "idle (miners stopped; {} nodes that had no miner as a peer), over {} s: a node receives {received:.0} B/s, spends {:.2} % of a core, {:.1} MiB resident",
        idle.len(),
        idle_for.as_secs(),
        100.0 * spent as f64 / ticks / idle_for.as_secs_f64() / idle.len() as f64,
        rss_idle as f64 / idle.len() as f64 / 1024.0
    );

    for node in nodes.into_iter().flatten() {
        let _ = node.terminate();
    }
    Ok(())
}
