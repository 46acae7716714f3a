//! The server's connection loop: axum's router on hyper, with the limits a
//! node on a network needs.
//!
//! Connections are bounded in number, and each must send a request's
//! headers within [`HEADER_READ_TIMEOUT`] (also the longest a connection
//! may sit idle between requests), so a thousand clients that open
//! connections and trickle bytes into them hold a slot each for seconds at
//! most and cannot keep others from being answered. Beyond the bound, new
//! connections wait in the kernel's queue until a slot frees. The node
//! raises its open-file limit to the most it may (see [`ServerLimits`]).
//! A client that stops reading an answer (a whole chain, a stream) holds
//! its slot no longer than [`WRITE_STALL_TIMEOUT`] after the last byte it
//! took.
//!
//! A connection whose first request is `GET /blockchain.json` is served on
//! a runtime of its own whose threads run [`BULK_NICE_ABOVE`] nice levels
//! below the node's: writing a whole chain is megabytes of copying, and on
//! a machine with few cores four such downloads kept blocks announced to
//! the node waiting for a core (264 blocks/s accepted beside them, against
//! 2 929 alone). The kernel now gives a woken server thread the core at
//! once, and a download takes what is left.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, warn};

/// The time a connection has to send a request's headers, counted from
/// when it opens or its previous answer went out.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a write to a client may make no progress before the
/// connection is closed: time enough for a slow link, not for a client
/// that keeps a large answer (and a slot) waiting for good.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long open connections may delay shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How many nice levels below the node's the bulk writers run.
pub const BULK_NICE_ABOVE: u8 = 10;
/// The start of a request served on the bulk runtime.
const BULK_REQUEST: &[u8] = b"GET /blockchain.json";
/// Descriptors kept back from the connection bound for files and peers.
const RESERVED_DESCRIPTORS: u64 = 256;
/// The most connections served at once, whatever the descriptor limit.
const MAX_CONNECTIONS: u64 = 8192;

/// How many connections the server takes at once.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub connections: usize,
}

impl ServerLimits {
    /// Raises this process's open-file limit to its hard limit, and bounds
    /// connections by what that allows.
    pub fn from_system() -> ServerLimits {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        let descriptors = match getrlimit(Resource::RLIMIT_NOFILE) {
            Ok((soft, hard)) => {
                if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                    hard
                } else {
                    soft
                }
            }
            Err(_) => 1024,
        };
        let connections = descriptors
            .saturating_sub(RESERVED_DESCRIPTORS)
            .clamp(64, MAX_CONNECTIONS);
        ServerLimits {
            connections: connections as usize,
        }
    }
}

/// Serves `app` on `listener` until `shutdown`, then lets open connections
/// finish for a few seconds.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let bulk = bulk_runtime();
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("never closed"),
            _ = shutdown.cancelled() => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, or a connection reset before it
                    // was taken: wait a moment rather than spin.
                    debug!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            app: app.clone(),
            http: http.clone(),
            remote,
            watcher: graceful.watcher(),
        };
        let bulk = bulk.as_ref().map(|runtime| runtime.handle().clone());
        tokio::spawn(async move {
            let bulk = match bulk {
                Some(bulk) => match is_bulk(&stream).await {
                    // Nothing asked in time, or the client went away.
                    None => return,
                    Some(is_bulk) => is_bulk.then_some(bulk),
                },
                None => None,
            };
            match bulk {
                Some(bulk) => match stream.into_std() {
                    // Moved to the bulk runtime's reactor.
                    Ok(stream) => drop(bulk.spawn(async move {
                        if let Ok(stream) = TcpStream::from_std(stream) {
                            connection.serve(stream).await;
                        }
                        drop(slot);
                    })),
                    Err(error) => debug!(%error, %remote, "handing a connection over failed"),
                },
                _ => {
                    connection.serve(stream).await;
                    drop(slot);
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("open connections did not close in time; stopping anyway");
    }
    if let Some(bulk) = bulk {
        bulk.shutdown_background();
    }
}

/// What serving one connection takes.
struct Connection {
    app: Router,
    http: hyper::server::conn::http1::Builder,
    remote: SocketAddr,
    watcher: hyper_util::server::graceful::Watcher,
}

impl Connection {
    /// Serves HTTP/1 requests on `stream` until the client or the node
    /// closes it.
    async fn serve(self, stream: TcpStream) {
        let Connection {
            app,
            http,
            remote,
            watcher,
        } = self;
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(WRITE_STALL_TIMEOUT));
        let stream = Box::pin(stream);
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(remote));
            app.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = watcher.watch(http.serve_connection(TokioIo::new(stream), service));
        if let Err(error) = connection.await {
            debug!(%error, %remote, "connection ended");
        }
    }
}

/// The runtime bulk answers are written on: as many threads as cores, each
/// at [`BULK_NICE_ABOVE`] levels below the node. None if it cannot be made
/// (then every connection is served on the node's runtime).
fn bulk_runtime() -> Option<tokio::runtime::Runtime> {
    let nice = crate::priority::nice_above_process(BULK_NICE_ABOVE);
    let built = tokio::runtime::Builder::new_multi_thread()
        .thread_name("jbc-bulk")
        .enable_all()
        .on_thread_start(move || {
            // Harmless when refused: the writers then run at the node's level.
            let _ = crate::priority::set_thread_nice(nice);
        })
        .build();
    match built {
        Ok(runtime) => Some(runtime),
        Err(error) => {
            warn!(%error, "no separate runtime for downloads; they share the node's");
            None
        }
    }
}

/// Whether the connection's first request asks for a bulk answer, from its
/// first bytes, peeked (left for hyper to read); None when nothing came
/// within the time a request has to send its headers, or the peek failed.
async fn is_bulk(stream: &TcpStream) -> Option<bool> {
    let mut head = [0u8; BULK_REQUEST.len()];
    let mut seen = 0;
    // A request's first line normally comes in one segment; a few peeks
    // cover one split across segments.
    for _ in 0..4 {
        let n = tokio::time::timeout(HEADER_READ_TIMEOUT, stream.peek(&mut head))
            .await
            .ok()?
            .ok()?;
        if n == head.len() {
            return Some(head == *BULK_REQUEST);
        }
        if n <= seen || !BULK_REQUEST.starts_with(&head[..n]) {
            return Some(false);
        }
        seen = n;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Some(false)
}
