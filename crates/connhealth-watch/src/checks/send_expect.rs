//! The `send-expect` check: send a request, match the reply against a regex, close
//! gracefully.
//!
//! On the wire:
//!
//! 1. SYN, SYN-ACK, ACK;
//! 2. `send`, when set;
//! 3. the checker reads until `expect` matches the bytes read so far (from the first
//!    byte: `^` anchors at the start of the reply), the peer closes, [`READ_CAP`] bytes
//!    have arrived, or the timeout passes;
//! 4. `quit`, when set and the peer has not closed, then a FIN (`shutdown(SHUT_WR)`);
//! 5. the checker reads and discards until the peer's FIN, within what remains of the
//!    timeout and at most [`DISCARD_CAP`](super::close::DISCARD_CAP) bytes, and only then closes the socket.
//!
//! Step 5 is the point. A socket closed with unread bytes in its receive queue, or one
//! that receives data after it was closed, answers with an RST, and the server logs a
//! reset (`Connection reset by peer`). Waiting for the peer's FIN means everything the
//! peer sent was read (the reply to `quit` included) and the server sees an orderly
//! close: redis, postfix and friends log nothing. When the timeout leaves no time to
//! wait, the checker still sends its FIN and reads what has already arrived, without
//! waiting.
//!
//! Without `expect`, the check succeeds once it is connected and `send` is written.

use std::net::SocketAddr;
use std::time::Duration;

use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use super::close::{close_gracefully, close_now};
use super::{CheckResult, Outcome};
use crate::config::{Pattern, SendExpectPlan};
use crate::human::Rounded;

/// The most reply bytes kept for matching. Past it the check stops reading, fails with
/// `mismatch` ("no match in the first 65536 bytes"), and closes as usual.
pub const READ_CAP: usize = 64 * 1024;

/// Reply bytes read per call: most replies fit in one.
const READ_CHUNK: usize = 4096;

/// How much of an unmatched reply a failure's detail shows.
const SHOWN: usize = 80;

/// Connects to `addr`, sends `plan.send`, reads until the reply matches `plan.expect`,
/// sends `plan.quit` and closes gracefully, all within `timeout`.
///
/// `Ok`, with the time from the connect to the match; `Mismatch` (with `regex_failed`)
/// when the peer closed, the timeout passed after some bytes, or [`READ_CAP`] bytes came
/// without a match; `Timeout` when nothing came at all; connect, write and read errors as
/// [`Outcome::of_io_error`] maps them.
pub async fn check(addr: SocketAddr, plan: &SendExpectPlan, timeout: Duration) -> CheckResult {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut stream = match timeout_at(deadline, TcpStream::connect(addr)).await {
        Err(_) => {
            return CheckResult::failed(
                Outcome::Timeout,
                start.elapsed(),
                format!("no connection within {}", Rounded(timeout)),
            )
        }
        Ok(Err(err)) => {
            return CheckResult::failed(
                Outcome::of_io_error(&err),
                start.elapsed(),
                format!("connect: {err}"),
            )
        }
        Ok(Ok(stream)) => stream,
    };
    // The request, `quit` and the FIN each go out at once, not behind an ACK (Nagle).
    let _ = stream.set_nodelay(true);
    let (result, ending) = converse(&mut stream, plan, start, deadline, timeout).await;
    match ending {
        Ending::Open => {
            if let Some(quit) = &plan.quit {
                let _ = timeout_at(deadline, stream.write_all(quit)).await;
            }
            close_gracefully(&mut stream, deadline).await;
        }
        Ending::OutOfTime => {
            if let Some(quit) = &plan.quit {
                // One non-blocking write: there is no time left to wait for room.
                let socket = SockRef::from(&stream);
                let _ = std::io::Write::write(&mut &*socket, quit);
            }
            close_now(&stream);
        }
        // The peer's FIN is read and nothing is left unread: answer it with ours.
        Ending::PeerClosed => close_now(&stream),
        // Reset: there is no connection left to close.
        Ending::Broken => {}
    }
    result
}

/// How the conversation left the connection, which decides how it is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Both directions open, time left: `quit`, FIN, wait for the peer's FIN.
    Open,
    /// The deadline passed: FIN and a non-blocking read, no waiting.
    OutOfTime,
    /// The peer's FIN was read.
    PeerClosed,
    /// A write or read failed (a reset, mostly).
    Broken,
}

/// Steps 2 and 3: `send`, then read until `expect` matches. Any stream, so that the
/// fuzz targets can give it any reply, cut anywhere, without a socket.
pub(crate) async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    plan: &SendExpectPlan,
    start: Instant,
    deadline: Instant,
    timeout: Duration,
) -> (CheckResult, Ending) {
    if let Some(send) = &plan.send {
        match timeout_at(deadline, stream.write_all(send)).await {
            Err(_) => {
                let detail = format!("could not send the request within {}", Rounded(timeout));
                let result = CheckResult::failed(Outcome::Timeout, start.elapsed(), detail);
                return (result, Ending::OutOfTime);
            }
            Ok(Err(err)) => {
                let detail = format!("send: {err}");
                let outcome = Outcome::of_io_error(&err);
                return (
                    CheckResult::failed(outcome, start.elapsed(), detail),
                    Ending::Broken,
                );
            }
            Ok(Ok(())) => {}
        }
    }
    let Some(Pattern(expect)) = &plan.expect else {
        return (CheckResult::new(Outcome::Ok, start.elapsed()), Ending::Open);
    };
    let mut reply = Vec::with_capacity(READ_CHUNK);
    loop {
        let filled = reply.len();
        reply.resize(filled + (READ_CAP - filled).min(READ_CHUNK), 0);
        let read = timeout_at(deadline, stream.read(&mut reply[filled..])).await;
        let got = match &read {
            Ok(Ok(n)) => *n,
            _ => 0,
        };
        reply.truncate(filled + got);
        match read {
            Ok(Ok(0)) => {
                let why = "the peer closed the connection";
                return (no_match(&reply, why, start), Ending::PeerClosed);
            }
            Ok(Ok(_)) => {
                if expect.is_match(&reply) {
                    return (CheckResult::new(Outcome::Ok, start.elapsed()), Ending::Open);
                }
                if reply.len() >= READ_CAP {
                    let why = format!("no match in the first {READ_CAP} bytes");
                    return (no_match(&reply, &why, start), Ending::Open);
                }
            }
            Ok(Err(err)) => {
                let detail = format!("read, after {} bytes: {err}", reply.len());
                let outcome = Outcome::of_io_error(&err);
                return (
                    CheckResult::failed(outcome, start.elapsed(), detail),
                    Ending::Broken,
                );
            }
            Err(_) if reply.is_empty() => {
                let detail = format!("no reply within {}", Rounded(timeout));
                let result = CheckResult::failed(Outcome::Timeout, start.elapsed(), detail);
                return (result, Ending::OutOfTime);
            }
            Err(_) => {
                let why = format!("no match within {}", Rounded(timeout));
                return (no_match(&reply, &why, start), Ending::OutOfTime);
            }
        }
    }
}

/// A `mismatch`: why reading stopped, and the start of what was read, escaped.
fn no_match(reply: &[u8], why: &str, start: Instant) -> CheckResult {
    let detail = if reply.is_empty() {
        format!("{why} before sending anything")
    } else {
        let shown = &reply[..reply.len().min(SHOWN)];
        let more = if reply.len() > SHOWN { "..." } else { "" };
        format!(
            "{why}; no match in {} bytes: \"{}\"{more}",
            reply.len(),
            shown.escape_ascii()
        )
    };
    CheckResult {
        regex_failed: true,
        ..CheckResult::failed(Outcome::Mismatch, start.elapsed(), detail)
    }
}
