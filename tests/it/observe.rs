//! Watching a node from outside: `/events` as a browser or `curl -N` reads
//! it, `/metrics` as Prometheus parses it, and who may read what from other
//! origins (CORS). Real processes on loopback, bounded waits.

use std::time::Instant;

use crate::common::{Jbc, PATIENCE, extend_chain, get, mine_chain, wait_for};
use serde_json::Value;

/// Reads Server-Sent Events from `url` until `done` has seen what it needs
/// (or PATIENCE passes): each event as its name and JSON data.
struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    async fn open(node: &Jbc) -> EventStream {
        let response = reqwest::Client::new()
            .get(format!("{}/events", node.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "an event stream says so"
        );
        EventStream {
            response,
            buffer: String::new(),
        }
    }

    /// The next event, by name and data; None at the end of the stream.
    async fn next(&mut self) -> Option<(String, Value)> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let message: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in message.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_string();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim());
                    }
                }
                if name.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some((
                    name,
                    serde_json::from_str(&data).expect("event data is JSON"),
                ));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk())
                .await
                .expect("an event within PATIENCE")
                .unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Skips events until one named `name` that `matches`.
    async fn until(&mut self, name: &str, matches: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..10_000 {
            let (event, data) = self.next().await.expect("the stream stays open");
            assert_eq!(data["type"], event, "`type` repeats the event's name");
            if event == name && matches(&data) {
                return data;
            }
        }
        panic!("no {name} event among 10 000");
    }
}

#[tokio::test]
async fn events_tell_of_new_tips_data_and_peers() {
    let dir = tempfile::tempdir().unwrap();
    let node = Jbc::builder()
        .difficulty(5)
        .switch("mine")
        .threads(1)
        .peers(&[""])
        .start(dir.path());
    let mut events = EventStream::open(&node).await;

    let tip = events.until("tip", |_| true).await;
    assert_eq!(tip["source"], "this node");
    assert_eq!(tip["added"], 1);
    let index = tip["tip"]["index"].as_u64().unwrap();
    let block: Value =
        serde_json::from_slice(&get(&format!("{}/blocks/{index}", node.url)).await.unwrap())
            .unwrap();
    // The node's blocks may be replaced by then only through a reorg, which
    // a lone miner never has.
    assert_eq!(block["hash"], tip["tip"]["hash"]);

    let (status, answer) = crate::common::post_as_operator(
        &node,
        "/data",
        serde_json::json!({"data": "seen on the stream"}),
    )
    .await;
    assert_eq!(status, 202);
    let id = answer["id"].as_str().unwrap().to_string();
    events.until("data_accepted", |e| e["id"] == id).await;
    let confirmed = events.until("data_confirmed", |e| e["id"] == id).await;
    let block = confirmed["block"].as_u64().unwrap();
    let item: Value =
        serde_json::from_slice(&get(&format!("{}/data/{id}", node.url)).await.unwrap()).unwrap();
    assert_eq!(item["status"], "confirmed");
    assert_eq!(item["block"], block);

    // A peer that comes and goes: one event as it is added, and one as it
    // is removed.
    let peer_dir = tempfile::tempdir().unwrap();
    let peer = Jbc::builder()
        .difficulty(5)
        .peers(&[""])
        .start(peer_dir.path());
    let (status, _) =
        crate::common::post_as_operator(&node, "/peers", serde_json::json!({"url": peer.url}))
            .await;
    assert_eq!(status, 201);
    let added = events.until("peer", |e| e["url"] == peer.url).await;
    assert!(added["previous"].is_null(), "{added}");
    let response = reqwest::Client::new()
        .delete(format!("{}/peers", node.url))
        .bearer_auth(node.operator_key())
        .header("content-type", "application/json")
        .body(serde_json::json!({"url": peer.url}).to_string())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let removed = events
        .until("peer", |e| e["url"] == peer.url && e["state"] == "removed")
        .await;
    assert!(removed["previous"].is_string());

    // The stream ends when the node stops, so it does not hold up shutdown
    // (read as a page reads it meanwhile: a reader that stops reading
    // while a miner fills its socket holds its answer up, and is waited for
    // only the shutdown's few seconds of grace).
    let stopping = tokio::task::spawn_blocking(move || node.terminate_with_logs());
    while events.next().await.is_some() {}
    let (status, logs) = stopping.await.unwrap();
    assert!(status.success());
    assert!(
        !logs.contains("did not close in time"),
        "an open event stream held up shutdown:\n{logs}"
    );
    assert!(peer.terminate().success());
}

#[tokio::test]
async fn a_reorg_is_one_event_with_its_depth_and_both_tips() {
    let ours = mine_chain(4, 3, "ours");
    let theirs = extend_chain(&ours[..1], 7, 3, "theirs");
    let (dir, peer_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let node = Jbc::serving(dir.path(), &ours, 3);
    let peer = Jbc::serving(peer_dir.path(), &theirs, 3);
    let mut events = EventStream::open(&node).await;

    let (status, _) =
        crate::common::post_as_operator(&node, "/peers", serde_json::json!({"url": peer.url}))
            .await;
    assert_eq!(status, 201);
    let reorg = events.until("reorg", |_| true).await;
    assert_eq!(reorg["depth"], 3, "{reorg}");
    assert_eq!(reorg["fork"], 0);
    assert_eq!(reorg["old_tip"]["index"], 3);
    assert_eq!(reorg["old_tip"]["hash"], ours[3].hash.to_string());
    assert_eq!(reorg["new_tip"]["index"], 6);
    assert_eq!(reorg["new_tip"]["hash"], theirs[6].hash.to_string());
    assert_eq!(reorg["source"], peer.url);

    let metrics = scrape(&node).await;
    assert_eq!(value(&metrics, "jbc_reorgs_total", &[]), 1.0);
    assert_eq!(value(&metrics, "jbc_orphaned_blocks_total", &[]), 3.0);
    assert_eq!(value(&metrics, "jbc_height", &[]), 6.0);
    assert_eq!(value(&metrics, "jbc_blocks_fetched_total", &[]), 6.0);
    assert!(node.terminate().success());
    assert!(peer.terminate().success());
}

async fn scrape(node: &Jbc) -> prometheus_parse::Scrape {
    let response = reqwest::get(format!("{}/metrics", node.url)).await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let lines = text.lines().map(|line| Ok(line.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("the metrics parse")
}

/// The value of the sample `name` with the labels `labels` (others may be
/// there too); panics when there is none.
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(k).is_some_and(|l| l == *v))
        })
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"));
    match sample.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{name} is {other:?}"),
    }
}

#[tokio::test]
async fn metrics_parse_and_match_what_the_node_says_elsewhere() {
    let chain = mine_chain(5, 3, "m");
    let (dir, peer_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let peer = Jbc::serving(peer_dir.path(), &chain, 3);
    let node = Jbc::builder()
        .difficulty(3)
        .peers(&[&peer.url])
        .start(dir.path());
    wait_for("the node to sync", PATIENCE, || async {
        let status: Value =
            serde_json::from_slice(&get(&format!("{}/status", node.url)).await.ok()?).ok()?;
        (status["height"] == 4).then_some(())
    })
    .await;
    for _ in 0..3 {
        get(&format!("{}/blocks/2", node.url)).await.unwrap();
    }
    get(&format!("{}/nope", node.url)).await.unwrap();
    crate::common::post_as_operator(&node, "/data", serde_json::json!({"data": "waits"})).await;

    let metrics = scrape(&node).await;
    assert_eq!(value(&metrics, "jbc_height", &[]), 4.0);
    assert_eq!(value(&metrics, "jbc_pending_data", &[]), 1.0);
    assert_eq!(value(&metrics, "jbc_hashrate", &[]), 0.0);
    assert_eq!(value(&metrics, "jbc_sync_lag", &[]), 0.0);
    assert_eq!(value(&metrics, "jbc_reorgs_total", &[]), 0.0);
    assert_eq!(value(&metrics, "jbc_blocks_fetched_total", &[]), 4.0);
    assert_eq!(value(&metrics, "jbc_peers", &[("state", "up")]), 1.0);
    assert_eq!(value(&metrics, "jbc_peers", &[("state", "banned")]), 0.0);
    let requests = |route: &str, status: &str| {
        value(
            &metrics,
            "jbc_http_requests_total",
            &[("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("/blocks/:index", "200"), 3.0);
    assert_eq!(requests("other", "404"), 1.0);
    assert_eq!(requests("/data", "202"), 1.0);
    assert!(node.terminate().success());
    assert!(peer.terminate().success());
}

#[tokio::test]
async fn other_origins_may_read_but_not_change() {
    let dir = tempfile::tempdir().unwrap();
    let node = Jbc::builder().difficulty(3).peers(&[""]).start(dir.path());
    let client = reqwest::Client::new();
    for path in [
        "/",
        "/status",
        "/blocks",
        "/blocks/0",
        "/blockchain.json",
        "/peers",
        "/data",
        "/metrics",
    ] {
        let response = client
            .get(format!("{}{path}", node.url))
            .header("Origin", "http://example.test")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response
                .headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap()),
            Some("*"),
            "GET {path} may be read from any page"
        );
    }
    let posted = client
        .post(format!("{}/data", node.url))
        .header("Origin", "http://example.test")
        .header("content-type", "application/json")
        .body(r#"{"data": "x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 202);
    assert!(
        posted
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    // No preflight is granted, so a browser never sends another site's JSON.
    let preflight = client
        .request(reqwest::Method::OPTIONS, format!("{}/data", node.url))
        .header("Origin", "http://example.test")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    assert!(!preflight.status().is_success());
    // The explorer page is in the binary, with its script and style.
    for (path, kind) in [
        ("/", "text/html"),
        ("/explorer.js", "text/javascript"),
        ("/explorer.css", "text/css"),
    ] {
        let response = client
            .get(format!("{}{path}", node.url))
            .send()
            .await
            .unwrap();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("://cdn") && !body.contains("https://"),
            "{path} loads nothing from elsewhere"
        );
    }
    assert!(node.terminate().success());
}
