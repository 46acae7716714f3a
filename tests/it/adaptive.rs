//! Adaptive networks end to end, with real `jbc` processes: targets that
//! follow the retarget formula (checked here with arithmetic of the test's
//! own, not the node's), block times that settle near the target, the
//! chain with the most work winning over a longer one, and blocks that
//! break the rules refused with the reason.

use std::time::{Duration, Instant};

use crate::common::{Jbc, PATIENCE, genesis, peers, wait_for, write_chaindata};
use jbc::block::Block;
use jbc::chain::Template;
use jbc::chain::{Clock, Cursor, Network};
use jbc::pow::Kind;
use ruint::aliases::{U256, U512};
use serde_json::Value;

/// The adaptive network the settling tests run: a block every second,
/// retargeted every 20 blocks, and a least difficulty of 3 (4096 hashes a
/// block) that is far too easy for any miner: hundreds of blocks a second.
const SECONDS: u64 = 1;
const WINDOW: u64 = 20;
const EASY: u32 = 3;

fn adaptive_args(difficulty: u32) -> Vec<String> {
    [
        "--difficulty".to_string(),
        difficulty.to_string(),
        "--target-block-seconds".into(),
        SECONDS.to_string(),
        "--retarget-window".into(),
        WINDOW.to_string(),
    ]
    .into()
}

/// Every block's target by the formula, computed in 512 bits
/// (multiply, then divide: the node divides first), independently of the
/// node's code.
fn formula_targets(blocks: &[Block], difficulty: u32) -> Vec<U256> {
    let limit = U256::MAX >> (4 * difficulty as usize);
    let expected = (WINDOW - 1) * SECONDS;
    let mut targets = vec![limit];
    for i in 1..blocks.len() {
        let previous = targets[i - 1];
        let target = if !(i as u64).is_multiple_of(WINDOW) {
            previous
        } else {
            let span =
                blocks[i - 1].timestamp as i128 - blocks[i - WINDOW as usize].timestamp as i128;
            let span = span.clamp((expected / 4) as i128, (expected * 4) as i128) as u64;
            let scaled = U512::saturating_from(previous) * U512::from(span) / U512::from(expected);
            U256::saturating_from(scaled.min(U512::saturating_from(limit)))
        };
        targets.push(target);
    }
    targets
}

/// `floor(2^256 / (target + 1))`, summed: the chain's work by the formula.
fn formula_work(targets: &[U256]) -> U256 {
    let two_256 = U512::from(1u8) << 256;
    let total = targets
        .iter()
        .map(|t| two_256 / (U512::saturating_from(*t) + U512::from(1u8)))
        .fold(U512::ZERO, |sum, work| sum + work);
    U256::saturating_from(total)
}

fn hash_value(block: &Block) -> U256 {
    U256::from_be_bytes(block.hash.0)
}

/// Checks every rule on a served chain with the test's own arithmetic:
/// each hash at most its target, each timestamp after the median of the 11
/// before; and the node's `/status` (target, chainwork) when it describes
/// this chain's tip.
fn check_chain(blocks: &[Block], difficulty: u32, status: &Value) -> Vec<U256> {
    let targets = formula_targets(blocks, difficulty);
    for (i, block) in blocks.iter().enumerate().skip(1) {
        assert!(
            hash_value(block) <= targets[i],
            "block {i}: hash {} above the formula's target {:x}",
            block.hash,
            targets[i]
        );
        let mut before: Vec<u128> = blocks[i.saturating_sub(11)..i]
            .iter()
            .map(|b| b.timestamp)
            .collect();
        before.sort_unstable();
        assert!(
            block.timestamp > before[before.len() / 2],
            "block {i}: timestamp not after the median"
        );
    }
    let height = status["height"].as_u64().unwrap() as usize;
    if blocks.get(height).map(|b| b.hash.to_string()) == status["tip"].as_str().map(String::from) {
        assert_eq!(
            status["target"].as_str().unwrap(),
            format!("{:064x}", targets[height]),
            "the tip's target on /status"
        );
        assert_eq!(
            status["chainwork"].as_str().unwrap(),
            format!("{:#x}", formula_work(&targets[..=height])),
            "chainwork on /status"
        );
    }
    targets
}

/// The mean time between blocks of window `w` (blocks `20w` to `20w + 19`).
fn window_gap(chain: &[Block], w: usize) -> f64 {
    let (a, b) = (w * WINDOW as usize, (w + 1) * WINDOW as usize - 1);
    (chain[b].timestamp - chain[a].timestamp) as f64 / (WINDOW - 1) as f64
}

/// Mines with `miners` nodes (one thread each), checks every target
/// against the formula, and returns the mean block time of the two windows
/// after the first slow one. The targets take about eight windows to come
/// down from the least difficulty to a thread's hash rate (at a few blocks
/// a second, as fast as timestamps may rise), and the window where they
/// first bite may overshoot by the clamp's factor: the two after it show
/// where the network settles.
async fn settle(miners: usize) -> f64 {
    let dirs: Vec<_> = (0..miners).map(|_| tempfile::tempdir().unwrap()).collect();
    let args = adaptive_args(EASY);
    let mut nodes: Vec<Jbc> = Vec::new();
    for dir in &dirs {
        let mut node_args: Vec<&str> = args.iter().map(String::as_str).collect();
        let peers = nodes.first().map(|n| n.url.clone()).unwrap_or_default();
        node_args.extend(["--mine", "--threads", "1", "--peers", &peers]);
        nodes.push(Jbc::start(dir.path(), &node_args));
    }
    // About 2 minutes on an idle machine; a busy one mines slower once
    // the targets have adapted, so the deadline is generous.
    let deadline = Duration::from_secs(900);
    let started = Instant::now();
    let measured = 2 * WINDOW as usize;
    let (chain, first_slow) =
        wait_for("two windows after the first slow one", deadline, || async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let chain = nodes[0].chain().await;
            let windows = chain.len() / WINDOW as usize;
            // Window 0 holds the genesis block, years older than the rest.
            let first_slow = (1..windows).find(|&w| window_gap(&chain, w) >= 0.5)?;
            let from = (first_slow + 1) * WINDOW as usize;
            (chain.len() > from + measured).then_some((chain, first_slow))
        })
        .await;
    let status = nodes[0].status().await;
    let targets = check_chain(&chain, EASY, &status);
    let n = chain.len();
    let from = (first_slow + 1) * WINDOW as usize;
    let mean = (chain[from + measured].timestamp - chain[from].timestamp) as f64 / measured as f64;
    let windows: Vec<String> = (0..n / WINDOW as usize)
        .map(|w| format!("{:.2}", window_gap(&chain, w)))
        .collect();
    eprintln!(
        "{miners} miner(s): {n} blocks in {:.0} s; mean block time of windows {} and {}: {mean:.2} s; per window: {}; final difficulty {:.2}",
        started.elapsed().as_secs_f64(),
        first_slow + 1,
        first_slow + 2,
        windows.join(" "),
        jbc::pow::Target(targets[n - 1]).difficulty()
    );
    // The first windows came several times too fast (at pow_limit, even
    // beside busy loops), so the target must have come down by at least one
    // full clamped step. How far depends on the machine's hash rate.
    assert!(
        targets[n - 1] < targets[1] / U256::from(4u8),
        "the target adapted from far too easy"
    );
    mean
}

/// One miner alone and two together, as two networks at once: one test,
/// so that the rest of the suite runs beside it rather than after it.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "slow (miners settle for about 2 minutes): scripts/test runs it, --quick does not"]
async fn one_miner_and_two_miners_settle_near_the_target_block_time() {
    let (one, two) = tokio::join!(settle(1), settle(2));
    for (miners, mean) in [(1, one), (2, two)] {
        assert!(
            (0.5..=3.0).contains(&(mean / SECONDS as f64)),
            "{miners} miner(s): mean block time {mean:.2} s against {SECONDS} s"
        );
    }
}

/// The scenario network: retargeted every 20 blocks, least difficulty 2.
fn scenario_network() -> Network {
    Network {
        kind: Kind::Adaptive {
            target_block_seconds: SECONDS,
            retarget_window: WINDOW,
        },
        ..Network::new(genesis(), 2)
    }
}

/// A chain of `len` blocks on `network`, each timestamp `gap` seconds
/// after the one before, or the earliest the rules allow when `gap` is 0
/// (which makes the blocks look fast, so the targets get harder).
fn mine_timed(network: &Network, len: usize, gap: u128, tag: &str) -> Vec<Block> {
    let mut blocks = vec![network.genesis.clone()];
    let mut cursor = Cursor::genesis(network);
    while blocks.len() < len {
        let prev = blocks.last().unwrap();
        let earliest = cursor.min_next_timestamp(network).unwrap();
        let timestamp = if gap == 0 {
            earliest
        } else {
            (prev.timestamp + gap).max(earliest)
        };
        let block = Template::with_target(
            prev,
            format!("{tag} {}", blocks.len()),
            timestamp,
            cursor.next_target(network),
        )
        .solve_plainly();
        cursor.step(&block, network, Clock::Stored).unwrap();
        blocks.push(block);
    }
    blocks
}

fn scenario_args<'a>(args: &'a [String], peers: &'a str) -> Vec<&'a str> {
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend(["--peers", peers]);
    all
}

/// The series' question: a node that mined alone on an easier branch ends
/// up longer but with less work. When it connects, the honest network keeps
/// its chain, the lone node switches to it, and its blocks are orphaned.
#[tokio::test(flavor = "multi_thread")]
async fn a_longer_branch_with_less_work_loses_and_is_orphaned() {
    let network = scenario_network();
    // The honest network's blocks came fast: its targets got harder.
    let honest = mine_timed(&network, 60, 0, "honest");
    // The lone node's came slowly: its targets stayed the easiest.
    let lone = mine_timed(&network, 100, 30, "lone");
    let work = |blocks: &[Block]| {
        let mut cursor = Cursor::genesis(&network);
        for block in &blocks[1..] {
            cursor.advance(block, &network);
        }
        cursor.work
    };
    assert!(lone.len() > honest.len() && work(&lone) < work(&honest));

    let args = adaptive_args(2);
    let (a_dir, b_dir, lone_dir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    write_chaindata(&a_dir.path().join("chaindata"), &honest);
    write_chaindata(&lone_dir.path().join("chaindata"), &lone);
    let a = Jbc::start(a_dir.path(), &scenario_args(&args, ""));
    let b = Jbc::start(b_dir.path(), &scenario_args(&args, &a.url));
    let alone = Jbc::start(lone_dir.path(), &scenario_args(&args, ""));
    b.chain_of_at_least(honest.len()).await;
    assert_eq!(alone.chain().await, lone);

    // The lone node meets the honest network, both ways.
    assert_eq!(alone.add_peer(&a.url).await.0, 201);
    assert_eq!(a.add_peer(&alone.url).await.0, 201);

    wait_for("the lone node to switch", PATIENCE, || async {
        (alone.chain().await == honest).then_some(())
    })
    .await;
    alone.wait_for_log("switched to the chain of");
    a.wait_for_log("is longer than ours but has less work: ours is kept");
    assert_eq!(a.chain().await, honest, "the honest node kept its chain");
    assert_eq!(b.chain().await, honest);
    assert_eq!(
        alone.status().await["chainwork"],
        a.status().await["chainwork"]
    );
    // Every lone block is kept aside as orphaned, none lost.
    let orphaned = crate::common::block_files(&alone.chaindata().join("orphaned"));
    assert_eq!(orphaned.len(), lone.len() - 1);
    for (_, bytes) in &orphaned {
        let block = Block::from_json(bytes).unwrap();
        assert_eq!(lone[block.index as usize], block);
    }
    // Nobody was banned for an honest, lighter chain.
    for node in [&a, &alone] {
        assert!(peers(node).await.iter().all(|p| p["state"] != "banned"));
    }
}

/// Blocks that claim an easier target than the rules give, or break a
/// timestamp rule, are refused with the reason; one too far ahead of the
/// clock is refused too, but its sender is not banned for it.
#[tokio::test(flavor = "multi_thread")]
async fn blocks_that_break_the_rules_are_refused_with_the_reason() {
    let network = scenario_network();
    // 40 fast blocks: block 40 is due a harder target than the limit.
    let blocks = mine_timed(&network, 40, 0, "base");
    let mut cursor = Cursor::genesis(&network);
    for block in &blocks[1..] {
        cursor.advance(block, &network);
    }
    let target = cursor.next_target(&network);
    let limit = network.pow_limit();
    assert!(target.0 < limit.0 / U256::from(2u8));
    let tip = blocks.last().unwrap();
    let on_time = cursor.min_next_timestamp(&network).unwrap();

    let dir = tempfile::tempdir().unwrap();
    write_chaindata(&dir.path().join("chaindata"), &blocks);
    let args = adaptive_args(2);
    let node = Jbc::start(dir.path(), &scenario_args(&args, ""));

    // Meets the easiest target, not the one the rules give block 40.
    let easy = (0..)
        .map(|nonce| Block::new(40, on_time, tip.hash.to_string(), "easy".into(), nonce))
        .find(|b| limit.is_met_by(&b.hash) && !target.is_met_by(&b.hash))
        .unwrap();
    let (code, body) = node.announce(&easy, None).await;
    assert_eq!(code, 422, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with("block 40: hash") && error.contains("is above its target"),
        "{error}"
    );

    // Not after the median of the 11 blocks before.
    let early = Template::with_target(tip, "early".into(), on_time - 1, target).solve_plainly();
    let (code, body) = node.announce(&early, None).await;
    assert_eq!(code, 422, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("is not after"), "{error}");

    // Three hours ahead of the clock.
    let now = chrono::Utc::now().timestamp() as u128;
    let ahead = Template::with_target(tip, "ahead".into(), now + 3 * 3600, target).solve_plainly();
    let (code, body) = node.announce(&ahead, None).await;
    assert_eq!(code, 422, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("ahead of this node's clock"), "{error}");

    // The good block is taken.
    let good = Template::with_target(tip, "good".into(), now, target).solve_plainly();
    let (code, body) = node.announce(&good, None).await;
    assert_eq!((code, &body["status"]), (200, &Value::from("accepted")));

    // A peer that serves a block from three hours ahead (it accepted it
    // before its clock was right, say) is not believed, and not banned.
    let peer_dir = tempfile::tempdir().unwrap();
    let mut theirs = blocks.clone();
    theirs.push(ahead.clone());
    write_chaindata(&peer_dir.path().join("chaindata"), &theirs);
    let peer = Jbc::start(peer_dir.path(), &scenario_args(&args, ""));
    assert_eq!(
        peer.chain().await,
        theirs,
        "a stored block is not refused for the clock"
    );
    let learner_dir = tempfile::tempdir().unwrap();
    write_chaindata(&learner_dir.path().join("chaindata"), &blocks);
    let learner = Jbc::start(learner_dir.path(), &scenario_args(&args, &peer.url));
    learner.wait_for_log("ahead of this node's clock");
    assert_eq!(learner.chain().await, blocks);
    let listed = peers(&learner).await;
    let entry = listed
        .iter()
        .find(|p| p["url"] == peer.url.as_str())
        .unwrap();
    assert_ne!(entry["state"], "banned", "{entry}");
}
