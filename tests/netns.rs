//! Nodes on three machines: three network namespaces joined by a bridge
//! (veth pairs, addresses this test assigns from 10.200.0.0/16 inside its
//! own namespaces), one node in each on `0.0.0.0:5001` with the other two
//! as peers, all mining. They converge; taking one host's link down
//! partitions it, it mines alone, and once the link is back the network
//! converges on the longest chain.
//!
//! It needs root and `ip` (iproute2). Where a namespace cannot be made the
//! test says why and is counted as ignored (skipped), never as passed.
//! Only the addresses the test assigns are contacted: its HTTP client runs
//! on a thread inside the namespace that holds the bridge.

mod common;
#[path = "netns/net.rs"]
mod net;

use std::time::{Duration, Instant};

use common::{Jbc, genesis};
use jbc::block::Block;
use jbc::chain::{Chain, Network};
use libtest_mimic::{Arguments, Failed, Trial};
use net::{Client, Net, in_namespace, namespaces_unavailable, wait, wait_up_to};

/// Hosts of the first test.
const HOSTS: usize = 3;
/// Hosts of the second: a seed, ten nodes told only its address, and a
/// latecomer told another's.
const SEEDED_HOSTS: usize = 12;
/// The outbound peers each node of the second test chooses.
const SEEDED_TARGET: u64 = 4;

/// Hard enough that a fast machine does not mine the first blocks alone
/// before its neighbours are up, and that three GETs in a row can catch one
/// tip on all three hosts.
const DIFFICULTY: u32 = 5;

fn main() {
    let arguments = Arguments::from_args();
    let unavailable = namespaces_unavailable();
    if let Some(reason) = &unavailable {
        eprintln!("netns: skipped, network namespaces cannot be made here: {reason}");
    }
    let trials = vec![
        Trial::test("nodes_on_three_hosts_converge_and_heal_a_partition", || {
            nodes_on_three_hosts().map_err(Failed::from)
        })
        .with_ignored_flag(unavailable.is_some()),
        Trial::test(
            "twelve_hosts_told_one_seed_assemble_rejoin_and_heal_a_partition",
            || hosts_told_one_seed().map_err(Failed::from),
        )
        .with_ignored_flag(unavailable.is_some()),
        Trial::test(
            "one_address_flooding_the_pool_holds_its_share_and_others_still_get_in",
            || one_address_floods_the_pool().map_err(Failed::from),
        )
        .with_ignored_flag(unavailable.is_some()),
        Trial::test(
            "a_host_holding_every_connection_it_can_keeps_no_other_host_waiting",
            || one_host_floods_connections().map_err(Failed::from),
        )
        .with_ignored_flag(unavailable.is_some()),
        Trial::test(
            "a_hundred_fake_nodes_on_one_host_hold_one_host_s_share_of_the_peers",
            || one_host_floods_inbound_slots().map_err(Failed::from),
        )
        .with_ignored_flag(unavailable.is_some()),
    ];
    libtest_mimic::run(&arguments, trials).exit();
}

/// The indices of the blocks a node logged as mined.
fn mined(node: &Jbc) -> Vec<u64> {
    node.logs()
        .lines()
        .filter_map(|line| {
            line.split("mined block ")
                .nth(1)?
                .split(':')
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

fn tip(chain: &[Block]) -> &Block {
    chain.last().expect("a chain has its genesis block")
}

fn nodes_on_three_hosts() -> Result<(), String> {
    let net = Net::create(HOSTS, 'a', DIFFICULTY)?;
    let client = Client::start(&net.switch);
    let tmp = tempfile::tempdir().unwrap();
    let dir = |n: usize| tmp.path().join(format!("host{n}"));
    let nodes: Vec<Jbc> = (0..3).map(|n| net.start(n, &dir(n), true)).collect();

    // They converge: one tip on all three, at height 8 or more, with blocks
    // of more than one miner in it. (The first host up may mine the first
    // blocks alone: the others adopt them and add theirs.)
    let mut last_seen = String::from("no answer yet");
    let waited = wait(
        "the three hosts to agree at height 8 on blocks of two miners",
        || {
            let chains = client.chains(HOSTS).ok()?;
            let agreed = chains.windows(2).all(|w| tip(&w[0]) == tip(&w[1]));
            let miners: std::collections::HashSet<&str> =
                chains[0][1..].iter().map(|b| b.data.as_str()).collect();
            last_seen = format!(
                "heights {:?}, miners of host a's chain {miners:?}",
                chains.iter().map(|c| tip(c).index).collect::<Vec<_>>()
            );
            (agreed && tip(&chains[0]).index >= 8 && miners.len() >= 2).then_some(())
        },
    );
    waited.map_err(|e| format!("{e} (last seen: {last_seen})"))?;

    // Host c's link goes down: it mines alone (its log says so; nothing
    // reaches it now), and so do a and b.
    net.link(2, false);
    let mined_alone_before = mined(&nodes[2]).len();
    let mainland_before = tip(&client.chain(0)?).index;
    wait("both sides to mine on", || {
        let a = client.chain(0).ok()?;
        (tip(&a).index >= mainland_before + 3 && mined(&nodes[2]).len() >= mined_alone_before + 3)
            .then_some(())
    })?;
    let mainland = tip(&client.chain(0)?).index;
    let island = mined(&nodes[2]).into_iter().max().unwrap_or(0);
    let logged_before_heal: Vec<usize> = nodes.iter().map(|n| n.logs().len()).collect();
    net.link(2, true);

    // Once it is back, the network converges on the longest chain.
    let longest = mainland.max(island);
    let agreed = wait("the three hosts to agree again", || {
        let chains = client.chains(HOSTS).ok()?;
        let agreed = chains.windows(2).all(|w| tip(&w[0]) == tip(&w[1]));
        (agreed && tip(&chains[0]).index >= longest).then(|| chains[0].clone())
    })?;
    // One side's blocks since the partition lost, and were orphaned.
    let orphaned: usize = nodes
        .iter()
        .zip(&logged_before_heal)
        .map(|(node, from)| node.logs()[*from..].matches("orphaned block").count())
        .sum();
    eprintln!(
        "netns: mainland at {mainland}, island at {island} when the link came back; \
         agreed at {}, {orphaned} blocks orphaned",
        tip(&agreed).index
    );
    if orphaned == 0 {
        return Err("no block was orphaned: the two sides never competed".into());
    }
    for node in nodes {
        if !node.terminate().success() {
            return Err("a node did not stop cleanly".into());
        }
    }
    // Without mining, they serve one identical valid chain. The miners
    // were stopped one after the other, so the last blocks may have raced:
    // two tips of equal work each stay where they are (the first seen is
    // kept), and, as in the network, the next block decides: host a mines
    // one, as its operator orders.
    let nodes: Vec<Jbc> = (0..3).map(|n| net.start(n, &dir(n), false)).collect();
    let identical = || {
        let chains = client.chains(HOSTS).ok()?;
        chains
            .windows(2)
            .all(|w| w[0] == w[1])
            .then(|| chains[0].clone())
    };
    let mut last_seen = String::from("no answer yet");
    let settled = wait_up_to(
        "one identical chain on all three",
        Duration::from_secs(20),
        || {
            let chains = client.chains(HOSTS).ok()?;
            last_seen = format!(
                "tips {:?}",
                chains
                    .iter()
                    .map(|c| (tip(c).index, tip(c).hash.to_string()))
                    .collect::<Vec<_>>()
            );
            identical()
        },
    );
    let chain = match settled {
        Ok(chain) => chain,
        Err(_) => {
            eprintln!(
                "netns: no agreement after the restart ({last_seen}): host a mines the deciding block"
            );
            let mine = serde_json::json!({ "blocks": 1 });
            client.post_as_operator(
                &format!("{}/mine", Net::url(0)),
                &mine,
                &nodes[0].operator_key(),
            )?;
            wait("one identical chain on all three", identical)
                .map_err(|e| format!("{e} (before host a's block: {last_seen})"))?
        }
    };
    Chain::from_blocks(chain.clone(), &Network::new(genesis(), DIFFICULTY))
        .map_err(|e| e.to_string())?;
    if chain.len() < agreed.len() {
        return Err("the agreed chain lost blocks".into());
    }
    for node in nodes {
        if !node.terminate().success() {
            return Err("a node did not stop cleanly".into());
        }
    }
    Ok(())
}

/// Waits until host `n` has chosen its outbound target.
fn joined(client: &Client, n: usize) -> Result<(), String> {
    wait(
        &format!("host {n} to choose {SEEDED_TARGET} outbound peers"),
        || {
            let status = client.status(n).ok()?;
            (status["connections"]["chosen"].as_u64()? >= SEEDED_TARGET).then_some(())
        },
    )
}

/// Waits until hosts `hosts` serve one tip at `height` or more.
fn agree(client: &Client, hosts: &[usize], height: u64) -> Result<Block, String> {
    let mut last_seen = String::from("no answer yet");
    wait(
        &format!("hosts {hosts:?} to agree at height {height}"),
        || {
            let tips: Vec<Block> = hosts
                .iter()
                .map(|&n| client.chain(n).ok().map(|c| tip(&c).clone()))
                .collect::<Option<_>>()?;
            last_seen = format!("{:?}", tips.iter().map(|t| t.index).collect::<Vec<_>>());
            (tips.windows(2).all(|w| w[0] == w[1]) && tips[0].index >= height)
                .then(|| tips[0].clone())
        },
    )
    .map_err(|e| format!("{e} (heights last seen: {last_seen})"))
}

fn hosts_told_one_seed() -> Result<(), String> {
    let net = Net::create(SEEDED_HOSTS, 's', DIFFICULTY)?;
    let client = Client::start(&net.switch);
    let tmp = tempfile::tempdir().unwrap();
    let dir = |n: usize| tmp.path().join(format!("host{n}"));
    let target = SEEDED_TARGET.to_string();
    // A sync interval longer than the test: blocks travel by announcement.
    let more = ["--outbound-peers", &target, "--sync-interval", "600"];
    let seed = Net::url(0);
    let miners = [1, 6];
    let latecomer = SEEDED_HOSTS - 1;
    let start =
        |n: usize, peers: &str| net.start_with(n, &dir(n), miners.contains(&n), peers, &more);
    let mut nodes: Vec<Option<Jbc>> = (0..latecomer)
        .map(|n| Some(start(n, if n == 0 { "" } else { &seed })))
        .collect();
    let started = Instant::now();
    for n in 0..latecomer {
        joined(&client, n)?;
    }
    let assembled = started.elapsed();
    let first: Vec<usize> = (0..latecomer).collect();
    // Each talks to its chosen peers over live links (it listens on
    // 0.0.0.0 and names itself so: it is taken at its host's address).
    for &n in &first {
        wait(&format!("host {n}'s live links"), || {
            let body = client.get(&format!("{}/peers/links", Net::url(n))).ok()?;
            let answer: serde_json::Value = serde_json::from_slice(&body).ok()?;
            (answer["links"].as_array()?.len() >= SEEDED_TARGET as usize).then_some(())
        })?;
    }
    agree(&client, &first, 3)?;

    // A latecomer joins from one address that is not the seed's.
    nodes.push(Some(start(latecomer, &Net::url(3))));
    joined(&client, latecomer)?;
    let everyone: Vec<usize> = (0..SEEDED_HOSTS).collect();
    let tip = agree(&client, &everyone, 3)?;

    // A node stopped and started again, told only the seed, rejoins.
    let restarted = 4;
    if !nodes[restarted].take().unwrap().terminate().success() {
        return Err("a node did not stop cleanly".into());
    }
    nodes[restarted] = Some(start(restarted, &seed));
    joined(&client, restarted)?;

    // Host 9 is cut off for a while; once its link is back it agrees again
    // (announcements of the new blocks reach it, and it syncs from the
    // announcer).
    net.link(9, false);
    let before = tip.index;
    wait("the rest to mine on while host 9 is away", || {
        let chain = client.chain(0).ok()?;
        (self::tip(&chain).index >= before + 50).then_some(())
    })?;
    net.link(9, true);
    let mainland = self::tip(&client.chain(0)?).index;
    let healed = agree(&client, &everyone, mainland + 1)?;
    eprintln!(
        "netns: {} hosts told one seed chose {SEEDED_TARGET} outbound peers each within {assembled:?}; \
         agreed at height {} after a partition",
        latecomer, healed.index
    );
    for node in nodes.into_iter().flatten() {
        if !node.terminate().success() {
            return Err("a node did not stop cleanly".into());
        }
    }
    Ok(())
}

/// The pool of the third test: past half of it (40 items) one address may
/// hold an eighth (10).
const POOL_ITEMS: u64 = 80;

/// One host floods a node's pool from its own address; once the pool is
/// busy that address is refused with a sentence, and two other addresses
/// (another host, and the bridge) still get their items in. On one machine
/// every client is 127.0.0.1 and exempt, so only separate hosts show this.
fn one_address_floods_the_pool() -> Result<(), String> {
    let net = Net::create(3, 'p', DIFFICULTY)?;
    let tmp = tempfile::tempdir().unwrap();
    let items = POOL_ITEMS.to_string();
    let node = net.start_with(0, tmp.path(), false, "", &["--pool-max-items", &items]);
    let (flooder, other, bridge) = (
        Client::start(&net.hosts[1]),
        Client::start(&net.hosts[2]),
        Client::start(&net.switch),
    );
    let data_url = format!("{}/data", Net::url(0));
    let post = |client: &Client, text: String| -> Result<(u16, String), String> {
        let (code, body) = client.post(&data_url, &serde_json::json!({ "data": text }))?;
        Ok((code, String::from_utf8_lossy(&body).into_owned()))
    };
    wait("the node to answer", || bridge.status(0).ok())?;

    let mut taken: u64 = 0;
    let mut refusal = None;
    for n in 0..POOL_ITEMS {
        match post(&flooder, format!("flood {n}"))? {
            (202, _) if refusal.is_none() => taken += 1,
            (503, body) => {
                refusal.get_or_insert(body);
            }
            (code, body) => {
                return Err(format!(
                    "flood item {n}: {code} {body} (after {taken} taken and a refusal)"
                ));
            }
        }
    }
    let refusal = refusal.ok_or("the flooder was never refused")?;
    if !refusal.contains("10.200.0.2") || !refusal.contains("share") {
        return Err(format!("the refusal does not say whose share: {refusal}"));
    }
    if taken > POOL_ITEMS / 2 + 1 {
        return Err(format!("one address got {taken} of {POOL_ITEMS} places"));
    }
    for n in 0..5 {
        for (who, client) in [("another host", &other), ("the bridge", &bridge)] {
            let (code, body) = post(client, format!("{who} {n}"))?;
            if code != 202 {
                return Err(format!("{who}'s item {n} was refused: {code} {body}"));
            }
        }
    }
    let pending: Vec<serde_json::Value> =
        serde_json::from_slice(&bridge.get(&data_url)?).map_err(|e| e.to_string())?;
    if pending.len() as u64 != taken + 10 {
        return Err(format!(
            "{} items wait, but {taken} + 10 were taken",
            pending.len()
        ));
    }
    eprintln!(
        "netns: one address got {taken} of a pool of {POOL_ITEMS} before it was refused; \
         two others got all 10 of theirs in"
    );
    if !node.terminate().success() {
        return Err("the node did not stop cleanly".into());
    }
    Ok(())
}

/// Connections the flooding host opens, and the most the node holds.
const FLOOD_CONNECTIONS: usize = 2000;
const MAX_CONNECTIONS: usize = 256;

/// Raises this process's open-file limit to its hard limit: the flood holds
/// thousands of sockets.
fn raise_open_files() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// What the flood saw.
#[derive(Default)]
struct Flood {
    stop: std::sync::atomic::AtomicBool,
    /// Connections the node closed on it.
    closed: std::sync::atomic::AtomicUsize,
}

/// Holds one keep-alive connection to `address`, a request every 5 s
/// (within the node's 10 s for the next request's headers), opening
/// another 2 s after the node closes it, until told to stop.
async fn hold_a_connection(address: std::net::SocketAddr, flood: std::sync::Arc<Flood>) {
    use std::sync::atomic::Ordering::Relaxed;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    while !flood.stop.load(Relaxed) {
        let Ok(Ok(mut stream)) = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio::net::TcpStream::connect(address),
        )
        .await
        else {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            continue;
        };
        let mut buffer = vec![0u8; 8192];
        'asking: while !flood.stop.load(Relaxed) {
            let request = b"GET /favicon.svg HTTP/1.1\r\nHost: 10.200.0.1\r\n\r\n";
            if stream.write_all(request).await.is_err() {
                break;
            }
            // The answer: headers, then Content-Length bytes.
            let mut got = Vec::new();
            loop {
                let read = tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    stream.read(&mut buffer),
                )
                .await;
                match read {
                    Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buffer[..n]),
                    _ => break 'asking,
                }
                let text = String::from_utf8_lossy(&got);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length: usize = (head.lines())
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(str::to_string)
                        })
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if body.len() >= length {
                        break;
                    }
                }
            }
            for _ in 0..50 {
                if flood.stop.load(Relaxed) {
                    break 'asking;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        flood.closed.fetch_add(1, Relaxed);
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

/// How long `GET /status` takes on a new connection from inside
/// `namespace`, each of `count` times, one after the other.
fn status_times(namespace: &str, count: usize) -> Result<Vec<std::time::Duration>, String> {
    in_namespace(namespace, move || async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut times = Vec::new();
        for _ in 0..count {
            let started = std::time::Instant::now();
            let answered = tokio::time::timeout(std::time::Duration::from_secs(10), async {
                let mut stream = tokio::net::TcpStream::connect("10.200.0.1:5001").await?;
                stream
                    .write_all(
                        b"GET /status HTTP/1.1\r\nHost: 10.200.0.1\r\nConnection: close\r\n\r\n",
                    )
                    .await?;
                let mut answer = Vec::new();
                stream.read_to_end(&mut answer).await?;
                Ok::<_, std::io::Error>(answer)
            })
            .await;
            match answered {
                Ok(Ok(answer)) if answer.starts_with(b"HTTP/1.1 200") => {
                    times.push(started.elapsed())
                }
                Ok(Ok(answer)) => {
                    return Err(format!(
                        "answered {:?}",
                        String::from_utf8_lossy(&answer[..answer.len().min(80)])
                    ));
                }
                Ok(Err(error)) => return Err(error.to_string()),
                Err(_) => return Err("no answer within 10 s".into()),
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Ok(times)
    })
    .join()
    .map_err(|_| "the client thread panicked".to_string())?
}

fn one_host_floods_connections() -> Result<(), String> {
    use std::sync::atomic::Ordering::Relaxed;
    raise_open_files();
    let net = Net::create(3, 'c', DIFFICULTY)?;
    let tmp = tempfile::tempdir().unwrap();
    let most = MAX_CONNECTIONS.to_string();
    let node = net.start_with(0, tmp.path(), false, "", &["--max-connections", &most]);
    let bridge = Client::start(&net.switch);
    wait("the node to answer", || bridge.status(0).ok())?;
    // A client on another machine is told what the operator key is for,
    // never where the node keeps it (the path names users and folders).
    let (code, answer) = bridge.post(
        &format!("{}/peers", Net::url(0)),
        &serde_json::json!({"url": "http://10.200.0.3:5001"}),
    )?;
    let answer = String::from_utf8_lossy(&answer);
    let folder = tmp.path().to_string_lossy();
    if code != 401 || answer.contains(&*folder) || !answer.contains("operator.cookie") {
        return Err(format!("a remote client's 401: {code} {answer}"));
    }
    let flood = std::sync::Arc::new(Flood::default());
    let flooding = {
        let flood = std::sync::Arc::clone(&flood);
        in_namespace(&net.hosts[1], move || async move {
            let address: std::net::SocketAddr = "10.200.0.1:5001".parse().unwrap();
            let mut holders = tokio::task::JoinSet::new();
            for _ in 0..FLOOD_CONNECTIONS {
                holders.spawn(hold_a_connection(address, std::sync::Arc::clone(&flood)));
            }
            while holders.join_next().await.is_some() {}
        })
    };
    // The flood holds what the node lets it, and the node drops the rest
    // as they come (each newcomer of the crowd is its youngest).
    let held = wait("the node to drop the flood's surplus", || {
        (flood.closed.load(Relaxed) >= FLOOD_CONNECTIONS - MAX_CONNECTIONS).then_some(())
    });
    // Meanwhile another host is answered at once, on a new connection each
    // time.
    let times = held.and_then(|_| status_times(&net.hosts[2], 20));
    let closed = flood.closed.load(Relaxed);
    flood.stop.store(true, Relaxed);
    let _ = flooding.join();
    let mut times = times?;
    times.sort();
    let slowest = *times.last().unwrap();
    eprintln!(
        "netns: one host kept {FLOOD_CONNECTIONS} keep-alive connections asking (the node \
         holds {MAX_CONNECTIONS} at most, and closed {closed} of the host's); another host's \
         /status on new connections: median {:?}, slowest {slowest:?}",
        times[times.len() / 2]
    );
    if slowest > std::time::Duration::from_millis(250) {
        return Err(format!(
            "another host waited {slowest:?} for /status: {times:?}"
        ));
    }
    if !node.terminate().success() {
        return Err("the node did not stop cleanly".into());
    }
    Ok(())
}

/// Fake nodes of this network on `ports` of the namespace's host: each
/// answers `/status` as `status` says with an id of its own, and
/// `/peers/addr` with all of them; each names itself to the node at
/// `target` in a sync's `/status`, `rounds` times.
async fn fake_nodes(
    status: serde_json::Value,
    host: &'static str,
    ports: Vec<u16>,
    target: &'static str,
) {
    let urls: Vec<String> = ports.iter().map(|p| format!("http://{host}:{p}")).collect();
    let addresses = serde_json::json!({ "addresses": urls });
    for &port in &ports {
        let mut status = status.clone();
        status["node_id"] = format!("fake-{port}-{}", std::process::id()).into();
        status["connections"]["inbound"] = 0.into();
        let (status, addresses) = (status.to_string(), addresses.to_string());
        let app = axum::Router::new()
            .route("/status", axum::routing::get(move || async move { status }))
            .route(
                "/peers/addr",
                axum::routing::get(move || async move { addresses }),
            );
        let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
            .await
            .unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    let client = reqwest::Client::new();
    for _ in 0..5 {
        for url in &urls {
            let _ = client
                .get(format!("{target}/status"))
                .header("x-jbc-peer", url)
                .send()
                .await;
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    // Serve on while the test looks.
    std::future::pending::<()>().await;
}

fn one_host_floods_inbound_slots() -> Result<(), String> {
    let net = Net::create(3, 'i', DIFFICULTY)?;
    let tmp = tempfile::tempdir().unwrap();
    let dir = |n: usize| tmp.path().join(format!("host{n}"));
    let node = net.start_with(0, &dir(0), false, "", &[]);
    let bridge = Client::start(&net.switch);
    let status = wait("the node to answer", || bridge.status(0).ok())?;
    // A hundred fake nodes on host b's 100 ports name themselves to host a.
    let ports: Vec<u16> = (6000..6100).collect();
    std::mem::drop(in_namespace(&net.hosts[1], move || {
        fake_nodes(status, "10.200.0.2", ports, "http://10.200.0.1:5001")
    }));
    let crowd = |url: &str| url.starts_with("http://10.200.0.2:");
    let peers = || -> Option<Vec<serde_json::Value>> {
        serde_json::from_slice(&bridge.get(&format!("{}/peers", Net::url(0))).ok()?).ok()
    };
    wait("the crowd to fill its share", || {
        let inbound = (peers()?.iter())
            .filter(|p| crowd(p["url"].as_str().unwrap_or("")))
            .count();
        (inbound >= 8).then_some(())
    })?;
    // An honest node on host c syncs from host a, and gets in.
    let honest = net.start_with(2, &dir(2), false, &Net::url(0), &[]);
    let honest_url = Net::url(2);
    let views = wait("the honest node admitted", || {
        let views = peers()?;
        views
            .iter()
            .any(|p| p["url"] == honest_url)
            .then_some(views)
    })?;
    // Give the connector a moment to choose among the crowd's addresses:
    // until host a has chosen two outbound peers (one of the crowd's /16,
    // and the honest node), or at most 20 s.
    let _ = net::wait_up_to("two chosen", std::time::Duration::from_secs(20), || {
        (bridge.status(0).ok()?["connections"]["chosen"].as_u64()? >= 2).then_some(())
    });
    let views = peers().unwrap_or(views);
    let of_crowd = |origin: &str| {
        (views.iter())
            .filter(|p| crowd(p["url"].as_str().unwrap_or("")) && p["origin"] == origin)
            .count()
    };
    let (inbound, chosen) = (of_crowd("inbound"), of_crowd("learned"));
    let addresses: serde_json::Value =
        serde_json::from_slice(&bridge.get(&format!("{}/peers/addr", Net::url(0)))?)
            .map_err(|e| e.to_string())?;
    let given = (addresses["addresses"].as_array().unwrap().iter())
        .filter(|a| crowd(a.as_str().unwrap_or("")))
        .count();
    eprintln!(
        "netns: 100 fake nodes on one host: {inbound} inbound slots (of 64), {chosen} chosen \
         outbound, {given} of {} addresses given out; the honest node admitted",
        addresses["addresses"].as_array().unwrap().len()
    );
    if inbound > 8 {
        return Err(format!("one host holds {inbound} inbound slots"));
    }
    if chosen > 1 {
        return Err(format!("{chosen} outbound peers chosen from one host"));
    }
    if given > 12 {
        return Err(format!("{given} of the addresses given out are one host's"));
    }
    for node in [node, honest] {
        if !node.terminate().success() {
            return Err("a node did not stop cleanly".into());
        }
    }
    Ok(())
}
