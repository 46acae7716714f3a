//! The `jbc` command: parse the flags, set up logging, and run a node, the
//! miner benchmark, make a new network, or ask a running node.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};
use jbc::ask::PeerChange;
use jbc::settings::{
    BENCH_SECONDS, DIFFICULTY, MINER_NICE, RETARGET_WINDOW, TARGET_BLOCK_SECONDS, THREADS,
};
use jbc::{Config, Settings};
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
    /// Stop (cleanly, as on SIGTERM) when standard input closes: how
    /// `jbc devnet` makes sure its nodes end with it, even when it is
    /// killed with SIGKILL
    #[arg(long, hide = true)]
    stop_with_stdin: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Measure the miner's hash rate against the SHA-256 compression rate,
    /// and the time a block takes at each difficulty on this machine.
    #[command(allow_negative_numbers = true)]
    Bench {
        /// Mining threads [default: the number of cores]
        #[arg(long, value_parser = THREADS.parser())]
        threads: Option<usize>,
        /// How long to mine
        #[arg(long, default_value_t = BENCH_SECONDS.default, value_parser = BENCH_SECONDS.parser())]
        seconds: f64,
        /// Nice level of the mining threads, as a node's `miner_nice`
        #[arg(long, default_value_t = MINER_NICE.default, value_parser = MINER_NICE.parser())]
        miner_nice: u8,
    },
    /// What a running node is, where its chain is, whom it talks to.
    Status {
        #[command(flatten)]
        node: NodeArgs,
        /// Print the node's answer as JSON
        #[arg(long)]
        json: bool,
    },
    /// The last blocks of a node's chain, oldest first.
    Blocks {
        /// How many
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=500))]
        last: u64,
        #[command(flatten)]
        node: NodeArgs,
        /// Print the node's answer as JSON
        #[arg(long)]
        json: bool,
    },
    /// One block, by its index or its hash.
    Block {
        /// The block's index (a number) or hash (64 hex digits)
        which: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// An author's key, to sign data items with: make one, or show it.
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Put data into the chain through a node, or ask where it is.
    Data {
        #[command(subcommand)]
        action: DataAction,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// The node's peers: list them, or (as its operator, with the key from
    /// its operator.cookie) add, remove or unban one.
    Peers {
        #[command(subcommand)]
        action: Option<PeersAction>,
        #[command(flatten)]
        node: NodeArgs,
        /// Print the node's answer as JSON
        #[arg(long)]
        json: bool,
        /// Print the messages on the node's live links as they go, until
        /// interrupted (Ctrl-C)
        #[arg(long)]
        watch: bool,
        /// With --watch: only the messages about this block (its hash)
        #[arg(long, requires = "watch")]
        block: Option<String>,
    },
    /// Cut the node off from every peer (as its operator): its links close,
    /// it syncs with, announces to and hears from no peer, and mines alone,
    /// until `jbc rejoin` (or a restart). For maintenance, a planned split,
    /// or a fork made on purpose.
    Isolate {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// End an isolation (as its operator): the node syncs with every peer
    /// at once, and the network settles on the chain with the most work.
    Rejoin {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Have the node mine N blocks now, then go back to what it did (as its
    /// operator; for a development network).
    Mine {
        /// How many blocks
        #[arg(value_parser = clap::value_parser!(u64).range(1..=1000))]
        blocks: u64,
        /// Return at once instead of when the blocks are mined
        #[arg(long)]
        no_wait: bool,
        /// The most seconds to wait
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// A network to play with: N nodes of this binary on this machine, and a
    /// control page where each action is a click (stop and start a node,
    /// cut it off and rejoin it, mine, post items, make a fork, add a node,
    /// export). Ctrl-C stops them all.
    #[command(args_conflicts_with_subcommands = true)]
    Devnet {
        #[command(subcommand)]
        action: Option<DevnetAction>,
        #[command(flatten)]
        start: DevnetArgs,
    },
    /// Print a completion script for a shell (bash, zsh, fish, elvish,
    /// powershell), e.g. `jbc completions bash > ~/.local/share/bash-completion/completions/jbc`.
    Completions { shell: clap_complete::Shell },
    /// Make a new network in a folder: mine its genesis block and write
    /// config/genesis.json and a config/jbc.toml that uses it.
    #[command(allow_negative_numbers = true)]
    Init {
        /// The folder [default: the current one]
        #[arg(default_value = ".", hide_default_value = true)]
        dir: PathBuf,
        /// Leading zero hex digits every block of the network needs
        #[arg(long, default_value_t = DIFFICULTY.default, value_parser = DIFFICULTY.parser())]
        difficulty: u32,
        /// Make an adaptive network aiming at a block every this many
        /// seconds (with --retarget-window); difficulty is then the least
        #[arg(long, value_parser = TARGET_BLOCK_SECONDS.parser(), requires = "retarget_window")]
        target_block_seconds: Option<u64>,
        /// Blocks between an adaptive network's retargets
        #[arg(long, value_parser = RETARGET_WINDOW.parser(), requires = "target_block_seconds")]
        retarget_window: Option<u64>,
        /// The genesis block's data [default: "Genesis block of a jbc network, made DATE"]
        #[arg(long)]
        data: Option<String>,
        /// Threads to mine the genesis block on [default: the number of cores]
        #[arg(long, value_parser = THREADS.parser())]
        threads: Option<usize>,
    },
}

/// Which node a command asks.
#[derive(Args)]
struct NodeArgs {
    /// The node to ask: HOST:PORT, a port on this machine, or a URL
    #[arg(long, global = true, default_value = jbc::ask::DEFAULT_NODE)]
    node: String,
    /// The node's operator key file, for commands that change it (written
    /// at each start beside its chaindata folder) [default: operator.cookie]
    #[arg(long, global = true)]
    cookie: Option<PathBuf>,
}

impl NodeArgs {
    fn node(self) -> Result<jbc::ask::Node, String> {
        jbc::ask::Node::new(&self.node, self.cookie).map_err(|e| e.to_string())
    }
}

#[derive(Args)]
struct DevnetArgs {
    /// Nodes to start [default: 3, or as many as the folder or the archive
    /// holds]
    #[arg(value_name = "N", value_parser = clap::value_parser!(u16).range(1..=jbc::DEVNET_MAX_NODES as i64))]
    count: Option<u16>,
    /// The folder the node folders (jbcPORT/) are made in and kept
    #[arg(long, env = "DEVNET_DIR", default_value = "devnet")]
    dir: PathBuf,
    /// The first node's port; the others follow it
    #[arg(long, env = "DEVNET_PORT", default_value_t = 5001)]
    port: u16,
    /// The control page's port, on 127.0.0.1 (0: any free one; the devnet
    /// says which)
    #[arg(long, default_value_t = 5000)]
    control_port: u16,
    /// Leading zero hex digits a block needs, for new node folders
    /// [default: the shipped config's 7]; a folder of another is refused
    #[arg(long, value_parser = DIFFICULTY.parser())]
    difficulty: Option<u32>,
    /// Every node mines in the background (one thread each)
    #[arg(long)]
    mine: bool,
    /// Who is told of whom [default: mesh, or the folder's or archive's]
    #[arg(long, value_enum)]
    layout: Option<jbc::DevnetLayout>,
    /// The same as --layout seed: each node is told of the first only and
    /// finds the others itself
    #[arg(long, conflicts_with = "layout", hide = true)]
    seed_only: bool,
    /// Generated items a second, posted to random nodes (0: none; the page
    /// switches it too)
    #[arg(long, default_value_t = 0.0)]
    activity: f64,
    /// Start the devnet an export made (in a folder without one)
    #[arg(long, value_name = "FILE")]
    from: Option<PathBuf>,
}

#[derive(Subcommand)]
enum DevnetAction {
    /// Write the devnet (each node's chain, pool and config; no keys) to
    /// one .tar.gz, for `jbc devnet --from FILE` on any machine.
    Export {
        file: PathBuf,
        /// The devnet's folder
        #[arg(long, env = "DEVNET_DIR", default_value = "devnet")]
        dir: PathBuf,
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
    /// Ban a URL: the node leaves it alone (no sync, no announcement, not
    /// taken back) until the ban ends, across restarts.
    Ban {
        url: String,
        /// How long: `90s`, `30m`, `24h`, `7d` [default: the node's
        /// ban_seconds, 24h]
        #[arg(long = "for", value_parser = humantime::parse_duration)]
        time: Option<Duration>,
    },
    /// Lift the ban on a URL (and forget its misbehaviour).
    Unban { url: String },
}

#[derive(Subcommand)]
enum DataAction {
    /// Submit a data item (any text) for a block; prints its id.
    Add {
        /// The item's text
        text: String,
        /// Return once a block carries it, with the block
        #[arg(long)]
        wait: bool,
        /// The most seconds to wait
        #[arg(long, default_value_t = 600, requires = "wait")]
        timeout: u64,
        /// Sign it with this key file (made by `jbc key new`); the key
        /// stays here, only the signature goes to the node
        #[arg(long, value_name = "KEY")]
        sign: Option<PathBuf>,
    },
    /// Where a data item is: waiting, or confirmed in a block.
    Get {
        /// The item's id as `jbc data add` printed it, or its first 6 or
        /// more digits
        id: String,
    },
    /// The items waiting for a block, or those signed with one key.
    List {
        /// Print the node's answer as JSON
        #[arg(long)]
        json: bool,
        /// Only the items signed with this key (64 hex digits, or a key
        /// file), waiting or in blocks, the newest first
        #[arg(long, value_name = "KEY")]
        author: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeyAction {
    /// Make a new Ed25519 key to sign data items with, in a file only you
    /// can read (PKCS#8 PEM, as openssl reads) [default FILE:
    /// ~/.config/jbc/author.pem]
    New { file: Option<PathBuf> },
    /// Print a key's public key and fingerprint [default FILE:
    /// ~/.config/jbc/author.pem]
    Show { file: Option<PathBuf> },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .fmt_fields(jbc::MessageFirst)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // A log line that cannot be written is lost, and that is all: by
        // default the subscriber reports it with eprintln!, which panics
        // when stderr is a closed pipe (a devnet killed, `jbc … | head`).
        .log_internal_errors(false)
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
        Some(Command::Status { node, json }) => ask(node, |node| node.print_status(json)),
        Some(Command::Blocks { last, node, json }) => {
            ask(node, |node| node.print_blocks(last, json))
        }
        Some(Command::Block { which, node }) => ask(node, |node| node.print_block(&which)),
        Some(Command::Data { action, node }) => ask(node, |node| match action {
            DataAction::Add {
                text,
                wait,
                timeout,
                sign,
            } => node.add_data(
                &text,
                sign.as_deref(),
                wait.then(|| Duration::from_secs(timeout)),
            ),
            DataAction::Get { id } => node.print_item(&id),
            DataAction::List { json, author: None } => node.print_waiting(json),
            DataAction::List {
                json,
                author: Some(author),
            } => node.print_authored(&author, json),
        }),
        Some(Command::Key { action }) => key(action),
        Some(Command::Peers {
            action,
            node,
            json,
            watch,
            block,
        }) => ask(node, |node| match action {
            // clap cannot name a subcommand in `conflicts_with`.
            Some(_) if watch => Cli::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    "--watch prints the live links' messages; it takes no subcommand",
                )
                .exit(),
            None if watch => node.watch_links(block.as_deref(), json),
            None | Some(PeersAction::List) => node.print_peers(json),
            Some(PeersAction::Add { url }) => node.change_peer(PeerChange::Add, &url),
            Some(PeersAction::Remove { url }) => node.change_peer(PeerChange::Remove, &url),
            Some(PeersAction::Ban { url, time }) => node.ban_peer(&url, time),
            Some(PeersAction::Unban { url }) => node.change_peer(PeerChange::Unban, &url),
        }),
        Some(Command::Mine {
            blocks,
            no_wait,
            timeout,
            node,
        }) => ask(node, |node| {
            node.mine(blocks, (!no_wait).then(|| Duration::from_secs(timeout)))
        }),
        Some(Command::Isolate { node }) => ask(node, |node| node.isolate(true)),
        Some(Command::Rejoin { node }) => ask(node, |node| node.isolate(false)),
        Some(Command::Devnet { action, start }) => devnet(action, start),
        Some(Command::Completions { shell }) => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "jbc", &mut script);
            jbc::say!("{}", String::from_utf8_lossy(&script).trim_end());
            Ok(())
        }
        None => run_node(cli.config, cli.settings, cli.stop_with_stdin),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("jbc: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run_node(
    config_file: Option<PathBuf>,
    flags: Settings,
    stop_with_stdin: bool,
) -> Result<(), String> {
    let config = Config::load(config_file.as_deref(), flags).map_err(|e| e.to_string())?;
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        if stop_with_stdin {
            let shutdown = shutdown.clone();
            // A plain thread: reading stdin blocks, and nothing else waits
            // on it.
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
                tracing::info!(
                    "standard input closed (the devnet that started this node is gone): stopping"
                );
                shutdown.cancel();
            });
        }
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
    jbc::say!("threads: {}", report.threads);
    jbc::say!("seconds per path: {:.2}", report.seconds);
    jbc::say!(
        "sha256 compressions, one stream on one thread (as openssl speed -evp sha256): {:.0} /s",
        report.compressions_per_second
    );
    let line = |name: &str, hashrate: f64| {
        jbc::say!(
            "{name}: {hashrate:.0} H/s, {:.2} × one stream per thread",
            report.per_thread_ratio(hashrate)
        )
    };
    line("plain path (one nonce at a time)", report.plain_hashrate);
    match report.two_way_hashrate {
        Some(hashrate) => line("two-way path (two nonces at a time, SHA-NI)", hashrate),
        None => jbc::say!("two-way path: not on this CPU (it needs the SHA extensions)"),
    }
    jbc::say!("hashrate: {:.0} H/s", report.hashrate());
    eprintln!(
        "\nAt {}, one node mining alone finds a block on average every:",
        rate_in_words(report.hashrate())
    );
    for difficulty in 4..=8 {
        let seconds =
            jbc::pow::Target::limit(difficulty).expected_hashes() / report.hashrate().max(1.0);
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
        None => jbc::say!(
            "made a new network: genesis block {}, difficulty {difficulty}",
            made.genesis.hash
        ),
        Some((seconds, window)) => jbc::say!(
            "made a new adaptive network: genesis block {}, a block every {seconds} s, \
             retargeted every {window} blocks, difficulty at least {difficulty}",
            made.genesis.hash
        ),
    }
    jbc::say!("  {}", shown(&made.genesis_file));
    jbc::say!("  {} (port 5001, peers 5001-5003)", shown(&made.config));
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
    jbc::say!("next:");
    jbc::say!("  cd {} && {exe} --mine    # node 5001", shown(&dir));
    jbc::say!(
        "  cd {} && {linknodes} 5002    # a folder for node 5002 of this network",
        shown(&dir)
    );
    Ok(())
}

/// `jbc devnet …`: run a devnet, or export one.
fn devnet(action: Option<DevnetAction>, args: DevnetArgs) -> Result<(), String> {
    if let Some(DevnetAction::Export { file, dir }) = action {
        let exported = jbc::export_devnet(&dir, &file).map_err(|e| e.to_string())?;
        jbc::say!(
            "wrote {} nodes ({} files, {} bytes) to {}; start it with: jbc devnet --from {}",
            exported.nodes,
            exported.files,
            exported.bytes,
            file.display(),
            file.display()
        );
        return Ok(());
    }
    let program = std::env::current_exe()
        .map_err(|e| format!("cannot find this program's own file to run the nodes: {e}"))?;
    let layout = args
        .seed_only
        .then_some(jbc::DevnetLayout::Seed)
        .or(args.layout);
    jbc::run_devnet(jbc::DevnetOptions {
        count: args.count.map(usize::from),
        dir: args.dir,
        first_port: args.port,
        control: std::net::SocketAddr::from(([127, 0, 0, 1], args.control_port)),
        difficulty: args.difficulty,
        mine: args.mine,
        layout,
        activity: args.activity,
        from: args.from,
        program,
    })
    .map_err(|e| e.to_string())
}

/// Runs one command against the node `args` names.
fn ask(
    args: NodeArgs,
    command: impl FnOnce(&jbc::ask::Node) -> Result<(), jbc::ask::AskError>,
) -> Result<(), String> {
    command(&args.node()?).map_err(|e| e.to_string())
}

/// `jbc key new [FILE]` and `jbc key show [FILE]`.
fn key(action: KeyAction) -> Result<(), String> {
    use jbc::signed::key;
    let (KeyAction::New { file } | KeyAction::Show { file }) = &action;
    let path = match file {
        Some(path) => path.clone(),
        None => key::default_path().map_err(|e| e.to_string())?,
    };
    let public = match action {
        KeyAction::New { .. } => {
            let public = key::create(&path).map_err(|e| e.to_string())?;
            jbc::say!(
                "a new key in {} (readable by you only; keep a copy: nothing can recover a lost key)",
                path.display()
            );
            public
        }
        KeyAction::Show { .. } => key::public_key(&path).map_err(|e| e.to_string())?,
    };
    jbc::say!("public key   {public}");
    jbc::say!("fingerprint  {}", public.fingerprint());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// clap's own checks of the declarations (an argument that names one
    /// that does not exist, …), which it makes only in debug builds: the
    /// suite runs optimised.
    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
