//! `jbc devnet 3` driven from its control page in headless Chromium, as a
//! learner drives it: cut node 2 off, mine a block on it and one on node 1
//! (two tips), rejoin it and mine the block that decides (one tip, node
//! 2's block orphaned in its tree); stop node 3, mine without it, start it
//! and watch it catch up; switch the generated activity on and see a block
//! carry its items; export, stop, start again from the export on other
//! ports: the same heights and tips. Screenshots are saved as it goes.
//!
//! With `JBC_SHOOT` set to `URL=FILE` pairs separated by spaces, the
//! binary only saves a screenshot of each page (what `scripts/screenshots`
//! runs for the README, against a devnet on the usual ports).
//!
//! Where no Chromium can be found (`.ci/run` installs Debian's `chromium`),
//! the test says why and counts as ignored (skipped), never as passed.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::browser::{js, launch, run_with_chromium, screenshot, wait_in_page};
use common::{JBC, PATIENCE};
use headless_chrome::Tab;
use serde_json::Value;

const NAME: &str =
    "a_devnet_forks_heals_restarts_a_node_and_comes_back_from_its_export_in_a_real_browser";

fn main() {
    if let Ok(shots) = std::env::var("JBC_SHOOT") {
        return shoot(&shots);
    }
    run_with_chromium("devnet", NAME, devnet_in_a_browser)
}

/// Saves a PNG of each `URL=FILE` in `shots`, once the page has drawn its
/// data (what a person sees a few seconds after opening it).
fn shoot(shots: &str) {
    let chromium = common::browser::find_chromium().expect("JBC_SHOOT needs Chromium");
    let browser = launch(&chromium).unwrap();
    for pair in shots.split_whitespace() {
        let (url, file) = pair.split_once('=').expect("URL=FILE");
        let tab = browser.new_tab().unwrap();
        tab.set_default_timeout(PATIENCE);
        tab.navigate_to(url).unwrap();
        // The page polls each second and its frames load their own data.
        std::thread::sleep(Duration::from_secs(6));
        let png = tab
            .capture_screenshot(
                headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption::Png,
                None,
                None,
                true,
            )
            .unwrap();
        std::fs::write(file, png).unwrap();
        eprintln!("saved {file} ({url})");
    }
}

/// `count` ports in a row free now, below the ephemeral range.
fn free_ports(count: u16) -> u16 {
    for _ in 0..200 {
        let base = common::free_port();
        if (1..count).all(|n| std::net::TcpListener::bind(("127.0.0.1", base + n)).is_ok()) {
            return base;
        }
    }
    panic!("no {count} free ports in a row");
}

/// A running `jbc devnet`, its output kept; stopped (SIGTERM, as Ctrl-C
/// does) when dropped, so a failed assertion leaves no node behind.
struct Devnet {
    child: Child,
    control: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Devnet {
    fn start(dir: &Path, base: u16, extra: &[&str]) -> Devnet {
        let control_port = common::free_port();
        let mut child = Command::new(JBC)
            .args(["devnet", "--difficulty", "5", "--port", &base.to_string()])
            .args(["--control-port", &control_port.to_string()])
            .arg("--dir")
            .arg(dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Devnet {
            child,
            control: format!("http://127.0.0.1:{control_port}"),
            lines,
        }
    }

    fn printed(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// `GET /api/devnet`, once every node runs and answers.
    fn until_up(&self, runtime: &tokio::runtime::Runtime, nodes: usize) -> Value {
        runtime.block_on(common::wait_for(
            "the devnet's nodes to answer",
            PATIENCE,
            || async {
                let view = api(&self.control).await?;
                let up = view["nodes"]
                    .as_array()?
                    .iter()
                    .filter(|n| n["status"].is_object())
                    .count();
                (up == nodes).then_some(view)
            },
        ))
    }

    /// SIGTERM, and the pids of its nodes, for the caller to check.
    fn stop(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the devnet did not stop:\n{}", self.printed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

async fn api(control: &str) -> Option<Value> {
    let body = common::get(&format!("{control}/api/devnet")).await.ok()?;
    serde_json::from_slice(&body).ok()
}

/// Each node's (port, height, tip) from the devnet's view.
fn tips(view: &Value) -> Vec<(u64, u64, String)> {
    view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["port"].as_u64().unwrap(),
                n["status"]["height"].as_u64().unwrap_or(0),
                n["status"]["tip"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// A node card's `data-` attribute, as the page shows it.
fn card(tab: &Tab, port: u16, attribute: &str) -> Result<String, String> {
    let value = js(
        tab,
        &format!(
            "(() => {{ const c = document.querySelector('article[data-port=\"{port}\"]'); \
             return c ? (c.dataset.{attribute} || '') : ''; }})()"
        ),
    )?;
    Ok(value.as_str().unwrap_or_default().to_string())
}

/// Clicks a button of a node's card, as a learner does.
fn click(tab: &Tab, port: u16, button: &str) -> Result<(), String> {
    let clicked = js(
        tab,
        &format!(
            "(() => {{ const b = document.querySelector('article[data-port=\"{port}\"] button.{button}'); \
             if (!b || b.disabled) return false; b.click(); return true; }})()"
        ),
    )?;
    if clicked != true {
        return Err(format!("no {button} button to click on node {port}"));
    }
    Ok(())
}

/// Waits until the card of `port` says `attribute` is `wanted`.
fn until_card(tab: &Tab, port: u16, attribute: &str, wanted: &str) -> Result<(), String> {
    wait_in_page(
        tab,
        &format!("node {port}'s {attribute} to be {wanted}"),
        |tab| Ok((card(tab, port, attribute)? == wanted).then_some(())),
    )
}

/// Mines one block on `port` through its card; its new height and tip.
fn mine_one(tab: &Tab, port: u16) -> Result<(u64, String), String> {
    let before: u64 = card(tab, port, "height")?.parse().unwrap_or(0);
    wait_in_page(tab, "the mine button", |tab| {
        Ok(click(tab, port, "mine").is_ok().then_some(()))
    })?;
    wait_in_page(tab, &format!("a block mined on node {port}"), |tab| {
        let height: u64 = card(tab, port, "height")?.parse().unwrap_or(0);
        Ok((height > before).then_some(()))
    })?;
    // Read after the wait: the height and tip of one and the same status.
    Ok((
        card(tab, port, "height")?.parse().unwrap(),
        card(tab, port, "tip")?,
    ))
}

fn devnet_in_a_browser(chromium: &Path) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("devnet");
    std::fs::create_dir_all(&shots).map_err(|e| e.to_string())?;
    let base = free_ports(3);
    let ports = [base, base + 1, base + 2];
    let mut devnet = Devnet::start(&dir.path().join("first"), base, &[]);
    devnet.until_up(&runtime, 3);

    let browser = launch(chromium)?;
    let tab = browser.new_tab().map_err(|e| e.to_string())?;
    tab.set_default_timeout(PATIENCE);
    tab.navigate_to(&format!("{}/", devnet.control))
        .map_err(|e| e.to_string())?;
    for port in ports {
        until_card(&tab, port, "state", "running")?;
    }
    // A node lets the control page (and no other) show its explorer in a
    // frame.
    let page = runtime.block_on(async {
        reqwest::get(format!("http://127.0.0.1:{base}/"))
            .await
            .map_err(|e| e.to_string())
    })?;
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    let control_port = devnet.control.rsplit(':').next().unwrap();
    if !policy.contains(&format!(
        "frame-ancestors http://127.0.0.1:{control_port} http://localhost:{control_port};"
    )) || page.headers().contains_key("x-frame-options")
    {
        return Err(format!("a devnet node's framing policy: {policy}"));
    }
    wait_in_page(&tab, "the nodes' heights", |tab| {
        Ok((!card(tab, ports[2], "height")?.is_empty()).then_some(()))
    })?;

    // Cut node 2 off; a block on it and one on node 1: two tips.
    click(&tab, ports[1], "cut")?;
    until_card(&tab, ports[1], "isolated", "true")?;
    let (alone_height, alone) = mine_one(&tab, ports[1])?;
    let (_, other) = mine_one(&tab, ports[0])?;
    if alone == other {
        return Err("an isolated node's block reached the others".into());
    }
    wait_in_page(&tab, "the page to show two tips", |tab| {
        Ok((js(tab, "document.getElementById('agreement').dataset.tips")? == "2").then_some(()))
    })?;
    screenshot(&tab, &shots, "two-tips")?;

    // Rejoin: a tie (each keeps its own); the next block decides, and
    // every node shows one tip.
    click(&tab, ports[1], "cut")?;
    until_card(&tab, ports[1], "isolated", "false")?;
    mine_one(&tab, ports[0])?;
    wait_in_page(&tab, "every node on one tip", |tab| {
        let agreed = js(tab, "document.getElementById('agreement').dataset.tips")? == "1";
        let tips: Vec<String> = ports
            .iter()
            .map(|&p| card(tab, p, "tip"))
            .collect::<Result<_, _>>()?;
        Ok((agreed && tips.iter().all(|t| *t == tips[0])).then_some(()))
    })?;
    screenshot(&tab, &shots, "healed")?;

    // Node 2's tree, as the page frames it: its block, orphaned.
    js(
        &tab,
        &format!(
            "(() => {{ const s = document.getElementById('view-node'); s.value = '{}'; \
             s.dispatchEvent(new Event('change')); }})()",
            ports[1]
        ),
    )?;
    let tree_url = wait_in_page(&tab, "the tree frame of node 2", |tab| {
        let src = js(tab, "document.getElementById('tree-frame').src")?;
        Ok(src
            .as_str()
            .filter(|s| s.contains(&format!(":{}/", ports[1])) && s.ends_with("#/tree"))
            .map(str::to_string))
    })?;
    let tree = browser.new_tab().map_err(|e| e.to_string())?;
    tree.set_default_timeout(PATIENCE);
    tree.navigate_to(&tree_url).map_err(|e| e.to_string())?;
    wait_in_page(&tree, "node 2's block orphaned in its tree", |tree| {
        let off = js(
            tree,
            &format!(
                "(() => {{ const g = document.querySelector('g[data-hash=\"{alone}\"]'); \
                 return g ? g.dataset.off : null; }})()"
            ),
        )?;
        Ok((off == "left_the_chain").then_some(()))
    })?;
    screenshot(&tree, &shots, "orphaned")?;
    eprintln!("devnet: node 2's block {alone_height} ({alone}) is orphaned in its tree");

    // Stop node 3, mine two without it, start it: it catches up.
    click(&tab, ports[2], "stop-start")?;
    until_card(&tab, ports[2], "state", "stopped")?;
    mine_one(&tab, ports[0])?;
    let (height, tip) = mine_one(&tab, ports[0])?;
    click(&tab, ports[2], "stop-start")?;
    until_card(&tab, ports[2], "state", "running")?;
    wait_in_page(&tab, "node 3 caught up", |tab| {
        Ok((card(tab, ports[2], "tip")? == tip).then_some(()))
    })?;
    eprintln!("devnet: node 3 started again and caught up to block {height}");

    // Generated activity, switched on from the page: a block carries it.
    js(
        &tab,
        "(() => { document.getElementById('activity-rate').value = '20'; \
         const on = document.getElementById('activity-on'); on.checked = true; \
         on.dispatchEvent(new Event('change')); })()",
    )?;
    let node1 = format!("http://127.0.0.1:{}", ports[0]);
    runtime.block_on(common::wait_for(
        "generated items waiting",
        PATIENCE,
        || async {
            let body = common::get(&format!("{node1}/status")).await.ok()?;
            let status: Value = serde_json::from_slice(&body).ok()?;
            (status["pending_items"].as_u64()? >= 5).then_some(())
        },
    ));
    let (height, _) = mine_one(&tab, ports[0])?;
    let block: Value = runtime.block_on(async {
        let body = common::get(&format!("{node1}/blocks/{height}")).await?;
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    })?;
    let items: Vec<String> = serde_json::from_str(block["data"].as_str().unwrap_or_default())
        .map_err(|e| format!("block {height} carries no items: {e}: {block}"))?;
    let signed = items
        .iter()
        .filter(|i| i.starts_with("{\"text\":\"#"))
        .count();
    if items.is_empty() || !items.iter().any(|i| i.contains('#')) {
        return Err(format!(
            "block {height} carries no generated item: {items:?}"
        ));
    }
    eprintln!(
        "devnet: block {height} carries {} generated items ({signed} signed)",
        items.len()
    );
    js(
        &tab,
        "(() => { const on = document.getElementById('activity-on'); on.checked = false; \
         on.dispatchEvent(new Event('change')); })()",
    )?;
    runtime.block_on(common::wait_for(
        "the activity to stop",
        PATIENCE,
        || async { (api(&devnet.control).await?["activity"].as_f64()? == 0.0).then_some(()) },
    ));
    screenshot(&tab, &shots, "control-page")?;

    // The page's export is the devnet as a .tar.gz.
    let archive = runtime.block_on(common::get(&format!("{}/api/export", devnet.control)))?;
    if !archive.starts_with(&[0x1f, 0x8b]) {
        return Err("the page's export is not gzip".into());
    }

    // Export with the command, stop, start from the export elsewhere: the
    // same heights and tips.
    let view = devnet.until_up(&runtime, 3);
    let before: Vec<(u64, String)> = tips(&view).into_iter().map(|(_, h, t)| (h, t)).collect();
    let file = dir.path().join("net.tar.gz");
    let exported = Command::new(JBC)
        .args(["devnet", "export"])
        .arg(&file)
        .arg("--dir")
        .arg(dir.path().join("first"))
        .output()
        .unwrap();
    if !exported.status.success() {
        return Err(format!(
            "export failed: {}",
            String::from_utf8_lossy(&exported.stderr)
        ));
    }
    let pids: Vec<u64> = view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["run"]["pid"].as_u64())
        .collect();
    let stopped = devnet.stop();
    if !stopped.success() {
        return Err(format!(
            "the devnet ended with {stopped}:\n{}",
            devnet.printed()
        ));
    }
    for pid in pids {
        if Path::new(&format!("/proc/{pid}")).exists() {
            return Err(format!(
                "node pid {pid} is still running after the devnet stopped"
            ));
        }
    }
    let base = free_ports(3);
    let again = Devnet::start(
        &dir.path().join("second"),
        base,
        &["--from", file.to_str().unwrap()],
    );
    let view = again.until_up(&runtime, 3);
    let after: Vec<(u64, String)> = tips(&view).into_iter().map(|(_, h, t)| (h, t)).collect();
    if after != before {
        return Err(format!(
            "started from the export: {after:?}, exported: {before:?}\n{}",
            again.printed()
        ));
    }
    eprintln!(
        "devnet: started again from its export on ports {base}–{}: {after:?}",
        base + 2
    );
    Ok(())
}
