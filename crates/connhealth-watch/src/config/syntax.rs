//! The message for a TOML syntax error: toml_edit's words, with the fix for the slips it
//! most often reports, and, for a bare word where a value belongs (`rise = two`), what the
//! key takes instead of toml_edit's advice to quote a string.

use super::keys::{self, Written};
use super::raw::SyntaxError;

/// Where to report `err`, a syntax error in `text`, and what to say.
pub(crate) fn error(text: &str, err: &SyntaxError) -> (usize, String) {
    match bare_word(text, err.at).and_then(|bare| Some((bare.at, bare_word_message(&bare)?))) {
        Some(found) => found,
        None => (err.at, message(&err.message)),
    }
}

/// toml_edit's message, with the fix for the slips it most often reports.
fn message(message: &str) -> String {
    // The first needle found in the message picks the hint.
    const HINTS: [(&str, &str); 6] = [
        (
            "duplicate key",
            "each key and table is written once: remove one of them",
        ),
        (
            "invalid basic string",
            "close the string with its quote on the same line (\"\"\" for one over several lines)",
        ),
        (
            "invalid literal string",
            "close the string with its quote on the same line (\'\'\' for one over several lines)",
        ),
        (
            "invalid inline table",
            "an inline table is on one line, without a trailing comma, e.g. labels = { service = \"cache\" }",
        ),
        ("invalid string", "strings are quoted, e.g. interval = \"2s\""),
        (
            "expected newline",
            "after a value comes the end of the line or a # comment, and a string is quoted, e.g. interval = \"2s\"",
        ),
    ];
    let hint = HINTS
        .iter()
        .find(|(needle, _)| message.contains(needle))
        .map(|(_, hint)| *hint)
        .or_else(|| {
            message
                .contains("invalid table header")
                .then_some("a table header is [name] or [[name]] on a line of its own")
        });
    match hint {
        Some(hint) => format!("this is not valid TOML: {message}; {hint}"),
        None => format!("this is not valid TOML: {message}"),
    }
}

/// An unquoted word written as a key's value, which TOML cannot read as any value.
#[derive(Debug, PartialEq, Eq)]
struct BareWord<'t> {
    /// Where the word starts.
    at: usize,
    /// The key it is the value of (the last part of a dotted key).
    key: &'t str,
    /// Whether the key is a label's name: in `labels = { .. }`, `[targets.labels]` or
    /// `labels.NAME = ..`.
    in_labels: bool,
    /// The word, up to the next space, `,`, `]`, `}` or `#`.
    word: &'t str,
}

/// The bare word that the syntax error at byte `at` of `text` is in, if it is one: the
/// error must fall inside the first word after a `key =` on its line.
fn bare_word(text: &str, at: usize) -> Option<BareWord<'_>> {
    let bytes = text.as_bytes();
    let at = at.min(bytes.len());
    let line_start = bytes
        .get(..at)?
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |newline| newline + 1);
    let line_end = bytes
        .get(at..)?
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |newline| at + newline);
    let line = text.get(line_start..line_end)?;
    let error_at = at - line_start;
    let eq = line.get(..error_at)?.rfind('=')?;
    let after_eq = line.get(eq + 1..)?;
    let word_start = eq + 1 + (after_eq.len() - after_eq.trim_start().len());
    let rest = line.get(word_start..)?;
    let word_len = rest
        .find(|c: char| c.is_whitespace() || matches!(c, ',' | ']' | '}' | '#'))
        .unwrap_or(rest.len());
    let word = rest.get(..word_len)?;
    if word.is_empty()
        || word.starts_with(['"', '\'', '[', '{'])
        || !(word_start..=word_start + word_len).contains(&error_at)
    {
        return None;
    }

    let before_eq = line.get(..eq)?.trim_end();
    let path_start = before_eq
        .char_indices()
        .rev()
        .find(|&(_, c)| !is_key_char(c))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let path: Vec<&str> = before_eq
        .get(path_start..)?
        .split('.')
        .map(|part| part.trim_matches(['"', '\'']))
        .collect();
    let (&key, parents) = path.split_last()?;
    // The key starts the line, or follows `{` or `,` in an inline table: otherwise the
    // `=` found is not a key's (it is inside a string, say).
    let before_key = before_eq.get(..path_start)?.trim_end();
    if key.is_empty() || !(before_key.is_empty() || before_key.ends_with(['{', ','])) {
        return None;
    }
    let in_labels = parents.contains(&"labels")
        || inline_parent(before_key) == Some("labels")
        || (before_key.is_empty() && header(text.get(..line_start)?) == Some("labels"));
    Some(BareWord {
        at: line_start + word_start,
        key,
        in_labels,
        word,
    })
}

/// A character of a bare or dotted key, or of a quoted one's quotes.
fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | '\'')
}

/// The key of the inline table that `before` (a line up to a key in it) is inside:
/// `labels` for `labels = { a = "x",`.
fn inline_parent(before: &str) -> Option<&str> {
    let open = before.rfind('{')?;
    let parent = before.get(..open)?.trim_end().strip_suffix('=')?.trim_end();
    parent.rsplit(['.', ' ', '{', ',']).next()
}

/// The last part of the name of the last table header in `text`: `labels` for
/// `[targets.labels]`.
fn header(text: &str) -> Option<&str> {
    let line = text.lines().rev().map(str::trim).find(|line| {
        line.starts_with('[') && !line.contains('=') && {
            let code = line.split('#').next().unwrap_or_default().trim_end();
            code.ends_with(']')
        }
    })?;
    let code = line.split('#').next().unwrap_or_default();
    let name = code.trim().trim_matches(['[', ']']).trim();
    name.rsplit('.')
        .next()
        .map(|last| last.trim().trim_matches(['"', '\'']))
}

/// What `bare` should have been, for the keys whose values the config knows.
fn bare_word_message(bare: &BareWord<'_>) -> Option<String> {
    let BareWord { key, word, .. } = *bare;
    if bare.in_labels {
        return Some(format!(
            "a label's value is a string, and `{word}` is not quoted; quote it: {key} = {word:?}"
        ));
    }
    let example = keys::example(key);
    let message = match keys::written(key)? {
        Written::Integer => format!(
            "an integer is expected for `{key}`, not the bare word `{word}`; write a whole number in digits, e.g. {example}"
        ),
        Written::Number => format!(
            "a number is expected for `{key}`, not the bare word `{word}`; write a fraction in digits, e.g. {example} (0 for none)"
        ),
        Written::Duration if humantime::parse_duration(word).is_ok() => format!(
            "a duration is expected for `{key}`, written as a quoted string; write {key} = {word:?}"
        ),
        Written::Duration => format!(
            "a duration is expected for `{key}`, written as a quoted string with a unit, not the bare word `{word}`; write e.g. {example}"
        ),
        Written::String => format!(
            "a string is expected for `{key}`, and a string is quoted; write {key} = {word:?}"
        ),
        Written::Boolean => format!(
            "true or false is expected for `{key}`, not `{word}`; write e.g. {example}"
        ),
    };
    Some(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str, at: usize) -> Option<(usize, &str, bool, &str)> {
        bare_word(text, at).map(|b| (b.at, b.key, b.in_labels, b.word))
    }

    #[test]
    fn a_bare_word_is_found_at_or_inside_it() {
        assert_eq!(found("rise = two\n", 7), Some((7, "rise", false, "two")));
        assert_eq!(
            found("[a]\nrise = 2x\n", 12),
            Some((11, "rise", false, "2x"))
        );
        assert_eq!(
            found("x = { fall=no }", 11),
            Some((11, "fall", false, "no"))
        );
        assert_eq!(found("a.\"rise\" = t", 11), Some((11, "rise", false, "t")));
    }

    #[test]
    fn labels_are_told_apart_from_settings() {
        assert_eq!(found("labels.rise = x", 14), Some((14, "rise", true, "x")));
        assert_eq!(
            found("labels = { a = \"b\", rise = x }", 27),
            Some((27, "rise", true, "x"))
        );
        let text = "[[targets.labels]] # here\nrise = x\n";
        assert_eq!(found(text, 33), Some((33, "rise", true, "x")));
        let text = "[targets.labels]\n[[targets]]\nrise = x\n";
        assert_eq!(found(text, 36), Some((36, "rise", false, "x")));
    }

    #[test]
    fn what_is_not_a_bare_word_is_left_to_toml_edit() {
        assert_eq!(found("rise = \"2\n", 7), None);
        assert_eq!(found("name = \"a = b\" c\n", 15), None);
        assert_eq!(found("rise = 2 3\n", 9), None);
        assert_eq!(found("[defaults\n", 9), None);
        assert_eq!(found("", 0), None);
        assert_eq!(found("é = x", 1), None);
    }
}
