//! Target names are unique in a plan: the first target to take a name keeps it. A later
//! `[[targets]]` table that wants it is an error that points at itself and says where the
//! first one is; a later file_sd target takes another name ([`Names::take`]).

use std::collections::HashMap;
use std::path::PathBuf;

use super::span::{Report, Source};

/// The names taken so far, each with where it was taken.
#[derive(Debug, Default)]
pub(crate) struct Names {
    taken: HashMap<String, Place>,
    /// Where the last line count ended: claims come in file order, so each counts only
    /// the newlines since the last one. (Counting from the start each time made a load
    /// of 100k targets take minutes.)
    counted: Counted,
}

#[derive(Debug)]
struct Counted {
    seq: usize,
    offset: usize,
    line: usize,
}

impl Default for Counted {
    fn default() -> Self {
        Counted {
            seq: usize::MAX,
            offset: 0,
            line: 1,
        }
    }
}

#[derive(Debug)]
struct Place {
    file: PathBuf,
    seq: usize,
    line: usize,
}

impl Names {
    /// Takes `name` for the target written at `at` in `source`. If another target has
    /// it, reports an error there (`fix` says what to do) and returns false.
    pub(crate) fn claim(
        &mut self,
        name: &str,
        source: &Source<'_>,
        at: usize,
        fix: &str,
        report: &mut Report,
    ) -> bool {
        if let Some(first) = self.taken.get(name) {
            let place = if first.seq == source.seq {
                format!("line {}", first.line)
            } else {
                format!("{}:{}", first.file.display(), first.line)
            };
            report.error(
                source,
                at,
                format!("target name {name:?} is already taken by the target at {place}; {fix}"),
            );
            return false;
        }
        self.take(name, source, at)
    }

    /// Takes `name` for the target written at `at` in `source` if no other target has
    /// it; true if it did.
    pub(crate) fn take(&mut self, name: &str, source: &Source<'_>, at: usize) -> bool {
        if self.taken.contains_key(name) {
            return false;
        }
        let line = self.line_of(source, at);
        self.taken.insert(
            name.to_owned(),
            Place {
                file: source.path.to_owned(),
                seq: source.seq,
                line,
            },
        );
        true
    }

    /// The 1-based line of byte `at` in `source`, counting on from the last call.
    fn line_of(&mut self, source: &Source<'_>, at: usize) -> usize {
        let counted = &mut self.counted;
        if counted.seq != source.seq || at < counted.offset {
            *counted = Counted {
                seq: source.seq,
                ..Counted::default()
            };
        }
        let bytes = source.text.as_bytes();
        let end = at.min(bytes.len());
        let newlines = bytes
            .get(counted.offset.min(end)..end)
            .unwrap_or_default()
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        counted.line += newlines;
        counted.offset = end;
        counted.line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn lines_are_counted_on_from_the_last_claim_and_again_for_an_earlier_offset() {
        let source = Source {
            path: Path::new("c.toml"),
            text: "a\nb\nc\nd\n",
            seq: 0,
        };
        let mut names = Names::default();
        assert_eq!(names.line_of(&source, 0), 1);
        assert_eq!(names.line_of(&source, 4), 3);
        assert_eq!(names.line_of(&source, 6), 4);
        assert_eq!(names.line_of(&source, 2), 2);
        assert_eq!(names.line_of(&source, 99), 5);
    }

    #[test]
    fn the_second_taker_is_told_where_the_first_is() {
        let config = Source {
            path: Path::new("c.toml"),
            text: "a\nb\nc\n",
            seq: 0,
        };
        let json = Source {
            path: Path::new("t.json"),
            text: "[]",
            seq: 1,
        };
        let mut names = Names::default();
        let mut report = Report::default();
        assert!(names.claim("x", &config, 2, "rename it", &mut report));
        assert!(!names.claim("x", &config, 4, "rename it", &mut report));
        assert!(!names.claim("x", &json, 0, "list it once", &mut report));
        assert!(names.claim("y", &json, 1, "", &mut report));
        let errors = report.into_sorted();
        assert_eq!(errors[0].line, 3);
        assert_eq!(
            errors[0].message,
            "target name \"x\" is already taken by the target at line 2; rename it"
        );
        assert!(
            errors[1].message.contains("at c.toml:2; list it once"),
            "{}",
            errors[1].message
        );
    }
}
