//! A JSON document as a tree in which every value and key knows where it starts, for
//! errors that point into a file_sd file.
//!
//! serde_json finds syntax errors (with their line and column) but keeps no positions in
//! what it parses. So a text is first parsed by serde_json, and only a text it accepted
//! is scanned here: the scanner can then be small, yet it still checks every step and
//! returns `None` rather than panic if the two ever disagree. String contents are decoded
//! by serde_json itself, escapes and all.

/// A JSON value and the byte offset of its first character.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JsonNode {
    /// Where the value starts.
    pub(crate) at: usize,
    /// The value.
    pub(crate) value: JsonValue,
}

/// A JSON value. Numbers, booleans and null are kept only as what they are: file_sd has
/// no use for them beyond saying they are the wrong type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum JsonValue {
    /// `null`.
    Null,
    /// `true` or `false`.
    Boolean,
    /// A number.
    Number,
    /// A string, decoded.
    String(String),
    /// An array.
    Array(Vec<JsonNode>),
    /// An object, its members in the order written (repeated keys kept).
    Object(Vec<JsonMember>),
}

/// One `"key": value` of an object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JsonMember {
    /// The key, decoded.
    pub(crate) key: String,
    /// Where the key's opening quote is.
    pub(crate) key_at: usize,
    /// The value.
    pub(crate) value: JsonNode,
}

impl JsonValue {
    /// The name of the value's type, as a message says it.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            JsonValue::Null => "null",
            JsonValue::Boolean => "a boolean",
            JsonValue::Number => "a number",
            JsonValue::String(_) => "a string",
            JsonValue::Array(_) => "an array",
            JsonValue::Object(_) => "an object",
        }
    }
}

/// A JSON syntax error: where, and serde_json's message without its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonSyntaxError {
    /// 1-based line.
    pub(crate) line: usize,
    /// 1-based column, in bytes (as serde_json counts).
    pub(crate) byte_column: usize,
    /// What is wrong.
    pub(crate) message: String,
}

/// Parses `text`; `Ok(None)` only if serde_json accepted a text the scanner could not
/// follow (a bug to report, not the user's error).
pub(crate) fn parse(text: &str) -> Result<Option<JsonNode>, JsonSyntaxError> {
    if let Err(err) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        return Err(JsonSyntaxError {
            line: err.line(),
            byte_column: err.column(),
            message: message_of(&err),
        });
    }
    let mut scanner = Scanner {
        text,
        pos: 0,
        undecodable: None,
    };
    let node = scanner.value(0);
    if let Some(err) = scanner.undecodable {
        return Err(err);
    }
    scanner.skip_whitespace();
    Ok(node.filter(|_| scanner.pos == text.len()))
}

/// serde_json's message, without the " at line L column C" it ends with.
fn message_of(err: &serde_json::Error) -> String {
    let full = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_owned()
}

/// Deeper than serde_json's own limit (128), so never reached on a text it accepted.
const MAX_DEPTH: usize = 256;

struct Scanner<'a> {
    text: &'a str,
    pos: usize,
    /// A string serde_json's syntax check let through but would not decode: a `\u`
    /// escape of half a surrogate pair (the check skips over string contents).
    undecodable: Option<JsonSyntaxError>,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.skip_whitespace();
        (self.peek() == Some(byte)).then(|| self.pos += 1)
    }

    fn value(&mut self, depth: usize) -> Option<JsonNode> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.skip_whitespace();
        let at = self.pos;
        let value = match self.peek()? {
            b'{' => self.object(depth)?,
            b'[' => self.array(depth)?,
            b'"' => JsonValue::String(self.string()?),
            b't' => self.word("true", JsonValue::Boolean)?,
            b'f' => self.word("false", JsonValue::Boolean)?,
            b'n' => self.word("null", JsonValue::Null)?,
            b'-' | b'0'..=b'9' => {
                while matches!(
                    self.peek(),
                    Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                ) {
                    self.pos += 1;
                }
                JsonValue::Number
            }
            _ => return None,
        };
        Some(JsonNode { at, value })
    }

    fn word(&mut self, word: &str, value: JsonValue) -> Option<JsonValue> {
        let end = self.pos.checked_add(word.len())?;
        (self.text.as_bytes().get(self.pos..end)? == word.as_bytes()).then(|| {
            self.pos = end;
            value
        })
    }

    /// The string at `pos` (its opening quote), decoded by serde_json.
    fn string(&mut self) -> Option<String> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let mut i = start.checked_add(1)?;
        loop {
            match bytes.get(i)? {
                b'\\' => i += 2,
                b'"' => break,
                _ => i += 1,
            }
        }
        let end = i + 1;
        // Both ends are ASCII quotes, hence char boundaries; `get` checks anyway.
        let raw = self.text.get(start..end)?;
        self.pos = end;
        match serde_json::from_str(raw) {
            Ok(decoded) => Some(decoded),
            Err(err) => {
                // Point at the escape: serde_json stops inside it or just after it. A
                // string holds no raw newline (the syntax check refuses control
                // characters), so that is a byte column on the string's own line.
                let stopped = err.column().min(raw.len());
                let escape = raw
                    .as_bytes()
                    .get(..stopped)
                    .unwrap_or_default()
                    .windows(2)
                    .rposition(|pair| pair == b"\\u")
                    .unwrap_or(0);
                let before = self.text.as_bytes().get(..start)?;
                let line_start = before
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                self.undecodable = Some(JsonSyntaxError {
                    line: 1 + before.iter().filter(|&&b| b == b'\n').count(),
                    byte_column: start - line_start + escape + 1,
                    message: format!(
                        "{} (a \\u escape from D800 to DFFF is half of a surrogate pair, and needs the other half right after it; or write the character itself)",
                        message_of(&err)
                    ),
                });
                None
            }
        }
    }

    fn array(&mut self, depth: usize) -> Option<JsonValue> {
        self.eat(b'[')?;
        let mut items = Vec::new();
        if self.eat(b']').is_some() {
            return Some(JsonValue::Array(items));
        }
        loop {
            items.push(self.value(depth + 1)?);
            if self.eat(b',').is_none() {
                self.eat(b']')?;
                return Some(JsonValue::Array(items));
            }
        }
    }

    fn object(&mut self, depth: usize) -> Option<JsonValue> {
        self.eat(b'{')?;
        let mut members = Vec::new();
        if self.eat(b'}').is_some() {
            return Some(JsonValue::Object(members));
        }
        loop {
            self.skip_whitespace();
            let key_at = self.pos;
            if self.peek()? != b'"' {
                return None;
            }
            let key = self.string()?;
            self.eat(b':')?;
            let value = self.value(depth + 1)?;
            members.push(JsonMember { key, key_at, value });
            if self.eat(b',').is_none() {
                self.eat(b'}')?;
                return Some(JsonValue::Object(members));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_their_offsets() {
        let text = r#"[ {"targets": ["a:1", "b\"c:2"], "n": -1.5e3, "x": [true, null]} ]"#;
        let root = parse(text).unwrap().unwrap();
        let JsonValue::Array(groups) = &root.value else {
            panic!()
        };
        let JsonValue::Object(members) = &groups[0].value else {
            panic!()
        };
        assert_eq!(members[0].key, "targets");
        assert_eq!(members[0].key_at, 3);
        let JsonValue::Array(targets) = &members[0].value.value else {
            panic!()
        };
        assert_eq!(targets[0].at, 15);
        assert_eq!(targets[1].value, JsonValue::String("b\"c:2".into()));
        assert_eq!(targets[1].at, 22);
        assert_eq!(members[1].value.value, JsonValue::Number);
    }

    #[test]
    fn syntax_errors_come_from_serde_json() {
        let err = parse("[\n  {\"targets\": [x]}\n]").unwrap_err();
        assert_eq!((err.line, err.byte_column), (2, 16));
        assert_eq!(err.message, "expected value");
        assert!(parse("").is_err());
        assert!(parse("[1] 2").is_err());
    }

    #[test]
    fn multibyte_text_scans() {
        let root = parse("{\"é😀\": \"ü\"}").unwrap().unwrap();
        let JsonValue::Object(members) = &root.value else {
            panic!()
        };
        assert_eq!(members[0].key, "é😀");
        assert_eq!(members[0].value.at, 11);
    }

    #[test]
    fn repeated_keys_are_kept() {
        let root = parse(r#"{"a": 1, "a": 2}"#).unwrap().unwrap();
        let JsonValue::Object(members) = &root.value else {
            panic!()
        };
        assert_eq!(members.len(), 2);
    }
}
