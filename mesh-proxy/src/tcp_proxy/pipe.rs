//! Copying a connection both ways with buffers held only while bytes are in flight.
//!
//! `tokio::io::copy_bidirectional` keeps a buffer per direction for the life of the connection:
//! large buffers make bulk transfers cheap (fewer, larger reads and writes) but cost every idle
//! connection their size. Here a direction takes a 64 KiB buffer when its source is readable
//! and gives it back (to a per-thread spare, so a busy connection does not allocate per read)
//! once everything read has been written and the source has nothing more. An idle connection
//! holds no buffer, as HAProxy's and Envoy's do not.
//!
//! An end of stream one way is passed on as a half-close (`shutdown`) and the other way keeps
//! flowing; the copy ends when both ways have ended, or at the first error.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The buffer a direction reads into.
pub(super) const BUFFER: usize = 64 * 1024;

thread_local! {
    /// A buffer given back by a direction that went idle, for the next one that needs one.
    static SPARE: RefCell<Option<Box<[u8]>>> = const { RefCell::new(None) };
}

fn take_buffer() -> Box<[u8]> {
    SPARE
        .with(|s| s.borrow_mut().take())
        .unwrap_or_else(|| vec![0; BUFFER].into_boxed_slice())
}

fn give_back(buf: Box<[u8]>) {
    SPARE.with(|s| {
        let mut s = s.borrow_mut();
        if s.is_none() {
            *s = Some(buf);
        }
    });
}

/// One direction of the copy.
#[derive(Debug, Default)]
pub(super) struct Direction {
    /// Held while bytes read are not all written.
    buf: Option<Box<[u8]>>,
    start: usize,
    end: usize,
    read_done: bool,
    done: bool,
    /// Bytes written.
    pub(super) copied: u64,
}

impl Direction {
    /// Whether this direction holds a buffer (for tests of idle memory).
    #[cfg(test)]
    fn holds_buffer(&self) -> bool {
        self.buf.is_some()
    }

    /// Moves bytes from `r` to `w` until `r` has nothing ready or `w` cannot take more; ready
    /// when `r` has ended and `w` is shut down.
    pub(super) fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut r: Pin<&mut R>,
        mut w: Pin<&mut W>,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        if self.done {
            return Poll::Ready(Ok(()));
        }
        loop {
            // Write out what is buffered.
            while self.start < self.end {
                let Some(buf) = &self.buf else { break };
                let n = ready!(w.as_mut().poll_write(cx, &buf[self.start..self.end]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.start += n;
                self.copied += n as u64;
            }
            self.start = 0;
            self.end = 0;
            if self.read_done {
                if let Some(buf) = self.buf.take() {
                    give_back(buf);
                }
                ready!(w.as_mut().poll_flush(cx))?;
                ready!(w.as_mut().poll_shutdown(cx))?;
                self.done = true;
                return Poll::Ready(Ok(()));
            }
            let mut buf = self.buf.take().unwrap_or_else(take_buffer);
            let mut rb = ReadBuf::new(&mut buf);
            match r.as_mut().poll_read(cx, &mut rb) {
                Poll::Pending => {
                    // Nothing in flight: the buffer goes back until bytes arrive.
                    give_back(buf);
                    // Bytes written so far may sit in `w`'s own buffer.
                    ready!(w.as_mut().poll_flush(cx))?;
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => {
                    give_back(buf);
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(())) => {
                    let n = rb.filled().len();
                    if n == 0 {
                        self.read_done = true;
                        give_back(buf);
                    } else {
                        self.end = n;
                        self.buf = Some(buf);
                    }
                }
            }
        }
    }
}

/// Copies `a` → `b` and `b` → `a` until both ways have ended; the bytes copied each way.
///
/// # Errors
/// The first read, write or shutdown error either way.
pub(super) async fn copy_both<A, B>(a: &mut A, b: &mut B) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let mut there = Direction::default();
    let mut back = Direction::default();
    std::future::poll_fn(|cx| {
        let to_b = there.poll_copy(cx, Pin::new(&mut *a), Pin::new(&mut *b))?;
        let to_a = back.poll_copy(cx, Pin::new(&mut *b), Pin::new(&mut *a))?;
        if to_b.is_ready() && to_a.is_ready() {
            Poll::Ready(Ok((there.copied, back.copied)))
        } else {
            Poll::Pending
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Differential: whatever the chunking, both ways carry exactly what was written, and a
    /// half-close one way leaves the other way open.
    #[tokio::test]
    async fn both_ways_carry_every_byte_and_pass_half_closes_on() {
        for size in [
            0usize,
            1,
            1000,
            BUFFER - 1,
            BUFFER,
            BUFFER + 1,
            5 * BUFFER + 7,
        ] {
            let (mut client, mut proxy_down) = tokio::io::duplex(4096);
            let (mut proxy_up, mut server) = tokio::io::duplex(3000);
            let pipe = tokio::spawn(async move { copy_both(&mut proxy_down, &mut proxy_up).await });
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let sent = data.clone();
            let writer = tokio::spawn(async move {
                client.write_all(&sent).await.unwrap();
                client.shutdown().await.unwrap();
                // The other way is still open after the half-close.
                let mut back = Vec::new();
                client.read_to_end(&mut back).await.unwrap();
                back
            });
            let mut got = Vec::new();
            server.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, data, "size {size}");
            server.write_all(b"reply").await.unwrap();
            server.shutdown().await.unwrap();
            assert_eq!(writer.await.unwrap(), b"reply");
            let (there, back) = pipe.await.unwrap().unwrap();
            assert_eq!((there, back), (size as u64, 5));
        }
    }

    #[tokio::test]
    async fn an_idle_direction_holds_no_buffer() {
        let (mut client, mut proxy_down) = tokio::io::duplex(64);
        let (mut proxy_up, mut server) = tokio::io::duplex(64);
        let mut d = Direction::default();
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        client.write_all(b"abc").await.unwrap();
        // Reads "abc", writes it on, finds nothing more: pending, no buffer held.
        let p = d.poll_copy(&mut cx, Pin::new(&mut proxy_down), Pin::new(&mut proxy_up));
        assert!(p.is_pending());
        assert!(!d.holds_buffer());
        let mut got = [0u8; 3];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"abc");
    }
}
