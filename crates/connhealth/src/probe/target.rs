//! [`Target`]: a probe target as written, `host:port`, parsed once.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use super::ProbeError;

/// A probe target as written: an address, or a host name to resolve, with its port.
///
/// [`Prober::probe`](super::Prober::probe) parses its string with [`Target::parse`]; a
/// health checker that probes the same target again and again parses it once, and
/// resolves only names.
///
/// ```
/// use connhealth::probe::Target;
///
/// assert!(matches!(Target::parse("127.0.0.1:80"), Ok(Target::Addr(a)) if a.port() == 80));
/// assert!(matches!(Target::parse("[::1]:443"), Ok(Target::Addr(a)) if a.is_ipv6()));
/// assert!(matches!(
///     Target::parse("localhost:6379"),
///     Ok(Target::Name { host, port: 6379 }) if host == "localhost"
/// ));
/// let err = Target::parse("::1:80").unwrap_err();
/// assert!(err.to_string().contains("brackets"));
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// An IP address and port: probed as it is.
    Addr(SocketAddr),
    /// A host name, resolved by the system resolver at each probe.
    Name {
        /// The host name as written.
        host: String,
        /// The port.
        port: u16,
    },
}

impl Target {
    /// Splits `host:port`, `ipv4:port` or `[ipv6]:port`. Anything else is
    /// [`ProbeError::InvalidTarget`], whose reason says what is wrong and what to write.
    pub fn parse(target: &str) -> Result<Target, ProbeError> {
        parse_target(target)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        match self {
            Target::Addr(addr) => addr.port(),
            Target::Name { port, .. } => *port,
        }
    }
}

/// Splits `host:port`, `ipv4:port` or `[ipv6]:port`, saying what is wrong otherwise.
fn parse_target(target: &str) -> Result<Target, ProbeError> {
    let invalid = |reason: &'static str| ProbeError::InvalidTarget {
        target: target.to_owned(),
        reason,
    };
    let port_of = |port: &str| match port.parse::<u16>() {
        // (`parse` takes a leading '+', which no port is written with.)
        _ if port.is_empty() => Err(invalid(
            "no port after ':'; expected host:port, e.g. localhost:80",
        )),
        Ok(0) => Err(invalid(
            "port 0 cannot be probed; use a port from 1 to 65535",
        )),
        Ok(port_number) if port.bytes().all(|b| b.is_ascii_digit()) => Ok(port_number),
        _ => Err(invalid("the port is not a number from 1 to 65535")),
    };
    if let Some(rest) = target.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(invalid(
                "'[' without ']'; expected [ipv6]:port, e.g. [::1]:80",
            ));
        };
        let Some(port) = after.strip_prefix(':') else {
            return Err(invalid("expected ':port' after ']', e.g. [::1]:80"));
        };
        let Ok(ip) = host.parse::<Ipv6Addr>() else {
            return Err(invalid(
                "brackets hold an IPv6 address only, e.g. [::1]:80; write host names without them",
            ));
        };
        return Ok(Target::Addr(SocketAddr::new(
            IpAddr::V6(ip),
            port_of(port)?,
        )));
    }
    let Some((host, port)) = target.rsplit_once(':') else {
        return Err(invalid("no port; expected host:port, e.g. example.com:443"));
    };
    if host.contains(':') {
        return Err(invalid("an IPv6 address needs brackets: [::1]:80"));
    }
    if host.is_empty() {
        return Err(invalid(
            "no host before ':'; expected host:port, e.g. localhost:80",
        ));
    }
    let port = port_of(port)?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Target::Addr(SocketAddr::new(ip, port)));
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '[' | ']' | '@'))
    {
        return Err(invalid(
            "the host contains spaces, control characters or one of / [ ] @; expected a host name or an IP address",
        ));
    }
    Ok(Target::Name {
        host: host.to_owned(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(target: &str) -> &'static str {
        match parse_target(target) {
            Err(ProbeError::InvalidTarget { reason, .. }) => reason,
            Err(other) => panic!("{target:?}: unexpected {other}"),
            Ok(_) => panic!("{target:?} parsed"),
        }
    }

    #[test]
    fn targets_parse_as_host_and_port() {
        assert!(matches!(parse_target("127.0.0.1:80"), Ok(Target::Addr(a)) if a.port() == 80));
        assert!(matches!(parse_target("[::1]:80"), Ok(Target::Addr(a)) if a.is_ipv6()));
        assert!(
            matches!(parse_target("localhost:6379"), Ok(Target::Name { host, port: 6379 }) if host == "localhost")
        );
    }

    #[test]
    fn bad_targets_say_why() {
        assert!(reason("localhost").contains("no port"));
        assert!(reason("::1:80").contains("brackets"));
        assert!(reason("[::1]").contains("':port'"));
        assert!(reason("[::1:80").contains("without ']'"));
        assert!(reason("[localhost]:80").contains("IPv6 address only"));
        assert!(reason("localhost:0").contains("port 0"));
        assert!(reason("127.0.0.1:0").contains("port 0"));
        assert!(reason("localhost:99999").contains("1 to 65535"));
        assert!(reason("localhost:").contains("no port after"));
        assert!(reason(":80").contains("no host"));
        assert!(reason("a b:80").contains("spaces"));
    }
}
