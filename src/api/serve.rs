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

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
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
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(WRITE_STALL_TIMEOUT));
        let stream = Box::pin(stream);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(remote));
            app.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(%error, %remote, "connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("open connections did not close in time; stopping anyway");
    }
}
