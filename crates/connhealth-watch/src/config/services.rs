//! Service names as ports (`mail.example:smtp`), as Go's `net.Dial` and blackbox take
//! them: looked up in `/etc/services`, TCP entries only, names and aliases alike.

use std::collections::HashMap;
use std::sync::OnceLock;

/// The file read, as the C library reads it for `getservbyname`.
pub const SERVICES: &str = "/etc/services";

/// The TCP port of service `name` (`smtp`, `https`), when `/etc/services` lists it.
pub fn port(name: &str) -> Option<u16> {
    static TABLE: OnceLock<HashMap<String, u16>> = OnceLock::new();
    TABLE
        .get_or_init(|| parse(&std::fs::read_to_string(SERVICES).unwrap_or_default()))
        .get(name)
        .copied()
}

/// `host:NAME` with NAME a service name, as `host:PORT`; `None` when the port part is
/// not a service name `/etc/services` lists.
pub fn with_port_number(address: &str) -> Option<String> {
    let (host, name) = address.rsplit_once(':')?;
    if name.is_empty() || name.bytes().all(|b| b.is_ascii_digit()) || host.is_empty() {
        return None;
    }
    Some(format!("{host}:{}", port(name)?))
}

fn parse(text: &str) -> HashMap<String, u16> {
    let mut table = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let (Some(name), Some(port_proto)) = (words.next(), words.next()) else {
            continue;
        };
        let Some((port, "tcp")) = port_proto.split_once('/') else {
            continue;
        };
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        for name in std::iter::once(name).chain(words) {
            table.entry(name.to_owned()).or_insert(port);
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_of_tcp_entries_are_read() {
        let table = parse(
            "# comment\nsmtp 25/tcp mail\nsyslog 514/udp\nhttp 80/tcp www # WorldWideWeb\nbad x/tcp\n",
        );
        assert_eq!(table.get("smtp"), Some(&25));
        assert_eq!(table.get("mail"), Some(&25));
        assert_eq!(table.get("www"), Some(&80));
        assert_eq!(table.get("syslog"), None);
        assert_eq!(table.len(), 4);
    }

    #[test]
    fn only_a_listed_name_is_rewritten() {
        assert_eq!(with_port_number("localhost:25"), None);
        assert_eq!(with_port_number(":smtp"), None);
        assert_eq!(with_port_number("localhost:"), None);
        assert_eq!(with_port_number("localhost:no-such-service-here"), None);
    }
}
