//! Label names: the rules of Prometheus' data model, and the names connhealth sets itself.

/// The labels connhealth puts on every series (and `result` on the checks counter): a
/// target's own labels cannot take them.
pub(crate) const RESERVED: [&str; 4] = ["target", "address", "check", "result"];

/// `None` when `name` can be a target's own label; otherwise what is wrong and what to
/// write instead.
pub fn problem(name: &str) -> Option<String> {
    if let Some(rest) = name.strip_prefix("__") {
        let plain = rest.trim_start_matches('_');
        let plain = if plain.is_empty() || !is_label_name(plain) {
            "service"
        } else {
            plain
        };
        return Some(format!(
            "label `{name}`: names starting with __ are reserved for Prometheus' internal use; rename it, e.g. `{plain}`"
        ));
    }
    if RESERVED.contains(&name) {
        return Some(format!(
            "label `{name}` is set by connhealth on every series ({} are reserved); rename it, e.g. `{name}_name`",
            RESERVED.join(", ")
        ));
    }
    if !is_label_name(name) {
        return Some(format!(
            "`{name}` is not a valid Prometheus label name (ASCII letters, digits and _, not starting with a digit); write e.g. `{}`",
            sanitized(name)
        ));
    }
    None
}

/// Prometheus' rule: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The nearest valid name: every other character becomes `_`.
fn sanitized(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() {
        return "label".into();
    }
    // A digit cannot start a name, and a leading __ is reserved.
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.starts_with("__") {
        out.insert(0, 'l');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_label_names_pass() {
        for name in ["service", "_x", "a1", "Zone_2"] {
            assert_eq!(problem(name), None, "{name}");
        }
    }

    #[test]
    fn bad_names_get_a_fix() {
        let message = problem("service-name").unwrap();
        assert!(message.contains("`service_name`"), "{message}");
        let message = problem("1zone").unwrap();
        assert!(message.contains("`l1zone`"), "{message}");
        let message = problem("").unwrap();
        assert!(message.contains("`label`"), "{message}");
        let message = problem("é").unwrap();
        assert!(message.contains("`_`"), "{message}");
        let message = problem("--x").unwrap();
        assert!(message.contains("`l__x`"), "{message}");
    }

    #[test]
    fn reserved_names_are_refused() {
        let message = problem("target").unwrap();
        assert!(message.contains("reserved"), "{message}");
        let message = problem("__meta_x").unwrap();
        assert!(message.contains("`meta_x`"), "{message}");
    }
}
