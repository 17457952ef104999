//! The send-expect matcher (`checks/send_expect.rs`: sending, then reading until `expect`
//! matches, through `connhealth_watch::fuzzing`) over any reply, cut into reads of any
//! size, ending any way: a FIN, silence until the timeout, or a reset. A peer in memory
//! stands in for the socket; tokio's clock is paused, so a timeout passes at once.
//!
//! Input: three bytes, then the regex up to the first newline (UTF-8, as a config would
//! write it), then the reply.
//! * byte 0: the most bytes one read returns (0: as many as asked for);
//! * byte 1: bits 0-1, the end of the reply: 0 FIN, 1 silence, 2 reset on read, 3 reset on
//!   write (the request cannot be sent); bit 2, send `PING\r\n` first; bit 3, no `expect`;
//! * byte 2: the reply is the rest repeated (byte 2 % 64) + 1 times, to reach the 64 KiB
//!   cap.
//!
//! The matcher runs the regex over the whole reply after every read (a regex cannot
//! resume a search), so n bytes in reads of c cost about n²/c bytes of matching. In the
//! daemon the check's timeout bounds that; here the paused clock bounds nothing, so the
//! harness makes reads larger where needed to keep n²/c under [`MATCH_BUDGET`].
//!
//! Properties, beyond not panicking:
//! * `ok` exactly when some prefix of the reply that a read ended at matches (every
//!   prefix: `$` can match one and not a longer one), within the first 64 KiB; and the
//!   conversation stops at the first such prefix;
//! * otherwise, after some bytes: `mismatch` with `regex_failed`, after none: `timeout`
//!   when silent, `mismatch` on a FIN; a reset is an error result, not `ok`;
//! * never more than `READ_CAP` bytes are read, and the request is sent whole, first.

#![no_main]

use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use connhealth_watch::checks::send_expect::READ_CAP;
use connhealth_watch::checks::Outcome;
use connhealth_watch::config::{Pattern, SendExpectPlan};
use connhealth_watch::fuzzing::{self, Ending};
use libfuzzer_sys::fuzz_target;
use regex::bytes::Regex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const TIMEOUT: Duration = Duration::from_secs(1);

/// The most bytes of matching one input may cost (see the module doc): under half a
/// second with the sanitizer, even for a regex whose prefilter fires every few bytes
/// (without it, `\0{11}P+` over a reply of NUL runs, 22 KB in 5-byte reads, took 10 s,
/// past libFuzzer's timeout).
const MATCH_BUDGET: usize = 1 << 22;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Fin,
    Silence,
    ResetOnRead,
    ResetOnWrite,
}

/// The server side: the reply in reads of at most `chunk` bytes, then `end`.
struct Peer {
    reply: Vec<u8>,
    read: usize,
    chunk: usize,
    end: End,
    /// Where each read ended, in bytes of the reply.
    cuts: Vec<usize>,
    received: Vec<u8>,
}

impl AsyncRead for Peer {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let peer = &mut *self;
        if peer.read < peer.reply.len() {
            let n = (peer.reply.len() - peer.read)
                .min(peer.chunk)
                .min(buf.remaining());
            buf.put_slice(&peer.reply[peer.read..peer.read + n]);
            peer.read += n;
            peer.cuts.push(peer.read);
            return Poll::Ready(Ok(()));
        }
        match peer.end {
            End::Fin | End::ResetOnWrite => Poll::Ready(Ok(())),
            // No waker kept: nothing will ever arrive, and the paused clock moves on to
            // the timeout.
            End::Silence => Poll::Pending,
            End::ResetOnRead => Poll::Ready(Err(io::ErrorKind::ConnectionReset.into())),
        }
    }
}

impl AsyncWrite for Peer {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.end == End::ResetOnWrite {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        assert_eq!(self.read, 0, "a write after reading began");
        self.received.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let [chunk, flags, repeat, rest @ ..] = data else {
        return;
    };
    let (pattern, reply) = match rest.iter().position(|&b| b == b'\n') {
        Some(newline) => (&rest[..newline], &rest[newline + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(pattern) = std::str::from_utf8(pattern) else {
        return;
    };
    // The config compiles `expect` with `Regex::new` too.
    let Ok(expect) = Regex::new(pattern) else {
        return;
    };
    let end = [End::Fin, End::Silence, End::ResetOnRead, End::ResetOnWrite][usize::from(flags & 3)];
    let send = (flags & 4 != 0).then(|| b"PING\r\n".to_vec());
    let expect = (flags & 8 == 0).then_some(expect);
    let plan = SendExpectPlan {
        send: send.clone(),
        expect: expect.clone().map(Pattern),
        quit: None,
    };
    let reply = reply.repeat(usize::from(repeat % 64) + 1);
    let chunk = if *chunk == 0 {
        usize::MAX
    } else {
        usize::from(*chunk)
    };
    let kept = reply.len().min(READ_CAP);
    let mut peer = Peer {
        reply,
        read: 0,
        chunk: chunk.max(kept * kept / MATCH_BUDGET),
        end,
        cuts: Vec::new(),
        received: Vec::new(),
    };
    let (result, ending) = runtime().block_on(fuzzing::send_expect(&mut peer, &plan, TIMEOUT));

    if end == End::ResetOnWrite && send.is_some() {
        assert_ne!(result.outcome, Outcome::Ok, "{result:?}");
        assert_eq!((peer.read, ending), (0, Ending::Broken), "{result:?}");
        return;
    }
    assert_eq!(peer.received, send.clone().unwrap_or_default());
    let Some(expect) = expect else {
        assert_eq!(
            (result.outcome, ending, peer.read),
            (Outcome::Ok, Ending::Open, 0)
        );
        return;
    };
    assert!(peer.read <= READ_CAP, "read {} bytes", peer.read);
    let first_match = peer
        .cuts
        .iter()
        .position(|&cut| expect.is_match(&peer.reply[..cut]));
    match first_match {
        Some(at) => {
            assert_eq!(result.outcome, Outcome::Ok, "{result:?}");
            assert_eq!(ending, Ending::Open);
            assert_eq!(at + 1, peer.cuts.len(), "read on after a match");
        }
        None => {
            assert_ne!(
                result.outcome,
                Outcome::Ok,
                "ok without a match: {result:?}"
            );
            let read = peer.read;
            // Bytes that have arrived are read before any timeout: all of them, up to the cap.
            assert_eq!(
                read,
                peer.reply.len().min(READ_CAP),
                "stopped early: {result:?}"
            );
            match (end, read) {
                _ if read >= READ_CAP => {
                    assert_eq!((result.outcome, ending), (Outcome::Mismatch, Ending::Open));
                    assert!(result.regex_failed);
                }
                (End::ResetOnRead, _) => assert_eq!(ending, Ending::Broken, "{result:?}"),
                (End::Silence, 0) => {
                    assert_eq!(
                        (result.outcome, ending),
                        (Outcome::Timeout, Ending::OutOfTime)
                    )
                }
                (End::Silence, _) => {
                    assert_eq!(
                        (result.outcome, ending),
                        (Outcome::Mismatch, Ending::OutOfTime)
                    );
                    assert!(result.regex_failed);
                }
                (End::Fin | End::ResetOnWrite, _) => {
                    assert_eq!(
                        (result.outcome, ending),
                        (Outcome::Mismatch, Ending::PeerClosed)
                    );
                    assert!(result.regex_failed);
                }
            }
        }
    }
});
