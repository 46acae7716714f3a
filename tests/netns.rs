//! Nodes on three machines: three network namespaces joined by a bridge
//! (veth pairs, addresses this test assigns from 10.200.0.0/24 inside its
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

use std::time::Instant;

use common::{Jbc, genesis};
use jbc::block::Block;
use jbc::chain::{Chain, Network};
use libtest_mimic::{Arguments, Failed, Trial};
use net::{Client, Net, namespaces_unavailable, wait};

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
    // Without mining, they serve one identical valid chain.
    let nodes: Vec<Jbc> = (0..3).map(|n| net.start(n, &dir(n), false)).collect();
    let chain = wait("one identical chain on all three", || {
        let chains = client.chains(HOSTS).ok()?;
        chains
            .windows(2)
            .all(|w| w[0] == w[1])
            .then(|| chains[0].clone())
    })?;
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
