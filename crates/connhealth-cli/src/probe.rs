//! `connhealth probe TARGET... [--file PATH]`: is something listening there? Half-open TCP
//! probes, all targets at once, through one [`ProbeFeed`](connhealth::probe::ProbeFeed).
//!
//! Each probe's timeout runs from its own SYN: a target given after thousands of others
//! waits for a place under the prober's in-flight limit without spending its timeout (a
//! checker whose queue is long must not report live targets down). Names are resolved
//! first, a bounded number at once, each within the timeout; their addresses are then
//! probed in order until one answers, as `Prober::probe` does.
//!
//! On Windows a half-open probe completes the handshake and resets it at once, as a
//! connect probe does (Windows has no `TCP_QUICKACK`): the target's kernel sees a
//! connection, reset, and an application that accepts quickly may too.
//!
//! Exit status: 0 when every target is up, 1 when any is down (or could not be probed),
//! 2 on bad usage (including a target that is not `host:port`, on the command line or in a
//! file).

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use clap::{Args as ClapArgs, ValueEnum};
use connhealth::probe::{FeedResult, Target};
use connhealth::{Mode, ProbeError, Prober};
use tokio::sync::{mpsc, Semaphore};

/// At most this many names are resolved at once: each `getaddrinfo` holds a thread, and
/// cannot be cancelled.
const RESOLVING_AT_ONCE: usize = 64;

const EXAMPLES: &str = "\
Examples:
  connhealth probe localhost:6379 127.0.0.1:80 '[::1]:443'
  connhealth probe --file targets.txt              # one host:port per line
  cut -d' ' -f1 hosts | connhealth probe --file -  # the targets from stdin
  connhealth probe --json --timeout 500ms --file targets.txt db.internal:5432

A file of targets ('#' starts a comment):
  # cache
  10.0.0.7:6379
  web.internal:443    # a name: its addresses are tried until one answers
  [2001:db8::1]:22";

/// Probe TCP endpoints: SYN, SYN-ACK, RST. The servers never see a connection.
#[derive(Debug, ClapArgs)]
#[command(after_help = EXAMPLES)]
pub(crate) struct Args {
    // The help is an attribute, not a doc comment: rustdoc would read `[::1]` as a link.
    #[arg(
        required_unless_present = "files",
        value_name = "TARGET",
        help = "Targets as host:port, e.g. localhost:6379, 127.0.0.1:80 or [::1]:443"
    )]
    targets: Vec<String>,
    /// Read targets from PATH ('-' for stdin), one per line; blank lines and '#' comments
    /// are skipped. May be repeated, and combined with TARGETs (which come first).
    #[arg(long = "file", value_name = "PATH")]
    files: Vec<String>,
    /// half-open: the handshake is never completed (Linux; with CAP_NET_RAW, as root has
    /// it, no socket per probe: SYNs from one raw socket); connect: completed, then reset
    /// (for servers behind SYN proxies); raw: half-open on raw sockets only, an error
    /// without CAP_NET_RAW (Linux).
    #[cfg_attr(
        windows,
        doc = "On Windows half-open completes the handshake and resets it at once, as connect \
               does (Windows has no TCP_QUICKACK)."
    )]
    #[arg(long, value_enum, default_value_t = ModeArg::HalfOpen)]
    mode: ModeArg,
    /// How long each probe waits for the SYN-ACK, from its own SYN (a wait for a place in
    /// flight does not count); a name's resolution gets as long again: 500ms, 2s, 1.5 (seconds).
    #[cfg_attr(
        windows,
        doc = "Windows retries a refused SYN for about a second: give 2s or more to see a \
               closed port as refused rather than timed out."
    )]
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    timeout: Duration,
    /// Print one JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    HalfOpen,
    Connect,
    Raw,
}

/// A humantime duration (`500ms`, `2s`, `1m30s`), or a plain number of seconds (`1.5`),
/// which humantime does not take but a shell user types.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).map_err(|_| {
            format!("{text:?} is not a number of seconds from 0 to years; write e.g. 1.5 or 500ms")
        });
    }
    humantime::parse_duration(text)
        .map_err(|err| format!("{text:?} is not a duration ({err}); write e.g. 500ms, 2s or 1.5"))
}

fn kind(err: &ProbeError) -> &'static str {
    match err {
        ProbeError::Refused => "refused",
        ProbeError::TimedOut => "timed out",
        ProbeError::Unreachable(_) => "unreachable",
        ProbeError::Resolve(_) => "resolve",
        ProbeError::Exhausted(_) => "exhausted",
        ProbeError::InvalidTarget { .. } => "invalid target",
        _ => "error",
    }
}

/// A target as the user gave it.
struct Given {
    /// As written (trimmed, without its comment, for a line of a file).
    text: String,
    /// `PATH:LINE` for a line of a file, named in the message if the line is invalid.
    place: Option<String>,
}

/// The TARGET arguments, then each file's lines, in order.
fn gather(args: &Args) -> Result<Vec<Given>, String> {
    let mut given: Vec<Given> = args
        .targets
        .iter()
        .map(|text| Given {
            text: text.clone(),
            place: None,
        })
        .collect();
    for path in &args.files {
        let (name, contents) = if path == "-" {
            let mut contents = String::new();
            io::stdin()
                .read_to_string(&mut contents)
                .map_err(|err| format!("cannot read targets from stdin: {err}"))?;
            ("<stdin>", contents)
        } else {
            let contents = std::fs::read_to_string(path)
                .map_err(|err| format!("cannot read targets from {path}: {err}"))?;
            (path.as_str(), contents)
        };
        for (number, line) in contents.lines().enumerate() {
            // No host name or address holds a '#'.
            let text = line.split('#').next().unwrap_or_default().trim();
            if !text.is_empty() {
                given.push(Given {
                    text: text.to_owned(),
                    place: Some(format!("{name}:{}", number + 1)),
                });
            }
        }
    }
    Ok(given)
}

/// Exits with clap's usage error (status 2), as for a missing argument.
fn usage_error(message: &str) -> ! {
    let mut command = <crate::Cli as clap::CommandFactory>::command();
    command.build();
    let probe = command
        .find_subcommand_mut("probe")
        .expect("connhealth has a probe subcommand");
    probe
        .error(clap::error::ErrorKind::MissingRequiredArgument, message)
        .exit()
}

pub(crate) fn run(args: Args) -> ExitCode {
    let given = match gather(&args) {
        Ok(given) => given,
        Err(why) => {
            eprintln!("connhealth probe: {why}");
            return ExitCode::from(2);
        }
    };
    if given.is_empty() {
        usage_error(
            "no targets: give at least one TARGET, or a --file with one host:port per line",
        );
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("connhealth probe: cannot start a runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mode = match args.mode {
        ModeArg::HalfOpen => Mode::HalfOpen,
        ModeArg::Connect => Mode::Connect,
        ModeArg::Raw => Mode::Raw,
    };
    let prober = Prober::builder().mode(mode).build();
    if prober.engine().is_none() {
        // Every probe would fail with the same reason: say it once.
        let why = runtime
            .block_on(prober.probe_addr(([127, 0, 0, 1], 9).into(), Duration::ZERO))
            .err()
            .map_or_else(
                || "the probe engine did not start".to_owned(),
                |err| err.to_string(),
            );
        eprintln!("connhealth probe: {why}");
        return ExitCode::from(2);
    }
    let parsed = given.iter().map(|g| Target::parse(&g.text)).collect();
    let results = runtime.block_on(probe_all(&prober, parsed, args.timeout));
    // A resolver that hangs holds a blocking thread past its timeout: do not wait for it.
    runtime.shutdown_background();
    report(&given, &results, args.json)
}

/// A name's addresses not yet tried, and the first refusal among those tried.
struct NameProbe {
    rest: VecDeque<SocketAddr>,
    first_refusal: Option<ProbeError>,
}

/// Probes every target through one feed; the results in the targets' order.
async fn probe_all(
    prober: &Prober,
    parsed: Vec<Result<Target, ProbeError>>,
    timeout: Duration,
) -> Vec<Result<Duration, ProbeError>> {
    let mut results: Vec<Option<Result<Duration, ProbeError>>> =
        parsed.iter().map(|_| None).collect();
    let mut feed = prober.feed();
    let (resolved_tx, mut resolved_rx) = mpsc::unbounded_channel();
    let resolvers = Arc::new(Semaphore::new(RESOLVING_AT_ONCE));
    let mut resolving = 0usize;
    for (index, target) in parsed.into_iter().enumerate() {
        match target {
            Ok(Target::Addr(addr)) => feed.push(index as u64, addr, timeout, None),
            Ok(Target::Name { host, port }) => {
                resolving += 1;
                let (resolvers, resolved_tx) = (resolvers.clone(), resolved_tx.clone());
                tokio::spawn(async move {
                    let resolved = resolve(&resolvers, &host, port, timeout).await;
                    let _ = resolved_tx.send((index, resolved));
                });
            }
            Ok(other) => {
                results[index] = Some(Err(ProbeError::Io(io::Error::other(format!(
                    "a kind of target this program cannot probe: {other:?}"
                )))))
            }
            Err(err) => results[index] = Some(Err(err)),
        }
    }
    feed.flush();

    let mut names: HashMap<usize, NameProbe> = HashMap::new();
    let mut done: Vec<FeedResult> = Vec::new();
    while feed.outstanding() > 0 || resolving > 0 {
        let resolved = poll_fn(|cx| {
            if feed.poll_done(cx, &mut done).is_ready() {
                return Poll::Ready(None);
            }
            match resolved_rx.poll_recv(cx) {
                Poll::Ready(Some(resolved)) => Poll::Ready(Some(resolved)),
                // (None: every name is resolved; the feed's waker is registered.)
                Poll::Ready(None) | Poll::Pending => Poll::Pending,
            }
        })
        .await;
        if let Some((index, resolved)) = resolved {
            resolving -= 1;
            match resolved {
                Ok(mut addrs) => {
                    let first = addrs.pop_front().expect("resolve returns an address");
                    feed.push(index as u64, first, timeout, None);
                    names.insert(
                        index,
                        NameProbe {
                            rest: addrs,
                            first_refusal: None,
                        },
                    );
                }
                Err(err) => results[index] = Some(Err(err)),
            }
        }
        for finished in done.drain(..) {
            let index = finished.tag as usize;
            let Some(name) = names.get_mut(&index) else {
                results[index] = Some(finished.result);
                continue;
            };
            let result = match finished.result {
                // Another address of the same name may answer ("localhost" is often ::1
                // first, with the server on 127.0.0.1 only).
                Err(err @ (ProbeError::Refused | ProbeError::Unreachable(_))) => {
                    name.first_refusal.get_or_insert(err);
                    if let Some(next) = name.rest.pop_front() {
                        feed.push(finished.tag, next, timeout, None);
                        continue;
                    }
                    Err(name.first_refusal.take().expect("a refusal was kept"))
                }
                // An answer, a timeout, or a local error: the next address would say no
                // more.
                other => other,
            };
            names.remove(&index);
            results[index] = Some(result);
        }
        feed.flush();
    }
    results
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|| {
                Err(ProbeError::Io(io::Error::other(
                    "the probe was lost (a bug in connhealth probe)",
                )))
            })
        })
        .collect()
}

/// Resolves `host`, with at most [`RESOLVING_AT_ONCE`] names at a time; the timeout
/// counts from the start of this name's own lookup, not from its wait for a turn.
async fn resolve(
    resolvers: &Semaphore,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<VecDeque<SocketAddr>, ProbeError> {
    let _turn = resolvers.acquire().await;
    match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addrs)) => {
            let addrs: VecDeque<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(ProbeError::Resolve(io::Error::new(
                    io::ErrorKind::NotFound,
                    "the name resolved to no address",
                )))
            } else {
                Ok(addrs)
            }
        }
        Ok(Err(err)) => Err(ProbeError::Resolve(err)),
        Err(_) => Err(ProbeError::Resolve(io::Error::new(
            io::ErrorKind::TimedOut,
            "name resolution did not finish before the timeout",
        ))),
    }
}

/// The detail of an error: an invalid line of a file says where it is.
fn detail(given: &Given, err: &ProbeError) -> String {
    match (&given.place, err) {
        (Some(place), ProbeError::InvalidTarget { .. }) => format!("{place}: {err}"),
        _ => err.to_string(),
    }
}

/// Prints the table or the JSON, and returns the exit status.
fn report(given: &[Given], results: &[Result<Duration, ProbeError>], json: bool) -> ExitCode {
    let bad_usage = results
        .iter()
        .any(|r| matches!(r, Err(ProbeError::InvalidTarget { .. })));
    if json {
        let rows: Vec<_> = given
            .iter()
            .zip(results)
            .map(|(given, result)| match result {
                Ok(rtt) => serde_json::json!({
                    "target": given.text, "up": true, "rtt_ms": rtt.as_secs_f64() * 1e3,
                }),
                Err(err) => serde_json::json!({
                    "target": given.text, "up": false, "error": kind(err),
                    "detail": detail(given, err),
                }),
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        let width = given.iter().map(|g| g.text.len()).max().unwrap_or(6).max(6);
        println!(
            "{:<width$}  {:<5}  {:>10}  DETAIL",
            "TARGET", "STATE", "SYN-ACK"
        );
        for (given, result) in given.iter().zip(results) {
            let target = &given.text;
            match result {
                Ok(rtt) => println!(
                    "{target:<width$}  {:<5}  {:>7.3} ms",
                    "up",
                    rtt.as_secs_f64() * 1e3
                ),
                Err(err) => println!(
                    "{target:<width$}  {:<5}  {:>10}  {}",
                    "down",
                    "-",
                    detail(given, err)
                ),
            }
        }
    }
    if bad_usage {
        ExitCode::from(2)
    } else if results.iter().all(|r| r.is_ok()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration(" 250ms "), Ok(Duration::from_millis(250)));
        assert!(parse_duration("3 parsecs").is_err());
        assert!(parse_duration("NaN").is_err());
    }
}
