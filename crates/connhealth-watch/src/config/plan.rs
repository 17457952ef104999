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
    /// What loads but is likely not what was meant, each at its place (a timeout longer
    /// than its interval): logged at start and at each reload.
    pub warnings: Vec<super::ConfigError>,
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
            warnings: Vec::new(),
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
    /// `host:port` or `[v6]:port` (a URL for `http`), as written: the `address` label.
    pub address: String,
    /// The address, parsed once, here: a host name is resolved at every check.
    pub endpoint: Endpoint,
    /// Added to every series of this target.
    pub labels: BTreeMap<String, String>,
    /// How it is checked.
    pub check: CheckPlan,
}

/// What a check is aimed at: `host:port` for every kind but `http`, whose target is a
/// URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `host:port` or `[v6]:port`.
    Tcp(connhealth::probe::Target),
    /// `http://` or `https://`, with a host.
    Url(http::Uri),
}

impl Endpoint {
    /// `address` as `check`'s kind takes it: a URL for `http`, `host:port` for the
    /// others; the reason, when it is not one.
    pub fn parse(address: &str, check: &Check) -> Result<Endpoint, String> {
        match check {
            Check::Http(_) => super::parse_url(address).map(Endpoint::Url),
            _ => connhealth::probe::Target::parse(address)
                .map(Endpoint::Tcp)
                .map_err(|err| err.to_string()),
        }
    }
}

impl TargetPlan {
    /// A target named `name`, checked at `address` as `check` says, with `labels`; the
    /// reason when `address` is not what the kind takes (a URL for `http`, `host:port`
    /// for the others).
    ///
    /// ```
    /// use connhealth_watch::config::{CheckPlan, TargetPlan};
    ///
    /// let web = TargetPlan::new("web", "127.0.0.1:80", Default::default(), CheckPlan::default());
    /// assert!(web.is_ok());
    /// let typo = TargetPlan::new("web", "127.0.0.1", Default::default(), CheckPlan::default());
    /// assert!(typo.unwrap_err().contains("port"));
    /// ```
    pub fn new(
        name: impl Into<String>,
        address: impl Into<String>,
        labels: BTreeMap<String, String>,
        check: CheckPlan,
    ) -> Result<TargetPlan, String> {
        let address = address.into();
        let endpoint = Endpoint::parse(&address, &check.check)?;
        Ok(TargetPlan {
            name: name.into(),
            address,
            endpoint,
            labels,
            check,
        })
    }

    /// True when `other` is the same thing to watch: the same name, address and check
    /// kind. A reload carries such a target's state, counters and transitions over,
    /// whatever else changed (labels, the schedule, rise and fall, timeout, the check's
    /// own settings), and the new settings apply from its next check. A new address or
    /// kind watches something else, which starts again as unknown.
    pub fn is_same_target(&self, other: &TargetPlan) -> bool {
        self.name == other.name
            && self.address == other.address
            && self.check.kind() == other.check.kind()
    }
}

/// How one target (or one `/probe` module) is checked: the kind with its own settings,
/// and the schedule. Two plans are equal when every setting is, which is what a reload
/// compares.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckPlan {
    /// The check kind, with the settings only that kind reads.
    pub check: Check,
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
}

impl CheckPlan {
    /// The kind, without its settings.
    pub fn kind(&self) -> CheckKind {
        self.check.kind()
    }
}

impl Default for CheckPlan {
    /// The documented defaults: half-open, every 2 s, fast 500 ms, timeout 1 s, rise 2,
    /// fall 3, jitter 0.1.
    fn default() -> Self {
        CheckPlan {
            check: Check::HalfOpen,
            interval: Duration::from_secs(2),
            fast_interval: Duration::from_millis(500),
            down_interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
            jitter: 0.1,
        }
    }
}

/// A check kind and the settings only it reads, as blackbox_exporter keeps a module's
/// prober settings: a plan holds the settings of its own kind and no other.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// `half-open`.
    HalfOpen,
    /// `connect`.
    Connect,
    /// `hold`.
    Hold,
    /// `tls`.
    Tls(TlsPlan),
    /// `send-expect`.
    SendExpect(SendExpectPlan),
    /// `http`.
    Http(Box<HttpPlan>),
}

impl Check {
    /// The kind, without its settings.
    pub fn kind(&self) -> CheckKind {
        match self {
            Check::HalfOpen => CheckKind::HalfOpen,
            Check::Connect => CheckKind::Connect,
            Check::Hold => CheckKind::Hold,
            Check::Tls(_) => CheckKind::Tls,
            Check::SendExpect(_) => CheckKind::SendExpect,
            Check::Http(_) => CheckKind::Http,
        }
    }

    /// The TLS settings, for the kinds that have them (`tls`, and `http` for https).
    pub fn tls(&self) -> Option<&TlsPlan> {
        match self {
            Check::Tls(tls) => Some(tls),
            Check::Http(http) => Some(&http.tls),
            _ => None,
        }
    }

    /// [`Check::tls`], to change.
    pub fn tls_mut(&mut self) -> Option<&mut TlsPlan> {
        match self {
            Check::Tls(tls) => Some(tls),
            Check::Http(http) => Some(&mut http.tls),
            _ => None,
        }
    }
}

impl From<CheckKind> for Check {
    /// `kind` with its default settings (a `send-expect` check without `expect` matches
    /// any reply).
    fn from(kind: CheckKind) -> Check {
        match kind {
            CheckKind::HalfOpen => Check::HalfOpen,
            CheckKind::Connect => Check::Connect,
            CheckKind::Hold => Check::Hold,
            CheckKind::Tls => Check::Tls(TlsPlan::default()),
            CheckKind::SendExpect => Check::SendExpect(SendExpectPlan::default()),
            CheckKind::Http => Check::Http(Box::default()),
        }
    }
}

/// The `send-expect` kind's settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SendExpectPlan {
    /// Bytes sent after connecting.
    pub send: Option<Vec<u8>>,
    /// The reply must match (the config requires it).
    pub expect: Option<Pattern>,
    /// Sent before the graceful close.
    pub quit: Option<Vec<u8>>,
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
    /// `http`: a request, its status and body judged; the connection kept between checks.
    Http,
}

impl CheckKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [CheckKind; 6] = [
        CheckKind::HalfOpen,
        CheckKind::Connect,
        CheckKind::Hold,
        CheckKind::Tls,
        CheckKind::SendExpect,
        CheckKind::Http,
    ];

    /// The name in the config and in the `check` label.
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::HalfOpen => "half-open",
            CheckKind::Connect => "connect",
            CheckKind::Hold => "hold",
            CheckKind::Tls => "tls",
            CheckKind::SendExpect => "send-expect",
            CheckKind::Http => "http",
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

/// The `http` kind's settings (`method`, `headers`, `body`, `valid_status`, `expect`,
/// `follow_redirects`, `reuse_connection`, and the tls keys for https). The URL is the
/// target's address.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpPlan {
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
    /// https: `server_name`, `ca_file`, `insecure`, `cert_min_days`, as for `tls`.
    pub tls: TlsPlan,
}

impl Default for HttpPlan {
    /// `GET`, any 2xx, redirects followed, the connection kept, the system's roots.
    fn default() -> Self {
        HttpPlan {
            method: http::Method::GET,
            headers: Vec::new(),
            body: Vec::new(),
            valid_status: vec![StatusRange {
                low: 200,
                high: 299,
            }],
            expect: None,
            follow_redirects: true,
            reuse_connection: true,
            tls: TlsPlan::default(),
        }
    }
}

/// The `/probe` modules built in, in the order a 400 lists them: a `[modules.NAME]`
/// cannot take their names.
pub const BUILT_IN_MODULES: [&str; 4] = ["half_open", "connect", "tcp_connect", "http_2xx"];

/// The built-in `/probe` module `name`: `[defaults]`' schedule and timeout with the
/// module's kind (`half_open`: half-open; `connect` and blackbox's `tcp_connect`: connect;
/// blackbox's `http_2xx`: http with its defaults, and `[defaults]`' tls settings when it
/// has them). `None` for any other name.
pub fn built_in_module(name: &str, defaults: &CheckPlan) -> Option<CheckPlan> {
    let check = match name {
        "half_open" => Check::HalfOpen,
        "connect" | "tcp_connect" => Check::Connect,
        "http_2xx" => match &defaults.check {
            Check::Http(http) => Check::Http(http.clone()),
            other => Check::Http(Box::new(HttpPlan {
                tls: other.tls().cloned().unwrap_or_default(),
                ..HttpPlan::default()
            })),
        },
        _ => return None,
    };
    Some(CheckPlan {
        check,
        ..defaults.clone()
    })
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
