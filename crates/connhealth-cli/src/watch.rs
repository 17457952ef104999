//! `connhealth watch`: the health-check daemon. A thin wrapper: the daemon is the
//! `connhealth-watch` crate.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args as ClapArgs, ValueEnum};
use connhealth_watch::shard::Shard;
use connhealth_watch::{LogFormat, Options};

/// Watch a fleet of TCP endpoints: half-open checks the servers never see, held
/// connections that notice a crash in milliseconds, Prometheus metrics and a
/// blackbox_exporter-compatible /probe.
#[derive(Debug, ClapArgs)]
#[command(after_long_help = EXAMPLES)]
pub(crate) struct Args {
    /// The TOML config: [defaults], [[targets]], [modules.NAME], [[file_sd]], and
    /// blackbox_config = "blackbox.yml" to serve a blackbox_exporter module file's tcp and
    /// http modules on /probe.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Where HTTP listens, HOST:PORT: / (the status page), /metrics, /probe, /status,
    /// /events, /api/targets, /api/history, /api/silence, /badge/NAME.svg, /-/reload,
    /// /-/healthy, /-/ready. HOST is an address ([::1] for IPv6, 0.0.0.0 for every IPv4 interface)
    /// or a name, bound at the first of its addresses that can be (localhost:9717).
    #[arg(
        long,
        value_name = "HOST:PORT",
        default_value = connhealth_watch::config::DEFAULT_LISTEN,
        value_parser = listen_address
    )]
    listen: String,
    /// Validate the config and exit: 0 and a one-line summary, or 2 and every error as
    /// FILE:LINE:COLUMN: message.
    #[arg(long)]
    check_config: bool,
    /// Watch only shard K of N (1 <= K <= N), by rendezvous hash of the target's name:
    /// N instances with 1/N .. N/N watch every target once between them.
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    /// How log lines (one per state change) look on stderr.
    #[arg(long, value_enum, default_value_t = LogFormatArg::Text)]
    log_format: LogFormatArg,
    /// The most half-open (and, apart, connect) probes in flight at once. By default a
    /// quarter of the descriptor limit, which the daemon raises to its hard limit, between
    /// 64 and 4096. Further checks wait for a place; their timeouts start at their SYN.
    #[arg(long, value_name = "N")]
    max_in_flight: Option<usize>,
    /// TLS, client certificates and basic auth for every path: Prometheus
    /// exporter-toolkit's web config, as node_exporter takes it.
    ///
    /// TLS 1.2+ with the certificate and key from PEM files, client certificates
    /// (client_auth_type, client_ca_file) and basic auth with bcrypt hashes
    /// (basic_auth_users), for every path, /-/reload and the health paths included.
    /// Paths in it are relative to its folder; it is read again at every reload, so a
    /// renewed certificate needs no restart. For example:
    ///
    ///   tls_server_config:
    ///     cert_file: server.crt
    ///     key_file: server.key
    ///   basic_auth_users:
    ///     prometheus: $2y$10$...   # htpasswd -nBC 10 "" | tr -d ':\n'
    #[arg(long = "web.config.file", value_name = "FILE", verbatim_doc_comment)]
    web_config: Option<PathBuf>,
    /// Keep state, history, silences and pending alerts in DIR/state.sqlite (created if
    /// missing), so that they survive a restart, even a kill -9: each target resumes in
    /// its last state (connhealth_target_up never disappears, an alert's `for` carries
    /// on), and the status page keeps every transition and 30 days of per-minute
    /// aggregates. Without it, the same history is kept in memory, bounded. A data dir
    /// that cannot be read or written, or a file that is not connhealth's, is an error
    /// at start (exit 2): it is never overwritten.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

const EXAMPLES: &str = "\
Examples:
  connhealth watch --config watch.toml
  connhealth watch --config watch.toml --check-config
  connhealth watch --config watch.toml --listen [::1]:9717 --shard 2/3 --log-format json
  connhealth watch --config watch.toml --listen 0.0.0.0:9717 --web.config.file web.yml
  connhealth watch --config watch.toml --data-dir /var/lib/connhealth
    then open http://127.0.0.1:9717/ (the status page); history survives restarts

A minimal config:
  [defaults]
  interval = \"2s\"

  [[targets]]
  name = \"cache-a\"
  address = \"127.0.0.1:6379\"

In place of blackbox_exporter, with its module file as it is (a config of one line):
  blackbox_config = \"blackbox.yml\"
  then: curl 'localhost:9717/probe?module=http_2xx&target=https://example.internal'

Reload with SIGHUP or `curl -X POST localhost:9717/-/reload` (the blackbox file too);
stop with SIGTERM.
Exit codes: 0 after SIGTERM/SIGINT, 2 for bad usage or a bad config at start,
1 for a failure at run time (the listen address is taken, say).

Under systemd (connhealth-watch.service, Type=notify, NOTIFY_SOCKET set): READY=1 once
the config is loaded and HTTP listens, RELOADING=1 then READY=1 around each reload,
STOPPING=1 at shutdown, STATUS=watching N targets; with WatchdogSec= (WATCHDOG_USEC),
WATCHDOG=1 at half of it, only while the scheduler makes progress.

Logging: each state change is one line on stderr, at WARN when a target goes down
and at INFO when it comes up; start, reload and shutdown are at INFO. The level is
info by default; RUST_LOG sets it (tracing's EnvFilter syntax):
  RUST_LOG=warn connhealth watch --config watch.toml    # only targets going down, and errors
  RUST_LOG=connhealth_watch=debug connhealth watch ...  # and debug lines: a held connection that closed, say";

/// `--listen`: HOST:PORT, with a port; the host is looked up when the daemon binds.
fn listen_address(text: &str) -> Result<String, String> {
    let example = "write HOST:PORT, e.g. 127.0.0.1:9717, [::1]:9717 or localhost:9717";
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("no port in {text:?}; {example}"));
    };
    if port.parse::<u16>().is_err() {
        return Err(format!("{port:?} is not a port (0 to 65535); {example}"));
    }
    let bare_v6 = host.contains(':') && !(host.starts_with('[') && host.ends_with(']'));
    if host.is_empty() || bare_v6 {
        let why = if bare_v6 {
            "an IPv6 address needs brackets"
        } else {
            "no host"
        };
        return Err(format!("{why} in {text:?}; {example}"));
    }
    Ok(text.to_owned())
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

pub(crate) fn run(args: Args) -> ExitCode {
    connhealth_watch::run(Options {
        config: args.config,
        listen: args.listen,
        check_config: args.check_config,
        shard: args.shard,
        log_format: match args.log_format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        },
        max_in_flight: args.max_in_flight,
        web_config: args.web_config,
        data_dir: args.data_dir,
    })
}
