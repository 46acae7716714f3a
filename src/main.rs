//! The `jbc` command: parse the flags, set up logging, and run a node (or
//! the miner benchmark).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use jbc::config::{Config, Settings};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// A JackBlockChain node: keeps its chain in chaindata/, syncs the longest
/// valid chain from its peers, mines, and serves GET /blockchain.json.
#[derive(Parser)]
#[command(name = "jbc", version)]
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
    /// Measure the miner's hash rate against the SHA-256 compression rate.
    Bench {
        /// Mining threads [default: the number of cores]
        #[arg(long)]
        threads: Option<usize>,
        /// How long to mine
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
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
        Some(Command::Bench { threads, seconds }) => bench(threads, seconds),
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
        jbc::node::run(config, listener, shutdown)
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

fn bench(threads: Option<usize>, seconds: f64) -> Result<(), String> {
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err("--seconds must be a positive number".into());
    }
    let threads =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    let report = jbc::miner::bench(threads, Duration::from_secs_f64(seconds));
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
    Ok(())
}
