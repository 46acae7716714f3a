//! Live links: two real nodes linking and passing a block by announcement
//! and fetch, a peer that reads nothing dropped while another keeps
//! hearing blocks, and a scripted peer (a WebSocket client written here, from
//! the README's description of the wire) that says to a real node what an
//! honest peer says, and what no honest peer does.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message as Frame, client::IntoClientRequest};

use jbc::block::Block;
use jbc::chain::Template;
use jbc::item::{ItemId, data_for};

use crate::common::*;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `GET /peers/links` of `node`, after message `after`.
async fn links(node: &Jbc, after: u64) -> Value {
    let body = get(&format!("{}/peers/links?after={after}", node.url))
        .await
        .expect("/peers/links answers");
    serde_json::from_slice(&body).expect("/peers/links is JSON")
}

/// The messages `node` logged about block `hash`, as (direction, type).
async fn messages_about(node: &Jbc, hash: &str) -> Vec<(String, String)> {
    let body = get(&format!("{}/peers/links?block={hash}", node.url))
        .await
        .unwrap();
    kinds(&serde_json::from_slice(&body).unwrap())
}

/// The messages of a `/peers/links` answer, as (direction, type).
fn kinds(answer: &Value) -> Vec<(String, String)> {
    answer["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["direction"].as_str().unwrap().to_string(),
                m["type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Two nodes at difficulty 3 in `dir`: `a`, on its own and not mining,
/// and `b`, started from `b` with `a` as its peer.
fn pair(dir: &std::path::Path, b: Builder) -> (Jbc, Jbc) {
    let a = Jbc::builder()
        .difficulty(3)
        .peers(&[""])
        .start(&dir.join("a"));
    let b = b.difficulty(3).peers(&[&a.url]).start(&dir.join("b"));
    (a, b)
}

/// A peer scripted by the test, linked to `node`: it names itself at a
/// loopback URL nothing answers at, with `node`'s own status under another
/// node id (so it is of the node's network).
struct Scripted {
    socket: Socket,
    /// The reason the node gave when it closed the link, once it did.
    closed: Option<String>,
    /// Messages read while waiting for another, not yet taken.
    backlog: std::collections::VecDeque<Value>,
}

impl Scripted {
    async fn link(node: &Jbc) -> Scripted {
        let url = format!("http://127.0.0.1:{}", free_port());
        Scripted::link_as(node, &url)
            .await
            .expect("the node takes the link")
    }

    /// A link naming `url`: the linked peer, or the node's reason to close.
    async fn link_as(node: &Jbc, url: &str) -> Result<Scripted, String> {
        let mut status = node.status().await;
        status["node_id"] = json!(format!("{:032x}", rand_id()));
        Scripted::link_saying(node, url, status).await
    }

    /// A link naming `url`, saying `status` of itself in its hello.
    async fn link_saying(node: &Jbc, url: &str, status: Value) -> Result<Scripted, String> {
        let request = format!("ws://127.0.0.1:{}/link", node.port)
            .into_client_request()
            .unwrap();
        let (mut socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("the node takes a link");
        let hello = json!({"type": "hello", "url": url, "status": status});
        socket.send(Frame::text(hello.to_string())).await.unwrap();
        let mut scripted = Scripted {
            socket,
            closed: None,
            backlog: Default::default(),
        };
        let theirs = scripted.next().await.expect("the node says hello");
        assert_eq!(theirs["type"], "hello", "{theirs}");
        // Taken, or closed at once with the reason.
        scripted.send(json!({"type": "ping", "nonce": 1})).await;
        let mut before = std::collections::VecDeque::new();
        loop {
            match scripted.next().await {
                Some(pong) if pong["type"] == "pong" => {
                    scripted.backlog = before;
                    return Ok(scripted);
                }
                Some(other) => before.push_back(other),
                None => return Err(scripted.close_reason().await),
            }
        }
    }

    async fn send(&mut self, message: Value) {
        self.socket
            .send(Frame::text(message.to_string()))
            .await
            .unwrap();
    }

    /// The next message (pings answered, `inv`s of items passed over), or
    /// None when the link closed; fails the test after a while.
    async fn next(&mut self) -> Option<Value> {
        if let Some(message) = self.backlog.pop_front() {
            return Some(message);
        }
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .expect("the node says something in time");
            match frame {
                Some(Ok(Frame::Text(text))) => {
                    let message: Value = serde_json::from_str(&text).unwrap();
                    if message["type"] == "ping" {
                        let pong = json!({"type": "pong", "nonce": message["nonce"]});
                        self.send(pong).await;
                        continue;
                    }
                    return Some(message);
                }
                Some(Ok(Frame::Close(close))) => {
                    self.closed = Some(close.map(|c| c.reason.to_string()).unwrap_or_default());
                    return None;
                }
                None => return None,
                Some(Err(error)) => {
                    self.closed = Some(error.to_string());
                    return None;
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next message of `kind`, others passed over.
    async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let message = self.next().await.unwrap_or_else(|| {
                panic!("the link closed while waiting for a {kind}");
            });
            if message["type"] == kind {
                return message;
            }
        }
    }

    /// Reads until the node closes the link: its reason.
    async fn close_reason(&mut self) -> String {
        if let Some(reason) = self.closed.take() {
            return reason;
        }
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .expect("the node closes the link in time");
            match frame {
                Some(Ok(Frame::Close(Some(close)))) => return close.reason.to_string(),
                Some(Ok(Frame::Close(None))) | None => return String::new(),
                Some(Err(error)) => return error.to_string(),
                Some(Ok(_)) => continue,
            }
        }
    }
}

/// 128 random-enough bits for a node id.
fn rand_id() -> u128 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    nanos ^ (u128::from(std::process::id()) << 64) ^ 0x9e37_79b9_7f4a_7c15
}

/// A block on `parent` at difficulty 3 carrying `items`.
fn block_with_items(parent: &Block, items: &[&str]) -> Block {
    Template::next(parent, data_for(items), 1_700_000_000, 3).solve_plainly()
}

/// The block's JSON with an empty `data`: the header a compact block sends.
fn header_of(block: &Block) -> Value {
    let mut header: Value = serde_json::to_value(block).unwrap();
    header["data"] = json!("");
    header
}

async fn post_item(node: &Jbc, text: &str) {
    let answer = reqwest::Client::new()
        .post(format!("{}/data", node.url))
        .header("content-type", "application/json")
        .body(json!({ "data": text }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_link_and_a_block_crosses_by_announcement_then_fetch_without_polling() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path(), Jbc::builder().sync_interval(0.2));
    wait_for("b's live link with a", PATIENCE, || async {
        let answer = links(&b, 0).await;
        let up = answer["links"].as_array().unwrap();
        (up.len() == 1 && up[0]["peer"] == a.url.as_str()).then_some(())
    })
    .await;
    let before = a.status().await["blocks_fetched"].clone();
    let (code, _) = post_as_operator(&a, "/mine", json!({"blocks": 1})).await;
    assert_eq!(code, 202);
    wait_for("block 1 at b", PATIENCE, || async {
        (b.height().await >= 1).then_some(())
    })
    .await;
    let block = b.chain().await[1].clone();
    let hash = block.hash.to_string();
    // Announced, asked for, sent (a node of three links or fewer pushes
    // no block whole).
    let seen = messages_about(&b, &hash).await;
    let expected: Vec<(String, String)> = [("in", "inv"), ("out", "getdata"), ("in", "block")]
        .iter()
        .map(|(d, t)| (d.to_string(), t.to_string()))
        .collect();
    assert_eq!(seen, expected, "block 1's messages at b");
    // Nothing of it went over HTTP, and a did not fetch anything from b.
    assert_eq!(a.status().await["blocks_fetched"], before);
    assert!(!a.logs().contains("announced block 1"), "{}", a.logs());
    // Polling every 0.2 s, b would ask a's /status five times a second:
    // linked, it asks none.
    let asked = status_requests(&a).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(status_requests(&a).await, asked, "b polls a while linked");
    // b asked a, the peer it chose, for the nodes it knows over the link.
    wait_for("b's getaddr answered", PATIENCE, || async {
        let seen = kinds(&links(&b, 0).await);
        let has = |d: &str, t: &str| seen.contains(&(d.to_string(), t.to_string()));
        (has("out", "getaddr") && has("in", "addr")).then_some(())
    })
    .await;
    assert_eq!(requests_to(&a, "/peers/addr").await, 0);
}

/// How many `GET /status` requests `node` answered, from its metrics.
async fn status_requests(node: &Jbc) -> u64 {
    requests_to(node, "/status").await
}

/// How many requests on `route` `node` answered, from its metrics.
async fn requests_to(node: &Jbc, route: &str) -> u64 {
    let text = String::from_utf8(get(&format!("{}/metrics", node.url)).await.unwrap()).unwrap();
    let route = format!(r#"route="{route}""#);
    text.lines()
        .filter(|line| line.starts_with("jbc_http_requests_total{") && line.contains(&route))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compact_block_is_rebuilt_from_the_pool_asking_only_for_the_missing_item() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Jbc::builder().difficulty(3).peers(&[""]).start(tmp.path());
    post_item(&node, "known one").await;
    post_item(&node, "known two").await;
    let mut peer = Scripted::link(&node).await;
    let block = block_with_items(&genesis(), &["known one", "unknown", "known two"]);
    let hash = block.hash.to_string();
    peer.send(json!({"type": "inv", "blocks": [hash]})).await;
    let asked = peer.next_of("getdata").await;
    assert_eq!(asked["blocks"], json!([hash]));
    let ids: Vec<String> = ["known one", "unknown", "known two"]
        .iter()
        .map(|text| ItemId::of(text).to_string())
        .collect();
    peer.send(json!({
        "type": "cmpctblock",
        "header": header_of(&block),
        "items": ids,
        "size": block.json_len(),
    }))
    .await;
    let wanted = peer.next_of("getitems").await;
    assert_eq!(wanted["block"], json!(hash));
    assert_eq!(wanted["ids"], json!([ItemId::of("unknown").to_string()]));
    peer.send(json!({"type": "items", "block": hash, "items": ["unknown"]}))
        .await;
    wait_for("the rebuilt block", PATIENCE, || async {
        (node.height().await == 1).then_some(())
    })
    .await;
    assert_eq!(node.chain().await[1], block);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compact_block_whose_items_do_not_make_its_header_closes_the_link_and_is_held_against_it()
{
    let tmp = tempfile::tempdir().unwrap();
    let node = Jbc::builder().difficulty(3).peers(&[""]).start(tmp.path());
    post_item(&node, "one").await;
    post_item(&node, "two").await;
    let url = format!("http://127.0.0.1:{}", free_port());
    let mut peer = Scripted::link_as(&node, &url).await.unwrap();
    let block = block_with_items(&genesis(), &["one", "two"]);
    // The ids in the other order: a body that does not match the header.
    peer.send(json!({
        "type": "cmpctblock",
        "header": header_of(&block),
        "items": [ItemId::of("two").to_string(), ItemId::of("one").to_string()],
        "size": block.json_len(),
    }))
    .await;
    let reason = peer.close_reason().await;
    assert!(
        reason.contains("do not make a block of the hash"),
        "{reason}"
    );
    node.wait_for_log(&format!("discouraged {url}"));
    assert_eq!(node.height().await, 0);
    // Discouraged: not linked again for a while.
    let again = Scripted::link_as(&node, &url).await.err().expect("refused");
    assert!(again.contains("is left alone for"), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_no_peer_should_send_close_the_link_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Jbc::builder().difficulty(3).peers(&[""]).start(tmp.path());

    // An unknown type (a newer version's?): closed, not held against it.
    let mut peer = Scripted::link(&node).await;
    peer.send(json!({"type": "sendcmpct", "version": 2})).await;
    let reason = peer.close_reason().await;
    assert!(
        reason.contains("unknown message type \"sendcmpct\""),
        "{reason}"
    );

    // Out of order: a second hello.
    let mut peer = Scripted::link(&node).await;
    let status = node.status().await;
    peer.send(json!({"type": "hello", "status": status})).await;
    assert_eq!(peer.close_reason().await, "a second hello");

    // Not JSON.
    let mut peer = Scripted::link(&node).await;
    peer.socket.send(Frame::text("hello?")).await.unwrap();
    let reason = peer.close_reason().await;
    assert!(reason.starts_with("not a JSON object"), "{reason}");

    // Over the size bound (a block of the largest size, and then some).
    let mut peer = Scripted::link(&node).await;
    let huge = format!(
        r#"{{"type":"items","items":["{}"]}}"#,
        "x".repeat(5_000_000)
    );
    let _ = peer.socket.send(Frame::text(huge)).await;
    let reason = peer.close_reason().await;
    assert!(reason.contains("over"), "{reason}");

    // A flood of messages that each ask nothing.
    let mut peer = Scripted::link(&node).await;
    let flood = Frame::text(r#"{"type":"inv"}"#);
    let mut frames = futures_util::stream::iter((0..60_000).map(|_| Ok(flood.clone())));
    let _ = peer.socket.send_all(&mut frames).await;
    let reason = peer.close_reason().await;
    assert!(reason.starts_with("flooding"), "{reason}");

    // Every close was said, and the node still takes links.
    let mut peer = Scripted::link(&node).await;
    peer.send(json!({"type": "ping", "nonce": 7})).await;
    assert_eq!(peer.next_of("pong").await["nonce"], 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_web_page_opens_a_link() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Jbc::builder().difficulty(3).peers(&[""]).start(tmp.path());
    let mut request = format!("ws://127.0.0.1:{}/link", node.port)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tungstenite::Error::Http(answer)) => assert_eq!(answer.status().as_u16(), 403),
        other => panic!(
            "a link with an Origin was not refused: {:?}",
            other.map(|_| ())
        ),
    }
    // A plain GET (no upgrade) is told what the route is for.
    let answer = reqwest::get(format!("{}/link", node.url)).await.unwrap();
    assert_eq!(answer.status().as_u16(), 400);
    assert!(answer.text().await.unwrap().contains("WebSocket upgrade"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_links_off_is_served_over_http_as_before() {
    let tmp = tempfile::tempdir().unwrap();
    let b = Jbc::builder().sync_interval(0.2).switch("links=false");
    let (a, b) = pair(tmp.path(), b);
    let (code, _) = post_as_operator(&a, "/mine", json!({"blocks": 2})).await;
    assert_eq!(code, 202);
    wait_for("2 blocks at b", PATIENCE, || async {
        (b.height().await >= 2).then_some(())
    })
    .await;
    assert!(links(&a, 0).await["links"].as_array().unwrap().is_empty());
    assert!(
        links(&b, 0).await["messages"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jbc_peers_watch_prints_a_blocks_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = pair(tmp.path(), Jbc::builder());
    wait_for("b's live link", PATIENCE, || async {
        (!links(&b, 0).await["links"].as_array().unwrap().is_empty()).then_some(())
    })
    .await;
    let mut watch = std::process::Command::new(JBC)
        .args(["peers", "--watch", "--node", &b.port.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (lines, read) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let first = read.recv_timeout(PATIENCE).expect("the watch starts");
    assert!(first.starts_with("live links: "), "{first}");
    let (code, _) = post_as_operator(&a, "/mine", json!({"blocks": 1})).await;
    assert_eq!(code, 202);
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|line: &String| line.contains("  block  block 1  "))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        seen.push(
            read.recv_timeout(left)
                .expect("the block's messages are printed"),
        );
    }
    let _ = watch.kill();
    let _ = watch.wait();
    let text = seen.join("\n");
    assert!(text.contains(&format!("<- {}  inv  ", a.url)), "{text}");
    assert!(text.contains(&format!("-> {}  getdata  ", a.url)), "{text}");
    assert!(
        text.contains(&format!("<- {}  block  block 1  ", a.url)),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_block_goes_whole_to_a_few_links_and_by_announcement_to_the_rest() {
    const PEERS: usize = 12;
    let tmp = tempfile::tempdir().unwrap();
    let node = Jbc::builder().difficulty(3).peers(&[""]).start(tmp.path());
    let mut peers = Vec::new();
    for _ in 0..PEERS {
        peers.push(Scripted::link(&node).await);
    }
    let (code, _) = post_as_operator(&node, "/mine", json!({"blocks": 1})).await;
    assert_eq!(code, 202);
    let (mut pushed, mut announced) = (0, 0);
    for peer in &mut peers {
        let first = loop {
            let message = peer.next().await.expect("the link stays up");
            if message["type"] == "block" || message["blocks"].is_array() {
                break message;
            }
        };
        let block = if first["type"] == "block" {
            pushed += 1;
            first
        } else {
            announced += 1;
            assert_eq!(first["type"], "inv", "{first}");
            let hash = first["blocks"][0].clone();
            peer.send(json!({"type": "getdata", "blocks": [hash]}))
                .await;
            peer.next_of("block").await
        };
        assert_eq!(block["block"]["index"], "1", "{block}");
    }
    // Three of twelve on average go whole; all twelve pushed is a chance
    // of (3/12)^12.
    assert!(announced > 0, "every link got the block whole ({pushed})");
    // Nothing else is said of it: the block is known to every link now.
    let hash = node.chain().await[1].hash.to_string();
    let about = messages_about(&node, &hash).await;
    let out = about.iter().filter(|(d, _)| d == "out").count();
    assert_eq!(out, PEERS + announced, "{about:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_reads_nothing_is_dropped_while_the_others_keep_hearing_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, other) = pair(tmp.path(), Jbc::builder());
    wait_for("the other node's link", PATIENCE, || async {
        (!links(&other, 0).await["links"]
            .as_array()
            .unwrap()
            .is_empty())
        .then_some(())
    })
    .await;
    // 64 items of 4 000 bytes: each answer to asking for all of them is a
    // quarter of a megabyte.
    let texts: Vec<String> = (0..64)
        .map(|i| format!("{i:04}{}", "x".repeat(3996)))
        .collect();
    for text in &texts {
        post_item(&node, text).await;
    }
    let ids: Vec<String> = texts.iter().map(|t| ItemId::of(t).to_string()).collect();
    let url = format!("http://127.0.0.1:{}", free_port());
    let mut slow = Scripted::link_as(&node, &url).await.unwrap();
    let ask = Frame::text(json!({"type": "getitems", "ids": ids}).to_string());
    for _ in 0..500 {
        if slow.socket.send(ask.clone()).await.is_err() {
            break;
        }
    }
    node.wait_for_log("reads too slowly");
    // The others are still told of new blocks.
    let (code, _) = post_as_operator(&node, "/mine", json!({"blocks": 1})).await;
    assert_eq!(code, 202);
    wait_for("the block at the other node", PATIENCE, || async {
        (other.height().await >= 1).then_some(())
    })
    .await;
    let up = links(&node, 0).await;
    let peers: Vec<&str> = up["links"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["peer"].as_str())
        .collect();
    assert!(!peers.contains(&url.as_str()), "{peers:?}");
    assert!(peers.contains(&other.url.as_str()), "{peers:?}");
}

/// Answers `getheaders` and `getdata` from `chain` as a linked node with
/// that chain would, until the link closes or the task is aborted; `lie`:
/// the block whose header says a timestamp one second later than its
/// body's. The indexes of the bodies sent go to the list returned.
fn serve_chain(
    mut peer: Scripted,
    chain: Vec<Block>,
    lie: Option<u64>,
) -> (
    tokio::task::JoinHandle<()>,
    std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
) {
    let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = std::sync::Arc::clone(&sent);
    let task = tokio::spawn(async move {
        for _ in 0..10_000 {
            let Some(message) = peer.next().await else {
                return;
            };
            match message["type"].as_str().unwrap() {
                "getheaders" => {
                    let locator: Vec<String> =
                        serde_json::from_value(message["locator"].clone()).unwrap();
                    let shared = chain
                        .iter()
                        .rposition(|b| locator.contains(&b.hash.to_string()))
                        .expect("the locator ends at the genesis block");
                    let headers: Vec<Value> = chain[shared + 1..]
                        .iter()
                        .map(|block| {
                            let mut header = header_of(block);
                            if Some(block.index) == lie {
                                header["timestamp"] = json!(block.timestamp as u64 + 1);
                            }
                            json!({"header": header, "size": block.json_len()})
                        })
                        .collect();
                    peer.send(json!({"type": "headers", "headers": headers}))
                        .await;
                }
                "getdata" => {
                    assert_eq!(message["whole"], true, "a catch-up asks whole: {message}");
                    for hash in message["blocks"].as_array().unwrap() {
                        let block = chain
                            .iter()
                            .find(|b| json!(b.hash.to_string()) == *hash)
                            .expect("asked for a block it has");
                        record.lock().unwrap().push(block.index);
                        peer.send(json!({"type": "block", "block": block})).await;
                    }
                }
                _ => {}
            }
        }
    });
    (task, sent)
}

/// The hello of a node with `chain`: the `/status` of `recorder`, which
/// serves it over HTTP too (so a catch-up over HTTP would show there).
async fn status_of(recorder: &Recorder) -> Value {
    let body = get(&format!("{}/status", recorder.url)).await.unwrap();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_catches_up_by_headers_then_bodies_from_every_linked_peer_that_has_them() {
    let tmp = tempfile::tempdir().unwrap();
    let chain = mine_chain(31, 3, "ahead");
    let node = Jbc::builder().difficulty(3).peers(&[""]).start(tmp.path());
    // Two linked peers with the same chain, 30 blocks ahead; neither
    // answers until both are linked.
    let (one, two) = (
        Recorder::serving(chain.clone(), 3).await,
        Recorder::serving(chain.clone(), 3).await,
    );
    let first = Scripted::link_saying(&node, &one.url, status_of(&one).await)
        .await
        .unwrap();
    let second = Scripted::link_saying(&node, &two.url, status_of(&two).await)
        .await
        .unwrap();
    let (task_one, sent_one) = serve_chain(first, chain.clone(), None);
    let (task_two, sent_two) = serve_chain(second, chain.clone(), None);
    wait_for("the node at height 30", PATIENCE, || async {
        (node.height().await == 30).then_some(())
    })
    .await;
    assert_eq!(node.chain().await, chain);
    let (one_sent, two_sent) = (
        sent_one.lock().unwrap().clone(),
        sent_two.lock().unwrap().clone(),
    );
    assert!(
        !one_sent.is_empty() && !two_sent.is_empty(),
        "bodies from both peers: {one_sent:?} and {two_sent:?}"
    );
    // Headers, then bodies, over the links; no page over HTTP.
    let kinds = kinds(&links(&node, 0).await);
    for expected in [
        ("out", "getheaders"),
        ("in", "headers"),
        ("out", "getdata"),
        ("in", "block"),
    ] {
        assert!(
            kinds.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {kinds:?}"
        );
    }
    for recorder in [&one, &two] {
        let paths: Vec<String> = recorder.requests().into_iter().map(|r| r.path).collect();
        assert!(!paths.iter().any(|p| p.starts_with("/blocks")), "{paths:?}");
    }
    task_one.abort();
    task_two.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_match_its_header_is_held_against_the_peer_that_promised_it() {
    let tmp = tempfile::tempdir().unwrap();
    let chain = mine_chain(21, 3, "ahead");
    let node = Jbc::builder().difficulty(3).peers(&[""]).start(tmp.path());
    let liar = Recorder::serving(chain.clone(), 3).await;
    let peer = Scripted::link_saying(&node, &liar.url, status_of(&liar).await)
        .await
        .unwrap();
    let (task, _) = serve_chain(peer, chain, Some(7));
    node.wait_for_log(&format!("discouraged {}", liar.url));
    assert!(
        node.logs()
            .contains("its header of block 7 promised timestamp"),
        "{}",
        node.logs()
    );
    // What came before the broken promise stays; block 7 and on do not.
    assert_eq!(node.height().await, 6);
    assert!(
        node.logs().contains("switched to the chain of"),
        "{}",
        node.logs()
    );
    wait_for("the liar's link closed", PATIENCE, || async {
        links(&node, 0).await["links"]
            .as_array()
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
    task.abort();
}
