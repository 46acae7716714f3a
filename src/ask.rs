//! Asking a running node from the command line, as `bitcoin-cli` asks
//! `bitcoind`: `jbc status`, `blocks`, `block`, `peers`, `data` and `mine`.
//!
//! This module owns the node's address as a person types it (`5001`,
//! `host:port` or a URL), the operator key read from the node's cookie,
//! the sentences that say what to do when a node cannot be asked, and what
//! each command prints. It changes a node only through the node's own
//! endpoints; the answers' shapes are [`crate::protocol`]'s.

use std::io::Write;
use std::path::PathBuf;

/// `println!` for what a command prints, but a reader that went away
/// (`jbc blocks | head -1`) ends the command quietly, as it ends `jbc peers
/// --watch`, instead of a panic ("failed printing to stdout: Broken pipe").
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => { $crate::ask::say(format_args!($($arg)*)) };
}

/// Prints `line` and a newline to stdout (see [`say!`]): a closed pipe
/// ends the process with success, any other failure to write with an
/// error (code 1) saying so.
pub fn say(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(error) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("jbc: cannot write to stdout: {error}");
        std::process::exit(1);
    }
}
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::block::{Block, blocks_from_json};
use crate::client::http_client;
use crate::human::{duration_in_words, rate_in_words};
use crate::item::IdPrefix;
use crate::operator::{COOKIE_FILE, read_cookie};
use crate::protocol::{
    AuthorItems, AuthorView, BanRequest, Banned, Direction, Isolation, ItemAnswer, ItemStatus,
    LinksAnswer, Logged, MAX_AUTHOR_ITEMS, MineOrdered, MineRequest, Opened, PeerRequest, Status,
    route,
};

/// The node asked when none is named: the first node of a local network.
pub const DEFAULT_NODE: &str = "127.0.0.1:5001";

/// How often a command that waits asks the node again.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How often `jbc peers --watch` asks for new messages.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// One message on a link, as `jbc peers --watch` prints it:
/// `14:02:07.215  <- http://127.0.0.1:5002  inv  block 0000a3f1c2d4  86 B`.
pub fn message_line(message: &Logged) -> String {
    let time = chrono::DateTime::from_timestamp_millis(message.at_ms as i64)
        .map(|time| time.format("%H:%M:%S%.3f").to_string())
        .unwrap_or_default();
    let arrow = match message.direction {
        Direction::In => "<-",
        Direction::Out => "->",
    };
    let mut about = String::new();
    if let Some(index) = message.index {
        about.push_str(&format!("  block {index}"));
    }
    if let Some(hash) = &message.block {
        let hash = hash.to_string();
        about.push_str(&format!("  {}", &hash[..12]));
    }
    if let Some(count) = message.count {
        about.push_str(&format!("  ({count})"));
    }
    format!(
        "{time}  {arrow} {}  {}{about}  {} B",
        message.peer, message.kind, message.bytes
    )
}

/// Who opened a link, in words.
fn opened_in_words(opened: Opened) -> &'static str {
    match opened {
        Opened::Outbound => "opened by it",
        Opened::Inbound => "opened by the peer",
    }
}

/// Why a node could not be asked, or refused.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error(
        "{0:?} is not a node's address: give HOST:PORT (127.0.0.1:5001), a port (5001) or a URL (http://127.0.0.1:5001)"
    )]
    Address(String),
    #[error(
        "no node answers at {url} — is one running? start it with `jbc --port {port}` in its folder (or name another with --node HOST:PORT)"
    )]
    NoNode { url: String, port: u16 },
    #[error("the node at {url} did not answer within {seconds} s")]
    Timeout { url: String, seconds: u64 },
    #[error("cannot reach the node at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the node at {url} answered HTTP {status}, not JSON: is it a jbc node?")]
    NotJson { url: String, status: u16 },
    #[error("the node at {url} answered something this jbc does not read: {answer}")]
    Unexpected { url: String, answer: String },
    #[error("the node refused: {0}")]
    Refused(String),
    #[error(
        "cannot read the operator key from {path}: {reason} (give the node's cookie with --cookie; it is written beside the node's chaindata folder at each start)"
    )]
    Cookie { path: String, reason: String },
    #[error("{what} took longer than {seconds} s; it goes on at the node (ask again with {again})")]
    Waited {
        what: String,
        seconds: u64,
        again: String,
    },
    #[error("{0}")]
    Usage(String),
}

/// A node to ask: its base URL, and where its operator key is.
pub struct Node {
    base: url::Url,
    cookie: Option<PathBuf>,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Node {
    /// The node at `address` (`5001`, `host:port`, or an `http://` URL),
    /// whose operator key, when a command needs it, is read from `cookie`
    /// (by default `operator.cookie` in the current folder).
    pub fn new(address: &str, cookie: Option<PathBuf>) -> Result<Node, AskError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| AskError::Usage(format!("cannot start the runtime: {e}")))?;
        Ok(Node {
            base: parse_address(address)?,
            cookie,
            http: http_client(Duration::from_secs(5), Duration::from_secs(15)),
            runtime,
        })
    }

    /// The node's base URL, without a trailing slash.
    pub fn url(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    fn operator_key(&self) -> Result<String, AskError> {
        let path = (self.cookie.clone()).unwrap_or_else(|| PathBuf::from(COOKIE_FILE));
        read_cookie(&path).map_err(|e| AskError::Cookie {
            path: std::path::absolute(&path)
                .unwrap_or(path)
                .display()
                .to_string(),
            reason: e.to_string(),
        })
    }

    /// Sends a request and reads its JSON answer; an answer with an `error`
    /// field is the node's refusal, in its words.
    fn ask(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        as_operator: bool,
    ) -> Result<Value, AskError> {
        let url = self.url();
        let mut request = self.http.request(method, format!("{url}{path}"));
        if as_operator {
            request = request.bearer_auth(self.operator_key()?);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        self.runtime.block_on(async {
            let response = request.send().await.map_err(|e| self.transport(e))?;
            let status = response.status().as_u16();
            let body = response.bytes().await.map_err(|e| self.transport(e))?;
            let answer: Value = serde_json::from_slice(&body).map_err(|_| AskError::NotJson {
                url: url.clone(),
                status,
            })?;
            match answer.get("error").and_then(Value::as_str) {
                Some(error) => Err(AskError::Refused(error.to_string())),
                None => Ok(answer),
            }
        })
    }

    fn get(&self, path: &str) -> Result<Value, AskError> {
        self.ask(Method::GET, path, None, false)
    }

    /// Reads `answer` as a `T`.
    fn read<T: DeserializeOwned>(&self, answer: Value) -> Result<T, AskError> {
        serde_json::from_value(answer.clone()).map_err(|_| AskError::Unexpected {
            url: self.url(),
            answer: cut(&answer.to_string(), 200),
        })
    }

    fn transport(&self, error: reqwest::Error) -> AskError {
        let url = self.url();
        if error.is_connect() {
            AskError::NoNode {
                port: self.base.port_or_known_default().unwrap_or(80),
                url,
            }
        } else if error.is_timeout() {
            AskError::Timeout { url, seconds: 15 }
        } else {
            AskError::Unreachable {
                url,
                reason: error.to_string(),
            }
        }
    }

    /// `/status`, read.
    pub fn status(&self) -> Result<Status, AskError> {
        let answer = self.get(route::STATUS)?;
        self.read(answer)
    }

    /// `jbc status`: what the node is, where its chain is, whom it talks to.
    pub fn print_status(&self, json: bool) -> Result<(), AskError> {
        if json {
            return print_json(&self.get(route::STATUS)?);
        }
        let status = self.status()?;
        // Known is not reachable: the book says which peers answer.
        let peers = self.get(route::PEERS)?;
        let reachable = (peers.as_array().map_or(&[][..], Vec::as_slice).iter())
            .filter(|peer| peer["state"] == "up")
            .count();
        for line in status_lines(&self.url(), &status, reachable) {
            say!("{line}");
        }
        Ok(())
    }

    /// `jbc blocks [--last N]`: the last `last` blocks, oldest first.
    pub fn print_blocks(&self, last: u64, json: bool) -> Result<(), AskError> {
        let height = self.status()?.height;
        let from = (height + 1).saturating_sub(last);
        let answer = self.get(&format!("{}?from={from}&limit={last}", route::BLOCKS))?;
        if json {
            return print_json(&answer);
        }
        let blocks =
            blocks_from_json(answer.to_string().as_bytes()).map_err(|_| AskError::Unexpected {
                url: self.url(),
                answer: cut(&answer.to_string(), 200),
            })?;
        for block in &blocks {
            say!("{}", block_line(block));
        }
        Ok(())
    }

    /// `jbc block INDEX|HASH`: one block, as the node serves it.
    pub fn print_block(&self, which: &str) -> Result<(), AskError> {
        let which = which.trim();
        let path = if which.bytes().all(|b| b.is_ascii_digit()) && !which.is_empty() {
            format!("{}/{which}", route::BLOCKS)
        } else if which.len() == 64 && which.bytes().all(|b| b.is_ascii_hexdigit()) {
            format!("/block/{}", which.to_ascii_lowercase())
        } else {
            return Err(AskError::Usage(format!(
                "{which:?} is neither a block's index (a number) nor its hash (64 hex digits)"
            )));
        };
        print_json(&self.get(&path)?)
    }

    /// `jbc peers`: every peer with what the node knows of it.
    pub fn print_peers(&self, json: bool) -> Result<(), AskError> {
        let answer = self.get(route::PEERS)?;
        if json {
            return print_json(&answer);
        }
        let peers = answer.as_array().map_or(&[][..], Vec::as_slice);
        if peers.is_empty() {
            say!("no peers");
        }
        for peer in peers {
            let field = |name: &str| match &peer[name] {
                Value::String(text) => text.clone(),
                Value::Null => "-".into(),
                other => other.to_string(),
            };
            let why = [&peer["ban_reason"], &peer["discouraged_reason"]]
                .into_iter()
                .find_map(Value::as_str)
                .map(|reason| format!("  ({reason})"))
                .unwrap_or_default();
            say!(
                "{}  {}  {}  height {}{why}",
                field("url"),
                field("origin"),
                field("state"),
                field("height")
            );
        }
        Ok(())
    }

    /// `jbc peers --watch [--block HASH]`: the messages on the node's
    /// live links as they go (asked for every [`WATCH_INTERVAL`]), one
    /// line each (or one JSON object each, with `json`), until
    /// interrupted.
    pub fn watch_links(&self, block: Option<&str>, json: bool) -> Result<(), AskError> {
        let filter = block.map_or(String::new(), |hash| format!("&block={hash}"));
        let first: LinksAnswer =
            self.read(self.get(&format!("{}?after=0{filter}", route::LINKS))?)?;
        if !json {
            let up: Vec<String> = (first.links.iter())
                .map(|link| format!("{} ({})", link.peer, opened_in_words(link.opened)))
                .collect();
            match up.is_empty() {
                true => say!("no live links yet; waiting for messages (Ctrl-C stops)"),
                false => say!("live links: {}; watching (Ctrl-C stops)", up.join(", ")),
            }
        }
        // From now on: what was said before is in GET /peers/links.
        let mut last = first.last;
        loop {
            std::thread::sleep(WATCH_INTERVAL);
            let answer: LinksAnswer =
                self.read(self.get(&format!("{}?after={last}{filter}", route::LINKS))?)?;
            let mut out = std::io::stdout().lock();
            for message in &answer.messages {
                let line = match json {
                    true => serde_json::to_string(message).expect("a message serialises"),
                    false => message_line(message),
                };
                // Its reader went (`jbc peers --watch | head`): done.
                if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                    return Ok(());
                }
            }
            last = answer.last;
        }
    }

    /// `jbc peers add|remove|unban URL`, as the node's operator.
    /// The peer may be named as `--node` names a node: `5002`, `host:port`
    /// or a URL.
    pub fn change_peer(&self, change: PeerChange, url: &str) -> Result<(), AskError> {
        let url = &peer_url(url)?;
        let body =
            serde_json::to_string(&PeerRequest { url: url.into() }).expect("a string serialises");
        let (method, path) = match change {
            PeerChange::Add => (Method::POST, route::PEERS),
            PeerChange::Remove => (Method::DELETE, route::PEERS),
            PeerChange::Unban => (Method::DELETE, route::BANS),
        };
        let answer = self.ask(method, path, Some(body), true)?;
        match change {
            PeerChange::Add if answer["added"] == true => say!("added {url}"),
            PeerChange::Add => say!(
                "{url}: {}",
                answer["reason"].as_str().unwrap_or("not added")
            ),
            PeerChange::Remove => say!("removed {url}"),
            PeerChange::Unban => say!("lifted the ban on {url}"),
        }
        Ok(())
    }

    /// `jbc peers ban URL [--for TIME]`, as the node's operator.
    pub fn ban_peer(&self, url: &str, time: Option<Duration>) -> Result<(), AskError> {
        let url = &peer_url(url)?;
        let request = BanRequest {
            url: url.into(),
            seconds: time.map(|time| time.as_secs().max(1)),
            reason: None,
        };
        let body = serde_json::to_string(&request).expect("a ban serialises");
        let answer: Banned = self.read(self.ask(Method::POST, route::BANS, Some(body), true)?)?;
        let left = answer.banned_until.saturating_sub(crate::clock::unix_now());
        say!(
            "banned {url} for {} (jbc peers unban {url} lifts it)",
            duration_in_words(left as f64)
        );
        Ok(())
    }

    /// `jbc data add TEXT [--sign KEY] [--wait]`: submits an item, signed
    /// here with the key in file `sign` for the node's network (its genesis
    /// hash, from `/status`); with `wait`, returns once a block carries it
    /// (at most `patience`).
    pub fn add_data(
        &self,
        text: &str,
        sign: Option<&std::path::Path>,
        wait: Option<Duration>,
    ) -> Result<(), AskError> {
        let item = match sign {
            None => text.to_string(),
            Some(file) => {
                let key =
                    crate::signed::key::load(file).map_err(|e| AskError::Usage(e.to_string()))?;
                let genesis = self.status()?.genesis;
                crate::signed::Signed::sign(&key, &genesis, text).to_item()
            }
        };
        let answer = self.ask(
            Method::POST,
            route::DATA,
            Some(crate::client::data_request(&item)),
            false,
        )?;
        let answer: ItemAnswer = self.read(answer)?;
        let Some(patience) = wait else {
            say!("{}", item_line(&answer));
            return Ok(());
        };
        let id = answer.id.to_string();
        if matches!(answer.status, ItemStatus::Pending) {
            eprintln!("{id} pending: waiting for a block to carry it…");
        }
        let confirmed = self.wait_until(
            &format!("item {id}'s block"),
            patience,
            &format!("jbc data get {id}"),
            || {
                let answer: ItemAnswer = self.read(self.get(&format!("{}/{id}", route::DATA))?)?;
                Ok(matches!(answer.status, ItemStatus::Confirmed { .. }).then_some(answer))
            },
        )?;
        say!("{}", item_line(&confirmed));
        Ok(())
    }

    /// `jbc data get ID`: where an item is (the first digits of its id do,
    /// when they name one item).
    pub fn print_item(&self, id: &str) -> Result<(), AskError> {
        let prefix: IdPrefix = id.parse().map_err(|e| AskError::Usage(format!("{e}")))?;
        let answer: ItemAnswer = self.read(self.get(&format!("{}/{prefix}", route::DATA))?)?;
        say!("{}", item_line(&answer));
        if let Some(text) = &answer.text {
            let text = crate::signed::Signed::parse(text)
                .and_then(Result::ok)
                .map_or_else(|| text.clone(), |signed| signed.text);
            say!("text: {}", cut(&text, 200));
        }
        if let Some(author) = &answer.author {
            say!("{}", author_line(author));
        }
        Ok(())
    }

    /// `jbc data list --author KEY`: the items signed with a key (its hex,
    /// or a key file), waiting ones first, then those in blocks, the newest
    /// first.
    pub fn print_authored(&self, author: &str, json: bool) -> Result<(), AskError> {
        let key = match author.parse::<crate::signed::AuthorKey>() {
            Ok(key) => key,
            Err(not_hex) => {
                let file = std::path::Path::new(author);
                if !file.exists() {
                    return Err(AskError::Usage(format!("{not_hex}, or a key file")));
                }
                crate::signed::key::public_key(file).map_err(|e| AskError::Usage(e.to_string()))?
            }
        };
        let answer = self.get(&format!(
            "{}/{key}?limit={MAX_AUTHOR_ITEMS}",
            route::AUTHORS
        ))?;
        if json {
            return print_json(&answer);
        }
        let answer: AuthorItems = self.read(answer)?;
        say!("author {} (key {})", answer.fingerprint, answer.key);
        if answer.items.is_empty() {
            say!("no items signed with this key are waiting or in the chain");
        }
        for item in &answer.items {
            let text = (item.text.as_deref())
                .and_then(|text| crate::signed::Signed::parse(text)?.ok())
                .map_or_else(String::new, |signed| signed.text);
            let verdict = match &item.author {
                Some(author) if author.verifies => "✓".to_string(),
                Some(author) => format!("✗ {}", author.reason.as_deref().unwrap_or("")),
                None => String::new(),
            };
            say!("{}  {}  {verdict}", item_line(item), cut(&text, 60));
        }
        if answer.more {
            say!("(more: the newest {} are shown)", answer.items.len());
        }
        Ok(())
    }

    /// `jbc data list`: the items waiting for a block, oldest first.
    pub fn print_waiting(&self, json: bool) -> Result<(), AskError> {
        let answer = self.get(route::DATA)?;
        if json {
            return print_json(&answer);
        }
        let items = answer.as_array().map_or(&[][..], Vec::as_slice);
        if items.is_empty() {
            say!("no items waiting");
        }
        for item in items {
            say!(
                "{}  {} bytes  waiting {}",
                item["id"].as_str().unwrap_or("?"),
                item["size"],
                duration_in_words(item["age"].as_f64().unwrap_or(0.0))
            );
        }
        Ok(())
    }

    /// `jbc mine N`: orders `blocks` mined now (operator key); with `wait`,
    /// returns once none is owed (at most `patience`).
    pub fn mine(&self, blocks: u64, wait: Option<Duration>) -> Result<(), AskError> {
        let body = serde_json::to_string(&MineRequest { blocks }).expect("a number serialises");
        let answer = self.ask(Method::POST, route::MINE, Some(body), true)?;
        let ordered: MineOrdered = self.read(answer)?;
        let Some(patience) = wait else {
            say!("ordered {blocks} block(s); {} owed", ordered.owed);
            return Ok(());
        };
        eprintln!("mining {} block(s)…", ordered.owed);
        let status = self.wait_until("the blocks ordered", patience, "jbc status", || {
            let status = self.status()?;
            Ok((status.blocks_owed == 0).then_some(status))
        })?;
        say!(
            "mined {blocks} block(s): height {}, tip {}",
            status.height,
            status.tip
        );
        Ok(())
    }

    /// `jbc isolate` (`cut`) and `jbc rejoin`, as the node's operator.
    pub fn isolate(&self, cut: bool) -> Result<(), AskError> {
        let method = if cut { Method::POST } else { Method::DELETE };
        let answer: Isolation =
            self.read(self.ask(method, route::ISOLATION, Some("{}".into()), true)?)?;
        let url = self.url();
        match (answer.isolated, answer.changed) {
            (true, true) => {
                say!("{url} is isolated: it talks to no peer and mines alone (jbc rejoin ends it)")
            }
            (true, false) => say!("{url} was isolated already"),
            (false, true) => say!("{url} rejoined the network: it syncs with every peer now"),
            (false, false) => say!("{url} was not isolated"),
        }
        Ok(())
    }

    /// Asks `probe` every [`POLL_INTERVAL`] until it gives a value, for at
    /// most `patience`.
    fn wait_until<T>(
        &self,
        what: &str,
        patience: Duration,
        again: &str,
        mut probe: impl FnMut() -> Result<Option<T>, AskError>,
    ) -> Result<T, AskError> {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(value) = probe()? {
                return Ok(value);
            }
            if Instant::now() >= deadline {
                return Err(AskError::Waited {
                    what: what.into(),
                    seconds: patience.as_secs(),
                    again: again.into(),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

/// A change to a node's peers that needs its operator key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerChange {
    Add,
    Remove,
    Unban,
}

/// `5001`, `host:port` or a URL, as a base URL.
fn parse_address(address: &str) -> Result<url::Url, AskError> {
    let text = address.trim();
    let bad = || AskError::Address(address.to_string());
    let with_scheme = if text.contains("://") {
        text.to_string()
    } else if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        format!("http://127.0.0.1:{text}")
    } else {
        format!("http://{text}")
    };
    let url = url::Url::parse(&with_scheme).map_err(|_| bad())?;
    let plain = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || !plain {
        return Err(bad());
    }
    Ok(url)
}

/// What `jbc status` prints, a line each.
fn status_lines(url: &str, status: &Status, reachable: usize) -> Vec<String> {
    let version = status.version.as_deref().unwrap_or("an older jbc");
    let mut lines = vec![format!(
        "node     {url} ({version}{})",
        status
            .uptime_seconds
            .map(|s| match s {
                // Whole seconds: 0 is "under a second", not a millisecond.
                0 => ", up under a second".to_string(),
                s => format!(", up {}", duration_in_words(s as f64)),
            })
            .unwrap_or_default()
    )];
    lines.push(format!(
        "chain    height {}, tip {}",
        status.height, status.tip
    ));
    let kind = match (status.target_block_seconds, status.retarget_window) {
        (Some(seconds), Some(window)) => format!(
            "adaptive (a block every {seconds} s, retargeted every {window} blocks), effective difficulty {:.2}",
            status
                .effective_difficulty
                .unwrap_or(status.difficulty as f64)
        ),
        _ => format!("difficulty {}", status.difficulty),
    };
    lines.push(format!("network  {kind}; genesis {}", status.genesis));
    if let Some(mean) = status.mean_block_seconds {
        lines.push(format!(
            "blocks   one every {} on average lately",
            duration_in_words(mean)
        ));
    }
    let mining = match (status.mining, status.blocks_owed) {
        (_, owed) if owed > 0 => format!(
            "mining {owed} ordered block(s) at {}",
            rate_in_words(status.hashrate as f64)
        ),
        (Some(true), _) => format!("mining at {}", rate_in_words(status.hashrate as f64)),
        _ => "not mining (jbc mine N mines N blocks now)".to_string(),
    };
    lines.push(format!("miner    {mining}"));
    if status.isolated {
        lines.push(
            "network  ISOLATED by its operator: talks to no peer (jbc rejoin ends it)".to_string(),
        );
    }
    let peers = match status.connections {
        Some(c) => format!(
            "{reachable} of {} reachable; {} outbound ({} of a target of {} chosen by the node), {} inbound; {} addresses known, {} of them answered",
            status.peers,
            c.outbound,
            c.chosen,
            c.outbound_target,
            c.inbound,
            c.addresses_new + c.addresses_tried,
            c.addresses_tried
        ),
        None => format!("{reachable} of {} reachable", status.peers),
    };
    lines.push(format!("peers    {peers}"));
    lines.push(format!("data     {} item(s) waiting", status.pending_items));
    if let Some(catching_up) = &status.catching_up {
        lines.push(format!(
            "sync     catching up: {}",
            serde_json::to_string(catching_up).unwrap_or_default()
        ));
    }
    lines
}

/// One block as `jbc blocks` lists it.
fn block_line(block: &Block) -> String {
    let time = block
        .epoch_seconds()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or_else(
            || block.timestamp.to_string(),
            |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
        );
    format!(
        "{:>7}  {}  {time}  {}",
        block.index,
        block.hash,
        cut(&block.data, 60)
    )
}

/// What `jbc data` prints of an item.
fn item_line(answer: &ItemAnswer) -> String {
    let id = answer.id;
    match &answer.status {
        ItemStatus::Pending => format!("{id} pending: it waits for a block"),
        ItemStatus::Confirmed {
            block,
            hash,
            confirmations,
        } => format!("{id} confirmed in block {block} ({hash}), {confirmations} confirmation(s)"),
        ItemStatus::Unknown => format!("{id} unknown: not waiting and not in the chain"),
    }
}

/// A peer's base URL from what a person typed (`5002`, `host:port`, a URL).
fn peer_url(typed: &str) -> Result<String, AskError> {
    Ok(parse_address(typed)?
        .as_str()
        .trim_end_matches('/')
        .to_string())
}

/// Who signed an item, in words.
fn author_line(author: &AuthorView) -> String {
    let who = match (&author.fingerprint, &author.key) {
        (Some(fingerprint), Some(key)) => format!("{fingerprint} (key {key})"),
        _ => "no key it names".to_string(),
    };
    if author.verifies {
        format!("signed by {who}: the signature verifies ✓")
    } else {
        format!(
            "signed by {who}: signature does not verify ✗ ({})",
            author.reason.as_deref().unwrap_or("no reason given")
        )
    }
}

/// `text` cut to `max` characters, with an ellipsis when cut.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

fn print_json(value: &Value) -> Result<(), AskError> {
    say!(
        "{}",
        serde_json::to_string_pretty(value).expect("a JSON value serialises")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_named_by_port_host_and_port_or_url() {
        for (given, base) in [
            ("5002", "http://127.0.0.1:5002/"),
            ("127.0.0.1:5001", "http://127.0.0.1:5001/"),
            ("localhost:5003", "http://localhost:5003/"),
            ("http://10.0.0.2:5001/", "http://10.0.0.2:5001/"),
            (" [::1]:5001 ", "http://[::1]:5001/"),
        ] {
            assert_eq!(parse_address(given).unwrap().as_str(), base, "{given}");
        }
        for bad in [
            "",
            "http://",
            "ftp://host:1",
            "host:port",
            "http://h:1/status",
        ] {
            assert!(parse_address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn long_text_is_cut_on_a_character() {
        assert_eq!(cut("héllo", 2), "hé…");
        assert_eq!(cut("héllo", 5), "héllo");
    }
}
