//! One setting's value: its type checked, its range checked, and, when it is wrong, a
//! message that says what to write instead. Each function takes the value as written and
//! returns it converted, or the message.

use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::bytes::Regex;

use super::keys::{self, example};
use super::plan::CheckKind;
use super::raw::{Node, Value};

/// The longest duration a setting takes. Far beyond any sane check schedule, and short
/// enough that `Instant + interval × (1 + jitter)` can never overflow (which panics).
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// `check`: one of the five kind names; a near miss is named.
pub(crate) fn kind(node: &Node) -> Result<CheckKind, String> {
    let Value::String(name) = &node.value else {
        return Err(keys::wrong_type(
            "check",
            "a string",
            node.value.type_name(),
        ));
    };
    if let Some(kind) = CheckKind::from_name(name) {
        return Ok(kind);
    }
    let names: Vec<&str> = CheckKind::ALL.iter().map(|k| k.name()).collect();
    // The /probe module names are a likely slip for the kinds they run.
    let near = match name.as_str() {
        "tcp_connect" | "tcp" => Some("connect"),
        _ => keys::closest(name, names.iter().copied()),
    };
    let hint = near.map_or(String::new(), |near| format!("did you mean \"{near}\"? "));
    Err(format!(
        "unknown check kind \"{name}\"; {hint}write one of: {}",
        names.join(", ")
    ))
}

/// A humantime duration string (`"250ms"`, `"1m30s"`), longer than 0 and at most
/// [`MAX_DURATION`]; a bare number is the likeliest slip and gets its own message.
pub(crate) fn duration(key: &str, node: &Node) -> Result<Duration, String> {
    let Value::String(text) = &node.value else {
        return Err(keys::wrong_type(
            key,
            "a duration string with a unit",
            node.value.type_name(),
        ));
    };
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.parse::<f64>().is_ok() {
        // humantime takes whole numbers only: "2s", not "0.5s".
        let seconds = match trimmed.parse::<u64>() {
            Ok(n) if n > 0 => format!("{n}s"),
            _ => "2s".to_owned(),
        };
        return Err(format!(
            "\"{text}\" is not a duration; write it with a unit, e.g. \"{seconds}\" or \"500ms\""
        ));
    }
    let value = humantime::parse_duration(trimmed).map_err(|err| {
        format!("\"{text}\" is not a duration ({err}); write a number and a unit, e.g. \"2s\", \"500ms\" or \"1m30s\"")
    })?;
    if value.is_zero() {
        return Err(format!(
            "`{key}` must be longer than 0 (\"{text}\" {}); write e.g. {}",
            if key == "timeout" {
                "would fail every check"
            } else {
                "would check without a pause"
            },
            example(key)
        ));
    }
    if value > MAX_DURATION {
        return Err(format!(
            "`{key}` = \"{text}\" is longer than 30 days, the most it takes; write e.g. {}",
            example(key)
        ));
    }
    Ok(value)
}

/// `rise` or `fall`: a whole number of checks, at least 1. `zero_means` says what 0
/// would do.
pub(crate) fn count(key: &str, node: &Node, zero_means: &str) -> Result<u32, String> {
    let Value::Integer(n) = node.value else {
        return Err(keys::wrong_type(
            key,
            "a whole number",
            node.value.type_name(),
        ));
    };
    match u32::try_from(n) {
        Ok(0) => Err(format!(
            "{key} = 0 would make a target {zero_means}; write at least 1, e.g. {}",
            example(key)
        )),
        Ok(n) => Ok(n),
        Err(_) if n < 0 => Err(format!(
            "{key} = {n} is negative; write a count of at least 1, e.g. {}",
            example(key)
        )),
        Err(_) => Err(format!(
            "{key} = {n} is too large (at most {}); write e.g. {}",
            u32::MAX,
            example(key)
        )),
    }
}

/// `jitter`: a fraction in [0, 1), written as a float or as 0.
pub(crate) fn jitter(node: &Node) -> Result<f64, String> {
    let value = match node.value {
        Value::Float(f) => f,
        // Exactly representable: the config's integers here are 0 or small.
        Value::Integer(i) => i as f64,
        ref other => {
            return Err(keys::wrong_type("jitter", "a number", other.type_name()));
        }
    };
    if (0.0..1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "jitter = {value} is outside [0, 1): each wait is drawn from interval × (1 ± jitter); write a fraction below 1, e.g. {} (0 for none)",
            example("jitter")
        ))
    }
}

/// `send` or `quit`: a string, sent as its UTF-8 bytes.
pub(crate) fn bytes(key: &str, node: &Node) -> Result<Vec<u8>, String> {
    match &node.value {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        other => Err(keys::wrong_type(key, "a string", other.type_name())),
    }
}

/// `expect`: a regex over the reply's bytes.
pub(crate) fn regex(node: &Node) -> Result<Regex, String> {
    let Value::String(pattern) = &node.value else {
        return Err(keys::wrong_type(
            "expect",
            "a string (a regex)",
            node.value.type_name(),
        ));
    };
    Regex::new(pattern).map_err(|err| {
        format!(
            "expect {pattern:?} is not a valid regex: {}; fix the pattern (Rust regex syntax; in TOML a backslash is written \\\\), e.g. {}",
            regex_reason(&err),
            example("expect")
        )
    })
}

/// regex's message on one line. A syntax error spans several lines (the pattern, a
/// caret under the problem, then `error: what`); the `error:` line is the part to keep.
pub(crate) fn regex_reason(err: &regex::Error) -> String {
    let text = err.to_string();
    if let Some(reason) = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("error:"))
    {
        return reason.trim().to_owned();
    }
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    parts.join(" ")
}

/// `server_name`: a DNS name or an IP address, as rustls takes it for SNI.
pub(crate) fn server_name(node: &Node) -> Result<String, String> {
    let Value::String(name) = &node.value else {
        return Err(keys::wrong_type(
            "server_name",
            "a string",
            node.value.type_name(),
        ));
    };
    match tokio_rustls::rustls::pki_types::ServerName::try_from(name.as_str()) {
        Ok(_) => Ok(name.clone()),
        Err(_) => Err(format!(
            "server_name {name:?} is neither a DNS name nor an IP address; write the name the certificate is for, e.g. {}",
            example("server_name")
        )),
    }
}

/// The CA file, relative to the config's folder unless absolute: it must exist, be
/// readable and hold PEM certificates now, so that the first tls check does not find out.
pub(crate) fn ca_file(node: &Node, base: &Path) -> Result<PathBuf, String> {
    let Value::String(written) = &node.value else {
        return Err(keys::wrong_type(
            "ca_file",
            "a string (a path)",
            node.value.type_name(),
        ));
    };
    if written.is_empty() {
        return Err(format!(
            "ca_file is empty; write the path of a PEM file of CA certificates, e.g. {}, or remove it to trust the system's roots",
            example("ca_file")
        ));
    }
    pem_ca_file(written, base, "the config's folder")
}

/// `written` joined to `base` (`folder` says what it is, for the message): it must exist,
/// be readable and hold PEM certificates now.
pub(crate) fn pem_ca_file(written: &str, base: &Path, folder: &str) -> Result<PathBuf, String> {
    let path = base.join(written);
    let contents = std::fs::read(&path).map_err(|err| {
        let what = if err.kind() == std::io::ErrorKind::NotFound {
            "does not exist".to_owned()
        } else {
            format!("cannot be read: {err}")
        };
        format!(
            "ca_file {written:?} (looked at {}) {what}; write the path of a readable PEM file of CA certificates (a relative path is relative to {folder})",
            path.display()
        )
    })?;
    let mut certificates = 0;
    for item in rustls_pemfile::certs(&mut contents.as_slice()) {
        match item {
            Ok(_) => certificates += 1,
            Err(err) => {
                return Err(format!(
                    "ca_file {written:?} is not valid PEM ({err}); write the path of a PEM file of CA certificates"
                ))
            }
        }
    }
    if certificates == 0 {
        return Err(format!(
            "ca_file {written:?} holds no PEM certificate (no -----BEGIN CERTIFICATE-----); write the path of a PEM file of CA certificates"
        ));
    }
    Ok(path)
}

/// `insecure`: true or false.
pub(crate) fn boolean(key: &str, node: &Node) -> Result<bool, String> {
    match node.value {
        Value::Boolean(b) => Ok(b),
        ref other => Err(keys::wrong_type(key, "true or false", other.type_name())),
    }
}

/// `cert_min_days`: a whole number of days, 0 or more.
pub(crate) fn days(node: &Node) -> Result<u32, String> {
    let Value::Integer(n) = node.value else {
        return Err(keys::wrong_type(
            "cert_min_days",
            "a whole number of days",
            node.value.type_name(),
        ));
    };
    u32::try_from(n).map_err(|_| {
        format!(
            "cert_min_days = {n} is not a number of days from 0 to {}; write e.g. {}",
            u32::MAX,
            example("cert_min_days")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(value: Value) -> Node {
        Node { at: 0, value }
    }

    fn string(s: &str) -> Node {
        node(Value::String(s.into()))
    }

    #[test]
    fn durations_need_a_unit_and_a_length() {
        assert_eq!(
            duration("interval", &string("1m30s")),
            Ok(Duration::from_secs(90))
        );
        assert_eq!(
            duration("interval", &string(" 250ms ")),
            Ok(Duration::from_millis(250))
        );
        let bare = duration("interval", &string("2")).unwrap_err();
        assert_eq!(
            bare,
            "\"2\" is not a duration; write it with a unit, e.g. \"2s\" or \"500ms\""
        );
        let zero = duration("timeout", &string("0s")).unwrap_err();
        assert!(zero.contains("longer than 0"), "{zero}");
        let long = duration("interval", &string("1000y")).unwrap_err();
        assert!(long.contains("30 days"), "{long}");
        let unit = duration("interval", &string("2 parsecs")).unwrap_err();
        assert!(unit.contains("unknown time unit"), "{unit}");
        let typed = duration("interval", &node(Value::Integer(2))).unwrap_err();
        assert!(typed.contains("not an integer"), "{typed}");
        assert!(duration("interval", &string("")).is_err());
    }

    #[test]
    fn counts_are_at_least_one() {
        assert_eq!(count("rise", &node(Value::Integer(2)), ""), Ok(2));
        assert!(count("rise", &node(Value::Integer(0)), "x")
            .unwrap_err()
            .contains("at least 1"));
        assert!(count("rise", &node(Value::Integer(-1)), "")
            .unwrap_err()
            .contains("negative"));
        assert!(count("rise", &node(Value::Integer(i64::MAX)), "")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn jitter_is_a_fraction_below_one() {
        assert_eq!(jitter(&node(Value::Integer(0))), Ok(0.0));
        assert_eq!(jitter(&node(Value::Float(0.5))), Ok(0.5));
        for bad in [1.0, -0.1, f64::NAN, f64::INFINITY] {
            assert!(jitter(&node(Value::Float(bad))).is_err(), "{bad}");
        }
    }

    #[test]
    fn kinds_suggest_the_nearest() {
        assert_eq!(kind(&string("hold")), Ok(CheckKind::Hold));
        let err = kind(&string("half_open")).unwrap_err();
        assert!(err.contains("did you mean \"half-open\"?"), "{err}");
        let err = kind(&string("tcp_connect")).unwrap_err();
        assert!(err.contains("did you mean \"connect\"?"), "{err}");
        let err = kind(&string("ping")).unwrap_err();
        assert!(
            err.contains("half-open, connect, hold, tls, send-expect"),
            "{err}"
        );
    }

    #[test]
    fn regex_errors_fit_on_one_line() {
        let err = regex(&string("^(+PONG")).unwrap_err();
        assert!(!err.contains('\n'), "{err}");
        assert!(
            err.contains("repetition operator missing expression"),
            "{err}"
        );
    }

    #[test]
    fn server_names_are_dns_names_or_addresses() {
        assert!(server_name(&string("example.com")).is_ok());
        assert!(server_name(&string("10.0.0.1")).is_ok());
        assert!(server_name(&string("not a name")).is_err());
    }
}
