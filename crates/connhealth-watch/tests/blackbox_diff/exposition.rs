//! The series of a Prometheus text exposition: name and sorted labels, and the value
//! (`#` lines are skipped).

use std::collections::BTreeMap;

/// A sample's value: as written, and as a number.
#[derive(Debug, Clone)]
pub struct Value {
    pub text: String,
    pub number: f64,
}

impl Value {
    /// Equal numbers, NaN equal to NaN; exactly, for these are integers, flags and
    /// timestamps.
    pub fn same(&self, other: &Value) -> bool {
        (self.number.is_nan() && other.number.is_nan()) || self.number == other.number
    }
}

/// A parsed series: its name, and the whole series (`name{a="1",b="2"}`, labels sorted).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Series {
    pub name: String,
    pub full: String,
}

/// Every sample of `text`; a line that does not parse, or a series given twice, is kept
/// with a value that says so (and is NaN), so that it shows as a difference.
pub fn parse(text: &str) -> BTreeMap<Series, Value> {
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = match sample(line) {
            Some(parsed) => parsed,
            None => (
                Series {
                    name: line.to_owned(),
                    full: line.to_owned(),
                },
                bad("<unparsable line>"),
            ),
        };
        samples
            .entry(series)
            .and_modify(|given: &mut Value| *given = bad("<series given twice>"))
            .or_insert(value);
    }
    samples
}

fn bad(why: &str) -> Value {
    Value {
        text: why.to_owned(),
        number: f64::NAN,
    }
}

fn sample(line: &str) -> Option<(Series, Value)> {
    let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, after) = label_set(after)?;
        labels = parsed;
        rest = after;
    }
    let value_text = rest.split_whitespace().next()?;
    let number = match value_text {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    labels.sort();
    let full = if labels.is_empty() {
        name.to_owned()
    } else {
        let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        format!("{name}{{{}}}", inner.join(","))
    };
    Some((
        Series {
            name: name.to_owned(),
            full,
        },
        Value {
            text: value_text.to_owned(),
            number,
        },
    ))
}

/// `a="1",b="2"}` and what follows the `}`; label values unescaped.
fn label_set(mut rest: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let (key, after) = rest.split_once('=')?;
        let mut chars = after.strip_prefix('"')?.char_indices();
        let mut value = String::new();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                other => value.push(other),
            }
        };
        labels.push((key.trim().to_owned(), value));
        rest = &after[1 + end + 1..];
    }
}
