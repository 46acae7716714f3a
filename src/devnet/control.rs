//! The control page and the routes behind its buttons.
//!
//! `GET /` is the page; `GET /api/devnet` what it draws (every node's
//! process and `/status`, the layout, what happened); each button is a
//! `POST` under `/api/` that answers `{"said": …}` or `{"error": …}`.
//! `GET /api/export` is the devnet as a `.tar.gz`.
//!
//! The page is served on loopback by default, and the routes answer only
//! requests addressed to this host by name (`127.0.0.1`, `localhost`,
//! `[::1]` with the page's port): another site's page cannot reach them
//! through a name it controls (DNS rebinding). Every `POST` takes a JSON
//! body, which another site's form cannot send without the browser asking
//! first (and this server allows no other origin), and an `Origin`, when
//! sent, must be the page's own.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::actions::ActionError;
use super::activity::MAX_RATE;
use super::supervisor::RunState;
use super::{Devnet, DevnetError, Happening, Layout};
use crate::protocol::Status;

const PAGE: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/devnet.js");
const STYLE: &str = include_str!("page/devnet.css");
const ICON: &str = include_str!("../api/explorer/favicon.svg");

/// How long the page waits for one node's status.
const STATUS_PATIENCE: Duration = Duration::from_secs(2);

/// Serves the control page on `listener` until `shutdown`.
pub async fn serve(
    devnet: Arc<Devnet>,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let port = listener.local_addr()?.port();
    axum::serve(listener, router(devnet, port))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// The control page's routes, answering for the page on `port`.
pub fn router(devnet: Arc<Devnet>, port: u16) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE) }),
        )
        .route(
            "/devnet.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    SCRIPT,
                )
            }),
        )
        .route(
            "/devnet.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }),
        )
        .route(
            "/favicon.svg",
            get(|| async { ([(header::CONTENT_TYPE, "image/svg+xml")], ICON) }),
        )
        .route("/api/devnet", get(view))
        .route("/api/export", get(export))
        .route("/api/nodes", post(add_node))
        .route("/api/activity", post(set_activity))
        .route("/api/nodes/{port}/{action}", post(node_action))
        .layer(middleware::from_fn(move |request, next| {
            only_this_page(port, request, next)
        }))
        .with_state(devnet)
}

/// Refuses requests addressed to another host name, or sent by another
/// origin.
async fn only_this_page(port: u16, request: Request, next: Next) -> Response {
    let ours = |value: Option<&str>, scheme: &str| {
        ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .any(|host| value == Some(&format!("{scheme}{host}:{port}")))
    };
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !ours(host, "") {
        return failure(
            StatusCode::MISDIRECTED_REQUEST,
            format!("this is the devnet's control page: open it as http://127.0.0.1:{port}/"),
        );
    }
    if let Some(origin) = headers.get(header::ORIGIN)
        && !ours(origin.to_str().ok(), "http://")
    {
        return failure(
            StatusCode::FORBIDDEN,
            "only the control page itself may use these routes".to_string(),
        );
    }
    next.run(request).await
}

fn failure(status: StatusCode, error: String) -> Response {
    #[derive(Serialize)]
    struct Failure {
        error: String,
    }
    (status, Json(Failure { error })).into_response()
}

/// An action's result, in a sentence.
#[derive(Serialize)]
struct Said {
    said: String,
}

fn said(text: String) -> Json<Said> {
    Json(Said { said: text })
}

impl IntoResponse for ActionError {
    fn into_response(self) -> Response {
        let status = match &self {
            ActionError::NoNode(_) => StatusCode::NOT_FOUND,
            ActionError::NotRunning(_) | ActionError::Refused(_) | ActionError::Failed(_) => {
                StatusCode::CONFLICT
            }
            ActionError::Node { .. } => StatusCode::BAD_GATEWAY,
            ActionError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        };
        failure(status, self.to_string())
    }
}

impl IntoResponse for DevnetError {
    fn into_response(self) -> Response {
        let status = match &self {
            DevnetError::Count(_) | DevnetError::NoRoom(..) | DevnetError::Activity(_) => {
                StatusCode::CONFLICT
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        failure(status, self.to_string())
    }
}

/// What the page draws.
#[derive(Serialize)]
struct View {
    layout: Layout,
    activity: f64,
    authors: Vec<AuthorView>,
    nodes: Vec<NodeView>,
    happened: Vec<Happening>,
}

#[derive(Serialize)]
struct AuthorView {
    name: &'static str,
    fingerprint: String,
}

#[derive(Serialize)]
struct NodeView {
    name: String,
    port: u16,
    url: String,
    run: RunState,
    told_of: Vec<u16>,
    /// The node's `/status`; absent when it is not running or did not
    /// answer in time.
    status: Option<Status>,
}

/// `GET /api/devnet`.
async fn view(State(devnet): State<Arc<Devnet>>) -> Json<View> {
    let members = devnet.members();
    let asks = members.iter().map(|member| {
        let devnet = &devnet;
        async move {
            let run = devnet.run_state(member);
            let status = match run {
                RunState::Running { .. } => {
                    tokio::time::timeout(STATUS_PATIENCE, devnet.status(member))
                        .await
                        .ok()
                        .and_then(Result::ok)
                }
                _ => None,
            };
            NodeView {
                name: member.name.clone(),
                port: member.port,
                url: member.url.clone(),
                run,
                told_of: devnet.told_of(member.port),
                status,
            }
        }
    });
    let nodes = futures_util::future::join_all(asks).await;
    Json(View {
        layout: devnet.layout(),
        activity: *devnet.activity().borrow(),
        authors: devnet
            .authors()
            .iter()
            .map(|a| AuthorView {
                name: a.name,
                fingerprint: a.public.fingerprint(),
            })
            .collect(),
        nodes,
        happened: devnet.happened(),
    })
}

/// The body of a node action: what some of them take.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ActionRequest {
    /// `mine`: how many blocks.
    blocks: Option<u64>,
    /// `data`: the item's text.
    text: Option<String>,
    /// `data`: the devnet author to sign as (none: unsigned).
    author: Option<String>,
}

/// `POST /api/nodes/{port}/{action}`: `stop`, `start`, `isolate`,
/// `rejoin`, `mine` (`{"blocks": N}`), `data` (`{"text", "author"}`),
/// `fork`.
async fn node_action(
    State(devnet): State<Arc<Devnet>>,
    Path((port, action)): Path<(u16, String)>,
    Json(request): Json<ActionRequest>,
) -> Result<Json<Said>, Response> {
    let member = devnet
        .member(port)
        .ok_or_else(|| ActionError::NoNode(port).into_response())?;
    let text = match action.as_str() {
        "stop" => {
            devnet.stop_node(&member).await;
            let text = format!("{} stopped", member.name);
            devnet.note(text.clone());
            text
        }
        "start" => {
            devnet
                .start_node(&member)
                .await
                .map_err(IntoResponse::into_response)?;
            let text = format!("{} started: it catches up with its peers", member.name);
            devnet.note(text.clone());
            text
        }
        "isolate" | "rejoin" => devnet
            .isolate(port, action == "isolate")
            .await
            .map_err(IntoResponse::into_response)?,
        "mine" => {
            let blocks = request.blocks.unwrap_or(1);
            if !(1..=100).contains(&blocks) {
                return Err(failure(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("blocks: 1 to 100 at a time, not {blocks}"),
                ));
            }
            devnet
                .mine(port, blocks)
                .await
                .map_err(IntoResponse::into_response)?
        }
        "data" => {
            let text = request.text.unwrap_or_default();
            if text.trim().is_empty() {
                return Err(failure(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "an item needs some text".to_string(),
                ));
            }
            devnet
                .post_item(port, &text, request.author.as_deref())
                .await
                .map_err(IntoResponse::into_response)?
        }
        "fork" => devnet
            .fork(port)
            .await
            .map_err(IntoResponse::into_response)?,
        other => {
            return Err(failure(
                StatusCode::NOT_FOUND,
                format!("no action {other}: stop, start, isolate, rejoin, mine, data or fork"),
            ));
        }
    };
    Ok(said(text))
}

/// `POST /api/nodes`: a node more, on the next free port.
async fn add_node(
    State(devnet): State<Arc<Devnet>>,
    Json(_): Json<serde_json::Value>,
) -> Result<Json<Said>, DevnetError> {
    let member = devnet.add_node().await?;
    let told = devnet.told_of(member.port);
    let text = format!(
        "{} added, told of {}",
        member.name,
        told.iter()
            .map(|p| format!("jbc{p}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    devnet.note(text.clone());
    Ok(said(text))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivityRequest {
    /// Items per second; 0 stops.
    rate: f64,
}

/// `POST /api/activity`: `{"rate": items per second}`.
async fn set_activity(
    State(devnet): State<Arc<Devnet>>,
    Json(ActivityRequest { rate }): Json<ActivityRequest>,
) -> Result<Json<Said>, Response> {
    if !(0.0..=MAX_RATE).contains(&rate) {
        return Err(failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("rate: 0 to {MAX_RATE} items a second, not {rate}"),
        ));
    }
    devnet.activity().send_replace(rate);
    let text = if rate > 0.0 {
        format!("activity: about {rate} generated items a second, at random nodes")
    } else {
        "activity stopped".to_string()
    };
    devnet.note(text.clone());
    Ok(said(text))
}

/// `GET /api/export`: the devnet as `devnet.tar.gz`.
async fn export(State(devnet): State<Arc<Devnet>>) -> Response {
    let dir = devnet.dir().to_path_buf();
    match tokio::task::spawn_blocking(move || super::archive::archive_bytes(&dir)).await {
        Ok(Ok((bytes, nodes, files))) => {
            devnet.note(format!(
                "exported {nodes} nodes ({files} files, {} bytes)",
                bytes.len()
            ));
            (
                [
                    (header::CONTENT_TYPE, "application/gzip"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"devnet.tar.gz\"",
                    ),
                ],
                bytes,
            )
                .into_response()
        }
        Ok(Err(error)) => failure(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
        Err(error) => failure(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}
