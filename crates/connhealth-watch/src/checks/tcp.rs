//! blackbox_exporter's `tcp` prober, for the modules of a `blackbox_config` file (and the
//! built-in `tcp_connect`), with its semantics:
//!
//! 1. a connection to the one address chosen (see [`IpChoice`](crate::config::IpChoice));
//!    with `tls: true`, a TLS handshake at once, verified as `tls_config` says, for its
//!    `server_name`, else the target's host;
//! 2. each `query_response` step in turn:
//!    - `expect`: lines are read (split at `\n`, a `\r` before it dropped, the last line
//!      ended by the peer's FIN) until one matches. The regex sees one line at a time, so
//!      `^` and `$` anchor at the line's ends, as blackbox's `bufio.Scanner` reads them.
//!      The peer closing first fails the check with `probe_failed_due_to_regex` 1; a
//!      timeout or a read error fails it without;
//!    - `send`: its `${1}`, `${name}` and `$1` expanded from that match, then written
//!      with a `\n` after it;
//!    - `starttls`: a TLS handshake on the same connection;
//! 3. a FIN, and the rest of the close in the background: the answer does not wait for
//!    it, and the peer sees an orderly close, not a reset.
//!
//! A module that sends nothing and reads nothing, without TLS, is one connect through the
//! connect prober: the handshake, then an RST, so no TIME_WAIT is left behind.

use std::net::SocketAddr;
use std::time::Duration;

use connhealth::Prober;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tokio_rustls::client::TlsStream;

use super::close::close_gracefully;
use super::tls::TlsClient;
use super::{CheckResult, Outcome};
use crate::config::{Pattern, QueryStep, TcpPlan};
use crate::human::Rounded;

/// The longest line read, as Go's `bufio.MaxScanTokenSize`: a longer one fails the check.
pub const MAX_LINE: usize = 64 * 1024;

/// How much of a line a failure's detail shows.
const SHOWN: usize = 80;

/// Checks `addr` as `plan` says within `timeout`; `host` is the target's host as written
/// (the TLS server name unless `tls_config` names one).
pub async fn check(
    addr: SocketAddr,
    host: &str,
    plan: &TcpPlan,
    connect: &Prober,
    timeout: Duration,
) -> CheckResult {
    if !plan.tls && plan.query_response.is_empty() {
        return CheckResult::of_probe(&connect.probe_addr(addr, timeout).await);
    }
    let start = Instant::now();
    let deadline = start + timeout;
    let tcp = match timeout_at(deadline, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(err)) => {
            let detail = format!("connect: {err}");
            return CheckResult::failed(Outcome::of_io_error(&err), start.elapsed(), detail);
        }
        Err(_) => {
            let detail = format!("no connection within {}", Rounded(timeout));
            return CheckResult::failed(Outcome::Timeout, start.elapsed(), detail);
        }
    };
    let _ = tcp.set_nodelay(true);
    let mut talk = Talk {
        stream: Stream::Plain(tcp),
        lines: Lines::default(),
        result: CheckResult::new(Outcome::Ok, Duration::ZERO),
        host,
        plan,
        start,
        deadline,
        timeout,
    };
    let finished = talk.run().await;
    let Talk {
        stream, mut result, ..
    } = talk;
    if let Err(failed) = finished {
        let CheckResult {
            cert_expiry,
            tls_version,
            chain,
            regex_failed,
            ..
        } = result;
        result = CheckResult {
            cert_expiry: failed.cert_expiry.or(cert_expiry),
            tls_version: failed.tls_version.or(tls_version),
            chain: failed.chain.or(chain),
            regex_failed: failed.regex_failed || regex_failed,
            ..failed
        };
    } else {
        result.duration = start.elapsed();
    }
    // The answer goes now; the close finishes on its own within the deadline.
    tokio::spawn(stream.close(deadline));
    result
}

/// The connection, plain or upgraded.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Taken for an upgrade that failed: nothing is left to close.
    Gone,
}

impl Stream {
    /// close_notify (over TLS), a FIN, then the peer's bytes read until its FIN.
    async fn close(self, deadline: Instant) {
        let mut tcp = match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(mut tls) => {
                let _ = timeout_at(deadline, tls.shutdown()).await;
                tls.into_inner().0
            }
            Stream::Gone => return,
        };
        close_gracefully(&mut tcp, deadline).await;
    }
}

/// One conversation.
struct Talk<'a> {
    stream: Stream,
    lines: Lines,
    /// What is known so far: the TLS facts of the last handshake, the regex flag.
    result: CheckResult,
    host: &'a str,
    plan: &'a TcpPlan,
    start: Instant,
    deadline: Instant,
    timeout: Duration,
}

impl Talk<'_> {
    async fn run(&mut self) -> Result<(), CheckResult> {
        if self.plan.tls {
            self.upgrade().await?;
        }
        for step in &self.plan.query_response {
            self.step(step).await?;
        }
        Ok(())
    }

    async fn step(&mut self, step: &QueryStep) -> Result<(), CheckResult> {
        let mut send = step.send.as_bytes().to_vec();
        if let Some(Pattern(expect)) = &step.expect {
            let line = self.matching_line(expect).await?;
            self.result.regex_failed = false;
            if let Some(found) = expect.captures(&line) {
                let mut expanded = Vec::with_capacity(send.len());
                found.expand(step.send.as_bytes(), &mut expanded);
                send = expanded;
            }
        }
        if !send.is_empty() {
            send.push(b'\n');
            self.write(&send).await?;
        }
        if step.starttls {
            self.upgrade().await?;
        }
        Ok(())
    }

    /// Reads lines until one matches `expect`.
    async fn matching_line(
        &mut self,
        expect: &regex::bytes::Regex,
    ) -> Result<Vec<u8>, CheckResult> {
        let mut last: Option<Vec<u8>> = None;
        loop {
            let read = match &mut self.stream {
                Stream::Plain(tcp) => self.lines.next(tcp, self.deadline).await,
                Stream::Tls(tls) => self.lines.next(tls.as_mut(), self.deadline).await,
                Stream::Gone => Err(LineError::Io(std::io::ErrorKind::NotConnected.into())),
            };
            match read {
                Ok(Some(line)) if expect.is_match(&line) => return Ok(line),
                Ok(Some(line)) => last = Some(line),
                Ok(None) => {
                    let why = match &last {
                        None => "the peer closed the connection before a line".to_string(),
                        Some(line) => format!(
                            "the peer closed the connection; the last line, \"{}\"{}, did not match",
                            line[..line.len().min(SHOWN)].escape_ascii(),
                            if line.len() > SHOWN { "..." } else { "" }
                        ),
                    };
                    let detail = format!("{why} (expect {:?})", expect.as_str());
                    return Err(CheckResult {
                        regex_failed: true,
                        ..self.failed(Outcome::Mismatch, detail)
                    });
                }
                Err(LineError::Timeout) => {
                    let detail = match last {
                        None => format!("no line within {}", Rounded(self.timeout)),
                        Some(_) => format!(
                            "no line matching {:?} within {}",
                            expect.as_str(),
                            Rounded(self.timeout)
                        ),
                    };
                    return Err(self.failed(Outcome::Timeout, detail));
                }
                Err(LineError::TooLong) => {
                    let detail = format!("a line longer than {MAX_LINE} bytes");
                    return Err(self.failed(Outcome::Error, detail));
                }
                Err(LineError::Io(err)) => {
                    let detail = format!("read: {err}");
                    return Err(self.failed(Outcome::of_io_error(&err), detail));
                }
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), CheckResult> {
        let written = match &mut self.stream {
            Stream::Plain(tcp) => timeout_at(self.deadline, tcp.write_all(bytes)).await,
            Stream::Tls(tls) => {
                timeout_at(self.deadline, async {
                    tls.write_all(bytes).await?;
                    tls.flush().await
                })
                .await
            }
            Stream::Gone => Ok(Err(std::io::ErrorKind::NotConnected.into())),
        };
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => {
                let detail = format!("send: {err}");
                Err(self.failed(Outcome::of_io_error(&err), detail))
            }
            Err(_) => {
                let detail = format!("could not send within {}", Rounded(self.timeout));
                Err(self.failed(Outcome::Timeout, detail))
            }
        }
    }

    /// A TLS handshake over the plain connection (`tls: true`, or a `starttls` step). The
    /// lines read before it are dropped, as blackbox starts a new scanner.
    async fn upgrade(&mut self) -> Result<(), CheckResult> {
        let client = TlsClient::new(
            &self.plan.tls_config,
            self.host,
            self.deadline,
            self.timeout,
        )
        .await?;
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            let detail = "starttls on a connection that is already TLS";
            return Err(self.failed(Outcome::Error, detail.to_string()));
        };
        let handshake = timeout_at(self.deadline, client.handshake(tcp, self.start)).await;
        self.result.cert_expiry = client.cert_expiry().or(self.result.cert_expiry);
        match handshake {
            Ok(Ok(tls)) => {
                let verified = client.verified(tls.get_ref().1);
                self.result.tls_version = verified.version();
                self.result.chain = client.chain_info().map(Box::new);
                self.stream = Stream::Tls(Box::new(tls));
                self.lines = Lines::default();
                Ok(())
            }
            Ok(Err(failed)) => Err(failed),
            Err(_) => {
                let detail = format!("no TLS handshake within {}", Rounded(self.timeout));
                Err(self.failed(Outcome::Timeout, detail))
            }
        }
    }

    fn failed(&self, outcome: Outcome, detail: String) -> CheckResult {
        CheckResult::failed(outcome, self.start.elapsed(), detail)
    }
}

/// Why no line came.
#[derive(Debug)]
enum LineError {
    Timeout,
    TooLong,
    Io(std::io::Error),
}

/// Lines read from a stream, as Go's `bufio.Scanner` with `ScanLines` splits them.
#[derive(Debug, Default)]
struct Lines {
    buf: Vec<u8>,
    /// Where the next line starts in `buf`.
    at: usize,
    eof: bool,
}

impl Lines {
    /// The next line, without its `\n` and a `\r` before it; at the peer's FIN, what is
    /// left as the last line, then `None`.
    async fn next<S: AsyncRead + AsyncWrite + Unpin + ?Sized>(
        &mut self,
        stream: &mut S,
        deadline: Instant,
    ) -> Result<Option<Vec<u8>>, LineError> {
        loop {
            if let Some(end) = self.buf[self.at..].iter().position(|&b| b == b'\n') {
                let line = &self.buf[self.at..self.at + end];
                let line = line.strip_suffix(b"\r").unwrap_or(line).to_vec();
                self.at += end + 1;
                return Ok(Some(line));
            }
            if self.eof {
                if self.at < self.buf.len() {
                    let line = &self.buf[self.at..];
                    let line = line.strip_suffix(b"\r").unwrap_or(line).to_vec();
                    self.at = self.buf.len();
                    return Ok(Some(line));
                }
                return Ok(None);
            }
            if self.buf.len() - self.at >= MAX_LINE {
                return Err(LineError::TooLong);
            }
            self.buf.drain(..self.at);
            self.at = 0;
            let filled = self.buf.len();
            self.buf.resize(filled + 4096, 0);
            let read = timeout_at(deadline, stream.read(&mut self.buf[filled..])).await;
            let got = match &read {
                Ok(Ok(n)) => *n,
                _ => 0,
            };
            self.buf.truncate(filled + got);
            match read {
                Ok(Ok(0)) => self.eof = true,
                Ok(Ok(_)) => {}
                Ok(Err(err)) => return Err(LineError::Io(err)),
                Err(_) => return Err(LineError::Timeout),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines_of(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let (mut ours, mut theirs) = tokio::io::duplex(1 << 16);
        let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        tokio::spawn(async move {
            for chunk in chunks {
                theirs.write_all(&chunk).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let mut lines = Lines::default();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut out = Vec::new();
        while let Some(line) = lines.next(&mut ours, deadline).await.unwrap() {
            out.push(line);
        }
        out
    }

    #[tokio::test]
    async fn lines_split_as_go_scanner_splits_them() {
        let got = lines_of(&[b"220 mail ESMTP\r\n250-a", b"\r\n250 b\nlast"]).await;
        let want: Vec<&[u8]> = vec![b"220 mail ESMTP", b"250-a", b"250 b", b"last"];
        assert_eq!(got, want);
        assert_eq!(
            lines_of(&[b"\n\r\n"]).await,
            vec![b"".to_vec(), b"".to_vec()]
        );
        assert!(lines_of(&[]).await.is_empty());
    }

    #[tokio::test]
    async fn a_line_past_the_limit_is_an_error() {
        let (mut ours, mut theirs) = tokio::io::duplex(1 << 20);
        tokio::spawn(async move { theirs.write_all(&vec![b'x'; MAX_LINE + 10]).await });
        let deadline = Instant::now() + Duration::from_secs(5);
        let got = Lines::default().next(&mut ours, deadline).await;
        assert!(matches!(got, Err(LineError::TooLong)), "{got:?}");
    }
}
