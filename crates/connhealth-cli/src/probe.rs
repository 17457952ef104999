//! `connhealth probe TARGET...`: is something listening there? Half-open TCP probes, all
//! targets at once.
//!
//! Exit status: 0 when every target is up, 1 when any is down (or could not be probed),
//! 2 on bad usage (including a target that is not `host:port`).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args as ClapArgs, ValueEnum};
use connhealth::{Mode, ProbeError, Prober};

/// Probe TCP endpoints: SYN, SYN-ACK, RST. The servers never see a connection.
#[derive(Debug, ClapArgs)]
pub(crate) struct Args {
    // The help is an attribute, not a doc comment: rustdoc would read `[::1]` as a link.
    #[arg(
        required = true,
        value_name = "TARGET",
        help = "Targets as host:port, e.g. localhost:6379, 127.0.0.1:80 or [::1]:443"
    )]
    targets: Vec<String>,
    /// half-open: the handshake is never completed (Linux); connect: completed, then reset
    /// (for servers behind SYN proxies).
    #[arg(long, value_enum, default_value_t = ModeArg::HalfOpen)]
    mode: ModeArg,
    /// How long to wait for each target, name resolution included: 500ms, 2s, 1.5 (seconds).
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
}

/// `500ms`, `2s`, `1m`, or a plain number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; write e.g. 500ms, 2s or 1.5"))?;
    let seconds = match unit {
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("unknown unit {unit:?} in {text:?}; use ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("{text:?} is not a duration from 0 to years; write e.g. 500ms"))
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

pub(crate) fn run(args: Args) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("connhealth probe: cannot start a runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mode = match args.mode {
        ModeArg::HalfOpen => Mode::HalfOpen,
        ModeArg::Connect => Mode::Connect,
    };
    let prober = Prober::builder().mode(mode).build();
    let timeout = args.timeout;
    let results: Vec<(String, Result<Duration, ProbeError>)> = runtime.block_on(async {
        let tasks: Vec<_> = args
            .targets
            .iter()
            .map(|target| {
                let (prober, target) = (prober.clone(), target.clone());
                tokio::spawn(async move { prober.probe(&target, timeout).await })
            })
            .collect();
        let mut results = Vec::with_capacity(tasks.len());
        for (target, task) in args.targets.iter().zip(tasks) {
            let result = task.await.unwrap_or_else(|err| {
                Err(ProbeError::Io(std::io::Error::other(format!(
                    "probe task failed: {err}"
                ))))
            });
            results.push((target.clone(), result));
        }
        results
    });

    let bad_usage = results
        .iter()
        .any(|(_, r)| matches!(r, Err(ProbeError::InvalidTarget { .. })));
    if args.json {
        let rows: Vec<_> = results
            .iter()
            .map(|(target, result)| match result {
                Ok(rtt) => serde_json::json!({
                    "target": target, "up": true, "rtt_ms": rtt.as_secs_f64() * 1e3,
                }),
                Err(err) => serde_json::json!({
                    "target": target, "up": false, "error": kind(err), "detail": err.to_string(),
                }),
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        let width = results
            .iter()
            .map(|(t, _)| t.len())
            .max()
            .unwrap_or(6)
            .max(6);
        println!(
            "{:<width$}  {:<5}  {:>10}  DETAIL",
            "TARGET", "STATE", "SYN-ACK"
        );
        for (target, result) in &results {
            match result {
                Ok(rtt) => println!(
                    "{target:<width$}  {:<5}  {:>7.3} ms",
                    "up",
                    rtt.as_secs_f64() * 1e3
                ),
                Err(err) => println!("{target:<width$}  {:<5}  {:>10}  {err}", "down", "-"),
            }
        }
    }
    if bad_usage {
        ExitCode::from(2)
    } else if results.iter().all(|(_, r)| r.is_ok()) {
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
        assert!(parse_duration("3h").is_err());
    }
}
