//! The bench's verdicts: a missed target is printed and listed at the end; a sanity
//! failure (a run that did not measure what it claims) fails the bench.

use std::process::ExitCode;

/// `" below target"` when `met` is false.
pub fn below(met: bool) -> &'static str {
    if met {
        ""
    } else {
        " below target"
    }
}

/// Targets met and missed, and sanity failures, over the whole run.
#[derive(Default)]
pub struct Report {
    missed: Vec<String>,
    met: usize,
    failures: Vec<String>,
}

impl Report {
    /// Records a target's verdict.
    pub fn target(&mut self, what: &str, met: bool) {
        if met {
            self.met += 1;
        } else {
            self.missed.push(what.to_owned());
        }
    }

    /// A measurement that did not measure what it claims: printed now, and the bench
    /// exits 1.
    pub fn fail(&mut self, why: String) {
        println!("FAIL: {why}");
        self.failures.push(why);
    }

    /// True once a sanity check failed.
    pub fn failed(&self) -> bool {
        !self.failures.is_empty()
    }

    /// The summary line, and the exit code: 1 if any sanity check failed.
    pub fn finish(self) -> ExitCode {
        if self.missed.is_empty() {
            println!("targets: all {} met", self.met);
        } else {
            println!(
                "targets: {} met, {} below target: {}",
                self.met,
                self.missed.len(),
                self.missed.join("; ")
            );
        }
        if self.failures.is_empty() {
            ExitCode::SUCCESS
        } else {
            println!("{} sanity check(s) failed", self.failures.len());
            ExitCode::FAILURE
        }
    }
}
