//! `check = "http"`: `method`, `headers`, `body`, `valid_status`, `follow_redirects` and
//! `reuse_connection`; it reads `expect` (the body's regex) and, for https, the tls keys.
//! The URL is the target's `url` (a target key, as `address` is for the other kinds), or
//! `/probe`'s `target`.

use std::path::Path;

use http::{HeaderName, HeaderValue, Method};

use super::{KindKey, KindValue, Layers};
use crate::config::keys::{self, Written};
use crate::config::plan::{CheckKind, HttpPlan, StatusRange};
use crate::config::raw::{Node, Value};
use crate::config::values;

const HTTP: &[CheckKind] = &[CheckKind::Http];

pub(crate) const KEYS: [KindKey; 6] = [
    KindKey {
        name: "method",
        readers: HTTP,
        read: method,
        written: Some(Written::String),
        example: "method = \"GET\"",
    },
    KindKey {
        name: "headers",
        readers: HTTP,
        read: headers,
        written: None,
        example: "headers = { Host = \"api.internal\" }",
    },
    KindKey {
        name: "body",
        readers: HTTP,
        read: |node, _| values::bytes("body", node).map(KindValue::Bytes),
        written: Some(Written::String),
        example: "body = \"{}\"",
    },
    KindKey {
        name: "valid_status",
        readers: HTTP,
        read: valid_status,
        written: None,
        example: "valid_status = [\"2xx\", 304]",
    },
    KindKey {
        name: "follow_redirects",
        readers: HTTP,
        read: |node, _| values::boolean("follow_redirects", node).map(KindValue::Bool),
        written: Some(Written::Boolean),
        example: "follow_redirects = false",
    },
    KindKey {
        name: "reuse_connection",
        readers: HTTP,
        read: |node, _| values::boolean("reuse_connection", node).map(KindValue::Bool),
        written: Some(Written::Boolean),
        example: "reuse_connection = false",
    },
];

pub(super) fn build(layers: Layers<'_>) -> HttpPlan {
    let defaults = HttpPlan::default();
    let method = match layers.get("method") {
        Some(KindValue::Method(method)) => method.clone(),
        _ => defaults.method,
    };
    let headers = match layers.get("headers") {
        Some(KindValue::Headers(headers)) => headers.clone(),
        _ => defaults.headers,
    };
    let valid_status = match layers.get("valid_status") {
        Some(KindValue::Statuses(statuses)) => statuses.clone(),
        _ => defaults.valid_status,
    };
    HttpPlan {
        method,
        headers,
        body: layers.bytes("body").unwrap_or(defaults.body),
        valid_status,
        expect: layers.regex("expect"),
        follow_redirects: layers
            .boolean("follow_redirects")
            .unwrap_or(defaults.follow_redirects),
        reuse_connection: layers
            .boolean("reuse_connection")
            .unwrap_or(defaults.reuse_connection),
        tls: super::tls::build(layers),
        ..defaults
    }
}

/// `method`: an HTTP method token; the standard ones in any case.
fn method(node: &Node, _: &Path) -> Result<KindValue, String> {
    let Value::String(text) = &node.value else {
        return Err(keys::wrong_type(
            "method",
            "a string",
            node.value.type_name(),
        ));
    };
    const STANDARD: [Method; 7] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::OPTIONS,
        Method::PATCH,
    ];
    if let Some(method) = STANDARD
        .iter()
        .find(|m| m.as_str().eq_ignore_ascii_case(text))
    {
        return Ok(KindValue::Method(method.clone()));
    }
    Method::from_bytes(text.as_bytes())
        .ok()
        .filter(|_| !text.is_empty())
        .map(KindValue::Method)
        .ok_or_else(|| {
            format!(
                "method {text:?} is not an HTTP method; write e.g. method = \"GET\" or \"POST\""
            )
        })
}

/// `headers`: a table of header names to string values.
fn headers(node: &Node, _: &Path) -> Result<KindValue, String> {
    let Value::Table(entries) = &node.value else {
        return Err(
            keys::wrong_type("headers", "a table of strings", node.value.type_name())
                + "; write e.g. headers = { Host = \"api.internal\" }",
        );
    };
    let mut headers = Vec::with_capacity(entries.len());
    for entry in entries {
        let name = HeaderName::from_bytes(entry.key.as_bytes()).map_err(|_| {
            format!(
                "header name {:?} is not a valid HTTP header name (letters, digits and -); write e.g. headers = {{ Authorization = \"Bearer ...\" }}",
                entry.key
            )
        })?;
        let Value::String(text) = &entry.value.value else {
            return Err(format!(
                "header {:?} must have a string value, not {}; quote it, e.g. {} = \"1\"",
                entry.key,
                entry.value.value.type_name(),
                entry.key
            ));
        };
        let value = HeaderValue::from_str(text).map_err(|_| {
            format!(
                "the value of header {:?} holds a character HTTP does not allow in a header (a control character or a line break); remove it",
                entry.key
            )
        })?;
        headers.push((name, value));
    }
    Ok(KindValue::Headers(headers))
}

/// `valid_status`: codes (`204`, or `"204"`) and classes (`"2xx"`).
fn valid_status(node: &Node, _: &Path) -> Result<KindValue, String> {
    const EXAMPLE: &str = "valid_status = [\"2xx\", 304]";
    let Value::Array(items) = &node.value else {
        return Err(format!(
            "`valid_status` must be an array of codes and classes, not {}; write e.g. {EXAMPLE}",
            node.value.type_name()
        ));
    };
    if items.is_empty() {
        return Err(format!(
            "`valid_status` is empty, so no answer could pass; list the codes that pass, e.g. {EXAMPLE}, or remove it for any 2xx"
        ));
    }
    let mut ranges = Vec::with_capacity(items.len());
    for item in items {
        let range = match &item.value {
            Value::Integer(code) => u16::try_from(*code)
                .ok()
                .filter(|code| (100..=599).contains(code))
                .map(|code| StatusRange {
                    low: code,
                    high: code,
                }),
            Value::String(text) => status_text(text.trim()),
            _ => None,
        };
        let written = match &item.value {
            Value::String(text) => format!("{text:?}"),
            Value::Integer(code) => code.to_string(),
            other => other.type_name().to_owned(),
        };
        ranges.push(range.ok_or_else(|| {
            format!(
                "{written} in `valid_status` is neither a status code (100 to 599) nor a class (\"1xx\" to \"5xx\"); write e.g. {EXAMPLE}"
            )
        })?);
    }
    Ok(KindValue::Statuses(ranges))
}

/// `"2xx"` (any case) or `"204"`.
fn status_text(text: &str) -> Option<StatusRange> {
    let bytes = text.as_bytes();
    if bytes.len() == 3
        && bytes[1..].eq_ignore_ascii_case(b"xx")
        && (b'1'..=b'5').contains(&bytes[0])
    {
        let low = u16::from(bytes[0] - b'0') * 100;
        return Some(StatusRange {
            low,
            high: low + 99,
        });
    }
    let code: u16 = text.parse().ok()?;
    (100..=599).contains(&code).then_some(StatusRange {
        low: code,
        high: code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_codes_read_as_ranges() {
        assert_eq!(
            status_text("2xx"),
            Some(StatusRange {
                low: 200,
                high: 299
            })
        );
        assert_eq!(
            status_text("3XX"),
            Some(StatusRange {
                low: 300,
                high: 399
            })
        );
        assert_eq!(
            status_text("204"),
            Some(StatusRange {
                low: 204,
                high: 204
            })
        );
        for bad in ["6xx", "2x", "x2x", "99", "600", "", "2xxx"] {
            assert_eq!(status_text(bad), None, "{bad}");
        }
    }
}
