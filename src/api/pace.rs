//! The pace a client must read at: a connection whose answers wait on the
//! client (its writes block) for most of [`WINDOW`] while it takes fewer
//! than [`MIN_BYTES_PER_SECOND`] is closed. A client on a slow link reading
//! a whole chain at 200 B/s would otherwise hold its connection (and a
//! share of the server's) for hours; one that stops reading altogether is
//! closed after one window, as before. A connection that waits on nothing
//! (idle between requests, or an event stream with little to say) is never
//! judged: only time spent with data waiting for the client counts.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The span a client's pace is measured over.
pub const WINDOW: Duration = Duration::from_secs(30);
/// The least a client whose answers wait on it must take, on average over
/// a window: a link of 128 kbit/s.
pub const MIN_BYTES_PER_SECOND: u64 = 16 * 1024;

/// A stream whose writes must keep a pace ([`MIN_BYTES_PER_SECOND`] over
/// [`WINDOW`] for the server's connections).
pub struct Paced<S> {
    inner: S,
    /// The span the pace is measured over, and the least bytes per second.
    window: Duration,
    min_bytes_per_second: u64,
    /// The window under way, opened when a write first blocked.
    open: Option<Window>,
    /// Wakes the writer at the window's end, so a client that reads
    /// nothing at all is judged too.
    deadline: Pin<Box<Sleep>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    /// Bytes the client took since `start`.
    bytes: u64,
    /// Time writes spent blocked since `start`, the current block aside.
    blocked: Duration,
    /// When the current block began, if a write is blocked now.
    blocked_since: Option<Instant>,
}

impl Window {
    fn new(now: Instant) -> Window {
        Window {
            start: now,
            bytes: 0,
            blocked: Duration::ZERO,
            blocked_since: None,
        }
    }

    /// Whether, at `now` (the window's end or later), the client kept the
    /// writes waiting for most of the window and took fewer than
    /// `min_bytes_per_second`.
    fn too_slow(&self, now: Instant, min_bytes_per_second: u64) -> bool {
        let elapsed = now.duration_since(self.start);
        let blocked = self.blocked + self.blocked_since.map_or(Duration::ZERO, |at| now - at);
        let least = (min_bytes_per_second as f64 * elapsed.as_secs_f64()) as u64;
        blocked * 2 >= elapsed && self.bytes < least
    }
}

impl<S> Paced<S> {
    /// `inner`, held to [`MIN_BYTES_PER_SECOND`] over [`WINDOW`].
    pub fn new(inner: S) -> Paced<S> {
        Paced::with(inner, WINDOW, MIN_BYTES_PER_SECOND)
    }

    fn with(inner: S, window: Duration, min_bytes_per_second: u64) -> Paced<S> {
        Paced {
            inner,
            window,
            min_bytes_per_second,
            open: None,
            deadline: Box::pin(tokio::time::sleep(window)),
        }
    }

    /// Accounts for one write's result; an error once the client is judged
    /// too slow.
    fn account(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        let now = Instant::now();
        let (span, least) = (self.window, self.min_bytes_per_second);
        match result {
            Poll::Ready(Ok(written)) => {
                if let Some(window) = &mut self.open {
                    window.bytes += written as u64;
                    if let Some(since) = window.blocked_since.take() {
                        window.blocked += now - since;
                    }
                    if now >= window.start + span {
                        if window.too_slow(now, least) {
                            return Poll::Ready(Err(too_slow(span, least)));
                        }
                        // It keeps up: judged again from its next block.
                        self.open = None;
                    }
                }
                Poll::Ready(Ok(written))
            }
            Poll::Pending => {
                let window = self.open.get_or_insert_with(|| Window::new(now));
                window.blocked_since.get_or_insert(now);
                if now >= window.start + span {
                    if window.too_slow(now, least) {
                        return Poll::Ready(Err(too_slow(span, least)));
                    }
                    // A new window, still blocked.
                    let mut next = Window::new(now);
                    next.blocked_since = Some(now);
                    *window = next;
                }
                let end = window.start + span;
                if self.deadline.deadline() != end {
                    self.deadline.as_mut().reset(end);
                }
                if self.deadline.as_mut().poll(cx).is_ready() {
                    // The end came between the clock's read and now:
                    // judged at the next poll, which this wakes.
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
        }
    }
}

fn too_slow(window: Duration, least: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "the client read under {least} bytes/s for {} s while data waited for it",
            window.as_secs_f64()
        ),
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for Paced<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Paced<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.account(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.account(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The window the tests measure over (the server's is 30 s).
    const SPAN: Duration = Duration::from_millis(300);
    /// 16 KiB/s, as the server's.
    const LEAST: u64 = MIN_BYTES_PER_SECOND;

    /// Writes up to `total` bytes through a paced stream to a reader that
    /// takes `per_read` bytes and then waits `pause` (0 bytes: reads
    /// nothing); how many it read and whether the writer was cut.
    async fn serve_to(per_read: usize, pause: Duration, total: usize) -> (usize, bool) {
        let (server, mut client) = tokio::io::duplex(4096);
        let mut paced = Paced::with(server, SPAN, LEAST);
        let writer = tokio::spawn(async move {
            let chunk = vec![7u8; 1024];
            let mut sent = 0;
            while sent < total {
                if paced.write_all(&chunk).await.is_err() {
                    return true;
                }
                sent += chunk.len();
            }
            false
        });
        let mut read = 0;
        let mut buf = vec![0u8; per_read.max(1)];
        while !writer.is_finished() {
            tokio::time::sleep(pause).await;
            if per_read == 0 {
                continue;
            }
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
        (read, writer.await.unwrap())
    }

    #[tokio::test]
    async fn a_reader_below_the_pace_is_cut_one_that_keeps_it_is_not() {
        // 20 bytes every 100 ms (200 B/s): cut.
        let (_, cut) = serve_to(20, Duration::from_millis(100), 1 << 20).await;
        assert!(cut);
        // Reads as fast as it can: all of it.
        let (read, cut) = serve_to(4096, Duration::ZERO, 4 << 20).await;
        assert!(!cut);
        assert_eq!(read, 4 << 20);
        // Reads nothing at all: cut.
        let (read, cut) = serve_to(0, Duration::from_millis(20), 1 << 20).await;
        assert!(cut);
        assert_eq!(read, 0);
    }

    #[tokio::test]
    async fn a_connection_waiting_on_nothing_is_never_judged() {
        let (server, mut client) = tokio::io::duplex(4096);
        let mut paced = Paced::with(server, SPAN, LEAST);
        // An event now and then, read at once: a long, quiet stream.
        for _ in 0..8 {
            paced.write_all(b"event: tip\n\n").await.unwrap();
            let mut buf = [0u8; 64];
            let _ = client.read(&mut buf).await.unwrap();
            tokio::time::sleep(SPAN / 2).await;
        }
        // A burst the client reads a moment late still passes.
        let reader = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut buf = vec![0u8; 16 * 1024];
            let mut read = 0;
            while read < buf.len() {
                read += client.read(&mut buf[read..]).await.unwrap();
            }
            client
        });
        paced.write_all(&[1u8; 16 * 1024]).await.unwrap();
        let mut client = reader.await.unwrap();
        tokio::time::sleep(SPAN * 2).await;
        paced.write_all(b"event: tip\n\n").await.unwrap();
        let mut buf = [0u8; 64];
        assert!(client.read(&mut buf).await.unwrap() > 0);
    }
}
