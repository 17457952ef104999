//! `connhealth generate --out DIR` (hidden): the man pages and shell completions, made
//! from the clap definition itself, so they never drift from `--help`. `scripts/package`
//! runs it before `cargo deb`, which installs what it wrote:
//!
//! * `DIR/man/connhealth.1` and one page per subcommand, `connhealth-watch.1` among them
//!   (clap_mangen; hidden subcommands have none);
//! * `DIR/completions/connhealth.bash`, `_connhealth` (zsh) and `connhealth.fish`
//!   (clap_complete).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args as ClapArgs, CommandFactory};
use clap_complete::Shell;

/// Where to write.
#[derive(Debug, ClapArgs)]
pub(crate) struct Args {
    /// The folder to write `man/` and `completions/` into (created when missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

pub(crate) fn run(args: Args) -> ExitCode {
    match write(&args.out) {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("connhealth generate: {}: {err}", args.out.display());
            ExitCode::FAILURE
        }
    }
}

/// Writes every page and completion under `out`; returns their paths.
fn write(out: &Path) -> std::io::Result<Vec<PathBuf>> {
    let man = out.join("man");
    let completions = out.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    clap_mangen::generate_to(crate::Cli::command(), &man)?;
    let mut written = Vec::new();
    for entry in std::fs::read_dir(&man)? {
        written.push(entry?.path());
    }
    written.sort();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut command = crate::Cli::command();
        written.push(clap_complete::generate_to(
            shell,
            &mut command,
            "connhealth",
            &completions,
        )?);
    }
    Ok(written)
}
