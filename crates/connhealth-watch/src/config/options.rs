//! What `connhealth watch` was asked to do on its command line: the options the config
//! file does not hold.

use std::path::PathBuf;

use crate::shard::Shard;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// What `connhealth watch` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The TOML config.
    pub config: PathBuf,
    /// Where HTTP listens, as `host:port` (default `127.0.0.1:9717`): an address, or a
    /// host name, which is bound at the first of its addresses that can be (`localhost`
    /// is `::1` or `127.0.0.1`). Port 0 picks a free port ([`Daemon::listen`] says which).
    ///
    /// [`Daemon::listen`]: crate::daemon::Daemon::listen
    pub listen: String,
    /// Validate the config and exit: 0 and a summary, or 2 and every error.
    pub check_config: bool,
    /// Watch only this shard's targets.
    pub shard: Option<Shard>,
    /// How log lines look.
    pub log_format: LogFormat,
    /// The most probes each prober keeps in flight; by default a quarter of the
    /// descriptor limit (raised to its hard limit at start), between 64 and 4096.
    pub max_in_flight: Option<usize>,
    /// `--web.config.file`: exporter-toolkit's web config (TLS, client certificates,
    /// basic auth) for every HTTP path; read at start and at every reload
    /// ([`load_web`](crate::config::load_web)).
    pub web_config: Option<PathBuf>,
    /// `--data-dir`: where the state, history, silences and pending alerts are kept
    /// (`DIR/state.sqlite`), so that they survive a restart. Without it they live in
    /// memory, bounded, and a restart starts every target unknown.
    pub data_dir: Option<PathBuf>,
}

/// The default `--listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9717";
