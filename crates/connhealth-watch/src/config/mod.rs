//! The config: TOML and file_sd in, a validated [`Plan`] out, every error with its file,
//! line and column.
//!
//! [`load`] reads a config file; [`parse`] checks a text as if it were that file. Either
//! returns every problem it finds, in file order (a TOML syntax error stops the parse
//! where it is), each as `FILE:LINE:COLUMN: message`, the message saying what is wrong and
//! what to write instead:
//!
//! ```text
//! watch.toml:3:12: "2" is not a duration; write it with a unit, e.g. "2s" or "500ms"
//! ```
//!
//! # The format
//!
//! ```toml
//! blackbox_config = "blackbox.yml" # blackbox_exporter's own module file, as it is: its
//!                            # modules join /probe's (see below); relative to this folder
//!
//! [defaults]                 # every key of [defaults] may be set per target, per module
//! check = "half-open"        # and per [[file_sd]]: half-open|connect|hold|tls|send-expect|http
//! interval = "2s"            # between checks while up
//! fast_interval = "500ms"    # while unknown, or after a result that starts a change
//! down_interval = "2s"       # while down; defaults to the effective interval
//! timeout = "1s"             # for one check, name resolution included
//! rise = 2                   # consecutive successes to become up (at least 1)
//! fall = 3                   # consecutive failures to become down (at least 1)
//! jitter = 0.1               # each wait is drawn from interval x (1 +- jitter), 0 <= jitter < 1
//!
//! [[targets]]
//! name = "cache-a"           # unique; the `target` label; defaults to the address
//! address = "127.0.0.1:6379" # host:port or [v6]:port
//! labels = { service = "cache" }   # Prometheus label names; target, address, check,
//!                                  # result and __* are reserved
//! check = "send-expect"
//! send = "PING\r\n"          # send-expect only: sent after connecting
//! expect = "^\\+PONG"        # send-expect only, and required: the reply must match
//! quit = "QUIT\r\n"          # send-expect only: sent before the graceful close
//!
//! [[targets]]
//! address = "db.internal:5432"
//! check = "tls"
//! server_name = "db.internal" # tls (and https): SNI and the name verified
//! ca_file = "ca.pem"          # tls (and https): PEM CAs, relative to this file's folder
//! insecure = false            # tls (and https): verify nothing, still read the chain
//! cert_min_days = 14          # tls (and https): fail when a certificate expires sooner
//!
//! [[targets]]
//! name = "api"
//! check = "http"
//! url = "https://api.internal:8443/healthz"  # http only, instead of address
//! method = "GET"              # http only: the default
//! headers = { Host = "api.internal" }   # http only: sent as written
//! body = ""                   # http only: the request body
//! valid_status = ["2xx"]      # http only: codes (204) and classes ("2xx"); the default
//! expect = "\"ok\""           # http too: a regex the body must match
//! follow_redirects = true     # http only: at most 10; the default
//! reuse_connection = true     # http only: keep the connection, check() it before reuse
//!
//! [modules.redis_ping]       # for /probe?module=redis_ping; not half_open, connect,
//! check = "send-expect"      # tcp_connect or http_2xx, which are built in
//! send = "PING\r\n"
//! expect = "^\\+PONG"
//!
//! [[file_sd]]                # Prometheus file_sd, JSON only
//! files = ["targets/*.json"] # relative to this file's folder
//! labels = { team = "db" }   # added to every target of these files; a group's own
//!                            # label of the same name wins
//! interval = "10s"           # settings for the targets of these files
//!
//! [probe]                    # what /probe may reach, and how many at once
//! allow = ["127.0.0.0/8", "::1/128", "10.1.0.0/16"]  # CIDRs (or addresses): a target
//!                            # any of whose addresses lies outside is refused, 403;
//!                            # unset: anywhere
//! max_concurrent = 256       # /probe requests at once; one more is refused, 429
//!
//! [[alerts.webhook]]         # one JSON POST per transition (docs/alerts.md)
//! url = "https://hooks.example/connhealth"   # http:// or https://
//! for = "1m"                 # a state must hold this long before it is sent; default 0s
//! headers = { Authorization = "Bearer TOKEN" }   # sent with every POST
//! name = "ops-chat"          # the receiver label; default webhook, webhook-2, ...
//!
//! [alerts.alertmanager]      # one; /api/v2/alerts is appended to the base URL
//! url = "http://127.0.0.1:9093"
//! for = "1m"                 # default 0s; name defaults to alertmanager
//!
//! [[maintenance]]            # no notification for the matching targets meanwhile
//! start = "02:00"            # UTC, HH:MM
//! duration = "1h30m"
//! days = ["sat", "sun"]      # mon..sun; default every day
//! match = { service = "db" } # every pair must equal the target's label (`target`: its
//!                            # name); default every target
//! ```
//!
//! A file_sd file is `[{"targets": ["host:port", ..], "labels": {"name": "value"}}, ..]`.
//! Each address becomes a target named by its address, with the block's labels and the
//! group's over them (those starting with `__` are dropped, as Prometheus drops them) and
//! the block's settings.
//!
//! The same address listed in two groups, files or blocks is two targets, as it is to
//! Prometheus (which tells them apart by their labels). The first keeps the address as
//! its name; each later one, and one whose address a `[[targets]]` table took as its name,
//! is named `ADDRESS@FILE#GROUP`: FILE relative to the config's folder, GROUP the 1-based
//! rank of its group in the file (`10.0.0.1:80@targets/b.json#2`). If that is taken too
//! (the address twice in one group, or a file that two blocks match), `-2`, `-3`, ... is
//! appended.
//!
//! `blackbox_config` names blackbox_exporter 0.23's module file (its `blackbox.yml`), read
//! as blackbox reads it: a key blackbox does not know is an error, and its defaults are
//! blackbox's (one address, IPv6 preferred; a new connection per probe). Its `tcp` and
//! `http` modules become `/probe` modules by their names, which may be the built-in
//! `tcp_connect` and `http_2xx` (the file's definition wins) but not a `[modules.NAME]`'s.
//! A module of another prober (`icmp`, `dns`, `grpc`), or one that uses what connhealth
//! does not implement (`source_ip_address`, a proxy, oauth2, compression, a body size
//! limit, a secret read from a file, TLS below 1.2), loads with a warning at its name and
//! `/probe` answers 400 for it ([`Plan::unsupported_modules`]). Its relative paths are
//! relative to its own folder. A reload reads it again.
//!
//! # The rules
//!
//! * Settings are inherited: built-in ([`CheckPlan::default`]) ← `[defaults]` ← the
//!   target's, module's or `[[file_sd]]` block's own.
//! * Unknown keys are errors, and so is a kind-specific key (`send`, `expect`, `quit` for
//!   `send-expect`; `server_name`, `ca_file`, `insecure`, `cert_min_days` for `tls`; the
//!   http keys, `expect` and the tls keys for `http`) in a table whose kind does not read
//!   it. In `[defaults]` they are allowed: they serve the targets of that kind.
//! * A plan holds the settings of its own kind and no other ([`Check`]), so two plans of
//!   one kind are equal exactly when their checks behave alike.
//! * A timeout longer than its table's interval is a warning ([`Plan::warnings`]). `ca_file` is stored joined to the
//!   config's folder, and the file was readable and held PEM certificates at load time.
//! * Target names are unique across the config and every file_sd file: two `[[targets]]`
//!   tables of one name are an error, a file_sd target is renamed as above.
//! * A config with no targets is valid, and so is a glob that matches no file.

use std::path::{Path, PathBuf};

mod alerts;
mod blackbox;
mod file_sd;
mod json;
mod keys;
mod kinds;
mod labels;
mod names;
mod options;
mod plan;
mod raw;
pub mod services;
mod settings;
mod span;
mod syntax;
mod validate;
mod values;
mod web;
mod yaml;

pub use self::alerts::{AlertsPlan, MaintenancePlan, ReceiverKind, ReceiverPlan, DAY_NAMES};
pub use self::file_sd::parse_url;
pub use self::labels::problem as label_problem;
pub use self::options::{LogFormat, Options, DEFAULT_LISTEN};
pub use self::plan::{
    built_in_module, AllowList, Check, CheckKind, CheckPlan, ClientCert, Endpoint, FileSdPlan,
    HeaderMatch, HttpPlan, IpChoice, Module, Pattern, Plan, ProbePlan, QueryStep, SendExpectPlan,
    StatusRange, TargetPlan, TcpPlan, TlsPlan, TlsVersion, BUILT_IN_MODULES,
};
pub use self::web::{load_web, parse_web, BasicAuth, WebConfig};

use std::collections::BTreeMap;

use self::names::Names;
use self::span::{Report, Source};

/// One problem in a config or file_sd file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, as given.
    pub file: std::path::PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong, and what to write instead.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one load, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{err}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    /// One error at the top of `file`, for problems that have no place in it.
    pub fn one(file: &Path, message: impl Into<String>) -> ConfigErrors {
        ConfigErrors(vec![ConfigError {
            file: file.to_owned(),
            line: 1,
            column: 1,
            message: message.into(),
        }])
    }
}

/// The files that `globs` (relative ones are relative to the folder of `config`) match
/// now, sorted, each once.
pub fn file_sd_paths(config: &Path, globs: &[String]) -> Vec<PathBuf> {
    file_sd::paths(config, globs)
}

/// The targets of `bytes` read as the file_sd file at `path`, and every problem in it:
/// what [`load`] makes of each file a glob matches. For [`crate::fuzzing`], which has no
/// file.
pub(crate) fn file_sd_of(
    path: &Path,
    bytes: Vec<u8>,
) -> (Vec<file_sd::SdTarget>, Vec<ConfigError>) {
    let mut report = Report::default();
    let file = file_sd::parse(path, 1, bytes, &mut report);
    (file.targets, report.into_sorted())
}

/// What a blackbox file holds, read alone.
#[derive(Debug, Default)]
pub(crate) struct BlackboxRead {
    /// The modules connhealth runs.
    pub(crate) modules: BTreeMap<String, Module>,
    /// The modules it sets aside: name, what they use.
    pub(crate) unsupported: BTreeMap<String, String>,
    /// Every error, in file order.
    pub(crate) errors: Vec<ConfigError>,
    /// Every warning, in file order.
    pub(crate) warnings: Vec<ConfigError>,
}

/// `text` read as the blackbox file at `path`: what [`load`] makes of `blackbox_config`;
/// for [`crate::fuzzing`], which has no config.
pub(crate) fn blackbox_of(path: &Path, text: &str) -> BlackboxRead {
    let mut report = Report::default();
    let mut read = BlackboxRead::default();
    for named in blackbox::parse(path, text, 1, &mut report) {
        match named.outcome {
            blackbox::Outcome::Runs(module) => {
                read.modules.insert(named.name, module);
            }
            blackbox::Outcome::Unsupported(what) => {
                read.unsupported.insert(named.name, what);
            }
            blackbox::Outcome::Broken => {}
        }
    }
    read.warnings = report.sorted_warnings();
    read.errors = report.into_sorted();
    read
}

/// Reads and validates the config at `path`, and the file_sd files it names.
pub fn load(path: &Path) -> Result<Plan, ConfigErrors> {
    let bytes = std::fs::read(path).map_err(|err| {
        ConfigErrors::one(
            path,
            format!("cannot read the config ({err}); check the path given to --config, and that the file is readable"),
        )
    })?;
    match String::from_utf8(bytes) {
        Ok(text) => parse(path, &text),
        Err(err) => {
            let valid = err.utf8_error().valid_up_to();
            let bytes = err.into_bytes();
            let prefix =
                String::from_utf8_lossy(bytes.get(..valid).unwrap_or_default()).into_owned();
            let mut report = Report::default();
            report.error(
                &Source {
                    path,
                    text: &prefix,
                    seq: 0,
                },
                valid,
                "the config is not UTF-8 text; TOML files are UTF-8: save it as UTF-8",
            );
            Err(ConfigErrors(report.into_sorted()))
        }
    }
}

/// The modules of the blackbox file `config` names (`seq`: its rank in the load); a file
/// that cannot be read is an error at `blackbox_config`'s value in `toml`.
fn read_blackbox(
    config: &validate::BlackboxConfig,
    toml: &Source<'_>,
    seq: usize,
    report: &mut Report,
) -> Vec<blackbox::Named> {
    let path = config.path.as_path();
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) => {
            let what = if err.kind() == std::io::ErrorKind::NotFound {
                "does not exist".to_owned()
            } else {
                format!("cannot be read: {err}")
            };
            report.error(
                toml,
                config.at,
                format!(
                    "blackbox_config {:?} (looked at {}) {what}; write the path of blackbox_exporter's module file (its blackbox.yml), relative to this file's folder",
                    config.written,
                    path.display()
                ),
            );
            return Vec::new();
        }
    };
    match String::from_utf8(bytes) {
        Ok(text) => blackbox::parse(path, &text, seq, report),
        Err(err) => {
            let valid = err.utf8_error().valid_up_to();
            let bytes = err.into_bytes();
            let prefix =
                String::from_utf8_lossy(bytes.get(..valid).unwrap_or_default()).into_owned();
            report.error(
                &Source {
                    path,
                    text: &prefix,
                    seq,
                },
                valid,
                "the blackbox file is not UTF-8 text; save it as UTF-8",
            );
            Vec::new()
        }
    }
}

/// Parses `text` as the contents of `path` (file_sd globs are relative to its folder).
pub fn parse(path: &Path, text: &str) -> Result<Plan, ConfigErrors> {
    let read_at = std::time::SystemTime::now();
    let source = Source { path, text, seq: 0 };
    let mut report = Report::default();
    let root = match raw::parse(text) {
        Ok(root) => root,
        Err(err) => {
            let (at, message) = syntax::error(text, &err);
            report.error(&source, at, message);
            return Err(ConfigErrors(report.into_sorted()));
        }
    };
    let base = path.parent().unwrap_or(Path::new(""));
    let document = validate::document(&root, base, source, &mut report);
    let defaults = settings::resolve(&[&document.defaults]);
    let defaults_timeout = document.defaults.timeout.as_ref().map(|w| w.value);
    settings::check_timeout(&document.defaults, &defaults, &source, &mut report);

    let mut names = Names::default();
    let mut targets = Vec::new();
    for target in document.targets {
        let fix = if target.named {
            format!(
                "give this one another name, e.g. name = \"{}-2\"",
                target.plan.name
            )
        } else {
            format!(
                "this one is named by its address: give it a name, e.g. name = \"{}-2\"",
                target.plan.name
            )
        };
        if names.claim(
            &target.plan.name,
            &source,
            target.name_at,
            &fix,
            &mut report,
        ) {
            targets.push(target.plan);
        }
    }

    let mut file_sd = Vec::new();
    let mut seq = 0;
    for block in document.file_sd {
        let matched = file_sd::paths(path, &block.files);
        for file in &matched {
            seq += 1;
            let sd = file_sd::read(file, seq, &mut report);
            for target in &sd.targets {
                let source = sd.source();
                // The group's reader took a host:port or a URL; the block's kind says
                // which it must be (and, when it is the other, why).
                let http = block.check.kind() == CheckKind::Http;
                let endpoint = match (&target.endpoint, http) {
                    (Endpoint::Url(_), true) | (Endpoint::Tcp(_), false) => target.endpoint.clone(),
                    _ => {
                        let problem = if http {
                            parse_url(&target.address).err()
                        } else {
                            file_sd::parse_address(&target.address).err()
                        };
                        report.error(&source, target.at, problem.unwrap_or_default());
                        continue;
                    }
                };
                let name = if names.take(&target.address, &source, target.at) {
                    target.address.clone()
                } else {
                    // Listed again, or a [[targets]] table's name: another target,
                    // named by where it is listed.
                    let base = file_sd::later_name(path, file, target);
                    let mut name = base.clone();
                    let mut count = 1;
                    while !names.take(&name, &source, target.at) {
                        count += 1;
                        name = format!("{base}-{count}");
                    }
                    name
                };
                // A group's own label wins over the block's of the same name.
                let mut labels = block.labels.clone();
                labels.extend(target.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
                targets.push(TargetPlan {
                    name,
                    address: target.address.clone(),
                    endpoint,
                    labels,
                    check: block.check.clone(),
                });
            }
        }
        file_sd.push(FileSdPlan {
            files: block.files,
            matched,
            labels: block.labels,
            check: block.check,
        });
    }

    let mut modules = document.modules;
    let mut unsupported_modules = BTreeMap::new();
    let blackbox_config = document.blackbox_config.map(|config| {
        seq += 1;
        for named in read_blackbox(&config, &source, seq, &mut report) {
            if let Some(&toml_at) = document.module_at.get(&named.name) {
                report.error(
                    &source,
                    toml_at,
                    format!(
                        "module `{name}` is defined here and in {}:{}:{} (blackbox_config); a /probe module has one definition: rename or remove one of them",
                        config.path.display(),
                        named.at.line,
                        named.at.column,
                        name = named.name,
                    ),
                );
                continue;
            }
            match named.outcome {
                blackbox::Outcome::Runs(module) => {
                    modules.insert(named.name, module);
                }
                blackbox::Outcome::Unsupported(what) => {
                    unsupported_modules.insert(named.name, what);
                }
                blackbox::Outcome::Broken => {}
            }
        }
        config.path
    });

    if !report.is_empty() {
        return Err(ConfigErrors(report.into_sorted()));
    }
    Ok(Plan {
        source: path.to_owned(),
        defaults,
        defaults_timeout,
        targets,
        modules,
        unsupported_modules,
        blackbox_config,
        probe: document.probe,
        alerts: document.alerts,
        maintenance: document.maintenance,
        file_sd,
        read_at,
        warnings: report.sorted_warnings(),
    })
}
