//! The two ends of a link's WebSocket as one shape: the server's (axum's,
//! after the upgrade) and the client's (tokio-tungstenite's, after
//! dialling) both become a stream and a sink of [`Frame`]s, so one session
//! serves either direction.

use std::pin::Pin;
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio_tungstenite::tungstenite;

use crate::peers::PeerUrl;
use crate::wire::LINK_ROUTE;

/// What the session reads and writes: text, or the close and its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Text(String),
    /// The other side closed (or is told to), with its reason.
    Close(Option<String>),
    /// A binary frame: no message of ours is one.
    Binary(usize),
    /// WebSocket pings and pongs, answered by the library.
    Control,
}

impl Frame {
    /// The bytes it carries, as the send queue counts them.
    pub fn bytes(&self) -> usize {
        match self {
            Frame::Text(text) => text.len(),
            Frame::Close(reason) => reason.as_ref().map_or(0, String::len),
            Frame::Binary(bytes) => *bytes,
            Frame::Control => 0,
        }
    }
}

/// A failure of the socket itself, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SocketError(pub String);

pub type Frames = Pin<Box<dyn Stream<Item = Result<Frame, SocketError>> + Send>>;
pub type FrameSink = Pin<Box<dyn Sink<Frame, Error = SocketError> + Send>>;

/// The largest reason a close frame carries (the protocol's 123 bytes).
const MOST_REASON_BYTES: usize = 123;

/// `reason`, cut at a character boundary to fit a close frame.
fn fitted(reason: &str) -> String {
    let mut end = reason.len().min(MOST_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

/// The server's end of an upgraded connection.
pub fn from_axum(socket: axum::extract::ws::WebSocket) -> (FrameSink, Frames) {
    use axum::extract::ws::{CloseFrame, Message};
    let (sink, stream) = socket.split();
    let sink = sink
        .sink_map_err(|e| SocketError(e.to_string()))
        .with(|frame: Frame| async move {
            Ok::<_, SocketError>(match frame {
                Frame::Text(text) => Message::Text(text.into()),
                Frame::Close(reason) => Message::Close(Some(CloseFrame {
                    code: close_code(reason.as_deref()),
                    reason: fitted(reason.as_deref().unwrap_or("")).into(),
                })),
                Frame::Binary(_) | Frame::Control => Message::Binary(Default::default()),
            })
        });
    let stream = stream.map(|message| {
        message
            .map(|message| match message {
                Message::Text(text) => Frame::Text(text.to_string()),
                Message::Binary(bytes) => Frame::Binary(bytes.len()),
                Message::Close(close) => Frame::Close(close.map(|c| c.reason.to_string())),
                Message::Ping(_) | Message::Pong(_) => Frame::Control,
            })
            .map_err(|e| SocketError(e.to_string()))
    });
    (Box::pin(sink), Box::pin(stream))
}

/// The client's end of a link it opened.
fn from_tungstenite<S>(socket: tokio_tungstenite::WebSocketStream<S>) -> (FrameSink, Frames)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tungstenite::Message;
    use tungstenite::protocol::CloseFrame;
    let (sink, stream) = socket.split();
    let sink = sink
        .sink_map_err(|e| SocketError(e.to_string()))
        .with(|frame: Frame| async move {
            Ok::<_, SocketError>(match frame {
                Frame::Text(text) => Message::Text(text.into()),
                Frame::Close(reason) => Message::Close(Some(CloseFrame {
                    code: close_code(reason.as_deref()).into(),
                    reason: fitted(reason.as_deref().unwrap_or("")).into(),
                })),
                Frame::Binary(_) | Frame::Control => Message::Binary(Default::default()),
            })
        });
    let stream = stream.filter_map(|message| async move {
        Some(
            message
                .map(|message| match message {
                    Message::Text(text) => Frame::Text(text.to_string()),
                    Message::Binary(bytes) => Frame::Binary(bytes.len()),
                    Message::Close(close) => Frame::Close(close.map(|c| c.reason.to_string())),
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Frame::Control,
                })
                .map_err(|e| SocketError(e.to_string())),
        )
    });
    (Box::pin(sink), Box::pin(stream))
}

/// 1000 for a normal close, 1008 (policy) when there is a reason.
fn close_code(reason: Option<&str>) -> u16 {
    match reason {
        None | Some("") => 1000,
        Some(_) => 1008,
    }
}

/// Why a link could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// It answered, but not with an upgrade: a node without links (an
    /// older version), served over HTTP as before.
    #[error("it has no live links (HTTP {0}): it is served over HTTP")]
    NoLinks(u16),
    #[error("{0}")]
    Failed(String),
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

/// Opens a link to `peer` (its `/link`), within `timeout`; messages of up
/// to `max_message_bytes` are read.
pub async fn dial(
    peer: &PeerUrl,
    timeout: Duration,
    max_message_bytes: usize,
) -> Result<(FrameSink, Frames), DialError> {
    let mut url = peer.endpoint(LINK_ROUTE);
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    url.set_scheme(scheme)
        .map_err(|()| DialError::Failed(format!("{peer} cannot be reached by WebSocket")))?;
    let config = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes))
        .read_buffer_size(super::BUFFER_BYTES)
        .write_buffer_size(super::BUFFER_BYTES)
        .max_write_buffer_size(max_message_bytes + super::BUFFER_BYTES);
    let dialled = tokio::time::timeout(
        timeout,
        tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true),
    )
    .await
    .map_err(|_| DialError::TimedOut(timeout))?;
    match dialled {
        Ok((socket, _)) => Ok(from_tungstenite(socket)),
        Err(tungstenite::Error::Http(answer)) => Err(DialError::NoLinks(answer.status().as_u16())),
        Err(error) => Err(DialError::Failed(error.to_string())),
    }
}
