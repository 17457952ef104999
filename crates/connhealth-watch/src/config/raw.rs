//! The TOML document as a small tree in which every key and value knows where it was
//! written.
//!
//! toml_edit (the parser inside `toml`) keeps the span of every key and value of a parsed
//! document. We copy what the config can use into [`Node`]s so that the checks read one
//! shape whatever the TOML spelling: `[[targets]]` and `targets = [{ .. }]` are the same
//! array of tables, `[targets.labels]` and `labels = { .. }` the same table.

use std::ops::Range;

use toml_edit::{ImDocument, Item, Table as EditTable, Value as EditValue};

/// Below this depth the config has no tables or arrays: deeper ones are kept as empty
/// nodes of the right type (enough to say "expected a string, found a table"), which also
/// bounds the recursion whatever the input nests.
const MAX_DEPTH: usize = 6;

/// A value and the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// Where the value starts: its first character, or a table's `[header]`.
    pub(crate) at: usize,
    /// The value.
    pub(crate) value: Value,
}

/// A TOML value, as the config reads it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// A string, its escapes resolved.
    String(String),
    /// An integer.
    Integer(i64),
    /// A float (`nan` and `inf` included: TOML allows them).
    Float(f64),
    /// `true` or `false`.
    Boolean(bool),
    /// A date, a time or both: the config has no use for one.
    Datetime,
    /// An array (of values, or of tables).
    Array(Vec<Node>),
    /// A table: `[header]`, `[[header]]`, `{ inline }` or one made by dotted keys.
    Table(Vec<Entry>),
}

/// One `key = value` of a table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    /// The key.
    pub(crate) key: String,
    /// Where the key starts.
    pub(crate) key_at: usize,
    /// Its value.
    pub(crate) value: Node,
}

impl Value {
    /// The name of the value's type, as a message says it: "a string", "an integer".
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Boolean(_) => "a boolean",
            Value::Datetime => "a date-time",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }
}

/// A TOML syntax error: where, and the parser's message on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// Byte offset of the problem.
    pub(crate) at: usize,
    /// What the parser expected, on one line.
    pub(crate) message: String,
}

/// Parses `text` into the root table.
pub(crate) fn parse(text: &str) -> Result<Node, SyntaxError> {
    let document = ImDocument::parse(text).map_err(|err| SyntaxError {
        at: err.span().map_or(0, |span| span.start),
        message: one_line(err.message()),
    })?;
    Ok(Node {
        at: 0,
        value: table(document.as_table(), 0, 0),
    })
}

/// toml_edit's messages run over several lines ("invalid key\nexpected `=`"): an error
/// line `FILE:LINE:COLUMN: message` holds one.
fn one_line(message: &str) -> String {
    let parts: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    parts.join("; ")
}

fn start(span: Option<Range<usize>>, fallback: usize) -> usize {
    span.map_or(fallback, |span| span.start)
}

fn table(table: &EditTable, fallback: usize, depth: usize) -> Value {
    if depth >= MAX_DEPTH {
        return Value::Table(Vec::new());
    }
    let entries = table
        .iter()
        .map(|(key, item)| {
            let key_at = start(table.key(key).and_then(|k| k.span()), fallback);
            Entry {
                key: key.to_owned(),
                key_at,
                value: item_node(item, key_at, depth + 1),
            }
        })
        .collect();
    Value::Table(entries)
}

fn item_node(item: &Item, fallback: usize, depth: usize) -> Node {
    match item {
        Item::Value(value) => value_node(value, fallback, depth),
        Item::Table(t) => {
            // A table made only by dotted keys or by a deeper header has no span of its
            // own: it is where its key is.
            let at = start(t.span(), fallback);
            Node {
                at,
                value: table(t, at, depth),
            }
        }
        Item::ArrayOfTables(array) => {
            let at = start(array.span(), fallback);
            let tables = if depth >= MAX_DEPTH {
                Vec::new()
            } else {
                array
                    .iter()
                    .map(|t| {
                        let at = start(t.span(), at);
                        Node {
                            at,
                            value: table(t, at, depth + 1),
                        }
                    })
                    .collect()
            };
            Node {
                at,
                value: Value::Array(tables),
            }
        }
        // Not produced by parsing; an empty table is the harmless reading.
        Item::None => Node {
            at: fallback,
            value: Value::Table(Vec::new()),
        },
    }
}

fn value_node(value: &EditValue, fallback: usize, depth: usize) -> Node {
    let at = start(value.span(), fallback);
    let value = match value {
        EditValue::String(s) => Value::String(s.value().clone()),
        EditValue::Integer(i) => Value::Integer(*i.value()),
        EditValue::Float(f) => Value::Float(*f.value()),
        EditValue::Boolean(b) => Value::Boolean(*b.value()),
        EditValue::Datetime(_) => Value::Datetime,
        EditValue::Array(_) if depth >= MAX_DEPTH => Value::Array(Vec::new()),
        EditValue::Array(array) => {
            Value::Array(array.iter().map(|v| value_node(v, at, depth + 1)).collect())
        }
        EditValue::InlineTable(_) if depth >= MAX_DEPTH => Value::Table(Vec::new()),
        EditValue::InlineTable(t) => Value::Table(
            t.iter()
                .map(|(key, v)| {
                    let key_at = start(t.key(key).and_then(|k| k.span()), at);
                    Entry {
                        key: key.to_owned(),
                        key_at,
                        value: value_node(v, key_at, depth + 1),
                    }
                })
                .collect(),
        ),
    };
    Node { at, value }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(node: &Node) -> &[Entry] {
        match &node.value {
            Value::Table(entries) => entries,
            other => panic!("not a table: {other:?}"),
        }
    }

    #[test]
    fn keys_and_values_keep_their_offsets() {
        let text = "[defaults]\ninterval = \"2s\"\n";
        let root = parse(text).unwrap();
        let defaults = &entries(&root)[0];
        assert_eq!(defaults.key, "defaults");
        assert_eq!(defaults.value.at, 0);
        let interval = &entries(&defaults.value)[0];
        assert_eq!(interval.key_at, 11);
        assert_eq!(interval.value.at, 22);
        assert_eq!(interval.value.value, Value::String("2s".into()));
    }

    #[test]
    fn arrays_of_tables_and_inline_arrays_read_alike() {
        let headers = parse("[[targets]]\naddress = \"a:1\"\n").unwrap();
        let inline = parse("targets = [{ address = \"a:1\" }]\n").unwrap();
        for root in [&headers, &inline] {
            let Value::Array(targets) = &entries(root)[0].value.value else {
                panic!("targets is not an array");
            };
            assert_eq!(entries(&targets[0])[0].key, "address");
        }
    }

    #[test]
    fn dotted_tables_sit_at_their_key() {
        let text = "[[targets]]\nlabels.service = \"x\"\n";
        let root = parse(text).unwrap();
        let Value::Array(targets) = &entries(&root)[0].value.value else {
            panic!()
        };
        let labels = &entries(&targets[0])[0];
        assert_eq!(labels.key_at, 12);
        assert_eq!(labels.value.at, 12);
        assert_eq!(entries(&labels.value)[0].key_at, 19);
    }

    #[test]
    fn syntax_errors_have_a_place_and_one_line() {
        let err = parse("[defaults\n").unwrap_err();
        assert!(!err.message.contains('\n'), "{}", err.message);
        assert!(err.at <= 10);
    }

    #[test]
    fn deep_nesting_is_cut_off_not_recursed() {
        let deep = format!("x = {}1{}", "[".repeat(60), "]".repeat(60));
        let root = parse(&deep).unwrap();
        assert!(matches!(entries(&root)[0].value.value, Value::Array(_)));
    }

    #[test]
    fn datetimes_are_values_of_their_own() {
        let root = parse("x = 1979-05-27T07:32:00Z\n").unwrap();
        assert_eq!(entries(&root)[0].value.value, Value::Datetime);
    }
}
