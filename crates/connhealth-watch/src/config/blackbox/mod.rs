//! `blackbox_config`: blackbox_exporter 0.23's own module file (`blackbox.yml`), read as
//! it is, its `tcp` and `http` modules turned into `/probe` modules.
//!
//! The file is read as blackbox reads it ([`schema`]): every key blackbox knows, and no
//! other (an unknown key is an error, as blackbox's strict decoding makes it one), with
//! blackbox's defaults (IPv6 preferred with a fallback to IPv4, redirects followed, any
//! 2xx). A module whose prober connhealth does not run (`icmp`, `dns`, `grpc`), or that
//! uses a key connhealth does not implement, is not an error: it is set aside
//! ([`Outcome::Unsupported`]), `/probe?module=NAME` answers 400 for it, and a warning at
//! its name says so. Relative paths are relative to the file's folder, as
//! prometheus/common's `SetDirectory` makes them.
//!
//! A YAML error stops the read where it is (serde reads up to the first); the checks
//! after it (files, headers, what blackbox refuses on load) report every problem.

mod convert;
mod duration;
mod schema;

use std::path::Path;

use serde_saphyr::Error;

use self::convert::Convert;
pub(crate) use self::convert::Outcome;
use super::span::{line_column, LineColumn, Report, Source};

/// One module of the file.
#[derive(Debug)]
pub(crate) struct Named {
    /// Its name: `/probe`'s `module`.
    pub(crate) name: String,
    /// Where the name is written.
    pub(crate) at: LineColumn,
    /// What became of it.
    pub(crate) outcome: Outcome,
}

/// The modules of `text`, read as the blackbox file at `path` (`seq`: its rank in the
/// load, for the order of errors), in file order; every problem goes to `report`.
pub(crate) fn parse(path: &Path, text: &str, seq: usize, report: &mut Report) -> Vec<Named> {
    let source = Source { path, text, seq };
    let mut options = serde_saphyr::Options::default();
    // The message is ours, with the place beside it: no snippet of the file in it.
    options.with_snippet = false;
    let file: schema::File = match serde_saphyr::from_str_with_options(text, options) {
        Ok(file) => file,
        Err(err) => {
            let (at, message) = message(&err, text);
            report.error(&source, at, message);
            return Vec::new();
        }
    };
    let mut convert = Convert {
        base: path.parent().unwrap_or(Path::new("")),
        source,
        report,
    };
    let mut modules: Vec<Named> = Vec::new();
    for (name, module) in file.modules.map(|m| m.0).unwrap_or_default() {
        let at_offset = convert::offset(text, &name.referenced);
        // YAML tells `1` from `"1"`; a module name does not.
        if modules.iter().any(|named| named.name == name.value) {
            convert.report.error(
                &convert.source,
                at_offset,
                format!(
                    "module `{}` is defined twice in this file (a number and a string read alike); rename one of them",
                    name.value
                ),
            );
            continue;
        }
        let outcome = convert.module(&name.value, &name.referenced, module);
        modules.push(Named {
            name: name.value,
            at: line_column(text, at_offset),
            outcome,
        });
    }
    modules
}

/// Where `err` is in `text`, and its message in connhealth's words: what is wrong, and
/// what to write instead.
fn message(err: &Error, text: &str) -> (usize, String) {
    let at = err
        .location()
        .map_or(0, |location| convert::offset(text, &location));
    let message = match err {
        // Ours, from a value's own reading (a regex, a duration, a TLS version).
        Error::Message { msg, .. } => msg.clone(),
        Error::SerdeUnknownField {
            field, expected, ..
        } => unknown_key(field, expected),
        Error::DuplicateMappingKey { key, .. } => {
            let key = key.as_deref().unwrap_or("this key");
            format!("`{key}` is written twice in one mapping, which blackbox refuses too; keep one of them")
        }
        Error::ExternalMessage { msg, .. } => format!(
            "this is not valid YAML ({}); fix the YAML here: blackbox would refuse it too",
            one_line(msg)
        ),
        Error::MultipleDocuments { .. } => "the blackbox file holds a second YAML document (after `---`); blackbox reads the first only: remove the `---` and what follows".to_owned(),
        other => {
            let words = library_words(other);
            let expected = key_before(text, at).and_then(|(key, parent)| {
                let expected = if parent.as_deref() == Some("modules") {
                    Some(("a module (a mapping)", format!("{key}: {{prober: tcp}}")))
                } else {
                    expected(&key)
                };
                expected.map(|expected| (key, expected))
            });
            match expected {
                Some((key, (what, example))) => format!(
                    "`{key}` must be {what} ({words}); write e.g. {example}"
                ),
                None => format!(
                    "cannot read this value ({words}); write what blackbox's configuration reference gives for this key"
                ),
            }
        }
    };
    (at, message)
}

/// The library's own message, on one line, without its " at line L, column C".
fn library_words(err: &Error) -> String {
    one_line(&super::yaml::without_place(err))
}

fn one_line(text: &str) -> String {
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    parts.join("; ")
}

/// Keys of later blackbox versions (prometheus/common after v0.37), which blackbox 0.23
/// refuses.
const LATER_KEYS: [&str; 10] = [
    "ca",
    "cert",
    "key",
    "ca_ref",
    "cert_ref",
    "key_ref",
    "no_proxy",
    "proxy_from_environment",
    "proxy_connect_header",
    "http_headers",
];

/// The message for `field`, which the mapping whose keys are `expected` does not take.
fn unknown_key(field: &str, expected: &[&str]) -> String {
    let place = schema::SECTIONS
        .iter()
        .find(|(_, keys)| *keys == expected)
        .map_or("here", |(place, _)| place);
    let mut message = format!("unknown key `{field}` {place}");
    let homes: Vec<&str> = schema::SECTIONS
        .iter()
        .filter(|(_, keys)| *keys != expected && keys.contains(&field))
        .map(|(place, _)| *place)
        .collect();
    if let Some(near) = crate::config::keys::closest(field, expected.iter().copied()) {
        message.push_str(&format!("; did you mean `{near}`?"));
    } else if !homes.is_empty() {
        message.push_str(&format!(": it belongs {}.", homes.join(", or ")));
    } else if LATER_KEYS.contains(&field) {
        message.push_str(": it came with a later blackbox; blackbox 0.23, whose file this is read as, refuses it too.");
    } else {
        message.push_str(": blackbox refuses it too.");
    }
    if !message.ends_with('.') && !message.ends_with('?') {
        message.push('.');
    }
    message.push_str(&format!(" The keys {place} are: {}", expected.join(", ")));
    message
}

/// The key whose value starts at (or holds) byte `at` of `text`, as written in block
/// style (`key: value`, or `key:` above a value or a list of them), and the key of the
/// mapping that holds it, when there is one.
fn key_before(text: &str, at: usize) -> Option<(String, Option<String>)> {
    let at = at.min(text.len());
    let line_start = text
        .get(..at)
        .and_then(|before| before.rfind('\n'))
        .map_or(0, |i| i + 1);
    let before = String::from_utf8_lossy(&text.as_bytes()[line_start..at]).into_owned();
    let (key, key_indent, key_line_start) = match key_ending(&before) {
        Some(key) => (key, indent_of(&before), line_start),
        None => {
            // Nothing but `- ` or indentation before the value: the key is on a line
            // above, less indented than the value.
            if !before
                .trim_start()
                .trim_start_matches('-')
                .trim()
                .is_empty()
            {
                return None;
            }
            let (line, start) = line_above(text, line_start, indent_of(&before), true)?;
            (key_ending(line)?, indent_of(line), start)
        }
    };
    let parent =
        line_above(text, key_line_start, key_indent, false).and_then(|(line, _)| key_ending(line));
    Some((key, parent))
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The nearest line above `line_start` that is less indented than `indent` (or as
/// indented and not a list item, when `same_ok`), and where it starts; blank and comment
/// lines are skipped.
fn line_above(
    text: &str,
    line_start: usize,
    indent: usize,
    same_ok: bool,
) -> Option<(&str, usize)> {
    let above = text.get(..line_start.saturating_sub(1))?;
    let mut end = above.len();
    loop {
        let start = above.get(..end)?.rfind('\n').map_or(0, |i| i + 1);
        let line = above.get(start..end)?;
        let trimmed = line.trim_start();
        if !trimmed.is_empty() && !trimmed.starts_with('#') {
            let line_indent = indent_of(line);
            if line_indent < indent
                || (same_ok && line_indent == indent && !trimmed.starts_with('-'))
            {
                return Some((line, start));
            }
        }
        if start == 0 {
            return None;
        }
        end = start - 1;
    }
}

/// The key of a line `  - key:` (or `key: [`), when it ends so.
fn key_ending(line: &str) -> Option<String> {
    // A comment: ` #` to the end (a `#` inside a quoted key is not looked for).
    let line = line.find(" #").map_or(line, |hash| &line[..hash]);
    let rest = line.trim_end().trim_end_matches(['[', '{', ' ', '-']);
    let rest = rest.strip_suffix(':')?;
    let key: String = rest
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-' || *c == '.')
        .collect::<Vec<char>>()
        .into_iter()
        .rev()
        .collect();
    (!key.is_empty()).then_some(key)
}

/// What `key` takes, and an example of it written right.
fn expected(key: &str) -> Option<(&'static str, String)> {
    let flag = |key: &str| Some(("true or false", format!("{key}: true")));
    let regexes = |key: &str| {
        Some((
            "a list of regexes",
            format!("{key}: [\"Could not connect\"]"),
        ))
    };
    let strings =
        |key: &str, example: &str| Some(("a list of strings", format!("{key}: [{example}]")));
    let string = |key: &str, example: &str| Some(("a string", format!("{key}: {example}")));
    match key {
        "modules" => Some((
            "a mapping of module names to modules",
            "modules: {tcp_connect: {prober: tcp}}".to_owned(),
        )),
        "prober" => Some(("a prober's name", "prober: http".to_owned())),
        "timeout" => Some(("a duration", "timeout: 5s".to_owned())),
        "http" => Some(("a mapping of http settings", "http: {method: GET}".to_owned())),
        "tcp" => Some(("a mapping of tcp settings", "tcp: {tls: true}".to_owned())),
        "icmp" => Some(("a mapping of icmp settings", "icmp: {preferred_ip_protocol: ip4}".to_owned())),
        "dns" => Some(("a mapping of dns settings", "dns: {query_name: example.com}".to_owned())),
        "grpc" => Some(("a mapping of grpc settings", "grpc: {tls: true}".to_owned())),
        "valid_status_codes" => Some((
            "a list of status codes",
            "valid_status_codes: [200, 204]".to_owned(),
        )),
        "valid_http_versions" => strings(key, "\"HTTP/1.1\", \"HTTP/2.0\""),
        "preferred_ip_protocol" => Some(("ip4 or ip6", "preferred_ip_protocol: ip4".to_owned())),
        "ip_protocol_fallback" | "skip_resolve_phase_with_proxy" | "no_follow_redirects"
        | "fail_if_ssl" | "fail_if_not_ssl" | "follow_redirects" | "enable_http2"
        | "insecure_skip_verify" | "tls" | "starttls" | "allow_missing" | "dont_fragment"
        | "dns_over_tls" | "recursion_desired" => flag(key),
        "method" => string(key, "GET"),
        "headers" => Some((
            "a mapping of header names to values",
            "headers: {Accept-Language: en-US}".to_owned(),
        )),
        "fail_if_body_matches_regexp" | "fail_if_body_not_matches_regexp" => regexes(key),
        "fail_if_header_matches" | "fail_if_header_not_matches" => Some((
            "a list of header matchers",
            format!("{key}: [{{header: Set-Cookie, regexp: '.*'}}]"),
        )),
        "body" => string(key, "'{}'"),
        "compression" => string(key, "gzip"),
        "body_size_limit" => Some(("a size", "body_size_limit: 10MB".to_owned())),
        "basic_auth" => Some((
            "a mapping",
            "basic_auth: {username: prober, password: secret}".to_owned(),
        )),
        "authorization" => Some((
            "a mapping",
            "authorization: {type: Bearer, credentials: secret}".to_owned(),
        )),
        "oauth2" => Some((
            "a mapping",
            "oauth2: {client_id: id, client_secret: secret, token_url: https://auth.example.com/token}"
                .to_owned(),
        )),
        "tls_config" => Some((
            "a mapping of TLS settings",
            "tls_config: {insecure_skip_verify: true}".to_owned(),
        )),
        "ca_file" | "cert_file" | "key_file" | "password_file" | "credentials_file"
        | "bearer_token_file" | "client_secret_file" => Some(("a path", format!("{key}: secret/{key}"))),
        "server_name" => string(key, "example.com"),
        "min_version" | "max_version" => Some(("a TLS version", format!("{key}: TLS12"))),
        "source_ip_address" => string(key, "192.0.2.1"),
        "query_response" => Some((
            "a list of steps",
            "query_response: [{expect: \"^220\"}, {send: QUIT}]".to_owned(),
        )),
        "expect" | "regexp" => Some(("a regex", format!("{key}: \"^220\""))),
        "send" => string(key, "\"EHLO prober\""),
        "header" => string(key, "Set-Cookie"),
        "payload_size" | "ttl" => Some(("a whole number", format!("{key}: 64"))),
        "valid_rcodes" => strings(key, "NOERROR"),
        "scopes" => strings(key, "read"),
        "fail_if_matches_regexp" | "fail_if_all_match_regexp" | "fail_if_not_matches_regexp"
        | "fail_if_none_matches_regexp" => strings(key, "\".*127.0.0.1\""),
        "validate_answer_rrs" | "validate_authority_rrs" | "validate_additional_rrs" => Some((
            "a mapping",
            format!("{key}: {{fail_if_matches_regexp: [\".*127.0.0.1\"]}}"),
        )),
        "endpoint_params" => Some(("a mapping of strings", "endpoint_params: {audience: api}".to_owned())),
        "username" | "password" | "credentials" | "bearer_token" | "client_id"
        | "client_secret" => string(key, "secret"),
        "type" => string(key, "Bearer"),
        "proxy_url" | "token_url" => string(key, "http://proxy.example.com:3128"),
        "service" | "transport_protocol" | "query_class" | "query_name" | "query_type" => {
            string(key, "example")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_of_a_value_is_found_in_block_and_flow_style() {
        let text = "modules:\n  a:\n    timeout: 5\n    http:\n      valid_status_codes:\n        - x\n      headers: [1]\n";
        let at = |needle: &str| text.find(needle).unwrap();
        let key = |needle: &str| key_before(text, at(needle));
        let pair = |key: &str, parent: &str| Some((key.to_owned(), Some(parent.to_owned())));
        assert_eq!(key("5\n"), pair("timeout", "a"));
        assert_eq!(key("x\n"), pair("valid_status_codes", "http"));
        assert_eq!(key("1]"), pair("headers", "http"));
        assert_eq!(key("a:"), Some(("modules".to_owned(), None)));
        assert_eq!(key_before(text, 0), None);
        let text = "modules:\n  m: [tcp]  # a list\n";
        assert_eq!(
            key_before(text, text.find("[tcp").unwrap()),
            pair("m", "modules")
        );
    }

    #[test]
    fn every_section_is_named_from_its_keys() {
        // Each mapping's unknown-key error names the mapping: its list of keys is one of
        // SECTIONS', and no two are alike.
        for (i, (_, keys)) in schema::SECTIONS.iter().enumerate() {
            for (j, (_, other)) in schema::SECTIONS.iter().enumerate() {
                assert!(i == j || keys != other, "{keys:?}");
            }
        }
        let message = unknown_key("tlss", schema::SECTIONS[8].1);
        assert!(
            message.starts_with("unknown key `tlss` in `tcp`; did you mean `tls`?"),
            "{message}"
        );
        let message = unknown_key("tls_config", schema::SECTIONS[1].1);
        assert!(
            message.contains("it belongs in `http`, or in `oauth2`, or in `tcp`"),
            "{message}"
        );
    }
}
