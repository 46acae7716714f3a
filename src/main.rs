//! The `jbc` command: parse the flags, set up logging, and run a node, the
//! miner benchmark, or make a new network.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use jbc::protocol::{ItemAnswer, ItemStatus, PeerRequest, route};
use jbc::{Config, DEFAULT_DIFFICULTY, Settings, rule};
use jbc::{duration_in_words, rate_in_words};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// A JackBlockChain node: keeps its chain in chaindata/, syncs the longest
/// valid chain from its peers, mines, and serves GET /blockchain.json.
#[derive(Parser)]
#[command(name = "jbc", version, allow_negative_numbers = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Config file (TOML) [default: config/jbc.toml if it exists]
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Subcommand)]
enum Command {
    /// Measure the miner's hash rate against the SHA-256 compression rate,
    /// and the time a block takes at each difficulty on this machine.
    #[command(allow_negative_numbers = true)]
    Bench {
        /// Mining threads [default: the number of cores]
        #[arg(long, value_parser = rule::threads)]
        threads: Option<usize>,
        /// How long to mine
        #[arg(long, default_value_t = 5.0, value_parser = rule::bench_seconds)]
        seconds: f64,
        /// Nice level of the mining threads, as a node's `miner_nice`
        #[arg(long, default_value_t = jbc::DEFAULT_MINER_NICE, value_parser = rule::miner_nice)]
        miner_nice: u8,
    },
    /// Put data into the chain through a node, or ask where it is.
    Data {
        #[command(subcommand)]
        action: DataAction,
    },
    /// The node's peers: list them, or (as its operator, with the key from
    /// its operator.cookie) add, remove or unban one.
    Peers {
        #[command(subcommand)]
        action: Option<PeersAction>,
        /// The node to ask
        #[arg(long, global = true, default_value = "http://127.0.0.1:5001")]
        node: String,
        /// The node's operator key file (written at each start beside its
        /// chaindata folder) [default: operator.cookie]
        #[arg(long, global = true)]
        cookie: Option<PathBuf>,
    },
    /// Make a new network in a folder: mine its genesis block and write
    /// config/genesis.json and a config/jbc.toml that uses it.
    #[command(allow_negative_numbers = true)]
    Init {
        /// The folder [default: the current one]
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Leading zero hex digits every block of the network needs
        #[arg(long, default_value_t = DEFAULT_DIFFICULTY, value_parser = rule::difficulty)]
        difficulty: u32,
        /// Make an adaptive network aiming at a block every this many
        /// seconds (with --retarget-window); difficulty is then the least
        #[arg(long, value_parser = rule::target_block_seconds, requires = "retarget_window")]
        target_block_seconds: Option<u64>,
        /// Blocks between an adaptive network's retargets
        #[arg(long, value_parser = rule::retarget_window, requires = "target_block_seconds")]
        retarget_window: Option<u64>,
        /// The genesis block's data [default: "Genesis block of a jbc network, made DATE"]
        #[arg(long)]
        data: Option<String>,
        /// Threads to mine the genesis block on [default: the number of cores]
        #[arg(long, value_parser = rule::threads)]
        threads: Option<usize>,
    },
}

#[derive(Subcommand)]
enum PeersAction {
    /// Every peer with what the node knows of it (the default).
    List,
    /// Handshake with a node and make it a peer (lifts a ban on it).
    Add { url: String },
    /// Take a peer out of the book.
    Remove { url: String },
    /// Lift the ban on a URL.
    Unban { url: String },
}

#[derive(Subcommand)]
enum DataAction {
    /// Submit a data item (any text) for a block; prints its id.
    Add {
        /// The item's text
        text: String,
        /// The node to submit it to
        #[arg(long, default_value = "http://127.0.0.1:5001")]
        node: String,
    },
    /// Where a data item is: waiting, or confirmed in a block.
    Get {
        /// The item's id (as `jbc data add` printed it)
        id: String,
        /// The node to ask
        #[arg(long, default_value = "http://127.0.0.1:5001")]
        node: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.command {
        Some(Command::Bench {
            threads,
            seconds,
            miner_nice,
        }) => bench(threads, seconds, miner_nice),
        Some(Command::Init {
            dir,
            difficulty,
            target_block_seconds,
            retarget_window,
            data,
            threads,
        }) => {
            let adaptive = target_block_seconds.zip(retarget_window);
            init(dir, difficulty, adaptive, data, threads)
        }
        Some(Command::Data { action }) => data(action),
        Some(Command::Peers {
            action,
            node,
            cookie,
        }) => peers(action.unwrap_or(PeersAction::List), &node, cookie),
        None => run_node(cli.config, cli.settings),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("jbc: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run_node(config_file: Option<PathBuf>, flags: Settings) -> Result<(), String> {
    let config = Config::load(config_file.as_deref(), flags).map_err(|e| e.to_string())?;
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        jbc::run(config, listener, shutdown)
            .await
            .map_err(|e| e.to_string())
    })
}

/// Cancels `shutdown` on Ctrl-C or SIGTERM.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM can be handled");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    shutdown.cancel();
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `jbc bench`: the report goes to stdout, its last line `hashrate: N H/s`
/// for scripts; what it is doing, and what the figures mean for block
/// times, goes to stderr for the person watching.
fn bench(threads: Option<usize>, seconds: f64, nice: u8) -> Result<(), String> {
    let threads = threads.unwrap_or_else(cores);
    let report = jbc::bench(threads, nice, Duration::from_secs_f64(seconds), |stage| {
        eprintln!("jbc bench: {stage}")
    });
    println!("threads: {}", report.threads);
    println!("seconds: {:.2}", report.seconds);
    println!(
        "sha256 compressions (1 thread): {:.0} /s",
        report.compressions_per_second
    );
    println!(
        "per-thread hash rate / compression rate: {:.1} %",
        report.per_thread_ratio() * 100.0
    );
    println!("hashrate: {:.0} H/s", report.hashrate);
    eprintln!(
        "\nAt {}, one node mining alone finds a block on average every:",
        rate_in_words(report.hashrate)
    );
    for difficulty in 4..=8 {
        let seconds =
            jbc::pow::Target::limit(difficulty).expected_hashes() / report.hashrate.max(1.0);
        eprintln!("  difficulty {difficulty}: {}", duration_in_words(seconds));
    }
    eprintln!("(with n nodes mining at this rate, blocks come n times as often)");
    Ok(())
}

/// `jbc init`: a new network in `dir`.
fn init(
    dir: PathBuf,
    difficulty: u32,
    adaptive: Option<(u64, u64)>,
    data: Option<String>,
    threads: Option<usize>,
) -> Result<(), String> {
    let network = jbc::NewNetwork {
        dir: dir.clone(),
        difficulty,
        adaptive,
        data: data.unwrap_or_else(|| {
            format!(
                "Genesis block of a jbc network, made {}",
                chrono::Utc::now().format("%Y-%m-%d")
            )
        }),
        threads: threads.unwrap_or_else(cores),
    };
    let made =
        jbc::init(&network, |stage| eprintln!("jbc init: {stage}…")).map_err(|e| e.to_string())?;
    let shown = |path: &std::path::Path| {
        std::path::absolute(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .display()
            .to_string()
    };
    match adaptive {
        None => println!(
            "made a new network: genesis block {}, difficulty {difficulty}",
            made.genesis.hash
        ),
        Some((seconds, window)) => println!(
            "made a new adaptive network: genesis block {}, a block every {seconds} s, \
             retargeted every {window} blocks, difficulty at least {difficulty}",
            made.genesis.hash
        ),
    }
    println!("  {}", shown(&made.genesis_file));
    println!("  {} (port 5001, peers 5001-5003)", shown(&made.config));
    // The binary usually runs from the repository's target/release/.
    let exe = std::env::current_exe().ok();
    let linknodes = exe
        .as_deref()
        .and_then(|exe| exe.ancestors().nth(3))
        .map(|repo| repo.join("scripts/linknodes"))
        .filter(|script| script.exists())
        .map_or_else(
            || "scripts/linknodes".to_string(),
            |script| script.display().to_string(),
        );
    let exe = exe.map_or_else(|| "jbc".to_string(), |exe| exe.display().to_string());
    println!("next:");
    println!("  cd {} && {exe} --mine    # node 5001", shown(&dir));
    println!(
        "  cd {} && {linknodes} 5002    # a folder for node 5002 of this network",
        shown(&dir)
    );
    Ok(())
}

/// `jbc data add|get`: a small client of a node's data endpoints.
fn data(action: DataAction) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let client = jbc::http_client(Duration::from_secs(10), Duration::from_secs(10));
    let (node, request) = match &action {
        DataAction::Add { text, node } => (
            node,
            client
                .post(format!("{}{}", node.trim_end_matches('/'), route::DATA))
                .header("content-type", "application/json")
                .body(jbc::data_request(text)),
        ),
        DataAction::Get { id, node } => (
            node,
            client.get(format!(
                "{}{}/{id}",
                node.trim_end_matches('/'),
                route::DATA
            )),
        ),
    };
    let answer = ask_node(&runtime, request, node)?;
    let answer: ItemAnswer = serde_json::from_value(answer.clone())
        .map_err(|_| format!("the node at {node} answered: {answer}"))?;
    let id = answer.id;
    match answer.status {
        ItemStatus::Pending => println!("{id} pending: it waits for a block"),
        ItemStatus::Confirmed {
            block,
            hash,
            confirmations,
        } => println!("{id} confirmed in block {block} ({hash}), {confirmations} confirmation(s)"),
        ItemStatus::Unknown => println!("{id} unknown: not waiting and not in the chain"),
    }
    Ok(())
}

/// `jbc peers [add|remove|unban URL]`: the peer book of a node, changed as
/// its operator (the key read from its cookie file).
fn peers(action: PeersAction, node: &str, cookie: Option<PathBuf>) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let client = jbc::http_client(Duration::from_secs(10), Duration::from_secs(15));
    let base = node.trim_end_matches('/');
    let (method, path, url) = match &action {
        PeersAction::List => (reqwest::Method::GET, route::PEERS, None),
        PeersAction::Add { url } => (reqwest::Method::POST, route::PEERS, Some(url)),
        PeersAction::Remove { url } => (reqwest::Method::DELETE, route::PEERS, Some(url)),
        PeersAction::Unban { url } => (reqwest::Method::DELETE, route::BANS, Some(url)),
    };
    let mut request = client.request(method, format!("{base}{path}"));
    if let Some(url) = url {
        let cookie = cookie.unwrap_or_else(|| PathBuf::from(jbc::COOKIE_FILE));
        let key = jbc::read_cookie(&cookie).map_err(|e| {
            format!(
                "cannot read the operator key from {}: {e} (give the node's cookie with --cookie; \
                 it is written beside the node's chaindata folder at each start)",
                cookie.display()
            )
        })?;
        let body = PeerRequest { url: url.clone() };
        request = request
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(serde_json::to_string(&body).expect("a string serialises"));
    }
    let answer = ask_node(&runtime, request, node)?;
    match action {
        PeersAction::List => {
            let peers = answer.as_array().map_or(&[][..], Vec::as_slice);
            if peers.is_empty() {
                println!("no peers");
            }
            for peer in peers {
                let field = |name: &str| match &peer[name] {
                    serde_json::Value::String(text) => text.clone(),
                    serde_json::Value::Null => "-".into(),
                    other => other.to_string(),
                };
                println!(
                    "{}  {}  {}  height {}",
                    field("url"),
                    field("origin"),
                    field("state"),
                    field("height")
                );
            }
        }
        PeersAction::Add { url } if answer["added"] == true => println!("added {url}"),
        PeersAction::Add { url } => println!(
            "{url}: {}",
            answer["reason"].as_str().unwrap_or("not added")
        ),
        PeersAction::Remove { url } => println!("removed {url}"),
        PeersAction::Unban { url } => println!("lifted the ban on {url}"),
    }
    Ok(())
}

/// Sends `request` to the node at `node` and reads its JSON answer; an
/// answer with an `error` field is the node's refusal, in its words.
fn ask_node(
    runtime: &tokio::runtime::Runtime,
    request: reqwest::RequestBuilder,
    node: &str,
) -> Result<serde_json::Value, String> {
    runtime.block_on(async {
        let response = request
            .send()
            .await
            .map_err(|e| format!("cannot reach the node at {node}: {e}"))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("the node at {node} did not answer whole: {e}"))?;
        let answer: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| format!("the node at {node} answered HTTP {status}, not JSON"))?;
        match answer["error"].as_str() {
            Some(error) => Err(format!("the node refused: {error}")),
            None => Ok(answer),
        }
    })
}
