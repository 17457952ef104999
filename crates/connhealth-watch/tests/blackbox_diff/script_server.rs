//! A line-protocol server (SMTP, IRC, POP3 and the like) that plays a script on every
//! connection, for the tcp prober's `query_response`.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::rustls::ServerConfig;

use super::listener::{Listeners, Stream};

/// One step of a script.
#[derive(Clone, Debug)]
pub enum Step {
    /// Writes these bytes.
    Send(&'static str),
    /// Writes the first part, waits 100 ms, writes the second: one reply in two segments.
    SendSplit(&'static str, &'static str),
    /// Reads one line and drops it.
    Line,
    /// Reads one line: writes `ok` when it is `want` (without its line end), else `bad`
    /// and closes. The server checks what the prober sent.
    Check {
        want: &'static str,
        ok: &'static str,
        bad: &'static str,
    },
    /// Says nothing for this long.
    Sleep(Duration),
    /// Does a TLS handshake as the server (at once for a TLS service, later for
    /// STARTTLS).
    Tls,
    /// Reads until the prober closes. A script that does not end with it closes at once.
    WaitClose,
}

/// Serves `script` on 127.0.0.1 at a free port; `tls` for its [`Step::Tls`].
pub fn on_ipv4(script: Vec<Step>, tls: Option<Arc<ServerConfig>>) -> Listeners {
    Listeners::ipv4(player(script, tls))
}

/// Serves `script` on 127.0.0.1 and ::1 at the same free port.
pub fn on_both(script: Vec<Step>) -> Listeners {
    Listeners::dual(player(script, None))
}

fn player(script: Vec<Step>, tls: Option<Arc<ServerConfig>>) -> super::listener::Serve {
    Arc::new(move |stream| play(stream, &script, tls.as_ref()))
}

fn play(mut stream: Stream, script: &[Step], tls: Option<&Arc<ServerConfig>>) {
    for step in script {
        let done = match step {
            Step::Send(text) => stream.write_all(text.as_bytes()).is_ok(),
            Step::SendSplit(first, second) => {
                let first = stream
                    .write_all(first.as_bytes())
                    .and_then(|_| stream.flush());
                std::thread::sleep(Duration::from_millis(100));
                first.is_ok() && stream.write_all(second.as_bytes()).is_ok()
            }
            Step::Line => matches!(stream.read_line(), Ok(line) if !line.is_empty()),
            Step::Check { want, ok, bad } => match stream.read_line() {
                Ok(line) if !line.is_empty() => {
                    let line = String::from_utf8_lossy(&line);
                    if line.trim_end_matches(['\r', '\n']) == *want {
                        stream.write_all(ok.as_bytes()).is_ok()
                    } else {
                        let _ = stream.write_all(bad.as_bytes());
                        stream.close();
                        return;
                    }
                }
                _ => false,
            },
            Step::Sleep(pause) => {
                std::thread::sleep(*pause);
                true
            }
            Step::Tls => {
                let config = tls.expect("a script with a Tls step is served with a certificate");
                match stream.into_tls(config) {
                    Ok(tls) => {
                        stream = tls;
                        true
                    }
                    Err(_) => return,
                }
            }
            Step::WaitClose => {
                stream.wait_close();
                true
            }
        };
        if !done {
            return;
        }
    }
    stream.close();
}
