//! A blackbox module, as read ([`super::schema`]), turned into a [`Module`]: blackbox's
//! defaults applied, what blackbox itself refuses on load refused, what connhealth does
//! not implement set aside (the module is then not run, and a warning says why), and every
//! file it names checked now.

use std::path::{Path, PathBuf};

use http::{HeaderName, HeaderValue, Method};
use serde_saphyr::{Location, Spanned};

use super::schema::{
    Authorization, BasicAuth, HeaderMatchYaml, HttpProbe, ModuleYaml, TcpProbe, TlsConfigYaml,
    TlsVersionName,
};
use crate::config::plan::{
    Check, ClientCert, HeaderMatch, HttpPlan, IpChoice, Module, QueryStep, StatusRange, TcpPlan,
    TlsPlan, TlsVersion,
};
use crate::config::span::{Report, Source};
use crate::config::values;

/// What became of one module.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// connhealth runs it.
    Runs(Module),
    /// It uses what connhealth does not implement: a short phrase naming that.
    Unsupported(String),
    /// It has an error (reported).
    Broken,
}

/// Something a module uses that connhealth does not implement.
#[derive(Debug)]
enum Lack {
    /// An icmp, dns or grpc prober.
    Prober(&'static str),
    /// A key, by its path from the module (`tcp.source_ip_address`).
    Key(String),
    /// A TLS version below 1.2, at its key's path.
    OldTls(String, TlsVersionName),
}

impl Lack {
    fn phrase(&self) -> String {
        match self {
            Lack::Prober(prober) => format!("blackbox's {prober} prober"),
            Lack::Key(key) => format!("`{key}`"),
            Lack::OldTls(key, version) => format!("`{key}: {}`", version.name()),
        }
    }
}

/// The byte offset of `location` in `text`: its byte offset when the parser gave one,
/// else counted from its line and (character) column.
pub(super) fn offset(text: &str, location: &Location) -> usize {
    if let Some(offset) = location.span().byte_offset() {
        return usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(text.len());
    }
    let (line, column) = (location.line(), location.column());
    if line == 0 {
        return 0;
    }
    let mut offset = 0;
    for (index, text_line) in text.split_inclusive('\n').enumerate() {
        if index as u64 + 1 == line {
            let within: usize = text_line
                .chars()
                .take(usize::try_from(column.saturating_sub(1)).unwrap_or(usize::MAX))
                .map(char::len_utf8)
                .sum();
            return offset + within;
        }
        offset += text_line.len();
    }
    text.len()
}

/// The conversion of the modules of one file.
pub(super) struct Convert<'a, 'r> {
    /// The file's folder: relative paths in it are relative to it, as prometheus/common's
    /// `SetDirectory` makes them.
    pub(super) base: &'a Path,
    /// The file.
    pub(super) source: Source<'a>,
    /// Where errors and warnings go.
    pub(super) report: &'r mut Report,
}

/// One module being converted: what it lacks, and whether it had an error.
struct Work<'c, 'a, 'r> {
    convert: &'c mut Convert<'a, 'r>,
    lacks: Vec<Lack>,
    broken: bool,
}

impl Work<'_, '_, '_> {
    fn error(&mut self, at: &Location, message: impl Into<String>) {
        self.broken = true;
        let offset = offset(self.convert.source.text, at);
        self.convert
            .report
            .error(&self.convert.source, offset, message);
    }

    fn warn(&mut self, at: &Location, message: impl Into<String>) {
        let offset = offset(self.convert.source.text, at);
        self.convert
            .report
            .warn(&self.convert.source, offset, message);
    }

    fn lack(&mut self, lack: Lack) {
        self.lacks.push(lack);
    }
}

const PROBERS: [&str; 5] = ["http", "tcp", "icmp", "dns", "grpc"];

impl Convert<'_, '_> {
    /// Module `name` as written at `name_at`.
    pub(super) fn module(
        &mut self,
        name: &str,
        name_at: &Location,
        module: Spanned<Option<ModuleYaml>>,
    ) -> Outcome {
        let mut work = Work {
            convert: self,
            lacks: Vec::new(),
            broken: false,
        };
        if name.is_empty() {
            work.error(
                name_at,
                "a module name cannot be empty (it is /probe's module=NAME); write e.g. tcp_connect:",
            );
        }
        let Some(module) = module.value else {
            work.error(
                name_at,
                format!("module `{name}` is empty; give it a prober below it, e.g. prober: tcp"),
            );
            return Outcome::Broken;
        };
        blackbox_checks(&mut work, &module);
        let timeout = module.timeout.as_ref().and_then(|timeout| {
            if timeout.value.negative {
                work.warn(
                    &timeout.referenced,
                    "a negative timeout is no timeout: blackbox takes the scrape's (less half a second) instead, and so does connhealth; remove it, or write e.g. timeout: 5s",
                );
            }
            let positive = timeout.value.positive();
            if positive.is_some_and(|t| t > values::MAX_DURATION) {
                work.error(
                    &timeout.referenced,
                    "the timeout is longer than 30 days, the most connhealth takes; write e.g. timeout: 5s",
                );
                return None;
            }
            positive
        });
        let prober = match &module.prober {
            None => {
                work.error(
                    name_at,
                    format!(
                        "module `{name}` has no `prober`; add one below it, e.g. prober: tcp (blackbox's probers: {})",
                        PROBERS.join(", ")
                    ),
                );
                return Outcome::Broken;
            }
            Some(prober) => match PROBERS.iter().find(|p| **p == prober.value) {
                Some(known) => *known,
                None => {
                    let near = crate::config::keys::closest(&prober.value, PROBERS)
                        .map_or(String::new(), |near| format!("did you mean {near}? "));
                    work.error(
                        &prober.referenced,
                        format!(
                            "unknown prober {:?}; {near}write one of: {}",
                            prober.value,
                            PROBERS.join(", ")
                        ),
                    );
                    return Outcome::Broken;
                }
            },
        };
        // Settings of another prober: blackbox reads them and never uses them.
        let blocks = [
            ("http", module.http.as_ref().map(|s| s.referenced)),
            ("tcp", module.tcp.as_ref().map(|s| s.referenced)),
            ("icmp", module.icmp.as_ref().map(|s| s.referenced)),
            ("dns", module.dns.as_ref().map(|s| s.referenced)),
            ("grpc", module.grpc.as_ref().map(|s| s.referenced)),
        ];
        for (block, at) in blocks {
            if let Some(at) = at.filter(|_| block != prober) {
                work.warn(
                    &at,
                    format!(
                        "module `{name}` has prober: {prober}, so its `{block}` settings are never used (by blackbox either); remove them, or set prober: {block}"
                    ),
                );
            }
        }
        let check = match prober {
            "http" => {
                let http = module.http.map(|s| s.value);
                Some(Check::Http(Box::new(http_plan(&mut work, http))))
            }
            "tcp" => {
                let tcp = module.tcp.map(|s| s.value);
                Some(Check::Tcp(Box::new(tcp_plan(&mut work, tcp))))
            }
            other => {
                work.lack(Lack::Prober(other));
                None
            }
        };
        if work.broken {
            return Outcome::Broken;
        }
        if !work.lacks.is_empty() {
            let phrases: Vec<String> = work.lacks.iter().map(Lack::phrase).collect();
            let phrase = phrases.join(", ");
            let message = match &work.lacks[0] {
                Lack::Prober(_) => format!(
                    "module `{name}` uses {phrase}, which connhealth does not run: /probe?module={name} will answer 400 saying so; probe it with blackbox_exporter (connhealth runs blackbox's tcp and http probers)"
                ),
                Lack::Key(_) => format!(
                    "module `{name}` uses {phrase}, which connhealth does not implement: /probe?module={name} will answer 400 rather than probe without it; remove it from the module to run it here"
                ),
                Lack::OldTls(..) => format!(
                    "module `{name}` uses {phrase}, a TLS version connhealth cannot offer (rustls speaks TLS 1.2 and 1.3 only): /probe?module={name} will answer 400; write TLS12 or TLS13 to run it here"
                ),
            };
            work.warn(name_at, message);
            return Outcome::Unsupported(phrase);
        }
        match check {
            Some(check) => Outcome::Runs(Module { check, timeout }),
            None => Outcome::Broken,
        }
    }
}

/// What blackbox 0.23 refuses when it loads a file, whichever prober the module has:
/// prometheus/common's `HTTPClientConfig.Validate`, the header matchers' two keys, a dns
/// module's query name, an icmp module's ttl.
fn blackbox_checks(work: &mut Work<'_, '_, '_>, module: &ModuleYaml) {
    if let Some(http) = &module.http {
        client_config_checks(work, &http.value);
        let matchers = [
            ("fail_if_header_matches", &http.value.fail_if_header_matches),
            (
                "fail_if_header_not_matches",
                &http.value.fail_if_header_not_matches,
            ),
        ];
        for (key, entries) in matchers {
            for entry in entries.iter().flatten() {
                header_match_checks(work, key, entry);
            }
        }
    }
    if let Some(dns) = &module.dns {
        if dns
            .value
            .query_name
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            work.error(
                &dns.referenced,
                "`dns` has no `query_name` (blackbox refuses a dns module without one); add one, e.g. query_name: example.com",
            );
        }
    }
    if let Some(ttl) = module
        .icmp
        .as_ref()
        .and_then(|icmp| icmp.value.ttl.as_ref())
    {
        if !(0..=255).contains(&ttl.value) {
            work.error(
                &ttl.referenced,
                format!(
                    "ttl {} is outside 0 to 255 (blackbox refuses it); write e.g. ttl: 64",
                    ttl.value
                ),
            );
        }
    }
}

fn set(text: &Option<String>) -> bool {
    text.as_deref().is_some_and(|text| !text.is_empty())
}

fn set_at(text: &Option<Spanned<String>>) -> Option<Location> {
    text.as_ref()
        .filter(|text| !text.value.is_empty())
        .map(|text| text.referenced)
}

/// prometheus/common v0.37's `HTTPClientConfig.Validate`, in its order, each refusal
/// where its second key is.
fn client_config_checks(work: &mut Work<'_, '_, '_>, http: &HttpProbe) {
    let bearer = set_at(&http.bearer_token);
    let bearer_file = set_at(&http.bearer_token_file);
    let basic = http.basic_auth.as_ref().map(|s| s.referenced);
    let oauth2 = http.oauth2.as_ref().map(|s| s.referenced);
    let authorization = http.authorization.as_ref().map(|s| s.referenced);
    if let (Some(_), Some(at)) = (bearer, bearer_file) {
        work.error(
            &at,
            "`bearer_token` and `bearer_token_file` are both set, and blackbox takes one; remove one of them",
        );
        return;
    }
    if let (Some(auth), Some(token)) = (basic.or(oauth2), bearer.or(bearer_file)) {
        let which = if basic.is_some() {
            "basic_auth"
        } else {
            "oauth2"
        };
        work.error(
            &token.max_by_line(auth),
            format!("`{which}` and a bearer token are both set, and blackbox takes one; remove one of them"),
        );
        return;
    }
    if let Some(basic_auth) = &http.basic_auth {
        if set(&basic_auth.value.password) {
            if let Some(at) = set_at(&basic_auth.value.password_file) {
                work.error(
                    &at,
                    "`password` and `password_file` are both set, and blackbox takes one; remove one of them",
                );
                return;
            }
        }
    }
    if let (Some(auth), Some(authorization)) = (&authorization, &http.authorization) {
        if let Some(token) = bearer.or(bearer_file) {
            work.error(
                &token.max_by_line(*auth),
                "`authorization` and a bearer token are both set, and blackbox takes one; write the token as authorization: {credentials: TOKEN} and remove bearer_token",
            );
            return;
        }
        let Authorization {
            kind,
            credentials,
            credentials_file,
        } = &authorization.value;
        if set(credentials) {
            if let Some(at) = set_at(credentials_file) {
                work.error(
                    &at,
                    "`credentials` and `credentials_file` are both set, and blackbox takes one; remove one of them",
                );
                return;
            }
        }
        if let Some(kind) = kind {
            if kind.value.trim().eq_ignore_ascii_case("basic") {
                work.error(
                    &kind.referenced,
                    "authorization type cannot be \"basic\" (blackbox refuses it); write basic_auth: {username: USER, password: PASSWORD} instead",
                );
                return;
            }
        }
        if let Some(other) = basic.or(oauth2) {
            let which = if basic.is_some() {
                "basic_auth"
            } else {
                "oauth2"
            };
            work.error(
                &other.max_by_line(*auth),
                format!("`authorization` and `{which}` are both set, and blackbox takes one; remove one of them"),
            );
            return;
        }
    }
    if let Some(oauth2) = &http.oauth2 {
        if let Some(basic) = basic {
            work.error(
                &basic.max_by_line(oauth2.referenced),
                "`oauth2` and `basic_auth` are both set, and blackbox takes one; remove one of them",
            );
            return;
        }
        let o = &oauth2.value;
        let missing = if !set(&o.client_id) {
            Some("`client_id`")
        } else if !set(&o.client_secret) && !set(&o.client_secret_file) {
            Some("`client_secret` or `client_secret_file`")
        } else if !set(&o.token_url) {
            Some("`token_url`")
        } else {
            None
        };
        if let Some(missing) = missing {
            work.error(
                &oauth2.referenced,
                format!("`oauth2` needs {missing} (blackbox refuses it without); add it, e.g. oauth2: {{client_id: ID, client_secret: SECRET, token_url: https://auth.example.com/token}}"),
            );
        } else if set(&o.client_secret) && set(&o.client_secret_file) {
            work.error(
                &oauth2.referenced,
                "`client_secret` and `client_secret_file` are both set, and blackbox takes one; remove one of them",
            );
        }
    }
}

/// The later of two places, for a refusal of a pair: where the second one is written.
trait Later {
    fn max_by_line(self, other: Location) -> Location;
}

impl Later for Location {
    fn max_by_line(self, other: Location) -> Location {
        if (other.line(), other.column()) > (self.line(), self.column()) {
            other
        } else {
            self
        }
    }
}

/// blackbox's `HeaderMatch` checks: a header and a regexp, both set.
fn header_match_checks(work: &mut Work<'_, '_, '_>, key: &str, entry: &Spanned<HeaderMatchYaml>) {
    let header_set = entry
        .value
        .header
        .as_ref()
        .is_some_and(|h| !h.value.is_empty());
    if !header_set {
        work.error(
            &entry.referenced,
            format!("this `{key}` entry has no `header` (blackbox refuses it); add one, e.g. header: Set-Cookie"),
        );
    }
    let regexp_set = entry
        .value
        .regexp
        .as_ref()
        .is_some_and(|r| !r.0 .0.as_str().is_empty());
    if !regexp_set {
        work.error(
            &entry.referenced,
            format!("this `{key}` entry has no `regexp` (blackbox refuses it); add one, e.g. regexp: '.*'"),
        );
    }
}

/// `preferred_ip_protocol` and `ip_protocol_fallback`: blackbox reads `ip6` (and
/// nothing) as IPv6, anything else as IPv4; the fallback is on unless turned off.
fn ip_choice(
    work: &mut Work<'_, '_, '_>,
    preferred: Option<Spanned<String>>,
    fallback: Option<bool>,
) -> IpChoice {
    let preferred = match preferred {
        None => 6,
        Some(written) => match written.value.as_str() {
            "" | "ip6" => 6,
            "ip4" => 4,
            other => {
                work.warn(
                    &written.referenced,
                    format!("preferred_ip_protocol {other:?} is read as ip4, as blackbox reads anything but ip6; write ip4 or ip6"),
                );
                4
            }
        },
    };
    IpChoice::Prefer {
        preferred,
        fallback: fallback.unwrap_or(true),
    }
}

fn tcp_plan(work: &mut Work<'_, '_, '_>, tcp: Option<TcpProbe>) -> TcpPlan {
    let Some(tcp) = tcp else {
        return TcpPlan::default();
    };
    if set_at(&tcp.source_ip_address).is_some() {
        work.lack(Lack::Key("tcp.source_ip_address".to_owned()));
    }
    let ip = ip_choice(work, tcp.preferred_ip_protocol, tcp.ip_protocol_fallback);
    let tls_config = tls_plan(work, tcp.tls_config, "tcp.tls_config");
    let query_response = tcp
        .query_response
        .unwrap_or_default()
        .into_iter()
        .map(|step| QueryStep {
            expect: step.expect.map(|regexp| regexp.0),
            send: step.send.unwrap_or_default(),
            starttls: step.starttls.unwrap_or(false),
        })
        .collect();
    TcpPlan {
        ip,
        tls: tcp.tls.unwrap_or(false),
        tls_config,
        query_response,
    }
}

fn http_plan(work: &mut Work<'_, '_, '_>, http: Option<HttpProbe>) -> HttpPlan {
    // blackbox opens a connection for every probe; its default address choice.
    let mut plan = HttpPlan {
        ip: IpChoice::BLACKBOX,
        reuse_connection: false,
        ..HttpPlan::default()
    };
    let Some(http) = http else {
        return plan;
    };
    let authorization = authorization(work, &http);
    plan.ip = ip_choice(work, http.preferred_ip_protocol, http.ip_protocol_fallback);
    // Listed codes replace the 2xx default; none listed (or `[]`) keeps it.
    let mut codes = Vec::new();
    for code in http.valid_status_codes.unwrap_or_default() {
        match u16::try_from(code.value)
            .ok()
            .filter(|code| (100..=999).contains(code))
        {
            Some(code) => codes.push(StatusRange {
                low: code,
                high: code,
            }),
            None => work.error(
                &code.referenced,
                format!(
                    "{} in `valid_status_codes` is not an HTTP status code (100 to 999), so no answer could have it; write e.g. valid_status_codes: [200, 204], or [] for any 2xx",
                    code.value
                ),
            ),
        }
    }
    if !codes.is_empty() {
        plan.valid_status = codes;
    }
    plan.valid_http_versions = http.valid_http_versions.unwrap_or_default();
    plan.follow_redirects = http.follow_redirects.unwrap_or(true);
    if let Some(no_follow) = http.no_follow_redirects {
        plan.follow_redirects = !no_follow.value;
        work.warn(
            &no_follow.referenced,
            format!(
                "`no_follow_redirects` is deprecated (blackbox 0.23 warns of it, later versions refuse it); write follow_redirects: {} instead",
                !no_follow.value
            ),
        );
    }
    plan.fail_if_ssl = http.fail_if_ssl.unwrap_or(false);
    plan.fail_if_not_ssl = http.fail_if_not_ssl.unwrap_or(false);
    if let Some(method) = http.method.filter(|m| !m.value.is_empty()) {
        // Sent as written, as Go sends it.
        match Method::from_bytes(method.value.as_bytes()) {
            Ok(parsed) => plan.method = parsed,
            Err(_) => work.error(
                &method.referenced,
                format!(
                    "method {:?} is not an HTTP method (one word of letters, digits and !#$%&'*+-.^_`|~); write e.g. method: GET or method: POST",
                    method.value
                ),
            ),
        }
    }
    for (name, value) in http.headers.map(|h| h.0).unwrap_or_default() {
        let header = match HeaderName::from_bytes(name.value.as_bytes()) {
            Ok(header) => header,
            Err(_) => {
                work.error(
                    &name.referenced,
                    format!(
                        "header name {:?} is not a valid HTTP header name (letters, digits and -); write e.g. Accept-Language: en-US",
                        name.value
                    ),
                );
                continue;
            }
        };
        let (text, at) = value.map_or((String::new(), name.referenced), |v| {
            (v.value, v.referenced)
        });
        match HeaderValue::from_str(&text) {
            Ok(value) => plan.headers.push((header, value)),
            Err(_) => work.error(
                &at,
                format!(
                    "the value of header {:?} holds a character HTTP does not allow in a header (a control character or a line break); remove it",
                    name.value
                ),
            ),
        }
    }
    plan.fail_if_body_matches = http
        .fail_if_body_matches_regexp
        .unwrap_or_default()
        .into_iter()
        .map(|regexp| regexp.0)
        .collect();
    plan.fail_if_body_not_matches = http
        .fail_if_body_not_matches_regexp
        .unwrap_or_default()
        .into_iter()
        .map(|regexp| regexp.0)
        .collect();
    plan.fail_if_header_matches = header_matches(work, http.fail_if_header_matches);
    plan.fail_if_header_not_matches = header_matches(work, http.fail_if_header_not_matches);
    plan.body = http.body.unwrap_or_default().into_bytes();
    if set_at(&http.compression).is_some() {
        work.lack(Lack::Key("http.compression".to_owned()));
    }
    if let Some(limit) = &http.body_size_limit {
        if !matches!(limit.value.0.trim(), "" | "0" | "0B") {
            work.lack(Lack::Key("http.body_size_limit".to_owned()));
        }
    }
    if set_at(&http.proxy_url).is_some() {
        work.lack(Lack::Key("http.proxy_url".to_owned()));
    }
    if http.oauth2.is_some() {
        work.lack(Lack::Key("http.oauth2".to_owned()));
    }
    plan.tls = tls_plan(work, http.tls_config, "http.tls_config");
    // An Authorization header written in `headers` wins, as prometheus/common's round
    // trippers leave a request that has one alone.
    if let Some((value, at)) = authorization {
        if !plan
            .headers
            .iter()
            .any(|(name, _)| name == http::header::AUTHORIZATION)
        {
            match HeaderValue::from_str(&value) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    plan.headers.push((http::header::AUTHORIZATION, value));
                }
                Err(_) => work.error(
                    &at,
                    "the credentials hold a character HTTP does not allow in a header (a control character or a line break); remove it",
                ),
            }
        }
    }
    plan
}

/// The `Authorization` header that `basic_auth`, `authorization` or `bearer_token` makes,
/// with where it is written; a `_file` variant is not implemented.
fn authorization(work: &mut Work<'_, '_, '_>, http: &HttpProbe) -> Option<(String, Location)> {
    if let Some(basic) = &http.basic_auth {
        let BasicAuth {
            username,
            password,
            password_file,
        } = &basic.value;
        if set_at(password_file).is_some() {
            work.lack(Lack::Key("http.basic_auth.password_file".to_owned()));
            return None;
        }
        // As Go's SetBasicAuth, with the password trimmed as prometheus/common trims it.
        let pair = format!(
            "{}:{}",
            username.as_deref().unwrap_or_default(),
            password.as_deref().unwrap_or_default().trim()
        );
        return Some((
            format!("Basic {}", base64(pair.as_bytes())),
            basic.referenced,
        ));
    }
    if let Some(authorization) = &http.authorization {
        let Authorization {
            kind,
            credentials,
            credentials_file,
        } = &authorization.value;
        if set_at(credentials_file).is_some() {
            work.lack(Lack::Key("http.authorization.credentials_file".to_owned()));
            return None;
        }
        let kind = kind
            .as_ref()
            .map(|k| k.value.trim())
            .filter(|k| !k.is_empty())
            .unwrap_or("Bearer");
        let credentials = credentials.as_deref().unwrap_or_default();
        return Some((format!("{kind} {credentials}"), authorization.referenced));
    }
    if set_at(&http.bearer_token_file).is_some() {
        work.lack(Lack::Key("http.bearer_token_file".to_owned()));
        return None;
    }
    let token = http.bearer_token.as_ref().filter(|t| !t.value.is_empty())?;
    Some((format!("Bearer {}", token.value), token.referenced))
}

/// Standard base64 with padding, as Go's `SetBasicAuth` writes it.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn header_matches(
    work: &mut Work<'_, '_, '_>,
    entries: Option<Vec<Spanned<HeaderMatchYaml>>>,
) -> Vec<HeaderMatch> {
    let mut matches = Vec::new();
    for entry in entries.unwrap_or_default() {
        let HeaderMatchYaml {
            header,
            regexp,
            allow_missing,
        } = entry.value;
        // Missing ones are reported by `header_match_checks`.
        let (Some(header), Some(regexp)) = (header, regexp) else {
            continue;
        };
        if header.value.is_empty() || regexp.0 .0.as_str().is_empty() {
            continue;
        }
        match HeaderName::from_bytes(header.value.as_bytes()) {
            Ok(name) => matches.push(HeaderMatch {
                header: name,
                regexp: regexp.0,
                allow_missing: allow_missing.unwrap_or(false),
            }),
            Err(_) => work.error(
                &header.referenced,
                format!(
                    "header {:?} is not a valid HTTP header name (letters, digits and -); write e.g. header: Set-Cookie",
                    header.value
                ),
            ),
        }
    }
    matches
}

/// `tls_config` (at `key`, for messages): files joined to the file's folder and read now,
/// the versions rustls can offer.
fn tls_plan(work: &mut Work<'_, '_, '_>, tls: Option<TlsConfigYaml>, key: &str) -> TlsPlan {
    let mut plan = TlsPlan::default();
    let Some(tls) = tls else {
        return plan;
    };
    let base = work.convert.base;
    if let Some(ca_file) = tls.ca_file.filter(|f| !f.value.is_empty()) {
        match values::pem_ca_file(&ca_file.value, base, "the blackbox file's folder") {
            Ok(path) => plan.ca_file = Some(path),
            Err(message) => work.error(&ca_file.referenced, message),
        }
    }
    let cert = tls.cert_file.filter(|f| !f.value.is_empty());
    let key_file = tls.key_file.filter(|f| !f.value.is_empty());
    match (cert, key_file) {
        (Some(cert), Some(key_file)) => {
            let cert_path = pem_file(work, &cert, Pem::Certificates, base);
            let key_path = pem_file(work, &key_file, Pem::Key, base);
            if let (Some(cert_file), Some(key_file)) = (cert_path, key_path) {
                plan.client_cert = Some(ClientCert {
                    cert_file,
                    key_file,
                });
            }
        }
        (Some(cert), None) => work.error(
            &cert.referenced,
            format!("`{key}.cert_file` is set without `key_file`; a client certificate needs its key: add key_file: client.key"),
        ),
        (None, Some(key_file)) => work.error(
            &key_file.referenced,
            format!("`{key}.key_file` is set without `cert_file`; a client key needs its certificate: add cert_file: client.crt"),
        ),
        (None, None) => {}
    }
    if let Some(server_name) = tls.server_name.filter(|s| !s.value.is_empty()) {
        match tokio_rustls::rustls::pki_types::ServerName::try_from(server_name.value.as_str()) {
            Ok(_) => plan.server_name = Some(server_name.value),
            Err(_) => work.error(
                &server_name.referenced,
                format!(
                    "server_name {:?} is neither a DNS name nor an IP address; write the name the certificate is for, e.g. server_name: example.com",
                    server_name.value
                ),
            ),
        }
    }
    plan.insecure = tls.insecure_skip_verify.unwrap_or(false);
    let mut version = |name: &str, written: Option<Spanned<TlsVersionName>>| {
        let written = written?;
        match written.value {
            TlsVersionName::Tls12 => Some((TlsVersion::Tls12, written.referenced)),
            TlsVersionName::Tls13 => Some((TlsVersion::Tls13, written.referenced)),
            old => {
                work.lack(Lack::OldTls(format!("{key}.{name}"), old));
                None
            }
        }
    };
    let min = version("min_version", tls.min_version);
    let max = version("max_version", tls.max_version);
    if let (Some((min, at)), Some((max, _))) = (min, max) {
        if min > max {
            work.error(
                &at,
                "min_version is above max_version, which leaves no TLS version to offer; lower min_version or raise max_version",
            );
        }
    }
    plan.min_version = min.map(|(v, _)| v);
    plan.max_version = max.map(|(v, _)| v);
    plan
}

/// What a PEM file must hold.
#[derive(Clone, Copy)]
enum Pem {
    Certificates,
    Key,
}

/// `written` joined to `base`, read now: it must hold what `what` says.
fn pem_file(
    work: &mut Work<'_, '_, '_>,
    written: &Spanned<String>,
    what: Pem,
    base: &Path,
) -> Option<PathBuf> {
    let (key, holds) = match what {
        Pem::Certificates => ("cert_file", "a PEM file of the client certificate"),
        Pem::Key => (
            "key_file",
            "a PEM file of the client certificate's private key",
        ),
    };
    let path = base.join(&written.value);
    let problem = match std::fs::read(&path) {
        Err(err) => Some(if err.kind() == std::io::ErrorKind::NotFound {
            "does not exist".to_owned()
        } else {
            format!("cannot be read: {err}")
        }),
        Ok(contents) => match what {
            Pem::Certificates => {
                let certs: Result<Vec<_>, _> =
                    rustls_pemfile::certs(&mut contents.as_slice()).collect();
                match certs {
                    Ok(certs) if !certs.is_empty() => None,
                    Ok(_) => {
                        Some("holds no PEM certificate (no -----BEGIN CERTIFICATE-----)".to_owned())
                    }
                    Err(err) => Some(format!("is not valid PEM ({err})")),
                }
            }
            Pem::Key => match rustls_pemfile::private_key(&mut contents.as_slice()) {
                Ok(Some(_)) => None,
                Ok(None) => Some(
                    "holds no PEM private key (no -----BEGIN PRIVATE KEY----- or RSA or EC one)"
                        .to_owned(),
                ),
                Err(err) => Some(format!("is not valid PEM ({err})")),
            },
        },
    };
    match problem {
        None => Some(path),
        Some(problem) => {
            work.error(
                &written.referenced,
                format!(
                    "{key} {:?} (looked at {}) {problem}; write the path of {holds} (a relative path is relative to the blackbox file's folder)",
                    written.value,
                    path.display()
                ),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_pads_as_go_does() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"username:mysecret"), "dXNlcm5hbWU6bXlzZWNyZXQ=");
    }
}
