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
    /// `[defaults]` over the built-in defaults.
    pub defaults: CheckPlan,
    /// `[defaults]`' `timeout` when it sets one: the timeout of the built-in `half_open`
    /// and `connect` modules (else the scrape's decides).
    pub defaults_timeout: Option<Duration>,
    /// Every target, from `[[targets]]` then from file_sd, names unique.
    pub targets: Vec<TargetPlan>,
    /// `[modules.NAME]` and the `tcp` and `http` modules of `blackbox_config`, for
    /// `/probe?module=NAME` (the built-in modules are not listed unless the blackbox file
    /// redefines them).
    pub modules: BTreeMap<String, Module>,
    /// The modules of `blackbox_config` that connhealth does not run: name, and a short
    /// phrase naming what it uses (`blackbox's icmp prober`, `` `tcp.source_ip_address` ``).
    /// `/probe?module=NAME` answers 400 for them.
    pub unsupported_modules: BTreeMap<String, String>,
    /// `blackbox_config`, resolved against the config's folder, when set.
    pub blackbox_config: Option<PathBuf>,
    /// `[probe]`: what `/probe` may reach, and how many requests it runs at once.
    pub probe: ProbePlan,
    /// `[[alerts.webhook]]` and `[alerts.alertmanager]`: who is told of transitions.
    pub alerts: super::AlertsPlan,
    /// `[[maintenance]]`: when targets are told of to no one.
    pub maintenance: Vec<super::MaintenancePlan>,
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
            defaults_timeout: None,
            targets: Vec::new(),
            modules: BTreeMap::new(),
            unsupported_modules: BTreeMap::new(),
            blackbox_config: None,
            probe: ProbePlan::default(),
            alerts: super::AlertsPlan::default(),
            maintenance: Vec::new(),
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
                .or_else(|err| {
                    // A service name as the port (`mail:smtp`), as Go's dialer takes it.
                    super::services::with_port_number(address)
                        .and_then(|numbered| connhealth::probe::Target::parse(&numbered).ok())
                        .ok_or(err)
                })
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
    /// blackbox_exporter's `tcp` prober, from a `blackbox_config` module (and the
    /// built-in `tcp_connect`): a connection, TLS from the start or after a STARTTLS
    /// step, and a `query_response` dialogue matched line by line.
    Tcp(Box<TcpPlan>),
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
            Check::Tcp(_) => CheckKind::Tcp,
        }
    }

    /// The TLS settings, for the kinds that have them (`tls`, and `http` for https).
    pub fn tls(&self) -> Option<&TlsPlan> {
        match self {
            Check::Tls(tls) => Some(tls),
            Check::Http(http) => Some(&http.tls),
            Check::Tcp(tcp) => Some(&tcp.tls_config),
            _ => None,
        }
    }

    /// Which of a name's addresses are checked: one, as blackbox chooses it, for its
    /// `tcp` prober and a blackbox `http` module; each in turn for the others.
    pub fn ip_choice(&self) -> IpChoice {
        match self {
            Check::Tcp(tcp) => tcp.ip,
            Check::Http(http) => http.ip,
            _ => IpChoice::Every,
        }
    }

    /// [`Check::tls`], to change.
    pub fn tls_mut(&mut self) -> Option<&mut TlsPlan> {
        match self {
            Check::Tls(tls) => Some(tls),
            Check::Http(http) => Some(&mut http.tls),
            Check::Tcp(tcp) => Some(&mut tcp.tls_config),
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
            CheckKind::Tcp => Check::Tcp(Box::default()),
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
    /// blackbox_exporter's `tcp` prober: only a `blackbox_config` module has it (a
    /// config cannot name it, so it is not in [`CheckKind::ALL`]).
    Tcp,
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
            CheckKind::Tcp => "tcp",
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
    /// A client certificate (PEM chain) and its key, for servers that ask for one
    /// (blackbox's `tls_config` `cert_file` and `key_file`).
    pub client_cert: Option<ClientCert>,
    /// The lowest TLS version offered (default 1.2; rustls speaks 1.2 and 1.3).
    pub min_version: Option<TlsVersion>,
    /// The highest TLS version offered (default 1.3).
    pub max_version: Option<TlsVersion>,
}

/// A client certificate chain and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// A TLS version a check may offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
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
    /// The body must match none of these (blackbox's `fail_if_body_matches_regexp`).
    pub fail_if_body_matches: Vec<Pattern>,
    /// The body must match each of these (blackbox's `fail_if_body_not_matches_regexp`).
    pub fail_if_body_not_matches: Vec<Pattern>,
    /// A header must not match (blackbox's `fail_if_header_matches`).
    pub fail_if_header_matches: Vec<HeaderMatch>,
    /// A header must match (blackbox's `fail_if_header_not_matches`).
    pub fail_if_header_not_matches: Vec<HeaderMatch>,
    /// The answer's version must be one of these, as Go writes them (`HTTP/1.1`,
    /// `HTTP/2.0`); empty: any.
    pub valid_http_versions: Vec<String>,
    /// Fail when the last answer came over TLS.
    pub fail_if_ssl: bool,
    /// Fail when the last answer did not come over TLS.
    pub fail_if_not_ssl: bool,
    /// Which of the URL's host's addresses are tried (a blackbox module's
    /// `preferred_ip_protocol`: one).
    pub ip: IpChoice,
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
            fail_if_body_matches: Vec::new(),
            fail_if_body_not_matches: Vec::new(),
            fail_if_header_matches: Vec::new(),
            fail_if_header_not_matches: Vec::new(),
            valid_http_versions: Vec::new(),
            fail_if_ssl: false,
            fail_if_not_ssl: false,
            ip: IpChoice::Every,
            follow_redirects: true,
            reuse_connection: true,
            tls: TlsPlan::default(),
        }
    }
}

/// One of blackbox's `fail_if_header_matches` / `fail_if_header_not_matches` entries.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderMatch {
    /// The header (every value of it is matched).
    pub header: http::HeaderName,
    /// The regex.
    pub regexp: Pattern,
    /// A missing header passes (blackbox's `allow_missing`).
    pub allow_missing: bool,
}

/// blackbox_exporter's `tcp` prober settings (`tcp:` in a module).
#[derive(Debug, Clone, PartialEq)]
pub struct TcpPlan {
    /// `preferred_ip_protocol` and `ip_protocol_fallback`.
    pub ip: IpChoice,
    /// `tls: true`: TLS from the first byte, with `tls_config`.
    pub tls: bool,
    /// `tls_config`: for `tls`, and for a `starttls` step.
    pub tls_config: TlsPlan,
    /// `query_response`, in order.
    pub query_response: Vec<QueryStep>,
}

impl Default for TcpPlan {
    /// blackbox's defaults: a connection to one address, IPv6 preferred; nothing sent.
    fn default() -> Self {
        TcpPlan {
            ip: IpChoice::BLACKBOX,
            tls: false,
            tls_config: TlsPlan::default(),
            query_response: Vec::new(),
        }
    }
}

/// One `query_response` entry: read lines until `expect` matches one, then send `send`
/// (its `${1}`s expanded from that match) with a newline, then upgrade to TLS when
/// `starttls`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryStep {
    /// Matched against each line read (without its `\n` or `\r\n`).
    pub expect: Option<Pattern>,
    /// Sent with `\n` after it; empty: nothing.
    pub send: String,
    /// A TLS handshake after `send`.
    pub starttls: bool,
}

/// A `/probe` module: the check, and its timeout.
#[derive(Debug, Clone, PartialEq)]
pub struct Module {
    /// The check kind and its settings.
    pub check: Check,
    /// The module's own timeout; `None`: Prometheus' scrape timeout less half a second
    /// (120 s without one), as blackbox.
    pub timeout: Option<Duration>,
}

/// `[probe]`: what `/probe` may reach, and how many requests it runs at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbePlan {
    /// `allow`: every address a `/probe` check is about to reach must lie in one of these
    /// networks, or the request is refused (403); `None`: anywhere.
    pub allow: Option<AllowList>,
    /// `max_concurrent`: `/probe` requests running at once; one more is refused (429), so
    /// that `/probe` cannot starve the scheduled checks.
    pub max_concurrent: usize,
}

impl ProbePlan {
    /// `max_concurrent` when the config does not set it.
    pub const DEFAULT_MAX_CONCURRENT: usize = 256;
}

impl Default for ProbePlan {
    /// Anywhere, at most [`ProbePlan::DEFAULT_MAX_CONCURRENT`] at once.
    fn default() -> Self {
        ProbePlan {
            allow: None,
            max_concurrent: ProbePlan::DEFAULT_MAX_CONCURRENT,
        }
    }
}

/// `[probe] allow`: networks, as CIDRs (`10.1.0.0/16`, `::1/128`).
///
/// ```
/// use connhealth_watch::config::AllowList;
///
/// let allow = AllowList::parse(["127.0.0.0/8", "::1/128"]).unwrap();
/// assert!(allow.permits("127.0.0.53".parse().unwrap()));
/// assert!(allow.permits("::ffff:127.0.0.1".parse().unwrap()), "IPv4-mapped is IPv4");
/// assert!(!allow.permits("10.0.0.1".parse().unwrap()));
/// assert!(AllowList::parse(["10.1.0.0/33"]).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList(pub Vec<ipnet::IpNet>);

impl AllowList {
    /// The list of `entries`, each a CIDR or a bare address (one host); the reason when
    /// one is neither.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<AllowList, String> {
        entries
            .into_iter()
            .map(parse_network)
            .collect::<Result<_, _>>()
            .map(AllowList)
    }

    /// True when `ip` lies in one of the networks. An IPv4-mapped IPv6 address
    /// (`::ffff:10.0.0.1`) is checked as the IPv4 address it is, so that it cannot slip
    /// past an IPv4 entry.
    pub fn permits(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

impl std::fmt::Display for AllowList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let written: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&written.join(", "))
    }
}

/// One `allow` entry: `10.1.0.0/16`, `::1/128`, or an address alone (its /32 or /128).
pub(crate) fn parse_network(entry: &str) -> Result<ipnet::IpNet, String> {
    if let Ok(net) = entry.parse::<ipnet::IpNet>() {
        if net.trunc() != net {
            return Err(format!(
                "{entry:?} has bits set past its prefix length; write the network, {}",
                net.trunc()
            ));
        }
        return Ok(net);
    }
    if let Ok(ip) = entry.parse::<std::net::IpAddr>() {
        return Ok(ipnet::IpNet::from(ip));
    }
    Err(format!(
        "{entry:?} is not a network; write a CIDR such as \"10.1.0.0/16\" or \"::1/128\", or an address"
    ))
}

/// Which of a name's addresses a check is made on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpChoice {
    /// Each in the resolver's order until one answers (a refusal or an unreachable
    /// address moves on): connhealth's own kinds.
    #[default]
    Every,
    /// One address, as blackbox chooses it: the first of the `preferred` family
    /// (`preferred_ip_protocol`, 6 unless set), else, with `fallback`
    /// (`ip_protocol_fallback`, on unless set), the first of the other.
    Prefer {
        /// 4 or 6.
        preferred: u8,
        /// Take the other family when the preferred has no address.
        fallback: bool,
    },
}

impl IpChoice {
    /// blackbox's default: IPv6 preferred, IPv4 taken when there is none.
    pub const BLACKBOX: IpChoice = IpChoice::Prefer {
        preferred: 6,
        fallback: true,
    };
}

/// The `/probe` modules built in, in the order a 400 lists them: a `[modules.NAME]`
/// cannot take their names.
pub const BUILT_IN_MODULES: [&str; 4] = ["half_open", "connect", "tcp_connect", "http_2xx"];

/// The built-in `/probe` module `name`, `None` for any other name: `half_open` and
/// `connect` are ours, with `[defaults]`' timeout when it sets one (`defaults_timeout`);
/// `tcp_connect` and `http_2xx` are blackbox's, as its own `blackbox.yml` defines them (a
/// connection; a GET wanting a 2xx), with its choice of address and no timeout of their
/// own.
pub fn built_in_module(name: &str, defaults_timeout: Option<Duration>) -> Option<Module> {
    Some(match name {
        "half_open" => Module {
            check: Check::HalfOpen,
            timeout: defaults_timeout,
        },
        "connect" => Module {
            check: Check::Connect,
            timeout: defaults_timeout,
        },
        "tcp_connect" => Module {
            check: Check::Tcp(Box::default()),
            timeout: None,
        },
        "http_2xx" => Module {
            check: Check::Http(Box::new(HttpPlan {
                ip: IpChoice::BLACKBOX,
                ..HttpPlan::default()
            })),
            timeout: None,
        },
        _ => return None,
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
