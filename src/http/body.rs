//! The upload's body as the multipart parser reads it, guarded: every byte of the request counts
//! against `uploads.max_body_bytes` (part headers and boundaries too, not only file data), each
//! part's header is bounded in size (the parser would otherwise buffer a header that never ends,
//! and rescan it on every chunk), and the body is bounded in time: an idle gap between chunks and a
//! deadline for the whole.
//!
//! The guard sits between actix's payload and `Multipart`. When it cuts a body short it records
//! why in the shared [`BodyWatch`] and hands the parser an error; the handler then answers with the
//! recorded reason rather than the parser's generic one.

use std::cell::Cell;
use std::future::poll_fn;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_multipart::MultipartError;
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::time::{Instant, Sleep, sleep};

/// Why the guard cut a body short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// More bytes than `max_body_bytes`.
    TooLarge,
    /// A part header longer than `max_part_header_bytes`.
    HeaderTooLarge,
    /// No byte for `body_idle_timeout_secs`.
    Idle,
    /// The body took longer than `body_timeout_secs`.
    Deadline,
}

/// What the guard and the handler share. Cheap to clone; single-threaded, as each request is.
#[derive(Debug, Clone, Default)]
pub struct BodyWatch(Rc<WatchState>);

#[derive(Debug, Default)]
struct WatchState {
    cut: Cell<Option<Cut>>,
    /// True while the handler waits for the next part's header.
    in_header: Cell<bool>,
    /// Header bytes seen since the handler started waiting for one.
    header_bytes: Cell<usize>,
    /// True once the client's body has ended.
    ended: Cell<bool>,
}

impl BodyWatch {
    /// The reason the body was cut short, if it was.
    pub fn cut(&self) -> Option<Cut> {
        self.0.cut.get()
    }

    /// Call before asking the parser for the next part: bytes up to the end of its header count
    /// against the header limit.
    pub fn expect_header(&self) {
        self.0.in_header.set(true);
        self.0.header_bytes.set(0);
    }

    /// Call once the parser handed over a part: what follows is its data.
    pub fn in_data(&self) {
        self.0.in_header.set(false);
    }

    /// The parser's next item from `stream` (the parts, or one part's data).
    ///
    /// Once the body has ended, only the parser's own buffer can answer, so a parser that still
    /// waits is waiting for bytes that cannot come, and nothing will ever wake it:
    /// actix-multipart does so when a body ends in a line break short of its closing boundary.
    /// That wait is answered as the incomplete body it is.
    pub async fn next<S, T>(&self, stream: &mut S) -> Option<Result<T, MultipartError>>
    where
        S: Stream<Item = Result<T, MultipartError>> + Unpin,
    {
        poll_fn(|cx| match stream.poll_next_unpin(cx) {
            Poll::Pending if self.0.ended.get() => {
                Poll::Ready(Some(Err(MultipartError::Incomplete)))
            }
            polled => polled,
        })
        .await
    }
}

/// The limits the guard enforces.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: u64,
    pub max_header_bytes: usize,
    pub idle: Duration,
    pub deadline: Duration,
}

/// A payload stream with the limits applied.
pub struct GuardedBody<S> {
    inner: S,
    watch: BodyWatch,
    limits: BodyLimits,
    received: u64,
    /// The last three bytes seen, so a header's end split across two chunks is still found.
    tail: [u8; 3],
    idle: Pin<Box<Sleep>>,
    deadline: Pin<Box<Sleep>>,
}

impl<S> GuardedBody<S> {
    pub fn new(inner: S, limits: BodyLimits, watch: BodyWatch) -> Self {
        let now = Instant::now();
        Self {
            inner,
            watch,
            limits,
            received: 0,
            tail: [0; 3],
            idle: Box::pin(sleep(limits.idle)),
            deadline: Box::pin(tokio::time::sleep_until(now + limits.deadline)),
        }
    }

    fn cut(&mut self, why: Cut) -> Poll<Option<Result<Bytes, PayloadError>>> {
        self.watch.0.cut.set(Some(why));
        let error = match why {
            Cut::TooLarge | Cut::HeaderTooLarge => PayloadError::Overflow,
            Cut::Idle | Cut::Deadline => PayloadError::Io(std::io::ErrorKind::TimedOut.into()),
        };
        Poll::Ready(Some(Err(error)))
    }

    /// Counts a chunk's header bytes, while the handler waits for a header: those before the
    /// blank line that ends it.
    fn count_header(&mut self, chunk: &[u8]) -> bool {
        let state = &self.watch.0;
        if state.in_header.get() {
            let end = header_end(&self.tail, chunk);
            let counted = state.header_bytes.get() + end.unwrap_or(chunk.len());
            state.header_bytes.set(counted);
            if end.is_some() {
                // The header is whole; what follows is data, until the handler asks again.
                state.in_header.set(false);
            }
            if counted > self.limits.max_header_bytes {
                return false;
            }
        }
        remember_tail(&mut self.tail, chunk);
        true
    }
}

impl<S> Stream for GuardedBody<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.watch.cut().is_some() {
            return Poll::Ready(None);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            return self.cut(Cut::Deadline);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.received += chunk.len() as u64;
                if self.received > self.limits.max_bytes {
                    return self.cut(Cut::TooLarge);
                }
                if !self.count_header(&chunk) {
                    return self.cut(Cut::HeaderTooLarge);
                }
                let next_idle = Instant::now() + self.limits.idle;
                self.idle.as_mut().reset(next_idle);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => {
                self.watch.0.ended.set(true);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Pending => {
                if self.idle.as_mut().poll(cx).is_ready() {
                    return self.cut(Cut::Idle);
                }
                Poll::Pending
            }
        }
    }
}

/// Where in `chunk` the blank line ending a header (`\r\n\r\n`) ends, given the three bytes before
/// the chunk: the count of the chunk's bytes up to and including it.
fn header_end(tail: &[u8; 3], chunk: &[u8]) -> Option<usize> {
    const END: &[u8; 4] = b"\r\n\r\n";
    // A match that starts in the tail and ends in the chunk, earliest end first.
    for split in (1..=3).rev() {
        let from_tail = &tail[3 - split..];
        let rest = 4 - split;
        if rest <= chunk.len() && from_tail == &END[..split] && chunk[..rest] == END[split..] {
            return Some(rest);
        }
    }
    chunk.windows(4).position(|w| w == END).map(|at| at + 4)
}

fn remember_tail(tail: &mut [u8; 3], chunk: &[u8]) {
    if chunk.len() >= 3 {
        tail.copy_from_slice(&chunk[chunk.len() - 3..]);
    } else {
        let keep = 3 - chunk.len();
        tail.copy_within(3 - keep.., 0);
        tail[keep..].copy_from_slice(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn limits() -> BodyLimits {
        BodyLimits {
            max_bytes: 100,
            max_header_bytes: 20,
            idle: Duration::from_secs(5),
            deadline: Duration::from_secs(60),
        }
    }

    fn body(chunks: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, PayloadError>> + Unpin {
        futures_util::stream::iter(
            chunks
                .iter()
                .map(|c| Ok(Bytes::from_static(c)))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn the_end_of_a_header_is_found_even_split_across_chunks() {
        // Proves every way the four bytes can straddle a chunk boundary.
        assert_eq!(header_end(&[0; 3], b"ab\r\n\r\ncd"), Some(6));
        assert_eq!(header_end(b"x\r\n", b"\r\nabc"), Some(2));
        assert_eq!(header_end(b"\r\n\r", b"\nabc"), Some(1));
        assert_eq!(header_end(b"xy\r", b"\n\r\nz"), Some(3));
        assert_eq!(header_end(b"\r\n\r", b""), None);
        assert_eq!(header_end(b"abc", b"\r\n\r"), None);
        let mut tail = [0; 3];
        remember_tail(&mut tail, b"\r");
        remember_tail(&mut tail, b"\n\r");
        assert_eq!(header_end(&tail, b"\nx"), Some(1));
    }

    #[tokio::test]
    async fn a_body_over_its_limit_is_cut_and_says_why() {
        let watch = BodyWatch::default();
        let mut guarded = GuardedBody::new(body(&[&[0; 60], &[0; 60]]), limits(), watch.clone());
        assert!(guarded.next().await.unwrap().is_ok());
        assert!(guarded.next().await.unwrap().is_err());
        assert_eq!(watch.cut(), Some(Cut::TooLarge));
        assert!(guarded.next().await.is_none(), "nothing more after the cut");
    }

    #[tokio::test]
    async fn a_header_that_never_ends_is_cut_while_data_of_any_size_passes() {
        // Only bytes before a header's blank line count; file data after it does not.
        let watch = BodyWatch::default();
        watch.expect_header();
        let chunks: &[&'static [u8]] = &[b"--b\r\nname: x\r\n\r\n0123456789", b"0123456789012345"];
        let mut guarded = GuardedBody::new(body(chunks), limits(), watch.clone());
        while let Some(chunk) = guarded.next().await {
            chunk.unwrap();
        }
        assert_eq!(watch.cut(), None);

        let watch = BodyWatch::default();
        watch.expect_header();
        let chunks: &[&'static [u8]] = &[b"--b\r\nname: 0123456", b"789012345678"];
        let mut guarded = GuardedBody::new(body(chunks), limits(), watch.clone());
        assert!(guarded.next().await.unwrap().is_ok());
        assert!(guarded.next().await.unwrap().is_err());
        assert_eq!(watch.cut(), Some(Cut::HeaderTooLarge));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_is_cut_after_the_idle_timeout() {
        let watch = BodyWatch::default();
        let stalled = futures_util::stream::pending::<Result<Bytes, PayloadError>>();
        let mut guarded = GuardedBody::new(stalled, limits(), watch.clone());
        assert!(guarded.next().await.unwrap().is_err());
        assert_eq!(watch.cut(), Some(Cut::Idle));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_trickles_is_cut_at_the_deadline() {
        // One byte every four seconds never trips the five-second idle timeout, but the whole
        // body may take only a minute.
        let watch = BodyWatch::default();
        let trickle = futures_util::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_secs(4)).await;
            Some((Ok(Bytes::from_static(b"x")), ()))
        });
        let limits = BodyLimits {
            max_bytes: u64::MAX,
            ..limits()
        };
        let mut guarded = GuardedBody::new(Box::pin(trickle), limits, watch.clone());
        let mut chunks = 0;
        while let Some(Ok(_)) = guarded.next().await {
            chunks += 1;
        }
        assert_eq!(watch.cut(), Some(Cut::Deadline));
        assert!((14..=15).contains(&chunks), "{chunks}");
    }
}
