//! Watching a network agree, in a real browser (headless Chromium): three
//! nodes, A apart from B and C, each side mining its own block 1; then A
//! joins them and B mines block 2. The block tree shows both branches on
//! every node, A's block marked orphaned (it left A's chain) and lost on the
//! others, the best chain going on from B's; the explorer's tree moves A's
//! block off the line as the reorg happens; the network view lists the
//! three nodes, their links and their one tip, and how long after its
//! first sighting each node saw block 2, as each node's `/blocks/2/seen`
//! says.
//!
//! The nodes' miners mine the blocks they are ordered to (`POST /mine`), so
//! the fork is at a known height rather than by chance.
//!
//! Where no Chromium can be found the test says why and counts as ignored
//! (skipped), never as passed.

mod common;

use std::path::PathBuf;

use common::browser::{js, launch, run_with_chromium, screenshot, screenshot_of, wait_in_page};
use common::{Jbc, PATIENCE, get, post_as_operator, wait_for};
use headless_chrome::Tab;
use serde_json::{Value, json};

const NAME: &str = "a_fork_shows_in_the_tree_resolves_and_the_network_view_times_a_block";

fn main() {
    run_with_chromium("forks", NAME, watch_a_fork)
}

async fn json_of(url: &str) -> Result<Value, String> {
    let body = get(url).await?;
    serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))
}

/// Orders `node` to mine `blocks` blocks and waits until it has.
async fn mine(node: &Jbc, blocks: u64) -> Result<(), String> {
    let before = json_of(&format!("{}/status", node.url)).await?["height"]
        .as_u64()
        .unwrap_or(0);
    let (status, answer) = post_as_operator(node, "/mine", json!({ "blocks": blocks })).await;
    if status != 202 {
        return Err(format!("POST /mine said {status}: {answer}"));
    }
    wait_for("the ordered blocks", PATIENCE, || async {
        let status = json_of(&format!("{}/status", node.url)).await.ok()?;
        (status["height"].as_u64()? >= before + blocks).then_some(())
    })
    .await;
    Ok(())
}

/// The blocks a node's tree holds at `height`: (hash, best, off).
async fn tree_at(node: &Jbc, height: u64) -> Vec<(String, bool, String)> {
    let Ok(tree) = json_of(&format!("{}/tree?from={height}&limit=1", node.url)).await else {
        return Vec::new();
    };
    tree["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            (
                b["hash"].as_str().unwrap_or_default().to_string(),
                b["best"].as_bool().unwrap_or(false),
                b["off"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

async fn tip(node: &Jbc) -> Option<(u64, String)> {
    let status = json_of(&format!("{}/status", node.url)).await.ok()?;
    Some((
        status["height"].as_u64()?,
        status["tip"].as_str()?.to_string(),
    ))
}

/// The class and a marker of the tree's element for block `hash`.
fn tree_block(tab: &Tab, hash: &str) -> Result<Option<(String, bool)>, String> {
    let value = js(
        tab,
        &format!(
            "(() => {{ const g = document.querySelector('#tree-graph g.block[data-hash=\"{hash}\"]'); \
             return JSON.stringify(g ? [g.getAttribute('class'), g.jbcMarker === 7] : null); }})()"
        ),
    )?;
    let value: Value = serde_json::from_str(value.as_str().unwrap_or("null")).unwrap_or_default();
    Ok(value.as_array().map(|pair| {
        (
            pair[0].as_str().unwrap_or_default().to_string(),
            pair[1].as_bool().unwrap_or(false),
        )
    }))
}

/// What the page shows: its notice and the tree's summary, to read a failure.
fn page_text(tab: &Tab) -> String {
    js(
        tab,
        "[document.getElementById('notice').textContent, \
          document.getElementById('tree-summary').textContent, \
          document.getElementById('tree-graph').outerHTML.slice(0, 400)].join(' | ')",
    )
    .map(|value| value.to_string())
    .unwrap_or_else(|error| error)
}

fn watch_a_fork(chromium: &std::path::Path) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let idle_miners = ["--difficulty", "4", "--threads", "1"];
    let a = Jbc::start(
        dirs[0].path(),
        &[&idle_miners[..], &["--peers", ""]].concat(),
    );
    let b = Jbc::start(
        dirs[1].path(),
        &[&idle_miners[..], &["--peers", ""]].concat(),
    );
    let c = Jbc::start(
        dirs[2].path(),
        &[&idle_miners[..], &["--peers", &b.url]].concat(),
    );
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("forks");
    std::fs::create_dir_all(&shots).map_err(|e| e.to_string())?;

    // Apart, each side mines its own block 1; C has B's.
    let (a1, b1) = runtime.block_on(async {
        mine(&a, 1).await?;
        mine(&b, 1).await?;
        let b1 = tip(&b).await.ok_or("B's tip")?.1;
        wait_for("C to have B's block 1", PATIENCE, || async {
            (tip(&c).await?.1 == b1).then_some(())
        })
        .await;
        Ok::<_, String>((tip(&a).await.ok_or("A's tip")?.1, b1))
    })?;
    if a1 == b1 {
        return Err("the two sides mined the same block".into());
    }

    // A's explorer shows the tree before the join: its own block 1 on the
    // line. The element is marked, to see later that it moved, not that a
    // new one was drawn.
    let browser = launch(chromium)?;
    let tab = browser.new_tab().map_err(|e| e.to_string())?;
    tab.set_default_timeout(PATIENCE);
    tab.navigate_to(&format!("{}/#/tree/0", a.url))
        .map_err(|e| e.to_string())?;
    wait_in_page(&tab, "A's block 1 on the tree's line", |tab| {
        Ok(tree_block(tab, &a1)?.filter(|(class, _)| class.contains("best")))
    })
    .map_err(|error| format!("{error}; the page says: {}", page_text(&tab)))?;
    js(
        &tab,
        &format!("document.querySelector('#tree-graph g.block[data-hash=\"{a1}\"]').jbcMarker = 7"),
    )?;

    // Joined: A announces its block 1 to B and C, and hears of B's; each
    // node then knows both blocks 1, and keeps its own as best (a tie).
    runtime.block_on(async {
        for peer in [&b, &c] {
            let (status, answer) = post_as_operator(&a, "/peers", json!({ "url": peer.url })).await;
            if status != 201 {
                return Err(format!("adding {} to A said {status}: {answer}", peer.url));
            }
        }
        for node in [&a, &b, &c] {
            wait_for("both blocks 1 in every node's tree", PATIENCE, || async {
                let here = tree_at(node, 1).await;
                (here.len() == 2).then_some(())
            })
            .await;
        }
        Ok::<_, String>(())
    })?;
    wait_in_page(&tab, "B's block 1 as a side block on A's page", |tab| {
        Ok(tree_block(tab, &b1)?.filter(|(class, _)| class.contains("side lost")))
    })?;
    screenshot(&tab, &shots, "tree-tie")?;

    // B mines block 2: its branch has more work, and every node takes it.
    let b2 = runtime.block_on(async {
        mine(&b, 1).await?;
        let b2 = tip(&b).await.ok_or("B's tip")?;
        for node in [&a, &c] {
            wait_for("every node on B's block 2", PATIENCE, || async {
                (tip(node).await? == b2).then_some(())
            })
            .await;
        }
        Ok::<_, String>(b2)
    })?;
    if b2.0 != 2 {
        return Err(format!("B's tip is {b2:?}, not block 2"));
    }

    // Every node: B's block 1 on the best chain, A's off it: orphaned on A
    // (it left A's chain), lost on B and C.
    runtime.block_on(async {
        for (node, name, off) in [
            (&a, "A", "left_the_chain"),
            (&b, "B", "lost"),
            (&c, "C", "lost"),
        ] {
            let here = tree_at(node, 1).await;
            let expected = vec![
                (b1.clone(), true, String::new()),
                (a1.clone(), false, off.to_string()),
            ];
            if here != expected {
                return Err(format!("{name}'s tree at height 1: {here:?}"));
            }
            let two = tree_at(node, 2).await;
            if two != vec![(b2.1.clone(), true, String::new())] {
                return Err(format!("{name}'s tree at height 2: {two:?}"));
            }
        }
        Ok(())
    })?;

    // On A's page the very element of A's block 1 moved off the line.
    wait_in_page(&tab, "A's block 1 moved to a side branch", |tab| {
        Ok(tree_block(tab, &a1)?.filter(|(class, _)| class.contains("side left_the_chain")))
    })?;
    if tree_block(&tab, &a1)? != Some(("block side left_the_chain".into(), true)) {
        return Err(format!(
            "A's block 1 was redrawn, not moved: {:?}",
            tree_block(&tab, &a1)?
        ));
    }
    wait_in_page(&tab, "B's blocks on A's line, block 2 its tip", |tab| {
        let b1_best = tree_block(tab, &b1)?.is_some_and(|(class, _)| class == "block best");
        let b2_tip = tree_block(tab, &b2.1)?.is_some_and(|(class, _)| class == "block best tip");
        Ok((b1_best && b2_tip).then_some(()))
    })?;
    // The transition is 0.9 s; the screenshot shows where it ended.
    wait_in_page(&tab, "the tree to settle", |tab| {
        let moving = js(
            tab,
            "document.getAnimations().filter((a) => a.playState === 'running').length",
        )?;
        Ok((moving == 0).then_some(()))
    })?;
    screenshot(&tab, &shots, "tree")?;
    screenshot_of(&tab, "#tree-page article", &shots, "tree-card")?;

    // The network view: three nodes, three links, one tip, and block 2's
    // travel as each node's /blocks/2/seen tells it.
    js(&tab, "location.hash = '#/network'")?;
    let rows = wait_in_page(&tab, "three nodes on one tip", |tab| {
        let rows = js(
            tab,
            "JSON.stringify([...document.querySelectorAll('#network-nodes tbody tr')].map((tr) => \
             [tr.dataset.url, Number(tr.dataset.height), tr.dataset.tip, tr.dataset.seenMs]))",
        )?;
        let rows: Value = serde_json::from_str(rows.as_str().unwrap_or("[]")).unwrap_or_default();
        let rows = rows.as_array().cloned().unwrap_or_default();
        let agree = rows.len() == 3
            && rows
                .iter()
                .all(|row| row[1] == 2 && row[2] == b2.1.as_str() && row[3] != "");
        Ok(agree.then_some(rows))
    })?;
    let links = js(
        &tab,
        "document.querySelectorAll('#network-graph line.link').length",
    )?;
    if links != 3 {
        return Err(format!("the network view draws {links} links, not 3"));
    }
    let urls: Vec<&str> = rows.iter().filter_map(|row| row[0].as_str()).collect();
    for node in [&a, &b, &c] {
        if !urls.contains(&node.url.as_str()) {
            return Err(format!("{} is not in the network view: {urls:?}", node.url));
        }
    }
    let seen_ms = runtime.block_on(async {
        let mut all = Vec::new();
        for node in [&a, &b, &c] {
            let seen = json_of(&format!("{}/blocks/2/seen", node.url)).await?;
            let block = &seen["blocks"][0];
            if block["hash"] != b2.1.as_str() {
                return Err(format!("{}/blocks/2/seen: {seen}", node.url));
            }
            all.push((node.url.clone(), block["seen"].clone()));
        }
        Ok::<_, String>(all)
    })?;
    for (url, seen) in &seen_ms {
        let row = rows.iter().find(|row| row[0] == url.as_str()).unwrap();
        let shown: u64 = row[3].as_str().unwrap_or_default().parse().unwrap_or(0);
        if Some(shown) != seen["first_seen_ms"].as_u64() {
            return Err(format!(
                "the page says {url} saw block 2 at {shown}, the node says {seen}"
            ));
        }
        let expected_via = if url == &b.url { "mined" } else { "peer" };
        if seen["via"] != expected_via {
            return Err(format!("{url} saw block 2 via {seen}"));
        }
    }
    let travel = js(
        &tab,
        "document.getElementById('network-travel').textContent",
    )?;
    eprintln!("forks: {travel}");
    if !travel
        .as_str()
        .is_some_and(|text| text.contains("reached 3 of 3 nodes within"))
    {
        return Err(format!("the travel line says {travel}"));
    }
    screenshot(&tab, &shots, "network")?;
    screenshot_of(&tab, "#network-page article", &shots, "network-card")?;

    drop(tab);
    drop(browser);
    for node in [a, b, c] {
        if !node.terminate().success() {
            return Err("a node did not stop cleanly".into());
        }
    }
    Ok(())
}
