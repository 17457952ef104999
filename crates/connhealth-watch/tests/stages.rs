//! The daemon's stages import one way: each stage's code names only the stages before it,
//! so there is no import cycle, and the module that wires them (`daemon`) is named by no
//! stage. CONTRIBUTING.md's map of the daemon lists the same order.
//!
//! The test reads the sources: a `crate::STAGE` path in code (not in a comment) is an
//! import of that stage, whether in a `use` or inline.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The stages, in the order data flows.
const STAGES: [&str; 9] = [
    "config", "checks", "state", "store", "sinks", "schedule", "reload", "http", "daemon",
];

/// Modules outside the stages: leaves that import no stage.
const LEAVES: [&str; 4] = ["human", "notify", "shard", "sys"];

fn sources(stage: &str) -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let file = src.join(format!("{stage}.rs"));
    let dir = src.join(stage);
    let mut files = Vec::new();
    if file.exists() {
        files.push(file);
    }
    let mut dirs = vec![dir];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    assert!(!files.is_empty(), "no source for the stage {stage}");
    files
}

/// The crate modules `stage`'s code names, itself excluded.
fn imports(stage: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    for file in sources(stage) {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or_default();
            for (at, _) in code.match_indices("crate::") {
                // Not `connhealth_watch::` or a longer identifier ending in `crate`.
                let before = code[..at].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let module: String = code[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if module != stage {
                    named.insert(module);
                }
            }
        }
    }
    named
}

#[test]
fn each_stage_imports_only_the_stages_before_it() {
    let mut wrong = Vec::new();
    for (rank, stage) in STAGES.iter().enumerate() {
        for module in imports(stage) {
            let allowed =
                STAGES[..rank].contains(&module.as_str()) || LEAVES.contains(&module.as_str());
            if !allowed {
                wrong.push(format!("{stage} imports crate::{module}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the flow: {wrong:#?}");
}

#[test]
fn the_leaves_import_no_stage() {
    for leaf in LEAVES {
        let named = imports(leaf);
        let stages: Vec<&String> = named
            .iter()
            .filter(|m| STAGES.contains(&m.as_str()))
            .collect();
        assert!(stages.is_empty(), "{leaf} imports {stages:?}");
    }
}
