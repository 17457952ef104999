//! URLs as the `http` check reads them: the origin a URL names (which connection a
//! request goes on), and where a redirect's `Location` points (RFC 3986 §5.2: absolute,
//! scheme-relative, absolute-path, relative-path and query-only references).
//!
//! Everything here takes what a server sent: nothing panics, and a Location that cannot
//! be made a URL is an error that says why.

use std::fmt;

use ::http::uri::{Authority, Scheme, Uri};
use connhealth::probe::Target;

/// `http` or `https`, a host and a port: one origin is one connection (RFC 6454).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Origin {
    /// `https://`: TLS on the connection.
    pub(super) https: bool,
    /// As written, lower-cased (host names are case-insensitive); an IPv6 address keeps
    /// its brackets.
    pub(super) host: String,
    /// The URL's port, else 80 or 443.
    pub(super) port: u16,
}

impl Origin {
    /// The origin of `url`: an `http` or `https` URL with a host.
    pub(super) fn of(url: &Uri) -> Result<Origin, String> {
        let https = match url.scheme() {
            Some(scheme) if *scheme == Scheme::HTTP => false,
            Some(scheme) if *scheme == Scheme::HTTPS => true,
            Some(scheme) => return Err(format!("{scheme}:// is not http:// or https://")),
            None => return Err(format!("{url} has no http:// or https://")),
        };
        let authority = url
            .authority()
            .ok_or_else(|| format!("{url} has no host"))?;
        let (host, port) = split_authority(authority)?;
        Ok(Origin {
            https,
            host: host.to_ascii_lowercase(),
            port: port.unwrap_or(if https { 443 } else { 80 }),
        })
    }

    /// What to resolve and connect to.
    pub(super) fn target(&self) -> Result<Target, String> {
        Target::parse(&format!("{}:{}", self.host, self.port)).map_err(|err| err.to_string())
    }

    /// The host without brackets: what TLS sends as SNI and verifies.
    pub(super) fn bare_host(&self) -> &str {
        strip_brackets(&self.host)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// The host and the port of an authority (`user@host:port`, `[v6]:port`). The `http`
/// crate's own `host()` indexes into an empty host, so this reads the text itself.
fn split_authority(authority: &Authority) -> Result<(&str, Option<u16>), String> {
    let written = authority.as_str();
    let host_port = written.rsplit('@').next().unwrap_or(written);
    let (host, port) = if host_port.starts_with('[') {
        match host_port.find(']') {
            Some(end) => (&host_port[..=end], &host_port[end + 1..]),
            None => return Err(format!("{written:?}: an IPv6 address without its ']'")),
        }
    } else {
        match host_port.rfind(':') {
            Some(colon) => (&host_port[..colon], &host_port[colon..]),
            None => (host_port, ""),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(format!("{written:?} has no host"));
    }
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => None,
        // `host:` is the default port, as RFC 3986 §3.2.3 allows.
        Some("") => None,
        Some(digits) => match digits.parse::<u16>() {
            Ok(port) if port > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => Some(port),
            _ => {
                return Err(format!(
                    "{written:?}: the port is not a number from 1 to 65535"
                ))
            }
        },
        None => return Err(format!("{written:?} is not host:port")),
    };
    Ok((host, port))
}

/// The host of a `Host` header value (`name`, `name:port`, `[v6]:port`), without its
/// port and brackets.
pub(super) fn host_of_header(value: &str) -> &str {
    let value = value.trim();
    let host = if value.starts_with('[') {
        value.find(']').map_or(value, |end| &value[..=end])
    } else if value.matches(':').count() == 1 {
        value.split(':').next().unwrap_or(value)
    } else {
        value
    };
    strip_brackets(host)
}

fn strip_brackets(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host)
}

/// Where a redirect from `base` to `location` (the header's bytes) leads: an absolute
/// http or https URL, without a fragment.
pub(super) fn follow(base: &Uri, location: &[u8]) -> Result<Uri, String> {
    let location = escape(trim(location));
    let location = match location.find('#') {
        Some(fragment) => &location[..fragment],
        None => &location[..],
    };
    let base_scheme = base.scheme_str().unwrap_or("http");
    let base_authority = base.authority().map_or("", Authority::as_str);
    let joined = if has_scheme(location) {
        location.to_string()
    } else if location.starts_with("//") {
        format!("{base_scheme}:{location}")
    } else {
        let (path, query) = match location.find('?') {
            Some(q) => (&location[..q], Some(&location[q..])),
            None => (location, None),
        };
        let base_path = base.path();
        let path = if path.starts_with('/') {
            remove_dot_segments(path)
        } else if path.is_empty() {
            base_path.to_string()
        } else {
            // Merge (§5.2.3): the reference replaces the base's last segment.
            let dir = base_path
                .rfind('/')
                .map_or("/", |slash| &base_path[..=slash]);
            remove_dot_segments(&format!("{dir}{path}"))
        };
        let query = match (query, base.query()) {
            (Some(query), _) => query.to_string(),
            // A reference with neither path nor query keeps the base's query.
            (None, Some(base_query)) if location.is_empty() => format!("?{base_query}"),
            (None, _) => String::new(),
        };
        format!("{base_scheme}://{base_authority}{path}{query}")
    };
    let url: Uri = joined
        .parse()
        .map_err(|err| format!("{joined:?} is not a URL ({err})"))?;
    Origin::of(&url)?;
    Ok(url)
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace());
    match (start, end) {
        (Some(start), Some(end)) => &bytes[start..=end],
        _ => &[],
    }
}

/// `location` with every byte that cannot stand in a URL percent-encoded, as browsers
/// and Go's client do: servers send raw UTF-8 (and worse) in Location.
fn escape(location: &[u8]) -> String {
    let mut escaped = String::with_capacity(location.len());
    for &byte in location {
        if byte.is_ascii_graphic() && !b"\"<>\\^`{|}".contains(&byte) {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    escaped
}

/// True when `reference` starts with a scheme (`letter *(letter / digit / + / - / .) :`).
fn has_scheme(reference: &str) -> bool {
    match reference.find(':') {
        Some(colon) => {
            let scheme = &reference[..colon];
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }
        None => false,
    }
}

/// RFC 3986 §5.2.4, for a path that starts with `/`: `.` and `..` segments resolved.
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let mut kept: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." => {}
            ".." => {
                kept.pop();
            }
            other => {
                kept.push(other);
                continue;
            }
        }
        // A path that ends in `.` or `..` names a folder: it keeps its trailing slash.
        if last {
            kept.push("");
        }
    }
    format!("/{}", kept.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn followed(base: &str, location: &str) -> String {
        follow(&base.parse().unwrap(), location.as_bytes())
            .map(|url| url.to_string())
            .unwrap_or_else(|err| format!("error: {err}"))
    }

    #[test]
    fn references_resolve_as_rfc_3986_says() {
        let base = "http://a.example:8080/b/c/d?q";
        assert_eq!(followed(base, "https://x.example/y"), "https://x.example/y");
        assert_eq!(followed(base, "//x.example/y"), "http://x.example/y");
        assert_eq!(followed(base, "/g?z"), "http://a.example:8080/g?z");
        assert_eq!(followed(base, "g"), "http://a.example:8080/b/c/g");
        assert_eq!(followed(base, "../g"), "http://a.example:8080/b/g");
        assert_eq!(followed(base, "../../../../g"), "http://a.example:8080/g");
        assert_eq!(followed(base, "."), "http://a.example:8080/b/c/");
        assert_eq!(followed(base, "?y"), "http://a.example:8080/b/c/d?y");
        assert_eq!(followed(base, ""), "http://a.example:8080/b/c/d?q");
        assert_eq!(followed(base, "#frag"), "http://a.example:8080/b/c/d?q");
        assert_eq!(followed(base, "/a/./b/../c#x"), "http://a.example:8080/a/c");
    }

    #[test]
    fn odd_locations_are_escaped_or_refused_never_a_panic() {
        let base = "http://a.example/";
        assert_eq!(followed(base, "/é ü"), "http://a.example/%C3%A9%20%C3%BC");
        assert!(followed(base, "ftp://a.example/").starts_with("error: "));
        assert!(followed(base, "http://@/").starts_with("error: "));
        assert!(followed(base, "http://[::1/").starts_with("error: "));
        assert!(followed(base, "http://a.example:99999/").starts_with("error: "));
        assert!(followed(base, "mailto:x@y").starts_with("error: "));
        let bytes = follow(&base.parse().unwrap(), b"/\xff\x00\r\n");
        assert_eq!(bytes.unwrap().to_string(), "http://a.example/%FF%00");
    }

    #[test]
    fn origins_default_their_port_and_fold_case() {
        let origin = |url: &str| Origin::of(&url.parse().unwrap()).map(|o| o.to_string());
        assert_eq!(origin("http://A.Example/").unwrap(), "http://a.example:80");
        assert_eq!(origin("https://[::1]/x").unwrap(), "https://[::1]:443");
        assert_eq!(origin("https://u:p@h:8443").unwrap(), "https://h:8443");
        assert!(origin("/relative").is_err());
    }

    #[test]
    fn host_headers_lose_their_port() {
        assert_eq!(host_of_header("api.internal:8443"), "api.internal");
        assert_eq!(host_of_header("[::1]:8443"), "::1");
        assert_eq!(host_of_header("api.internal"), "api.internal");
        assert_eq!(host_of_header("::1"), "::1");
    }
}
