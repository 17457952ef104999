//! The allowed divergences: the table under `## Differences from blackbox_exporter` in
//! docs/blackbox.md, one row per difference, keyed `` `scenario` / `item` `` in its first
//! column, where the item is `status`, `content_type`, a series' name (any labels), a
//! whole series as the test prints it, or `*` (every series of the scenario).

use std::path::Path;

/// The heading the table is under.
pub const HEADING: &str = "## Differences from blackbox_exporter";

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Listed {
    pub scenario: String,
    pub item: String,
    /// The row's line in the file, for messages.
    pub line: usize,
}

/// One difference found between the two answers of a scenario.
#[derive(Debug, Clone)]
pub struct Divergence {
    pub scenario: &'static str,
    /// `status`, `content_type`, or the series' name.
    pub name: String,
    /// `status`, `content_type`, or the whole series.
    pub item: String,
    pub blackbox: String,
    pub ours: String,
}

impl Listed {
    /// True when this row allows `d`.
    pub fn allows(&self, d: &Divergence) -> bool {
        self.scenario == d.scenario
            && (self.item == d.item
                || self.item == d.name
                || (self.item == "*" && d.name != "status" && d.name != "content_type"))
    }
}

/// The rows of the table in `docs`; panics with what to fix when a row's key is not
/// `` `scenario` / `item` ``.
pub fn read(docs: &Path) -> Vec<Listed> {
    let text = std::fs::read_to_string(docs)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", docs.display()));
    let mut lines = text.lines().enumerate();
    lines
        .by_ref()
        .find(|(_, line)| line.trim() == HEADING)
        .unwrap_or_else(|| panic!("{} has no heading {HEADING:?}", docs.display()));
    let mut rows = Vec::new();
    for (at, line) in lines {
        let line = line.trim();
        if line.starts_with('#') {
            break; // the next section
        }
        let Some(inner) = line.strip_prefix('|') else {
            continue;
        };
        let first = inner.split('|').next().unwrap_or("").trim();
        let is_rule = first.chars().all(|c| matches!(c, '-' | ':' | ' '));
        if is_rule || !first.starts_with('`') {
            continue; // the header row, or the rule under it
        }
        let key = first.replace('`', "");
        let Some((scenario, item)) = key.split_once(" / ") else {
            panic!(
                "{}:{}: the first column of a difference is `scenario` / `item`, not {first:?}",
                docs.display(),
                at + 1
            );
        };
        rows.push(Listed {
            scenario: scenario.trim().to_owned(),
            item: item.trim().to_owned(),
            line: at + 1,
        });
    }
    rows
}
