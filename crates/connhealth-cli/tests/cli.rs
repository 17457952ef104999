//! The `connhealth` command as a person runs it.

use std::process::Command;

fn connhealth(args: &[&str]) -> std::process::Output {
    connhealth_testkit::output(
        Command::new(env!("CARGO_BIN_EXE_connhealth")).args(args),
        "run connhealth",
    )
}

/// Runs `connhealth demo`, which must succeed, and checks that its output holds each of
/// `lines`.
fn demo_shows(lines: &[&str]) {
    let out = connhealth(&["demo"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in lines {
        assert!(
            stdout.contains(line),
            "demo output lacks {line:?}:\n{stdout}"
        );
    }
}

#[cfg(unix)] // Linux's answers, and the watch part (Unix only); Windows' demo is below
#[test]
fn demo_runs_and_shows_the_check_seeing_fin_rst_and_data() {
    demo_shows(&[
        "peer sent a reply              open, data waiting",
        "peer sent a reply, then FIN    closed (peer closed)",
        "peer closed (FIN)              closed (peer closed)",
        "peer reset (RST)               closed (reset by peer)",
        "A ping that reads with a 1 ms deadline",
        "connhealth watch: a server killed with SIGKILL, then restarted",
        "hold       up -> down   the held connection closed and a probe was refused",
        "half-open  up -> down   3 failures: refused",
    ]);
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(connhealth(&["no-such-command"]).status.code(), Some(2));
}

/// On Windows `watch` is listed, and says where it runs: exit 2, whatever its arguments.
#[cfg(not(unix))]
#[test]
fn watch_says_it_runs_on_unix_and_exits_2() {
    let help = connhealth(&["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("watch") && help.contains("Unix only"),
        "{help}"
    );
    for args in [
        &["watch", "--config", "x"][..],
        &["watch"],
        &["watch", "-v", "--x=y"],
    ] {
        let out = connhealth(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("connhealth watch runs on Linux (and other Unix)")
                && stderr.contains("connhealth probe --help"),
            "{args:?}: {stderr}"
        );
    }
}

/// On Windows the demo runs its check, probe and pool parts, and says why it skips the
/// rest.
#[cfg(not(unix))]
#[test]
fn demo_runs_the_parts_that_work_here_and_says_why_it_skips_the_others() {
    demo_shows(&[
        "peer closed (FIN)              closed (peer closed)",
        "A ping that reads with a 1 ms deadline",
        "probes of 127.0.0.1:",
        "connhealth::pool",
        "skipped: making a peer vanish needs Linux",
        "skipped: needs Linux (or other Unix): the watch daemon",
    ]);
}
