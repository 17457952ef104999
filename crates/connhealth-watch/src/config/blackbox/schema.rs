//! blackbox_exporter 0.23's module file as serde reads it: one struct for each of
//! `config/config.go`'s (and prometheus/common v0.37's `HTTPClientConfig` and
//! `TLSConfig`, which blackbox 0.23 builds on), field for field, each with
//! `deny_unknown_fields` as blackbox's strict decoding (yaml.v3 with `KnownFields`) has.
//!
//! Every field is optional: blackbox's zero values and defaults are applied where the
//! file is turned into modules ([`super::convert`]), which knows what each one means. A
//! value that can be wrong on its own (a regex, a duration, a TLS version) is checked
//! here, as it is read, so its error has its place; one that needs more (a file, another
//! key) is kept with its place ([`Spanned`]) for the conversion.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::duration::{self, GoDuration};
use crate::config::plan::Pattern;
pub(super) use crate::config::yaml::Ordered;

/// The whole file: `modules:` and nothing else.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub(super) modules: Option<Ordered<Spanned<String>, Spanned<Option<ModuleYaml>>>>,
}

/// One module.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ModuleYaml {
    pub(super) prober: Option<Spanned<String>>,
    pub(super) timeout: Option<Spanned<GoDuration>>,
    pub(super) http: Option<Spanned<HttpProbe>>,
    pub(super) tcp: Option<Spanned<TcpProbe>>,
    pub(super) icmp: Option<Spanned<IcmpProbe>>,
    pub(super) dns: Option<Spanned<DnsProbe>>,
    pub(super) grpc: Option<Spanned<GrpcProbe>>,
}

/// `http:`: blackbox's `HTTPProbe`, with prometheus/common's `HTTPClientConfig` inline.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HttpProbe {
    pub(super) valid_status_codes: Option<Vec<Spanned<i64>>>,
    pub(super) valid_http_versions: Option<Vec<String>>,
    pub(super) preferred_ip_protocol: Option<Spanned<String>>,
    pub(super) ip_protocol_fallback: Option<bool>,
    /// Only meaningful with `proxy_url`, which connhealth does not implement.
    #[allow(dead_code)]
    pub(super) skip_resolve_phase_with_proxy: Option<bool>,
    pub(super) no_follow_redirects: Option<Spanned<bool>>,
    pub(super) fail_if_ssl: Option<bool>,
    pub(super) fail_if_not_ssl: Option<bool>,
    pub(super) method: Option<Spanned<String>>,
    pub(super) headers: Option<Ordered<Spanned<String>, Option<Spanned<String>>>>,
    pub(super) fail_if_body_matches_regexp: Option<Vec<Regexp>>,
    pub(super) fail_if_body_not_matches_regexp: Option<Vec<Regexp>>,
    pub(super) fail_if_header_matches: Option<Vec<Spanned<HeaderMatchYaml>>>,
    pub(super) fail_if_header_not_matches: Option<Vec<Spanned<HeaderMatchYaml>>>,
    pub(super) body: Option<String>,
    pub(super) compression: Option<Spanned<String>>,
    pub(super) body_size_limit: Option<Spanned<Scalar>>,
    // prometheus/common v0.37's HTTPClientConfig, inline.
    pub(super) basic_auth: Option<Spanned<BasicAuth>>,
    pub(super) authorization: Option<Spanned<Authorization>>,
    pub(super) oauth2: Option<Spanned<OAuth2>>,
    pub(super) bearer_token: Option<Spanned<String>>,
    pub(super) bearer_token_file: Option<Spanned<String>>,
    pub(super) proxy_url: Option<Spanned<String>>,
    pub(super) tls_config: Option<TlsConfigYaml>,
    pub(super) follow_redirects: Option<bool>,
    /// connhealth speaks HTTP/1.1; blackbox's default (true) offers HTTP/2 over TLS.
    #[allow(dead_code)]
    pub(super) enable_http2: Option<bool>,
}

/// One `fail_if_header_matches` / `fail_if_header_not_matches` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HeaderMatchYaml {
    pub(super) header: Option<Spanned<String>>,
    pub(super) regexp: Option<Regexp>,
    pub(super) allow_missing: Option<bool>,
}

/// `basic_auth:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BasicAuth {
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) password_file: Option<Spanned<String>>,
}

/// `authorization:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Authorization {
    #[serde(rename = "type")]
    pub(super) kind: Option<Spanned<String>>,
    pub(super) credentials: Option<String>,
    pub(super) credentials_file: Option<Spanned<String>>,
}

/// `oauth2:`: read so that its keys are checked; a module with it is not run.
// Read so that the keys and their types are checked as blackbox checks them; nothing
// here is used.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OAuth2 {
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<String>,
    pub(super) client_secret_file: Option<String>,
    pub(super) scopes: Option<Vec<String>>,
    pub(super) token_url: Option<String>,
    pub(super) endpoint_params: Option<BTreeMap<String, Option<String>>>,
    pub(super) proxy_url: Option<String>,
    pub(super) tls_config: Option<TlsConfigYaml>,
}

/// `tls_config:`: prometheus/common's `TLSConfig` (v0.37, blackbox 0.23's), and its
/// `max_version`, which v0.38 added (blackbox 0.24 on) and a TLS plan holds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsConfigYaml {
    pub(super) ca_file: Option<Spanned<String>>,
    pub(super) cert_file: Option<Spanned<String>>,
    pub(super) key_file: Option<Spanned<String>>,
    pub(super) server_name: Option<Spanned<String>>,
    pub(super) insecure_skip_verify: Option<bool>,
    pub(super) min_version: Option<Spanned<TlsVersionName>>,
    pub(super) max_version: Option<Spanned<TlsVersionName>>,
}

/// `tcp:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TcpProbe {
    pub(super) preferred_ip_protocol: Option<Spanned<String>>,
    pub(super) ip_protocol_fallback: Option<bool>,
    pub(super) source_ip_address: Option<Spanned<String>>,
    pub(super) query_response: Option<Vec<QueryResponseYaml>>,
    pub(super) tls: Option<bool>,
    pub(super) tls_config: Option<TlsConfigYaml>,
}

/// One `query_response` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QueryResponseYaml {
    pub(super) expect: Option<Regexp>,
    pub(super) send: Option<String>,
    pub(super) starttls: Option<bool>,
}

/// `icmp:`: read so that its keys are checked; connhealth has no icmp prober.
// Read so that the keys and their types are checked as blackbox checks them; nothing
// here is used.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IcmpProbe {
    pub(super) preferred_ip_protocol: Option<String>,
    pub(super) ip_protocol_fallback: Option<bool>,
    pub(super) source_ip_address: Option<String>,
    pub(super) payload_size: Option<i64>,
    pub(super) dont_fragment: Option<bool>,
    pub(super) ttl: Option<Spanned<i64>>,
}

/// `dns:`: read so that its keys are checked; connhealth has no dns prober.
// Read so that the keys and their types are checked as blackbox checks them; nothing
// here is used.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DnsProbe {
    pub(super) preferred_ip_protocol: Option<String>,
    pub(super) ip_protocol_fallback: Option<bool>,
    pub(super) dns_over_tls: Option<bool>,
    pub(super) tls_config: Option<TlsConfigYaml>,
    pub(super) source_ip_address: Option<String>,
    pub(super) transport_protocol: Option<String>,
    pub(super) query_class: Option<String>,
    pub(super) query_name: Option<String>,
    pub(super) query_type: Option<String>,
    pub(super) recursion_desired: Option<bool>,
    pub(super) valid_rcodes: Option<Vec<String>>,
    pub(super) validate_answer_rrs: Option<RrValidator>,
    pub(super) validate_authority_rrs: Option<RrValidator>,
    pub(super) validate_additional_rrs: Option<RrValidator>,
}

/// `validate_answer_rrs:` and its siblings.
// Read so that the keys and their types are checked as blackbox checks them; nothing
// here is used.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RrValidator {
    pub(super) fail_if_matches_regexp: Option<Vec<String>>,
    pub(super) fail_if_all_match_regexp: Option<Vec<String>>,
    pub(super) fail_if_not_matches_regexp: Option<Vec<String>>,
    pub(super) fail_if_none_matches_regexp: Option<Vec<String>>,
}

/// `grpc:`: read so that its keys are checked; connhealth has no grpc prober.
// Read so that the keys and their types are checked as blackbox checks them; nothing
// here is used.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GrpcProbe {
    pub(super) service: Option<String>,
    pub(super) tls: Option<bool>,
    pub(super) tls_config: Option<TlsConfigYaml>,
    pub(super) ip_protocol_fallback: Option<bool>,
    pub(super) preferred_ip_protocol: Option<String>,
}

/// The keys of each mapping above, as a message lists them, with the name a message
/// gives that mapping: serde's unknown-field error carries the list, which says which
/// mapping it is.
pub(super) const SECTIONS: [(&str, &[&str]); 14] = [
    ("at the top of a blackbox file", &["modules"]),
    (
        "in a module",
        &["prober", "timeout", "http", "tcp", "icmp", "dns", "grpc"],
    ),
    (
        "in `http`",
        &[
            "valid_status_codes",
            "valid_http_versions",
            "preferred_ip_protocol",
            "ip_protocol_fallback",
            "skip_resolve_phase_with_proxy",
            "no_follow_redirects",
            "fail_if_ssl",
            "fail_if_not_ssl",
            "method",
            "headers",
            "fail_if_body_matches_regexp",
            "fail_if_body_not_matches_regexp",
            "fail_if_header_matches",
            "fail_if_header_not_matches",
            "body",
            "compression",
            "body_size_limit",
            "basic_auth",
            "authorization",
            "oauth2",
            "bearer_token",
            "bearer_token_file",
            "proxy_url",
            "tls_config",
            "follow_redirects",
            "enable_http2",
        ],
    ),
    (
        "in a `fail_if_header_matches` or `fail_if_header_not_matches` entry",
        &["header", "regexp", "allow_missing"],
    ),
    (
        "in `basic_auth`",
        &["username", "password", "password_file"],
    ),
    (
        "in `authorization`",
        &["type", "credentials", "credentials_file"],
    ),
    (
        "in `oauth2`",
        &[
            "client_id",
            "client_secret",
            "client_secret_file",
            "scopes",
            "token_url",
            "endpoint_params",
            "proxy_url",
            "tls_config",
        ],
    ),
    (
        "in `tls_config`",
        &[
            "ca_file",
            "cert_file",
            "key_file",
            "server_name",
            "insecure_skip_verify",
            "min_version",
            "max_version",
        ],
    ),
    (
        "in `tcp`",
        &[
            "preferred_ip_protocol",
            "ip_protocol_fallback",
            "source_ip_address",
            "query_response",
            "tls",
            "tls_config",
        ],
    ),
    (
        "in a `query_response` entry",
        &["expect", "send", "starttls"],
    ),
    (
        "in `icmp`",
        &[
            "preferred_ip_protocol",
            "ip_protocol_fallback",
            "source_ip_address",
            "payload_size",
            "dont_fragment",
            "ttl",
        ],
    ),
    (
        "in `dns`",
        &[
            "preferred_ip_protocol",
            "ip_protocol_fallback",
            "dns_over_tls",
            "tls_config",
            "source_ip_address",
            "transport_protocol",
            "query_class",
            "query_name",
            "query_type",
            "recursion_desired",
            "valid_rcodes",
            "validate_answer_rrs",
            "validate_authority_rrs",
            "validate_additional_rrs",
        ],
    ),
    (
        "in `validate_answer_rrs` (and its siblings)",
        &[
            "fail_if_matches_regexp",
            "fail_if_all_match_regexp",
            "fail_if_not_matches_regexp",
            "fail_if_none_matches_regexp",
        ],
    ),
    (
        "in `grpc`",
        &[
            "service",
            "tls",
            "tls_config",
            "ip_protocol_fallback",
            "preferred_ip_protocol",
        ],
    ),
];

/// blackbox's `Regexp`: a string compiled at load. blackbox compiles it with Go's RE2;
/// this is Rust's `regex`, which reads the same syntax but for a few rarities (`\C`,
/// `\Q..\E`), over bytes as the probers match it.
#[derive(Debug)]
pub(super) struct Regexp(pub(super) Pattern);

impl<'de> Deserialize<'de> for Regexp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pattern = String::deserialize(deserializer)?;
        regex::bytes::Regex::new(&pattern)
            .map(|regex| Regexp(Pattern(regex)))
            .map_err(|err| {
                de::Error::custom(format!(
                    "{pattern:?} is not a valid regex: {}; fix the pattern (Go's RE2 syntax, which Rust's regex shares; in a YAML double-quoted string a backslash is written \\\\, in a single-quoted one as itself)",
                    crate::config::values::regex_reason(&err)
                ))
            })
    }
}

/// A TLS version as prometheus/common names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TlsVersionName {
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

impl TlsVersionName {
    pub(super) fn name(self) -> &'static str {
        match self {
            TlsVersionName::Tls10 => "TLS10",
            TlsVersionName::Tls11 => "TLS11",
            TlsVersionName::Tls12 => "TLS12",
            TlsVersionName::Tls13 => "TLS13",
        }
    }
}

impl<'de> Deserialize<'de> for TlsVersionName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(match text.as_str() {
            "TLS10" => TlsVersionName::Tls10,
            "TLS11" => TlsVersionName::Tls11,
            "TLS12" => TlsVersionName::Tls12,
            "TLS13" => TlsVersionName::Tls13,
            _ => {
                return Err(de::Error::custom(format!(
                    "{text:?} is not a TLS version blackbox knows; write TLS12 or TLS13 (TLS10 and TLS11 are known too, and rustls speaks neither)"
                )))
            }
        })
    }
}

/// Any scalar, as its text (`body_size_limit` is `10MB` or `1048576`): only whether it
/// is set matters here.
#[derive(Debug)]
pub(super) struct Scalar(pub(super) String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size, e.g. 10MB")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        deserializer.deserialize_any(Text)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = GoDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration, e.g. 5s")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<GoDuration, E> {
                duration::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<GoDuration, E> {
                Err(E::custom(duration::bare_number(&v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<GoDuration, E> {
                Err(E::custom(duration::bare_number(&v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<GoDuration, E> {
                Err(E::custom(duration::bare_number(&v.to_string())))
            }
        }
        deserializer.deserialize_any(Text)
    }
}
