//! The server's connection loop: axum's router on hyper, with the limits a
//! node on a network needs.
//!
//! Connections are bounded in number and shared by network group
//! ([`super::connections`]): past the bound, the youngest connection of the
//! group holding the most is dropped, so a newcomer of any other group is
//! always served at once, however many connections one address opened.
//! Each must send a request's headers within [`HEADER_READ_TIMEOUT`] (also
//! the longest a connection may sit idle between requests), so a thousand
//! clients that open connections and trickle bytes into them hold a place
//! each for seconds at most. The node raises its open-file limit to the
//! most it may (see [`ServerLimits`]). A client whose answers wait on it
//! must read at [`super::pace::MIN_BYTES_PER_SECOND`].
//!
//! A connection whose first request is `GET /blockchain.json` is served on
//! a runtime of its own whose threads run [`BULK_NICE_ABOVE`] nice levels
//! below the node's: writing a whole chain is megabytes of copying, and on
//! a machine with few cores four such downloads kept blocks announced to
//! the node waiting for a core (264 blocks/s accepted beside them, against
//! 2 929 alone). The kernel now gives a woken server thread the core at
//! once, and a download takes what is left.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, warn};

use super::connections::{Connections, Place};
use super::pace::Paced;
use crate::setting::{Setting, Unset, Words};

/// The time a connection has to send a request's headers, counted from
/// when it opens or its previous answer went out.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections may delay shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How many nice levels below the node's the bulk writers run.
pub const BULK_NICE_ABOVE: u8 = 10;
/// The start of a request served on the bulk runtime.
const BULK_REQUEST: &[u8] = b"GET /blockchain.json";
/// Descriptors kept back from the connection bound for files and peers.
const RESERVED_DESCRIPTORS: u64 = 256;
pub const HOST: Setting<Words, IpAddr> = Setting {
    key: "host",
    help: "address to listen on; another than 127.0.0.1 is logged as a warning",
    default: IpAddr::V4(Ipv4Addr::LOCALHOST),
    range: None,
    unit: "",
};
pub const PORT: Setting<u16> = Setting {
    key: "port",
    help: "port to listen on (0: any free port)",
    default: 5001,
    range: Some(0..=u16::MAX),
    unit: "a port number",
};
/// The most connections served at once, whatever the descriptor limit.
const MOST_CONNECTIONS: usize = 8192;
/// Unset, what the open-file limit allows.
pub const MAX_CONNECTIONS: Setting<usize, Unset> = Setting {
    key: "max_connections",
    help: "most connections served at once; past it, the youngest of the network group holding the most is dropped for a newcomer",
    default: Unset("what the open-file limit allows, at most 8192"),
    range: Some(16..=MOST_CONNECTIONS),
    unit: "a whole number",
};

/// How many connections the server holds at once.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub connections: usize,
}

impl ServerLimits {
    /// Raises this process's open-file limit to its hard limit, and bounds
    /// connections by what that allows, and by `most` when given (the
    /// `max_connections` setting).
    pub fn from_system(most: Option<usize>) -> ServerLimits {
        let allowed = ServerLimits::allowed_by_system();
        ServerLimits {
            connections: most.map_or(allowed, |most| most.min(allowed)),
        }
    }

    fn allowed_by_system() -> usize {
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
        descriptors
            .saturating_sub(RESERVED_DESCRIPTORS)
            .clamp(64, MOST_CONNECTIONS as u64) as usize
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
    let connections = Connections::new(limits.connections);
    // Every connection's task, so that shutdown can give them a moment.
    let open = tokio_util::task::TaskTracker::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let bulk = bulk_runtime();
    loop {
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
        let place = connections.open(remote.ip());
        let connection = Connection {
            app: app.clone(),
            http: http.clone(),
            remote,
            shutdown: shutdown.clone(),
        };
        let bulk = bulk.as_ref().map(|runtime| runtime.handle().clone());
        let tracker = open.clone();
        let stopping = shutdown.clone();
        open.spawn(async move {
            let bulk = match bulk {
                Some(bulk) => {
                    let peeked = tokio::select! {
                        peeked = is_bulk(&stream) => peeked,
                        // A connection that has asked nothing yet is not
                        // waited for at shutdown (it could take the whole
                        // header timeout, past the grace).
                        _ = stopping.cancelled() => None,
                    };
                    match peeked {
                        // Nothing asked in time, or the client went away.
                        None => return,
                        Some(is_bulk) => is_bulk.then_some(bulk),
                    }
                }
                None => None,
            };
            match bulk {
                Some(bulk) => match stream.into_std() {
                    // Moved to the bulk runtime's reactor.
                    Ok(stream) => drop(bulk.spawn(tracker.track_future(async move {
                        if let Ok(stream) = TcpStream::from_std(stream) {
                            connection.serve(stream, place).await;
                        }
                    }))),
                    Err(error) => debug!(%error, %remote, "handing a connection over failed"),
                },
                _ => connection.serve(stream, place).await,
            }
        });
    }
    drop(listener);
    open.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, open.wait())
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
    /// Asks the connection to finish its answer under way and close.
    shutdown: CancellationToken,
}

impl Connection {
    /// Serves HTTP/1 requests on `stream` until the client or the node
    /// closes it, or it is evicted for a newcomer (`place`).
    async fn serve(self, stream: TcpStream, place: Place) {
        let Connection {
            app,
            http,
            remote,
            shutdown,
        } = self;
        let stream = Paced::new(stream);
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(remote));
            app.clone().oneshot(request.map(axum::body::Body::new))
        });
        // With upgrades: a peer's live link (`GET /link`) goes on over the
        // same stream once its upgrade is answered, paced as any answer.
        let connection = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(connection);
        tokio::select! {
            ended = connection.as_mut() => if let Err(error) = ended {
                debug!(%error, %remote, "connection ended");
            },
            _ = place.evicted.cancelled() => debug!(
                %remote,
                evicted = place.connections().evicted(),
                "connection dropped for a newcomer: its network group holds the most"
            ),
            _ = shutdown.cancelled() => {
                connection.as_mut().graceful_shutdown();
                if let Err(error) = connection.await {
                    debug!(%error, %remote, "connection ended at shutdown");
                }
            }
        }
        drop(place);
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
