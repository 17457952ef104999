//! Puts the git revision the command is built from in `CONNHEALTH_GIT_REVISION`, for
//! `--version`: `git rev-parse --short HEAD`, with `-dirty` when tracked files differ from
//! it, or `unknown` outside a git checkout (a source tarball; a packager can set
//! `CONNHEALTH_GIT_REVISION` in the build's environment instead).
//!
//! Cargo runs this again when HEAD moves: `HEAD` (a checkout), the ref it points to (a
//! commit), `packed-refs`, and the index (a staged change). An edit that is not staged
//! shows as dirty from the next of these on, or after `cargo clean -p connhealth-cli`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=CONNHEALTH_GIT_REVISION");
    let revision = std::env::var("CONNHEALTH_GIT_REVISION")
        .ok()
        .filter(|given| !given.trim().is_empty())
        .or_else(from_git)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=CONNHEALTH_GIT_REVISION={revision}");
}

fn git(args: &[&str]) -> Option<String> {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")?;
    let out = Command::new("git")
        // Never take the index's lock for a refresh: a build must not race the user's git.
        .arg("--no-optional-locks")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8(out.stdout).ok()?.trim().to_owned())
}

fn from_git() -> Option<String> {
    let head = git(&["rev-parse", "--short", "HEAD"]).filter(|h| !h.is_empty())?;
    // A worktree has a git dir of its own (HEAD, index) beside the common one (refs).
    let git_dir = PathBuf::from(git(&["rev-parse", "--absolute-git-dir"])?);
    let common = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"])
        .map(PathBuf::from)
        .unwrap_or_else(|| git_dir.clone());
    rerun_if_changed(&git_dir.join("HEAD"));
    rerun_if_changed(&git_dir.join("index"));
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        let loose = common.join(reference);
        if loose.exists() {
            rerun_if_changed(&loose);
        } else if let Some(folder) = loose.parent() {
            // Packed: the loose file appears at the next commit.
            rerun_if_changed(folder);
        }
    }
    rerun_if_changed(&common.join("packed-refs"));
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|changes| !changes.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}

fn rerun_if_changed(path: &Path) {
    // Only what exists: cargo runs a script that names a missing file on every build.
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
