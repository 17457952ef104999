//! The validated plan that the config produces: what every other stage reads.
//!
//! Nothing here parses; [`super::load`] builds these from TOML and file_sd, and every value
//! in them has already been checked.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use regex::bytes::Regex;

use crate::shard::Shard;

/// A loaded, valid configuration: the targets to watch and the modules `/probe` offers.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The config file it came from.
    pub source: PathBuf,
    /// `[defaults]` over the built-in defaults: what the built-in `/probe` modules use.
    pub defaults: CheckPlan,
    /// Every target, from `[[targets]]` then from file_sd, names unique.
    pub targets: Vec<TargetPlan>,
    /// `[modules.NAME]`, for `/probe?module=NAME` (the built-in modules are not listed).
    pub modules: BTreeMap<String, CheckPlan>,
    /// The file_sd globs, and the files they matched when the plan was built.
    pub file_sd: Vec<FileSdPlan>,
    /// When the files were about to be read: a file_sd file modified since may have
    /// changed after it was read, and is read again.
    pub read_at: SystemTime,
}

impl Plan {
    /// A plan with nothing in it (for tests of the stages after config).
    pub fn empty() -> Plan {
        Plan {
            source: PathBuf::new(),
            defaults: CheckPlan::default(),
            targets: Vec::new(),
            modules: BTreeMap::new(),
            file_sd: Vec::new(),
            read_at: SystemTime::now(),
        }
    }

    /// Keeps the targets of `shard` (all of them without one).
    pub fn sharded(mut self, shard: Option<Shard>) -> Plan {
        if let Some(shard) = shard {
            self.targets.retain(|t| shard.owns(&t.name));
        }
        self
    }
}

/// One target to watch.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetPlan {
    /// Unique in the plan: the `target` label. Defaults to the address.
    pub name: String,
    /// `host:port` or `[v6]:port`, as written; a host name is resolved at every check.
    pub address: String,
    /// Added to every series of this target.
    pub labels: BTreeMap<String, String>,
    /// How it is checked.
    pub check: CheckPlan,
}

impl TargetPlan {
    /// True when `other` is the same thing to watch: the same name, address and check
    /// kind. A reload carries such a target's state, counters and transitions over,
    /// whatever else changed (labels, the schedule, rise and fall, timeout, the check's
    /// own settings), and the new settings apply from its next check. A new address or
    /// kind watches something else, which starts again as unknown.
    pub fn is_same_target(&self, other: &TargetPlan) -> bool {
        self.name == other.name
            && self.address == other.address
            && self.check.kind == other.check.kind
    }
}

/// How one target (or one `/probe` module) is checked: the kind, its settings and the
/// schedule. Two plans are equal when every setting is, which is what a reload compares.
#[derive(Debug, Clone)]
pub struct CheckPlan {
    /// The check kind.
    pub kind: CheckKind,
    /// Between checks while up (HAProxy's `inter`).
    pub interval: Duration,
    /// While unknown, or after a result that starts a change (`fastinter`).
    pub fast_interval: Duration,
    /// While down (`downinter`); defaults to `interval`.
    pub down_interval: Duration,
    /// For one check, name resolution included.
    pub timeout: Duration,
    /// Consecutive successes to become up (at least 1).
    pub rise: u32,
    /// Consecutive failures to become down (at least 1).
    pub fall: u32,
    /// Each wait is drawn from `interval × (1 ± jitter)`; 0 to 1.
    pub jitter: f64,
    /// send-expect: bytes sent after connecting.
    pub send: Option<Vec<u8>>,
    /// send-expect: the reply must match.
    pub expect: Option<Regex>,
    /// send-expect: sent before the graceful close.
    pub quit: Option<Vec<u8>>,
    /// tls: the settings (defaults when the kind is not tls).
    pub tls: TlsPlan,
}

impl PartialEq for CheckPlan {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.interval == other.interval
            && self.fast_interval == other.fast_interval
            && self.down_interval == other.down_interval
            && self.timeout == other.timeout
            && self.rise == other.rise
            && self.fall == other.fall
            && self.jitter.to_bits() == other.jitter.to_bits()
            && self.send == other.send
            && self.expect.as_ref().map(Regex::as_str) == other.expect.as_ref().map(Regex::as_str)
            && self.quit == other.quit
            && self.tls == other.tls
    }
}

impl Default for CheckPlan {
    /// The documented defaults: half-open, every 2 s, fast 500 ms, timeout 1 s, rise 2,
    /// fall 3, jitter 0.1.
    fn default() -> Self {
        CheckPlan {
            kind: CheckKind::HalfOpen,
            interval: Duration::from_secs(2),
            fast_interval: Duration::from_millis(500),
            down_interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
            jitter: 0.1,
            send: None,
            expect: None,
            quit: None,
            tls: TlsPlan::default(),
        }
    }
}

/// The check kinds, by their config names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckKind {
    /// `half-open`: SYN, SYN-ACK, RST; the server application never sees a connection.
    HalfOpen,
    /// `connect`: the handshake completes, then an RST.
    Connect,
    /// `hold`: one established connection per target, watched for its close.
    Hold,
    /// `tls`: a TLS handshake, the chain verified, the earliest expiry read.
    Tls,
    /// `send-expect`: bytes sent, the reply matched against a regex, a graceful close.
    SendExpect,
}

impl CheckKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [CheckKind; 5] = [
        CheckKind::HalfOpen,
        CheckKind::Connect,
        CheckKind::Hold,
        CheckKind::Tls,
        CheckKind::SendExpect,
    ];

    /// The name in the config and in the `check` label.
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::HalfOpen => "half-open",
            CheckKind::Connect => "connect",
            CheckKind::Hold => "hold",
            CheckKind::Tls => "tls",
            CheckKind::SendExpect => "send-expect",
        }
    }

    /// The kind of a config name.
    pub fn from_name(name: &str) -> Option<CheckKind> {
        CheckKind::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// The `tls` kind's settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsPlan {
    /// SNI and the name verified; defaults to the address's host.
    pub server_name: Option<String>,
    /// PEM file of the CAs to trust; the system roots when unset.
    pub ca_file: Option<PathBuf>,
    /// Verify nothing, but still read the chain (for its expiry).
    pub insecure: bool,
    /// Fail when a certificate in the chain expires within this many days.
    pub cert_min_days: Option<u32>,
}

/// The `http` kind's settings (`url`, `method`, `headers`, `body`, `valid_status`,
/// `expect`, `follow_redirects`, `reuse_connection`); https also reads [`TlsPlan`].
#[derive(Debug, Clone, PartialEq)]
pub struct HttpPlan {
    /// `http://` or `https://`, with a host; the port defaults to 80 or 443.
    pub url: http::Uri,
    /// Default `GET`.
    pub method: http::Method,
    /// Sent as written, after the defaults (`Host`, `User-Agent`), which they replace.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// The request body (empty: none).
    pub body: Vec<u8>,
    /// The codes that pass; default `["2xx"]`.
    pub valid_status: Vec<StatusRange>,
    /// A regex the body must match.
    pub expect: Option<Pattern>,
    /// Follow redirects, at most 10 (default true).
    pub follow_redirects: bool,
    /// Keep the connection between checks, `check()`ed before each reuse (default true).
    pub reuse_connection: bool,
}

/// One entry of `valid_status`: a code (`204`, `low == high`) or a class (`"2xx"`,
/// 200 to 299).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    /// The lowest code that passes.
    pub low: u16,
    /// The highest code that passes.
    pub high: u16,
}

impl StatusRange {
    /// True when `code` is in the range.
    pub fn contains(self, code: u16) -> bool {
        (self.low..=self.high).contains(&code)
    }
}

/// A compiled regex that compares by its source text, so that plans holding one compare
/// as written.
#[derive(Debug, Clone)]
pub struct Pattern(pub Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// One `[[file_sd]]` block.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSdPlan {
    /// The globs as written (relative ones are relative to the config file's folder).
    pub files: Vec<String>,
    /// The files they matched when the plan was built.
    pub matched: Vec<PathBuf>,
    /// Added to every target of these files; a group's own label of the same name wins.
    pub labels: BTreeMap<String, String>,
    /// The check settings for its targets: `[defaults]` overlaid with the block's own.
    pub check: CheckPlan,
}
