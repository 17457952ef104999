//! Streamed answers: rendered on a blocking thread, sent in chunks as they are written.
//!
//! A scrape of 100k targets is tens of megabytes of text and a few hundred milliseconds
//! of CPU. Rendered on the HTTP runtime it would stall every other request (`/probe`
//! among them) for that long; rendered to one buffer it would hold all of it at once.
//! Here the renderer writes into 64 KiB chunks on a blocking thread, and at most
//! [`CHUNKS_AHEAD`] chunks wait for the client: a slow client slows its own renderer
//! and nothing else.

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

/// The size of one chunk.
const CHUNK: usize = 64 * 1024;

/// Chunks written but not yet taken by the connection.
const CHUNKS_AHEAD: usize = 2;

/// An answer of `content_type` whose body `render` writes, on a blocking thread.
///
/// When `render` fails (or the client goes away, which it sees as a write error), the
/// body ends with an error: the connection is closed without the final chunk, so the
/// client knows that the answer is incomplete rather than taking a truncated one.
pub(super) fn streamed<F>(content_type: &'static str, render: F) -> Response
where
    F: FnOnce(&mut ChunkWriter) -> io::Result<()> + Send + 'static,
{
    let (chunks, taken) = mpsc::channel(CHUNKS_AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter {
            chunks,
            chunk: Vec::with_capacity(CHUNK),
        };
        if let Err(err) = render(&mut out).and_then(|()| out.send()) {
            tracing::debug!("answer not finished: {err}");
            let _ = out.chunks.blocking_send(Err(err));
        }
    });
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(Chunks(taken)),
    )
        .into_response()
}

/// Where a streamed answer is written: chunks of [`CHUNK`] bytes, each sent when full.
#[derive(Debug)]
pub(super) struct ChunkWriter {
    chunks: mpsc::Sender<io::Result<Bytes>>,
    chunk: Vec<u8>,
}

impl ChunkWriter {
    /// Sends the chunk written so far, waiting while [`CHUNKS_AHEAD`] are untaken.
    fn send(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        self.chunks
            .blocking_send(Ok(Bytes::from(full)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.chunk.extend_from_slice(buf);
        if self.chunk.len() >= CHUNK {
            self.send()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The receiving end, as the body's stream.
struct Chunks(mpsc::Receiver<io::Result<Bytes>>);

impl futures_core::Stream for Chunks {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().0.poll_recv(cx)
    }
}
