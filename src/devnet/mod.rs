//! `jbc devnet N`: a network to play with, on this machine, from one page.
//!
//! It starts N nodes of this very binary as child processes, each in its
//! folder under the devnet's folder ([`folders`]), tells each of its
//! neighbours by a [`Layout`], watches them ([`supervisor`]: a node that
//! dies is reported, never restarted behind the operator's back), and
//! serves a control page on a loopback port ([`control`]) where each action
//! is one click: stop or start a node, isolate and rejoin it, mine blocks
//! on it, post an item as one of the devnet's authors, add a node, make a
//! fork ([`actions`]). Generated items keep it busy at a chosen rate
//! ([`activity`]); [`archive`] writes it as one `.tar.gz` and starts it
//! again from one.
//!
//! The devnet holds its nodes' operator keys (it reads each node's
//! `operator.cookie`, as `jbc isolate` does); the page asks the devnet,
//! never a node's operator routes, and never sees a key. It is a
//! supervisor and a client: it owns no chain, and a node of a devnet is an
//! ordinary node.

pub mod actions;
pub mod activity;
pub mod archive;
pub mod control;
pub mod folders;
pub mod supervisor;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_consensus::SigningKey;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::signed::AuthorKey;
pub use folders::Layout;
use supervisor::{Report, RunState, Spec, Supervisor};

/// Prints a line to stderr, where the devnet talks to its operator. A line
/// that cannot be written (the terminal gone, a closed pipe) is dropped:
/// `eprintln!` would panic, and the nodes' lines would back up behind it.
macro_rules! tell {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// The most nodes a devnet runs.
pub const MAX_NODES: usize = 32;
/// The devnet's own record in its folder: layout and nodes, for a rerun
/// and an export.
const MANIFEST: &str = "devnet.json";
/// The authors whose keys the devnet makes, to sign items with.
const AUTHORS: [&str; 3] = ["ada", "bob", "cy"];
/// How long each node has to answer after it starts.
const START_PATIENCE: Duration = Duration::from_secs(60);
/// Lines of what happened that the page shows.
const HAPPENED_KEPT: usize = 50;

/// What `jbc devnet` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Nodes to start (from an archive: its nodes, when not given).
    pub count: Option<usize>,
    /// The folder the node folders are in.
    pub dir: PathBuf,
    /// The first node's port; the others follow.
    pub first_port: u16,
    /// Where the control page listens (loopback unless asked otherwise).
    pub control: SocketAddr,
    /// Leading zero hex digits for new node folders (and checked against
    /// existing ones).
    pub difficulty: Option<u32>,
    /// Every node mines in the background (one thread each).
    pub mine: bool,
    /// Who is told of whom [default: the manifest's, or mesh].
    pub layout: Option<Layout>,
    /// Generated items per second, posted to random nodes (0: none).
    pub activity: f64,
    /// Start from this archive (made by `jbc devnet export`).
    pub from: Option<PathBuf>,
    /// The `jbc` binary the nodes run.
    pub program: PathBuf,
}

/// Why a devnet cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    #[error("N must be a number from 1 to {MAX_NODES}, not {0}")]
    Count(usize),
    #[error("port {0} is taken (a devnet already running? stop it, or choose another --port)")]
    PortTaken(u16),
    #[error(
        "the control page's port {0} is taken (a devnet already running? stop it, or choose another --control-port)"
    )]
    ControlTaken(u16),
    #[error("--activity is items a second, from 0 to {max}: not {0}", max = activity::MAX_RATE)]
    Activity(f64),
    #[error("ports from {0} leave no room for {1} nodes")]
    NoRoom(u16, usize),
    #[error(transparent)]
    Folder(#[from] folders::FolderError),
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    #[error("cannot make the devnet's author keys: {0}")]
    Authors(String),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{0}")]
    Node(String),
}

/// A node of the devnet.
#[derive(Debug, Clone)]
pub struct Member {
    pub port: u16,
    pub name: String,
    pub dir: PathBuf,
    pub url: String,
}

impl Member {
    fn new(devnet: &Path, port: u16) -> Member {
        Member {
            port,
            name: format!("jbc{port}"),
            dir: folders::node_dir(devnet, port),
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

/// An author the devnet signs items as.
pub struct Author {
    pub name: &'static str,
    pub key: SigningKey,
    pub public: AuthorKey,
}

/// A running devnet: its nodes, their processes, what happened.
pub struct Devnet {
    dir: PathBuf,
    program: PathBuf,
    mine: bool,
    layout: Layout,
    /// The network's difficulty, for the folders of nodes added later.
    difficulty: Option<u32>,
    members: Mutex<Vec<Member>>,
    supervisor: Arc<Supervisor>,
    http: reqwest::Client,
    authors: Vec<Author>,
    activity: watch::Sender<f64>,
    happened: Arc<Mutex<VecDeque<Happening>>>,
    /// One scripted action (a fork) at a time.
    scripted: tokio::sync::Mutex<()>,
    started: Instant,
    /// The control page's origins, which may show a node's explorer in
    /// a frame.
    control_origins: String,
}

/// A line of what happened, for the page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Happening {
    /// Seconds since the devnet started.
    pub at: f64,
    pub text: String,
}

/// Runs a devnet until Ctrl-C (or SIGTERM), then stops every node.
pub fn run(options: Options) -> Result<(), DevnetError> {
    // One thread is plenty for a supervisor and a page, and keeps every
    // child started from the same thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DevnetError::Runtime)?;
    runtime.block_on(run_async(options))
}

async fn run_async(options: Options) -> Result<(), DevnetError> {
    if !(0.0..=activity::MAX_RATE).contains(&options.activity) {
        return Err(DevnetError::Activity(options.activity));
    }
    std::fs::create_dir_all(&options.dir).map_err(|source| folders::FolderError::Write {
        path: options.dir.clone(),
        source,
    })?;
    let dir = std::path::absolute(&options.dir).unwrap_or_else(|_| options.dir.clone());
    let manifest = match &options.from {
        Some(file) => Some(archive::unpack(file, &dir, options.first_port)?),
        None => archive::read_manifest(&dir),
    };
    let count = options
        .count
        .or(manifest.as_ref().map(|m| m.nodes))
        .unwrap_or(3);
    if !(1..=MAX_NODES).contains(&count) {
        return Err(DevnetError::Count(count));
    }
    let layout = options
        .layout
        .or(manifest.as_ref().map(|m| m.layout))
        .unwrap_or(Layout::Mesh);
    let ports: Vec<u16> = (0..count)
        .map(|n| u16::try_from(usize::from(options.first_port) + n).ok())
        .collect::<Option<_>>()
        .ok_or(DevnetError::NoRoom(options.first_port, count))?;
    // Something answering already would make a node fail at once: said
    // before any starts.
    for &port in &ports {
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            return Err(DevnetError::PortTaken(port));
        }
    }
    let control = tokio::net::TcpListener::bind(options.control)
        .await
        .map_err(|_| DevnetError::ControlTaken(options.control.port()))?;
    // The port bound (`--control-port 0` takes any free one).
    let control_port = control.local_addr().map_err(DevnetError::Runtime)?.port();
    for &port in &ports {
        folders::prepare(&dir, port, options.difficulty)?;
    }
    let authors = make_authors(&dir)?;
    let difficulty = match options.difficulty {
        Some(difficulty) => Some(difficulty),
        None => folders::difficulty_of(&folders::node_dir(&dir, ports[0]).join("config/jbc.toml"))?,
    };

    let happened = Arc::new(Mutex::new(VecDeque::new()));
    let started = Instant::now();
    let supervisor = Supervisor::new({
        let happened = Arc::clone(&happened);
        move |report| match report {
            Report::Line { name, line } => tell!("[{name}] {line}"),
            Report::Died { name, status } => {
                let text = format!("{name} exited ({status}); start it again from the page");
                tell!("devnet: {text}");
                remember(&happened, started, text);
            }
        }
    });
    let (activity, _) = watch::channel(options.activity);
    let devnet = Arc::new(Devnet {
        dir: dir.clone(),
        program: options.program,
        mine: options.mine,
        layout,
        difficulty,
        members: Mutex::new(ports.iter().map(|&port| Member::new(&dir, port)).collect()),
        supervisor,
        http: crate::client::http_client(Duration::from_secs(2), Duration::from_secs(10)),
        authors,
        activity,
        happened,
        scripted: tokio::sync::Mutex::new(()),
        started,
        control_origins: ["127.0.0.1", "localhost"]
            .map(|host| format!("http://{host}:{control_port}"))
            .join(","),
    });
    devnet.save_manifest();

    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let result = devnet.start_all(&shutdown).await;
    if result.is_ok() && !shutdown.is_cancelled() {
        let url = format!(
            "http://{}/",
            control.local_addr().map_err(DevnetError::Runtime)?
        );
        devnet.note(format!(
            "{count} nodes up, told of each other as a {layout}"
        ));
        tell!("devnet: the control page: {url}  (Ctrl-C here stops every node)");
        tokio::spawn(activity::run(Arc::clone(&devnet), shutdown.clone()));
        let server = control::serve(Arc::clone(&devnet), control, shutdown.clone());
        tokio::select! {
            served = server => if let Err(error) = served {
                tell!("devnet: the control page stopped: {error}");
            },
            () = shutdown.cancelled() => {}
        }
    }
    let running = devnet.running().len();
    if running > 0 {
        tell!("devnet: stopping {running} nodes");
    }
    devnet.supervisor.stop_all().await;
    tell!("devnet: stopped");
    result
}

/// Cancels `shutdown` on Ctrl-C or SIGTERM.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM can be handled");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    shutdown.cancel();
}

/// The devnet's author keys, made once in `authors/` (never in a node's
/// folder, never exported).
fn make_authors(dir: &Path) -> Result<Vec<Author>, DevnetError> {
    use crate::signed::key;
    AUTHORS
        .iter()
        .map(|&name| {
            let file = dir.join("authors").join(format!("{name}.pem"));
            if !file.exists() {
                key::create(&file).map_err(|e| DevnetError::Authors(e.to_string()))?;
            }
            let key = key::load(&file).map_err(|e| DevnetError::Authors(e.to_string()))?;
            let public = AuthorKey(key.verification_key().to_bytes());
            Ok(Author { name, key, public })
        })
        .collect()
}

fn remember(happened: &Mutex<VecDeque<Happening>>, started: Instant, text: String) {
    let mut happened = happened.lock().expect("not poisoned");
    if happened.len() == HAPPENED_KEPT {
        happened.pop_front();
    }
    happened.push_back(Happening {
        at: started.elapsed().as_secs_f64(),
        text,
    });
}

impl Devnet {
    /// Notes what happened, for the page (and the terminal).
    pub fn note(&self, text: String) {
        tell!("devnet: {text}");
        remember(&self.happened, self.started, text);
    }

    /// What happened lately, oldest first.
    pub fn happened(&self) -> Vec<Happening> {
        self.happened
            .lock()
            .expect("not poisoned")
            .iter()
            .cloned()
            .collect()
    }

    pub fn members(&self) -> Vec<Member> {
        self.members.lock().expect("not poisoned").clone()
    }

    pub fn member(&self, port: u16) -> Option<Member> {
        self.members().into_iter().find(|m| m.port == port)
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    pub fn authors(&self) -> &[Author] {
        &self.authors
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn activity(&self) -> &watch::Sender<f64> {
        &self.activity
    }

    /// What the node's process is doing.
    pub fn run_state(&self, member: &Member) -> RunState {
        self.supervisor
            .states()
            .remove(&member.name)
            .unwrap_or(RunState::Stopped)
    }

    /// The nodes whose process runs.
    pub fn running(&self) -> Vec<Member> {
        let states = self.supervisor.states();
        self.members()
            .into_iter()
            .filter(|m| matches!(states.get(&m.name), Some(RunState::Running { .. })))
            .collect()
    }

    /// Whom the node on `port` is told of.
    pub fn told_of(&self, port: u16) -> Vec<u16> {
        let ports: Vec<u16> = self.members().iter().map(|m| m.port).collect();
        let at = ports.iter().position(|&p| p == port).unwrap_or(0);
        self.layout.told_of(at, &ports)
    }

    /// How the node `member` is started.
    fn spec(&self, member: &Member) -> Spec {
        let peers: Vec<String> = self
            .told_of(member.port)
            .iter()
            .map(|port| format!("http://127.0.0.1:{port}"))
            .collect();
        let mut args = vec![
            // It stops when this devnet is gone, even after a SIGKILL.
            "--stop-with-stdin".to_string(),
            "--port".to_string(),
            member.port.to_string(),
            "--peers".to_string(),
            peers.join(","),
        ];
        if self.mine {
            args.extend(["--mine", "--threads", "1"].map(String::from));
        }
        // The control page shows each node's tree and network views.
        args.extend([
            "--frame-ancestors".to_string(),
            self.control_origins.clone(),
        ]);
        if !self.layout.discovers() {
            args.extend(["--outbound-peers", "0"].map(String::from));
        }
        Spec {
            name: member.name.clone(),
            program: self.program.clone(),
            args,
            dir: member.dir.clone(),
        }
    }

    /// Starts every node and waits until each answers (or one dies, or
    /// the devnet is stopped).
    async fn start_all(&self, shutdown: &CancellationToken) -> Result<(), DevnetError> {
        let members = self.members();
        for member in &members {
            self.start_process(member)?;
        }
        for member in &members {
            tokio::select! {
                up = self.until_listening(member) => up?,
                () = shutdown.cancelled() => return Ok(()),
            }
        }
        Ok(())
    }

    fn start_process(&self, member: &Member) -> Result<u32, DevnetError> {
        let pid = self
            .supervisor
            .start(self.spec(member))
            .map_err(|e| DevnetError::Node(e.to_string()))?;
        tell!(
            "devnet: {} (pid {pid}) in {}: explorer {}/",
            member.name,
            member.dir.display(),
            member.url
        );
        Ok(pid)
    }

    /// Waits until `member` accepts connections (bounded).
    async fn until_listening(&self, member: &Member) -> Result<(), DevnetError> {
        let deadline = Instant::now() + START_PATIENCE;
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", member.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if !matches!(self.run_state(member), RunState::Running { .. }) {
                return Err(DevnetError::Node(format!(
                    "{} did not start: its last lines above say why",
                    member.name
                )));
            }
            if Instant::now() > deadline {
                return Err(DevnetError::Node(format!(
                    "{} did not listen within {} s",
                    member.name,
                    START_PATIENCE.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts a stopped node again and waits until it answers.
    pub async fn start_node(&self, member: &Member) -> Result<(), DevnetError> {
        self.start_process(member)?;
        self.until_listening(member).await
    }

    /// Stops a node (SIGTERM; it shuts down cleanly).
    pub async fn stop_node(&self, member: &Member) {
        let _ = self.supervisor.stop(&member.name).await;
    }

    /// Adds a node on the next free port, told of its neighbours by the
    /// layout, and starts it.
    pub async fn add_node(&self) -> Result<Member, DevnetError> {
        let member = {
            let mut members = self.members.lock().expect("not poisoned");
            if members.len() >= MAX_NODES {
                return Err(DevnetError::Count(members.len() + 1));
            }
            let last = members.iter().map(|m| m.port).max().unwrap_or(5000);
            let port = (last.saturating_add(1)..=u16::MAX)
                .find(|&port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
                .ok_or(DevnetError::NoRoom(last, 1))?;
            let member = Member::new(&self.dir, port);
            members.push(member.clone());
            member
        };
        folders::prepare(&self.dir, member.port, self.difficulty)?;
        self.save_manifest();
        self.start_node(&member).await?;
        Ok(member)
    }

    /// Writes the devnet's record (best effort: it only helps a rerun).
    fn save_manifest(&self) {
        let manifest = archive::Manifest {
            version: 1,
            nodes: self.members().len(),
            layout: self.layout,
        };
        let text = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
        if let Err(error) = crate::fsio::replace_file(&self.dir.join(MANIFEST), &text) {
            tell!("devnet: cannot save {MANIFEST}: {error}");
        }
    }

    /// The devnet's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
