//! Where an error is: byte offsets turned into 1-based lines and character columns, and
//! the list of errors of one load, kept in file order.
//!
//! Offsets come from parsers (toml_edit, serde_json, our JSON scanner) and are trusted
//! for nothing: an offset past the end is clamped, and one inside a multi-byte character
//! counts as that character. Nothing here slices the text.

use std::path::{Path, PathBuf};

use super::ConfigError;

/// A file being read: its path as given, its text, and its place in the load's order
/// (the config is 0, each file_sd file after it in the order read).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source<'a> {
    /// The path, as the error will name it.
    pub(crate) path: &'a Path,
    /// The whole text.
    pub(crate) text: &'a str,
    /// The file's rank in the load: errors are sorted by it, then by offset.
    pub(crate) seq: usize,
}

/// A 1-based line and a 1-based column counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LineColumn {
    /// 1-based line.
    pub(crate) line: usize,
    /// 1-based column, in characters.
    pub(crate) column: usize,
}

/// The line and column of byte `offset` in `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> LineColumn {
    let bytes = text.as_bytes();
    let end = offset.min(bytes.len());
    let before = bytes.get(..end).unwrap_or(bytes);
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |newline| newline + 1);
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    // A character starts at every byte that is not a UTF-8 continuation byte (10xxxxxx):
    // counting those counts characters without slicing the str.
    let column = 1 + before
        .get(line_start..)
        .unwrap_or_default()
        .iter()
        .filter(|&&b| b & 0xC0 != 0x80)
        .count();
    LineColumn { line, column }
}

/// The byte offset of a 1-based `line` and 1-based *byte* `column`, as serde_json reports
/// them; clamped to the text, and to the line's end.
pub(crate) fn offset_of(text: &str, line: usize, byte_column: usize) -> usize {
    let bytes = text.as_bytes();
    let mut line_start = 0;
    for _ in 1..line {
        match bytes
            .get(line_start..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
        {
            Some(newline) => line_start += newline + 1,
            None => return bytes.len(),
        }
    }
    let line_end = bytes
        .get(line_start..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
        .map_or(bytes.len(), |newline| line_start + newline);
    (line_start + byte_column.saturating_sub(1)).min(line_end)
}

/// `message` with each control character escaped (`\n`, `\u{1b}`). A message quotes
/// names and strings from the files, and a JSON or TOML escape can put any character in
/// them: escaped, an error stays one `FILE:LINE:COLUMN: message` line, and a terminal
/// control sequence from a discovered file never reaches the log raw.
fn one_line(message: String) -> String {
    if !message.chars().any(char::is_control) {
        return message;
    }
    message
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The errors of one load, each with its file's rank and offset so that they can be put
/// in file order whatever order the checks found them in.
#[derive(Debug, Default)]
pub(crate) struct Report {
    errors: Vec<Located>,
    /// What loads, but likely not as meant (a timeout longer than the interval).
    warnings: Vec<Located>,
}

#[derive(Debug)]
struct Located {
    seq: usize,
    offset: usize,
    error: ConfigError,
}

impl Located {
    /// `message` at byte `offset` of `source`, on one line.
    fn at(source: &Source<'_>, offset: usize, message: String) -> Located {
        let LineColumn { line, column } = line_column(source.text, offset);
        Located {
            seq: source.seq,
            offset,
            error: ConfigError {
                file: source.path.to_owned(),
                line,
                column,
                message: one_line(message),
            },
        }
    }
}

impl Report {
    /// Records `message` at byte `offset` of `source`.
    pub(crate) fn error(&mut self, source: &Source<'_>, offset: usize, message: impl Into<String>) {
        self.errors
            .push(Located::at(source, offset, message.into()));
    }

    /// Records the warning `message` at byte `offset` of `source`: the config loads, and
    /// the warning is logged.
    pub(crate) fn warn(&mut self, source: &Source<'_>, offset: usize, message: impl Into<String>) {
        self.warnings
            .push(Located::at(source, offset, message.into()));
    }

    /// The warnings, in file order.
    pub(crate) fn sorted_warnings(&mut self) -> Vec<ConfigError> {
        self.warnings.sort_by_key(|e| (e.seq, e.offset));
        self.warnings.drain(..).map(|e| e.error).collect()
    }

    /// Records `message` at the top of `path`, for a file that has no text to point into
    /// (it could not be read, or it is not JSON at all).
    pub(crate) fn whole_file(&mut self, path: &Path, seq: usize, message: impl Into<String>) {
        self.errors.push(Located {
            seq,
            offset: 0,
            error: ConfigError {
                file: PathBuf::from(path),
                line: 1,
                column: 1,
                message: one_line(message.into()),
            },
        });
    }

    /// True when nothing was recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The errors, by file (in the order the files were read), then by place in the file.
    pub(crate) fn into_sorted(mut self) -> Vec<ConfigError> {
        // Stable: two errors at one place stay in the order they were found.
        self.errors.sort_by_key(|e| (e.seq, e.offset));
        self.errors.into_iter().map(|e| e.error).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, offset: usize) -> (usize, usize) {
        let LineColumn { line, column } = line_column(text, offset);
        (line, column)
    }

    #[test]
    fn lines_and_columns_are_one_based() {
        let text = "ab\ncd\n";
        assert_eq!(at(text, 0), (1, 1));
        assert_eq!(at(text, 1), (1, 2));
        assert_eq!(at(text, 3), (2, 1));
        assert_eq!(at(text, 4), (2, 2));
        assert_eq!(at(text, 6), (3, 1));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        // "é" is two bytes, "😀" four.
        let text = "é😀x";
        assert_eq!(at(text, 2), (1, 2));
        assert_eq!(at(text, 6), (1, 3));
    }

    #[test]
    fn offsets_past_the_end_or_inside_a_character_do_not_panic() {
        assert_eq!(at("ab", 99), (1, 3));
        assert_eq!(at("", 5), (1, 1));
        // Offset 1 is inside "é": it counts as that character.
        assert_eq!(at("é", 1), (1, 2));
    }

    #[test]
    fn serde_json_positions_become_offsets() {
        let text = "[\n  {x}\n]";
        assert_eq!(offset_of(text, 2, 4), 5);
        assert_eq!(offset_of(text, 1, 0), 0);
        assert_eq!(offset_of(text, 9, 1), text.len());
        assert_eq!(offset_of(text, 1, 99), 1);
    }

    #[test]
    fn the_report_sorts_by_file_then_place() {
        let config = Source {
            path: Path::new("c.toml"),
            text: "a\nb\n",
            seq: 0,
        };
        let json = Source {
            path: Path::new("t.json"),
            text: "[]",
            seq: 1,
        };
        let mut report = Report::default();
        report.error(&json, 1, "third");
        report.error(&config, 2, "second");
        report.error(&config, 0, "first");
        let messages: Vec<_> = report
            .into_sorted()
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(messages, ["first", "second", "third"]);
    }
}
