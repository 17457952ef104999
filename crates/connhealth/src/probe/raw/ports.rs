//! The raw engine's source ports: a range the kernel never picks for a socket of its
//! own, so that a SYN-ACK to one of them finds no socket and is reset.

use std::ops::RangeInclusive;

/// A range needs at least this many ports to be chosen on its own.
const ENOUGH: u32 = 1024;

/// The default range, from the two sysctls' values (`None` when unreadable): the first
/// range of `ip_local_reserved_ports` with at least [`ENOUGH`] ports, else the ports
/// above `ip_local_port_range`, if there are enough of them. `Err` says why there is no
/// safe range.
pub(crate) fn default_range(
    reserved: Option<&str>,
    ephemeral: Option<&str>,
) -> Result<RangeInclusive<u16>, String> {
    if let Some(range) = reserved
        .into_iter()
        .flat_map(|list| list.trim().split(','))
        .filter_map(parse_range)
        .find(|range| len(range) >= ENOUGH)
    {
        return Ok(range);
    }
    let (_, high) = ephemeral
        .and_then(|text| {
            let mut numbers = text.split_whitespace().map(str::parse::<u16>);
            Some((numbers.next()?.ok()?, numbers.next()?.ok()?))
        })
        // The kernel's default when it cannot be read.
        .unwrap_or((32768, 60999));
    match high.checked_add(1) {
        Some(low) if len(&(low..=u16::MAX)) >= ENOUGH => Ok(low..=u16::MAX),
        _ => Err(format!(
            "no source ports are safe from the kernel's own sockets: \
             net.ipv4.ip_local_port_range ends at {high} and no range of \
             {ENOUGH} ports is in net.ipv4.ip_local_reserved_ports; reserve one \
             (sysctl net.ipv4.ip_local_reserved_ports=61000-65535) or name one \
             with ProberBuilder::raw_source_ports"
        )),
    }
}

/// `"a-b"` or `"a"`.
fn parse_range(text: &str) -> Option<RangeInclusive<u16>> {
    let text = text.trim();
    let (low, high) = text.split_once('-').unwrap_or((text, text));
    let (low, high) = (low.trim().parse().ok()?, high.trim().parse().ok()?);
    (low <= high && low > 0).then_some(low..=high)
}

pub(crate) fn len(range: &RangeInclusive<u16>) -> u32 {
    (u32::from(*range.end()) + 1).saturating_sub(u32::from(*range.start()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserved_range_wins_then_the_ports_above_the_ephemeral_ones() {
        assert_eq!(
            default_range(Some("8080,50000-51023\n"), Some("32768\t60999\n")),
            Ok(50000..=51023)
        );
        // Too small a reserved range is passed over.
        assert_eq!(
            default_range(Some("50000-50100"), Some("32768\t60999\n")),
            Ok(61000..=65535)
        );
        assert_eq!(default_range(Some("\n"), None), Ok(61000..=65535));
        assert!(default_range(None, Some("1024 64000")).is_ok());
        assert!(
            default_range(None, Some("1024 65000")).is_err(),
            "535 ports are too few"
        );
        let err = default_range(None, Some("1024 65535")).unwrap_err();
        assert!(err.contains("ip_local_reserved_ports"), "{err}");
        assert!(default_range(Some("garbage,-,5-1"), Some("1024 64999")).is_err());
    }
}
